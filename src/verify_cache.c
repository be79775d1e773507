/*-------------------------------------------------------------------------
 *
 * verify_cache.c
 *	  The shared verification cache and its invalidation protocol.
 *
 * Why a cache: a direct index scan of apikeys.keys costs about a quarter
 * of a simple request; a hit in memory costs a few percent.  Why shared:
 * a per-connection copy prewarmed at connect costs memory and seconds per
 * connection (192 MiB and 1 s at 1M keys in a prototype), and a per-
 * backend cache filled lazily starts cold on every new connection.  One
 * bounded cache per server, sized by apikeys.cache_size, serves them all.
 * It exists only when the library is preloaded; without that every
 * verification reads the table (verify_lookup.c), which is always correct.  On a
 * hot standby entries are validated against the heap tuple they were
 * filled from instead of by this file's protocol (verify_standby.c).
 *
 * Layout: a set-associative array of fixed 256-byte entries, 16 ways per
 * set, with the ways' 32-bit tags in one cache line per set.  A client ID
 * hashes to two sets of its partition (SetBase) and lives in one of them,
 * the first whenever it has room, so a lookup mostly reads one line of
 * tags and the matching entry; eviction is a second-chance clock within
 * the first set.  Entries
 * are tagged with the identity of the table they were read from
 * (ApikeysKeysIdentity: the database OID and its pg_database row's xmin,
 * the OID of apikeys.keys and its relfilenode), so changes that fire no
 * row trigger can never bring an old key back: DROP/CREATE EXTENSION (new
 * OID), a database dropped and re-created with the same OID from the same
 * template (new xmin), a table rewrite such as ALTER COLUMN ... TYPE ...
 * USING (new relfilenode).
 *
 * Records.  What varies in size (owner, scopes, allowed networks, role,
 * name, metadata, and the rotation grace secret when there is one) is
 * packed into one record (RecordLayoutOf).  A record of up to 104 bytes (a
 * key with a scope or two) stays inside its entry; a larger one (a real
 * key: a UUID owner, a dozen scopes with field lists, a network, a role,
 * metadata: about 500 bytes) is a chain of 128-byte chunks in an arena of
 * 256 bytes per way, whose numbers the entry also lists in the inline
 * area it does not need, so that a hit asks for every chunk at once.  The arena is cut into one piece per partition, so
 * the partition lock that guards an entry also guards its chunks and
 * nothing else needs a lock: allocating is popping a free list, freeing is
 * pushing onto it, and when a partition's arena is full a second clock
 * over the partition's ways evicts entries that hold chunks until the
 * record fits.  Nothing is allocated after start-up, and memory stays
 * bounded: apikeys.cache_size entries, of which as many hold large
 * records as the arena has room for (cache_stats() shows its use).  A key
 * whose record is over 8 kB (huge metadata) is never cached: it is read
 * from the table at each verification, which answers every field all the
 * same.
 *
 * One lock per hit.  A hit copies the entry out under the partition lock
 * (shared) and, still holding it, lets the caller judge the key
 * (CacheHitJudge: secret, status, expiry, address, scope: no lock taken,
 * no table read) and counts the outcome in the way's usage slot: one lock
 * acquisition per verification.  Only an outcome a rate limit may still
 * change is counted afterwards (CacheCountUsage), since the rate-limit
 * tables have locks of their own and an owner's limit may need a read.
 *
 * The rule: an entry must never answer for a key whose revoke, disable,
 * rotation, update or delete committed before the verifying call began.
 *
 * The protocol.  Client IDs hash into APIKEYS_CACHE_PARTITIONS partitions;
 * each has an LWLock, a generation counter and a "pending" count of
 * transactions holding uncommitted changes to keys of the partition.
 *
 *	Writer (row trigger AFTER UPDATE OR DELETE on apikeys.keys, ENABLE
 *	ALWAYS so logical replication apply fires it too):
 *	  W1. the first time this transaction touches the partition:
 *		  pending[p] += 1 (remembered in a backend-local set);
 *	  W2. remove the key's entry under the partition lock;
 *	  W3. commit (ProcArrayEndTransaction: the change becomes visible);
 *	  W4. transaction callback at commit or abort: gen[p] += 1, then
 *		  pending[p] -= 1.
 *	Callbacks run after ProcArrayEndTransaction, so the mark must be taken
 *	at write time (W1), never at commit: between W3 and W4 other backends
 *	already see the change while the generation is still the old one.
 *
 *	Reader, hit: under the partition lock (shared), read pending[p], then
 *	gen[p]; use the entry only if pending == 0 and entry.gen == gen[p].
 *
 *	Reader, miss (or pending != 0): g0 = gen[p]; look the key up with a
 *	fresh snapshot (GetLatestSnapshot, never the statement's); then under
 *	the partition lock (exclusive) insert the entry, tagged g0, only if
 *	gen[p] == g0 and pending[p] == 0.
 *
 * Why it holds.  Let W commit (W3) before the verifying call V starts.
 * Since W1 < W3 < V, at V either pending[p] > 0 (W4 not done: V bypasses
 * the cache and reads with a snapshot taken after W3), or W4 is done and
 * gen[p] has moved past every value read before W4.  An entry tagged with
 * the current generation was therefore filled by a reader whose g0 was
 * read after W4, hence whose snapshot was taken after W3: it reflects W.
 * A fill that read g0 before W4 either finds pending > 0 (inside W1..W4)
 * or gen[p] != g0 (after W4) and inserts nothing, or inserted before W1,
 * in which case W2 removes it and W4 outdates it anyway.  Our own
 * uncommitted changes mark the partition pending, so our own verifications
 * read the table and see them.  Aborted writers only cost a refill.
 *
 * Limits of the protocol, by design:
 *	- a hot standby replays changes without firing triggers, so during
 *	  recovery the cache runs verify_standby.c's protocol instead: each entry
 *	  remembers its row version (cache_origins) and each hit re-checks it;
 *	- PREPARE TRANSACTION after changing keys is refused: the change would
 *	  become visible at COMMIT PREPARED, after our callback has run;
 *	- the row trigger is ENABLE ALWAYS, and so are the no-TRUNCATE trigger
 *	  and the audit log's append-only ones; ALTER TABLE ... DISABLE TRIGGER
 *	  (ALL), or ENABLE TRIGGER, which would make them ORIGIN triggers, is
 *	  undone by the event trigger apikeys_ddl_guard at the end of the same
 *	  command, which also outdates the whole cache at commit (CacheMarkAll).
 *	  A superuser who drops or disables that event trigger can still turn
 *	  the invalidation off, as superusers can alter keys anyway.
 *	- a long transaction that changed keys of a partition makes that
 *	  partition bypass the cache until it ends.
 *
 * Named scope sets.  A cached key holds its "@name" scopes expanded
 * (scopeset.c), so a change to apikeys.scope_sets must outdate every
 * cached key of the database.  Each database hashes to one of
 * CACHE_SETGEN_SLOTS "scope-set generation" slots, a generation and a
 * pending count run by the same protocol as a partition's: the statement
 * trigger on apikeys.scope_sets is W1 (pending += 1, once per transaction;
 * no W2: the generation outdates every entry at once), the transaction
 * callback is W4 (generation += 1, then pending -= 1).  Entries carry the
 * slot's generation when filled; a hit needs both the partition's and the
 * slot's generation to match and neither to be pending, and a fill is
 * inserted only if neither moved.  The argument above applies word for
 * word.  Databases sharing a slot only cost each other refills.
 *
 * Updates that change only last_used_at (the hourly rollup of the usage
 * journal, usage_journal.c, and the non-preloaded write of usage_lastused.c) do not
 * invalidate, so the background worker does not empty the cache.
 *
 * IDENTIFICATION
 *	  src/verify_cache.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "verify_cache.h"
#include "catalog.h"
#include "compat.h"
#include "shmem.h"
#include "verify_standby.h"
#include "stats.h"

/*
 * Client IDs hash into this many partitions.  Each has an LWLock of the
 * "apikeys cache" tranche guarding its part of the cache, an invalidation
 * generation and a count of transactions with uncommitted changes to its
 * keys (see the protocol above).
 */
#define APIKEYS_CACHE_PARTITIONS	128
#define CACHE_TRANCHE		"apikeys cache"

#define CACHE_WAYS			16
#define CACHE_ENTRY_SIZE	256
#define CACHE_SETGEN_SLOTS	64	/* scope-set generations, by database */
#define CACHE_CHUNK_SIZE	128 /* an arena chunk: data, then the next chunk */
#define CACHE_CHUNK_DATA	(CACHE_CHUNK_SIZE - sizeof(uint32))
#define CACHE_ARENA_PER_WAY	2	/* arena chunks per way (256 bytes) */
#define CACHE_RECORD_MAX	8192	/* larger keys are never cached */
#define CACHE_NO_CHUNK		PG_UINT32_MAX

