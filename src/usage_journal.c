/*-------------------------------------------------------------------------
 *
 * usage_journal.c
 *	  Writing usage to tables: the usage journal and its hourly rollup.
 *
 * Verification counts usage in shared memory (usage.c, usage_counters.c).  Every
 * apikeys.flush_interval the background worker takes those numbers out
 * and must make them durable (a crash may lose at most one interval).
 * Upserting one apikeys.usage row and updating one apikeys.keys row per
 * key used in the interval costs two row versions, their WAL and two
 * index probes per key, every ten seconds: at a million keys that is more
 * work than verification itself.  So a flush writes the interval's
 * numbers as one compact row of apikeys.usage_journal (about 30 bytes per
 * key used, no index, no row per key), and a rollup, about once an hour,
 * folds the journal's past hours into apikeys.usage (per key, per hour,
 * per code; the VALID row holds the hour's last use) in one transaction,
 * then deletes what it folded.  A key busy all hour thus costs one usage
 * row per hour instead of 360, and no write to apikeys.keys at all.
 *
 * Readers do not wait for the rollup: apikeys.key_usage adds the journal
 * to apikeys.usage, and key_list shows the latest of apikeys.usage's
 * last-use times and those of the journal, from a shared table that the
 * flush fills and the rollup empties (usage_recent.c).  After a crash the
 * launcher rolls up every database's
 * journal at start, so key_list needs no shared memory to be right.
 *
 * The row format is in usage_codec.c.
 *
 * IDENTIFICATION
 *	  src/usage_journal.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "catalog.h"
#include "usage_counters.h"
#include "worker_dblist.h"
#include "usage_journal.h"
#include "usage_codec.h"
#include "usage_recent.h"
#include "shmem.h"
#include "usage.h"

/*
 * JournalEncode packs items (all of one hour) into a journal row's data;
 * *nentries gets the number of keys in it.
 */
static bytea *
JournalEncode(UsageItems *items, TimestampTz base, int64 *nentries)
{
	StringInfoData buf;
	bytea	   *result;

	initStringInfo(&buf);
	appendStringInfoSpaces(&buf, VARHDRSZ + JOURNAL_HEADER_LEN);
	JournalPutHeader((uint8 *) buf.data + VARHDRSZ, base);

	*nentries = 0;
	for (uint32 i = 0; i < UsageItemsCount(items); i++)
	{
		UsageItem  *it = UsageItemAt(items, i);
		size_t		n;

		enlargeStringInfo(&buf, JOURNAL_ENTRY_MAXLEN);
		n = JournalPutEntry((uint8 *) buf.data + buf.len, base,
							it->key.client_id, it->len,
							it->counts, it->last_used);
		if (n == 0)
			continue;
		buf.len += n;
		(*nentries)++;
	}
	result = (bytea *) buf.data;
	SET_VARSIZE(result, buf.len);
	return result;
}

/* JournalDecode calls fn for each key of a journal row's data. */
static void
JournalDecode(bytea *data, JournalEntryFn fn, void *arg)
{
	if (!JournalDecodeBytes((const uint8 *) VARDATA_ANY(data),
							VARSIZE_ANY_EXHDR(data), fn, arg))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid API key usage journal data"),
				 errhint("Rows of apikeys.usage_journal are written by the usage flush and must not be edited.")));
}

/* ---- writing ---- */

/* Runs fn's SQL as the extension owner, with ordinary triggers off. */
typedef struct OwnerContext
{
	ApikeysSavedUser saved;
	int			guc_nest;
} OwnerContext;

