/*-------------------------------------------------------------------------
 *
 * verify_derived.c
 *	  Derived tokens: their format, their signature, their scopes.
 *
 * A derived token is a short-lived credential that a key hands on
 * (apikeys.derive_token, admin_derive.c): to a browser, a job, a partner.  It is
 * stored nowhere.  It reads
 *
 *		ak_7fGh2Kq9ZxB3mN0p.dt1.<payload>.<signature>
 *		\________________/ \_/ \_______/ \_________/
 *		   parent's ID    version base64url  base64url, 43 chars
 *
 * - The parent's client ID comes first, so the key is found by it as for a
 *   native token, and its prefix lets secret scanners find the token:
 *   \b[a-z][a-z0-9_]*_[A-Za-z0-9]{16}\.dt1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}\b
 *   A native token never holds a '.', so the two never look alike; an
 *   imported (legacy) token shaped like this is read as a derived token.
 * - The payload (base64url, no padding) is one flags byte (1: all of the
 *   key's scopes), the token's end as 8 bytes (microseconds since
 *   2000-01-01, big-endian), then, unless all, each scope's canonical text
 *   followed by a zero byte.
 * - The signature is HMAC-SHA-256, keyed by the signing key, over
 *   everything before the last '.', a zero byte, the parent's hash
 *   algorithm and its current secret hash.  Binding the parent's hash makes
 *   a rotation (or reset) end every token derived before it, and a token
 *   of one key never checks out against another.
 * - The signing key is HMAC-SHA-256(the secret in
 *   apikeys.derived_signing_key, a label and apikeys.pepper), made once
 *   per backend and again after the row or the pepper changed.  The secret
 *   is 32 random bytes made when the extension is created; it replicates
 *   to standbys (which can therefore check and derive tokens) and is read
 *   by nobody but the extension's owner (no grant, RLS on, read here
 *   without SQL).  It is not dumped: a restored database makes a new one,
 *   so a dump never lets its reader make tokens from the key hashes it
 *   holds.  The pepper, when set, means a copy of the data files alone is
 *   not enough either; changing it ends every derived token.
 *
 * Everything a token says is trusted only after DerivedSignatureValid
 * accepted it for its key; verify.c calls it where it would compare a
 * secret's hash, so a derived token meets the key's status, expiry,
 * address, scope and rate-limit checks through the same lookup (and cache)
 * as the key itself.  Its scopes are those of its own still covered by the
 * key's current scopes (DerivedScopes): the no-escalation subset test,
 * ScopeArrayCovers, the one rule of what a key may give.
 *
 * IDENTIFICATION
 *	  src/verify_derived.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hmac.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "verify_derived.h"
#include "scope.h"
#include "token.h"

#define APIKEYS_SIGNING_TABLE		"derived_signing_key"
#define Anum_signing_secret			2
#define SIGNING_SECRET_LEN			32
#define SIGNING_KEY_LABEL			"apikeys derived token signing key v1"
#define PAYLOAD_FLAG_ALL			0x01
#define PAYLOAD_HEAD_LEN			9	/* flags + expiry */
#define SIG_CHARS					43	/* base64url of 32 bytes */

/*
 * This backend's signing key, kept until a relcache invalidation of
 * apikeys.derived_signing_key (its trigger sends one for every change of
 * the row; DROP sends one too) or a change of the pepper.
 */
static bool signing_cached = false;
static bool signing_callback = false;
static Oid	signing_relid = InvalidOid;
static uint8 signing_key[APIKEYS_DERIVED_SIG_LEN];
static char *signing_pepper = NULL; /* the pepper it was made with */