/*
 * Fixed part of an entry: what every hit reads.  The rest of its 256
 * bytes holds the key's record (see "Records" above) when it fits; a
 * larger record lives in the partition's arena, and rec_chunk names its
 * first chunk.
 */
typedef struct CacheEntryHead
{
	Oid			dbid;			/* InvalidOid: free slot */
	TransactionId dbxmin;		/* the database's pg_database row xmin */
	Oid			relid;			/* OID of apikeys.keys when filled */
	Oid			relfilenode;	/* and its relfilenode */
	uint64		gen;			/* partition generation when filled */
	uint32		setgen;			/* scope-set generation when filled (low 32
								 * bits) */
	uint32		rec_chunk;		/* first arena chunk; CACHE_NO_CHUNK: inline */
	uint8		used;			/* second-chance bit */
	uint8		cid_len;
	char		hash_alg;
	char		prev_hash_alg;
	bool		disabled;
	bool		revoked;
	bool		has_prev;		/* the record starts with a CacheRecordPrev */
	bool		has_role;
	bool		has_meta;
	bool		has_credits;	/* a CacheRecordCredits follows any
								 * CacheRecordPrev */
	uint16		rec_len;		/* bytes of the record */
	int32		rate_limit;
	uint16		owner_len;
	uint16		role_len;
	uint16		name_len;
	uint16		scopes_len;
	uint16		cidrs_len;		/* 0: no allowed_cidrs */
	uint16		meta_len;
	TimestampTz expires_at;
	int64		rate_window_us;
	uint8		hash[APIKEYS_HASH_LEN];
	char		client_id[APIKEYS_CLIENT_ID_MAXLEN + 1];
} CacheEntryHead;

#define CACHE_INLINE_LEN	(CACHE_ENTRY_SIZE - MAXALIGN(sizeof(CacheEntryHead)))

/* chunk numbers an arena record's entry lists in its inline area (ArenaWrite) */
#define CACHE_CHUNK_LIST	((int) (CACHE_INLINE_LEN / sizeof(uint32)))

typedef struct CacheEntry
{
	CacheEntryHead h;
	char		data[CACHE_INLINE_LEN] pg_attribute_aligned(MAXIMUM_ALIGNOF);
} CacheEntry;

StaticAssertDecl(sizeof(CacheEntry) == CACHE_ENTRY_SIZE,
				 "cache entries are 256 bytes");

/* The rotation grace secret, at the start of a record when has_prev. */
typedef struct CacheRecordPrev
{
	uint8		prev_hash[APIKEYS_HASH_LEN];
	TimestampTz prev_expires_at;
} CacheRecordPrev;

/* A key's credits as its row holds them (verify_credits.c), when has_credits. */
typedef struct CacheRecordCredits
{
	int64		credits;
	int64		refill_amount;
	int64		refill_every_us;
	TimestampTz credits_at;
	int64		credits_seq;
	int64		credits_added;
} CacheRecordCredits;

typedef struct CachePartition
{
	pg_atomic_uint64 gen;
	pg_atomic_uint32 pending;
	pg_atomic_uint32 invalidations;
	/* the partition's arena; changed only under its lock, exclusively */
	uint32		free_head;		/* first free chunk, or CACHE_NO_CHUNK */
	uint32		free_count;		/* chunks on the free list */
	uint32		hand;			/* clock hand over the partition's ways */
	uint32		arena_evictions;	/* entries evicted for arena space */
} CachePartition;

/* A database's scope-set generation (see "Named scope sets" above). */
typedef struct CacheSetGen
{
	pg_atomic_uint64 gen;
	pg_atomic_uint32 pending;
} CacheSetGen;

typedef struct CacheShared
{
	uint32		nsets;			/* a multiple of APIKEYS_CACHE_PARTITIONS */
	CachePartition parts[APIKEYS_CACHE_PARTITIONS];
	CacheSetGen setgens[CACHE_SETGEN_SLOTS];
	CacheEntry	entries[FLEXIBLE_ARRAY_MEMBER];
	/* then uint32 tags[nsets][CACHE_WAYS] (see CacheTags) */
} CacheShared;

static CacheShared *cache = NULL;

/*
 * Each way has a 32-bit tag (the client ID's hash with the low bit set; 0
 * for a free way), kept apart from the 256-byte entries so that a lookup
 * reads one cache line of tags and then only the matching entry, instead
 * of sixteen entries (64 cache lines).
 */
static uint32 *cache_tags = NULL;

/* the partition locks, one per partition */
static LWLockPadded *cache_locks = NULL;

#define TAG_OF(hash)	((hash) | 1)

/*
 * A hit reads three places far apart in a cache of hundreds of megabytes:
 * the set's line of tags, the matching entry and the way's usage slot.
 * Each is a cache miss, and most often a TLB miss too, once the keys in
 * use outgrow the CPU's caches (a profile at 1M keys drawn uniformly: over
 * 90 % of KeyLookupCached's own time stalled on these three loads, the
 * usage slot's atomic add the largest).  So a lookup asks for each as
 * soon as its address is known: the tags before the partition lock is
 * taken, the entry and the usage slot (for writing) as soon as a tag
 * matches, so that the slot's miss overlaps with copying and judging the
 * entry.  A hint only: it changes no value read or written.
 */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
/*
 * asm: gcc 12 -O2 left CachePrefetchWay's __builtin_prefetch calls out of
 * the object code.  prefetchw is a no-op on x86-64 CPUs without it.
 */
#define CachePrefetch(addr, rw) \
	do { \
		if (rw) \
			__asm__ __volatile__("prefetchw %0" : : "m"(*(const char *) (addr))); \
		else \
			__asm__ __volatile__("prefetcht0 %0" : : "m"(*(const char *) (addr))); \
	} while (0)
#elif defined(__GNUC__) || defined(__clang__)
#define CachePrefetch(addr, rw)	__builtin_prefetch((addr), (rw), 3)
#else
#define CachePrefetch(addr, rw)	((void) 0)
#endif

/*
 * Usage counters of the key in each way, beside the entries: a cached
 * verification counts its outcome in the slot of the entry it just used,
 * one lock and no second lookup.  When an entry is evicted or invalidated,
 * its counts move to the per-key table of usage_counters.c, so nothing is lost.
 */
typedef struct CacheUsageSlot
{
	pg_atomic_uint32 counts[APIKEYS_NUM_CODES];
	pg_atomic_uint64 last_used; /* 0: no VALID use since the last flush */
} CacheUsageSlot;

static CacheUsageSlot *cache_usage = NULL;

/*
 * The row version each way was filled from, for entries filled during
 * recovery (verify_standby.c); such entries carry generation 0, which the primary
 * protocol never issues, so a promoted standby never uses them unchecked.
 */
static KeyOrigin *cache_origins = NULL;

/*
 * The arenas: CACHE_ARENA_PER_WAY chunks of CACHE_CHUNK_SIZE bytes per
 * way, each partition owning the chunks of its own ways (ArenaFirstChunk),
 * so the partition lock that guards an entry also guards its chunks.  A
 * record too large for its entry is a chain of chunks: the last four
 * bytes of a chunk (ChunkNext) name the next chunk of the record, or the
 * next free chunk; reading a chunk thus brings its link along.
 * links them, and links the free ones into the partition's free list.
 */
static char *cache_arena = NULL;

#define ChunkData(c)	(&cache_arena[(Size) (c) * CACHE_CHUNK_SIZE])
#define ChunkNext(c)	(*(uint32 *) (ChunkData(c) + CACHE_CHUNK_DATA))

#define STANDBY_GEN		0

/* Partitions this transaction has marked pending (W1), released at end. */
static bool xact_marked[APIKEYS_CACHE_PARTITIONS];
static bool xact_any_marked = false;

/* Whether this transaction has marked its database's scope-set slot. */
static bool xact_setgen_marked = false;

/* Backend-local counters, for apikeys.cache_stats() of this session. */
static uint64 local_hits = 0;
static uint64 local_misses = 0;

/* CacheSets: sets needed for apikeys.cache_size entries. */
static uint32
CacheSets(void)
{
	uint64		sets = ((uint64) apikeys_cache_size + CACHE_WAYS - 1) / CACHE_WAYS;

	sets = ((sets + APIKEYS_CACHE_PARTITIONS - 1) / APIKEYS_CACHE_PARTITIONS) *
		APIKEYS_CACHE_PARTITIONS;
	return (uint32) sets;
}