static void
EnterOwnerContext(OwnerContext *oc)
{
	ApikeysBecomeOwner(&oc->saved);

	/*
	 * The rollup writes only apikeys.usage and the journal (no longer
	 * apikeys.keys), which have no triggers of ours.  The writes still run
	 * with session_replication_role = replica, undone when we are done even
	 * inside a caller's transaction, so that a row trigger someone added
	 * there (tens of microseconds per key for a PL/pgSQL one) does not fire
	 * once per key.
	 */
	oc->guc_nest = NewGUCNestLevel();
	(void) set_config_option("session_replication_role", "replica",
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
}

static void
LeaveOwnerContext(OwnerContext *oc)
{
	PopActiveSnapshot();
	SPI_finish();
	AtEOXact_GUC(true, oc->guc_nest);
	ApikeysRestoreUser(&oc->saved);
}

/* JournalWrite stores items as one journal row; returns the keys in it. */
static int64
JournalWrite(UsageItems *items, TimestampTz base)
{
	int64		nentries;
	bytea	   *data = JournalEncode(items, base, &nentries);
	Oid			types[3] = {TIMESTAMPTZOID, INT4OID, BYTEAOID};
	Datum		args[3];

	if (nentries == 0)
		return 0;
	args[0] = TimestampTzGetDatum(base);
	args[1] = Int32GetDatum((int32) Min(nentries, PG_INT32_MAX));
	args[2] = PointerGetDatum(data);
	if (SPI_execute_with_args(
							  "INSERT INTO apikeys.usage_journal (flushed_at, keys, data) VALUES ($1, $2, $3)",
							  3, types, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write the API key usage journal");
	return nentries;
}

/* JournalRelid: the OID of apikeys.usage_journal (an error when missing). */
static Oid
JournalRelid(void)
{
	Oid			relid = get_relname_relid("usage_journal",
										  get_namespace_oid("apikeys", false));

	if (!OidIsValid(relid))
		elog(ERROR, "could not find apikeys.usage_journal");
	return relid;
}

/*
 * JournalTake moves the journal rows flushed before `before` (0: all) into
 * items and deletes them; returns false, taking nothing, when another
 * rollup is under way.
 *
 * Two rollups at once must neither count a row twice nor wait for each
 * other.  Row locks (FOR UPDATE SKIP LOCKED) did that, but a row lock is a
 * WAL record and, on the first touch of a page after a checkpoint, a
 * full-page image.  Instead, a rollup holds one transaction-scoped lock on
 * the journal table as an object (not the relation lock, so flushes,
 * readers and autovacuum never conflict with it), taken without waiting.
 * The winner's DELETE removes exactly the rows it read: a flush that
 * commits meanwhile adds rows it did not see, which stay for the next one.
 */
static bool
JournalTake(UsageItems *items, TimestampTz before)
{
	Portal		portal;
	List	   *tids = NIL;
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		args[1];

	if (!ConditionalLockDatabaseObject(RelationRelationId, JournalRelid(),
									   0, ExclusiveLock))
		return false;
	args[0] = TimestampTzGetDatum(before == 0 ? DT_NOEND : before);
	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT j.ctid, pg_catalog.date_trunc('hour', j.flushed_at), j.data "
									   "  FROM apikeys.usage_journal j "
									   " WHERE j.flushed_at OPERATOR(pg_catalog.<) $1",
									   1, types, args, NULL, false, 0);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 8);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	td = SPI_tuptable->tupdesc;
			bool		n1,
						n2,
						n3;
			Datum		tid = SPI_getbinval(tup, td, 1, &n1);
			Datum		hour = SPI_getbinval(tup, td, 2, &n2);
			Datum		data = SPI_getbinval(tup, td, 3, &n3);
			UsageItemSink sink;
			ItemPointer copy;
			MemoryContext old;

			if (n1 || n2 || n3)
				elog(ERROR, "unexpected NULL in apikeys.usage_journal");
			sink.items = items;
			sink.hour = DatumGetTimestampTz(hour);
			JournalDecode(DatumGetByteaPP(data), UsageItemSinkAdd, &sink);

			old = MemoryContextSwitchTo(TopTransactionContext);
			copy = palloc(sizeof(ItemPointerData));
			ItemPointerCopy((ItemPointer) DatumGetPointer(tid), copy);
			tids = lappend(tids, copy);
			MemoryContextSwitchTo(old);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);

	if (tids != NIL)
	{
		Datum	   *elems = palloc(sizeof(Datum) * list_length(tids));
		int			n = 0;
		ListCell   *lc;
		Oid			deltypes[1] = {TIDARRAYOID};
		Datum		delargs[1];

		foreach(lc, tids)
			elems[n++] = PointerGetDatum(lfirst(lc));
		delargs[0] = PointerGetDatum(construct_array(elems, n, TIDOID,
													 sizeof(ItemPointerData), false,
													 TYPALIGN_SHORT));
		if (SPI_execute_with_args(
								  "DELETE FROM apikeys.usage_journal WHERE ctid OPERATOR(pg_catalog.=) ANY ($1)",
								  1, deltypes, delargs, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete from the API key usage journal");
		list_free_deep(tids);
	}
	return true;
}

/*
 * The rolled-up usage: apikeys.usage_packed holds, per hour and bucket of
 * client IDs (their last USAGE_BUCKET_CHARS characters: the lookup,
 * apikeys_internal._usage_last_use(), computes the same with right()), rows whose
 * data is packed as a journal row is (usage_codec.c): the keys of the
 * bucket used in that hour, in client-ID order, each with its counts and
 * last use.  The view apikeys.usage unpacks them, one row per key, hour and
 * code as the table of that name used to hold.
 *
 * One heap row and one index entry per key and hour cost about 200 bytes
 * of WAL before full-page images (record headers, tuple header, the index
 * tuple), and more as the client-ID index grew with every hour kept: a
 * million keys used in an hour were ~350 bytes of WAL each.  Packed, a key
 * costs its entry (~30 bytes) and a share of a row per bucket.
 */
#define USAGE_BUCKET_CHARS 2

static const char *
UsageBucket(const UsageItem *it, int *len)
{
	*len = Min(it->len, USAGE_BUCKET_CHARS);
	return it->key.client_id + it->len - *len;
}

/* qsort comparator: items by hour, bucket, then client ID */
static int
ItemCmp(const void *a, const void *b)
{
	const UsageItem *x = *(UsageItem *const *) a;
	const UsageItem *y = *(UsageItem *const *) b;
	const char *bx,
			   *by;
	int			lx,
				ly;
	int			c;

	if (x->key.hour != y->key.hour)
		return (x->key.hour > y->key.hour) - (x->key.hour < y->key.hour);
	bx = UsageBucket(x, &lx);
	by = UsageBucket(y, &ly);
	c = memcmp(bx, by, Min(lx, ly));
	if (c != 0)
		return c;
	if (lx != ly)
		return lx - ly;
	return strcmp(x->key.client_id, y->key.client_id);
}

/* ItemsSorted: the items of a set, sorted by ItemCmp; *n gets how many. */
static UsageItem **
ItemsSorted(UsageItems *items, long *n)
{
	UsageItem **sorted;

	*n = UsageItemsCount(items);
	sorted = palloc_extended(sizeof(UsageItem *) * (Size) Max(*n, 1), MCXT_ALLOC_HUGE);
	for (long k = 0; k < *n; k++)
		sorted[k] = UsageItemAt(items, (uint32) k);
	qsort(sorted, *n, sizeof(UsageItem *), ItemCmp);
	return sorted;
}

/*
 * PackItems packs items[0..n) (one hour, one bucket, client-ID order) as
 * journal-format data; *nkeys gets the keys packed.  The base is their
 * latest last use (the hour when none), so every last use is exact.
 */
static bytea *
PackItems(UsageItem **items, long n, int *nkeys)
{
	StringInfoData buf;
	TimestampTz base = items[0]->key.hour;
	bytea	   *result;

	for (long i = 0; i < n; i++)
		base = Max(base, items[i]->last_used);
	initStringInfo(&buf);
	appendStringInfoSpaces(&buf, VARHDRSZ + JOURNAL_HEADER_LEN);
	JournalPutHeader((uint8 *) buf.data + VARHDRSZ, base);
	*nkeys = 0;
	for (long i = 0; i < n; i++)
	{
		size_t		len;

		enlargeStringInfo(&buf, JOURNAL_ENTRY_MAXLEN);
		len = JournalPutEntry((uint8 *) buf.data + buf.len, base,
							  items[i]->key.client_id, items[i]->len,
							  items[i]->counts, items[i]->last_used);
		if (len == 0)
			continue;
		buf.len += len;
		(*nkeys)++;
	}
	result = (bytea *) buf.data;
	SET_VARSIZE(result, buf.len);
	return result;
}

/* UsageRows: the rows the view apikeys.usage shows for an item */
static int64
UsageRows(const UsageItem *it)
{
	int64		rows = 0;

	for (int c = 0; c < APIKEYS_NUM_CODES; c++)
		if (it->counts[c] != 0 || (c == APIKEYS_VALID && it->last_used != 0))
			rows++;
	return rows;
}

/*
 * UsageApply adds items to the rolled-up usage (apikeys.usage_packed): one
 * row per hour and bucket used, inserted, never updated (a key and hour
 * rolled up twice, by a flush_usage() in the middle of an hour, has an
 * entry in two rows, which the readers add up); returns the rows the view
 * apikeys.usage gains (one per key, hour and code used, the VALID one also
 * for a last use alone).
 */
static int64
UsageApply(UsageItems *items)
{
	long		nitems;
	UsageItem **sorted;
	Datum	   *p_hour,
			   *p_bucket,
			   *p_keys,
			   *p_data;
	int			np = 0;
	int64		written = 0;
	long		first = 0;

	if (UsageItemsCount(items) == 0)
		return 0;
	sorted = ItemsSorted(items, &nitems);
	p_hour = palloc_extended(sizeof(Datum) * (Size) nitems, MCXT_ALLOC_HUGE);
	p_bucket = palloc_extended(sizeof(Datum) * (Size) nitems, MCXT_ALLOC_HUGE);
	p_keys = palloc_extended(sizeof(Datum) * (Size) nitems, MCXT_ALLOC_HUGE);
	p_data = palloc_extended(sizeof(Datum) * (Size) nitems, MCXT_ALLOC_HUGE);
	while (first < nitems)
	{
		long		last = first + 1;
		int			blen;
		const char *bucket = UsageBucket(sorted[first], &blen);
		int			nkeys;
		bytea	   *data;

		while (last < nitems && sorted[last]->key.hour == sorted[first]->key.hour)
		{
			int			l;
			const char *b = UsageBucket(sorted[last], &l);

			if (l != blen || memcmp(b, bucket, blen) != 0)
				break;
			last++;
		}
		for (long i = first; i < last; i++)
			written += UsageRows(sorted[i]);
		data = PackItems(sorted + first, last - first, &nkeys);
		if (nkeys > 0)
		{
			p_hour[np] = TimestampTzGetDatum(sorted[first]->key.hour);
			p_bucket[np] = PointerGetDatum(cstring_to_text_with_len(bucket, blen));
			p_keys[np] = Int32GetDatum(nkeys);
			p_data[np] = PointerGetDatum(data);
			np++;
		}
		first = last;
	}

	if (np > 0)
	{
		Oid			types[4] = {TIMESTAMPTZARRAYOID, TEXTARRAYOID, INT4ARRAYOID, BYTEAARRAYOID};
		Datum		args[4];

		args[0] = PointerGetDatum(construct_array(p_hour, np, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[1] = PointerGetDatum(construct_array(p_bucket, np, TEXTOID, -1, false, TYPALIGN_INT));
		args[2] = PointerGetDatum(construct_array(p_keys, np, INT4OID, 4, true, TYPALIGN_INT));
		args[3] = PointerGetDatum(construct_array(p_data, np, BYTEAOID, -1, false, TYPALIGN_INT));
		if (SPI_execute_with_args(
								  "INSERT INTO apikeys.usage_packed (hour, bucket, keys, data) "
								  "SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), "
								  "                         pg_catalog.unnest($3), pg_catalog.unnest($4))",
								  4, types, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not write API key usage");
	}
	return written;
}

/* JournalOldest: flushed_at of the oldest journal row, 0 when empty. */
static TimestampTz
JournalOldest(void)
{
	bool		isnull;
	Datum		d;

	if (SPI_execute("SELECT pg_catalog.min(flushed_at) FROM apikeys.usage_journal",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the API key usage journal");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(d);
}

/* ---- counts taken out of shared memory, until their transaction ends ---- */

/*
 * A flush takes the counts out of shared memory (so that no two flushes
 * count them twice) and writes them in its transaction.  If that
 * transaction, or the subtransaction that took them, does not commit, the
 * counts go back to shared memory (usage_counters.c) instead of being lost: a
 * use must never disappear, or the "unused" policy could revoke a key in
 * use (apply_policies flushes inside its own transaction, which a later
 * error may abort).  Each set lives in TopTransactionContext, tagged with
 * the transaction nesting level that took it.
 */
typedef struct TakenSet
{
	UsageItems *items;
	int			level;
} TakenSet;

static List *taken_sets = NIL;	/* in TopTransactionContext */
static int	rollup_level = 0;	/* a rollup forgot usage_recent.c entries: its
								 * level */
static bool rollup_all = false; /* and it took the whole journal */
static bool taken_callbacks = false;
static bool took_in_xact = false;	/* counted in DbListTakeInFlight */
static bool proof_prepared = false; /* apikeys_usage_unproven ran in this xact */

/* GiveBack returns a set's counts to shared memory (usage_counters.c). */
static void
GiveBack(UsageItems *items)
{
	bool		any = false;

	for (uint32 i = 0; i < UsageItemsCount(items); i++)
	{
		UsageItem  *it = UsageItemAt(items, i);
		uint32		c32[APIKEYS_NUM_CODES];

		for (int c = 0; c < APIKEYS_NUM_CODES; c++)
			c32[c] = (uint32) Min(it->counts[c], (uint64) PG_UINT32_MAX);
		CountersAdd(MyDatabaseId, it->key.client_id, it->len,
					c32, it->last_used);
		any = true;
	}
	if (any)
		DbListMarkDirty(MyDatabaseId);
}

static void
TakenXactCallback(XactEvent event, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			foreach(lc, taken_sets)
				GiveBack(((TakenSet *) lfirst(lc))->items);
			if (rollup_level > 0)
				DbListRecentIncomplete(MyDatabaseId);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (rollup_level > 0 && rollup_all)
				DbListRecentRollupDone(MyDatabaseId);
			break;
		case XACT_EVENT_PREPARE:
			/* COMMIT PREPARED or ROLLBACK PREPARED decides, out of our sight */
			if (taken_sets != NIL)
				DbListNoteLoss(GetCurrentTimestamp());
			if (rollup_level > 0)
				DbListRecentIncomplete(MyDatabaseId);
			break;
		default:
			return;
	}
	if (took_in_xact)
		DbListTakeInFlight(false);
	took_in_xact = false;
	/* the sets go with TopTransactionContext */
	taken_sets = NIL;
	rollup_level = 0;
	rollup_all = false;
	proof_prepared = false;
}

static void
TakenSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	ListCell   *lc;

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, taken_sets)
		{
			TakenSet   *t = (TakenSet *) lfirst(lc);

			if (t->level >= level)
			{
				GiveBack(t->items);
				taken_sets = foreach_delete_current(taken_sets, lc);
			}
		}
		if (rollup_level >= level)
		{
			/*
			 * usage_recent.c forgot last uses that apikeys.usage will not
			 * hold
			 */
			DbListRecentIncomplete(MyDatabaseId);
			rollup_level = 0;
			rollup_all = false;
		}
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, taken_sets)
		{
			TakenSet   *t = (TakenSet *) lfirst(lc);

			if (t->level >= level)
				t->level = level - 1;
		}
		if (rollup_level >= level)
			rollup_level = level - 1;
	}
}

static void
TakenCallbacksRegister(void)
{
	if (taken_callbacks)
		return;
	RegisterXactCallback(TakenXactCallback, NULL);
	RegisterSubXactCallback(TakenSubXactCallback, NULL);
	taken_callbacks = true;
}

/*
 * TakeUsage takes this database's counts out of shared memory into a set
 * that goes back to shared memory if this (sub)transaction does not
 * commit.
 */
static UsageItems *
TakeUsage(TimestampTz hour)
{
	MemoryContext old;
	UsageItems *taken;
	TakenSet   *t;

	TakenCallbacksRegister();
	if (!took_in_xact)
	{
		DbListTakeInFlight(true);
		took_in_xact = true;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	taken = UsageItemsCreate(1024);
	t = palloc(sizeof(TakenSet));
	t->items = taken;
	t->level = GetCurrentTransactionNestLevel();
	taken_sets = lappend(taken_sets, t);
	MemoryContextSwitchTo(old);
	/* usage_counters.c drops counts when full: a loss, noted for the proof */
	{
		int64		tracked,
					capacity,
					dropped;

		CountersStats(&tracked, &capacity, &dropped);
		DbListNoteDrops((uint64) dropped);
	}
	UsageCollect(taken, hour);
	return taken;
}

/*
 * NoteRollup: this transaction took journal rows (all of them: all) and
 * will forget their last uses from usage_recent.c before it commits.
 */
static void
NoteRollup(bool all)
{
	int			level = GetCurrentTransactionNestLevel();

	TakenCallbacksRegister();
	if (rollup_level == 0 || level < rollup_level)
		rollup_level = level;
	rollup_all |= all;
}

/*
 * UsageFlushDatabase writes this database's usage, in the current
 * transaction, as the extension owner.
 *	rollup false (the worker, every interval): the counts in shared memory
 *	  become one journal row; returns the keys in it.
 *	rollup true (flush_usage(), the worker at start): those counts and the
 *	  whole journal go into apikeys.usage; returns the usage rows written.
 */
int64
UsageFlushDatabase(bool rollup)
{
	return UsageWrite(rollup ? USAGE_ROLLUP_ALL : USAGE_FLUSH);
}

/*
 * UsageWrite does the work of UsageFlushDatabase, and for the worker's
 * hourly rollup (USAGE_ROLLUP_PAST_HOURS) rolls up only the hours that
 * are over: the counts in shared memory are journaled like a flush, and
 * journal rows of the current hour stay.  A rollup in the middle of an
 * hour would write rows the next one adds to, a conflicting upsert (a row
 * lock and an update) per key; hours that are over are plain inserts.
 */
int64
UsageWrite(UsageWriteMode mode)
{
	UsageItems *taken;
	UsageItems *items;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz hour;
	int64		written = 0;
	OwnerContext oc;

	if (!ApikeysSharedReady())
		return 0;
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot flush API key usage during recovery"),
				 errhint("Usage is flushed on the primary; a standby does not count it.")));
	(void) ApikeysKeysRelid();	/* the extension must be installed here */

	hour = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_trunc,
												   CStringGetTextDatum("hour"),
												   TimestampTzGetDatum(now)));
	taken = TakeUsage(hour);
	if (UsageItemsCount(taken) == 0 && mode == USAGE_FLUSH)
		return 0;

	EnterOwnerContext(&oc);
	if (mode != USAGE_ROLLUP_ALL)
	{
		written = JournalWrite(taken, now);
		RecentNote(taken);
		DbListJournalState(MyDatabaseId, now, false);
	}
	if (mode != USAGE_FLUSH)
	{
		/* the rollup's own set: the taken counts stay as they are */
		items = UsageItemsCreate(UsageItemsCount(taken));
		if (mode == USAGE_ROLLUP_ALL)
		{
			for (uint32 i = 0; i < UsageItemsCount(taken); i++)
			{
				UsageItem  *it = UsageItemAt(taken, i);

				UsageItemAdd(items, it->key.client_id, it->len,
							 it->key.hour, it->counts, it->last_used);
			}

			/*
			 * usage_recent.c is complete once this commits
			 * (RollupXactCallback)
			 */
			DbListRecentRollupBegin(MyDatabaseId);
		}
		if (JournalTake(items, mode == USAGE_ROLLUP_PAST_HOURS ? hour : 0))
		{
			NoteRollup(mode == USAGE_ROLLUP_ALL);
			written = UsageApply(items);
			RecentForget(items);
			DbListJournalState(MyDatabaseId, JournalOldest(), true);
		}
		else if (mode == USAGE_ROLLUP_ALL)
		{
			/*
			 * Another rollup is under way: this one is a flush, and tells the
			 * worker how old the journal's oldest row is (it may hold hours
			 * the worker does not know of yet).
			 */
			written = JournalWrite(taken, now);
			RecentNote(taken);
			DbListJournalState(MyDatabaseId, JournalOldest(), false);
		}
		UsageItemsDestroy(items);
	}
	LeaveOwnerContext(&oc);
	return written;
}

