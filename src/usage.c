/*-------------------------------------------------------------------------
 *
 * usage.c
 *	  Where a verification's outcome is counted, and gathering the counts
 *	  for a flush.
 *
 * Hand-rolled key tables record last_used_at with an UPDATE per request:
 * a row version and WAL per request, a row lock that serialises requests
 * on a hot key, and an error in READ ONLY transactions (PostgREST GETs)
 * and on hot standbys.  Here the request path writes no table at all
 * when the library is preloaded, and rarely otherwise.
 *
 * Preloaded (shared_preload_libraries): counts by outcome code and the
 * last VALID use live in shared memory and survive the request
 * transaction, so a rolled-back request still counts.  A key the cache
 * holds counts in its entry's usage slot (cache.c, through the handle its
 * lookup gave the verification); any other key in the per-key table
 * (counters.c).  Every apikeys.flush_interval the background worker
 * (worker.c) has journal.c write the counts of a database as one row of
 * apikeys.usage_journal, gathered here (UsageCollect) into a set of items;
 * about once an hour journal.c rolls the journal up into apikeys.usage
 * and apikeys.keys.last_used_at.  apikeys.flush_usage() does it at once.
 * A crash loses what was not yet flushed (at most one interval) and
 * nothing else.  Usage is not counted during recovery (a standby cannot
 * write it anywhere).
 *
 * Not preloaded: nothing is shared; last_used_at is written directly,
 * rarely (lastused.c).  Usage counts, address throttling and rate limits
 * (throttle.c) need shared memory and are not available.
 *
 * Calls: cache.c, counters.c, lastused.c; called by verify.c (the count)
 * and journal.c (the collection).
 *
 * IDENTIFICATION
 *	  src/usage.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/timestamp.h"

#include "cache.h"
#include "counters.h"
#include "dblist.h"
#include "lastused.h"
#include "recent.h"
#include "shmem.h"
#include "throttle.h"
#include "usage.h"

/*
 * CountCode adds one outcome to a key's counters: in the cache entry the
 * handle names when it still holds the key, else in counters.c's table.
 * Not during recovery.
 */
static void
CountCode(const CacheHandle *handle, const char *client_id, int len,
		  ApikeysCode code, TimestampTz now)
{
	if (RecoveryInProgress())
		return;
	DbListMarkDirty(MyDatabaseId);
	/* the common case: the key was just found in the shared cache */
	if (CacheCountUsage(handle, client_id, len, code, now))
		return;
	CountersCountOne(client_id, len, code, now);
}

/*
 * UsageRecordFailure counts a NOT_FOUND against the key, when the client
 * ID exists (client_id NULL otherwise), in shared memory, so the count
 * survives the request's rollback.  The address is counted by throttle.c.
 */
void
UsageRecordFailure(const CacheHandle *handle, const char *client_id, int cid_len)
{
	if (!ApikeysSharedReady() || client_id == NULL)
		return;
	CountCode(handle, client_id, cid_len, APIKEYS_NOT_FOUND, GetCurrentTimestamp());
}

/*
 * UsageRecord notes the outcome of a verification whose secret matched:
 * counted per key and code in shared memory when preloaded, last_used_at
 * written directly (rarely) when not, and only if may_write: pre_request
 * must write nothing, so it passes false.  handle is what the
 * verification's KeyLookupCached filled.
 */
void
UsageRecord(const CacheHandle *handle, const KeyInfo *key, ApikeysCode code,
			TimestampTz now, bool may_write)
{
	if (ApikeysSharedReady())
		CountCode(handle, key->client_id, strlen(key->client_id), code, now);
	else if (code == APIKEYS_VALID && may_write)
		LastUsedWriteDirect(key, now);
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
 * shared memory (the cache's slots, then the per-key table) into items,
 * all under the given hour.  Counts are taken, not copied: if the
 * caller's transaction fails they are lost (at most one interval), never
 * counted twice.
 */
void
UsageCollect(HTAB *items, TimestampTz hour)
{
	UsageItemSink sink;

	if (!ApikeysSharedReady())
		return;
	sink.items = items;
	sink.hour = hour;
	/* keys in the cache count in its slots; the others in counters.c */
	CacheDrainUsage(MyDatabaseId, CollectOne, &sink);
	CountersDrain(MyDatabaseId, CollectOne, &sink);
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
	values[0] = BoolGetDatum(ApikeysSharedReady());
	if (!ApikeysSharedReady())
	{
		for (int i = 1; i < 8; i++)
			nulls[i] = true;
	}
	else
	{
		int64		tracked;
		int64		capacity;
		int64		dropped;
		Size		bytes;

		CountersStats(&tracked, &capacity, &dropped);
		values[1] = Int64GetDatum(tracked);
		values[2] = Int64GetDatum(capacity);
		values[5] = Int64GetDatum(dropped);
		ThrottleAddressStats(&tracked, &capacity, &dropped);
		values[3] = Int64GetDatum(tracked);
		values[4] = Int64GetDatum(capacity);
		values[6] = Int64GetDatum(dropped);
		/* everything but the cache (apikeys.cache_stats() has that) */
		bytes = add_size(add_size(CountersShmemSize(), RecentShmemSize()),
						 add_size(DbListShmemSize(), ThrottleShmemSize()));
		values[7] = Int64GetDatum((int64) bytes);
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
	PG_RETURN_BOOL(ApikeysSharedReady());
}
