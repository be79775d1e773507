/*-------------------------------------------------------------------------
 *
 * postgrest.c
 *	  apikeys.pre_request(): API keys for PostgREST's db-pre-request.
 *
 * PostgREST runs, in each request's transaction, set_config() calls for
 * the role, request.jwt.claims, request.method, request.path and
 * request.headers (a JSON object with lower-case names), then the
 * configured pre-request function.  pre_request:
 *
 * - reads the key from x-api-key, then apikey, then
 *   "Authorization: Basic base64(client_id:client_secret)".  Bearer is
 *   never read: PostgREST parses a Bearer value as a JWT before any SQL.
 * - no key: returns, leaving the request anonymous (context NULL).
 * - a good key: sets the transaction's context, removes the key from
 *   request.headers for the rest of the request (so no later SQL, log or
 *   error can echo it) and, when the key has a db_role, switches to it
 *   with a transaction-local SET ROLE.  That is why it is SECURITY
 *   INVOKER: the authenticator role must be a member of the key's role.
 * - a bad key: raises SQLSTATE PGRST, whose message and detail PostgREST
 *   turns into the HTTP response: 401 with WWW-Authenticate for an
 *   unusable key, 403 for scope or address, 429 with Retry-After.
 * - pre_request(required_scope) also demands a scope of a presented key,
 *   for a db-pre-request wrapper that maps method and path to a scope;
 *   pre_request() alone leaves what a key may see to RLS.
 *
 * It writes nothing, since PostgREST runs GET and HEAD in READ ONLY
 * transactions (and hot standbys can serve them).
 *
 * IDENTIFICATION
 *	  src/postgrest.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "common/base64.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/inet.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "context.h"
#include "token.h"
#include "usage.h"

#define ERRCODE_PGRST	MAKE_SQLSTATE('P','G','R','S','T')

/* HeaderValue returns the string value of a header, or NULL. */
static char *
HeaderValue(Jsonb *headers, const char *name)
{
	JsonbValue	k;
	JsonbValue *v;

	k.type = jbvString;
	k.val.string.val = (char *) name;
	k.val.string.len = strlen(name);
	v = findJsonbValueFromContainer(&headers->root, JB_FOBJECT, &k);
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * ForwardedAddress parses the first X-Forwarded-For entry into an inet
 * datum.  Returns false for anything that is not an IP address, which
 * leaves the address unknown (keys with allowed_cidrs then fail closed).
 */
static bool
ForwardedAddress(const char *xff, Datum *addr)
{
	char		buf[64];
	const char *p = xff;
	int			n = 0;
	unsigned char dst[16];

	while (*p == ' ')
		p++;
	while (p[n] != '\0' && p[n] != ',' && p[n] != ' ' && n < (int) sizeof(buf) - 1)
	{
		buf[n] = p[n];
		n++;
	}
	buf[n] = '\0';
	if (n == 0 ||
		(pg_inet_net_pton(PGSQL_AF_INET, buf, dst, -1) < 0 &&
		 pg_inet_net_pton(PGSQL_AF_INET6, buf, dst, -1) < 0))
		return false;
	*addr = DirectFunctionCall1(inet_in, CStringGetDatum(buf));
	return true;
}

/*
 * RaisePgrst raises SQLSTATE PGRST with the JSON message and detail that
 * PostgREST turns into an HTTP status, headers and body.
 */
static void
RaisePgrst(const VerifyResult *res)
{
	StringInfoData msg;
	StringInfoData detail;
	int			status;
	const char *text;

	switch (res->code)
	{
		case APIKEYS_INSUFFICIENT_SCOPE:
			status = 403;
			text = "The API key lacks the required scope.";
			break;
		case APIKEYS_IP_NOT_ALLOWED:
			status = 403;
			text = "The API key may not be used from this address.";
			break;
		case APIKEYS_RATE_LIMITED:
			status = 429;
			text = "Too many requests.";
			break;
		case APIKEYS_EXPIRED:
			status = 401;
			text = "The API key has expired.";
			break;
		case APIKEYS_DISABLED:
			status = 401;
			text = "The API key is disabled.";
			break;
		case APIKEYS_REVOKED:
			status = 401;
			text = "The API key has been revoked.";
			break;
		case APIKEYS_MALFORMED:
			status = 401;
			text = "The API key is malformed.";
			break;
		default:
			status = 401;
			text = "The API key is not valid.";
			break;
	}

	initStringInfo(&msg);
	appendStringInfo(&msg, "{\"code\":\"%s\",\"message\":", ApikeysCodeNames[res->code]);
	escape_json(&msg, text);
	appendStringInfoString(&msg, ",\"details\":null,\"hint\":null}");

	initStringInfo(&detail);
	appendStringInfo(&detail, "{\"status\":%d,\"headers\":{", status);
	if (status == 401)
		appendStringInfo(&detail,
						 "\"WWW-Authenticate\":\"ApiKey realm=\\\"api\\\", error=\\\"invalid_key\\\", error_description=\\\"%s\\\"\"",
						 ApikeysCodeNames[res->code]);
	else if (status == 429)
		appendStringInfo(&detail, "\"Retry-After\":\"%d\"", Max(res->retry_after, 1));
	appendStringInfoString(&detail, "}}");

	ereport(ERROR,
			(errcode(ERRCODE_PGRST),
			 errmsg("%s", msg.data),
			 errdetail("%s", detail.data)));
}

/* ScrubHeaders removes the given header names from request.headers. */
static void
ScrubHeaders(Jsonb *headers, const char *const *names, int n)
{
	Datum		j = JsonbPGetDatum(headers);

	for (int i = 0; i < n; i++)
		j = DirectFunctionCall2(jsonb_delete, j, CStringGetTextDatum(names[i]));
	(void) set_config_option("request.headers",
							 DatumGetCString(DirectFunctionCall1(jsonb_out, j)),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
							 true, 0, false);
}

PG_FUNCTION_INFO_V1(apikeys_pre_request);

/*
 * SQL function: apikeys.pre_request() returns void
 * SQL function: apikeys.pre_request(required_scope text) returns void
 *
 * The one-argument form also requires a scope of a presented key (a key
 * without it gets 403), for a db-pre-request wrapper that derives the
 * scope from request.method and request.path.  No key stays anonymous
 * either way: what anonymous requests may see is for RLS to decide.
 */
Datum
apikeys_pre_request(PG_FUNCTION_ARGS)
{
	Scope		scope_buf;
	const Scope *required = VerifyRequiredScopeArg(fcinfo, 0, &scope_buf);
	const char *raw = GetConfigOption("request.headers", true, false);
	Jsonb	   *headers;
	char	   *key;
	char	   *auth;
	char	   *xff;
	Datum		addr = (Datum) 0;
	bool		ip_known;
	VerifyResult res;
	static const char *const scrub[] = {"x-api-key", "apikey", "authorization"};

	if (raw == NULL || raw[0] == '\0')
		PG_RETURN_VOID();
	headers = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(raw)));
	if (!JB_ROOT_IS_OBJECT(headers))
		PG_RETURN_VOID();

	if (apikeys_trust_forwarded_for &&
		(xff = HeaderValue(headers, "x-forwarded-for")) != NULL)
		ip_known = ForwardedAddress(xff, &addr);
	else
		ip_known = ConnectionAddress(&addr);

	key = HeaderValue(headers, "x-api-key");
	if (key == NULL)
		key = HeaderValue(headers, "apikey");
	auth = HeaderValue(headers, "authorization");

	/* the contract: pre_request writes nothing (usage.c reads this) */
	UsageWritesSuppressed = true;
	if (key != NULL)
		VerifyToken(cstring_to_text(key), required, ip_known, addr, &res);
	else if (auth != NULL && pg_strncasecmp(auth, "basic ", 6) == 0)
	{
		const char *b64 = auth + 6;
		int			b64len;
		char	   *dec;
		int			declen;
		char	   *colon;

		while (*b64 == ' ')
			b64++;
		b64len = strlen(b64);
		dec = palloc(pg_b64_dec_len(b64len) + 1);
		declen = pg_b64_decode(b64, b64len, dec, pg_b64_dec_len(b64len));
		colon = declen > 0 ? memchr(dec, ':', declen) : NULL;
		if (colon == NULL ||
			!ClientIdIsWellFormed(dec, colon - dec) ||
			!SecretIsWellFormed(colon + 1, declen - (colon + 1 - dec)))
		{
			memset(&res, 0, sizeof(res));
			res.code = APIKEYS_MALFORMED;
		}
		else
			VerifyCredentials(dec, colon - dec, colon + 1, APIKEYS_SECRET_LEN,
							  required, ip_known, addr, &res);
		if (declen > 0)
			explicit_bzero(dec, declen);
	}
	else
	{
		UsageWritesSuppressed = false;
		PG_RETURN_VOID();		/* anonymous */
	}
	UsageWritesSuppressed = false;

	if (res.code != APIKEYS_VALID)
		RaisePgrst(&res);

	ContextSet(&res);
	/*
	 * Scrub every credential we read: both key headers, and Authorization
	 * when it holds Basic credentials (even if x-api-key won).  A Bearer
	 * value is PostgREST's JWT, already parsed: leave it alone.
	 */
	ScrubHeaders(headers, scrub,
				 (auth != NULL && pg_strncasecmp(auth, "basic ", 6) == 0) ? 3 : 2);

	if (res.key.db_role != NULL)
		(void) set_config_option("role", res.key.db_role,
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
								 true, 0, false);
	PG_RETURN_VOID();
}
