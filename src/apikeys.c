/*-------------------------------------------------------------------------
 *
 * apikeys.c
 *	  Module entry point: PG_MODULE_MAGIC, _PG_init, and the table of what
 *	  each verification outcome means to each interface (ApikeysOutcomes).
 *
 * _PG_init only calls each module's initialiser, so every concern keeps
 * its set-up beside its code.
 *
 * Shared memory (only when preloaded).  Each structure is owned by the
 * file that uses it: that file defines it, asks for its bytes and its own
 * LWLock tranche in its XxxShmemRequest (from shmem_request_hook, as
 * pg_stat_statements does since PostgreSQL 15), and creates or attaches
 * it in its XxxShmemInit (from shmem_startup_hook, AddinShmemInitLock
 * held).  The two hooks below are the only callers, and once every
 * structure is attached they set the readiness flag (shmem.c), which the
 * modules read.  So calls run one way: this file calls the modules, no
 * module calls back up (test/callgraph.sh fails make test on a cycle).
 *
 * Without preloading there is no shared memory: verification reads the
 * table directly, usage is not counted, failure counters and rate limits
 * are not kept.  Each module checks ApikeysSharedReady() (shmem.h).
 *
 * IDENTIFICATION
 *	  src/apikeys.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"

#include "apikeys.h"
#include "verify_cache.h"
#include "usage_counters.h"
#include "verify_credits.h"
#include "worker_dblist.h"
#include "verify_prewarm.h"
#include "usage_recent.h"
#include "shmem.h"
#include "stats.h"
#include "verify_throttle.h"
#include "usage.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * The outcome table.  authenticate (http_context.c) raises 28000 for a
 * credential that is no good, 42501 for a good one that may not do this,
 * 54000 when rate limited or out of credits; its messages name the client ID at most, never
 * the token.  pre_request (http_postgrest.c) answers 401 with WWW-Authenticate,
 * 403, or 429 with Retry-After.
 */
const ApikeysOutcome ApikeysOutcomes[APIKEYS_NUM_CODES] = {
	[APIKEYS_VALID] = {"VALID", 0, NULL, NULL, 0, NULL},
	[APIKEYS_MALFORMED] = {"MALFORMED", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
		"malformed API key", "Check that the whole token was sent, unchanged.",
	401, "The API key is malformed."},
	[APIKEYS_NOT_FOUND] = {"NOT_FOUND", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
		"invalid API key", NULL,
	401, "The API key is not valid."},
	[APIKEYS_EXPIRED] = {"EXPIRED", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
		"API key \"%s\" has expired", "Ask an administrator for a new key.",
	401, "The API key has expired."},
	[APIKEYS_DISABLED] = {"DISABLED", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
		"API key \"%s\" is disabled", NULL,
	401, "The API key is disabled."},
	[APIKEYS_REVOKED] = {"REVOKED", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
		"API key \"%s\" has been revoked", NULL,
	401, "The API key has been revoked."},
	[APIKEYS_INSUFFICIENT_SCOPE] = {"INSUFFICIENT_SCOPE", ERRCODE_INSUFFICIENT_PRIVILEGE,
		"API key \"%s\" lacks the required scope", NULL,
	403, "The API key lacks the required scope."},
	[APIKEYS_IP_NOT_ALLOWED] = {"IP_NOT_ALLOWED", ERRCODE_INSUFFICIENT_PRIVILEGE,
		"API key \"%s\" may not be used from this address", NULL,
	403, "The API key may not be used from this address."},
	[APIKEYS_RATE_LIMITED] = {"RATE_LIMITED", ERRCODE_PROGRAM_LIMIT_EXCEEDED,
		"too many requests", NULL,
	429, "Too many requests."},
	[APIKEYS_USAGE_EXCEEDED] = {"USAGE_EXCEEDED", ERRCODE_PROGRAM_LIMIT_EXCEEDED,
		"API key \"%s\" has too few credits left", "Wait for its next refill, or ask an administrator for more credits.",
	429, "The API key has used up its credits."},
};

/* ApikeysShmemRequest asks the postmaster for each module's memory and locks. */
static void
ApikeysShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	CacheShmemRequest();
	CountersShmemRequest();
	RecentShmemRequest();
	DbListShmemRequest();
	ThrottleShmemRequest();
	ClaimShmemRequest();
	CreditsShmemRequest();
	ServerStatsShmemRequest();
}

/*
 * ApikeysShmemStartup creates (postmaster) or attaches to each module's
 * shared structure, then declares shared memory ready.  It runs again
 * after a crash restart, which starts every structure afresh: usage not
 * yet flushed is lost, nothing else.
 */
static void
ApikeysShmemStartup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	CacheShmemInit();
	CountersShmemInit();
	RecentShmemInit();
	DbListShmemInit();
	ThrottleShmemInit();
	ClaimShmemInit();
	CreditsShmemInit();
	ServerStatsShmemInit();
	UsageSaveRegister();		/* usage.c: kept across a clean shutdown */
	LWLockRelease(AddinShmemInitLock);
	apikeys_shmem_ready = true;
}

/*
 * _PG_init sets up GUCs, the transaction-scoped request context, catalog
 * caches and, when preloaded, the shared-memory hooks, the cache's
 * transaction callback and the background workers.
 */
void
_PG_init(void)
{
	ApikeysDefineGucs();
	ApikeysCatalogInit();
	ApikeysContextInit();
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
