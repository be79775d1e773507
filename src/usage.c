/*-------------------------------------------------------------------------
 *
 * usage.c
 *	  Usage counters, last-used times, failure counters and rate limits.
 *
 * Hand-rolled key tables record last_used_at with an UPDATE per request:
 * a row version and WAL per request, a row lock that serialises requests
 * on a hot key, and an error in READ ONLY transactions (PostgREST GETs)
 * and on hot standbys.  Here the request path writes no table at all.
 *
 * Preloaded (shared_preload_libraries): everything lives in shared memory
 * and survives the request transaction, so a rolled-back request still
 * counts.
 *	- Per key: counts by outcome code and the last VALID use.  A key
 *	  found in the shared cache counts in its cache entry's usage slot
 *	  (cache.c: same lock, no second lookup); other keys, and the counts
 *	  of entries the cache evicts, go to a hash table of
 *	  apikeys.cache_size entries, which also holds rate-limit windows.
 *	  Counters are atomics under shared locks, so concurrent requests on
 *	  one key do not serialise.  The background worker (worker.c) moves
 *	  counts into apikeys.usage (per key, per hour, per code) and last-use
 *	  times into apikeys.keys.last_used_at every apikeys.flush_interval;
 *	  apikeys.flush_usage() does it at once.  A crash loses what was not
 *	  yet flushed (at most one interval) and nothing else.  last_used_at is
 *	  rewritten only when it moves by apikeys.last_used_granularity, so a
 *	  busy key costs one small row update per granularity, not one per
 *	  flush.  Usage is not counted during recovery (a standby cannot write
 *	  it anywhere); failure counters and rate limits are kept there too,
 *	  per server.
 *	- Per client address (IPv4 address, or IPv6 /64 network, since one
 *	  IPv6 host owns a whole /64): failed verifications in a fixed window
 *	  of apikeys.failure_window starting at the first failure.  Once
 *	  apikeys.max_failures are reached, attempts from that address answer
 *	  RATE_LIMITED until the window ends.  Client IDs are public, so the
 *	  count is never per key: a flood against a key from one address never
 *	  stops its owner elsewhere.  A single atomic "block horizon" (the
 *	  latest end of any block) lets the common case skip the address table.
 *	  Connections with no address (unix sockets) are not throttled.
 *	- Rate limits: rate_limit requests per rate_window per key, in a fixed
 *	  window starting at the first request; exceeded answers RATE_LIMITED
 *	  with the seconds until the window ends.  Only VALID-bound requests
 *	  count (the check is the last one).  Per server: a standby counts its
 *	  own.
 *	When a table is full, new keys or addresses are not tracked until the
 *	next flush frees entries (counted in apikeys.usage_stats()): rate
 *	limits of such keys are not enforced meanwhile (fail open, never a
 *	lock-out).
 *
 * Not preloaded: nothing is shared.  last_used_at is written directly,
 * at most once per key per apikeys.last_used_granularity, only from a
 * read-write transaction on a primary and never from pre_request, as the
 * extension owner, with FOR UPDATE SKIP LOCKED so a verification never
 * waits for a row lock, inside a subtransaction so that a failure there
 * never fails the verification.  Usage counts, address throttling and
 * rate limits need shared memory and are not available.
 *
 * IDENTIFICATION
 *	  src/usage.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inet.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "cache.h"
#include "catalog.h"
#include "shmem.h"
#include "usage.h"

/* Key of the per-key table: zero-padded, hashed as bytes. */
typedef struct UsageKey
{
	Oid			dbid;
	char		client_id[APIKEYS_CLIENT_ID_MAXLEN + 1];
} UsageKey;

typedef struct UsageEntry
{
	UsageKey	key;
	pg_atomic_uint32 counts[APIKEYS_NUM_CODES];
	pg_atomic_uint64 last_used;		/* 0: no VALID use since the last flush */
	int			idle_flushes;	/* flushes that found nothing to write */
	slock_t		mutex;			/* protects the rate-limit window */
	TimestampTz rl_start;
	int64		rl_window_us;
	int32		rl_count;
} UsageEntry;

/* Key of the per-address table: IPv4 address or IPv6 /64, zero-padded. */
typedef struct AddressKey
{
	uint8		family;
	uint8		addr[16];
} AddressKey;

typedef struct AddressEntry
{
	AddressKey	key;
	TimestampTz window_start;
	int64		window_us;
	int32		failures;
	pg_atomic_uint32 blocked;	/* attempts answered RATE_LIMITED */
} AddressEntry;

