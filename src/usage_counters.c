/*-------------------------------------------------------------------------
 *
 * usage_counters.c
 *	  Per-key usage counters in shared memory.
 *
 * A key found in the shared cache counts its verifications in its cache
 * entry's usage slot (verify_cache.c: same lock, no second lookup).  Every other
 * key counts here, in a hash table of a quarter of apikeys.cache_size
 * entries (at least 10,000), keyed by database and client ID; so do the
 * counts of entries the cache evicts or invalidates (CountersAdd, called
 * by verify_cache.c), so that nothing counted is lost.  Counters are atomics
 * under the usage lock held shared, so concurrent requests on one key do
 * not serialise; the lock is taken exclusively only to create or remove
 * entries.  When the table is full, new keys are not counted until the
 * next flush frees entries (counted in dropped_keys, shown by
 * apikeys.usage_stats()).
 *
 * The flush (usage_journal.c, through usage.c's UsageCollect) takes the counts
 * out with CountersDrain; an entry idle for two flushes is removed.
 *
 * A leaf but for worker_dblist.c (which databases have counts to flush).  The
 * table has its own lock (tranche "apikeys counters").  Lock order: a
 * cache partition lock, then this lock, then worker_dblist.c's, never the
 * reverse (CountersLockHeldByMe lets verify_cache.c assert it).
 *
 * IDENTIFICATION
 *	  src/usage_counters.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/hsearch.h"

#include "compat.h"
#include "usage_counters.h"
#include "worker_dblist.h"
#include "shmem.h"

#define COUNTERS_TRANCHE	"apikeys counters"

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
	pg_atomic_uint64 last_used; /* 0: no VALID use since the last flush */
	int			idle_flushes;	/* flushes that found nothing to write */
} UsageEntry;

typedef struct CountersShared
{
	pg_atomic_uint64 dropped_keys;	/* per-key records lost: table full */
} CountersShared;

static CountersShared *counters_shared = NULL;
static HTAB *usage_hash = NULL;
static LWLock *counters_lock = NULL;

/* cached keys count in the cache; this table holds the rest and evicted counts */
#define USAGE_MAX_KEYS()	Max(apikeys_cache_size / 4, 10000)

/* UsageLock: the table's lock (attached: ApikeysSharedReady()). */
static inline LWLock *
UsageLock(void)
{
	Assert(counters_lock != NULL);
	Assert(!DbListLockHeldByMe());	/* the list's lock comes after ours */
	return counters_lock;
}

/*
 * CountersLockHeldByMe: does this backend hold the table's lock?  For
 * verify_cache.c's assertion that no partition lock is taken under it.
 */
bool
CountersLockHeldByMe(void)
{
	return counters_lock != NULL && LWLockHeldByMe(counters_lock);
}

/* CountersShmemSize: bytes for the shared header and the hash table. */
Size
CountersShmemSize(void)
{
	return add_size(MAXALIGN(sizeof(CountersShared)),
					hash_estimate_size(USAGE_MAX_KEYS(), sizeof(UsageEntry)));
}

/* CountersShmemRequest asks for the table's memory and its lock. */
void
CountersShmemRequest(void)
{
	RequestAddinShmemSpace(CountersShmemSize());
	RequestNamedLWLockTranche(COUNTERS_TRANCHE, 1);
}

