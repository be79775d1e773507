/*-------------------------------------------------------------------------
 *
 * usage_recent.c
 *	  Last-use times written to the usage journal but not yet rolled up.
 *
 * A flush writes last-use times to apikeys.usage_journal, and only the
 * hourly rollup copies them onto apikeys.usage rows (usage_journal.c).
 * So that apikeys.key_list shows them meanwhile, the flush also notes
 * them here (RecentNote), in a shared hash table keyed by database and
 * client ID, and the rollup forgets what it wrote (RecentForget).  The
 * table holds as many keys as the cache (apikeys.cache_size, at least
 * 10,000), sized for the active keys: when it is full the rest are not
 * noted (key_list shows the stored time meanwhile) and an early rollup is
 * asked for (worker_dblist.c), which empties it.  After a crash the launcher
 * rolls every journal up at start, so key_list needs no shared memory to
 * be right.
 *
 * Under its own lock (tranche "apikeys recent use"), released before it
 * calls worker_dblist.c, the only file it calls.
 *
 * IDENTIFICATION
 *	  src/usage_recent.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "compat.h"
#include "worker_dblist.h"
#include "usage_recent.h"
#include "shmem.h"
#include "usage_item.h"

#define RECENT_TRANCHE		"apikeys recent use"

/* Keyed like usage_counters.c's table: zero-padded, hashed as bytes. */
typedef struct RecentKey
{
	Oid			dbid;
	char		client_id[APIKEYS_CLIENT_ID_MAXLEN + 1];
} RecentKey;

typedef struct RecentEntry
{
	RecentKey	key;
	TimestampTz last_used;
} RecentEntry;

static HTAB *recent_hash = NULL;
static LWLock *recent_lock = NULL;

/*
 * the last-use times of every key used between two rollups: as many as
 * the cache holds (sized for the active keys), so that a full table, which
 * makes the worker roll up early, means more active keys than planned
 */
#define RECENT_MAX_KEYS()	Max(apikeys_cache_size, 10000)

/* UsageLock: the table's lock (attached: ApikeysSharedReady()). */
static inline LWLock *
UsageLock(void)
{
	Assert(recent_lock != NULL);
	Assert(!DbListLockHeldByMe());	/* released before calling it */
	return recent_lock;
}

/* RecentShmemSize: bytes of the hash table. */
Size
RecentShmemSize(void)
{
	return hash_estimate_size(RECENT_MAX_KEYS(), sizeof(RecentEntry));
}

/* RecentShmemRequest asks for the table's memory and its lock. */
void
RecentShmemRequest(void)
{
	RequestAddinShmemSpace(RecentShmemSize());
	RequestNamedLWLockTranche(RECENT_TRANCHE, 1);
}

/* RecentShmemInit creates or attaches the table (AddinShmemInitLock held). */
void
RecentShmemInit(void)
{
	HASHCTL		info;

	Assert(LWLockHeldByMeInMode(AddinShmemInitLock, LW_EXCLUSIVE));
	recent_lock = &GetNamedLWLockTranche(RECENT_TRANCHE)->lock;
	info.keysize = sizeof(RecentKey);
	info.entrysize = sizeof(RecentEntry);
	recent_hash = ApikeysShmemInitHash("apikeys recent use by key", RECENT_MAX_KEYS(),
									   &info, HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
}

/* MakeRecentKey fills a zero-padded key of this database. */
static bool
MakeRecentKey(const char *client_id, int len, RecentKey *k)
{
	if (len <= 0 || len > APIKEYS_CLIENT_ID_MAXLEN)
		return false;
	memset(k, 0, sizeof(RecentKey));
	k->dbid = MyDatabaseId;
	memcpy(k->client_id, client_id, len);
	return true;
}

/*
 * RecentNote remembers the last-use times of items, just written to the
 * usage journal.  When the table is full the rest are not remembered and
 * a rollup is asked for, which empties it.
 */
void
RecentNote(UsageItems *items)
{
	bool		full = false;

	if (!ApikeysSharedReady())
		return;
	LWLockAcquire(UsageLock(), LW_EXCLUSIVE);
	for (uint32 i = 0; i < UsageItemsCount(items) && !full; i++)
	{
		UsageItem  *it = UsageItemAt(items, i);
		RecentKey	k;
		RecentEntry *r;
		bool		found;

		if (it->last_used == 0 ||
			!MakeRecentKey(it->key.client_id, it->len, &k))
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
	LWLockRelease(UsageLock());
	if (full)
		DbListWantRollup(MyDatabaseId);
}

/*
 * RecentForget drops remembered last-use times that the rollup has now
 * written to apikeys.keys (those no later than what it wrote).
 */
void
RecentForget(UsageItems *items)
{
	if (!ApikeysSharedReady())
		return;
	LWLockAcquire(UsageLock(), LW_EXCLUSIVE);
	for (uint32 i = 0; i < UsageItemsCount(items); i++)
	{
		UsageItem  *it = UsageItemAt(items, i);
		RecentKey	k;
		RecentEntry *r;

		if (it->last_used == 0 ||
			!MakeRecentKey(it->key.client_id, it->len, &k))
			continue;
		r = hash_search(recent_hash, &k, HASH_FIND, NULL);
		if (r != NULL && r->last_used <= it->last_used)
			hash_search(recent_hash, &k, HASH_REMOVE, NULL);
	}
	LWLockRelease(UsageLock());
}

/* RecentUse: the remembered last use of a key of this database (0: none). */
TimestampTz
RecentUse(const char *client_id, int len)
{
	RecentKey	k;
	RecentEntry *r;
	TimestampTz t = 0;

	if (!ApikeysSharedReady() || !MakeRecentKey(client_id, len, &k))
		return 0;
	LWLockAcquire(UsageLock(), LW_SHARED);
	r = hash_search(recent_hash, &k, HASH_FIND, NULL);
	if (r != NULL)
		t = r->last_used;
	LWLockRelease(UsageLock());
	return t;
}

/* RecentDiscardDatabase drops the entries of database dbid. */
void
RecentDiscardDatabase(Oid dbid)
{
	HASH_SEQ_STATUS st;
	RecentEntry *r;

	if (!ApikeysSharedReady())
		return;
	LWLockAcquire(UsageLock(), LW_EXCLUSIVE);
	hash_seq_init(&st, recent_hash);
	while ((r = hash_seq_search(&st)) != NULL)
		if (r->key.dbid == dbid)
			hash_search(recent_hash, &r->key, HASH_REMOVE, NULL);
	LWLockRelease(UsageLock());
}