static const char b64url[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Base64UrlEncode appends data as base64url without padding. */
static void
Base64UrlEncode(StringInfo buf, const uint8 *data, size_t len)
{
	size_t		i;

	for (i = 0; i + 2 < len; i += 3)
	{
		uint32		v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];

		appendStringInfoChar(buf, b64url[(v >> 18) & 63]);
		appendStringInfoChar(buf, b64url[(v >> 12) & 63]);
		appendStringInfoChar(buf, b64url[(v >> 6) & 63]);
		appendStringInfoChar(buf, b64url[v & 63]);
	}
	if (len - i == 1)
	{
		appendStringInfoChar(buf, b64url[data[i] >> 2]);
		appendStringInfoChar(buf, b64url[(data[i] & 3) << 4]);
	}
	else if (len - i == 2)
	{
		uint32		v = (data[i] << 8) | data[i + 1];

		appendStringInfoChar(buf, b64url[v >> 10]);
		appendStringInfoChar(buf, b64url[(v >> 4) & 63]);
		appendStringInfoChar(buf, b64url[(v & 15) << 2]);
	}
}

/* B64Value: the 6-bit value of a base64url character, or -1. */
static inline int
B64Value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/*
 * Base64UrlDecode decodes s[0..len) (no padding) into out, which has room
 * for len * 3 / 4 bytes, and sets *outlen.  Only the canonical encoding is
 * accepted (unused low bits zero, no lone sixth bit), so one byte string
 * has one text and an altered character never decodes to the same bytes.
 */
static bool
Base64UrlDecode(const char *s, size_t len, uint8 *out, size_t *outlen)
{
	uint32		acc = 0;
	int			bits = 0;
	size_t		n = 0;

	if (len % 4 == 1)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		int			v = B64Value(s[i]);

		if (v < 0)
			return false;
		acc = (acc << 6) | v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out[n++] = (acc >> bits) & 0xff;
		}
	}
	if ((acc & ((1u << bits) - 1)) != 0)
		return false;
	*outlen = n;
	return true;
}

/* Hmac: HMAC-SHA-256 under key of the concatenation of nparts parts. */
static void
Hmac(const uint8 *key, size_t keylen, int nparts,
	 const uint8 *const *parts, const size_t *lens, uint8 *out)
{
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);

	if (ctx == NULL || pg_hmac_init(ctx, key, keylen) < 0)
		elog(ERROR, "could not compute HMAC-SHA-256: %s", pg_hmac_error(ctx));
	for (int i = 0; i < nparts; i++)
		if (pg_hmac_update(ctx, parts[i], lens[i]) < 0)
			elog(ERROR, "could not compute HMAC-SHA-256: %s", pg_hmac_error(ctx));
	if (pg_hmac_final(ctx, out, APIKEYS_DERIVED_SIG_LEN) < 0)
		elog(ERROR, "could not compute HMAC-SHA-256: %s", pg_hmac_error(ctx));
	pg_hmac_free(ctx);
}

/* ForgetSigningKey: the relcache callback; the table changed or went. */
static void
ForgetSigningKey(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == signing_relid)
	{
		signing_cached = false;
		explicit_bzero(signing_key, sizeof(signing_key));
	}
}

/*
 * SigningKey gives the key that signs derived tokens in this database:
 * HMAC-SHA-256(the stored secret; label, 0, pepper).  The secret is read
 * from apikeys.derived_signing_key with the latest snapshot and without
 * SQL (so without a privilege: the verifier cannot read the table), once
 * per backend until the row or the pepper changes.
 */
