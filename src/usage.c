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
 * holds counts in its entry's usage slot (verify_cache.c, through the handle its
 * lookup gave the verification); any other key in the per-key table
 * (usage_counters.c).  Every apikeys.flush_interval the background worker
 * (worker.c) has usage_journal.c write the counts of a database as one row of
 * apikeys.usage_journal, gathered here (UsageCollect) into a set of items;
 * about once an hour usage_journal.c rolls the journal up into apikeys.usage
 * (the VALID row holding the hour's last use; apikeys.keys is not
 * written).  apikeys.flush_usage() does it at once.
 * A crash loses what was not yet flushed (at most one interval) and
 * nothing else.  Usage is not counted during recovery (a standby cannot
 * write it anywhere).
 *
 * Not preloaded: nothing is shared; last_used_at is written directly,
 * rarely (usage_lastused.c).  Usage counts, address throttling and rate limits
 * (verify_throttle.c) need shared memory and are not available.
 *
 * Calls: verify_cache.c, usage_counters.c, usage_lastused.c; called by verify.c (the count)
 * and usage_journal.c (the collection).
 *
 * IDENTIFICATION
 *	  src/usage.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_control.h"
#include "common/controldata_utils.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "utils/timestamp.h"

#include "verify_cache.h"
#include "usage_counters.h"
#include "worker_dblist.h"
#include "usage_lastused.h"
#include "usage_recent.h"
#include "shmem.h"
#include "verify_throttle.h"
#include "usage.h"

/*
 * CountCode adds one outcome to a key's counters: in the cache entry the
 * handle names when it still holds the key, else in usage_counters.c's table.
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
 * survives the request's rollback.  The address is counted by verify_throttle.c.
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
UsageCollect(UsageItems *items, TimestampTz hour)
{
	UsageItemSink sink;

	if (!ApikeysSharedReady())
		return;
	sink.items = items;
	sink.hour = hour;
	/* keys in the cache count in its slots; the others in usage_counters.c */
	CacheDrainUsage(MyDatabaseId, CollectOne, &sink);
	CountersDrain(MyDatabaseId, CollectOne, &sink);
}

/* ---- usage kept across a clean shutdown ---- */

/*
 * Counts live in shared memory until a flush, so a restart would lose up
 * to one flush interval of uses, and the "unused" policy could then never
 * trust the last unused_after (usage_journal.c, apikeys_internal._usage_unproven).  As
 * pg_stat_statements does, the postmaster saves them to a file when it
 * exits cleanly (after the shutdown checkpoint, when every backend has
 * gone and nothing can count any more), and the launcher of the next run reads them back and deletes the
 * file.  No file, a bad one, or a run that was not a primary's (a standby
 * counts nothing) means uses may have been lost: the launcher notes that.
 * A server that starts in recovery deletes the file: a promoted standby,
 * or a backup restored from a copy of it, must not trust another server's
 * counts.
 */
#define USAGE_SAVE_FILE		"pg_stat/apikeys_usage.stat"
#define USAGE_SAVE_TMP		"pg_stat/apikeys_usage.tmp"
#define USAGE_SAVE_MAGIC	0x41504b55	/* "APKU" */

typedef struct UsageSaveHeader
{
	uint32		magic;
	uint32		ncodes;
	TimestampTz lost_until;
} UsageSaveHeader;

typedef struct UsageSaveArg
{
	FILE	   *f;
	Oid			dbid;
	bool		ok;
} UsageSaveArg;

static void
SaveOne(const char *client_id, int len, const uint32 *counts,
		TimestampTz last_used, void *arg)
{
	UsageSaveArg *a = (UsageSaveArg *) arg;
	uint8		l = (uint8) len;

	if (len <= 0 || len > APIKEYS_CLIENT_ID_MAXLEN)
		return;
	if (fwrite(&a->dbid, sizeof(Oid), 1, a->f) != 1 ||
		fwrite(&l, 1, 1, a->f) != 1 ||
		fwrite(client_id, 1, len, a->f) != (size_t) len ||
		fwrite(counts, sizeof(uint32), APIKEYS_NUM_CODES, a->f) != APIKEYS_NUM_CODES ||
		fwrite(&last_used, sizeof(TimestampTz), 1, a->f) != 1)
		a->ok = false;
}