PG_FUNCTION_INFO_V1(apikeys_flush_usage);
PG_FUNCTION_INFO_V1(apikeys_usage_unproven);
PG_FUNCTION_INFO_V1(apikeys_usage_health);
PG_FUNCTION_INFO_V1(apikeys_usage_accept_losses);
PG_FUNCTION_INFO_V1(apikeys_journal_decode);
PG_FUNCTION_INFO_V1(apikeys_recent_use);
PG_FUNCTION_INFO_V1(apikeys_usage_find);
PG_FUNCTION_INFO_V1(apikeys_usage_pack);

/*
 * SQL function: apikeys.flush_usage(rollup boolean DEFAULT true) returns bigint
 *
 * Writes this database's usage now.  With rollup (the default) everything
 * reaches apikeys.usage, last uses included; without, only what the
 * background worker writes every interval (one journal row).  0 when the
 * library is not preloaded (nothing is counted).
 */
Datum
apikeys_flush_usage(PG_FUNCTION_ARGS)
{
	bool		rollup = PG_NARGS() < 1 || PG_ARGISNULL(0) || PG_GETARG_BOOL(0);

	PG_RETURN_INT64(UsageFlushDatabase(rollup));
}

/* What the decoder SRF's callback needs. */
typedef struct DecodeArg
{
	ReturnSetInfo *rsinfo;
} DecodeArg;

