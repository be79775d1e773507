/*-------------------------------------------------------------------------
 *
 * worker_dblist.c
 *	  The background worker's list of databases and their journal
 *	  schedule.
 *
 * Usage is counted in shared memory for every database of the server,
 * and the launcher (worker.c) must know which databases to visit: those
 * with usage not yet flushed ("dirty"), and those whose usage journal is
 * due for a rollup (its oldest row is from an earlier hour, or the
 * recent-use table of usage_recent.c filled up).  This file holds that list, in
 * shared memory, one slot per database, at most
 * APIKEYS_MAX_FLUSH_DATABASES of them; a database beyond that is flushed
 * only by apikeys.flush_usage().
 *
 * It is a leaf: usage_counters.c marks databases dirty, usage_journal.c records what
 * each journal holds, usage_recent.c asks for an early rollup, and worker.c
 * reads the list.  A slot is claimed under the list's own lock (tranche
 * "apikeys database list"), the last in the lock order: it may be taken
 * under usage_counters.c's; the flags themselves are atomics.
 *
 * Also the two steps of every visit of a database by a background worker
 * (worker.c, verify_prewarm.c, admin_claim.c): WorkerDefine fills in what every worker
 * of the extension has, RunWorkerAndWait starts one and waits for it, RunExtensionFunction runs one SQL function of the
 * extension in the worker's database.
 *
 * IDENTIFICATION
 *	  src/worker_dblist.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "executor/spi.h"
#include "commands/extension.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "worker_dblist.h"
#include "shmem.h"

#define DBLIST_TRANCHE		"apikeys database list"

typedef struct DbListShared
{
	/* databases with usage not yet flushed: the launcher's worklist */
	Oid			dbids[APIKEYS_MAX_FLUSH_DATABASES];
	pg_atomic_uint32 dirty[APIKEYS_MAX_FLUSH_DATABASES];
	/* oldest row of each database's usage journal (0: none known) */
	pg_atomic_uint64 journal_since[APIKEYS_MAX_FLUSH_DATABASES];
	/* the recent-use table filled up: roll up at the next visit */
	pg_atomic_uint32 rollup_wanted[APIKEYS_MAX_FLUSH_DATABASES];

	/*
	 * usage_recent.c holds every last use of the journal (a full rollup
	 * since)
	 */
	pg_atomic_uint32 recent_complete[APIKEYS_MAX_FLUSH_DATABASES];

	/*
	 * Proof of non-use (DbListLostUntil): uses before this time may have been
	 * lost (server start, promotion, a dropped count); 0 while unset.
	 */
	pg_atomic_uint64 lost_until;
	pg_atomic_uint32 launcher_started;	/* the launcher's first start is noted */
	pg_atomic_uint64 dropped_seen;	/* usage_counters.c's dropped_keys already
									 * noted */
	/* flush, rollup and policy visits that could not start (no free slot) */
	pg_atomic_uint64 visits_not_started;
	/* a database found no slot: its usage is not saved at shutdown */
	pg_atomic_uint32 slot_refused;
	/* transactions holding counts they took (a flush under way) */
	pg_atomic_uint32 takes_in_flight;
} DbListShared;

static DbListShared *dblist = NULL;
static LWLock *dblist_lock = NULL;

/* DbListShmemSize: bytes of the shared list. */
Size
DbListShmemSize(void)
{
	return MAXALIGN(sizeof(DbListShared));
}

/* DbListShmemRequest asks for the list's memory and its lock. */
void
DbListShmemRequest(void)
{
	RequestAddinShmemSpace(DbListShmemSize());
	RequestNamedLWLockTranche(DBLIST_TRANCHE, 1);
}

/* DbListLock: the list's lock, the last in the lock order. */
static inline LWLock *
DbListLock(void)
{
	Assert(dblist_lock != NULL);
	return dblist_lock;
}

/*
 * DbListLockHeldByMe: does this backend hold the list's lock?  It is the
 * last in the lock order, so the lock helpers of the tables whose locks
 * come before it (usage_counters.c, usage_recent.c, admin_claim.c) assert
 * that it is not held.
 */
