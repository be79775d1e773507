/*-------------------------------------------------------------------------
 *
 * admin_audit.c
 *	  Backend state that labels audit rows, and the caller's identity.
 *
 * Every change to apikeys.keys is audited by one row trigger, whatever
 * made it, so that a DBA's direct UPDATE in psql is recorded exactly like
 * a call to revoke_key.  The extension's own functions tell the trigger
 * which event they are performing (rotated, disabled, ...) and why,
 * through the small piece of state here; with no such label the trigger
 * records a "direct_update" or "direct_delete".  The same label unlocks
 * the append-only audit log for apikeys.purge_audit alone.
 *
 * The label is backend-private and cleared at the end of every
 * transaction, so it cannot leak from one request into the next.  Only
 * the extension owner may set it.
 *
 * IDENTIFICATION
 *	  src/admin_audit.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "replication/logicalworker.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "apikeys.h"

static char *op_event = NULL;

/*
 * The key a tenant self-service function (apikeys.my_*) acts for, set by
 * apikeys_internal._acting_begin() around the admin function it calls, so every
 * audit row of that change names it (detail.by_key).  Backend memory,
 * cleared at the end of the transaction, like the label.
 */
static char acting_key[APIKEYS_CLIENT_ID_MAXLEN + 1];
static Jsonb *op_detail = NULL;
static bool callback_registered = false;

/* OpClear forgets the current label. */
static void
OpClear(void)
{
	if (op_event != NULL)
		pfree(op_event);
	if (op_detail != NULL)
		pfree(op_detail);
	op_event = NULL;
	op_detail = NULL;
}

/* EnsureCallback registers the end-of-transaction cleanup once. */
static void OpXactCallback(XactEvent event, void *arg);

/*
 * ActingSubXactCallback forgets the acting key when a subtransaction
 * aborts: a my_* function that failed after naming its key (a savepoint
 * or an EXCEPTION block caught the error) must not leave the name on the
 * audit rows of later changes.
 */
static void
ActingSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		acting_key[0] = '\0';
}

static void
EnsureCallback(void)
{
	if (!callback_registered)
	{
		RegisterXactCallback(OpXactCallback, NULL);
		RegisterSubXactCallback(ActingSubXactCallback, NULL);
		callback_registered = true;
	}
}

/* OpXactCallback clears the label at the end of every transaction. */
static void
OpXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT)
	{
		OpClear();
		acting_key[0] = '\0';
	}
}

PG_FUNCTION_INFO_V1(apikeys_op_begin);
PG_FUNCTION_INFO_V1(apikeys_op_end);
PG_FUNCTION_INFO_V1(apikeys_op_event);
PG_FUNCTION_INFO_V1(apikeys_op_detail);
PG_FUNCTION_INFO_V1(apikeys_outer_user);
PG_FUNCTION_INFO_V1(apikeys_acting_begin);
PG_FUNCTION_INFO_V1(apikeys_acting_key);

/*
 * SQL function: apikeys_internal._acting_begin(client_id text) returns void
 *
 * Names the key the following changes are made for; NULL forgets it.
 */
Datum
apikeys_acting_begin(PG_FUNCTION_ARGS)
{
	EnsureCallback();
	acting_key[0] = '\0';
	if (!PG_ARGISNULL(0))
		text_to_cstring_buffer(PG_GETARG_TEXT_PP(0), acting_key, sizeof(acting_key));
	PG_RETURN_VOID();
}

/* SQL function: apikeys_internal._acting_key() returns text (NULL: none) */
Datum
apikeys_acting_key(PG_FUNCTION_ARGS)
{
	if (acting_key[0] == '\0')
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(acting_key));
}

PG_FUNCTION_INFO_V1(apikeys_in_apply_worker);

/* SQL function: apikeys_internal._op_begin(event text, detail jsonb) returns void */
Datum
apikeys_op_begin(PG_FUNCTION_ARGS)
{
	MemoryContext old;

	EnsureCallback();
	OpClear();
	old = MemoryContextSwitchTo(TopMemoryContext);
	op_event = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!PG_ARGISNULL(1))
	{
		Jsonb	   *j = PG_GETARG_JSONB_P(1);

		op_detail = palloc(VARSIZE(j));
		memcpy(op_detail, j, VARSIZE(j));
	}
	MemoryContextSwitchTo(old);
	PG_RETURN_VOID();
}

/* SQL function: apikeys_internal._op_end() returns void */
Datum
apikeys_op_end(PG_FUNCTION_ARGS)
{
	OpClear();
	PG_RETURN_VOID();
}

/* SQL function: apikeys_internal._op_event() returns text */
Datum
apikeys_op_event(PG_FUNCTION_ARGS)
{
	if (op_event == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(op_event));
}

/* SQL function: apikeys_internal._op_detail() returns jsonb */
Datum
apikeys_op_detail(PG_FUNCTION_ARGS)
{
	Jsonb	   *copy;

	if (op_detail == NULL)
		PG_RETURN_NULL();
	copy = palloc(VARSIZE(op_detail));
	memcpy(copy, op_detail, VARSIZE(op_detail));
	PG_RETURN_JSONB_P(copy);
}

/*
 * SQL function: apikeys_internal._outer_user() returns text
 *
 * current_user as the caller set it (SET ROLE), not the owner a SECURITY
 * DEFINER function runs as: that is who to record in the audit trail.
 */
Datum
apikeys_outer_user(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(GetUserNameFromId(GetOuterUserId(), false)));
}

/*
 * SQL function: apikeys_internal._in_apply_worker() returns boolean
 *
 * True in a logical replication worker the server itself started: an apply
 * worker, a parallel apply worker or a table sync worker, which is what
 * PostgreSQL's own IsLogicalWorker() says (the entry points of these
 * workers were renamed between majors; that function was not).  Nothing a
 * session can SET changes it, unlike session_replication_role, which any
 * superuser session may set.  The audit log's append-only trigger lets such
 * a worker apply the publisher's purge_audit.
 */
Datum
apikeys_in_apply_worker(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(MyBackendType == B_BG_WORKER && IsLogicalWorker());
}
