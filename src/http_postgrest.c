/*-------------------------------------------------------------------------
 *
 * http_postgrest.c
 *	  apikeys.pre_request(): API keys for PostgREST's db-pre-request.
 *
 * PostgREST runs, in each request's transaction, set_config() calls for
 * the role, request.jwt.claims, request.method, request.path and
 * request.headers (a JSON object with lower-case names), then the
 * configured pre-request function.  pre_request:
 *
 * - reads the key from x-api-key, then apikey, then
 *   "Authorization: Basic base64(client_id:client_secret)", or a whole
 *   token (an apikeys or an imported legacy one) as Basic's user name with
 *   an empty password ("token:") or as its password with an empty user
 *   name (":token").  Bearer is never read: PostgREST parses a Bearer
 *   value as a JWT before any SQL.
 * - no key: returns, leaving the request anonymous (context NULL).
 * - first of all it ends any identity set earlier in the transaction
 *   (by authenticate() or an earlier pre_request()): the request is what
 *   its own headers prove and nothing else, on every path out, including
 *   every error (a bad key, an unreadable forwarding header, request.headers
 *   that is not JSON, a malformed required scope), caught or not.
 * - a good key: when the key has a db_role, switches to it with a
 *   transaction-local SET ROLE (refused when the role has become a
 *   superuser or has BYPASSRLS since the key was issued), removes the key
 *   from request.headers for the rest of the request (so no later SQL, log
 *   or error can echo it) and, last, sets the transaction's context.
 *   SECURITY INVOKER, for the SET ROLE: the authenticator role must be a
 *   member of the key's role.
 * - a bad key: raises SQLSTATE PGRST, whose message and detail PostgREST
 *   turns into the HTTP response: 401 with WWW-Authenticate for an
 *   unusable key, 403 for scope or address, 429 with Retry-After.
 * - pre_request(required_scope) also demands a scope of a presented key,
 *   for a db-pre-request wrapper that maps method and path to a scope;
 *   pre_request() alone leaves what a key may see to RLS.
 *
 * - the client address: the connection's, or with
 *   apikeys.trust_forwarded_for the rightmost X-Forwarded-For or
 *   Forwarded entry that is not in apikeys.trusted_proxies (each proxy
 *   appends, so the left part is the client's own writing); a forwarding
 *   header without a readable client entry answers 400 for a presented key
 *   (see ForwardedClient).
 *
 * It writes nothing, since PostgREST runs GET and HEAD in READ ONLY
 * transactions (and hot standbys can serve them).
 *
 * IDENTIFICATION
 *	  src/http_postgrest.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "common/base64.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/inet.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "compat.h"
#include "http_context.h"
#include "verify_throttle.h"
#include "token.h"

#define ERRCODE_PGRST	MAKE_SQLSTATE('P','G','R','S','T')

/*
 * RequestHeaders parses request.headers (raw) as jsonb.  JSON allows the
 * escape \u0000, which jsonb cannot hold: jsonb_in would raise 22P05, a
 * plain error rather than the answer the header deserves.  Each such
 * escape is read as \u001a (SUB, the character for one that cannot be
 * represented) instead, which no reader here accepts: a forwarding header
 * with it is unreadable (400 INVALID_FORWARDED for a presented key), a
 * key with it is no token, and any other header is not read.  Any other
 * invalid JSON still raises jsonb_in's error.  The one parse for
 * pre_request and RequestClientAddress.
 */
static Jsonb *
RequestHeaders(const char *raw)
{
	char	   *copy = NULL;

	for (const char *p = raw; *p != '\0'; p++)
	{
		if (*p != '\\' || p[1] == '\0')
			continue;
		if (p[1] == 'u' && strncmp(p + 2, "0000", 4) == 0)
		{
			if (copy == NULL)
				copy = pstrdup(raw);
			memcpy(copy + (p - raw) + 2, "001a", 4);	/* same length */
			p += 5;
		}
		else
			p++;				/* an escaped character, \\ included */
	}
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											  CStringGetDatum(copy != NULL ? copy : raw)));
}

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
 * HeaderAnyCase finds the header name in any letter case (PostgREST sends
 * lower-case names, but request.headers is only a JSON object, and case
 * variants are the same HTTP header).  Returns how many keys matched;
 * *value is the string value of the last, or NULL when it is not a string.
 */
