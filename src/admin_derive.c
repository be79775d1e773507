/*-------------------------------------------------------------------------
 *
 * admin_derive.c
 *	  apikeys.derive_token(): a short-lived token from the authenticated key.
 *
 * The key authenticated in this transaction (authenticate or pre_request)
 * hands on a token that holds some of its scopes and ends within
 * apikeys.max_derived_ttl, never after the key.  The rules, in order:
 *
 *	- a key must be authenticated (42501), by its own token: a derived
 *	  token cannot derive (42501), so no chain of tokens ever outlives or
 *	  outgrows the first one, and nothing derived mints anything;
 *	- ttl is positive and at most apikeys.max_derived_ttl (22023);
 *	- each scope is a plain scope (22023) that the authenticated key may
 *	  give: ScopeArrayCovers, the no-escalation subset test (42501);
 *	- the key is still live now, read again (42501): a key revoked since
 *	  it authenticated derives nothing.
 *
 * Deriving writes nothing (so it works on a hot standby and in READ ONLY
 * transactions) and is not audited: it changes no key, and what it makes
 * can do no more than the token that authenticated, for less time; every
 * use of the derived token is verified and counted as a use of its key.
 *
 * IDENTIFICATION
 *	  src/admin_derive.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "http_context.h"
#include "verify_derived.h"
#include "verify_lookup.h"
#include "verify_ownerlimit.h"
#include "scope.h"

/*
 * DeriveScopes checks the requested scopes against what the key holds and
 * returns them canonical, as a text[] (NULL for NULL: all of the key's).
 */
static ArrayType *
DeriveScopes(ArrayType *requested, ArrayType *held, const char *client_id)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Datum	   *out;

	if (requested == NULL)
		return NULL;
	if (ARR_NDIM(requested) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("scopes must be a one-dimensional array")));
	deconstruct_array(requested, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	out = palloc(sizeof(Datum) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		text	   *t;
		Scope		s;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("scopes cannot contain NULL")));
		t = DatumGetTextPP(elems[i]);
		ScopeParseOrError(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &s);
		if (s.set)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a derived token cannot hold scope set \"%s\"",
							text_to_cstring(t)),
					 errdetail("A derived token holds plain scopes."),
					 errhint("Name the scopes of the set you need.")));
		if (!ScopeArrayCovers(held, &s))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("API key \"%s\" cannot give scope \"%s\"",
							client_id, text_to_cstring(t)),
					 errdetail("A derived token holds only scopes its key may give.")));
		out[i] = PointerGetDatum(ScopeCanonical(&s));
	}
	return n > 0 ? construct_array(out, n, TEXTOID, -1, false, TYPALIGN_INT) :
		construct_empty_array(TEXTOID);
}

/*
 * DeriveTtlUs: ttl in microseconds, checked: positive, at most
 * apikeys.max_derived_ttl.  Measured as rate windows are (IntervalUs),
 * after a bound in floating point, so no interval overflows.
 */
static int64
DeriveTtlUs(const Interval *ttl)
{
	double		us = (double) ttl->time +
	(double) ttl->day * USECS_PER_DAY +
	(double) ttl->month * 30 * USECS_PER_DAY;

	if (us <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ttl for a derived token"),
				 errdetail("A derived token must live a positive time.")));
	if (us > (double) apikeys_max_derived_ttl * USECS_PER_SEC)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl exceeds \"apikeys.max_derived_ttl\""),
				 errdetail("A derived token lives at most %d seconds.",
						   apikeys_max_derived_ttl)));
	return IntervalUs(ttl);
}

PG_FUNCTION_INFO_V1(apikeys_derive_token);

/*
 * SQL function: apikeys.derive_token(scopes text[], ttl interval) returns text
 */
Datum
apikeys_derive_token(PG_FUNCTION_ARGS)
{
	const char *client_id;
	ArrayType  *held;
	bool		derived;
	ArrayType  *scopes;
	int64		ttl_us;
	KeyInfo		key;
	TimestampTz now;
	TimestampTz expires_at;
	text	   *token;

	if (!ContextGet(&client_id, &held, &derived))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no API key is authenticated"),
				 errhint("Call apikeys.authenticate() first in this transaction.")));
	if (derived)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("a derived token cannot derive tokens"),
				 errdetail("Only a key's own token derives tokens.")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ttl for a derived token"),
				 errdetail("A derived token must live a positive time.")));
	ttl_us = DeriveTtlUs(PG_GETARG_INTERVAL_P(1));
	scopes = DeriveScopes(PG_ARGISNULL(0) ? NULL : PG_GETARG_ARRAYTYPE_P(0),
						  held, client_id);

	now = GetCurrentTimestamp();
	if (!KeyLookup(client_id, strlen(client_id), &key) ||
		key.revoked || key.disabled || now >= key.expires_at)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("API key \"%s\" cannot derive tokens", client_id),
				 errdetail("The key is no longer live.")));
	expires_at = Min(now + ttl_us, key.expires_at);
	token = DerivedTokenMint(client_id, key.hash_alg, key.hash, expires_at, scopes);
	explicit_bzero(key.hash, sizeof(key.hash));
	explicit_bzero(key.prev_hash, sizeof(key.prev_hash));
	PG_RETURN_TEXT_P(token);
}
