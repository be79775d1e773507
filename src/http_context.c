/*-------------------------------------------------------------------------
 *
 * http_context.c
 *	  authenticate() and the context functions RLS policies read.
 *
 * Hand-rolled schemes keep "who is calling" in a custom setting
 * (set_config('app.key_id', ...)), which any SQL the client sends can
 * overwrite.  Here the authenticated identity lives in backend-private C
 * memory, written only by authenticate() and pre_request() after a
 * successful verification, and read only through the functions below.
 * No SET, set_config(), ALTER ROLE ... SET or forged request.jwt.claims
 * reaches it.
 *
 * Lifetime: the context belongs to the transaction that set it.  It is
 * cleared at commit, abort and prepare, when the subtransaction that set
 * it rolls back (a failed SAVEPOINT block cannot leave an identity
 * behind), and by a failing authenticate() even when its error is caught
 * (the caller never falls back to an earlier key).  When that subtransaction commits, the context passes to its
 * parent.  A new transaction therefore always starts anonymous, which is
 * what a pooled connection (PostgREST) needs.
 *
 * IDENTIFICATION
 *	  src/http_context.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "http_context.h"

typedef struct RequestContext
{
	bool		set;
	SubTransactionId subid;		/* subtransaction that set it */
	char	   *client_id;
	char	   *owner;
	ArrayType  *scopes;
	bool		derived;		/* set by a derived token (verify_derived.c) */
} RequestContext;

static RequestContext ctx;
static MemoryContext ContextMemory = NULL;

/*
 * ContextClear forgets the identity and frees its memory.  pre_request
 * calls it too: a request that presents no key, or a bad one, is not the
 * identity an earlier authenticate() in the transaction set.
 */
void
ContextClear(void)
{
	ctx.set = false;
	ctx.client_id = NULL;
	ctx.owner = NULL;
	ctx.scopes = NULL;
	ctx.derived = false;
	if (ContextMemory != NULL)
		MemoryContextReset(ContextMemory);
}

/* ContextXactCallback clears the context when the transaction ends. */
static void
ContextXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			ContextClear();
			break;
		default:
			break;
	}
}

/*
 * ContextSubXactCallback clears the context when the subtransaction that
 * set it aborts, and hands it to the parent when it commits.
 */
static void
ContextSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	if (!ctx.set || ctx.subid != mySubid)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		ContextClear();
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
		ctx.subid = parentSubid;
}

/* ApikeysContextInit registers the transaction callbacks. */
void
ApikeysContextInit(void)
{
	RegisterXactCallback(ContextXactCallback, NULL);
	RegisterSubXactCallback(ContextSubXactCallback, NULL);
}

/* ContextSet records a verified key as this transaction's identity. */
void
ContextSet(const VerifyResult *res)
{
	MemoryContext old;

	Assert(res->code == APIKEYS_VALID);
	if (ContextMemory == NULL)
		ContextMemory = AllocSetContextCreate(TopMemoryContext,
											  "apikeys request context",
											  ALLOCSET_SMALL_SIZES);
	ContextClear();
	old = MemoryContextSwitchTo(ContextMemory);
	ctx.client_id = pstrdup(res->key.client_id);
	ctx.owner = pstrdup(res->key.owner);
	ctx.scopes = (ArrayType *) palloc(VARSIZE(res->key.scopes));
	memcpy(ctx.scopes, res->key.scopes, VARSIZE(res->key.scopes));
	MemoryContextSwitchTo(old);
	ctx.derived = res->derived;
	ctx.subid = GetCurrentSubTransactionId();
	ctx.set = true;
}

/*
 * ContextGet: is a key authenticated in this transaction?  If so, its
 * client ID, its scopes (a derived token's: the narrowed ones) and
 * whether a derived token authenticated it.  The pointers stay valid
 * until the context changes.
 */
bool
ContextGet(const char **client_id, ArrayType **scopes, bool *derived)
{
	if (!ctx.set)
		return false;
	*client_id = ctx.client_id;
	*scopes = ctx.scopes;
	*derived = ctx.derived;
	return true;
}

/*
 * ContextRaiseFailure raises the error authenticate() gives for a failed
 * verification, as the outcome table (apikeys.c) says: 28000 for a
 * credential that is no good, 42501 for a good one that may not do this,
 * 54000 when rate limited or out of credits.  Messages name the client ID at most, never
 * the token.  The detail is one JSON object of fixed form, so an app reads
 * what to answer without parsing the message:
 *	{"code": "RATE_LIMITED", "http_status": 429, "retry_after": 12}
 * (retry_after is null unless the code is RATE_LIMITED, or USAGE_EXCEEDED
 * with a refill to come).
 */
void
ContextRaiseFailure(const VerifyResult *res)
{
	const ApikeysOutcome *o;
	char		retry[16];

	if (res->code <= APIKEYS_VALID || res->code >= APIKEYS_NUM_CODES)
		elog(ERROR, "unexpected verification code %d", (int) res->code);
	o = &ApikeysOutcomes[res->code];
	/* only codes reached with the secret proved name the client ID */
	Assert(res->have_key || strstr(o->message, "%s") == NULL);
	if (res->code == APIKEYS_RATE_LIMITED ||
		(res->code == APIKEYS_USAGE_EXCEEDED && res->retry_after > 0))
		snprintf(retry, sizeof(retry), "%d", Max(res->retry_after, 1));
	else
		strlcpy(retry, "null", sizeof(retry));
	ereport(ERROR,
			(errcode(o->sqlstate),
			 errmsg(o->message, res->have_key ? res->key.client_id : ""),
			 errdetail("{\"code\": \"%s\", \"http_status\": %d, \"retry_after\": %s}",
					   o->name, ApikeysHttpStatus(res->code), retry),
			 o->hint ? errhint("%s", o->hint) : 0));
}