/* CacheShmemSize: bytes of shared memory the cache needs. */
static Size
CacheShmemSize(void)
{
	Size		ways = mul_size(CacheSets(), CACHE_WAYS);
	Size		chunks = mul_size(ways, CACHE_ARENA_PER_WAY);

	return add_size(add_size(add_size(offsetof(CacheShared, entries),
									  mul_size(ways, sizeof(CacheEntry) + sizeof(uint32))),
							 add_size(mul_size(ways, sizeof(CacheUsageSlot) + sizeof(KeyOrigin)),
									  4 * PG_CACHE_LINE_SIZE)),
					mul_size(chunks, CACHE_CHUNK_SIZE));
}

/* WaysPerPartition: ways of the sets of one partition. */
static inline uint32
WaysPerPartition(void)
{
	return cache->nsets / APIKEYS_CACHE_PARTITIONS * CACHE_WAYS;
}

/* ArenaFirstChunk: the first of partition part's chunks. */
static inline uint32
ArenaFirstChunk(uint32 part)
{
	return part * WaysPerPartition() * CACHE_ARENA_PER_WAY;
}

/* CacheShmemRequest asks for the cache's memory and its partition locks. */
void
CacheShmemRequest(void)
{
	RequestAddinShmemSpace(CacheShmemSize());
	RequestNamedLWLockTranche(CACHE_TRANCHE, APIKEYS_CACHE_PARTITIONS);
}

/* CacheShmemInit creates or attaches the cache (AddinShmemInitLock held). */
void
CacheShmemInit(void)
{
	bool		found;
	Size		ways;

	Assert(LWLockHeldByMeInMode(AddinShmemInitLock, LW_EXCLUSIVE));
	cache_locks = GetNamedLWLockTranche(CACHE_TRANCHE);
	cache = ShmemInitStruct("apikeys verification cache", CacheShmemSize(), &found);
	if (!found)
	{
		cache->nsets = CacheSets();
		for (int i = 0; i < APIKEYS_CACHE_PARTITIONS; i++)
		{
			pg_atomic_init_u64(&cache->parts[i].gen, 1);
			pg_atomic_init_u32(&cache->parts[i].pending, 0);
			pg_atomic_init_u32(&cache->parts[i].invalidations, 0);
		}
		for (int i = 0; i < CACHE_SETGEN_SLOTS; i++)
		{
			pg_atomic_init_u64(&cache->setgens[i].gen, 1);
			pg_atomic_init_u32(&cache->setgens[i].pending, 0);
		}
		memset(cache->entries, 0,
			   (Size) cache->nsets * CACHE_WAYS * sizeof(CacheEntry));
	}
	ways = (Size) cache->nsets * CACHE_WAYS;
	/* a set's 16 tags fill one cache line */
	cache_tags = (uint32 *) TYPEALIGN(PG_CACHE_LINE_SIZE, &cache->entries[ways]);
	if (!found)
		memset(cache_tags, 0, ways * sizeof(uint32));
	cache_usage = (CacheUsageSlot *) MAXALIGN(&cache_tags[ways]);
	if (!found)
	{
		for (Size i = 0; i < ways; i++)
		{
			for (int c = 0; c < APIKEYS_NUM_CODES; c++)
				pg_atomic_init_u32(&cache_usage[i].counts[c], 0);
			pg_atomic_init_u64(&cache_usage[i].last_used, 0);
		}
	}
	cache_origins = (KeyOrigin *) MAXALIGN(&cache_usage[ways]);
	if (!found)
		memset(cache_origins, 0, ways * sizeof(KeyOrigin));
	cache_arena = (char *) TYPEALIGN(PG_CACHE_LINE_SIZE, &cache_origins[ways]);
	if (!found)
	{
		uint32		per = WaysPerPartition() * CACHE_ARENA_PER_WAY;

		for (uint32 part = 0; part < APIKEYS_CACHE_PARTITIONS; part++)
		{
			uint32		first = ArenaFirstChunk(part);

			for (uint32 c = 0; c < per; c++)
				ChunkNext(first + c) = c + 1 < per ? first + c + 1 : CACHE_NO_CHUNK;
			cache->parts[part].free_head = first;
			cache->parts[part].free_count = per;
			cache->parts[part].hand = 0;
			cache->parts[part].arena_evictions = 0;
		}
	}
}

/*
 * PartitionLockHeld: does this process hold partition part's lock
 * (exclusively, when exclusive)?  WayPartition: the partition of a way (a
 * set's ways lie in one partition: set s belongs to partition
 * s % APIKEYS_CACHE_PARTITIONS).  For the Asserts of the functions below
 * that say which lock their caller holds.
 */
static inline bool
PartitionLockHeld(uint32 part, bool exclusive)
{
	LWLock	   *lock = &cache_locks[part].lock;

	return exclusive ? LWLockHeldByMeInMode(lock, LW_EXCLUSIVE) : LWLockHeldByMe(lock);
}

static inline uint32
WayPartition(Size way)
{
	return (uint32) ((way / CACHE_WAYS) % APIKEYS_CACHE_PARTITIONS);
}

/*
 * ArenaFree returns a way's record chunks to its partition's free list
 * (partition lock held exclusively).
 */
static void
ArenaFree(uint32 part, CacheEntry *e)
{
	CachePartition *cp = &cache->parts[part];
	uint32		c = e->h.rec_chunk;

	Assert(PartitionLockHeld(part, true));
	while (c != CACHE_NO_CHUNK)
	{
		uint32		next = ChunkNext(c);

		ChunkNext(c) = cp->free_head;
		cp->free_head = c;
		cp->free_count++;
		c = next;
	}
	e->h.rec_chunk = CACHE_NO_CHUNK;
}

/*
 * DrainWay moves the usage counted in a way to usage_counters.c's per-key table
 * before the way is reused or emptied (partition lock held exclusively).
 */
static void
DrainWay(Size way)
{
	CacheEntry *e = &cache->entries[way];
	uint32		counts[APIKEYS_NUM_CODES];
	bool		any = false;
	TimestampTz last_used;

	Assert(PartitionLockHeld(WayPartition(way), true));
	if (e->h.dbid == InvalidOid)
		return;
	for (int c = 0; c < APIKEYS_NUM_CODES; c++)
	{
		counts[c] = pg_atomic_exchange_u32(&cache_usage[way].counts[c], 0);
		any |= counts[c] != 0;
	}
	last_used = (TimestampTz) pg_atomic_exchange_u64(&cache_usage[way].last_used, 0);
	if (any || last_used != 0)
		CountersAdd(e->h.dbid, e->h.client_id, e->h.cid_len, counts, last_used);
}

/* ClientIdHash: the hash that picks a key's partition and set. */
static inline uint32
ClientIdHash(const char *client_id, int len)
{
	return hash_bytes((const unsigned char *) client_id, len);
}

/*
 * SetBase: the first way of a key's set choice (0 or 1).  A key may live
 * in either of two sets of its partition (the set index modulo the number
 * of partitions is the partition, as for the first): with one set per key,
 * 16-way sets filled to two thirds (apikeys.cache_size = 1.5 x the keys)
 * overflowed for 1.1 % of keys drawn uniformly from 1M, each such draw a
 * table read, and the overflowing keys kept evicting one another.  A fill
 * prefers a free way in the first set, then in the second, and replaces
 * the key's own entry wherever it is, so a key has at most one entry; a
 * lookup reads the second set's tags only when the first had no hit (so
 * mostly for keys not cached at all, which then read the table anyway).
 */
static inline Size
SetBase(uint32 hash, int choice)
{
	uint32		set = hash % cache->nsets;
	uint32		per = cache->nsets / APIKEYS_CACHE_PARTITIONS;

	if (choice == 1 && per > 1)
		set = (set + (1 + (hash / cache->nsets) % (per - 1)) *
			   APIKEYS_CACHE_PARTITIONS) % cache->nsets;
	return (Size) set * CACHE_WAYS;
}

/* SetChoices: how many distinct sets a key may live in (1 in a tiny cache). */
static inline int
SetChoices(void)
{
	return cache->nsets > APIKEYS_CACHE_PARTITIONS ? 2 : 1;
}

/*
 * PartitionLock: partition part's lock.  Lock order: a partition lock,
 * then usage_counters.c's (CountersAdd under DrainWay), never the reverse.
 */
static inline LWLock *
PartitionLock(uint32 part)
{
	Assert(part < APIKEYS_CACHE_PARTITIONS);
	Assert(cache_locks != NULL);
	Assert(!CountersLockHeldByMe());
	return &cache_locks[part].lock;
}

