/*-------------------------------------------------------------------------
 *
 * worker_dblist.h
 *	  The background worker's list of databases and their journal
 *	  schedule; starting a worker in a database and waiting for it.
 *
 * IDENTIFICATION
 *	  src/worker_dblist.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_WORKER_DBLIST_H
#define APIKEYS_WORKER_DBLIST_H

#include "apikeys.h"
#include "nodes/pg_list.h"
#include "postmaster/bgworker.h"

/* Databases the background worker keeps track of */
#define APIKEYS_MAX_FLUSH_DATABASES	64

extern Size DbListShmemSize(void);
extern void DbListShmemRequest(void);
extern void DbListShmemInit(void);
extern bool DbListLockHeldByMe(void);
extern void DbListMarkDirty(Oid dbid);
extern void DbListWantRollup(Oid dbid);
extern bool DbListRollupWanted(Oid dbid);
extern void DbListJournalState(Oid dbid, TimestampTz oldest, bool after_rollup);
extern int	DbListPending(Oid *dbids, bool *rollup, int max);
extern List *DbListConnectable(void);
extern void DbListRecentRollupBegin(Oid dbid);
extern void DbListRecentRollupDone(Oid dbid);
extern void DbListRecentIncomplete(Oid dbid);
extern bool DbListRecentComplete(Oid dbid);
extern bool DbListRecentPending(Oid dbid);
extern void DbListNoteLoss(TimestampTz t);
extern void DbListNoteDrops(uint64 dropped);
extern TimestampTz DbListLostUntil(void);
extern void DbListForgetLosses(void);
extern bool DbListLauncherStarted(void);
extern void DbListLauncherMarkStarted(void);
extern void DbListTakeInFlight(bool begin);
extern int	DbListSaveState(Oid *dbids, int max, bool *primary, TimestampTz *lost);
extern uint64 DbListVisitNotStarted(void);
extern uint64 DbListVisitsNotStarted(void);
extern void WorkerDefine(BackgroundWorker *worker, const char *function,
						 const char *type, BgWorkerStartTime start);
extern bool RunWorkerAndWait(BackgroundWorker *worker, const char *what,
							 int elevel);
extern bool RunExtensionFunction(const char *query, bool read_only, int64 *result);

#endif							/* APIKEYS_WORKER_DBLIST_H */
