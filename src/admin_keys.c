/*-------------------------------------------------------------------------
 *
 * admin_keys.c
 *	  Minting new credentials for create_key and rotate_key.
 *
 * The lifecycle rules (caps, lifetimes, audit) live in SQL in the install
 * script, where they read as the policy they are.  What must be C is the
 * part that handles the secret: drawing it from pg_strong_random(),
 * building the token and hashing it, with the plaintext wiped from our
 * buffers as soon as the SQL values are made.
 *
 * It also decides which prefix a new key may carry (NewKeyPrefix): the
 * server-wide apikeys.token_prefix or one of apikeys.allowed_prefixes,
 * both set by a superuser.  The prefix is the head of the client ID, so a
 * key keeps it for life (rotation, claim and reset mint a new secret under
 * the same client ID) and a token whose prefix is swapped names another
 * client ID, which no key has.
 *
 * IDENTIFICATION
 *	  src/admin_keys.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "secret.h"
#include "token.h"

PG_FUNCTION_INFO_V1(apikeys_mint);
PG_FUNCTION_INFO_V1(apikeys_check_prefix);
PG_FUNCTION_INFO_V1(apikeys_token_client_id);

/*
 * NewKeyPrefix returns the prefix of a new key: apikeys.token_prefix for
 * NULL, else the given one if it is allowed; 22023 otherwise.  A value
 * that is not a prefix at all is not echoed: it may be a pasted token.
 */
static char *
NewKeyPrefix(text *arg)
{
	const ApikeysPrefixList *list = apikeys_allowed_prefix_list;
	const char *p;
	size_t		len;
	StringInfoData allowed;

	if (arg == NULL)
		return pstrdup(apikeys_token_prefix);
	p = VARDATA_ANY(arg);
	len = VARSIZE_ANY_EXHDR(arg);
	if (!TokenPrefixIsValid(p, len))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid prefix"),
				 errdetail("A prefix is 1 to %d characters: a lowercase letter, then lowercase letters, digits or underscores, not ending in an underscore.",
						   APIKEYS_PREFIX_MAXLEN)));
	if (TokenPrefixConfigured(p, len))
		return pnstrdup(p, len);

	initStringInfo(&allowed);
	appendStringInfoString(&allowed, apikeys_token_prefix);
	for (int i = 0; list != NULL && i < list->n; i++)
		appendStringInfo(&allowed, ", %s", list->prefixes[i]);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("prefix \"%.*s\" is not allowed", (int) len, p),
			 errhint("The allowed prefixes are: %s. A superuser lists further ones in \"apikeys.allowed_prefixes\".",
					 allowed.data)));
	return NULL;				/* not reached */
}

/*
 * SQL function: apikeys_internal._mint(client_id text, prefix text) returns record
 *	 (client_id text, client_secret text, token text, secret_hash bytea,
 *	  hash_alg "char")
 *
 * With a NULL client ID a new one is drawn under the prefix (NULL: the
 * current apikeys.token_prefix), which must be allowed (NewKeyPrefix); with
 * a client ID (rotation, claim, reset) only the secret is new, and the key
 * keeps its prefix whatever the settings say now.
 */
Datum
apikeys_mint(PG_FUNCTION_ARGS)
{
	char		token[APIKEYS_TOKEN_MAXLEN + 1];
	uint8		hash[APIKEYS_HASH_LEN];
	int			cid_len;
	int			len;
	char		alg = SecretCurrentHashAlg();
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false};
	bytea	   *hash_bytea;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	if (PG_ARGISNULL(0))
	{
		/* 1.0's _mint has one argument: until ALTER EXTENSION UPDATE */
		bool		given = PG_NARGS() > 1 && !PG_ARGISNULL(1);
		char	   *prefix = NewKeyPrefix(given ? PG_GETARG_TEXT_PP(1) : NULL);
		int			plen = strlen(prefix);

		memcpy(token, prefix, plen);
		token[plen] = '_';
		Base62Random(token + plen + 1, APIKEYS_CLIENT_RANDOM_LEN);
		cid_len = plen + 1 + APIKEYS_CLIENT_RANDOM_LEN;
	}
	else
	{
		text	   *cid = PG_GETARG_TEXT_PP(0);

		if (PG_NARGS() > 1 && !PG_ARGISNULL(1))
			elog(ERROR, "a prefix is only for a new client ID");
		cid_len = VARSIZE_ANY_EXHDR(cid);
		if (!ClientIdIsWellFormed(VARDATA_ANY(cid), cid_len))
			elog(ERROR, "malformed client ID");
		memcpy(token, VARDATA_ANY(cid), cid_len);
	}

	len = cid_len;
	token[len++] = '_';
	Base62Random(token + len, APIKEYS_SECRET_LEN);
	len += APIKEYS_SECRET_LEN;
	TokenChecksum(token, len, token + len);
	len += APIKEYS_CHECKSUM_LEN;
	token[len] = '\0';

	SecretHash(token + cid_len + 1, APIKEYS_SECRET_LEN, alg, hash);

	hash_bytea = (bytea *) palloc(VARHDRSZ + APIKEYS_HASH_LEN);
	SET_VARSIZE(hash_bytea, VARHDRSZ + APIKEYS_HASH_LEN);
	memcpy(VARDATA(hash_bytea), hash, APIKEYS_HASH_LEN);

	values[0] = PointerGetDatum(cstring_to_text_with_len(token, cid_len));
	values[1] = PointerGetDatum(cstring_to_text_with_len(token + cid_len + 1, APIKEYS_SECRET_LEN));
	values[2] = PointerGetDatum(cstring_to_text_with_len(token, len));
	values[3] = PointerGetDatum(hash_bytea);
	values[4] = CharGetDatum(alg);

	explicit_bzero(token, sizeof(token));
	explicit_bzero(hash, sizeof(hash));

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * SQL function: apikeys_internal._check_prefix(prefix text) returns text
 *
 * The prefix a new key will carry (NULL: apikeys.token_prefix), or 22023
 * when it is not allowed: create_key asks before it writes anything, and
 * _mint asks again as it draws the client ID.
 */
Datum
apikeys_check_prefix(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(NewKeyPrefix(PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0))));
}

/*
 * SQL function: apikeys.token_client_id(token text) returns text
 *
 * The client ID inside a well-formed token, or NULL.  It reveals nothing a
 * token holder does not already have, and lets logs and support tools name
 * a key without ever storing the token.
 */
Datum
apikeys_token_client_id(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	ParsedToken pt;

	if (!TokenParse(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &pt))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text_with_len(pt.client_id, pt.client_id_len));
}