static void
SigningKey(uint8 *out)
{
	Oid			nsp;
	Oid			relid;
	uint8		secret[SIGNING_SECRET_LEN];
	bool		found = false;
	const char *pepper = apikeys_pepper != NULL ? apikeys_pepper : "";
	const uint8 *parts[3];
	size_t		lens[3];

	if (!signing_callback)
	{
		CacheRegisterRelcacheCallback(ForgetSigningKey, (Datum) 0);
		signing_callback = true;
	}
	if (signing_cached && signing_pepper != NULL && strcmp(signing_pepper, pepper) == 0)
	{
		memcpy(out, signing_key, APIKEYS_DERIVED_SIG_LEN);
		return;
	}

	nsp = get_namespace_oid(APIKEYS_SCHEMA_NAME, true);
	relid = OidIsValid(nsp) ? get_relname_relid(APIKEYS_SIGNING_TABLE, nsp) : InvalidOid;

	if (OidIsValid(relid))
	{
		Relation	rel = table_open(relid, AccessShareLock);
		Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
		SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, snap, 0, NULL);
		HeapTuple	tup = systable_getnext(scan);

		if (HeapTupleIsValid(tup))
		{
			bool		isnull;
			Datum		d = heap_getattr(tup, Anum_signing_secret,
										 RelationGetDescr(rel), &isnull);

			if (!isnull)
			{
				bytea	   *b = DatumGetByteaPP(d);

				if (VARSIZE_ANY_EXHDR(b) == SIGNING_SECRET_LEN)
				{
					memcpy(secret, VARDATA_ANY(b), SIGNING_SECRET_LEN);
					found = true;
				}
			}
		}
		systable_endscan(scan);
		UnregisterSnapshot(snap);
		table_close(rel, AccessShareLock);
	}
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the signing key of derived tokens is missing"),
				 errdetail("apikeys.derived_signing_key must hold one row of 32 bytes."),
				 errhint("Recreate the extension, or insert apikeys_internal._new_signing_secret() as the extension's owner.")));

	parts[0] = (const uint8 *) SIGNING_KEY_LABEL;
	lens[0] = sizeof(SIGNING_KEY_LABEL);	/* with its zero byte */
	parts[1] = (const uint8 *) pepper;
	lens[1] = strlen(pepper);
	Hmac(secret, SIGNING_SECRET_LEN, 2, parts, lens, out);
	explicit_bzero(secret, sizeof(secret));

	/* kept for the next call (the lock above took pending invalidations) */
	if (signing_pepper != NULL)
	{
		explicit_bzero(signing_pepper, strlen(signing_pepper));
		pfree(signing_pepper);
	}
	signing_pepper = MemoryContextStrdup(TopMemoryContext, pepper);
	memcpy(signing_key, out, APIKEYS_DERIVED_SIG_LEN);
	signing_relid = relid;
	signing_cached = true;
}

/*
 * Sign computes a token's signature: HMAC(signing key; signed text, 0,
 * the key's hash algorithm, the key's hash).
 */
static void
Sign(const uint8 *signing_key, const char *signed_part, size_t signed_len,
	 char hash_alg, const uint8 *key_hash, uint8 *out)
{
	static const uint8 zero = 0;
	const uint8 *parts[4];
	size_t		lens[4];
	uint8		alg = (uint8) hash_alg;

	parts[0] = (const uint8 *) signed_part;
	lens[0] = signed_len;
	parts[1] = &zero;
	lens[1] = 1;
	parts[2] = &alg;
	lens[2] = 1;
	parts[3] = key_hash;
	lens[3] = APIKEYS_HASH_LEN;
	Hmac(signing_key, APIKEYS_DERIVED_SIG_LEN, 4, parts, lens, out);
}

/*
 * DerivedTokenShaped: does the text claim to be a derived token ("<a
 * well-formed client ID>.dt1.")?  Such text is never looked up as a legacy
 * token: it is a derived token or MALFORMED.
 */
bool
DerivedTokenShaped(const char *token, size_t len)
{
	const char *dot;
	size_t		cid_len;

	if (len > APIKEYS_DERIVED_MAXLEN)
		return false;
	dot = memchr(token, '.', Min(len, APIKEYS_CLIENT_ID_MAXLEN + 1));
	if (dot == NULL)
		return false;
	cid_len = dot - token;
	return len > cid_len + sizeof(APIKEYS_DERIVED_MARKER) &&
		memcmp(dot + 1, APIKEYS_DERIVED_MARKER ".", sizeof(APIKEYS_DERIVED_MARKER)) == 0 &&
		ClientIdIsWellFormed(token, cid_len);
}

/*
 * DerivedTokenParse reads a derived token into out: its parts, its
 * payload, its scopes, and the signing key to check it with.  False for
 * anything malformed (then no table was read).  Nothing in out is trusted
 * yet: see DerivedSignatureValid.
 */