bool
DbListLockHeldByMe(void)
{
	return dblist_lock != NULL && LWLockHeldByMe(dblist_lock);
}

/* DbListShmemInit creates or attaches the list (AddinShmemInitLock held). */
void
DbListShmemInit(void)
{
	bool		found;

	Assert(LWLockHeldByMeInMode(AddinShmemInitLock, LW_EXCLUSIVE));
	dblist_lock = &GetNamedLWLockTranche(DBLIST_TRANCHE)->lock;
	dblist = ShmemInitStruct("apikeys database list", sizeof(DbListShared), &found);
	if (!found)
	{
		for (int i = 0; i < APIKEYS_MAX_FLUSH_DATABASES; i++)
		{
			dblist->dbids[i] = InvalidOid;
			pg_atomic_init_u32(&dblist->dirty[i], 0);
			pg_atomic_init_u64(&dblist->journal_since[i], 0);
			pg_atomic_init_u32(&dblist->rollup_wanted[i], 0);
			pg_atomic_init_u32(&dblist->recent_complete[i], 0);
		}

		/*
		 * What an earlier server run left unflushed is known only once the
		 * launcher has read what a clean shutdown saved (usage.c): until then
		 * DbListLostUntil answers "now".
		 */
		pg_atomic_init_u64(&dblist->lost_until, 0);
		pg_atomic_init_u32(&dblist->launcher_started, 0);
		pg_atomic_init_u64(&dblist->dropped_seen, 0);
		pg_atomic_init_u64(&dblist->visits_not_started, 0);
		pg_atomic_init_u32(&dblist->slot_refused, 0);
		pg_atomic_init_u32(&dblist->takes_in_flight, 0);
	}
}

/*
 * DatabaseSlot finds (or claims) dbid's slot in the launcher's worklist;
 * -1 when more than APIKEYS_MAX_FLUSH_DATABASES databases use the
 * extension (their usage is then flushed only by apikeys.flush_usage()).
 * The slot of this backend's own database is remembered: slots are never
 * given back while the server runs, so the answer cannot go stale.
 */
static int
DatabaseSlot(Oid dbid)
{
	static Oid	cached_db = InvalidOid;
	static int	cached_slot = -1;
	int			slot = -1;

	if (dbid == cached_db && cached_slot >= 0)
		return cached_slot;
	LWLockAcquire(DbListLock(), LW_EXCLUSIVE);
	for (int i = 0; i < APIKEYS_MAX_FLUSH_DATABASES && slot < 0; i++)
		if (dblist->dbids[i] == dbid)
			slot = i;
	for (int i = 0; i < APIKEYS_MAX_FLUSH_DATABASES && slot < 0; i++)
		if (dblist->dbids[i] == InvalidOid)
		{
			dblist->dbids[i] = dbid;
			slot = i;
		}
	LWLockRelease(DbListLock());
	if (slot < 0)
		pg_atomic_write_u32(&dblist->slot_refused, 1);
	if (dbid == MyDatabaseId)
	{
		cached_db = dbid;
		cached_slot = slot;
	}
	return slot;
}

/*
 * DbListMarkDirty puts dbid on the launcher's worklist (one read when it
 * is).  Takes the list's lock only the first time a database is seen.
 */
void
DbListMarkDirty(Oid dbid)
{
	int			slot;

	if (!ApikeysSharedReady())
		return;
	slot = DatabaseSlot(dbid);
	if (slot >= 0 && pg_atomic_read_u32(&dblist->dirty[slot]) == 0)
		pg_atomic_write_u32(&dblist->dirty[slot], 1);
}

/*
 * DbListWantRollup asks for a rollup of dbid's journal at the next visit:
 * usage_recent.c filled up, so it no longer holds every last use the journal
 * does (DbListRecentComplete) until a full rollup.
 */
void
DbListWantRollup(Oid dbid)
{
	int			slot;

	if (ApikeysSharedReady() && (slot = DatabaseSlot(dbid)) >= 0)
	{
		pg_atomic_write_u32(&dblist->recent_complete[slot], 0);
		pg_atomic_write_u32(&dblist->rollup_wanted[slot], 1);
	}
}

