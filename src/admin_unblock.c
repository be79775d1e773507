/*-------------------------------------------------------------------------
 *
 * admin_unblock.c
 *	  apikeys_internal._unblock_address(): lifting failure-throttle records at commit.
 *
 * The failure throttle lives in shared memory (verify_throttle.c), which a
 * rollback does not undo.  An admin's unblock_address must still be
 * transactional: it writes an audit row, and a transaction that rolls
 * back (or fails, or is read-only) must leave the block in place, as it
 * leaves the audit log.  So, the way PostgreSQL defers its own
 * non-transactional effects (pending deletes, relation syncs):
 *
 * - the call refuses a read-only transaction and a hot standby first
 *   (25006), before it touches anything;
 * - it then only counts what it would lift (ThrottleUnblock without
 *   removing, under shared locks): that is its answer, and what the audit
 *   row says, at the time of the call;
 * - it queues the address in a list in the top transaction's memory,
 *   tagged with the subtransaction that queued it; a subtransaction's
 *   abort drops its entries, its commit hands them to its parent;
 * - at commit the records of each queued address are removed, whatever
 *   they are by then (a failure counted between the call and the commit is
 *   lifted too); at abort the list is dropped.  PREPARE TRANSACTION is
 *   refused (the lift could not wait for COMMIT PREPARED in another
 *   session).
 *
 * Nothing in the commit callback can fail: it takes the throttle's
 * partition locks and clears slots, with no allocation.
 *
 * IDENTIFICATION
 *	  src/admin_unblock.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/datum.h"
#include "utils/memutils.h"

#include "verify_throttle.h"

/* An address queued for removal at commit. */
typedef struct PendingUnblock
{
	Datum		addr;			/* inet, in TopTransactionContext */
	SubTransactionId subid;		/* the subtransaction that queued it */
	struct PendingUnblock *next;
} PendingUnblock;

/* this transaction's queue (TopTransactionContext), NULL when empty */
static PendingUnblock *pending = NULL;
static bool callbacks_registered = false;

/* UnblockXactCallback: lift at commit, forget at abort, refuse PREPARE. */
static void
UnblockXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (pending != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that has called apikeys.unblock_address()")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			for (PendingUnblock *p = pending; p != NULL; p = p->next)
			{
				int			cleared;

				(void) ThrottleUnblock(p->addr, true, &cleared);
			}
			pending = NULL;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			pending = NULL;		/* its memory goes with the transaction */
			break;
		default:
			break;
	}
}

/*
 * UnblockSubXactCallback: a subtransaction's abort drops what it queued,
 * its commit hands it to the parent.
 */
static void
UnblockSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	PendingUnblock **link = &pending;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	while (*link != NULL)
	{
		PendingUnblock *p = *link;

		if (p->subid == mySubid)
		{
			if (event == SUBXACT_EVENT_ABORT_SUB)
			{
				*link = p->next;
				continue;
			}
			p->subid = parentSubid;
		}
		link = &p->next;
	}
}

/* UnblockAtCommit queues addr for removal when the transaction commits. */
static void
UnblockAtCommit(Datum addr)
{
	PendingUnblock *p;

	if (!callbacks_registered)
	{
		RegisterXactCallback(UnblockXactCallback, NULL);
		RegisterSubXactCallback(UnblockSubXactCallback, NULL);
		callbacks_registered = true;
	}
	p = MemoryContextAlloc(TopTransactionContext, sizeof(PendingUnblock));
	p->addr = datumCopy(addr, false, -1);
	p->subid = GetCurrentSubTransactionId();
	p->next = pending;
	pending = p;
}

PG_FUNCTION_INFO_V1(apikeys_unblock);

/*
 * SQL function: apikeys_internal._unblock_address(address inet, OUT blocks_lifted
 *				integer, OUT records_cleared integer) returns record
 *
 * For apikeys.unblock_address(), which audits it: refuses a read-only
 * transaction and a standby, then answers how many of the records it will
 * remove at commit are live now (records_cleared) and blocked now
 * (blocks_lifted), and queues the removal when there is any.
 */
Datum
apikeys_unblock(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false};
	int			cleared = 0;
	int			lifted;
	MemoryContext old;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	PreventCommandDuringRecovery("apikeys.unblock_address()");
	PreventCommandIfReadOnly("apikeys.unblock_address()");

	lifted = ThrottleUnblock(PG_GETARG_DATUM(0), false, &cleared);
	if (cleared > 0)
	{
		old = MemoryContextSwitchTo(TopTransactionContext);
		UnblockAtCommit(PG_GETARG_DATUM(0));
		MemoryContextSwitchTo(old);
	}
	values[0] = Int32GetDatum(lifted);
	values[1] = Int32GetDatum(cleared);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}
