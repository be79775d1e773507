/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Requesting and attaching the extension's shared memory.
 *
 * When apikeys is in shared_preload_libraries, _PG_init (in the
 * postmaster) requests one block of shared memory and a tranche of
 * LWLocks, as pg_stat_statements does on PostgreSQL 15: the request is
 * made from shmem_request_hook, the block is found or created in
 * shmem_startup_hook.  Every backend then inherits the attachment.
 *
 * Without preloading there is no shared memory: verification reads the
 * table directly, usage is not counted, failure counters and rate limits
 * are not kept.  Each module checks ApikeysSharedReady() (shmem.h).
 *
 * Each structure is defined, sized and set up in the file that owns it:
 * the cache (cache.c), per-key counters (counters.c), the recent-use
 * table (recent.c), the worker's database list (dblist.c), the address
 * throttle and rate-limit windows (throttle.c).
 *
 * IDENTIFICATION
 *	  src/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "counters.h"
#include "dblist.h"
#include "prewarm.h"
#include "recent.h"
#include "shmem.h"
#include "stats.h"
#include "usage.h"

bool		apikeys_shmem_ready = false;
LWLockPadded *apikeys_locks = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* ApikeysShmemRequest asks the postmaster for our memory and locks. */
static void
ApikeysShmemRequest(void)
{
	Size		size = CacheShmemSize();

	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	size = add_size(size, CountersShmemSize());
	size = add_size(size, RecentShmemSize());
	size = add_size(size, DbListShmemSize());
	size = add_size(size, ThrottleShmemSize());
	size = add_size(size, ClaimShmemSize());
	size = add_size(size, ServerStatsShmemSize());
	RequestAddinShmemSpace(size);
	RequestNamedLWLockTranche(APIKEYS_TRANCHE_NAME, APIKEYS_NUM_LOCKS);
}

/*
 * ApikeysShmemStartup creates (postmaster) or attaches to the shared
 * structures.  It runs again after a crash restart, which starts every
 * structure afresh: usage not yet flushed is lost, nothing else.
 */
static void
ApikeysShmemStartup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	apikeys_locks = GetNamedLWLockTranche(APIKEYS_TRANCHE_NAME);
	CacheShmemInit();
	CountersShmemInit();
	RecentShmemInit();
	DbListShmemInit();
	ThrottleShmemInit();
	ClaimShmemInit();
	ServerStatsShmemInit();
	UsageSaveRegister();		/* usage.c: kept across a clean shutdown */
	LWLockRelease(AddinShmemInitLock);
	apikeys_shmem_ready = true;
}

/*
 * ApikeysShmemInit, only when the library is being preloaded, installs
 * the shared-memory hooks, the cache's transaction callback and the
 * background worker.
 */
void
ApikeysShmemInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ApikeysShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ApikeysShmemStartup;

	CacheXactInit();
	WorkerRegister();
	PrewarmRegister();
}