bool
DerivedTokenParse(const char *token, size_t len, DerivedToken *out)
{
	const char *payload;
	const char *last;
	size_t		cid_len;
	size_t		plen;
	uint8	   *bytes;
	size_t		nbytes;
	size_t		siglen;
	uint8		flags;
	uint64		exp = 0;

	if (!DerivedTokenShaped(token, len))
		return false;
	cid_len = (const char *) memchr(token, '.', len) - token;
	payload = token + cid_len + 1 + sizeof(APIKEYS_DERIVED_MARKER);
	last = token + len - 1;
	while (last > payload && *last != '.')
		last--;
	if (last <= payload || (token + len) - (last + 1) != SIG_CHARS)
		return false;
	plen = last - payload;

	if (!Base64UrlDecode(last + 1, SIG_CHARS, out->sig, &siglen) ||
		siglen != APIKEYS_DERIVED_SIG_LEN)
		return false;
	bytes = palloc(plen * 3 / 4 + 1);
	if (!Base64UrlDecode(payload, plen, bytes, &nbytes) ||
		nbytes < PAYLOAD_HEAD_LEN)
		return false;
	flags = bytes[0];
	for (int i = 1; i < PAYLOAD_HEAD_LEN; i++)
		exp = (exp << 8) | bytes[i];
	out->expires_at = (TimestampTz) exp;

	if (flags == PAYLOAD_FLAG_ALL)
	{
		if (nbytes != PAYLOAD_HEAD_LEN)
			return false;
		out->scopes = NULL;
	}
	else if (flags == 0)
	{
		size_t		pos = PAYLOAD_HEAD_LEN;
		Datum	   *elems = palloc(sizeof(Datum) * (nbytes / 2 + 1));
		int			n = 0;

		while (pos < nbytes)
		{
			uint8	   *end = memchr(bytes + pos, '\0', nbytes - pos);
			Scope		s;
			const char *why;

			if (end == NULL ||
				!ScopeParse((const char *) bytes + pos, end - (bytes + pos), &s, &why) ||
				s.set)
				return false;
			elems[n++] = PointerGetDatum(cstring_to_text_with_len((const char *) bytes + pos,
																  end - (bytes + pos)));
			pos = end - bytes + 1;
		}
		out->scopes = n > 0 ?
			construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT) :
			construct_empty_array(TEXTOID);
	}
	else
		return false;

	memcpy(out->client_id, token, cid_len);
	out->client_id[cid_len] = '\0';
	out->client_id_len = (int) cid_len;
	out->signed_part = token;
	out->signed_len = (int) (last - token);
	SigningKey(out->signing_key);
	return true;
}

/*
 * DerivedSignatureValid: was dt signed for the key whose current hash is
 * key_hash (NULL: no such key; the signature is still computed, so both
 * cases cost the same)?  Constant-time comparison.  May run under the
 * cache's partition lock: no table, no lock.
 */
bool
DerivedSignatureValid(const DerivedToken *dt, char hash_alg, const uint8 *key_hash)
{
	static const uint8 no_key[APIKEYS_HASH_LEN] = {0};
	uint8		expected[APIKEYS_DERIVED_SIG_LEN];
	bool		ok;

	Sign(dt->signing_key, dt->signed_part, dt->signed_len,
		 key_hash != NULL ? hash_alg : '\0',
		 key_hash != NULL ? key_hash : no_key, expected);
	ok = timingsafe_bcmp(expected, dt->sig, APIKEYS_DERIVED_SIG_LEN) == 0;
	explicit_bzero(expected, sizeof(expected));
	return ok && key_hash != NULL;
}

/*
 * DerivedScopes: what a verified derived token holds now, as a text[]:
 * all the key's current scopes for a token that took all of them, else
 * those of its own scopes that the key's current scopes still cover
 * (ScopeArrayCovers, the subset test of what a key may give): a scope the
 * key has lost is gone from the token at once, and nothing is ever added.
 */
