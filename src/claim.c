/*-------------------------------------------------------------------------
 *
 * claim.c
 *	  The C side of the secret handoff: claim secrets, constant-time hash
 *	  comparison, and the claim's glue to the address throttle.
 *
 * A handoff key is created with a secret nobody knows; the integrator gets
 * a claim token by email and a 6-digit code by SMS, and apikeys.claim_key
 * trades the two for the real secret (the rules are SQL, in the install
 * script).  What must be C:
 *
 * - drawing the claim token and the code from pg_strong_random();
 * - comparing their hashes in constant time;
 * - the address throttle (throttle.c), which lives in shared memory:
 *   _claim_blocked asks it whether the caller's address has used up its
 *   failures, _claim_failed records one more;
 * - counting a wrong code durably.  claim_key answers every failure with
 *   an ERROR (SQLSTATE 28000), which rolls back whatever the transaction
 *   wrote, so a failure counter kept in the claim's row would never move
 *   and "five wrong codes lock the claim" would not hold.  So the count is
 *   written by a short-lived background worker in a transaction of its
 *   own (the autonomous-transaction pattern of pg_background), and the
 *   caller waits for it before raising the error.  The caller holds no
 *   lock on the claim row at that point (claim_key reads it unlocked
 *   before checking the code), so the worker never waits on its caller.
 *   A dynamic worker needs no preloading; when none can be started (no
 *   free worker slot) the failure is logged and not counted.
 *
 * ClaimAddress* below are the only place handoff code touches the
 * throttle.
 *
 * IDENTIFICATION
 *	  src/claim.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "dblist.h"
#include "throttle.h"
#include "token.h"
#include "verify.h"

/* 32 base62 characters: 190 bits, URL-safe */
#define APIKEYS_CLAIM_TOKEN_LEN		32
#define APIKEYS_CLAIM_CODE_DIGITS	6

PGDLLEXPORT void ApikeysClaimFailureMain(Datum arg);

PG_FUNCTION_INFO_V1(apikeys_claim_secrets);
PG_FUNCTION_INFO_V1(apikeys_hash_equal);
PG_FUNCTION_INFO_V1(apikeys_claim_blocked);
PG_FUNCTION_INFO_V1(apikeys_claim_failed);

/*
 * SQL function: apikeys._claim_secrets() returns record
 *	 (claim_token text, code text)
 *
 * A fresh claim token and a 6-digit code, both from pg_strong_random().
 * The code is drawn without modulo bias: values of the 32-bit draw at or
 * above the largest multiple of 10^6 are drawn again.
 */
Datum
apikeys_claim_secrets(PG_FUNCTION_ARGS)
{
	char		tok[APIKEYS_CLAIM_TOKEN_LEN];
	char		code[APIKEYS_CLAIM_CODE_DIGITS + 1];
	const uint32 limit = UINT32_MAX - (UINT32_MAX % 1000000);
	uint32		r;
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	Base62Random(tok, APIKEYS_CLAIM_TOKEN_LEN);
	do
	{
		if (!pg_strong_random(&r, sizeof(r)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random values")));
	} while (r >= limit);
	snprintf(code, sizeof(code), "%06u", r % 1000000);

	values[0] = PointerGetDatum(cstring_to_text_with_len(tok, APIKEYS_CLAIM_TOKEN_LEN));
	values[1] = PointerGetDatum(cstring_to_text(code));
	explicit_bzero(tok, sizeof(tok));
	explicit_bzero(code, sizeof(code));
	explicit_bzero(&r, sizeof(r));

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * SQL function: apikeys._hash_equal(a bytea, b bytea) returns boolean
 *
 * Constant-time equality of two hashes (timingsafe_bcmp), so a wrong
 * claim code takes as long to refuse as any other.
 */
Datum
apikeys_hash_equal(PG_FUNCTION_ARGS)
{
	bytea	   *a;
	bytea	   *b;
	size_t		len;

	/* NULL equals nothing (the function is not STRICT: see the script) */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);
	a = PG_GETARG_BYTEA_PP(0);
	b = PG_GETARG_BYTEA_PP(1);
	len = VARSIZE_ANY_EXHDR(a);

	if (len != VARSIZE_ANY_EXHDR(b))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(timingsafe_bcmp(VARDATA_ANY(a), VARDATA_ANY(b), len) == 0);
}

/* ClaimAddressBlocked: has the caller's address used up its failures? */
static bool
ClaimAddressBlocked(void)
{
	Datum		addr = (Datum) 0;
	bool		ip_known = ConnectionAddress(&addr);
	int			retry_after = 0;

	return ThrottleAddressBlocked(ip_known, addr, &retry_after);
}

/* ClaimAddressFailure counts one failure against the caller's address. */
static void
ClaimAddressFailure(void)
{
	Datum		addr = (Datum) 0;
	bool		ip_known = ConnectionAddress(&addr);

	ThrottleRecordFailure(ip_known, addr);
}

/*
 * SQL function: apikeys._claim_blocked() returns boolean
 *
 * True when the connection's address is blocked by the address throttle
 * (apikeys.max_failures within apikeys.failure_window).
 */
Datum
apikeys_claim_blocked(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ClaimAddressBlocked());
}

/*
 * CountWrongCode has a background worker add one failure to claim
 * claim_id in its own transaction, and waits for it to finish.
 */
static void
CountWrongCode(int64 claim_id)
{
	BackgroundWorker worker;

	WorkerDefine(&worker, "ApikeysClaimFailureMain", "apikeys claim failure",
				 BgWorkerStart_RecoveryFinished);
	worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	snprintf(worker.bgw_extra, BGW_EXTRALEN, INT64_FORMAT, claim_id);
	(void) RunWorkerAndWait(&worker, "the worker that counts a wrong claim code");
}

/*
 * SQL function: apikeys._claim_failed(claim_id bigint) returns void
 *
 * Records a failed claim: always against the caller's address, and with a
 * claim ID (a wrong code for a claim that exists) durably against that
 * claim.  Not STRICT: a NULL claim ID is the unknown-token case.
 */
Datum
apikeys_claim_failed(PG_FUNCTION_ARGS)
{
	ClaimAddressFailure();
	if (!PG_ARGISNULL(0))
		CountWrongCode(PG_GETARG_INT64(0));
	PG_RETURN_VOID();
}

/*
 * ApikeysClaimFailureMain: the worker behind CountWrongCode.  It connects
 * to the caller's database as the bootstrap superuser and calls
 * apikeys._claim_count_failure(claim_id), which adds the failure, locks
 * the claim at the fifth and audits the lock.
 */
void
ApikeysClaimFailureMain(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);
	int64		claim_id;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];

	if (sscanf(MyBgworkerEntry->bgw_extra, INT64_FORMAT, &claim_id) != 1)
		elog(ERROR, "invalid claim ID for the apikeys claim failure worker");

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	pgstat_report_appname("apikeys claim failure");

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	values[0] = Int64GetDatum(claim_id);
	if (SPI_execute_with_args("SELECT apikeys._claim_count_failure($1)",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not count a wrong claim code");
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	proc_exit(0);
}
