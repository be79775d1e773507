/*-------------------------------------------------------------------------
 *
 * verify.c
 *	  apikeys.verify and apikeys.verify_client: the per-request check.
 *
 * Verification never raises for a bad credential; it answers with a code.
 * The checks run in this order, so that what a caller learns depends only
 * on what it has proved:
 *
 *	1. format and checksum		MALFORMED (no table is touched)
 *	2. lookup + secret			NOT_FOUND (unknown client ID or wrong secret),
 *								or RATE_LIMITED when this failing caller
 *								or its network has used up its failures
 *								(verify_throttle.c)
 *	3. revoked					REVOKED
 *	4. disabled					DISABLED
 *	5. expiry, rotation grace	EXPIRED
 *	6. client address			IP_NOT_ALLOWED
 *	7. required scope			INSUFFICIENT_SCOPE
 *	8. rate limit: the key's, then	RATE_LIMITED
 *	   its owner's (verify_ownerlimit.c)
 *	9. credits: cost taken from		USAGE_EXCEEDED (none taken)
 *	   the key's balance (verify_credits.c)
 *
 * Only a VALID answer uses anything up: a window slot taken by check 8 is
 * given back when the owner's window or credits refuse (JudgeLimits).
 *
 * Every attempt is judged by its own credential: nothing another caller
 * did from the same address stops a correct secret (the failure throttle
 * is asked only once the secret has failed; see verify_throttle.c).
 *
 * Then the outcome is counted (usage.c), through the handle the lookup
 * gave back (verify_cache.c), so counting needs no second search.  On a cache
 * hit, checks 2 to 7 run inside the lookup's hold of the cache partition
 * lock (JudgeHit), which counts the outcome there: one lock per
 * verification, unless a rate limit (8) still has a say.
 *
 * An unknown client ID and a wrong secret both hash the presented secret
 * (a dummy comparison when there is no key) and both answer NOT_FOUND, so
 * the code never tells a caller which client IDs exist (but see
 * verify_throttle.c: once an address is blocked for failures naming unknown
 * client IDs, a failure naming an existing one is counted apart).  The time comes
 * close but not equal: a known client ID also reads the key's row, some
 * 0.7 us without the shared cache (README, Verifying).  Client IDs are
 * public identifiers; nothing about a secret shows in the time.  A key's
 * status is revealed only to a caller holding its secret.
 *
 * IDENTIFICATION
 *	  src/verify.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inet.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"
#include "utils/timestamp.h"

#include "verify_cache.h"
#include "verify_credits.h"
#include "verify_derived.h"
#include "verify_legacy.h"
#include "secret.h"
#include "stats.h"
#include "verify_ownerlimit.h"
#include "verify_throttle.h"
#include "token.h"
#include "usage.h"
#include "verify.h"

/* Compared when the client ID is unknown, so both paths hash and compare. */
static const uint8 dummy_hash[APIKEYS_HASH_LEN] = {0};

/*
 * ApikeysHttpStatus: the HTTP status an API should answer for a
 * verification outcome (200, 401, 403 or 429), as the outcome table
 * (apikeys.c) says.  The verification row's http_status and pre_request's
 * response both come from here.
 */
int
ApikeysHttpStatus(ApikeysCode code)
{
	Assert(code >= APIKEYS_VALID && code < APIKEYS_NUM_CODES);
	return code == APIKEYS_VALID ? 200 : ApikeysOutcomes[code].http_status;
}

/*
 * ConnectionAddress sets *addr to the connection's client address and
 * returns true, or returns false for a unix-socket or background session.
 */
bool
ConnectionAddress(Datum *addr)
{
	LOCAL_FCINFO(fcinfo, 0);
	Datum		d;

	/* inet_client_addr() answers NULL for a unix socket or no client */
	InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
	d = inet_client_addr(fcinfo);
	if (fcinfo->isnull)
		return false;
	*addr = d;
	return true;
}