/*
 * DbListRecentRollupBegin/Done bracket a rollup of dbid's whole journal:
 * when it is done (in the transaction that commits it) usage_recent.c holds
 * every last use the journal holds, unless usage_recent.c filled up meanwhile
 * (DbListWantRollup resets the state; Done then changes nothing).
 * DbListRecentIncomplete: a rollup that took journal rows and forgot
 * their last uses from usage_recent.c did not commit.
 */
void
DbListRecentRollupBegin(Oid dbid)
{
	int			slot;

	if (ApikeysSharedReady() && (slot = DatabaseSlot(dbid)) >= 0)
		pg_atomic_write_u32(&dblist->recent_complete[slot], 2);
}

void
DbListRecentRollupDone(Oid dbid)
{
	int			slot;
	uint32		pending = 2;

	if (ApikeysSharedReady() && (slot = DatabaseSlot(dbid)) >= 0)
		(void) pg_atomic_compare_exchange_u32(&dblist->recent_complete[slot],
											  &pending, 1);
}

void
DbListRecentIncomplete(Oid dbid)
{
	int			slot;

	if (ApikeysSharedReady() && (slot = DatabaseSlot(dbid)) >= 0)
		pg_atomic_write_u32(&dblist->recent_complete[slot], 0);
}

/*
 * DbListRecentComplete: does usage_recent.c hold the last use of every key in
 * dbid's usage journal?  Not after a start (the journal may hold rows of
 * the last run) until a full rollup, nor after usage_recent.c filled up.
 */
bool
DbListRecentComplete(Oid dbid)
{
	int			slot;

	if (!ApikeysSharedReady() || (slot = DatabaseSlot(dbid)) < 0)
		return false;
	return pg_atomic_read_u32(&dblist->recent_complete[slot]) == 1;
}

/* DbListRecentPending: a full rollup of dbid's journal is not yet committed. */
bool
DbListRecentPending(Oid dbid)
{
	int			slot;

	if (!ApikeysSharedReady() || (slot = DatabaseSlot(dbid)) < 0)
		return false;
	return pg_atomic_read_u32(&dblist->recent_complete[slot]) == 2;
}

/*
 * DbListNoteLoss: uses counted up to t may have been lost (lost_until
 * only moves forward).
 */
void
DbListNoteLoss(TimestampTz t)
{
	uint64		cur;

	if (!ApikeysSharedReady())
		return;
	cur = pg_atomic_read_u64(&dblist->lost_until);
	while ((uint64) t > cur)
	{
		if (pg_atomic_compare_exchange_u64(&dblist->lost_until, &cur, (uint64) t))
			break;
	}
}

/*
 * DbListNoteDrops notes a loss now when usage_counters.c dropped a count since
 * the last call (dropped_keys is the number of counts it could not keep).
 */
void
DbListNoteDrops(uint64 dropped)
{
	uint64		seen;

	if (!ApikeysSharedReady())
		return;
	seen = pg_atomic_read_u64(&dblist->dropped_seen);
	if (dropped > seen)
	{
		DbListNoteLoss(GetCurrentTimestamp());
		(void) pg_atomic_compare_exchange_u64(&dblist->dropped_seen, &seen, dropped);
	}
}

/*
 * DbListLostUntil: the latest time up to which a use may have been lost:
 * an unclean end of the last server run, a promotion (a recovery counts
 * nothing, and the former primary's last interval is gone), a count
 * usage_counters.c dropped; "now" until the launcher has started (it knows what
 * the last run saved); 0 when not preloaded or nothing was lost.
 */
TimestampTz
DbListLostUntil(void)
{
	if (!ApikeysSharedReady())
		return 0;
	if (pg_atomic_read_u32(&dblist->launcher_started) == 0)
		return GetCurrentTimestamp();
	return (TimestampTz) pg_atomic_read_u64(&dblist->lost_until);
}

/* DbListForgetLosses: the superuser accepts the losses noted so far. */
void
DbListForgetLosses(void)
{
	if (ApikeysSharedReady())
		pg_atomic_write_u64(&dblist->lost_until, 0);
}