static int
HeaderAnyCase(Jsonb *headers, const char *name, char **value)
{
	JsonbIterator *it = JsonbIteratorInit(&headers->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			nlen = strlen(name);
	int			count = 0;
	bool		want = false;

	*value = NULL;
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			want = v.val.string.len == nlen &&
				pg_strncasecmp(v.val.string.val, name, nlen) == 0;
		else if (tok == WJB_VALUE && want)
		{
			count++;
			*value = v.type == jbvString ?
				pnstrdup(v.val.string.val, v.val.string.len) : NULL;
			want = false;
		}
	}
	return count;
}

/* IsPort: 1 to 5 digits. */
static bool
IsPort(const char *s, int len)
{
	if (len < 1 || len > 5)
		return false;
	for (int i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/*
 * ParseNode reads one node of a forwarding header: "a.b.c.d",
 * "a.b.c.d:port", a bare IPv6 address, "[v6]" or "[v6]:port".  Anything
 * else (a name, "unknown", an obfuscated "_x", a prefix, junk) is false.
 */
static bool
ParseNode(const char *s, int len, ApikeysNet *out)
{
	int			colons = 0;

	while (len > 0 && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len <= 0)
		return false;
	if (s[0] == '[')
	{
		const char *close = memchr(s, ']', len);
		int			alen;

		if (close == NULL)
			return false;
		alen = close - (s + 1);
		if (memchr(s + 1, ':', alen) == NULL)
			return false;		/* brackets are for IPv6 only */
		if (close + 1 != s + len &&
			(close[1] != ':' || !IsPort(close + 2, s + len - (close + 2))))
			return false;
		return NetParse(s + 1, alen, false, out);
	}
	for (int i = 0; i < len; i++)
		colons += s[i] == ':';
	if (colons == 1)
	{
		const char *c = memchr(s, ':', len);

		if (!IsPort(c + 1, s + len - (c + 1)) || memchr(s, '.', c - s) == NULL)
			return false;
		len = c - s;			/* IPv4 with a port */
	}
	return NetParse(s, len, false, out);
}

/*
 * ForwardedFor reads the "for" parameter of one RFC 7239 element
 * ("for=192.0.2.60;proto=http", "for=\"[2001:db8::1]:4711\"") and parses
 * its node.  An element without exactly one "for", an "unknown" or
 * obfuscated ("_hidden") node, or junk is false.
 */
static bool
ForwardedFor(const char *s, int len, ApikeysNet *out)
{
	const char *end = s + len;
	const char *p = s;
	StringInfoData node;
	int			found = 0;

	initStringInfo(&node);
	while (p < end)
	{
		const char *name;
		int			name_len;
		bool		is_for;

		while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
			p++;
		if (p >= end)
			break;
		name = p;
		while (p < end && *p != '=' && *p != ';')
			p++;
		if (p >= end || *p != '=')
			return false;
		name_len = p - name;
		while (name_len > 0 && (name[name_len - 1] == ' ' || name[name_len - 1] == '\t'))
			name_len--;
		is_for = name_len == 3 && pg_strncasecmp(name, "for", 3) == 0;
		p++;
		if (is_for)
		{
			found++;
			resetStringInfo(&node);
		}
		if (p < end && *p == '"')
		{
			p++;
			while (p < end && *p != '"')
			{
				if (*p == '\\' && p + 1 < end)
					p++;
				if (is_for)
					appendStringInfoChar(&node, *p);
				p++;
			}
			if (p >= end)
				return false;	/* unterminated quoted string */
			p++;
		}
		else
		{
			while (p < end && *p != ';')
			{
				if (is_for)
					appendStringInfoChar(&node, *p);
				p++;
			}
		}
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p < end && *p != ';')
			return false;
	}
	if (found != 1)
		return false;
	return ParseNode(node.data, node.len, out);
}

/* IsTrustedProxy: is addr inside apikeys.trusted_proxies? */
static bool
IsTrustedProxy(const ApikeysNet *addr)
{
	const ApikeysNetList *l = apikeys_trusted_proxy_list;

	if (l == NULL)
		return false;
	for (int i = 0; i < l->n; i++)
		if (NetContains(&l->nets[i], addr))
			return true;
	return false;
}

typedef enum ForwardedResult
{
	FORWARDED_NONE,				/* no forwarding header */
	FORWARDED_ADDRESS,			/* *addr is the client */
	FORWARDED_INVALID			/* present, but no client address in it */
} ForwardedResult;

/*
 * ForwardedClient finds the client address in X-Forwarded-For or
 * Forwarded the way proxies mean it: each proxy appends the address it
 * received the request from, so entries on the left are whatever the
 * client wrote.  The client is the rightmost entry that is not a trusted
 * proxy (apikeys.trusted_proxies; with none listed, the rightmost entry);
 * when every entry is a trusted proxy, the leftmost.  Entries left of the
 * one chosen are never read.  FORWARDED_INVALID when that entry is not an
 * address, when both headers are present, or when a header appears twice
 * (under names of different case): there is no telling then which part a
 * proxy wrote.
 */
static ForwardedResult
ForwardedClient(Jsonb *headers, Datum *addr)
{
	char	   *xff;
	char	   *fwd;
	int			nx = HeaderAnyCase(headers, "x-forwarded-for", &xff);
	int			nf = HeaderAnyCase(headers, "forwarded", &fwd);
	const char *list;
	bool		rfc7239;
	int			end;
	ApikeysNet	client;
	bool		have = false;

	if (nx + nf == 0)
		return FORWARDED_NONE;
	if (nx + nf > 1 || (nx == 1 && xff == NULL) || (nf == 1 && fwd == NULL))
		return FORWARDED_INVALID;
	rfc7239 = nf == 1;
	list = rfc7239 ? fwd : xff;
	end = strlen(list);

	while (end >= 0)
	{
		int			start = end - 1;
		bool		in_quotes = false;
		ApikeysNet	node;
		bool		ok;

		/* back to the previous comma outside a quoted string */
		for (; start >= 0; start--)
		{
			if (rfc7239 && list[start] == '"' &&
				(start == 0 || list[start - 1] != '\\'))
				in_quotes = !in_quotes;
			else if (list[start] == ',' && !in_quotes)
				break;
		}
		if (in_quotes)
			return FORWARDED_INVALID;
		ok = rfc7239 ?
			ForwardedFor(list + start + 1, end - start - 1, &node) :
			ParseNode(list + start + 1, end - start - 1, &node);
		if (!ok)
			return FORWARDED_INVALID;
		client = node;
		have = true;
		if (!IsTrustedProxy(&node))
			break;
		end = start;			/* a trusted proxy: its client is on the left */
	}
	if (!have)
		return FORWARDED_INVALID;
	*addr = InetFromNet(&client);
	return FORWARDED_ADDRESS;
}

/*
 * RaiseBadForwarded answers 400 through SQLSTATE PGRST: a forwarding
 * header with no usable client address must neither go unthrottled nor
 * borrow the proxy's address (which a key's allowed_cidrs may admit).
 */
static void
RaiseBadForwarded(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_PGRST),
			 errmsg("{\"code\":\"INVALID_FORWARDED\",\"message\":\"The client address in X-Forwarded-For or Forwarded cannot be read.\",\"details\":null,\"hint\":null}"),
			 errdetail("{\"status\":400,\"headers\":{}}")));
}