/*
 * AddressAllowed: is the client address a (parsed once per call, in
 * VerifyCredentials) inside one of the cidr[] entries?  Both sides are
 * normalised (verify_throttle.c), so 10.0.0.0/8 admits ::ffff:10.1.2.3 and
 * ::ffff:10.0.0.0/104 admits 10.1.2.3.
 */
static bool
AddressAllowed(ArrayType *cidrs, const ApikeysNet *a)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(cidrs, CIDROID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		ApikeysNet	c;

		if (nulls[i] || !NetFromInet(elems[i], &c))
			continue;
		if (NetContains(&c, a))
			return true;
	}
	return false;
}

/* What JudgeKey needs besides the key, and what it found. */
typedef struct Judgement
{
	const char *secret;
	int			secret_len;
	const Scope *required;
	bool		legacy;			/* secret is a whole legacy token */
	const DerivedToken *derived;	/* a derived token, signed in place of a
									 * secret; NULL: none */
	ArrayType  *derived_scopes; /* what the derived token holds now */
	TimestampTz now;			/* JudgeKey's clock reading, reused */
	bool		ip_known;		/* the client address is known ... */
	ApikeysNet	client_net;		/* ... and parses to this */
	bool		judged;			/* JudgeHit ran: code is set */
	bool		secret_live;	/* the secret is the key's current one, or its
								 * previous one within the grace */
	ApikeysCode code;
} Judgement;

/*
 * JudgeKey: checks 2 to 7 of the list at the top (secret, status, expiry,
 * address, scope) for key (found false: no such key, the secret is still
 * hashed and compared).  VALID here means "all but the rate limits".
 * Takes no lock and reads no table: it may run under the cache's
 * partition lock (JudgeHit).
 */
static ApikeysCode
JudgeKey(const KeyInfo *key, bool found, Judgement *j)
{
	uint8		presented[APIKEYS_HASH_LEN];
	bool		current_ok = false;
	bool		prev_ok = false;
	TimestampTz now;

	/*
	 * An imported key's hash is of a whole legacy token: it matches only a
	 * legacy token (found by that hash), and a legacy token only such a key.
	 */
	if (j->derived != NULL)
		current_ok = DerivedSignatureValid(j->derived,
										   found ? key->hash_alg : '\0',
										   found ? key->hash : NULL);
	else if (found && (key->hash_alg == APIKEYS_HASH_LEGACY) == j->legacy &&
			 SecretHash(j->secret, j->secret_len, key->hash_alg, presented))
		current_ok = SecretHashEqual(presented, key->hash);
	else
	{
		/*
		 * Same work as a wrong secret: hash, then compare.  This covers an
		 * unknown client ID and a peppered key while no pepper is set.
		 */
		SecretHash(j->secret, j->secret_len, APIKEYS_HASH_SHA256, presented);
		(void) SecretHashEqual(presented, dummy_hash);
	}

	if (found && !current_ok && key->has_prev && j->derived == NULL &&
		(key->prev_hash_alg == APIKEYS_HASH_LEGACY) == j->legacy)
	{
		if (key->prev_hash_alg == key->hash_alg ||
			SecretHash(j->secret, j->secret_len, key->prev_hash_alg, presented))
			prev_ok = SecretHashEqual(presented, key->prev_hash);
	}
	explicit_bzero(presented, sizeof(presented));

	if (!current_ok && !prev_ok)
		return APIKEYS_NOT_FOUND;

	j->now = now = GetCurrentTimestamp();
	/* the one rule for which secrets a key answers to (report_leaked too) */
	j->secret_live = j->derived == NULL &&
		(current_ok || (prev_ok && now < key->prev_expires_at));
	/* a derived token: its scopes the key still covers (verify_derived.c) */
	if (j->derived != NULL)
		j->derived_scopes = DerivedScopes(j->derived, key->scopes);
	if (key->revoked)
		return APIKEYS_REVOKED;
	if (key->disabled)
		return APIKEYS_DISABLED;
	if (now >= key->expires_at || (prev_ok && now >= key->prev_expires_at) ||
		(j->derived != NULL && now >= j->derived->expires_at))
		return APIKEYS_EXPIRED;
	if (key->allowed_cidrs != NULL &&
		(!j->ip_known || !AddressAllowed(key->allowed_cidrs, &j->client_net)))
		return APIKEYS_IP_NOT_ALLOWED;
	if (j->required != NULL &&
		!ScopeArrayGrants(j->derived != NULL ? j->derived_scopes : key->scopes,
						  j->required))
		return APIKEYS_INSUFFICIENT_SCOPE;
	return APIKEYS_VALID;
}