static void
DecodeOne(const char *client_id, int len, const uint64 *counts,
		  TimestampTz last_used, void *arg)
{
	ReturnSetInfo *rsinfo = ((DecodeArg *) arg)->rsinfo;
	Datum		values[4];
	bool		nulls[4] = {false};
	bool		any = false;

	values[0] = PointerGetDatum(cstring_to_text_with_len(client_id, len));
	values[3] = TimestampTzGetDatum(last_used);
	nulls[3] = last_used == 0;
	for (int c = 0; c < APIKEYS_NUM_CODES; c++)
	{
		if (counts[c] == 0)
			continue;
		values[1] = CStringGetTextDatum(ApikeysOutcomes[c].name);
		values[2] = Int64GetDatum((int64) Min(counts[c], (uint64) PG_INT64_MAX));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		any = true;
	}
	if (!any)
	{
		nulls[1] = nulls[2] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * SQL function: apikeys_internal._journal_decode(data bytea)
 *	 returns setof (client_id text, code text, count bigint, last_used timestamptz)
 *
 * One row per key and outcome code counted in a journal row (one with a
 * NULL code for a key that has only a last-use time).
 */
Datum
apikeys_journal_decode(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DecodeArg	da;

	InitMaterializedSRF(fcinfo, 0);
	da.rsinfo = rsinfo;
	JournalDecode(PG_GETARG_BYTEA_PP(0), DecodeOne, &da);
	return (Datum) 0;
}

/* What the finder's callback needs. */
typedef struct FindArg
{
	const char *client_id;
	int			len;
	TimestampTz last_used;
} FindArg;

static void
FindOne(const char *client_id, int len, const uint64 *counts,
		TimestampTz last_used, void *arg)
{
	FindArg    *fa = (FindArg *) arg;

	if (len == fa->len && memcmp(client_id, fa->client_id, len) == 0)
		fa->last_used = Max(fa->last_used, last_used);
}

/*
 * SQL function: apikeys_internal._usage_find(data bytea, client_id text)
 *	 returns timestamptz
 *
 * The key's last use in a packed usage row (journal format), NULL when the
 * row holds none.
 */
Datum
apikeys_usage_find(PG_FUNCTION_ARGS)
{
	text	   *cid;
	FindArg		fa;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	cid = PG_GETARG_TEXT_PP(1);
	fa.client_id = VARDATA_ANY(cid);
	fa.len = VARSIZE_ANY_EXHDR(cid);
	fa.last_used = 0;
	JournalDecode(PG_GETARG_BYTEA_PP(0), FindOne, &fa);
	if (fa.last_used == 0)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(fa.last_used);
}

/*
 * SQL function: apikeys_internal._usage_pack(client_ids text[], codes text[],
 *	 counts bigint[], last_used timestamptz[]) returns bytea
 *
 * Rows of one hour and bucket as apikeys.usage showed them (a key, a code,
 * its count, the last use on the VALID row) packed as a row of
 * apikeys.usage_packed holds them: for the update from 1.0, whose
 * apikeys.usage was a table of such rows.
 */
Datum
apikeys_usage_pack(PG_FUNCTION_ARGS)
{
	ArrayType  *arrs[4];
	Datum	   *vals[4];
	bool	   *nulls[4];
	int			ns[4];
	Oid			elty[4] = {TEXTOID, TEXTOID, INT8OID, TIMESTAMPTZOID};
	UsageItems *items = UsageItemsCreate(0);
	UsageItem **sorted;
	long		nitems;
	int			nkeys;

	for (int a = 0; a < 4; a++)
		if (PG_ARGISNULL(a))
			PG_RETURN_NULL();
	for (int a = 0; a < 4; a++)
	{
		int16		typlen;
		bool		byval;
		char		align;

		arrs[a] = PG_GETARG_ARRAYTYPE_P(a);
		get_typlenbyvalalign(elty[a], &typlen, &byval, &align);
		deconstruct_array(arrs[a], elty[a], typlen, byval, align, &vals[a], &nulls[a], &ns[a]);
		if (ns[a] != ns[0])
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("usage arrays must have the same length")));
	}
	for (int i = 0; i < ns[0]; i++)
	{
		uint64		counts[APIKEYS_NUM_CODES] = {0};
		char	   *cid;
		char	   *code;
		int			c;

		if (nulls[0][i] || nulls[1][i] || nulls[2][i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("usage rows must have a client ID, a code and a count")));
		cid = TextDatumGetCString(vals[0][i]);
		code = TextDatumGetCString(vals[1][i]);
		for (c = 0; c < APIKEYS_NUM_CODES; c++)
			if (strcmp(code, ApikeysOutcomes[c].name) == 0)
				break;
		if (c == APIKEYS_NUM_CODES || strlen(cid) == 0 || strlen(cid) > APIKEYS_CLIENT_ID_MAXLEN ||
			DatumGetInt64(vals[2][i]) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid usage row for client ID \"%s\" and code \"%s\"", cid, code)));
		counts[c] = (uint64) DatumGetInt64(vals[2][i]);
		UsageItemAdd(items, cid, strlen(cid), 0, counts,
					 nulls[3][i] ? 0 : DatumGetTimestampTz(vals[3][i]));
	}
	sorted = ItemsSorted(items, &nitems);
	if (nitems == 0)
		PG_RETURN_NULL();
	PG_RETURN_BYTEA_P(PackItems(sorted, nitems, &nkeys));
}

