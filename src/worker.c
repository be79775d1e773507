/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background worker that flushes usage to tables.
 *
 * Verification counts usage in shared memory (usage.c, usage_counters.c) and
 * never writes.  Which databases to visit, and when a rollup is due, is
 * kept in worker_dblist.c.
 * A launcher worker, registered at preload and restarted by the postmaster
 * if it dies (bgw_restart_time), wakes every apikeys.flush_interval on a
 * primary.  A background worker can connect to only one database, and
 * keys may be verified in several, so for each database with unflushed
 * usage the launcher starts a short-lived flush worker connected to it
 * and waits for it to finish.  During recovery it does nothing: a standby
 * does not count usage.
 *
 * A flush writes the interval's usage as one row of the usage journal;
 * once an hour the visit is a rollup of the hours that are over, which
 * folds their journal rows into apikeys.usage, last-use times included
 * (usage_journal.c); when the recent-use table fills, and at start, the launcher
 * rolls up everything, so what a crash left in a journal reaches the
 * tables.  Both run as the extension owner and write only apikeys.usage
 * and the journal (never apikeys.keys), so they produce no audit rows and
 * leave the cache alone.
 *
 * Every apikeys.policy_interval (first one interval after start) the
 * launcher also visits every connectable database with a policy worker,
 * which runs apikeys.apply_policies() where the extension is installed:
 * lifecycle policies, outbox retention and claim expiry.  Its actions are
 * audited like any other change.
 *
 * IDENTIFICATION
 *	  src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "usage_counters.h"
#include "verify_credits.h"
#include "worker_dblist.h"
#include "usage_journal.h"
#include "usage_recent.h"
#include "shmem.h"
#include "stats.h"
#include "usage.h"

pg_noreturn PGDLLEXPORT void ApikeysLauncherMain(Datum arg);
PGDLLEXPORT void ApikeysFlushWorkerMain(Datum arg);

/* WorkerRegister registers the launcher (from _PG_init, preloaded only). */
void
WorkerRegister(void)
{
	BackgroundWorker worker;

	WorkerDefine(&worker, "ApikeysLauncherMain", "apikeys usage flusher",
				 BgWorkerStart_RecoveryFinished);
	worker.bgw_restart_time = 5;
	RegisterBackgroundWorker(&worker);
}

/*
 * VisitDatabase starts a worker for dbid and waits for it: kind 'f' a
 * flush, 'r' a rollup of everything, 'h' the hourly rollup, 'p' a policy
 * run.  A failure to start (no free worker slot) is a WARNING and counted;
 * usage stays in shared memory and the database on the worklist for the
 * next round, policies wait for the next interval.
 */
static void
VisitDatabase(Oid dbid, char kind)
{
	BackgroundWorker worker;

	WorkerDefine(&worker, "ApikeysFlushWorkerMain",
				 kind == 'p' ? "apikeys policies" : "apikeys usage flush",
				 BgWorkerStart_RecoveryFinished);
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s for database %u", worker.bgw_type, dbid);
	worker.bgw_main_arg = ObjectIdGetDatum(dbid);
	worker.bgw_extra[0] = kind;
	if (!RunWorkerAndWait(&worker, kind == 'p' ? "an apikeys policy worker" :
						  "an apikeys usage flush worker", DEBUG1))
	{
		uint64		n = DbListVisitNotStarted();

		/*
		 * Every slot is taken (any login role can hold some with parallel
		 * workers).  The usage stays in shared memory, and the database stays
		 * on the worklist for the next round (the mark was cleared when it
		 * was listed); apply_policies, wherever it runs, journals that usage
		 * itself, so nothing it decides on is hidden.  Said loudly: a policy
		 * run that does not start revokes nothing and sends no notice.
		 */
		if (kind != 'p')
			DbListMarkDirty(dbid);
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start an apikeys %s worker for database %u",
						kind == 'p' ? "policy" : "usage flush", dbid),
				 errdetail("All background worker slots are in use; " UINT64_FORMAT " visits could not start since the server started.",
						   n),
				 errhint("Raise \"max_worker_processes\"; the %s is tried again at the next round.",
						 kind == 'p' ? "policy run" : "flush")));
	}
}

/* VisitEveryDatabase visits (VisitDatabase) every database one can connect to. */
static void
VisitEveryDatabase(char kind)
{
	List	   *dbs = DbListConnectable();
	ListCell   *lc;

	foreach(lc, dbs)
	{
		CHECK_FOR_INTERRUPTS();
		VisitDatabase(lfirst_oid(lc), kind);
	}
	list_free(dbs);
}

