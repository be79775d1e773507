/*-------------------------------------------------------------------------
 *
 * usage.c
 *	  Usage counters and last-used times.
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
 *	  a quarter of apikeys.cache_size entries (at least 10,000).
 *	  Counters are atomics under shared locks, so concurrent requests on
 *	  one key do not serialise.  The background worker (worker.c) moves
 *	  counts into apikeys.usage (per key, per hour, per code) and last-use
 *	  times into apikeys.keys.last_used_at every apikeys.flush_interval;
 *	  apikeys.flush_usage() does it at once.  A crash loses what was not
 *	  yet flushed (at most one interval) and nothing else.  last_used_at is
 *	  rewritten only when it moves by apikeys.last_used_granularity, so a
 *	  busy key costs one small row update per granularity, not one per
 *	  flush.  Usage is not counted during recovery (a standby cannot write
 *	  it anywhere).
 *	Failed verifications per client address and per-key rate-limit
 *	windows, which can answer RATE_LIMITED, are in throttle.c (kept on a
 *	standby too, per server).
 *	When the per-key table is full, new keys are not counted until the
 *	next flush frees entries (counted in apikeys.usage_stats()).
 *
 * Not preloaded: nothing is shared.  last_used_at is written directly,
 * at most once per key per apikeys.last_used_granularity, only from a
 * read-write transaction on a primary and never from pre_request, as the
 * extension owner, with FOR UPDATE SKIP LOCKED so a verification never
 * waits for a row lock, inside a subtransaction so that a failure there
 * never fails the verification.  Usage counts, address throttling and
 * rate limits (throttle.c) need shared memory and are not available.
 *
 * IDENTIFICATION
 *	  src/usage.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

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
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "cache.h"
#include "catalog.h"
#include "shmem.h"
#include "throttle.h"
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
} UsageEntry;

typedef struct UsageShared
{
	/* databases with usage not yet flushed: the launcher's worklist */
	Oid			dbids[APIKEYS_MAX_FLUSH_DATABASES];
	pg_atomic_uint32 dirty[APIKEYS_MAX_FLUSH_DATABASES];
	/* oldest row of each database's usage journal (0: none known) */
	pg_atomic_uint64 journal_since[APIKEYS_MAX_FLUSH_DATABASES];
	/* the recent-use table filled up: roll up at the next visit */
	pg_atomic_uint32 rollup_wanted[APIKEYS_MAX_FLUSH_DATABASES];
	pg_atomic_uint64 dropped_keys;	/* per-key records lost: table full */
} UsageShared;

/*
 * Last-use times written to the usage journal but not yet rolled up into
 * apikeys.keys, for key_list (keyed like the per-key table).
 */
typedef struct RecentEntry
{
	UsageKey	key;
	TimestampTz last_used;
} RecentEntry;

static UsageShared *usage_shared = NULL;
static HTAB *usage_hash = NULL;
static HTAB *recent_hash = NULL;

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

/*
 * the last-use times of every key used between two rollups: as many as
 * the cache holds (sized for the active keys), so that a full table, which
 * makes the worker roll up early, means more active keys than planned
 */
#define RECENT_MAX_KEYS()	Max(apikeys_cache_size, 10000)