/*
 * CacheUsable: may this process use the cache now?  Shared memory must be
 * attached, and the server must not be in recovery (a standby replays
 * changes without firing the invalidation trigger: see the top).
 */
static inline bool
CacheUsable(void)
{
	return ApikeysSharedReady() && !RecoveryInProgress();
}

/* MySetGen: this database's scope-set generation slot. */
static inline CacheSetGen *
MySetGen(void)
{
	return &cache->setgens[MyDatabaseId % CACHE_SETGEN_SLOTS];
}

/*
 * EntryMatches: is e the entry of this key in this incarnation of this
 * database's table (see ApikeysKeysIdentity)?
 */
static inline bool
EntryMatches(const CacheEntry *e, const ApikeysKeysId *id, const char *client_id, int len)
{
	return e->h.dbid == id->dbid && e->h.relid == id->relid &&
		e->h.relfilenode == id->relfilenode && e->h.dbxmin == id->dbxmin &&
		e->h.cid_len == len && memcmp(e->h.client_id, client_id, len) == 0;
}

/*
 * EmptyWay empties a way (partition lock held exclusively): its usage goes
 * to usage_counters.c, its arena chunks back to the free list.
 */
static void
EmptyWay(uint32 part, Size way)
{
	CacheEntry *e = &cache->entries[way];

	Assert(WayPartition(way) == part && PartitionLockHeld(part, true));
	if (e->h.dbid == InvalidOid)
		return;
	DrainWay(way);
	ArenaFree(part, e);
	e->h.dbid = InvalidOid;
	cache_tags[way] = 0;
}

/*
 * ArenaMakeRoom frees arena chunks of partition part until nchunks are
 * free (partition lock held exclusively), evicting entries that hold
 * chunks with a second-chance clock over the partition's ways.  False if
 * two turns of the clock could not free enough.
 */
static bool
ArenaMakeRoom(uint32 part, uint32 nchunks)
{
	CachePartition *cp = &cache->parts[part];
	uint32		nways = WaysPerPartition();

	Assert(PartitionLockHeld(part, true));
	for (uint32 i = 0; cp->free_count < nchunks && i < 2 * nways; i++)
	{
		uint32		h = cp->hand;
		Size		way = ((Size) (part + (h / CACHE_WAYS) * APIKEYS_CACHE_PARTITIONS)) *
		CACHE_WAYS + h % CACHE_WAYS;
		CacheEntry *e = &cache->entries[way];

		cp->hand = h + 1 < nways ? h + 1 : 0;
		if (e->h.dbid == InvalidOid || e->h.rec_chunk == CACHE_NO_CHUNK)
			continue;
		if (e->h.used)
		{
			e->h.used = 0;
			continue;
		}
		EmptyWay(part, way);
		cp->arena_evictions++;
	}
	return cp->free_count >= nchunks;
}

/* ArenaChunks: chunks a record of len bytes takes (0: inline). */
static inline uint32
ArenaChunks(Size len)
{
	return len <= CACHE_INLINE_LEN ? 0 :
		(uint32) ((len + CACHE_CHUNK_DATA - 1) / CACHE_CHUNK_DATA);
}

/*
 * ArenaWrite stores rec[0..len) in a chain of free chunks of partition
 * part (ArenaMakeRoom made room; lock held exclusively) and returns its
 * first chunk.  The numbers of the first CACHE_CHUNK_LIST chunks also go
 * to list (the entry's inline area, which an arena record leaves unused),
 * so that a hit can ask for all of them at once (ArenaRead) instead of
 * one chunk's miss after another's.
 */
static uint32
ArenaWrite(uint32 part, const char *rec, Size len, uint32 *list)
{
	CachePartition *cp = &cache->parts[part];
	uint32		first = CACHE_NO_CHUNK;
	uint32		prev = CACHE_NO_CHUNK;
	int			n = 0;

	Assert(PartitionLockHeld(part, true));
	for (Size off = 0; off < len; off += CACHE_CHUNK_DATA)
	{
		uint32		c = cp->free_head;

		Assert(c != CACHE_NO_CHUNK && cp->free_count > 0);
		cp->free_head = ChunkNext(c);
		cp->free_count--;
		memcpy(ChunkData(c), rec + off, Min(CACHE_CHUNK_DATA, len - off));
		ChunkNext(c) = CACHE_NO_CHUNK;
		if (prev == CACHE_NO_CHUNK)
			first = c;
		else
			ChunkNext(prev) = c;
		prev = c;
		if (n < CACHE_CHUNK_LIST)
			list[n++] = c;
	}
	return first;
}

/*
 * ArenaRead copies entry e's arena record to dst.  A chain of at most
 * CACHE_CHUNK_LIST chunks is read from the list ArenaWrite kept in the
 * entry: every chunk is asked for first, so their misses overlap; a
 * longer chain (a record over ~3 kB) follows the links.
 */
static void
ArenaRead(const CacheEntry *e, char *dst)
{
	Size		len = e->h.rec_len;
	uint32		c = e->h.rec_chunk;

	if (ArenaChunks(len) <= CACHE_CHUNK_LIST)
	{
		const uint32 *list = (const uint32 *) e->data;
		int			n = (int) ArenaChunks(len);

		Assert(list[0] == c);
		for (int i = 0; i < n; i++)
		{
			CachePrefetch(ChunkData(list[i]), 0);
			CachePrefetch(ChunkData(list[i]) + 64, 0);
		}
		for (int i = 0; i < n; i++)
		{
			Size		off = (Size) i * CACHE_CHUNK_DATA;

			memcpy(dst + off, ChunkData(list[i]), Min(CACHE_CHUNK_DATA, len - off));
		}
		return;
	}
	for (Size off = 0; off < len; off += CACHE_CHUNK_DATA)
	{
		Assert(c != CACHE_NO_CHUNK);
		memcpy(dst + off, ChunkData(c), Min(CACHE_CHUNK_DATA, len - off));
		c = ChunkNext(c);
	}
}

/* Where each part of a record starts (see "Records" at the top). */
typedef struct RecordLayout
{
	Size		credits;
	Size		scopes;
	Size		cidrs;
	Size		meta;
	Size		owner;
	Size		role;
	Size		name;
	Size		len;
} RecordLayout;

static void
RecordLayoutOf(const CacheEntryHead *h, RecordLayout *l)
{
	Size		off = h->has_prev ? MAXALIGN(sizeof(CacheRecordPrev)) : 0;

	l->credits = off;
	off += h->has_credits ? MAXALIGN(sizeof(CacheRecordCredits)) : 0;
	l->scopes = off;
	off = MAXALIGN(off + h->scopes_len);
	l->cidrs = off;
	off = MAXALIGN(off + h->cidrs_len);
	l->meta = off;
	off += h->meta_len;
	l->owner = off;
	off += h->owner_len + 1;
	l->role = off;
	off += h->has_role ? h->role_len + 1 : 0;
	l->name = off;
	off += h->name_len + 1;
	l->len = off;
}

/*
 * EntryToKey copies a cache entry into out: its record goes into one
 * allocation in the current memory context (the caller's per-call memory,
 * as KeyLookup's results are), and out's pointers point into it.
 */
static void
EntryToKey(const CacheEntry *e, KeyInfo *out)
{
	RecordLayout l;
	char	   *rec = palloc(e->h.rec_len);

	if (e->h.rec_chunk == CACHE_NO_CHUNK)
		memcpy(rec, e->data, e->h.rec_len);
	else
		ArenaRead(e, rec);
	RecordLayoutOf(&e->h, &l);
	Assert(l.len == e->h.rec_len);

	memset(out, 0, sizeof(KeyInfo));
	memcpy(out->client_id, e->h.client_id, e->h.cid_len);
	out->client_id[e->h.cid_len] = '\0';
	out->owner = rec + l.owner;
	out->name = rec + l.name;
	if (e->h.has_role)
		out->db_role = rec + l.role;
	out->scopes = (ArrayType *) (rec + l.scopes);
	if (e->h.cidrs_len > 0)
		out->allowed_cidrs = (ArrayType *) (rec + l.cidrs);
	if (e->h.has_meta)
		out->metadata = (Jsonb *) (rec + l.meta);
	out->expires_at = e->h.expires_at;
	out->disabled = e->h.disabled;
	out->revoked = e->h.revoked;
	out->hash_alg = e->h.hash_alg;
	memcpy(out->hash, e->h.hash, APIKEYS_HASH_LEN);
	out->has_prev = e->h.has_prev;
	if (e->h.has_prev)
	{
		const CacheRecordPrev *prev = (const CacheRecordPrev *) rec;

		out->prev_hash_alg = e->h.prev_hash_alg;
		memcpy(out->prev_hash, prev->prev_hash, APIKEYS_HASH_LEN);
		out->prev_expires_at = prev->prev_expires_at;
	}
	out->rate_limit = e->h.rate_limit;
	out->rate_window_us = e->h.rate_window_us;
	if (e->h.has_credits)
	{
		CacheRecordCredits c;

		memcpy(&c, rec + l.credits, sizeof(c));
		out->has_credits = true;
		out->credits = c.credits;
		out->refill_amount = c.refill_amount;
		out->refill_every_us = c.refill_every_us;
		out->credits_at = c.credits_at;
		out->credits_seq = c.credits_seq;
		out->credits_added = c.credits_added;
	}
	/* last_used_at is tracked in shared memory when the cache exists */
}