/*
 * RequestClientAddress sets *addr to the client address of the current
 * request exactly as pre_request chooses it: with
 * apikeys.trust_forwarded_for, the client ForwardedClient finds in the
 * request.headers PostgREST set for this request; else (or with no
 * forwarding header) the connection's.  Returns false when no address is
 * known.  A forwarding header with no readable client raises
 * INVALID_FORWARDED (400), as for a key presented to pre_request.  For
 * callers other than pre_request that take a credential (claim_key).
 */
bool
RequestClientAddress(Datum *addr)
{
	const char *raw = GetConfigOption("request.headers", true, false);
	ForwardedResult fwd = FORWARDED_NONE;

	if (apikeys_trust_forwarded_for && raw != NULL && raw[0] != '\0')
	{
		Jsonb	   *headers = RequestHeaders(raw);

		if (JB_ROOT_IS_OBJECT(headers))
			fwd = ForwardedClient(headers, addr);
	}
	if (fwd == FORWARDED_INVALID)
		RaiseBadForwarded();
	return fwd == FORWARDED_ADDRESS || ConnectionAddress(addr);
}

/*
 * RaisePgrst raises SQLSTATE PGRST with the JSON message and detail that
 * PostgREST turns into an HTTP status, headers and body, as the outcome
 * table (apikeys.c) says.
 */
