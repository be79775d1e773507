/*-------------------------------------------------------------------------
 *
 * verify_prewarm.c
 *	  Reloading the shared verification cache when the server starts.
 *
 * The cache lives in shared memory, so a restart empties it, and until
 * every key has been seen once each first verification of a key reads the
 * table (about half the throughput of a warm cache at a million keys).  In
 * the spirit of pg_prewarm's autoprewarm, a background worker registered
 * at preload reloads it: once per server start, as soon as the server is
 * consistent (so on a hot standby too, where verify_standby.c validates the
 * entries), it visits every connectable database with a short-lived worker
 * that runs apikeys.cache_prewarm() where the extension is installed: the
 * most recently used keys first (last_used_at), up to the capacity.
 *
 * It never delays the start: the postmaster accepts connections before it
 * starts background workers, and verifications that arrive meanwhile fill
 * the cache on their own (a miss is always correct).  Each key goes
 * through the ordinary miss path, so a key changed while the reload runs
 * is never cached stale.  It runs when apikeys.prewarm is on (default off:
 * on 2 cores with the clients saturating them, a reload of 1M keys, one
 * index lookup each, measured slower for its 20 s than letting the misses
 * fill the cache; README, Performance).
 *
 * Like autoprewarm's, the worker runs once per postmaster start: after a
 * crash the server reinitialises without it (BGW_NEVER_RESTART workers are
 * forgotten), and the cache fills by use.
 *
 * IDENTIFICATION
 *	  src/verify_prewarm.c
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
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "apikeys.h"
#include "compat.h"
#include "worker_dblist.h"
#include "verify_prewarm.h"

pg_noreturn PGDLLEXPORT void ApikeysPrewarmMain(Datum arg);
pg_noreturn PGDLLEXPORT void ApikeysPrewarmDatabaseMain(Datum arg);

static void
PrewarmWorkerInit(BackgroundWorker *worker, const char *function)
{
	WorkerDefine(worker, function, "apikeys cache prewarm", BgWorkerStart_ConsistentState);
}

/* PrewarmRegister registers the prewarm worker (from _PG_init, preloaded only). */
void
PrewarmRegister(void)
{
	BackgroundWorker worker;

	PrewarmWorkerInit(&worker, "ApikeysPrewarmMain");
	strlcpy(worker.bgw_name, "apikeys cache prewarm", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/*
 * ApikeysPrewarmMain visits each database in turn with a worker that runs
 * the reload there, then exits.
 */
void
ApikeysPrewarmMain(Datum arg)
{
	List	   *dbs;
	ListCell   *lc;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	if (!apikeys_prewarm)
		proc_exit(0);
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("apikeys cache prewarm");

	dbs = DbListConnectable();
	foreach(lc, dbs)
	{
		BackgroundWorker worker;

		CHECK_FOR_INTERRUPTS();
		PrewarmWorkerInit(&worker, "ApikeysPrewarmDatabaseMain");
		snprintf(worker.bgw_name, BGW_MAXLEN, "apikeys cache prewarm for database %u",
				 lfirst_oid(lc));
		worker.bgw_main_arg = ObjectIdGetDatum(lfirst_oid(lc));
		if (!RunWorkerAndWait(&worker, "an apikeys cache prewarm worker", LOG))
			break;
	}
	proc_exit(0);
}

/*
 * ApikeysPrewarmDatabaseMain runs apikeys.cache_prewarm() in one database,
 * if the extension is installed there, and logs what it loaded.
 */
void
ApikeysPrewarmDatabaseMain(Datum arg)
{
	TimestampTz start = GetCurrentTimestamp();
	int64		loaded = -1;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);
	pgstat_report_appname("apikeys cache prewarm");

	if (!RunExtensionFunction("SELECT apikeys.cache_prewarm()", true, &loaded))
		loaded = -1;
	if (loaded >= 0)
		ereport(LOG,
				(errmsg("apikeys cache prewarm loaded " INT64_FORMAT " keys of database %u in %ld ms",
						loaded, DatumGetObjectId(arg),
						TimestampDifferenceMilliseconds(start, GetCurrentTimestamp()))));
	proc_exit(0);
}