/*
 * An entry ready to insert: the fixed part, with the record inline when it
 * fits, else in rec (a palloc'd copy) for CacheInsert to put in the arena.
 */
typedef struct CacheImage
{
	CacheEntry	e;
	char	   *rec;			/* NULL: the record is in e.data */
} CacheImage;


/*
 * KeyToEntry packs key into img; false when the key is too large to cache
 * (over CACHE_RECORD_MAX bytes, or half a partition's arena): it is then
 * read from the table at every verification, with every field.
 */
static bool
KeyToEntry(const KeyInfo *key, int cid_len, const ApikeysKeysId *id, uint64 gen, uint64 setgen,
		   CacheImage *img)
{
	Size		owner_len = strlen(key->owner);
	Size		role_len = key->db_role ? strlen(key->db_role) : 0;
	Size		name_len = key->name ? strlen(key->name) : 0;
	Size		scopes_len = VARSIZE(key->scopes);
	Size		cidrs_len = key->allowed_cidrs ? VARSIZE(key->allowed_cidrs) : 0;
	Size		meta_len = key->metadata ? VARSIZE(key->metadata) : 0;
	CacheEntry *e = &img->e;
	RecordLayout l;
	char	   *rec;

	if (owner_len + role_len + name_len + scopes_len + cidrs_len + meta_len >
		CACHE_RECORD_MAX)
		return false;

	memset(e, 0, sizeof(CacheEntry));
	e->h.dbid = id->dbid;
	e->h.dbxmin = id->dbxmin;
	e->h.relid = id->relid;
	e->h.relfilenode = id->relfilenode;
	e->h.gen = gen;
	e->h.setgen = (uint32) setgen;
	e->h.rec_chunk = CACHE_NO_CHUNK;
	e->h.used = 1;
	e->h.cid_len = cid_len;
	memcpy(e->h.client_id, key->client_id, cid_len);
	e->h.hash_alg = key->hash_alg;
	e->h.prev_hash_alg = key->prev_hash_alg;
	e->h.disabled = key->disabled;
	e->h.revoked = key->revoked;
	e->h.has_prev = key->has_prev;
	e->h.has_role = key->db_role != NULL;
	e->h.has_meta = key->metadata != NULL;
	e->h.has_credits = key->has_credits;
	e->h.rate_limit = key->rate_limit;
	e->h.owner_len = owner_len;
	e->h.role_len = role_len;
	e->h.name_len = name_len;
	e->h.scopes_len = scopes_len;
	e->h.cidrs_len = cidrs_len;
	e->h.meta_len = meta_len;
	e->h.expires_at = key->expires_at;
	e->h.rate_window_us = key->rate_window_us;
	memcpy(e->h.hash, key->hash, APIKEYS_HASH_LEN);

	RecordLayoutOf(&e->h, &l);
	if (l.len > CACHE_RECORD_MAX ||
		ArenaChunks(l.len) > WaysPerPartition() * CACHE_ARENA_PER_WAY / 2)
		return false;
	e->h.rec_len = l.len;
	if (ArenaChunks(l.len) == 0)
	{
		img->rec = NULL;
		rec = e->data;
	}
	else
		img->rec = rec = palloc0(l.len);

	if (key->has_prev)
	{
		CacheRecordPrev prev;

		memcpy(prev.prev_hash, key->prev_hash, APIKEYS_HASH_LEN);
		prev.prev_expires_at = key->prev_expires_at;
		memcpy(rec, &prev, sizeof(prev));
	}
	if (key->has_credits)
	{
		CacheRecordCredits c;

		c.credits = key->credits;
		c.refill_amount = key->refill_amount;
		c.refill_every_us = key->refill_every_us;
		c.credits_at = key->credits_at;
		c.credits_seq = key->credits_seq;
		c.credits_added = key->credits_added;
		memcpy(rec + l.credits, &c, sizeof(c));
	}
	memcpy(rec + l.scopes, key->scopes, scopes_len);
	if (cidrs_len)
		memcpy(rec + l.cidrs, key->allowed_cidrs, cidrs_len);
	if (meta_len)
		memcpy(rec + l.meta, key->metadata, meta_len);
	memcpy(rec + l.owner, key->owner, owner_len + 1);
	if (key->db_role)
		memcpy(rec + l.role, key->db_role, role_len + 1);
	if (key->name)
		memcpy(rec + l.name, key->name, name_len + 1);
	else
		rec[l.name] = '\0';
	return true;
}

/*
 * CacheInsert stores img in one of its two sets (partition lock held
 * exclusively, SetBase): over an entry of the same key in either, else a
 * free way of the first set, then of the second, else the first way of the
 * first set without its second-chance bit.  A record too large for the entry goes
 * to the arena, which may evict other entries of the partition to make
 * room.  Returns the way, or -1 if the arena could not make room (the key
 * is then simply not cached).
 */
static int64
CacheInsert(uint32 hash, const CacheImage *img, const ApikeysKeysId *id)
{
	uint32		part = hash % APIKEYS_CACHE_PARTITIONS;
	Size		base = SetBase(hash, 0);
	CacheEntry *set;
	int			victim = -1;
	int			start = (hash >> 24) % CACHE_WAYS;
	uint32		first = CACHE_NO_CHUNK;
	Size		free_base = 0;
	int			free_way = -1;

	Assert(PartitionLockHeld(part, true));
	for (int choice = 0; victim < 0 && choice < SetChoices(); choice++)
	{
		Size		b = SetBase(hash, choice);

		set = &cache->entries[b];
		for (int w = 0; w < CACHE_WAYS; w++)
		{
			if (EntryMatches(&set[w], id, img->e.h.client_id, img->e.h.cid_len))
			{
				base = b;
				victim = w;
				break;
			}
			if (free_way < 0 && set[w].h.dbid == InvalidOid)
			{
				free_base = b;
				free_way = w;
			}
		}
	}
	if (victim < 0 && free_way >= 0)
	{
		base = free_base;
		victim = free_way;
	}
	set = &cache->entries[base];
	if (victim < 0)
		ServerStatsCount(STATS_CACHE_EVICTION, 1);	/* a live entry goes */
	for (int i = 0; victim < 0 && i < 2 * CACHE_WAYS; i++)
	{
		int			w = (start + i) % CACHE_WAYS;

		if (set[w].h.used == 0)
			victim = w;
		else
			set[w].h.used = 0;
	}
	if (victim < 0)
		victim = start;
	EmptyWay(part, base + victim);
	if (img->rec != NULL && !ArenaMakeRoom(part, ArenaChunks(img->e.h.rec_len)))
		return -1;
	memcpy(&set[victim], &img->e, sizeof(CacheEntry));
	if (img->rec != NULL)
		first = ArenaWrite(part, img->rec, img->e.h.rec_len,
						   (uint32 *) set[victim].data);
	set[victim].h.rec_chunk = first;
	cache_tags[base + victim] = TAG_OF(hash);
	return (int64) (base + victim);
}

/*
 * CachePrefetchWay asks for a way's entry (all of it: its record follows
 * the fixed part) and its usage slot, which a hit is about to read and
 * update (see CachePrefetch).
 */
static inline void
CachePrefetchWay(Size way)
{
	const char *e = (const char *) &cache->entries[way];
	const char *u = (const char *) &cache_usage[way];

	/* 64: the line of x86 and most arm64 (PG_CACHE_LINE_SIZE says 128) */
	for (int off = 0; off < CACHE_ENTRY_SIZE; off += 64)
		CachePrefetch(e + off, 0);
	CachePrefetch(u, 1);
	CachePrefetch(u + sizeof(CacheUsageSlot) - 1, 1);
}

/*
 * KeyLookupStandby is KeyLookupCached during recovery: a hit is used only
 * if the row version it was filled from is still current (verify_standby.c); a
 * fill remembers that row version and carries generation STANDBY_GEN.
 */