static void
RaisePgrst(const VerifyResult *res)
{
	StringInfoData msg;
	StringInfoData detail;
	const ApikeysOutcome *o = &ApikeysOutcomes[res->code];
	int			status = ApikeysHttpStatus(res->code);

	Assert(res->code != APIKEYS_VALID);

	initStringInfo(&msg);
	appendStringInfo(&msg, "{\"code\":\"%s\",\"message\":", o->name);
	escape_json(&msg, o->http_message);
	appendStringInfoString(&msg, ",\"details\":null,\"hint\":null}");

	initStringInfo(&detail);
	appendStringInfo(&detail, "{\"status\":%d,\"headers\":{", status);
	if (status == 401)
		appendStringInfo(&detail,
						 "\"WWW-Authenticate\":\"ApiKey realm=\\\"api\\\", error=\\\"invalid_key\\\", error_description=\\\"%s\\\"\"",
						 o->name);
	else if (status == 429 &&
			 (res->code != APIKEYS_USAGE_EXCEEDED || res->retry_after > 0))
		/* out of credits: only when a refill is coming */
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

/*
 * OwnedProtectedTable: a table protected by apikeys.protect() (a row of
 * apikeys.protected_tables) without FORCE ROW LEVEL SECURITY whose owner
 * roleid is, or is a member of (with or without INHERIT: a member may SET
 * ROLE to the owner), else InvalidOid.  A table's owner is not subject to
 * its row-level security unless it is forced, so no key's db_role may be
 * such a role.  The one rule: pre_request applies it at every switch
 * (SwitchToKeyRole) and create_key / update_key when they are given the
 * role (apikeys_internal._protected_table_owned_by).  One pg_class lookup per
 * protected table; no SQL, no privilege check (the caller has the key).
 */
static Oid
OwnedProtectedTable(Oid roleid)
{
	Oid			keys = ApikeysKeysRelid();
	Oid			relid;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			result = InvalidOid;

	if (!OidIsValid(keys))
		return InvalidOid;
	relid = get_relname_relid("protected_tables", get_rel_namespace(keys));
	if (!OidIsValid(relid))
		return InvalidOid;
	ApikeysLockForRead(relid);	/* apikeys.lock_timeout, as every read */
	rel = table_open(relid, NoLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Oid			tbl = DatumGetObjectId(heap_getattr(tup, 1,
														RelationGetDescr(rel),
														&isnull));
		HeapTuple	ctup;

		if (isnull)
			continue;
		ctup = SearchSysCache1(RELOID, ObjectIdGetDatum(tbl));
		if (!HeapTupleIsValid(ctup))
			continue;			/* dropped since */
		if (!((Form_pg_class) GETSTRUCT(ctup))->relforcerowsecurity &&
			is_member_of_role_nosuper(roleid,
									  ((Form_pg_class) GETSTRUCT(ctup))->relowner) &&
			(!OidIsValid(result) || tbl < result))
			result = tbl;
		ReleaseSysCache(ctup);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

PG_FUNCTION_INFO_V1(apikeys_protected_table_owned_by);

/*
 * SQL function: apikeys_internal._protected_table_owned_by(role oid) returns regclass
 * OwnedProtectedTable for create_key and update_key; NULL for none.
 */
Datum
apikeys_protected_table_owned_by(PG_FUNCTION_ARGS)
{
	Oid			tbl;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	tbl = OwnedProtectedTable(PG_GETARG_OID(0));
	if (!OidIsValid(tbl))
		PG_RETURN_NULL();
	PG_RETURN_OID(tbl);
}

/*
 * SwitchToKeyRole switches to the key's db_role for the rest of the
 * transaction.  create_key refuses superuser and BYPASSRLS roles and
 * owners of protected tables, but a role can become any of them later;
 * switching to it then would lift the request out of row-level security,
 * so that is refused here, at every use.  set_config_option checks that
 * the session user may become the role.
 */
static void
SwitchToKeyRole(const KeyInfo *key)
{
	Oid			roleid = get_role_oid(key->db_role, true);
	Oid			tbl;

	if (OidIsValid(roleid) &&
		(superuser_arg(roleid) || has_bypassrls_privilege(roleid)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" of API key \"%s\" cannot be used",
						key->db_role, key->client_id),
				 errdetail("The role is a superuser or has BYPASSRLS, which would escape row-level security."),
				 errhint("Remove SUPERUSER and BYPASSRLS from the role, or give the key another db_role with apikeys.update_key().")));
	if (OidIsValid(roleid) && OidIsValid(tbl = OwnedProtectedTable(roleid)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" of API key \"%s\" cannot be used",
						key->db_role, key->client_id),
				 errdetail("The role is, or is a member of, the owner of table %s, which is protected without FORCE ROW LEVEL SECURITY: a table's owner escapes its row-level security.",
						   quote_qualified_identifier(get_namespace_name(get_rel_namespace(tbl)),
													  get_rel_name(tbl))),
				 errhint("Revoke the table owner's role from the key's role, or protect the table with apikeys.protect(..., force => true).")));
	(void) set_config_option("role", key->db_role,
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
	const Scope *required;
	const char *raw;
	Jsonb	   *headers;
	char	   *key;
	char	   *auth;
	Datum		addr = (Datum) 0;
	bool		ip_known;
	ForwardedResult fwd = FORWARDED_NONE;
	VerifyResult res;
	static const char *const scrub[] = {"x-api-key", "apikey", "authorization"};

	/*
	 * Fail closed: the one place that ends an earlier identity, before
	 * anything that can return or raise.  Only a VALID key below sets one
	 * again, as the last step.  (A clearing is never undone, not even when a
	 * caller catches the error and its subtransaction rolls back.)
	 */
	ContextClear();

	required = VerifyRequiredScopeArg(fcinfo, 0, &scope_buf);
	raw = GetConfigOption("request.headers", true, false);
	if (raw == NULL || raw[0] == '\0')
		PG_RETURN_VOID();
	headers = RequestHeaders(raw);
	if (!JB_ROOT_IS_OBJECT(headers))
		PG_RETURN_VOID();

	if (apikeys_trust_forwarded_for)
		fwd = ForwardedClient(headers, &addr);
	ip_known = fwd == FORWARDED_ADDRESS || ConnectionAddress(&addr);

	key = HeaderValue(headers, "x-api-key");
	if (key == NULL)
		key = HeaderValue(headers, "apikey");
	auth = HeaderValue(headers, "authorization");

	/* the address matters only to a presented key */
	if (fwd == FORWARDED_INVALID &&
		(key != NULL || (auth != NULL && pg_strncasecmp(auth, "basic ", 6) == 0)))
		RaiseBadForwarded();

	/* the contract: pre_request writes nothing (may_write = false) */
	if (key != NULL)
		VerifyToken(cstring_to_text(key), true, required, ip_known, addr, false, 1, &res);
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
		declen = ApikeysB64Decode(b64, b64len, dec, pg_b64_dec_len(b64len));
		colon = declen > 0 ? memchr(dec, ':', declen) : NULL;
		if (colon != NULL && (colon == dec || colon == dec + declen - 1) &&
			declen > 1)
		{
			/*
			 * A whole token as the user name with an empty password
			 * ("token:", Stripe style) or as the password with an empty user
			 * name (":token"): the same entry as x-api-key, so a legacy token
			 * verifies here too.
			 */
			text	   *tok = colon == dec ?
			cstring_to_text_with_len(colon + 1, declen - 1) :
			cstring_to_text_with_len(dec, declen - 1);

			/*
			 * Never a derived token (derived_ok false): Basic credentials are
			 * cached and replayed by browsers, and the docs promise Basic
			 * takes none.  MALFORMED, as for any other credential Basic
			 * cannot carry, and counted like one.
			 */
			VerifyToken(tok, false, required, ip_known, addr, false, 1, &res);
			explicit_bzero(VARDATA(tok), VARSIZE(tok) - VARHDRSZ);
		}
		else
			VerifyClientSecret(colon ? dec : NULL, colon ? colon - dec : 0,
							   colon ? colon + 1 : NULL,
							   colon ? declen - (colon + 1 - dec) : 0,
							   required, ip_known, addr, false, 1, &res);
		if (declen > 0)
			explicit_bzero(dec, declen);
	}
	else
		PG_RETURN_VOID();		/* anonymous */

	if (res.code != APIKEYS_VALID)
		RaisePgrst(&res);

	if (res.key.db_role != NULL)
		SwitchToKeyRole(&res.key);

	/*
	 * Scrub every credential we read: both key headers, and Authorization
	 * when it holds Basic credentials (even if x-api-key won).  A Bearer
	 * value is PostgREST's JWT, already parsed: leave it alone.
	 */
	ScrubHeaders(headers, scrub,
				 (auth != NULL && pg_strncasecmp(auth, "basic ", 6) == 0) ? 3 : 2);

	ContextSet(&res);
	PG_RETURN_VOID();
}
