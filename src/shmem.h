/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  Shared memory of the apikeys extension (when preloaded): the lock
 *	  tranche, the readiness test, and the size and set-up functions of
 *	  each shared structure.
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

/*
 * LWLocks of the "apikeys" tranche: one per cache partition, then the
 * usage lock (counters.c, recent.c and dblist.c share it), then the
 * throttle's and the rate limits' partitions, then the claim attempt
 * table's lock (claim.c).
 */
#define APIKEYS_LOCK_USAGE			APIKEYS_CACHE_PARTITIONS
#define APIKEYS_LOCK_THROTTLE		(APIKEYS_LOCK_USAGE + 1)
#define APIKEYS_LOCK_RATE			(APIKEYS_LOCK_THROTTLE + APIKEYS_THROTTLE_PARTITIONS)
#define APIKEYS_LOCK_CLAIM			(APIKEYS_LOCK_RATE + APIKEYS_THROTTLE_PARTITIONS)
#define APIKEYS_NUM_LOCKS			(APIKEYS_LOCK_CLAIM + 1)

#define APIKEYS_TRANCHE_NAME		"apikeys"

/* Databases the background worker keeps track of */
#define APIKEYS_MAX_FLUSH_DATABASES	64

/* Address throttle records (addresses and networks; see throttle.c) */
#define APIKEYS_MAX_ADDRESSES		16384

/* set by shmem.c once every shared structure is attached; read it through
 * ApikeysSharedReady() */
extern bool apikeys_shmem_ready;
extern LWLockPadded *apikeys_locks;

/*
 * ApikeysSharedReady: is this process attached to the extension's shared
 * memory (the library was preloaded and shmem_startup_hook has run)?  The
 * one readiness test: every shared structure is set up before it turns
 * true, so no module needs to test its own pointers too.
 */
static inline bool
ApikeysSharedReady(void)
{
	return apikeys_shmem_ready;
}

/*
 * Sizes and set-up of each shared structure; shmem.c calls these, each
 * defined in the file that owns the structure.
 */
extern Size CacheShmemSize(void);	/* cache.c */
extern void CacheShmemInit(void);
extern void CacheXactInit(void);
extern Size ThrottleShmemSize(void);	/* throttle.c */
extern void ThrottleShmemInit(void);
extern Size ClaimShmemSize(void);	/* claim.c */
extern void ClaimShmemInit(void);

/* Background worker (worker.c) */
extern void WorkerRegister(void);

#endif							/* APIKEYS_SHMEM_H */