static bool
KeyLookupStandby(const char *client_id, int len, KeyInfo *out)
{
	Oid			relid = ApikeysKeysRelid();
	Relation	rel;
	ApikeysKeysId id;
	uint32		hash = ClientIdHash(client_id, len);
	uint32		part = hash % APIKEYS_CACHE_PARTITIONS;
	Size		base = SetBase(hash, 0);
	bool		hit = false;
	bool		found;
	CacheImage	img;
	int64		way;

	if ((rel = KeyOriginLock(relid)) != NULL)
	{
		/* the lock processed invalidations: the identity is current now */
		ApikeysKeysIdentity(&id);
		if (id.relid == relid && id.relfilenode == ApikeysRelFileNumber(rel))
		{
			KeyOrigin	origin;
			Size		hit_way = 0;
			Buffer		found_in = InvalidBuffer;

			CachePrefetch(&cache_tags[base], 0);
			LWLockAcquire(PartitionLock(part), LW_SHARED);
			for (int choice = 0; !hit && choice < SetChoices(); choice++)
			{
				base = SetBase(hash, choice);
				for (int w = 0; w < CACHE_WAYS; w++)
				{
					CacheEntry *e = &cache->entries[base + w];

					if (cache_tags[base + w] == TAG_OF(hash) &&
						EntryMatches(e, &id, client_id, len) &&
						e->h.gen == STANDBY_GEN && cache_origins[base + w].valid)
					{
						EntryToKey(e, out);
						origin = cache_origins[base + w];
						if (e->h.used == 0)
							e->h.used = 1;
						hit = true;
						hit_way = base + w;
						break;
					}
				}
			}
			LWLockRelease(PartitionLock(part));
			/* the page check runs outside the partition lock */
			hit = hit && KeyOriginUnchanged(rel, &origin, &found_in);

			/*
			 * The page was no longer in the buffer the entry remembered (it
			 * was evicted and read again, into another buffer): remember
			 * where it is now, so that the next hit pins it directly
			 * (ReadRecentBuffer) instead of looking the block up again.  Only
			 * a hint: ReadRecentBuffer checks the buffer's tag, so a stale
			 * one costs a lookup, never a wrong answer.  Stored only if the
			 * way still holds the same row version.
			 */
			if (hit && found_in != origin.buffer)
			{
				KeyOrigin  *o = &cache_origins[hit_way];

				LWLockAcquire(PartitionLock(part), LW_EXCLUSIVE);
				if (cache_tags[hit_way] == TAG_OF(hash) && o->valid &&
					ItemPointerEquals(&o->tid, &origin.tid) &&
					o->xmin == origin.xmin)
					o->buffer = found_in;
				LWLockRelease(PartitionLock(part));
			}
		}
		KeyOriginUnlock(rel);
	}
	/* a standby counts no usage: the caller's handle stays "not cached" */
	if (hit)
	{
		local_hits++;
		ServerStatsCount(STATS_CACHE_HIT, 1);
		return true;
	}
	local_misses++;
	ServerStatsCount(STATS_CACHE_MISS, 1);

	ApikeysKeysIdentity(&id);
	found = KeyLookup(client_id, len, out);
	if (!found || !out->origin.valid ||
		!KeyToEntry(out, len, &id, STANDBY_GEN, 0, &img))
		return found;
	LWLockAcquire(PartitionLock(part), LW_EXCLUSIVE);
	way = CacheInsert(hash, &img, &id);
	if (way >= 0)
		cache_origins[way] = out->origin;
	LWLockRelease(PartitionLock(part));
	if (img.rec != NULL)
		pfree(img.rec);
	return true;
}

/*
 * CountInWay counts a verification's outcome in a way's usage slot (its
 * partition lock held, shared or exclusive: the counters are atomic).
 */
static inline void
CountInWay(Size way, ApikeysCode code, TimestampTz now)
{
	CacheUsageSlot *u = &cache_usage[way];

	Assert(PartitionLockHeld(WayPartition(way), false));
	pg_atomic_fetch_add_u32(&u->counts[code], 1);
	if (code == APIKEYS_VALID && (uint64) now > pg_atomic_read_u64(&u->last_used))
		pg_atomic_write_u64(&u->last_used, (uint64) now);
}

/*
 * KeyLookupCached is KeyLookup through the shared cache, under the
 * protocol described at the top of this file.
 *
 * judge, if given, runs on a hit while the partition lock is still held
 * (shared) and returns the verification's outcome when it is already
 * final, which is then counted in the entry's usage slot at once
 * (handle->counted): a cache hit takes one lock, once.  It returns
 * APIKEYS_NUM_CODES when the outcome still depends on something that must
 * not run under the lock (a rate limit); the caller then counts with
 * CacheCountUsage.  judge must not take locks or read tables.
 */
bool
KeyLookupCached(const char *client_id, int len, KeyInfo *out,
				CacheHandle *handle, CacheHitJudge judge, void *arg)
{
	CacheHandle local;
	ApikeysKeysId id;
	uint32		hash;
	uint32		part;
	CachePartition *cp;
	CacheSetGen *sg;
	Size		base;
	uint64		g0;
	uint64		s0;
	bool		pending;
	bool		found;
	CacheImage	img;

	if (handle == NULL)
		handle = &local;
	handle->way = -1;
	handle->counted = false;
	if (!CacheUsable())
	{
		if (ApikeysSharedReady() && RecoveryInProgress())
			return KeyLookupStandby(client_id, len, out);	/* handle->way < 0 */
		return KeyLookup(client_id, len, out);
	}

	hash = ClientIdHash(client_id, len);
	base = SetBase(hash, 0);
	CachePrefetch(&cache_tags[base], 0);
	ApikeysKeysIdentity(&id);
	handle->hash = hash;
	handle->id = id;
	part = hash % APIKEYS_CACHE_PARTITIONS;
	cp = &cache->parts[part];
	sg = MySetGen();

	LWLockAcquire(PartitionLock(part), LW_SHARED);
	pending = pg_atomic_read_u32(&cp->pending) != 0 ||
		pg_atomic_read_u32(&sg->pending) != 0;
	pg_read_barrier();
	g0 = pg_atomic_read_u64(&cp->gen);
	s0 = pg_atomic_read_u64(&sg->gen);
	for (int choice = 0; !pending && choice < SetChoices(); choice++)
	{
		uint32	   *tags;

		base = SetBase(hash, choice);
		tags = &cache_tags[base];
		for (int w = 0; w < CACHE_WAYS; w++)
		{
			CacheEntry *e = &cache->entries[base + w];

			if (tags[w] != TAG_OF(hash))
				continue;
			CachePrefetchWay(base + w);
			if (EntryMatches(e, &id, client_id, len) && e->h.gen == g0 &&
				e->h.setgen == (uint32) s0)
			{
				EntryToKey(e, out);
				if (e->h.used == 0)
					e->h.used = 1;	/* a byte store; a lost race costs nothing */
				handle->way = (int64) (base + w);
				if (judge != NULL)
				{
					TimestampTz now = 0;
					ApikeysCode code = judge(out, arg, &now);

					if (code < APIKEYS_NUM_CODES)
					{
						CountInWay(base + w, code, now != 0 ? now : GetCurrentTimestamp());
						handle->counted = true;
					}
				}
				LWLockRelease(PartitionLock(part));
				local_hits++;
				ServerStatsCount(STATS_CACHE_HIT, 1);
				return true;
			}
		}
	}
	LWLockRelease(PartitionLock(part));
	local_misses++;
	ServerStatsCount(STATS_CACHE_MISS, 1);

	/* miss: g0 and s0 were read before the fresh snapshot KeyLookup takes */
	found = KeyLookup(client_id, len, out);
	if (!found || pending || !KeyToEntry(out, len, &id, g0, s0, &img))
		return found;

	LWLockAcquire(PartitionLock(part), LW_EXCLUSIVE);
	if (pg_atomic_read_u32(&cp->pending) == 0 &&
		pg_atomic_read_u32(&sg->pending) == 0 &&
		pg_atomic_read_u64(&cp->gen) == g0 &&
		pg_atomic_read_u64(&sg->gen) == s0)
		handle->way = CacheInsert(hash, &img, &id);
	LWLockRelease(PartitionLock(part));
	if (img.rec != NULL)
		pfree(img.rec);
	return true;
}

/*
 * CacheCountUsage counts a verification's outcome in the usage slot of
 * the entry handle names (filled by this verification's KeyLookupCached),
 * if that entry still holds the key: it may have been evicted or
 * invalidated since, and then its counts have gone to usage_counters.c and this
 * one must too.  Any entry of the same key in the same table will do, even
 * one refilled after an invalidation: the counts belong to the key.  False
 * when the key is not cached: the caller counts it in usage_counters.c instead.
 * True at once when the lookup already counted it (handle->counted).
 */