/* UsageSaveAtExit: on_shmem_exit of the postmaster; a clean exit only. */
static void
UsageSaveAtExit(int code, Datum arg)
{
	Oid			dbids[APIKEYS_MAX_FLUSH_DATABASES];
	bool		primary;
	UsageSaveHeader h;
	UsageSaveArg a;
	int			n;

	ControlFileData *control;
	bool		crc_ok;

	if (code != 0 || !ApikeysSharedReady())
		return;

	/*
	 * Only after a shutdown checkpoint: an immediate shutdown also exits with
	 * 0, but its backends were killed mid-way and a commit it reported may
	 * not be on disk (synchronous_commit = off), so a flushed count may be
	 * gone with it.
	 */
	control = get_controlfile(DataDir, &crc_ok);
	if (!crc_ok || control->state != DB_SHUTDOWNED)
		return;
	n = DbListSaveState(dbids, APIKEYS_MAX_FLUSH_DATABASES, &primary, &h.lost_until);
	if (!primary)
		return;
	h.magic = USAGE_SAVE_MAGIC;
	h.ncodes = APIKEYS_NUM_CODES;
	a.f = fopen(USAGE_SAVE_TMP, PG_BINARY_W);
	if (a.f == NULL)
		return;
	a.ok = fwrite(&h, sizeof(h), 1, a.f) == 1;
	for (int i = 0; i < n && a.ok; i++)
	{
		a.dbid = dbids[i];
		CacheDrainUsage(dbids[i], SaveOne, &a);
		CountersDrain(dbids[i], SaveOne, &a);
	}
	if (fclose(a.f) != 0 || !a.ok || rename(USAGE_SAVE_TMP, USAGE_SAVE_FILE) != 0)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not save API key usage to \"%s\": %m", USAGE_SAVE_FILE)));
		unlink(USAGE_SAVE_TMP);
	}
}

/*
 * UsageSaveRegister (the postmaster, at shared memory creation): save at
 * a clean exit; a start in recovery forgets what was saved.
 */
void
UsageSaveRegister(void)
{
	if (IsUnderPostmaster)
		return;
	if (access("standby.signal", F_OK) == 0 || access("recovery.signal", F_OK) == 0)
		unlink(USAGE_SAVE_FILE);
	on_shmem_exit(UsageSaveAtExit, (Datum) 0);
}

/*
 * UsageLoadSaved (the launcher's first start): the counts a clean shutdown
 * saved go back into shared memory, and the losses it had noted are noted
 * again; false when there is nothing valid to load (uses may be lost).
 */
bool
UsageLoadSaved(void)
{
	FILE	   *f = fopen(USAGE_SAVE_FILE, PG_BINARY_R);
	UsageSaveHeader h;
	bool		ok;

	if (f == NULL)
		return false;
	ok = fread(&h, sizeof(h), 1, f) == 1 && h.magic == USAGE_SAVE_MAGIC &&
		h.ncodes == APIKEYS_NUM_CODES;
	while (ok)
	{
		Oid			dbid;
		uint8		l;
		char		cid[APIKEYS_CLIENT_ID_MAXLEN + 1];
		uint32		counts[APIKEYS_NUM_CODES];
		TimestampTz last_used;

		if (fread(&dbid, sizeof(Oid), 1, f) != 1)
			break;				/* the end */
		if (fread(&l, 1, 1, f) != 1 || l == 0 || l > APIKEYS_CLIENT_ID_MAXLEN ||
			fread(cid, 1, l, f) != l ||
			fread(counts, sizeof(uint32), APIKEYS_NUM_CODES, f) != APIKEYS_NUM_CODES ||
			fread(&last_used, sizeof(TimestampTz), 1, f) != 1)
		{
			ok = false;
			break;
		}
		CountersAdd(dbid, cid, l, counts, last_used);
		DbListMarkDirty(dbid);
	}
	fclose(f);
	unlink(USAGE_SAVE_FILE);
	if (ok && h.lost_until != 0)
		DbListNoteLoss(h.lost_until);
	return ok;
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
 * SQL function: apikeys_internal._preloaded() returns boolean
 *
 * Is the library in shared_preload_libraries (with shared memory)?  Used
 * to warn that rate limits are not enforced otherwise.
 */
Datum
apikeys_preloaded_fn(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ApikeysSharedReady());
}
