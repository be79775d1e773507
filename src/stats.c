/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  Server-wide counters, and apikeys_internal._stats() behind the apikeys.stats
 *	  view.
 *
 * An operator scraping every 15 seconds wants totals since the server
 * started, across every backend: verifications by outcome code (including
 * the MALFORMED ones that never reach a key), shared-cache hits, misses
 * and evictions, and what the background worker did.  The per-session
 * numbers of apikeys.cache_stats() cannot give that.
 *
 * Counters are 64-bit atomics in shared memory, in STATS_STRIPES cache
 * lines chosen by process ID, so backends verifying at once rarely add
 * to the same line; a read sums the stripes (a few hundred loads, no
 * lock).  A sum read while others add is a moment's value, as
 * pg_stat_statements' are.  Without shared_preload_libraries there is no
 * shared memory, nothing is counted, and apikeys_internal._stats() answers NULLs.
 *
 * One function reads everything (apikeys_internal._stats()); what other modules
 * know (the cache's size, the usage table's fill, the address table's)
 * is read through their own small accessor functions, so a module that
 * gains a counter adds a column here and nowhere else.  Gauges that live
 * in tables (blocked addresses, the outbox backlog) are computed by the
 * view itself in SQL.
 *
 * A leaf: modules call in to count; this file calls only the accessors.
 * (Names start with ServerStats: PostgreSQL itself exports StatsShmemInit
 * and StatsShmemSize, and the server's symbol would win.)
 *
 * IDENTIFICATION
 *	  src/stats.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "usage_counters.h"
#include "shmem.h"
#include "stats.h"
#include "verify_throttle.h"

#define STATS_STRIPES		16
#define STATS_NUM_COUNTERS	(APIKEYS_NUM_CODES + STATS_NUM_EVENTS)

/* One stripe of counters, alone on its cache line(s). */
typedef union StatsStripe
{
	pg_atomic_uint64 c[STATS_NUM_COUNTERS];
	char		pad[TYPEALIGN(PG_CACHE_LINE_SIZE,
							  sizeof(pg_atomic_uint64) * STATS_NUM_COUNTERS)];
} StatsStripe;

typedef struct StatsShared
{
	TimestampTz since;			/* when these counters started */
	pg_atomic_uint64 last_flush;	/* TimestampTz of the last flush; 0: none */
	pg_atomic_uint64 last_policy_run;	/* likewise, policy runs */
	StatsStripe stripes[STATS_STRIPES];
} StatsShared;

static StatsShared *stats = NULL;

/* ServerStatsShmemRequest asks for the counters' shared memory. */
void
ServerStatsShmemRequest(void)
{
	RequestAddinShmemSpace(sizeof(StatsShared));
}

/* ServerStatsShmemInit creates or attaches the counters (AddinShmemInitLock held). */
void
ServerStatsShmemInit(void)
{
	bool		found;

	Assert(LWLockHeldByMeInMode(AddinShmemInitLock, LW_EXCLUSIVE));
	stats = ShmemInitStruct("apikeys stats", sizeof(StatsShared), &found);
	if (!found)
	{
		stats->since = GetCurrentTimestamp();
		pg_atomic_init_u64(&stats->last_flush, 0);
		pg_atomic_init_u64(&stats->last_policy_run, 0);
		for (int s = 0; s < STATS_STRIPES; s++)
			for (int i = 0; i < STATS_NUM_COUNTERS; i++)
				pg_atomic_init_u64(&stats->stripes[s].c[i], 0);
	}
}

/* StatsAdd adds n to counter i of this process's stripe. */
static inline void
StatsAdd(int i, int64 n)
{
	if (stats == NULL || !ApikeysSharedReady())
		return;
	pg_atomic_fetch_add_u64(&stats->stripes[MyProcPid % STATS_STRIPES].c[i], n);
}

/* ServerStatsCountVerification counts one verification that answered code. */
void
ServerStatsCountVerification(ApikeysCode code)
{
	if ((int) code >= 0 && code < APIKEYS_NUM_CODES)
		StatsAdd((int) code, 1);
}

/* ServerStatsCount adds n to an event counter. */
void
ServerStatsCount(StatsEvent event, int64 n)
{
	StatsAdd(APIKEYS_NUM_CODES + (int) event, n);
}

/* ServerStatsNoteUsageFlush counts a committed flush (or rollup) and its time. */
void
ServerStatsNoteUsageFlush(void)
{
	if (stats == NULL || !ApikeysSharedReady())
		return;
	ServerStatsCount(STATS_USAGE_FLUSH, 1);
	pg_atomic_write_u64(&stats->last_flush, (uint64) GetCurrentTimestamp());
}

/* ServerStatsNotePolicyRun counts a committed policy run, its actions and time. */
void
ServerStatsNotePolicyRun(int64 actions)
{
	if (stats == NULL || !ApikeysSharedReady())
		return;
	ServerStatsCount(STATS_POLICY_RUN, 1);
	ServerStatsCount(STATS_POLICY_ACTION, actions);
	pg_atomic_write_u64(&stats->last_policy_run, (uint64) GetCurrentTimestamp());
}

/* StatsSum is counter i summed over the stripes. */
static int64
StatsSum(int i)
{
	uint64		sum = 0;

	for (int s = 0; s < STATS_STRIPES; s++)
		sum += pg_atomic_read_u64(&stats->stripes[s].c[i]);
	return (int64) sum;
}

/* The columns of apikeys_internal._stats(), in order. */
enum
{
	COL_SINCE = 0,
	COL_CODES,					/* APIKEYS_NUM_CODES columns, in code order */
	COL_CACHE_HITS = COL_CODES + APIKEYS_NUM_CODES,
	COL_CACHE_MISSES,
	COL_CACHE_EVICTIONS,
	COL_USAGE_KEYS_PENDING,
	COL_USAGE_KEYS_DROPPED,
	COL_USAGE_FLUSHES,
	COL_USAGE_LAST_FLUSH,
	COL_POLICY_RUNS,
	COL_POLICY_ACTIONS,
	COL_POLICY_LAST_RUN,
	COL_ADDRESSES_TRACKED,
	COL_ADDRESSES_DROPPED,
	STATS_NCOLS
};

PG_FUNCTION_INFO_V1(apikeys_stats);

/*
 * SQL function: apikeys_internal._stats() returns record
 *
 * The shared-memory half of the apikeys.stats view: totals since
 * stats_since (the server's start, or its last crash restart); all NULL
 * without shared_preload_libraries.
 */
Datum
apikeys_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[STATS_NCOLS];
	bool		nulls[STATS_NCOLS];
	int64		tracked;
	int64		capacity;
	int64		dropped;
	uint64		t;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (tupdesc->natts != STATS_NCOLS)
		elog(ERROR, "apikeys_internal._stats() has %d columns, expected %d",
			 tupdesc->natts, STATS_NCOLS);

	memset(values, 0, sizeof(values));
	if (stats == NULL || !ApikeysSharedReady())
	{
		memset(nulls, true, sizeof(nulls));
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
	}
	memset(nulls, false, sizeof(nulls));

	values[COL_SINCE] = TimestampTzGetDatum(stats->since);
	for (int c = 0; c < APIKEYS_NUM_CODES; c++)
		values[COL_CODES + c] = Int64GetDatum(StatsSum(c));
	values[COL_CACHE_HITS] = Int64GetDatum(StatsSum(APIKEYS_NUM_CODES + STATS_CACHE_HIT));
	values[COL_CACHE_MISSES] = Int64GetDatum(StatsSum(APIKEYS_NUM_CODES + STATS_CACHE_MISS));
	values[COL_CACHE_EVICTIONS] = Int64GetDatum(StatsSum(APIKEYS_NUM_CODES + STATS_CACHE_EVICTION));

	/* usage_counters.c: per-key usage waiting for the next flush */
	CountersStats(&tracked, &capacity, &dropped);
	values[COL_USAGE_KEYS_PENDING] = Int64GetDatum(tracked);
	values[COL_USAGE_KEYS_DROPPED] = Int64GetDatum(dropped);
	values[COL_USAGE_FLUSHES] = Int64GetDatum(StatsSum(APIKEYS_NUM_CODES + STATS_USAGE_FLUSH));
	t = pg_atomic_read_u64(&stats->last_flush);
	values[COL_USAGE_LAST_FLUSH] = TimestampTzGetDatum((TimestampTz) t);
	nulls[COL_USAGE_LAST_FLUSH] = (t == 0);

	values[COL_POLICY_RUNS] = Int64GetDatum(StatsSum(APIKEYS_NUM_CODES + STATS_POLICY_RUN));
	values[COL_POLICY_ACTIONS] = Int64GetDatum(StatsSum(APIKEYS_NUM_CODES + STATS_POLICY_ACTION));
	t = pg_atomic_read_u64(&stats->last_policy_run);
	values[COL_POLICY_LAST_RUN] = TimestampTzGetDatum((TimestampTz) t);
	nulls[COL_POLICY_LAST_RUN] = (t == 0);

	/* verify_throttle.c: the address failure table */
	ThrottleAddressStats(&tracked, &capacity, &dropped);
	values[COL_ADDRESSES_TRACKED] = Int64GetDatum(tracked);
	values[COL_ADDRESSES_DROPPED] = Int64GetDatum(dropped);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