bool
CacheCountUsage(const CacheHandle *handle, const char *client_id, int len,
				ApikeysCode code, TimestampTz now)
{
	uint32		part;
	bool		counted = false;

	if (handle == NULL || handle->way < 0 || !CacheUsable())
		return false;
	if (handle->counted)
		return true;
	Assert((Size) handle->way / CACHE_WAYS * CACHE_WAYS == SetBase(handle->hash, 0) ||
		   (Size) handle->way / CACHE_WAYS * CACHE_WAYS == SetBase(handle->hash, 1));
	part = handle->hash % APIKEYS_CACHE_PARTITIONS;

	LWLockAcquire(PartitionLock(part), LW_SHARED);
	if (cache_tags[handle->way] == TAG_OF(handle->hash) &&
		EntryMatches(&cache->entries[handle->way], &handle->id, client_id, len))
	{
		CountInWay(handle->way, code, now);
		counted = true;
	}
	LWLockRelease(PartitionLock(part));
	return counted;
}

/*
 * CacheDrainUsage hands every cached key's usage in database dbid to fn
 * and zeroes it (the flush).  Each partition is held only while it is
 * scanned, shared: counters are taken with atomic exchanges.
 *
 * A flush after a busy interval finds a third of a million-way cache used,
 * each used way's entry a miss (and, in the fresh process a flush runs in,
 * often a page fault).  So each set is read in two passes: the first finds
 * the used ways in the compact slot array and asks for their entries'
 * heads (CachePrefetch), the second reads them, their misses overlapping;
 * the next set's slots are asked for meanwhile.  Hints only: nothing
 * read or taken changes.
 */
StaticAssertDecl(CACHE_WAYS <= 32, "a set's used ways fit a uint32 mask");

void
CacheDrainUsage(Oid dbid, UsageCountsFn fn, void *arg)
{
	if (!ApikeysSharedReady())
		return;
	for (uint32 part = 0; part < APIKEYS_CACHE_PARTITIONS; part++)
	{
		LWLockAcquire(PartitionLock(part), LW_SHARED);
		for (uint32 s = part; s < cache->nsets; s += APIKEYS_CACHE_PARTITIONS)
		{
			uint32		used = 0;

			if (s + APIKEYS_CACHE_PARTITIONS < cache->nsets)
			{
				const char *next = (const char *)
				&cache_usage[(Size) (s + APIKEYS_CACHE_PARTITIONS) * CACHE_WAYS];

				/* 64: the line of x86 and most arm64, as in CachePrefetchWay */
				for (Size off = 0; off < sizeof(CacheUsageSlot) * CACHE_WAYS; off += 64)
					CachePrefetch(next + off, 0);
			}

			/*
			 * Most ways were not used since the last flush: find out from the
			 * compact slot array with plain reads, before touching the
			 * 256-byte entry or taking anything with an atomic exchange (a
			 * million-entry cache is scanned every flush).
			 */
			for (int w = 0; w < CACHE_WAYS; w++)
			{
				Size		way = (Size) s * CACHE_WAYS + w;
				CacheUsageSlot *u = &cache_usage[way];
				bool		any = false;

				for (int c = 0; c < APIKEYS_NUM_CODES && !any; c++)
					any = pg_atomic_read_u32(&u->counts[c]) != 0;
				if (!any && pg_atomic_read_u64(&u->last_used) == 0)
					continue;
				used |= (uint32) 1 << w;
				/* the head's lines: dbid first, the client ID at its end */
				for (Size off = 0; off < sizeof(CacheEntryHead); off += 64)
					CachePrefetch((const char *) &cache->entries[way] + off, 0);
			}
			for (int w = 0; used != 0; w++, used >>= 1)
			{
				Size		way = (Size) s * CACHE_WAYS + w;
				CacheUsageSlot *u = &cache_usage[way];
				CacheEntry *e;
				uint32		counts[APIKEYS_NUM_CODES];
				bool		any = false;
				TimestampTz last_used;

				if ((used & 1) == 0)
					continue;
				e = &cache->entries[way];
				if (e->h.dbid != dbid)
					continue;
				for (int c = 0; c < APIKEYS_NUM_CODES; c++)
				{
					counts[c] = pg_atomic_read_u32(&u->counts[c]) != 0 ?
						pg_atomic_exchange_u32(&u->counts[c], 0) : 0;
					any |= counts[c] != 0;
				}
				last_used = (TimestampTz) pg_atomic_exchange_u64(&u->last_used, 0);
				if (any || last_used != 0)
					fn(e->h.client_id, e->h.cid_len, counts, last_used, arg);
			}
		}
		LWLockRelease(PartitionLock(part));
	}
}

/*
 * CacheMarkAndRemove is steps W1 and W2 for one client ID: mark its
 * partition pending for the rest of this transaction and drop its entry.
 */
static void
CacheMarkAndRemove(const char *client_id, int len)
{
	uint32		hash = ClientIdHash(client_id, len);
	uint32		part = hash % APIKEYS_CACHE_PARTITIONS;

	if (!xact_marked[part])
	{
		/* remember first, so the callback releases whatever we took */
		xact_marked[part] = true;
		xact_any_marked = true;
		pg_atomic_fetch_add_u32(&cache->parts[part].pending, 1);
	}
	pg_atomic_fetch_add_u32(&cache->parts[part].invalidations, 1);

	LWLockAcquire(PartitionLock(part), LW_EXCLUSIVE);
	for (int choice = 0; choice < SetChoices(); choice++)
	{
		Size		base = SetBase(hash, choice);

		for (int w = 0; w < CACHE_WAYS; w++)
		{
			CacheEntry *e = &cache->entries[base + w];

			if (e->h.dbid != InvalidOid && e->h.cid_len == len &&
				memcmp(e->h.client_id, client_id, len) == 0)
				EmptyWay(part, base + w);
		}
	}
	LWLockRelease(PartitionLock(part));
}

/*
 * CacheMarkAll is step W1 for every partition: at the end of this
 * transaction every entry of every database is outdated.  For changes that
 * fire no row trigger (ALTER TABLE of apikeys.keys, such as a rewrite with
 * ALTER COLUMN ... TYPE ... USING or a trigger toggle); they are rare, and
 * the other databases' entries only cost a refill.
 */
static void
CacheMarkAll(void)
{
	for (int part = 0; part < APIKEYS_CACHE_PARTITIONS; part++)
	{
		if (xact_marked[part])
			continue;
		xact_marked[part] = true;
		xact_any_marked = true;
		pg_atomic_fetch_add_u32(&cache->parts[part].pending, 1);
		pg_atomic_fetch_add_u32(&cache->parts[part].invalidations, 1);
	}
}

/*
 * CacheReleaseMarks is step W4: for every partition this transaction
 * marked, advance the generation, then drop the pending mark.
 */
static void
CacheReleaseMarks(void)
{
	if (xact_setgen_marked)
	{
		CacheSetGen *sg = MySetGen();

		pg_atomic_fetch_add_u64(&sg->gen, 1);
		pg_atomic_fetch_sub_u32(&sg->pending, 1);
		xact_setgen_marked = false;
	}
	if (!xact_any_marked)
		return;
	for (int i = 0; i < APIKEYS_CACHE_PARTITIONS; i++)
	{
		if (!xact_marked[i])
			continue;
		pg_atomic_fetch_add_u64(&cache->parts[i].gen, 1);
		pg_atomic_fetch_sub_u32(&cache->parts[i].pending, 1);
		xact_marked[i] = false;
	}
	xact_any_marked = false;
}

/*
 * CacheXactCallback releases the marks at commit and abort (after the
 * change is visible, or known never to be), and refuses PREPARE of a
 * transaction that changed keys: its changes would become visible at
 * COMMIT PREPARED, outside this protocol.
 */
static void
CacheXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (xact_any_marked || xact_setgen_marked)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that changed API keys"),
						 errdetail("The verification cache must see the change when it commits.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			CacheReleaseMarks();
			break;
		default:
			break;
	}
}

/* CacheXactInit registers the transaction callback (preloaded only). */
void
CacheXactInit(void)
{
	RegisterXactCallback(CacheXactCallback, NULL);
}

/*
 * OnlyLastUsedChanged: does an UPDATE change nothing but last_used_at?
 * Binary comparison: a value rewritten to an equal but differently
 * stored form counts as a change, which only costs a refill.
 */