ArrayType *
DerivedScopes(const DerivedToken *dt, ArrayType *key_scopes)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			kept = 0;

	if (dt->scopes == NULL)
		return key_scopes;
	deconstruct_array(dt->scopes, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		text	   *t = DatumGetTextPP(elems[i]);
		Scope		s;
		const char *why;

		if (ScopeParse(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &s, &why) &&
			ScopeArrayCovers(key_scopes, &s))
			elems[kept++] = elems[i];
	}
	return kept > 0 ?
		construct_array(elems, kept, TEXTOID, -1, false, TYPALIGN_INT) :
		construct_empty_array(TEXTOID);
}

/*
 * DerivedTokenMint makes the derived token of the key client_id (whose
 * current hash is key_hash) that ends at expires_at and holds scopes (a
 * text[] of canonical, plain scopes; NULL: all of the key's).  22023 when
 * it would be longer than APIKEYS_DERIVED_MAXLEN.
 */
text *
DerivedTokenMint(const char *client_id, char hash_alg, const uint8 *key_hash,
				 TimestampTz expires_at, ArrayType *scopes)
{
	StringInfoData payload;
	StringInfoData tok;
	uint8		signing_key[APIKEYS_DERIVED_SIG_LEN];
	uint8		sig[APIKEYS_DERIVED_SIG_LEN];
	uint64		exp = (uint64) expires_at;
	text	   *result;

	initStringInfo(&payload);
	appendStringInfoChar(&payload, scopes == NULL ? PAYLOAD_FLAG_ALL : 0);
	for (int i = 7; i >= 0; i--)
		appendStringInfoChar(&payload, (char) ((exp >> (i * 8)) & 0xff));
	if (scopes != NULL)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(scopes, TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
		{
			text	   *t = DatumGetTextPP(elems[i]);

			appendBinaryStringInfo(&payload, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			appendStringInfoChar(&payload, '\0');
		}
	}

	initStringInfo(&tok);
	appendStringInfo(&tok, "%s.%s.", client_id, APIKEYS_DERIVED_MARKER);
	Base64UrlEncode(&tok, (const uint8 *) payload.data, payload.len);
	if (tok.len + 1 + SIG_CHARS > APIKEYS_DERIVED_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a derived token cannot hold this many scopes"),
				 errdetail("A derived token is at most %d bytes long.", APIKEYS_DERIVED_MAXLEN),
				 errhint("Derive it with fewer scopes, or with all of the key's (scopes => NULL).")));

	SigningKey(signing_key);
	Sign(signing_key, tok.data, tok.len, hash_alg, key_hash, sig);
	explicit_bzero(signing_key, sizeof(signing_key));
	appendStringInfoChar(&tok, '.');
	Base64UrlEncode(&tok, sig, sizeof(sig));
	result = cstring_to_text_with_len(tok.data, tok.len);
	pfree(tok.data);
	pfree(payload.data);
	return result;
}

PG_FUNCTION_INFO_V1(apikeys_signing_key_changed);

/*
 * SQL function: apikeys_internal._signing_key_changed() returns trigger
 *
 * AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE FOR EACH STATEMENT on
 * apikeys.derived_signing_key: a relcache invalidation of the table, so
 * every backend (on standbys too, where it is replayed) makes its signing
 * key again.
 */
Datum
apikeys_signing_key_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event))
		elog(ERROR, "apikeys_internal._signing_key_changed must be an AFTER trigger");
	CacheInvalidateRelcache(td->tg_relation);
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(apikeys_new_signing_secret);

/*
 * SQL function: apikeys_internal._new_signing_secret() returns bytea
 *
 * 32 bytes from pg_strong_random(): the secret of a new
 * apikeys.derived_signing_key row (made when the extension is created).
 */
Datum
apikeys_new_signing_secret(PG_FUNCTION_ARGS)
{
	bytea	   *b = (bytea *) palloc(VARHDRSZ + SIGNING_SECRET_LEN);

	SET_VARSIZE(b, VARHDRSZ + SIGNING_SECRET_LEN);
	if (!pg_strong_random(VARDATA(b), SIGNING_SECRET_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for a signing key")));
	PG_RETURN_BYTEA_P(b);
}