typedef struct UsageShared
{
	/* databases with usage not yet flushed: the launcher's worklist */
	Oid			dbids[APIKEYS_MAX_FLUSH_DATABASES];
	pg_atomic_uint32 dirty[APIKEYS_MAX_FLUSH_DATABASES];
	pg_atomic_uint64 block_horizon; /* no address is blocked at or after */
	pg_atomic_uint64 dropped_keys;	/* per-key records lost: table full */
	pg_atomic_uint64 dropped_addresses;
} UsageShared;

static UsageShared *usage_shared = NULL;
static HTAB *usage_hash = NULL;
static HTAB *address_hash = NULL;

/* Set by pre_request around its verification: never write from there. */
bool		UsageWritesSuppressed = false;

/* UsageXactCallback: a new transaction never inherits the suppression. */
static void
UsageXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT)
		UsageWritesSuppressed = false;
}

/* UsageInit registers the transaction callback (preloaded or not). */
void
UsageInit(void)
{
	RegisterXactCallback(UsageXactCallback, NULL);
}

/* cached keys count in the cache; this table holds the rest and evicted counts */
#define USAGE_MAX_KEYS()	Max(apikeys_cache_size / 4, 10000)

/* UsageShmemSize: bytes for the shared header and both hash tables. */
Size
UsageShmemSize(void)
{
	Size		size = MAXALIGN(sizeof(UsageShared));

	size = add_size(size, hash_estimate_size(USAGE_MAX_KEYS(), sizeof(UsageEntry)));
	size = add_size(size, hash_estimate_size(APIKEYS_MAX_ADDRESSES, sizeof(AddressEntry)));
	return size;
}