/*
 * JudgeHit is the cache's CacheHitJudge: JudgeKey under the partition
 * lock, so that the outcome is counted in the same lock hold.  An outcome
 * that a rate limit or credits may still change is left to be counted
 * afterwards: a key with its own limit or with credits, or whose owner
 * this backend does not yet know to have none.
 */
static ApikeysCode
JudgeHit(const KeyInfo *key, void *arg, TimestampTz *now)
{
	Judgement  *j = (Judgement *) arg;

	j->code = JudgeKey(key, true, j);
	j->judged = true;
	*now = j->now;
	if (j->code == APIKEYS_VALID &&
		(key->rate_limit > 0 || key->has_credits ||
		 !OwnerLimitKnownNone(key->owner)))
		return APIKEYS_NUM_CODES;
	return j->code;
}

/*
 * JudgeLimits: checks 8 and 9 of the list at the top, the ones that use
 * something up (a request in the key's window, one in its owner's, cost
 * credits), for a verification judged VALID so far; for any other outcome
 * it only reports the key's limit and balance.  All or nothing: each check
 * takes its share, and a refusal by a later one gives the earlier shares
 * back, so only a VALID answer uses anything.  A request refused for
 * credits (USAGE_EXCEEDED: also every metered request on a standby) thus
 * leaves both windows as they were, and a RATE_LIMITED one takes no
 * credits.  The one rule, for every path: cache hit, table, standby,
 * derived and legacy tokens all come through here.  (Between a take and
 * its give-back another request may find the window one fuller: a refusal
 * in the strict direction, never a request over a limit.)
 */
static void
JudgeLimits(const KeyInfo *key, int cost, bool may_write, TimestampTz *now,
			VerifyResult *res)
{
	TimestampTz owner_reset = 0;
	bool		key_taken = false;

	if (key->rate_limit > 0)
		res->rate_limit = key->rate_limit;
	if (res->code == APIKEYS_VALID && key->rate_limit > 0)
	{
		if (ThrottleRateWindow(key->client_id, key->rate_limit,
							   key->rate_window_us, &res->retry_after,
							   &res->rate_remaining, &res->rate_reset))
			res->code = APIKEYS_RATE_LIMITED;
		else
			key_taken = res->rate_reset != 0;
		/* no window without shared memory (not preloaded) */
		res->rate_known = res->rate_reset != 0;
	}
	if (res->code == APIKEYS_VALID &&
		OwnerRateLimited(key->owner, &res->retry_after, &owner_reset))
		res->code = APIKEYS_RATE_LIMITED;	/* the owner's shared window */

	/* last: a refused verification takes no credits */
	if (key->has_credits)
	{
		CreditsOutcome co;

		if (*now == 0)
			*now = GetCurrentTimestamp();
		CreditsCheck(key, cost, res->code == APIKEYS_VALID, *now, may_write, &co);
		res->credits_known = true;
		res->credits_remaining = co.balance;
		if (res->code == APIKEYS_VALID && !co.ok)
		{
			res->code = APIKEYS_USAGE_EXCEEDED;
			res->retry_after = co.retry_after;
		}
	}

	/* refused after a window counted it: give it back */
	if (res->code != APIKEYS_VALID)
	{
		OwnerRateGiveBack(key->owner, owner_reset);
		if (key_taken)
		{
			ThrottleRateGiveBack(key->client_id, res->rate_reset);
			res->rate_remaining++;
		}
	}
}