/* CountersShmemInit creates or attaches the table (AddinShmemInitLock held). */
void
CountersShmemInit(void)
{
	bool		found;
	HASHCTL		info;

	Assert(LWLockHeldByMeInMode(AddinShmemInitLock, LW_EXCLUSIVE));
	counters_lock = &GetNamedLWLockTranche(COUNTERS_TRANCHE)->lock;
	counters_shared = ShmemInitStruct("apikeys usage counters",
									  sizeof(CountersShared), &found);
	if (!found)
		pg_atomic_init_u64(&counters_shared->dropped_keys, 0);

	info.keysize = sizeof(UsageKey);
	info.entrysize = sizeof(UsageEntry);
	usage_hash = ApikeysShmemInitHash("apikeys usage by key", USAGE_MAX_KEYS(),
									  &info, HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
}

/* MakeUsageKey fills a zero-padded key; false for an impossible length. */
static bool
MakeUsageKey(Oid dbid, const char *client_id, int len, UsageKey *k)
{
	if (len <= 0 || len > APIKEYS_CLIENT_ID_MAXLEN)
		return false;
	memset(k, 0, sizeof(UsageKey));
	k->dbid = dbid;
	memcpy(k->client_id, client_id, len);
	return true;
}

/*
 * UsageEntryAcquire finds the key's entry, creating it if needed, and
 * returns it with the usage lock held (shared when it existed, exclusive
 * when it was created).  NULL when the table is full (lock released).
 */
static UsageEntry *
UsageEntryAcquire(const UsageKey *k)
{
	UsageEntry *e;
	bool		found;

	LWLockAcquire(UsageLock(), LW_SHARED);
	e = hash_search(usage_hash, k, HASH_FIND, NULL);
	if (e != NULL)
		return e;
	LWLockRelease(UsageLock());

	LWLockAcquire(UsageLock(), LW_EXCLUSIVE);
	e = hash_search(usage_hash, k, HASH_ENTER_NULL, &found);
	if (e == NULL)
	{
		LWLockRelease(UsageLock());
		pg_atomic_fetch_add_u64(&counters_shared->dropped_keys, 1);
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

/* NoteLastUsed moves an entry's last use forward to t (lock held). */
static inline void
NoteLastUsed(UsageEntry *e, TimestampTz t)
{
	Assert(LWLockHeldByMe(counters_lock));
	if (t != 0 && (uint64) t > pg_atomic_read_u64(&e->last_used))
		pg_atomic_write_u64(&e->last_used, (uint64) t);
}

/* CountersCountOne adds one outcome of a key of this database. */
void
CountersCountOne(const char *client_id, int len, ApikeysCode code, TimestampTz now)
{
	uint32		counts[APIKEYS_NUM_CODES] = {0};

	counts[code] = 1;
	CountersAdd(MyDatabaseId, client_id, len, counts,
				code == APIKEYS_VALID ? now : 0);
}

/*
 * CountersAdd adds counts and a last-use time to a key's entry; the
 * cache calls it for an entry it evicts or invalidates (in whatever
 * database the evicting backend is), so no count is lost.
 */
void
CountersAdd(Oid dbid, const char *client_id, int len,
			const uint32 *counts, TimestampTz last_used)
{
	UsageKey	k;
	UsageEntry *e;

	if (!ApikeysSharedReady() || !MakeUsageKey(dbid, client_id, len, &k))
		return;

	/* under a cache partition lock: order partition, counters, list */
	DbListMarkDirty(dbid);
	e = UsageEntryAcquire(&k);
	if (e == NULL)
		return;
	for (int c = 0; c < APIKEYS_NUM_CODES; c++)
		if (counts[c] != 0)
			pg_atomic_fetch_add_u32(&e->counts[c], counts[c]);
	NoteLastUsed(e, last_used);
	LWLockRelease(UsageLock());
}

/*
 * CountersDrain hands the counts and last-use times of database dbid's
 * entries to fn and zeroes them.  Counts are taken, not copied: if the
 * caller's transaction fails they are lost (at most one interval), never
 * counted twice.  Entries idle for two drains are removed.
 */
void
CountersDrain(Oid dbid, UsageCountsFn fn, void *arg)
{
	HASH_SEQ_STATUS st;
	UsageEntry *e;

	if (!ApikeysSharedReady())
		return;
	LWLockAcquire(UsageLock(), LW_EXCLUSIVE);
	hash_seq_init(&st, usage_hash);
	while ((e = hash_seq_search(&st)) != NULL)
	{
		uint32		counts[APIKEYS_NUM_CODES];
		bool		any = false;
		TimestampTz lu;

		if (e->key.dbid != dbid)
			continue;
		for (int c = 0; c < APIKEYS_NUM_CODES; c++)
		{
			counts[c] = pg_atomic_exchange_u32(&e->counts[c], 0);
			any |= counts[c] != 0;
		}
		lu = (TimestampTz) pg_atomic_exchange_u64(&e->last_used, 0);
		if (any || lu != 0)
		{
			fn(e->key.client_id, strlen(e->key.client_id), counts, lu, arg);
			e->idle_flushes = 0;
		}
		else if (++e->idle_flushes >= 2)
			hash_search(usage_hash, &e->key, HASH_REMOVE, NULL);
	}
	LWLockRelease(UsageLock());
}

/*
 * CountersDiscardDatabase drops the entries of database dbid, where the
 * extension is no longer installed (nothing to flush them into).
 */
void
CountersDiscardDatabase(Oid dbid)
{
	HASH_SEQ_STATUS st;
	UsageEntry *e;

	if (!ApikeysSharedReady())
		return;
	LWLockAcquire(UsageLock(), LW_EXCLUSIVE);
	hash_seq_init(&st, usage_hash);
	while ((e = hash_seq_search(&st)) != NULL)
		if (e->key.dbid == dbid)
			hash_search(usage_hash, &e->key, HASH_REMOVE, NULL);
	LWLockRelease(UsageLock());
}

/* CountersStats: entries in use, capacity, and keys dropped (table full). */
void
CountersStats(int64 *tracked, int64 *capacity, int64 *dropped)
{
	LWLockAcquire(UsageLock(), LW_SHARED);
	*tracked = hash_get_num_entries(usage_hash);
	LWLockRelease(UsageLock());
	*capacity = USAGE_MAX_KEYS();
	*dropped = (int64) pg_atomic_read_u64(&counters_shared->dropped_keys);
}