/*
 * ApikeysLauncherMain: at start, on a primary, roll up every database's
 * usage journal (what a crash left there); then every
 * apikeys.flush_interval flush each database that has usage waiting,
 * rolling up those that are due.
 */
void
ApikeysLauncherMain(Datum arg)
{
	TimestampTz next_policy;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	/* die: CHECK_FOR_INTERRUPTS ends waits on flush workers at shutdown */
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/* no database: this only makes the launcher visible in pg_stat_activity */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("apikeys usage flusher");

	/*
	 * The launcher starts once recovery is over.  What a clean shutdown of
	 * this primary saved comes back into shared memory; anything else (a
	 * crash, an immediate shutdown, a promoted standby, a first start) may
	 * have lost uses until now, which the "unused" policy must know.
	 */
	if (!DbListLauncherStarted())
	{
		if (!UsageLoadSaved())
			DbListNoteLoss(GetCurrentTimestamp());
		DbListLauncherMarkStarted();
	}

	if (!RecoveryInProgress())
		VisitEveryDatabase('r');

	next_policy = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											  (int64) apikeys_policy_interval * 1000);
	for (;;)
	{
		Oid			dbids[APIKEYS_MAX_FLUSH_DATABASES];
		bool		rollup[APIKEYS_MAX_FLUSH_DATABASES];
		int			n;
		TimestampTz next = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   apikeys_flush_interval * 1000);

		/* wake at least every second, so shutdown never waits on us */
		while (GetCurrentTimestamp() < next)
		{
			long		ms = Min(1000, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next));

			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Max(ms, 1), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			if (ConfigReloadPending)
			{
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
				next = Min(next, TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															 apikeys_flush_interval * 1000));
				next_policy = Min(next_policy,
								  TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															  (int64) apikeys_policy_interval * 1000));
			}
		}
		if (RecoveryInProgress())
			continue;

		n = DbListPending(dbids, rollup, APIKEYS_MAX_FLUSH_DATABASES);
		for (int i = 0; i < n; i++)
		{
			CHECK_FOR_INTERRUPTS();
			VisitDatabase(dbids[i], rollup[i] ? 'h' : 'f');
		}

		/* policies: checked after each flush round, so at that granularity */
		if (GetCurrentTimestamp() >= next_policy)
		{
			VisitEveryDatabase('p');
			next_policy = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													  (int64) apikeys_policy_interval * 1000);
		}
	}
}

/*
 * PolicyRun runs apikeys.apply_policies() in one transaction, when the
 * extension is installed in this database.  An error ends the worker (and
 * is logged); the next interval tries again.
 */
static void
PolicyRun(void)
{
	int64		actions = 0;

	pgstat_report_appname("apikeys policies");
	(void) RunExtensionFunction("SELECT apikeys.apply_policies()", false, &actions);
	ServerStatsNotePolicyRun(actions);
	elog(DEBUG1, "apikeys policies: " INT64_FORMAT " actions", actions);
}

/*
 * ApikeysFlushWorkerMain connects to one database and flushes (or rolls
 * up) its usage in one transaction.  A database without the extension
 * (dropped since) has its counts discarded.
 */
void
ApikeysFlushWorkerMain(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);
	char		kind = MyBgworkerEntry->bgw_extra[0];
	bool		rollup = kind == 'r' || kind == 'h';
	int64		rows;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);

	if (MyBgworkerEntry->bgw_extra[0] == 'p')
	{
		PolicyRun();
		proc_exit(0);
	}

	pgstat_report_appname("apikeys usage flush");
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "apikeys usage flush");

	if (OidIsValid(get_namespace_oid("apikeys", true)) &&
		OidIsValid(get_relname_relid("usage", get_namespace_oid("apikeys", true))))
	{
		rows = UsageWrite(kind == 'f' ? USAGE_FLUSH :
						  kind == 'r' || DbListRollupWanted(MyDatabaseId) ? USAGE_ROLLUP_ALL :
						  USAGE_ROLLUP_PAST_HOURS);
		/* the balances spent since the last visit (verify_credits.c) */
		rows += CreditsFlushDatabase();
	}
	else
	{
		CountersDiscardDatabase(MyDatabaseId);
		RecentDiscardDatabase(MyDatabaseId);
		rows = 0;
	}

	PopActiveSnapshot();
	CommitTransactionCommand();
	ServerStatsNoteUsageFlush();
	pgstat_report_activity(STATE_IDLE, NULL);
	elog(DEBUG1, "apikeys %s " INT64_FORMAT " rows", rollup ? "rolled up usage:" : "journaled usage of", rows);
	proc_exit(0);
}