/*
 * VerifyCredentials checks a client ID and secret (already known to be
 * well-formed) and fills res.  ip_known false means no address is known,
 * which fails closed for a key with allowed_cidrs.  may_write false
 * (pre_request) means the verification must write no table: the
 * non-preloaded last_used_at write is skipped (and so is the row update a
 * spend of credits needs without preloading: USAGE_EXCEEDED).  cost: the
 * credits a VALID verification takes from a key that has credits.
 */
static void
VerifyCredentialsExt(const char *client_id, int cid_len,
					 const char *secret, int secret_len, bool legacy,
					 const DerivedToken *derived, const Scope *required,
					 bool ip_known, Datum client_ip,
					 bool may_write, int cost, VerifyResult *res)
{
	CacheHandle handle;
	bool		found;
	Judgement	j;
	KeyInfo    *key = &res->key;

	memset(res, 0, offsetof(VerifyResult, key));
	res->retry_after = 0;
	res->rate_limit = 0;
	res->rate_known = false;
	res->rate_remaining = 0;
	res->rate_reset = 0;
	res->credits_known = false;
	res->credits_remaining = 0;

	j.secret = secret;
	j.secret_len = secret_len;
	j.required = required;
	j.legacy = legacy;
	/* parsed once, normalised (an IPv4-mapped address is its IPv4 one) */
	j.derived = derived;
	j.derived_scopes = NULL;
	j.ip_known = ip_known && NetFromInet(client_ip, &j.client_net);
	j.judged = false;
	j.secret_live = false;
	j.now = 0;
	found = KeyLookupCached(client_id, cid_len, key, &handle, JudgeHit, &j);
	res->code = j.judged ? j.code : JudgeKey(key, found, &j);

	if (res->code == APIKEYS_NOT_FOUND)
	{
		/*
		 * The caller is the address with the client ID it presented when that
		 * key exists, else the address alone: a client ID the attacker makes
		 * up anew each time must not make a new caller each time
		 * (verify_throttle.c).
		 */
		UsageRecordFailure(&handle, found ? client_id : NULL, cid_len);
		res->code = ThrottleFailure(j.ip_known ? &j.client_net : NULL,
									found ? client_id : NULL, found ? cid_len : 0,
									&res->retry_after) ?
			APIKEYS_RATE_LIMITED : APIKEYS_NOT_FOUND;
		return;
	}

	res->have_key = true;
	res->secret_live = j.secret_live;
	if (derived != NULL)
	{
		/* the token's own scopes and end; all else is its key's */
		res->derived = true;
		res->key.scopes = j.derived_scopes;
		res->key.expires_at = Min(key->expires_at, derived->expires_at);
	}
	JudgeLimits(key, cost, may_write, &j.now, res);

	UsageRecord(&handle, key, res->code, j.now != 0 ? j.now : GetCurrentTimestamp(),
				may_write);
}

void
VerifyCredentials(const char *client_id, int cid_len,
				  const char *secret, int secret_len,
				  const Scope *required,
				  bool ip_known, Datum client_ip,
				  bool may_write, int cost, VerifyResult *res)
{
	VerifyCredentialsExt(client_id, cid_len, secret, secret_len, false, NULL,
						 required, ip_known, client_ip, may_write, cost, res);
}

/* SetMalformed: the answer to input that is not a credential at all. */
static void
SetMalformed(VerifyResult *res)
{
	memset(res, 0, sizeof(VerifyResult));
	res->code = APIKEYS_MALFORMED;
}