/*
 * DbListLauncherStarted: has the launcher started in this server run (and
 * noted what the last run lost)?  DbListLauncherMarkStarted says it has,
 * once that is done: until then DbListLostUntil answers "now".
 */
bool
DbListLauncherStarted(void)
{
	return !ApikeysSharedReady() ||
		pg_atomic_read_u32(&dblist->launcher_started) != 0;
}

void
DbListLauncherMarkStarted(void)
{
	if (ApikeysSharedReady())
		pg_atomic_write_u32(&dblist->launcher_started, 1);
}

/*
 * DbListSaveState, at a clean shutdown: whether this run was a primary's
 * (the launcher ran), the databases with usage (up to max), and the time
 * up to which uses may have been lost, now if a database had no slot.
 */
int
DbListSaveState(Oid *dbids, int max, bool *primary, TimestampTz *lost)
{
	int			n = 0;

	*primary = pg_atomic_read_u32(&dblist->launcher_started) != 0;
	*lost = (TimestampTz) pg_atomic_read_u64(&dblist->lost_until);

	/*
	 * A database without a slot was not saved; a transaction that held counts
	 * it took (SIGQUIT at an immediate shutdown ends it without its commit or
	 * abort) took them with it.
	 */
	if (pg_atomic_read_u32(&dblist->slot_refused) != 0 ||
		pg_atomic_read_u32(&dblist->takes_in_flight) != 0)
		*lost = GetCurrentTimestamp();
	for (int i = 0; i < APIKEYS_MAX_FLUSH_DATABASES && n < max; i++)
		if (dblist->dbids[i] != InvalidOid)
			dbids[n++] = dblist->dbids[i];
	return n;
}

/* DbListTakeInFlight: a transaction took counts (+1) or ended (-1). */
void
DbListTakeInFlight(bool begin)
{
	if (!ApikeysSharedReady())
		return;
	if (begin)
		pg_atomic_fetch_add_u32(&dblist->takes_in_flight, 1);
	else
		pg_atomic_fetch_sub_u32(&dblist->takes_in_flight, 1);
}

/* DbListVisitNotStarted counts a worker visit that could not start. */
uint64
DbListVisitNotStarted(void)
{
	if (!ApikeysSharedReady())
		return 0;
	return pg_atomic_add_fetch_u64(&dblist->visits_not_started, 1);
}

/* DbListVisitsNotStarted: how many visits could not start since start. */
uint64
DbListVisitsNotStarted(void)
{
	if (!ApikeysSharedReady())
		return 0;
	return pg_atomic_read_u64(&dblist->visits_not_started);
}

/*
 * DbListRollupWanted: has the recent-use table filled up with dbid's keys,
 * so that only a full rollup (of the current hour too) frees it?
 */
bool
DbListRollupWanted(Oid dbid)
{
	int			slot;

	if (!ApikeysSharedReady() || (slot = DatabaseSlot(dbid)) < 0)
		return false;
	return pg_atomic_read_u32(&dblist->rollup_wanted[slot]) != 0;
}

/*
 * DbListJournalState records what dbid's usage journal holds after a
 * write or a rollup: the time of its oldest row (0: empty), from which
 * the launcher knows when a rollup is due.  A write only moves it
 * earlier (or sets it when it was empty).
 */
void
DbListJournalState(Oid dbid, TimestampTz oldest, bool after_rollup)
{
	int			slot;

	if (!ApikeysSharedReady() || (slot = DatabaseSlot(dbid)) < 0)
		return;
	if (after_rollup)
	{
		pg_atomic_write_u64(&dblist->journal_since[slot], (uint64) oldest);
		pg_atomic_write_u32(&dblist->rollup_wanted[slot], 0);
	}
	else
	{
		uint64		cur = pg_atomic_read_u64(&dblist->journal_since[slot]);

		while (oldest != 0 && (cur == 0 || (uint64) oldest < cur))
		{
			if (pg_atomic_compare_exchange_u64(&dblist->journal_since[slot],
											   &cur, (uint64) oldest))
				break;
		}
	}
}