/*
 * SQL function: apikeys_internal._recent_use(client_id text) returns timestamptz
 *
 * The key's last use written to the usage journal and not yet rolled up
 * into apikeys.usage; NULL when there is none (or not preloaded).
 */
Datum
apikeys_recent_use(PG_FUNCTION_ARGS)
{
	text	   *cid;
	TimestampTz t;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	cid = PG_GETARG_TEXT_PP(0);
	t = RecentUse(VARDATA_ANY(cid), VARSIZE_ANY_EXHDR(cid));
	if (t == 0)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(t);
}

/* ---- proof of non-use, for the "unused" policy ---- */

/*
 * StandbysMayVerify: may a hot standby of this primary have verified keys
 * (whose uses the primary never sees)?  apikeys.standbys_verify says so
 * (on), says no (off), or, by default (auto), any standby the primary
 * knows of counts: a physical walsender streaming to one, or a physical
 * replication slot (kept for one that is away).
 */
static bool
StandbysMayVerify(void)
{
	bool		isnull;
	bool		any;

	if (apikeys_standbys_verify != APIKEYS_STANDBYS_AUTO)
		return apikeys_standbys_verify == APIKEYS_STANDBYS_ON;
	if (SPI_execute("SELECT EXISTS (SELECT FROM pg_catalog.pg_stat_get_wal_senders() w "
					"                WHERE w.state IS DISTINCT FROM 'backup' "
					"                  AND NOT EXISTS (SELECT FROM pg_catalog.pg_replication_slots s "
					"                                   WHERE s.active_pid OPERATOR(pg_catalog.=) w.pid "
					"                                     AND s.slot_type OPERATOR(pg_catalog.=) 'logical')) "
					"    OR EXISTS (SELECT FROM pg_catalog.pg_replication_slots s "
					"                WHERE s.slot_type OPERATOR(pg_catalog.=) 'physical')",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not look for standbys");
	any = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return !isnull && any;
}

/*
 * SQL function: apikeys_internal._usage_unproven(unused_after interval) returns text
 *
 * Why this database cannot prove that a key without a recorded use in the
 * last unused_after was not used (NULL when it can); the one place that
 * knows where uses are recorded, for apikeys_internal._unused_proven.  Its first
 * call in a transaction makes the recorded uses complete: it waits for a
 * rollup under way and keeps others from starting until the transaction
 * ends (a rollup forgets usage_recent.c's times before its apikeys.usage rows
 * commit), and journals the counts shared memory holds (a flush that did
 * not run hides nothing), or rolls the whole journal up when usage_recent.c may
 * not hold all its last uses (after a start, or usage_recent.c filled up).  Then non-use is unproven when:
 *	- the library is not preloaded: read-only transactions and pre_request
 *	  record no use, nor do standbys;
 *	- this server is a standby;
 *	- a hot standby may serve verifications (StandbysMayVerify);
 *	- uses may have been lost within unused_after (DbListLostUntil: the
 *	  server or the launcher started, a promotion, a count dropped);
 *	- usage_recent.c may miss last uses of the journal (DbListRecentComplete),
 *	  and this transaction's full rollup found another under way.
 */
Datum
apikeys_usage_unproven(PG_FUNCTION_ARGS)
{
	static bool standbys = false;
	Interval   *unused_after;
	TimestampTz since;
	TimestampTz lost;

	/*
	 * not STRICT, so that a call with NULL is refused to those without
	 * EXECUTE
	 */
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	unused_after = PG_GETARG_INTERVAL_P(0);

	if (!ApikeysSharedReady())
		PG_RETURN_TEXT_P(cstring_to_text("apikeys is not in shared_preload_libraries: uses in read-only transactions, in pre_request and on standbys are not recorded"));
	if (RecoveryInProgress())
		PG_RETURN_TEXT_P(cstring_to_text("this server is a standby"));

	if (!proof_prepared)
	{
		OwnerContext oc;

		LockDatabaseObject(RelationRelationId, JournalRelid(), 0, ShareLock);
		/* usage_recent.c may miss the journal's last uses: roll it all up now */
		(void) UsageWrite(DbListRecentComplete(MyDatabaseId) ? USAGE_FLUSH : USAGE_ROLLUP_ALL);
		EnterOwnerContext(&oc);
		standbys = StandbysMayVerify();
		LeaveOwnerContext(&oc);
		TakenCallbacksRegister();	/* resets proof_prepared at the end */
		proof_prepared = true;
	}
	if (standbys)
		PG_RETURN_TEXT_P(cstring_to_text(apikeys_standbys_verify == APIKEYS_STANDBYS_ON ?
										 "apikeys.standbys_verify is on: uses on standbys are not recorded on the primary" :
										 "this primary has a standby (a walsender or a physical replication slot), whose uses are not recorded on the primary; set apikeys.standbys_verify = off if standbys serve no verifications"));
	if (!DbListRecentComplete(MyDatabaseId) &&
		!(rollup_all && DbListRecentPending(MyDatabaseId)))
		PG_RETURN_TEXT_P(cstring_to_text("the usage journal has not been rolled up since the server started or the table of recent uses filled up"));

	since = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
													TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
													IntervalPGetDatum(unused_after)));
	lost = DbListLostUntil();
	if (lost >= since)
		PG_RETURN_TEXT_P(cstring_to_text(psprintf("uses until %s may have been lost (a server start, crash, failover or full usage table)",
												  timestamptz_to_str(lost))));
	PG_RETURN_NULL();
}

/*
 * SQL function: apikeys_internal._usage_health(OUT lost_until timestamptz,
 *	 OUT visits_not_started bigint, OUT journal_in_recent boolean)
 *
 * What the proof of non-use depends on: the latest time up to which a use
 * may have been lost (NULL: none, or not preloaded), the worker visits
 * that could not start, and whether usage_recent.c holds every last use of this
 * database's journal.
 */
Datum
apikeys_usage_health(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false};
	TimestampTz t = DbListLostUntil();

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = TimestampTzGetDatum(t);
	nulls[0] = t == 0;
	values[1] = Int64GetDatum((int64) DbListVisitsNotStarted());
	values[2] = BoolGetDatum(DbListRecentComplete(MyDatabaseId));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * SQL function: apikeys_internal._usage_accept_losses() returns void
 *
 * Superuser only: forget the possible losses noted so far (e.g. after the
 * first start with apikeys preloaded, when no key was in use before).
 */
Datum
apikeys_usage_accept_losses(PG_FUNCTION_ARGS)
{
	DbListForgetLosses();
	PG_RETURN_VOID();
}