/*
 * VerifyLegacyToken verifies a token not in apikeys' format while the
 * database holds imported keys: the key is found by the SHA-256 of the
 * whole token (verify_legacy.c), then judged by its client ID like any key.  No
 * such key: NOT_FOUND, throttled like a wrong secret; MALFORMED, not
 * counted, for a mistyped apikeys token (TokenClassify).
 */
static void
VerifyLegacyToken(const char *token, int len, bool mistyped,
				  const Scope *required, bool ip_known, Datum client_ip,
				  bool may_write, int cost, VerifyResult *res)
{
	uint8		hash[APIKEYS_HASH_LEN];
	char		client_id[APIKEYS_CLIENT_ID_MAXLEN + 1];
	int			cid_len = 0;
	bool		found;
	ApikeysNet	net;

	SecretHash(token, len, APIKEYS_HASH_LEGACY, hash);
	found = LegacyLookup(hash, client_id, &cid_len);
	explicit_bzero(hash, sizeof(hash));
	if (found)
	{
		VerifyCredentialsExt(client_id, cid_len, token, len, true, NULL,
							 required, ip_known, client_ip, may_write, cost, res);
		return;
	}
	if (mistyped)
	{
		/* no imported key: a typo of an apikeys token, not a guess */
		SetMalformed(res);
		return;
	}
	memset(res, 0, sizeof(VerifyResult));
	ip_known = ip_known && NetFromInet(client_ip, &net);
	res->code = ThrottleFailure(ip_known ? &net : NULL, NULL, 0, &res->retry_after) ?
		APIKEYS_RATE_LIMITED : APIKEYS_NOT_FOUND;
}

/*
 * VerifyDerivedToken verifies a derived token (verify_derived.c): its signature
 * stands for the secret, checked against its key's current hash, and then
 * the key is judged, limited and counted as for its own token.  Malformed:
 * MALFORMED, with no lookup.
 */
static void
VerifyDerivedToken(const char *token, int len, const Scope *required,
				   bool ip_known, Datum client_ip, bool may_write,
				   int cost, VerifyResult *res)
{
	DerivedToken dt;

	if (!DerivedTokenParse(token, len, &dt))
	{
		SetMalformed(res);
		return;
	}
	VerifyCredentialsExt(dt.client_id, dt.client_id_len, NULL, 0, false, &dt,
						 required, ip_known, client_ip, may_write, cost, res);
	explicit_bzero(dt.signing_key, sizeof(dt.signing_key));
}

/*
 * TokenClassify says what a presented token is, with one parse: derived,
 * native (pt filled), mistyped, legacy (what an imported key's token may
 * be) or junk.  Mistyped: laid out as an apikeys token with a prefix of
 * apikeys.token_prefix or apikeys.allowed_prefixes, but its checksum
 * fails: a typo, answered MALFORMED unless an imported key has it (one
 * imported by its hash, or under a prefix configured after its import),
 * and never counted as a failure.  Verification dispatches on it and
 * import_key refuses all but legacy (apikeys_internal._token_kind), so an
 * imported token is always looked up.
 */
TokenKind
TokenClassify(const char *s, int len, ParsedToken *pt)
{
	size_t		cid_len;

	if (s == NULL || len <= 0)
		return TOKEN_JUNK;
	if (DerivedTokenShaped(s, len))
		return TOKEN_DERIVED;
	if (TokenParse(s, len, pt))
		return TOKEN_NATIVE;
	if (TokenLayout(s, len, &cid_len) &&
		TokenPrefixConfigured(s, cid_len - APIKEYS_CLIENT_RANDOM_LEN - 1))
		return TOKEN_MISTYPED;
	if (len <= APIKEYS_LEGACY_TOKEN_MAXLEN)
		return TOKEN_LEGACY;
	return TOKEN_JUNK;
}

/*
 * VerifyToken parses a whole token and verifies it.  NULL, empty, huge and
 * non-UTF-8 input all answer MALFORMED, and so does a derived token where
 * the caller takes none (derived_ok false: pre_request's Basic credentials).
 */