/* UsageShmemSize: bytes for the shared header and both hash tables. */
Size
UsageShmemSize(void)
{
	Size		size = MAXALIGN(sizeof(UsageShared));

	size = add_size(size, hash_estimate_size(USAGE_MAX_KEYS(), sizeof(UsageEntry)));
	size = add_size(size, hash_estimate_size(RECENT_MAX_KEYS(), sizeof(RecentEntry)));
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
			pg_atomic_init_u64(&usage_shared->journal_since[i], 0);
			pg_atomic_init_u32(&usage_shared->rollup_wanted[i], 0);
		}
		pg_atomic_init_u64(&usage_shared->dropped_keys, 0);
	}

	info.keysize = sizeof(UsageKey);
	info.entrysize = sizeof(UsageEntry);
	usage_hash = ShmemInitHash("apikeys usage by key",
							   USAGE_MAX_KEYS(), USAGE_MAX_KEYS(),
							   &info, HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);

	info.keysize = sizeof(UsageKey);
	info.entrysize = sizeof(RecentEntry);
	recent_hash = ShmemInitHash("apikeys recent use by key",
								RECENT_MAX_KEYS(), RECENT_MAX_KEYS(),
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
 * UsageRecordFailure counts a NOT_FOUND against the key, when the client
 * ID exists (usage, per outcome), in shared memory, so the count survives
 * the request's rollback.  The address is counted by throttle.c.
 */
void
UsageRecordFailure(const char *client_id, int cid_len)
{
	if (!SharedReady() || client_id == NULL)
		return;
	CountCode(client_id, cid_len, APIKEYS_NOT_FOUND, GetCurrentTimestamp());
}

/*
 * LastUsedWriteDirect is the non-preloaded last-used write: at most once
 * per key per apikeys.last_used_granularity, read-write primary
 * transactions only, never from pre_request, never waiting long on a lock
 * (row locks: SKIP LOCKED; table locks: apikeys.lock_timeout, then skipped).
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
		/* a table lock (CREATE INDEX's SHARE) must not hold the request */
		(void) LookupLockTimeoutBegin();	/* unwound with the subtransaction */
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
 * UsageDatabasesPending lists (up to max) databases for the background
 * worker to visit: those with unflushed usage, and those whose usage
 * journal is due for a rollup (its oldest row is from an earlier hour, or
 * the recent-use table filled up), with rollup[i] set.
 */
int
UsageDatabasesPending(Oid *dbids, bool *rollup, int max)
{
	int			n = 0;
	uint64		this_hour = (uint64) GetCurrentTimestamp() / USECS_PER_HOUR;

	if (!SharedReady())
		return 0;
	for (int i = 0; i < APIKEYS_MAX_FLUSH_DATABASES && n < max; i++)
	{
		Oid			db = usage_shared->dbids[i];
		uint64		since;
		bool		due;
		bool		dirty;

		if (db == InvalidOid)
			continue;
		since = pg_atomic_read_u64(&usage_shared->journal_since[i]);
		due = (since != 0 && since / USECS_PER_HOUR < this_hour) ||
			pg_atomic_read_u32(&usage_shared->rollup_wanted[i]) != 0;
		dirty = pg_atomic_exchange_u32(&usage_shared->dirty[i], 0) != 0;
		if (dirty || due)
		{
			dbids[n] = db;
			rollup[n] = due;
			n++;
		}
	}
	return n;
}

/* UsageItemsCreate: an empty set of per-key, per-hour numbers. */
HTAB *
UsageItemsCreate(void)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(UsageItemKey);
	ctl.entrysize = sizeof(UsageItem);
	ctl.hcxt = CurrentMemoryContext;
	return hash_create("apikeys usage items", 1024, &ctl,
					   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* UsageItemAdd adds one source's numbers for a key and hour to a set. */
void
UsageItemAdd(HTAB *items, const char *client_id, int len, TimestampTz hour,
			 const uint64 *counts, TimestampTz last_used)
{
	UsageItemKey key;
	UsageItem  *it;
	bool		found;

	if (len <= 0 || len > APIKEYS_CLIENT_ID_MAXLEN)
		return;
	memset(&key, 0, sizeof(key));
	memcpy(key.client_id, client_id, len);
	key.hour = hour;
	it = hash_search(items, &key, HASH_ENTER, &found);
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

/* UsageItemSinkAdd adds a key's numbers to sink's items under sink's hour. */
void
UsageItemSinkAdd(const char *client_id, int len, const uint64 *counts,
				 TimestampTz last_used, void *sink)
{
	UsageItemSink *s = (UsageItemSink *) sink;

	UsageItemAdd(s->items, client_id, len, s->hour, counts, last_used);
}

/* CollectOne: UsageItemSinkAdd for the 32-bit counters of shared memory. */
static void
CollectOne(const char *client_id, int len, const uint32 *counts,
		   TimestampTz last_used, void *sink)
{
	uint64		c64[APIKEYS_NUM_CODES];

	for (int c = 0; c < APIKEYS_NUM_CODES; c++)
		c64[c] = counts[c];
	UsageItemSinkAdd(client_id, len, c64, last_used, sink);
}

/*
 * UsageCollect takes this database's counts and last-use times out of
 * shared memory (the cache's slots and the per-key table) into items,
 * all under the given hour.  Counts are taken, not copied: if the
 * caller's transaction fails they are lost (at most one interval), never
 * counted twice.
 */
void
UsageCollect(HTAB *items, TimestampTz hour)
{
	HASH_SEQ_STATUS st;
	UsageEntry *e;
	UsageItemSink sink;

	if (!SharedReady())
		return;
	sink.items = items;
	sink.hour = hour;

	/* keys in the cache count in its slots; the others in our table */
	CacheDrainUsage(MyDatabaseId, CollectOne, &sink);

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
			CollectOne(e->key.client_id, strlen(e->key.client_id), counts, lu, &sink);
			e->idle_flushes = 0;
		}
		else if (++e->idle_flushes >= 2)
			hash_search(usage_hash, &e->key, HASH_REMOVE, NULL);
	}
	LWLockRelease(&apikeys_locks[APIKEYS_LOCK_USAGE].lock);
}

/* UsageRestoreLastUsed hands a last-use time back for the next flush. */
void
UsageRestoreLastUsed(const char *client_id, TimestampTz t)
{
	UsageKey	k;
	UsageEntry *e;

	if (!SharedReady() || !MakeUsageKey(client_id, strlen(client_id), &k))
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
 * UsageNoteRecent remembers the last-use times just written to the usage
 * journal, so that key_list shows them before the rollup copies them into
 * apikeys.keys.  When the table is full the rest are not remembered
 * (key_list shows the stored time meanwhile) and a rollup is asked for,
 * which empties it.
 */
void
UsageNoteRecent(HTAB *items)
{
	HASH_SEQ_STATUS st;
	UsageItem  *it;
	bool		full = false;
	int			slot;

	if (!SharedReady())
		return;
	LWLockAcquire(&apikeys_locks[APIKEYS_LOCK_USAGE].lock, LW_EXCLUSIVE);
	hash_seq_init(&st, items);
	while ((it = hash_seq_search(&st)) != NULL)
	{
		UsageKey	k;
		RecentEntry *r;
		bool		found;

		if (it->last_used == 0 || full ||
			!MakeUsageKey(it->key.client_id, strlen(it->key.client_id), &k))
			continue;
		r = hash_search(recent_hash, &k, HASH_ENTER_NULL, &found);
		if (r == NULL)
		{
			full = true;
			continue;
		}
		if (!found || it->last_used > r->last_used)
			r->last_used = it->last_used;
	}
	LWLockRelease(&apikeys_locks[APIKEYS_LOCK_USAGE].lock);
	if (full && (slot = DatabaseSlot(MyDatabaseId)) >= 0)
		pg_atomic_write_u32(&usage_shared->rollup_wanted[slot], 1);
}

/*
 * UsageForgetRecent drops remembered last-use times that the rollup has
 * now written to apikeys.keys (those no later than what it wrote).
 */
void
UsageForgetRecent(HTAB *items)
{
	HASH_SEQ_STATUS st;
	UsageItem  *it;

	if (!SharedReady())
		return;
	LWLockAcquire(&apikeys_locks[APIKEYS_LOCK_USAGE].lock, LW_EXCLUSIVE);
	hash_seq_init(&st, items);
	while ((it = hash_seq_search(&st)) != NULL)
	{
		UsageKey	k;
		RecentEntry *r;

		if (it->last_used == 0 ||
			!MakeUsageKey(it->key.client_id, strlen(it->key.client_id), &k))
			continue;
		r = hash_search(recent_hash, &k, HASH_FIND, NULL);
		if (r != NULL && r->last_used <= it->last_used)
			hash_search(recent_hash, &k, HASH_REMOVE, NULL);
	}
	LWLockRelease(&apikeys_locks[APIKEYS_LOCK_USAGE].lock);
}

/* UsageRecentUse: the remembered last use of a key (0: none). */
TimestampTz
UsageRecentUse(const char *client_id, int len)
{
	UsageKey	k;
	RecentEntry *r;
	TimestampTz t = 0;

	if (!SharedReady() || !MakeUsageKey(client_id, len, &k))
		return 0;
	LWLockAcquire(&apikeys_locks[APIKEYS_LOCK_USAGE].lock, LW_SHARED);
	r = hash_search(recent_hash, &k, HASH_FIND, NULL);
	if (r != NULL)
		t = r->last_used;
	LWLockRelease(&apikeys_locks[APIKEYS_LOCK_USAGE].lock);
	return t;
}

/*
 * UsageJournalState records what this database's usage journal holds
 * after a write or a rollup: the time of its oldest row (0: empty), from
 * which the launcher knows when a rollup is due.  A write only sets it
 * when it was empty.
 */
void
UsageJournalState(TimestampTz oldest, bool after_rollup)
{
	int			slot;

	if (!SharedReady() || (slot = DatabaseSlot(MyDatabaseId)) < 0)
		return;
	if (after_rollup)
	{
		pg_atomic_write_u64(&usage_shared->journal_since[slot], (uint64) oldest);
		pg_atomic_write_u32(&usage_shared->rollup_wanted[slot], 0);
	}
	else
	{
		uint64		expected = 0;

		(void) pg_atomic_compare_exchange_u64(&usage_shared->journal_since[slot],
											  &expected, (uint64) oldest);
	}
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
	{
		RecentEntry *r;

		hash_seq_init(&st, recent_hash);
		while ((r = hash_seq_search(&st)) != NULL)
			if (r->key.dbid == MyDatabaseId)
				hash_search(recent_hash, &r->key, HASH_REMOVE, NULL);
	}
	LWLockRelease(&apikeys_locks[APIKEYS_LOCK_USAGE].lock);
}

PG_FUNCTION_INFO_V1(apikeys_usage_stats);
PG_FUNCTION_INFO_V1(apikeys_preloaded_fn);

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
		int64		tracked;
		int64		capacity;
		int64		dropped;

		LWLockAcquire(&apikeys_locks[APIKEYS_LOCK_USAGE].lock, LW_SHARED);
		values[1] = Int64GetDatum(hash_get_num_entries(usage_hash));
		LWLockRelease(&apikeys_locks[APIKEYS_LOCK_USAGE].lock);
		values[2] = Int64GetDatum(USAGE_MAX_KEYS());
		ThrottleAddressStats(&tracked, &capacity, &dropped);
		values[3] = Int64GetDatum(tracked);
		values[4] = Int64GetDatum(capacity);
		values[5] = Int64GetDatum((int64) pg_atomic_read_u64(&usage_shared->dropped_keys));
		values[6] = Int64GetDatum(dropped);
		values[7] = Int64GetDatum((int64) add_size(UsageShmemSize(), ThrottleShmemSize()));
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