/*
 * DbListPending lists (up to max) databases for the background worker to
 * visit: those with unflushed usage, and those whose usage journal is due
 * for a rollup (its oldest row is from an earlier hour, or the recent-use
 * table filled up), with rollup[i] set.  Clears the dirty flags it reads.
 */
int
DbListPending(Oid *dbids, bool *rollup, int max)
{
	int			n = 0;
	uint64		this_hour = (uint64) GetCurrentTimestamp() / USECS_PER_HOUR;

	if (!ApikeysSharedReady())
		return 0;
	for (int i = 0; i < APIKEYS_MAX_FLUSH_DATABASES && n < max; i++)
	{
		Oid			db = dblist->dbids[i];
		uint64		since;
		bool		due;
		bool		dirty;

		if (db == InvalidOid)
			continue;
		since = pg_atomic_read_u64(&dblist->journal_since[i]);
		due = (since != 0 && since / USECS_PER_HOUR < this_hour) ||
			pg_atomic_read_u32(&dblist->rollup_wanted[i]) != 0;
		dirty = pg_atomic_exchange_u32(&dblist->dirty[i], 0) != 0;
		if (dirty || due)
		{
			dbids[n] = db;
			rollup[n] = due;
			n++;
		}
	}
	return n;
}

/*
 * DbListConnectable lists the databases a background worker of ours can
 * visit (allowing connections, not templates), in the caller's memory
 * context: the flush launcher's and the prewarm worker's round.
 */
List *
DbListConnectable(void)
{
	List	   *dbs = NIL;
	MemoryContext caller = CurrentMemoryContext;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database d = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;

		if (!d->datallowconn || d->datistemplate)
			continue;
		old = MemoryContextSwitchTo(caller);
		dbs = lappend_oid(dbs, d->oid);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dbs;
}

/*
 * WorkerDefine fills worker in for function (of this library) with what
 * every apikeys worker has: a database connection, no restart, named
 * (bgw_name, which the caller may make more precise) and typed type.
 */
void
WorkerDefine(BackgroundWorker *worker, const char *function, const char *type,
			 BgWorkerStartTime start)
{
	memset(worker, 0, sizeof(BackgroundWorker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = start;
	worker->bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker->bgw_library_name, "apikeys", BGW_MAXLEN);
	strlcpy(worker->bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker->bgw_name, type, BGW_MAXLEN);
	strlcpy(worker->bgw_type, type, BGW_MAXLEN);
}

/*
 * RunWorkerAndWait starts a dynamic background worker (this backend is
 * notified of its start and its end) and waits until it has exited.
 * false, having logged at elevel that "what" could not be started, when
 * no worker slot is free: the callers then try again at their next round.
 */
bool
RunWorkerAndWait(BackgroundWorker *worker, const char *what, int elevel)
{
	BackgroundWorkerHandle *handle;
	pid_t		pid;

	worker->bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(worker, &handle))
	{
		ereport(elevel,
				(errmsg("could not start %s: no background worker slot is free", what),
				 errhint("Raise \"max_worker_processes\".")));
		return false;
	}
	if (WaitForBackgroundWorkerStartup(handle, &pid) == BGWH_STARTED)
		(void) WaitForBackgroundWorkerShutdown(handle);
	pfree(handle);
	return true;
}

/*
 * RunExtensionFunction runs query (one SQL function of the extension,
 * returning one int4 or int8 value) in a transaction of its own, in a
 * background worker connected to a database, if the extension is
 * installed there: false if it is not.  The value goes to *result.  An
 * error ends the worker (and is logged).
 */
bool
RunExtensionFunction(const char *query, bool read_only, int64 *result)
{
	bool		installed;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	installed = OidIsValid(get_extension_oid("apikeys", true));
	if (installed)
	{
		bool		isnull;
		Datum		d;

		pgstat_report_activity(STATE_RUNNING, query);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute(query, read_only, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not run %s", query);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (isnull)
			*result = 0;
		else if (SPI_gettypeid(SPI_tuptable->tupdesc, 1) == INT4OID)
			*result = DatumGetInt32(d);
		else
			*result = DatumGetInt64(d);
		SPI_finish();
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return installed;
}