/* UsageShmemInit creates or attaches the tables (AddinShmemInitLock held). */
void
UsageShmemInit(void)
{
	bool		found;
	HASHCTL		info;

	usage_shared = ShmemInitStruct("apikeys usage", sizeof(UsageShared), &found);
	if (!found)
	{
		for (int i = 0; i < APIKEYS_MAX_FLUSH_DATABASES; i++)
		{
			usage_shared->dbids[i] = InvalidOid;
			pg_atomic_init_u32(&usage_shared->dirty[i], 0);
		}
		pg_atomic_init_u64(&usage_shared->block_horizon, 0);
		pg_atomic_init_u64(&usage_shared->dropped_keys, 0);
		pg_atomic_init_u64(&usage_shared->dropped_addresses, 0);
	}

	info.keysize = sizeof(UsageKey);
	info.entrysize = sizeof(UsageEntry);
	usage_hash = ShmemInitHash("apikeys usage by key",
							   USAGE_MAX_KEYS(), USAGE_MAX_KEYS(),
							   &info, HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);

	info.keysize = sizeof(AddressKey);
	info.entrysize = sizeof(AddressEntry);
	address_hash = ShmemInitHash("apikeys failures by address",
								 APIKEYS_MAX_ADDRESSES, APIKEYS_MAX_ADDRESSES,
								 &info, HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
}

static inline bool
SharedReady(void)
{
	return apikeys_shmem_ready && usage_hash != NULL;
}

/* MakeUsageKeyDb fills a zero-padded key. */
static bool
MakeUsageKeyDb(Oid dbid, const char *client_id, int len, UsageKey *k)
{
	if (len <= 0 || len > APIKEYS_CLIENT_ID_MAXLEN)
		return false;
	memset(k, 0, sizeof(UsageKey));
	k->dbid = dbid;
	memcpy(k->client_id, client_id, len);
	return true;
}

/* MakeUsageKey fills a zero-padded key for the current database. */
static inline bool
MakeUsageKey(const char *client_id, int len, UsageKey *k)
{
	return MakeUsageKeyDb(MyDatabaseId, client_id, len, k);
}

/*
 * UsageEntryAcquire finds the key's entry, creating it if needed, and
 * returns it with the usage lock held (shared when it existed, exclusive
 * when it was created).  NULL when the table is full (lock released).
 */
static UsageEntry *
UsageEntryAcquire(const UsageKey *k)
{
	LWLock	   *lock = &apikeys_locks[APIKEYS_LOCK_USAGE].lock;
	UsageEntry *e;
	bool		found;

	LWLockAcquire(lock, LW_SHARED);
	e = hash_search(usage_hash, k, HASH_FIND, NULL);
	if (e != NULL)
		return e;
	LWLockRelease(lock);

	LWLockAcquire(lock, LW_EXCLUSIVE);
	e = hash_search(usage_hash, k, HASH_ENTER_NULL, &found);
	if (e == NULL)
	{
		LWLockRelease(lock);
		pg_atomic_fetch_add_u64(&usage_shared->dropped_keys, 1);
		return NULL;
	}
	if (!found)
	{
		for (int i = 0; i < APIKEYS_NUM_CODES; i++)
			pg_atomic_init_u32(&e->counts[i], 0);
		pg_atomic_init_u64(&e->last_used, 0);
		e->idle_flushes = 0;
		SpinLockInit(&e->mutex);
		e->rl_start = 0;
		e->rl_window_us = 0;
		e->rl_count = 0;
	}
	return e;
}

static inline void
UsageEntryRelease(void)
{
	LWLockRelease(&apikeys_locks[APIKEYS_LOCK_USAGE].lock);
}

/*
 * DatabaseSlot finds (or claims) dbid's slot in the launcher's worklist;
 * -1 when more than APIKEYS_MAX_FLUSH_DATABASES databases use the
 * extension (their usage is then flushed only by apikeys.flush_usage()).
 */
static int
DatabaseSlot(Oid dbid)
{
	static Oid	cached_db = InvalidOid;
	static int	cached_slot = -1;
	int			slot = -1;

	if (dbid == cached_db && cached_slot >= 0)
		return cached_slot;
	LWLockAcquire(&apikeys_locks[APIKEYS_LOCK_USAGE].lock, LW_EXCLUSIVE);
	for (int i = 0; i < APIKEYS_MAX_FLUSH_DATABASES && slot < 0; i++)
		if (usage_shared->dbids[i] == dbid)
			slot = i;
	for (int i = 0; i < APIKEYS_MAX_FLUSH_DATABASES && slot < 0; i++)
		if (usage_shared->dbids[i] == InvalidOid)
		{
			usage_shared->dbids[i] = dbid;
			slot = i;
		}
	LWLockRelease(&apikeys_locks[APIKEYS_LOCK_USAGE].lock);
	if (dbid == MyDatabaseId)
	{
		cached_db = dbid;
		cached_slot = slot;
	}
	return slot;
}

/* MarkDirty puts dbid on the launcher's worklist (one read when it is). */
static inline void
MarkDirty(Oid dbid)
{
	int			slot = DatabaseSlot(dbid);

	if (slot >= 0 && pg_atomic_read_u32(&usage_shared->dirty[slot]) == 0)
		pg_atomic_write_u32(&usage_shared->dirty[slot], 1);
}

/* MakeAddressKey: the tracked unit of an inet (IPv6 cut to its /64). */
static void
MakeAddressKey(Datum addr, AddressKey *k)
{
	inet	   *ip = DatumGetInetPP(addr);

	memset(k, 0, sizeof(AddressKey));
	k->family = ip_family(ip);
	if (k->family == PGSQL_AF_INET)
		memcpy(k->addr, ip_addr(ip), 4);
	else
		memcpy(k->addr, ip_addr(ip), 8);
}

/* SecondsUntil: whole seconds from now until t, at least 1. */
static int
SecondsUntil(TimestampTz t, TimestampTz now)
{
	int64		us = t - now;

	return (int) Max(1, (us + USECS_PER_SEC - 1) / USECS_PER_SEC);
}

/*
 * UsageAddressBlocked: has this address used up its failures?  Sets
 * *retry_after to the seconds until its window ends.
 */
bool
UsageAddressBlocked(bool ip_known, Datum addr, int *retry_after)
{
	TimestampTz now;
	AddressKey	k;
	AddressEntry *e;
	bool		blocked = false;

	if (!ip_known || !SharedReady())
		return false;
	now = GetCurrentTimestamp();
	if ((uint64) now >= pg_atomic_read_u64(&usage_shared->block_horizon))
		return false;			/* nobody is blocked: the common case */

	MakeAddressKey(addr, &k);
	LWLockAcquire(&apikeys_locks[APIKEYS_LOCK_ADDRESSES].lock, LW_SHARED);
	e = hash_search(address_hash, &k, HASH_FIND, NULL);
	if (e != NULL && e->failures >= apikeys_max_failures &&
		now < e->window_start + e->window_us)
	{
		blocked = true;
		*retry_after = SecondsUntil(e->window_start + e->window_us, now);
		pg_atomic_fetch_add_u32(&e->blocked, 1);
	}
	LWLockRelease(&apikeys_locks[APIKEYS_LOCK_ADDRESSES].lock);
	return blocked;
}

/*
 * SweepAddresses removes entries whose window has passed, to make room
 * (address lock held exclusively).
 */
static void
SweepAddresses(TimestampTz now)
{
	HASH_SEQ_STATUS st;
	AddressEntry *e;

	hash_seq_init(&st, address_hash);
	while ((e = hash_seq_search(&st)) != NULL)
		if (now >= e->window_start + e->window_us)
			hash_search(address_hash, &e->key, HASH_REMOVE, NULL);
}

/* CountCode adds one outcome to a key's counters (not during recovery). */
static void
CountCode(const char *client_id, int len, ApikeysCode code, TimestampTz now)
{
	UsageKey	k;
	UsageEntry *e;

	if (RecoveryInProgress())
		return;
	MarkDirty(MyDatabaseId);
	/* the common case: the key was just found in the shared cache */
	if (CacheCountUsage(client_id, len, code, now))
		return;
	if (!MakeUsageKey(client_id, len, &k))
		return;
	e = UsageEntryAcquire(&k);
	if (e == NULL)
		return;
	pg_atomic_fetch_add_u32(&e->counts[code], 1);
	if (code == APIKEYS_VALID &&
		(uint64) now > pg_atomic_read_u64(&e->last_used))
		pg_atomic_write_u64(&e->last_used, (uint64) now);
	UsageEntryRelease();
}

/*
 * UsageAddCounts adds counts and a last-use time to a key's entry; the
 * cache calls it for an entry it evicts or invalidates (in whatever
 * database the evicting backend is), so no count is lost.
 */
void
UsageAddCounts(Oid dbid, const char *client_id, int len,
			   const uint32 *counts, TimestampTz last_used)
{
	UsageKey	k;
	UsageEntry *e;

	if (!SharedReady() || !MakeUsageKeyDb(dbid, client_id, len, &k))
		return;
	/* called under a cache partition lock: the order is partition, usage */
	MarkDirty(dbid);
	e = UsageEntryAcquire(&k);
	if (e == NULL)
		return;
	for (int c = 0; c < APIKEYS_NUM_CODES; c++)
		if (counts[c] != 0)
			pg_atomic_fetch_add_u32(&e->counts[c], counts[c]);
	if (last_used != 0 && (uint64) last_used > pg_atomic_read_u64(&e->last_used))
		pg_atomic_write_u64(&e->last_used, (uint64) last_used);
	UsageEntryRelease();
}

/*
 * UsageRecordFailure counts a NOT_FOUND: against the key when the client
 * ID exists (usage, per outcome), and against the client address.  Both
 * are in shared memory, so the count survives the request's rollback.
 */
void
UsageRecordFailure(const char *client_id, int cid_len, bool ip_known, Datum addr)
{
	TimestampTz now;
	AddressKey	k;
	AddressEntry *e;
	bool		found;
	LWLock	   *lock;

	if (!SharedReady())
		return;
	now = GetCurrentTimestamp();
	if (client_id != NULL)
		CountCode(client_id, cid_len, APIKEYS_NOT_FOUND, now);
	if (!ip_known)
		return;

	MakeAddressKey(addr, &k);
	lock = &apikeys_locks[APIKEYS_LOCK_ADDRESSES].lock;
	LWLockAcquire(lock, LW_EXCLUSIVE);
	e = hash_search(address_hash, &k, HASH_ENTER_NULL, &found);
	if (e == NULL)
	{
		SweepAddresses(now);
		e = hash_search(address_hash, &k, HASH_ENTER_NULL, &found);
	}
	if (e == NULL)
	{
		LWLockRelease(lock);
		pg_atomic_fetch_add_u64(&usage_shared->dropped_addresses, 1);
		return;
	}
	if (!found)
	{
		e->failures = 0;
		e->window_start = now;
		e->window_us = (int64) apikeys_failure_window * USECS_PER_SEC;
		pg_atomic_init_u32(&e->blocked, 0);
	}
	else if (now >= e->window_start + e->window_us)
	{
		e->failures = 0;
		e->window_start = now;
		e->window_us = (int64) apikeys_failure_window * USECS_PER_SEC;
		pg_atomic_write_u32(&e->blocked, 0);
	}
	e->failures++;
	if (e->failures >= apikeys_max_failures)
	{
		uint64		until = (uint64) (e->window_start + e->window_us);
		uint64		cur = pg_atomic_read_u64(&usage_shared->block_horizon);

		while (cur < until &&
			   !pg_atomic_compare_exchange_u64(&usage_shared->block_horizon, &cur, until))
			;
	}
	LWLockRelease(lock);
}

/*
 * UsageRateLimited: is this request over the key's limit?  Counts it
 * when it is not, and sets *retry_after when it is.
 */
bool
UsageRateLimited(const char *client_id, int32 limit, int64 window_us, int *retry_after)
{
	UsageKey	k;
	UsageEntry *e;
	TimestampTz now;
	bool		limited = false;

	if (!SharedReady() || limit <= 0 || window_us <= 0 ||
		!MakeUsageKey(client_id, strlen(client_id), &k))
		return false;
	e = UsageEntryAcquire(&k);
	if (e == NULL)
		return false;			/* table full: fail open until the next flush */
	now = GetCurrentTimestamp();
	SpinLockAcquire(&e->mutex);
	if (e->rl_start == 0 || window_us != e->rl_window_us ||
		now >= e->rl_start + e->rl_window_us)
	{
		e->rl_start = now;
		e->rl_window_us = window_us;
		e->rl_count = 0;
	}
	if (e->rl_count >= limit)
	{
		limited = true;
		*retry_after = SecondsUntil(e->rl_start + e->rl_window_us, now);
	}
	else
		e->rl_count++;
	SpinLockRelease(&e->mutex);
	UsageEntryRelease();
	return limited;
}

/*
 * LastUsedWriteDirect is the non-preloaded last-used write: at most once
 * per key per apikeys.last_used_granularity, read-write primary
 * transactions only, never from pre_request, never waiting on a lock.
 */
static void
LastUsedWriteDirect(const KeyInfo *key, TimestampTz now)
{
	static SPIPlanPtr plan = NULL;
	Oid			save_userid;
	int			save_sec;
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	int64		gran = (int64) apikeys_last_used_granularity * USECS_PER_SEC;
	Datum		args[3];

	if (UsageWritesSuppressed || XactReadOnly || RecoveryInProgress() ||
		IsInParallelMode())
		return;
	if (key->has_last_used && now - key->last_used_at < gran)
		return;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		SetUserIdAndSecContext(ApikeysExtensionOwner(),
							   save_sec | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (plan == NULL)
		{
			Oid			types[3] = {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
			SPIPlanPtr	p = SPI_prepare(
				"UPDATE apikeys.keys k SET last_used_at = $2 "
				"  FROM (SELECT l.client_id FROM apikeys.keys l "
				"         WHERE l.client_id OPERATOR(pg_catalog.=) $1 "
				"           AND (l.last_used_at IS NULL OR l.last_used_at OPERATOR(pg_catalog.<) $3) "
				"         FOR UPDATE SKIP LOCKED) s "
				" WHERE k.client_id OPERATOR(pg_catalog.=) s.client_id",
				3, types);

			if (p == NULL || SPI_keepplan(p) != 0)
				elog(ERROR, "could not prepare the last-used update");
			plan = p;
		}
		args[0] = CStringGetTextDatum(key->client_id);
		args[1] = TimestampTzGetDatum(now);
		args[2] = TimestampTzGetDatum(now - gran);
		if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "last-used update failed");
		SPI_finish();
		SetUserIdAndSecContext(save_userid, save_sec);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		/* e.g. a serialization failure in REPEATABLE READ: skip, never fail */
		MemoryContextSwitchTo(oldcxt);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		SetUserIdAndSecContext(save_userid, save_sec);
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();
}

/*
 * UsageRecord notes the outcome of a verification whose secret matched:
 * counted per key and code in shared memory when preloaded, last_used_at
 * written directly (rarely) when not.
 */
void
UsageRecord(const KeyInfo *key, ApikeysCode code, TimestampTz now)
{
	if (SharedReady())
		CountCode(key->client_id, strlen(key->client_id), code, now);
	else if (code == APIKEYS_VALID)
		LastUsedWriteDirect(key, now);
}

/*
 * UsageDatabasesPending lists (up to max) databases with unflushed usage,
 * for the background worker to visit.
 */
int
UsageDatabasesPending(Oid *dbids, int max)
{
	int			n = 0;

	if (!SharedReady())
		return 0;
	for (int i = 0; i < APIKEYS_MAX_FLUSH_DATABASES && n < max; i++)
	{
		Oid			db = usage_shared->dbids[i];

		if (db != InvalidOid && pg_atomic_exchange_u32(&usage_shared->dirty[i], 0) != 0)
			dbids[n++] = db;
	}
	return n;
}

/* A key's unflushed numbers, gathered from the cache and the table. */
typedef struct FlushItem
{
	char		client_id[APIKEYS_CLIENT_ID_MAXLEN + 1];	/* hash key */
	uint64		counts[APIKEYS_NUM_CODES];
	TimestampTz last_used;		/* 0: nothing new */
} FlushItem;

/* FlushAccumulate adds one source's numbers for a key to the flush. */
static void
FlushAccumulate(const char *client_id, int len, const uint32 *counts,
				TimestampTz last_used, void *arg)
{
	HTAB	   *items = (HTAB *) arg;
	char		key[APIKEYS_CLIENT_ID_MAXLEN + 1] = {0};
	FlushItem  *it;
	bool		found;

	if (len <= 0 || len > APIKEYS_CLIENT_ID_MAXLEN)
		return;
	memcpy(key, client_id, len);
	it = hash_search(items, key, HASH_ENTER, &found);
	if (!found)
	{
		memset(it->counts, 0, sizeof(it->counts));
		it->last_used = 0;
	}
	for (int c = 0; c < APIKEYS_NUM_CODES; c++)
		it->counts[c] += counts[c];
	if (last_used > it->last_used)
		it->last_used = last_used;
}

/* RestoreLastUsed hands a last-used time back for the next flush. */
static void
RestoreLastUsed(const char *client_id, TimestampTz t)
{
	UsageKey	k;
	UsageEntry *e;

	if (!MakeUsageKey(client_id, strlen(client_id), &k))
		return;
	MarkDirty(MyDatabaseId);
	e = UsageEntryAcquire(&k);
	if (e == NULL)
		return;
	if ((uint64) t > pg_atomic_read_u64(&e->last_used))
		pg_atomic_write_u64(&e->last_used, (uint64) t);
	UsageEntryRelease();
}

/*
 * UsageFlushDatabase moves this database's counts into apikeys.usage and
 * last-use times into apikeys.keys, in the current transaction, as the
 * extension owner.  Returns the number of usage rows written.  Counts are
 * taken out of shared memory first: if the transaction fails they are
 * lost (at most one interval), never counted twice.
 */
int64
UsageFlushDatabase(void)
{
	HASH_SEQ_STATUS st;
	HASH_SEQ_STATUS fst;
	UsageEntry *e;
	HTAB	   *items;
	FlushItem  *it;
	long		nitems;
	TimestampTz now = GetCurrentTimestamp();
	Datum	   *u_cid,
			   *u_code,
			   *u_count,
			   *l_cid,
			   *l_time;
	int			nu = 0,
				nl = 0;
	int64		written = 0;
	Oid			save_userid;
	int			save_sec;
	int			guc_nest;

	if (!SharedReady())
		return 0;
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot flush API key usage during recovery"),
				 errhint("Usage is flushed on the primary; a standby does not count it.")));
	(void) ApikeysKeysRelid();	/* the extension must be installed here */

	{
		HASHCTL		ctl;

		ctl.keysize = APIKEYS_CLIENT_ID_MAXLEN + 1;
		ctl.entrysize = sizeof(FlushItem);
		ctl.hcxt = CurrentMemoryContext;
		items = hash_create("apikeys usage flush", 1024, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}

	/* keys in the cache count in its slots; the others in our table */
	CacheDrainUsage(MyDatabaseId, FlushAccumulate, items);

	LWLockAcquire(&apikeys_locks[APIKEYS_LOCK_USAGE].lock, LW_EXCLUSIVE);
	hash_seq_init(&st, usage_hash);
	while ((e = hash_seq_search(&st)) != NULL)
	{
		uint32		counts[APIKEYS_NUM_CODES];
		bool		any = false;
		TimestampTz lu;

		if (e->key.dbid != MyDatabaseId)
			continue;
		for (int c = 0; c < APIKEYS_NUM_CODES; c++)
		{
			counts[c] = pg_atomic_exchange_u32(&e->counts[c], 0);
			any |= counts[c] != 0;
		}
		lu = (TimestampTz) pg_atomic_exchange_u64(&e->last_used, 0);
		if (any || lu != 0)
		{
			FlushAccumulate(e->key.client_id, strlen(e->key.client_id), counts, lu, items);
			e->idle_flushes = 0;
		}
		else if (++e->idle_flushes >= 2 &&
				 (e->rl_start == 0 || now >= e->rl_start + e->rl_window_us))
			hash_search(usage_hash, &e->key, HASH_REMOVE, NULL);
	}
	LWLockRelease(&apikeys_locks[APIKEYS_LOCK_USAGE].lock);

	nitems = hash_get_num_entries(items);
	if (nitems == 0)
	{
		hash_destroy(items);
		return 0;
	}

	u_cid = palloc_extended(sizeof(Datum) * (Size) nitems * APIKEYS_NUM_CODES, MCXT_ALLOC_HUGE);
	u_code = palloc_extended(sizeof(Datum) * (Size) nitems * APIKEYS_NUM_CODES, MCXT_ALLOC_HUGE);
	u_count = palloc_extended(sizeof(Datum) * (Size) nitems * APIKEYS_NUM_CODES, MCXT_ALLOC_HUGE);
	l_cid = palloc_extended(sizeof(Datum) * (Size) nitems, MCXT_ALLOC_HUGE);
	l_time = palloc_extended(sizeof(Datum) * (Size) nitems, MCXT_ALLOC_HUGE);
	hash_seq_init(&fst, items);
	while ((it = hash_seq_search(&fst)) != NULL)
	{
		Datum		cid = CStringGetTextDatum(it->client_id);

		for (int c = 0; c < APIKEYS_NUM_CODES; c++)
		{
			if (it->counts[c] == 0)
				continue;
			u_cid[nu] = cid;
			u_code[nu] = CStringGetTextDatum(ApikeysCodeNames[c]);
			u_count[nu] = Int64GetDatum((int64) it->counts[c]);
			nu++;
		}
		if (it->last_used != 0)
		{
			l_cid[nl] = cid;
			l_time[nl] = TimestampTzGetDatum(it->last_used);
			nl++;
		}
	}

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(ApikeysExtensionOwner(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);

	/*
	 * The flush changes nothing but last_used_at, which the audit trigger
	 * ignores; yet as a PL/pgSQL row trigger it would cost tens of
	 * microseconds per key (to_jsonb of both row versions).  Run the
	 * writes with session_replication_role = replica, undone when we are
	 * done even inside a caller's transaction: ordinary triggers skip,
	 * the cache trigger (ENABLE ALWAYS) still fires and ignores the change.
	 */
	guc_nest = NewGUCNestLevel();
	(void) set_config_option("session_replication_role", "replica",
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());

	if (nu > 0)
	{
		Oid			types[3] = {TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID};
		Datum		args[3];

		args[0] = PointerGetDatum(construct_array(u_cid, nu, TEXTOID, -1, false, TYPALIGN_INT));
		args[1] = PointerGetDatum(construct_array(u_code, nu, TEXTOID, -1, false, TYPALIGN_INT));
		args[2] = PointerGetDatum(construct_array(u_count, nu, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		if (SPI_execute_with_args(
			"INSERT INTO apikeys.usage AS u (client_id, hour, code, count) "
			"SELECT v.c, pg_catalog.date_trunc('hour', pg_catalog.now()), v.o, v.n "
			"  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) AS v(c, o, n) "
			"ON CONFLICT ON CONSTRAINT usage_pkey DO UPDATE "
			"   SET count = u.count OPERATOR(pg_catalog.+) EXCLUDED.count",
			3, types, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not write API key usage");
		written = SPI_processed;
	}

	if (nl > 0)
	{
		Oid			types[3] = {TEXTARRAYOID, TIMESTAMPTZARRAYOID, INTERVALOID};
		Datum		args[3];
		Interval   *gran = palloc0(sizeof(Interval));

		gran->time = (int64) apikeys_last_used_granularity * USECS_PER_SEC;
		args[0] = PointerGetDatum(construct_array(l_cid, nl, TEXTOID, -1, false, TYPALIGN_INT));
		args[1] = PointerGetDatum(construct_array(l_time, nl, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[2] = IntervalPGetDatum(gran);

		/*
		 * Rows locked by an admin change are skipped (never wait, never
		 * deadlock) and their times handed back for the next flush.
		 */
		if (SPI_execute_with_args(
			"WITH v AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS v(c, t)), "
			"l AS (SELECT k.client_id FROM apikeys.keys k JOIN v "
			"        ON k.client_id OPERATOR(pg_catalog.=) v.c "
			"      WHERE k.last_used_at IS NULL "
			"         OR k.last_used_at OPERATOR(pg_catalog.<=) (v.t OPERATOR(pg_catalog.-) $3) "
			"      ORDER BY k.client_id FOR UPDATE OF k SKIP LOCKED), "
			"u AS (UPDATE apikeys.keys k SET last_used_at = v.t FROM v, l "
			"       WHERE k.client_id OPERATOR(pg_catalog.=) l.client_id "
			"         AND v.c OPERATOR(pg_catalog.=) l.client_id RETURNING k.client_id) "
			"SELECT v.c, v.t FROM v "
			" WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.client_id OPERATOR(pg_catalog.=) v.c) "
			"   AND EXISTS (SELECT 1 FROM apikeys.keys k "
			"                WHERE k.client_id OPERATOR(pg_catalog.=) v.c "
			"                  AND (k.last_used_at IS NULL OR "
			"                       k.last_used_at OPERATOR(pg_catalog.<=) (v.t OPERATOR(pg_catalog.-) $3)))",
			3, types, args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not write API key last-use times");
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			bool		n1,
						n2;
			Datum		c = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &n1);
			Datum		t = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &n2);

			if (!n1 && !n2)
				RestoreLastUsed(TextDatumGetCString(c), DatumGetTimestampTz(t));
		}
	}

	PopActiveSnapshot();
	SPI_finish();
	AtEOXact_GUC(true, guc_nest);
	SetUserIdAndSecContext(save_userid, save_sec);
	return written;
}

/*
 * UsageDiscardDatabase drops the entries of the current database, where
 * the extension is no longer installed (nothing to flush them into).
 */
void
UsageDiscardDatabase(void)
{
	HASH_SEQ_STATUS st;
	UsageEntry *e;

	if (!SharedReady())
		return;
	LWLockAcquire(&apikeys_locks[APIKEYS_LOCK_USAGE].lock, LW_EXCLUSIVE);
	hash_seq_init(&st, usage_hash);
	while ((e = hash_seq_search(&st)) != NULL)
		if (e->key.dbid == MyDatabaseId)
			hash_search(usage_hash, &e->key, HASH_REMOVE, NULL);
	LWLockRelease(&apikeys_locks[APIKEYS_LOCK_USAGE].lock);
}

PG_FUNCTION_INFO_V1(apikeys_flush_usage);
PG_FUNCTION_INFO_V1(apikeys_failing_addresses);
PG_FUNCTION_INFO_V1(apikeys_usage_stats);
PG_FUNCTION_INFO_V1(apikeys_preloaded_fn);

/*
 * SQL function: apikeys.flush_usage() returns bigint
 *
 * Writes this database's usage and last-use times now (the background
 * worker does it every apikeys.flush_interval).  Returns the usage rows
 * written; 0 when the library is not preloaded (nothing is counted).
 */
Datum
apikeys_flush_usage(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(UsageFlushDatabase());
}

/* InetFromKey rebuilds an inet (an address or a /64) for display. */
static Datum
InetFromKey(const AddressKey *k)
{
	inet	   *ip = palloc0(sizeof(inet));

	ip_family(ip) = k->family;
	if (k->family == PGSQL_AF_INET)
	{
		ip_bits(ip) = 32;
		memcpy(ip_addr(ip), k->addr, 4);
	}
	else
	{
		ip_bits(ip) = 64;
		memcpy(ip_addr(ip), k->addr, 16);
	}
	SET_INET_VARSIZE(ip);
	return InetPGetDatum(ip);
}

/*
 * SQL function: apikeys._failing_addresses() returns setof record
 *	 (address inet, failures integer, window_start timestamptz,
 *	  window_end timestamptz, blocked boolean, blocked_attempts bigint)
 *
 * The addresses with failed verifications in their current window; the
 * view apikeys.failing_addresses orders them, noisiest first.
 */
Datum
apikeys_failing_addresses(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS st;
	AddressEntry *e;
	TimestampTz now = GetCurrentTimestamp();

	InitMaterializedSRF(fcinfo, 0);
	if (!SharedReady())
		return (Datum) 0;

	LWLockAcquire(&apikeys_locks[APIKEYS_LOCK_ADDRESSES].lock, LW_SHARED);
	hash_seq_init(&st, address_hash);
	while ((e = hash_seq_search(&st)) != NULL)
	{
		Datum		values[6];
		bool		nulls[6] = {false};

		if (now >= e->window_start + e->window_us)
			continue;
		values[0] = InetFromKey(&e->key);
		values[1] = Int32GetDatum(e->failures);
		values[2] = TimestampTzGetDatum(e->window_start);
		values[3] = TimestampTzGetDatum(e->window_start + e->window_us);
		values[4] = BoolGetDatum(e->failures >= apikeys_max_failures);
		values[5] = Int64GetDatum((int64) pg_atomic_read_u32(&e->blocked));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(&apikeys_locks[APIKEYS_LOCK_ADDRESSES].lock);
	return (Datum) 0;
}

/*
 * SQL function: apikeys.usage_stats() returns record
 *	 (preloaded, tracked_keys, key_capacity, tracked_addresses,
 *	  address_capacity, dropped_keys, dropped_addresses, shared_bytes)
 */
Datum
apikeys_usage_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8] = {false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = BoolGetDatum(SharedReady());
	if (!SharedReady())
	{
		for (int i = 1; i < 8; i++)
			nulls[i] = true;
	}
	else
	{
		LWLockAcquire(&apikeys_locks[APIKEYS_LOCK_USAGE].lock, LW_SHARED);
		values[1] = Int64GetDatum(hash_get_num_entries(usage_hash));
		LWLockRelease(&apikeys_locks[APIKEYS_LOCK_USAGE].lock);
		values[2] = Int64GetDatum(USAGE_MAX_KEYS());
		LWLockAcquire(&apikeys_locks[APIKEYS_LOCK_ADDRESSES].lock, LW_SHARED);
		values[3] = Int64GetDatum(hash_get_num_entries(address_hash));
		LWLockRelease(&apikeys_locks[APIKEYS_LOCK_ADDRESSES].lock);
		values[4] = Int64GetDatum(APIKEYS_MAX_ADDRESSES);
		values[5] = Int64GetDatum((int64) pg_atomic_read_u64(&usage_shared->dropped_keys));
		values[6] = Int64GetDatum((int64) pg_atomic_read_u64(&usage_shared->dropped_addresses));
		values[7] = Int64GetDatum((int64) UsageShmemSize());
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * SQL function: apikeys._preloaded() returns boolean
 *
 * Is the library in shared_preload_libraries (with shared memory)?  Used
 * to warn that rate limits are not enforced otherwise.
 */
Datum
apikeys_preloaded_fn(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(SharedReady());
}
