/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  Shared memory of the apikeys extension: the verification cache, usage
 *	  counters, failure counters and rate limits (when preloaded).
 *
 * IDENTIFICATION
 *	  src/shmem.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_SHMEM_H
#define APIKEYS_SHMEM_H

#include "apikeys.h"
#include "storage/lwlock.h"

/*
 * Client IDs hash into this many partitions.  Each has an LWLock guarding
 * its part of the cache, an invalidation generation and a count of
 * transactions with uncommitted changes to its keys (see cache.c).
 */
#define APIKEYS_CACHE_PARTITIONS	128

/*
 * The address throttle and the rate-limit windows (throttle.c) are split
 * into this many partitions each, with a lock per partition.
 */
#define APIKEYS_THROTTLE_PARTITIONS	64

/* LWLocks of the "apikeys" tranche */
#define APIKEYS_LOCK_USAGE			APIKEYS_CACHE_PARTITIONS
#define APIKEYS_LOCK_THROTTLE		(APIKEYS_LOCK_USAGE + 1)
#define APIKEYS_LOCK_RATE			(APIKEYS_LOCK_THROTTLE + APIKEYS_THROTTLE_PARTITIONS)
#define APIKEYS_NUM_LOCKS			(APIKEYS_LOCK_RATE + APIKEYS_THROTTLE_PARTITIONS)

#define APIKEYS_TRANCHE_NAME		"apikeys"

/* Databases the background worker keeps track of */
#define APIKEYS_MAX_FLUSH_DATABASES	64

/* Address throttle records (addresses and networks; see throttle.c) */
#define APIKEYS_MAX_ADDRESSES		16384

/* true once this process is attached to the extension's shared memory */
extern bool apikeys_shmem_ready;
extern LWLockPadded *apikeys_locks;

/* Sizes and set-up of each shared structure (shmem.c calls these) */
extern Size CacheShmemSize(void);
extern void CacheShmemInit(void);
extern Size UsageShmemSize(void);
extern void UsageShmemInit(void);
extern Size ThrottleShmemSize(void);
extern void ThrottleShmemInit(void);
extern void CacheXactInit(void);

/* Background worker (worker.c) */
extern void WorkerRegister(void);

/* Flushing usage into tables of the current database (usage.c) */
extern int64 UsageFlushDatabase(bool rollup);

/* What UsageWrite does (journal.c) */
typedef enum UsageWriteMode
{
	USAGE_FLUSH,				/* shared memory into one journal row */
	USAGE_ROLLUP_ALL,			/* shared memory and the journal into usage */
	USAGE_ROLLUP_PAST_HOURS		/* flush, then the journal's past hours */
} UsageWriteMode;

extern int64 UsageWrite(UsageWriteMode mode);
extern bool UsageRollupWanted(void);
extern int	UsageDatabasesPending(Oid *dbids, bool *rollup, int max);
extern void UsageDiscardDatabase(void);

#endif							/* APIKEYS_SHMEM_H */