void
VerifyToken(text *token, bool derived_ok, const Scope *required,
			bool ip_known, Datum client_ip, bool may_write, int cost,
			VerifyResult *res)
{
	ParsedToken pt;
	TokenKind	kind;
	const char *s = token ? VARDATA_ANY(token) : NULL;
	int			len = token ? VARSIZE_ANY_EXHDR(token) : 0;

	/* one parse per call: derived, native, legacy (imports only) or junk */
	kind = TokenClassify(s, len, &pt);
	switch (kind)
	{
		case TOKEN_DERIVED:
			if (!derived_ok)
			{
				SetMalformed(res);
				break;
			}
			VerifyDerivedToken(s, len, required, ip_known, client_ip,
							   may_write, cost, res);
			break;
		case TOKEN_NATIVE:
			VerifyCredentials(pt.client_id, pt.client_id_len, pt.secret,
							  pt.secret_len, required, ip_known, client_ip,
							  may_write, cost, res);
			break;
		case TOKEN_LEGACY:
		case TOKEN_MISTYPED:
			/* nothing to look up before a key was imported */
			if (LegacyImportsExist())
				VerifyLegacyToken(s, len, kind == TOKEN_MISTYPED, required,
								  ip_known, client_ip, may_write, cost, res);
			else
				SetMalformed(res);
			break;
		case TOKEN_JUNK:
			SetMalformed(res);
			break;
	}
	ServerStatsCountVerification(res->code);
}

PG_FUNCTION_INFO_V1(apikeys_token_kind);

/*
 * SQL function: apikeys_internal._token_kind(token text) returns text (NULL: junk)
 *	 'derived', 'native', 'legacy', 'mistyped' or 'junk': TokenClassify, for
 *	 import_key.
 */
Datum
apikeys_token_kind(PG_FUNCTION_ARGS)
{
	text	   *t = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	ParsedToken pt;
	static const char *const names[] = {"junk", "derived", "native", "legacy",
	"mistyped"};

	if (t == NULL)
		PG_RETURN_TEXT_P(cstring_to_text(names[TOKEN_JUNK]));
	PG_RETURN_TEXT_P(cstring_to_text(names[TokenClassify(VARDATA_ANY(t),
														 VARSIZE_ANY_EXHDR(t),
														 &pt)]));
}

/*
 * VerifyClientSecret verifies a separate client ID and secret (verify_client,
 * HTTP Basic): the MALFORMED pre-check of both, then VerifyCredentials.
 * A NULL client_id or secret answers MALFORMED.
 */
void
VerifyClientSecret(const char *client_id, int cid_len,
				   const char *secret, int secret_len,
				   const Scope *required, bool ip_known, Datum client_ip,
				   bool may_write, int cost, VerifyResult *res)
{
	if (client_id == NULL || secret == NULL ||
		!ClientIdIsWellFormed(client_id, cid_len) ||
		!SecretIsWellFormed(secret, secret_len))
	{
		SetMalformed(res);
		ServerStatsCountVerification(res->code);
		return;
	}
	VerifyCredentials(client_id, cid_len, secret, secret_len,
					  required, ip_known, client_ip, may_write, cost, res);
	ServerStatsCountVerification(res->code);
}

/*
 * VerificationDatum builds an apikeys.verification row.
 *
 * The row type's descriptor comes from the typcache, found through the
 * function's return type, which is looked up once per backend and function
 * (not per statement: fn_extra starts empty at every execution of a
 * prepared statement, and get_call_result_type + BlessTupleDesc there cost
 * more than the rest of a cached verification).
 */