/*
 * ContextWarnOutsideBlock warns, as SET LOCAL does, when authenticate()
 * runs in a transaction of its own: outside BEGIN ... COMMIT the context
 * ends with the statement that set it, so an app that authenticates and
 * then sends its query as a second statement queries as nobody (under
 * RLS: no rows, no error).  A WARNING rather than an error, because one
 * statement (or one function call) that authenticates and reads in the
 * same statement is correct; a multi-statement query string and a
 * subtransaction count as a block, as for SET LOCAL.
 */
static void
ContextWarnOutsideBlock(void)
{
	if (IsTransactionBlock() || IsSubTransaction())
		return;
	ereport(WARNING,
			(errcode(ERRCODE_NO_ACTIVE_SQL_TRANSACTION),
			 errmsg("apikeys.authenticate() outside a transaction block authenticates only its own statement"),
			 errdetail("The key's context ends when this statement's transaction ends."),
			 errhint("Call apikeys.authenticate() after BEGIN, in the same transaction as the queries it protects.")));
}

PG_FUNCTION_INFO_V1(apikeys_authenticate);
PG_FUNCTION_INFO_V1(apikeys_current_client_id);
PG_FUNCTION_INFO_V1(apikeys_current_owner);
PG_FUNCTION_INFO_V1(apikeys_current_scopes);
PG_FUNCTION_INFO_V1(apikeys_has_scope);
PG_FUNCTION_INFO_V1(apikeys_require_scope);
PG_FUNCTION_INFO_V1(apikeys_field_allowed);
PG_FUNCTION_INFO_V1(apikeys_current_derived);

/*
 * SQL function: apikeys.authenticate(token text, required_scope text,
 *				client_ip inet) returns apikeys.verification
 *
 * Verifies like apikeys.verify, then either sets this transaction's
 * context and returns the verification, or raises.
 */
Datum
apikeys_authenticate(PG_FUNCTION_ARGS)
{
	VerifyResult res;

	VerifyTokenArgs(fcinfo, &res);
	if (res.code != APIKEYS_VALID)
	{
		/*
		 * A failed attempt also ends an identity set earlier in the
		 * transaction: a caller that catches the error (a savepoint, a
		 * PL/pgSQL exception block) goes on anonymous, never as the earlier
		 * key.  The clearing is not undone when the subtransaction rolls
		 * back.
		 */
		ContextClear();
		ContextRaiseFailure(&res);
	}
	ContextWarnOutsideBlock();
	ContextSet(&res);
	PG_RETURN_DATUM(VerificationDatum(fcinfo, &res));
}

/* SQL function: apikeys.current_client_id() returns text */
Datum
apikeys_current_client_id(PG_FUNCTION_ARGS)
{
	if (!ctx.set)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(ctx.client_id));
}

/* SQL function: apikeys.current_owner() returns text */
Datum
apikeys_current_owner(PG_FUNCTION_ARGS)
{
	if (!ctx.set)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(ctx.owner));
}

/* SQL function: apikeys.current_scopes() returns text[] */
Datum
apikeys_current_scopes(PG_FUNCTION_ARGS)
{
	ArrayType  *copy;

	if (!ctx.set)
		PG_RETURN_NULL();
	copy = (ArrayType *) palloc(VARSIZE(ctx.scopes));
	memcpy(copy, ctx.scopes, VARSIZE(ctx.scopes));
	ARR_ELEMTYPE(copy) = TEXTOID;
	PG_RETURN_ARRAYTYPE_P(copy);
}

/*
 * SQL function: apikeys.has_scope(scope text) returns boolean
 *
 * False when no key is authenticated.  A malformed scope is an error in
 * the policy that asks, so it raises 22023 rather than quietly denying.
 */
Datum
apikeys_has_scope(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	Scope		s;

	ScopeParseOrError(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &s);
	if (!ctx.set)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(ScopeArrayGrants(ctx.scopes, &s));
}

/* SQL function: apikeys.require_scope(scope text) returns void; raises 42501 */
Datum
apikeys_require_scope(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	Scope		s;

	ScopeParseOrError(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &s);
	if (!ctx.set)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("an API key with scope \"%s\" is required",
						text_to_cstring(t)),
				 errhint("Call apikeys.authenticate() first in this transaction.")));
	if (!ScopeArrayGrants(ctx.scopes, &s))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("API key \"%s\" lacks scope \"%s\"",
						ctx.client_id, text_to_cstring(t))));
	PG_RETURN_VOID();
}

/*
 * SQL function: apikeys.field_allowed(resource text, field text) returns boolean
 *
 * May the authenticated key read this field of this resource?
 */
Datum
apikeys_field_allowed(PG_FUNCTION_ARGS)
{
	text	   *r = PG_GETARG_TEXT_PP(0);
	text	   *f = PG_GETARG_TEXT_PP(1);

	if (!ctx.set)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(ScopeArrayAllowsField(ctx.scopes,
										 VARDATA_ANY(r), VARSIZE_ANY_EXHDR(r),
										 VARDATA_ANY(f), VARSIZE_ANY_EXHDR(f)));
}

/*
 * SQL function: apikeys_internal._current_derived() returns boolean
 *
 * Did a derived token authenticate this transaction?  NULL when nothing
 * did.  The self-service functions refuse such a context (_acting_row):
 * a derived token uses its key's scopes, it never acts on keys.
 */
Datum
apikeys_current_derived(PG_FUNCTION_ARGS)
{
	if (!ctx.set)
		PG_RETURN_NULL();
	PG_RETURN_BOOL(ctx.derived);
}