static bool
OnlyLastUsedChanged(Relation rel, HeapTuple oldtup, HeapTuple newtup)
{
	TupleDesc	desc = RelationGetDescr(rel);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		bool		n1,
					n2;
		Datum		d1,
					d2;

		if (att->attisdropped || att->attnum == Anum_keys_last_used_at)
			continue;
		d1 = heap_getattr(oldtup, att->attnum, desc, &n1);
		d2 = heap_getattr(newtup, att->attnum, desc, &n2);
		if (n1 != n2)
			return false;
		if (!n1 && !datumIsEqual(d1, d2, att->attbyval, att->attlen))
			return false;
	}
	return true;
}

/* InvalidateTupleKey runs W1 and W2 for the client ID of tup. */
static void
InvalidateTupleKey(Relation rel, HeapTuple tup)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, Anum_keys_client_id, RelationGetDescr(rel), &isnull);
	text	   *t;

	if (isnull)
		return;
	t = DatumGetTextPP(d);
	if (VARSIZE_ANY_EXHDR(t) > APIKEYS_CLIENT_ID_MAXLEN)
		return;					/* never a cached client ID */
	CacheMarkAndRemove(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

PG_FUNCTION_INFO_V1(apikeys_keys_cache_trigger);
PG_FUNCTION_INFO_V1(apikeys_cache_invalidate_all);
PG_FUNCTION_INFO_V1(apikeys_scope_sets_cache_trigger);
PG_FUNCTION_INFO_V1(apikeys_cache_stats);
PG_FUNCTION_INFO_V1(apikeys_cache_prewarm);

/*
 * SQL function: apikeys_internal._keys_cache_trigger() returns trigger
 *
 * AFTER UPDATE OR DELETE FOR EACH ROW on apikeys.keys: invalidates the
 * key's cache entry (both client IDs if the client ID itself changed).
 * Without shared memory there is no cache and nothing to do.
 */
Datum
apikeys_keys_cache_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "apikeys_internal._keys_cache_trigger must be an AFTER ROW trigger");

	if (ApikeysSharedReady())
	{
		if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		{
			if (!OnlyLastUsedChanged(td->tg_relation, td->tg_trigtuple, td->tg_newtuple))
			{
				InvalidateTupleKey(td->tg_relation, td->tg_trigtuple);
				InvalidateTupleKey(td->tg_relation, td->tg_newtuple);
			}
		}
		else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
			InvalidateTupleKey(td->tg_relation, td->tg_trigtuple);
	}
	return PointerGetDatum(NULL);
}

/*
 * SQL function: apikeys_internal._scope_sets_cache_trigger() returns trigger
 *
 * AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE FOR EACH STATEMENT on
 * apikeys.scope_sets: step W1 for this database's scope-set generation,
 * so every cached key of the database is outdated when this transaction
 * ends (see "Named scope sets" at the top of this file).
 */
Datum
apikeys_scope_sets_cache_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event))
		elog(ERROR, "apikeys_internal._scope_sets_cache_trigger must be an AFTER STATEMENT trigger");

	if (ApikeysSharedReady() && !xact_setgen_marked)
	{
		/* remember first, so the callback releases whatever we took */
		xact_setgen_marked = true;
		pg_atomic_fetch_add_u32(&MySetGen()->pending, 1);
	}
	return PointerGetDatum(NULL);
}

/*
 * SQL function: apikeys_internal._cache_invalidate_all() returns void
 *
 * Outdates the whole shared cache when this transaction ends (CacheMarkAll).
 * Called by the event trigger on ALTER TABLE of the extension's tables.
 */
Datum
apikeys_cache_invalidate_all(PG_FUNCTION_ARGS)
{
	if (ApikeysSharedReady())
		CacheMarkAll();
	PG_RETURN_VOID();
}

/*
 * SQL function: apikeys.cache_stats() returns record
 *
 * The cache's size and use, so operators can size apikeys.cache_size:
 * capacity and entries in use (counted now, under each partition lock),
 * bytes per entry and in total, this session's hits and misses, and the
 * arena of records too large for their entry: its size, the bytes in use
 * (whole chunks) and the entries evicted to make room in it.
 */
Datum
apikeys_cache_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[11];
	bool		nulls[11] = {false};
	int64		used = 0;
	int64		invalidations = 0;
	int64		free_chunks = 0;
	int64		arena_evictions = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	values[0] = BoolGetDatum(ApikeysSharedReady());
	if (!ApikeysSharedReady())
	{
		for (int i = 1; i < 6; i++)
			nulls[i] = true;
		nulls[8] = nulls[9] = nulls[10] = true;
	}
	else
	{
		for (uint32 part = 0; part < APIKEYS_CACHE_PARTITIONS; part++)
		{
			LWLockAcquire(PartitionLock(part), LW_SHARED);
			for (uint32 s = part; s < cache->nsets; s += APIKEYS_CACHE_PARTITIONS)
				for (int w = 0; w < CACHE_WAYS; w++)
					if (cache->entries[(Size) s * CACHE_WAYS + w].h.dbid != InvalidOid)
						used++;
			free_chunks += cache->parts[part].free_count;
			arena_evictions += cache->parts[part].arena_evictions;
			LWLockRelease(PartitionLock(part));
			invalidations += pg_atomic_read_u32(&cache->parts[part].invalidations);
		}
		values[1] = Int64GetDatum((int64) cache->nsets * CACHE_WAYS);
		values[2] = Int64GetDatum(used);
		values[3] = Int32GetDatum((int32) sizeof(CacheEntry));
		values[4] = Int64GetDatum((int64) CacheShmemSize());
		values[5] = Int64GetDatum(invalidations);
		values[8] = Int64GetDatum((int64) cache->nsets * CACHE_WAYS *
								  CACHE_ARENA_PER_WAY * CACHE_CHUNK_SIZE);
		values[9] = Int64GetDatum(DatumGetInt64(values[8]) -
								  free_chunks * CACHE_CHUNK_SIZE);
		values[10] = Int64GetDatum(arena_evictions);
	}
	values[6] = Int64GetDatum((int64) local_hits);
	values[7] = Int64GetDatum((int64) local_misses);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * SQL function: apikeys.cache_prewarm() returns bigint
 *
 * Fills the shared cache with this database's keys, most recently used
 * first (apikeys.keys.last_used_at, and the last uses of the newest two
 * hours rolled up, read in one pass: a lookup per key, as key_list does,
 * would decode a packed row per key), up to its capacity, as pg_prewarm
 * does for buffers: after a
 * restart every key's first verification would otherwise be a miss.  Each
 * key goes through the ordinary miss path (fresh snapshot, generation
 * check; on a standby, verify_standby.c's), so a key changed meanwhile is never
 * cached stale.  Returns the keys looked up; 0 without the cache (not
 * preloaded).
 * SECURITY DEFINER in SQL: it reads apikeys.keys as the extension owner.
 */
Datum
apikeys_cache_prewarm(PG_FUNCTION_ARGS)
{
	int64		loaded = 0;
	int64		capacity;
	Portal		portal;
	Oid			types[1] = {INT8OID};
	Datum		args[1];

	if (!ApikeysSharedReady())
		PG_RETURN_INT64(0);
	(void) ApikeysKeysRelid();	/* the extension must be installed here */
	capacity = (int64) cache->nsets * CACHE_WAYS;
	args[0] = Int64GetDatum(capacity);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT k.client_id FROM apikeys.keys k "
									   "  LEFT JOIN (SELECT d.client_id COLLATE \"C\" AS client_id, pg_catalog.max(d.last_used) AS t "
									   "               FROM apikeys.usage_packed p, "
									   "                    LATERAL apikeys_internal._journal_decode(p.data) d "
									   "              WHERE p.hour OPERATOR(pg_catalog.>=) "
									   "                    ((SELECT pg_catalog.max(p2.hour) FROM apikeys.usage_packed p2) "
									   "                     OPERATOR(pg_catalog.-) '1 hour'::pg_catalog.interval) "
									   "              GROUP BY d.client_id) u "
									   "         ON u.client_id OPERATOR(pg_catalog.=) k.client_id "
									   " WHERE k.revoked_at IS NULL "
									   " ORDER BY GREATEST(k.last_used_at, u.t) DESC NULLS LAST, k.client_id "
									   " LIMIT $1",
									   1, types, args, NULL, true, 0);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull);
			text	   *cid;
			KeyInfo		key;

			CHECK_FOR_INTERRUPTS();
			if (isnull)
				continue;
			cid = DatumGetTextPP(d);
			if (VARSIZE_ANY_EXHDR(cid) > APIKEYS_CLIENT_ID_MAXLEN)
				continue;
			(void) KeyLookupCached(VARDATA_ANY(cid), VARSIZE_ANY_EXHDR(cid), &key,
								   NULL, NULL, NULL);
			loaded++;
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();
	PG_RETURN_INT64(loaded);
}