Datum
VerificationDatum(FunctionCallInfo fcinfo, VerifyResult *r)
{
	static Oid	cached_fn = InvalidOid;
	static Oid	cached_type = InvalidOid;
	TupleDesc	tupdesc;
	HeapTuple	tuple;
	Datum		values[15];
	bool		nulls[15] = {false};

	if (fcinfo->flinfo->fn_oid != cached_fn || !OidIsValid(cached_fn))
	{
		Oid			rettype = get_func_rettype(fcinfo->flinfo->fn_oid);

		if (!type_is_rowtype(rettype))
			elog(ERROR, "return type must be a row type");
		cached_type = rettype;
		cached_fn = fcinfo->flinfo->fn_oid;
	}
	tupdesc = lookup_rowtype_tupdesc(cached_type, -1);

	values[0] = BoolGetDatum(r->code == APIKEYS_VALID);
	values[1] = CStringGetTextDatum(ApikeysOutcomes[r->code].name);
	if (r->have_key)
	{
		ArrayType  *scopes = (ArrayType *) palloc(VARSIZE(r->key.scopes));

		/* apikeys.scope is binary-compatible with text */
		memcpy(scopes, r->key.scopes, VARSIZE(r->key.scopes));
		ARR_ELEMTYPE(scopes) = TEXTOID;
		values[2] = CStringGetTextDatum(r->key.client_id);
		values[3] = CStringGetTextDatum(r->key.owner);
		values[4] = PointerGetDatum(scopes);
		values[5] = TimestampTzGetDatum(r->key.expires_at);
	}
	else
		nulls[2] = nulls[3] = nulls[4] = nulls[5] = true;
	if (r->code == APIKEYS_RATE_LIMITED ||
		(r->code == APIKEYS_USAGE_EXCEEDED && r->retry_after > 0))
		values[6] = Int32GetDatum(r->retry_after);
	else
		nulls[6] = true;
	values[7] = Int32GetDatum(ApikeysHttpStatus(r->code));
	if (r->have_key && r->key.name != NULL)
		values[8] = CStringGetTextDatum(r->key.name);
	else
		nulls[8] = true;
	if (r->have_key && r->key.metadata != NULL)
		values[9] = JsonbPGetDatum(r->key.metadata);
	else
		nulls[9] = true;
	if (r->have_key && r->rate_limit > 0)
		values[10] = Int32GetDatum(r->rate_limit);
	else
		nulls[10] = true;
	if (r->have_key && r->rate_known)
	{
		values[11] = Int32GetDatum(r->rate_remaining);
		values[12] = TimestampTzGetDatum(r->rate_reset);
	}
	else
		nulls[11] = nulls[12] = true;
	if (r->have_key && r->credits_known)
		values[13] = Int64GetDatum(r->credits_remaining);
	else
		nulls[13] = true;
	if (r->have_key)
		values[14] = BoolGetDatum(r->derived);
	else
		nulls[14] = true;
	/* a database not yet updated has the shorter type of its version */
	Assert(tupdesc->natts <= lengthof(values));

	tuple = heap_form_tuple(tupdesc, values, nulls);
	ReleaseTupleDesc(tupdesc);
	return HeapTupleGetDatum(tuple);
}

/*
 * VerifyRequiredScopeArg parses the optional required_scope argument; a
 * malformed one is the caller's bug and raises 22023.
 */
const Scope *
VerifyRequiredScopeArg(FunctionCallInfo fcinfo, int argno, Scope *buf)
{
	text	   *t;

	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	t = PG_GETARG_TEXT_PP(argno);
	ScopeParseOrError(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), buf);
	return buf;
}

/* VerifyClientAddressArg takes client_ip from the argument or the connection. */
bool
VerifyClientAddressArg(FunctionCallInfo fcinfo, int argno, Datum *addr)
{
	if (PG_NARGS() > argno && !PG_ARGISNULL(argno))
	{
		*addr = PG_GETARG_DATUM(argno);
		return true;
	}
	return ConnectionAddress(addr);
}

/*
 * VerifyCostArg reads the optional cost argument (absent: 1).  Like a
 * malformed required_scope, a cost that is not a positive number of
 * credits is the caller's bug: 22023.
 */
static int
VerifyCostArg(FunctionCallInfo fcinfo, int argno)
{
	int32		cost;

	if (PG_NARGS() <= argno)
		return 1;
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cost cannot be NULL"),
				 errhint("Leave cost out for the default of one credit.")));
	cost = PG_GETARG_INT32(argno);
	if (cost < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cost must be positive"),
				 errdetail("A verification takes cost credits from a key that has credits."),
				 errhint("Leave cost out for the default of one credit.")));
	return cost;
}

/*
 * VerifyTokenArgs verifies the (token, required_scope, client_ip[, cost])
 * arguments shared by apikeys.verify and apikeys.authenticate (which has
 * no cost: one credit).
 */
void
VerifyTokenArgs(FunctionCallInfo fcinfo, VerifyResult *res)
{
	Scope		scope_buf;
	const Scope *required = VerifyRequiredScopeArg(fcinfo, 1, &scope_buf);
	Datum		addr = (Datum) 0;
	bool		ip_known = VerifyClientAddressArg(fcinfo, 2, &addr);
	int			cost = VerifyCostArg(fcinfo, 3);

	VerifyToken(PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0), true,
				required, ip_known, addr, true, cost, res);
}

PG_FUNCTION_INFO_V1(apikeys_verify);
PG_FUNCTION_INFO_V1(apikeys_verify_client);
PG_FUNCTION_INFO_V1(apikeys_live_secret_key);

/*
 * SQL function: apikeys.verify(token text, required_scope text,
 *								client_ip inet, cost integer)
 *								returns apikeys.verification
 */
Datum
apikeys_verify(PG_FUNCTION_ARGS)
{
	VerifyResult res;

	VerifyTokenArgs(fcinfo, &res);
	PG_RETURN_DATUM(VerificationDatum(fcinfo, &res));
}

/*
 * SQL function: apikeys.verify_client(client_id text, client_secret text,
 *				required_scope text, client_ip inet, cost integer)
 *				returns apikeys.verification
 */
Datum
apikeys_verify_client(PG_FUNCTION_ARGS)
{
	Scope		scope_buf;
	const Scope *required = VerifyRequiredScopeArg(fcinfo, 2, &scope_buf);
	Datum		addr = (Datum) 0;
	bool		ip_known = VerifyClientAddressArg(fcinfo, 3, &addr);
	int			cost = VerifyCostArg(fcinfo, 4);
	VerifyResult res;
	text	   *cid = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	text	   *secret = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);

	VerifyClientSecret(cid ? VARDATA_ANY(cid) : NULL,
					   cid ? VARSIZE_ANY_EXHDR(cid) : 0,
					   secret ? VARDATA_ANY(secret) : NULL,
					   secret ? VARSIZE_ANY_EXHDR(secret) : 0,
					   required, ip_known, addr, true, cost, &res);
	PG_RETURN_DATUM(VerificationDatum(fcinfo, &res));
}

/*
 * SQL function: apikeys_internal._live_secret_key(token text) returns text
 *
 * The client ID of the key whose live secret the token holds: its current
 * secret, or its previous one within the rotation grace (secret_live, the
 * rule verification applies), whatever the key's state; NULL for anything
 * else, including a secret rotated away whose grace is over.  It verifies
 * as apikeys.verify(token) does (counted, throttled), for report_leaked,
 * but takes no credits.
 */
Datum
apikeys_live_secret_key(PG_FUNCTION_ARGS)
{
	VerifyResult res;
	Datum		addr = (Datum) 0;
	bool		ip_known = ConnectionAddress(&addr);

	/* cost 0: a report takes no credits (CreditsCheck) */
	VerifyToken(PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0), true,
				NULL, ip_known, addr, true, 0, &res);
	if (!res.have_key || !res.secret_live)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(res.key.client_id));
}
