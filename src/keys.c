/*-------------------------------------------------------------------------
 *
 * keys.c
 *	  Minting new credentials for create_key and rotate_key.
 *
 * The lifecycle rules (caps, lifetimes, audit) live in SQL in the install
 * script, where they read as the policy they are.  What must be C is the
 * part that handles the secret: drawing it from pg_strong_random(),
 * building the token and hashing it, with the plaintext wiped from our
 * buffers as soon as the SQL values are made.
 *
 * IDENTIFICATION
 *	  src/keys.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "secret.h"
#include "token.h"

PG_FUNCTION_INFO_V1(apikeys_mint);
PG_FUNCTION_INFO_V1(apikeys_token_client_id);

/*
 * SQL function: apikeys._mint(client_id text) returns record
 *	 (client_id text, client_secret text, token text, secret_hash bytea,
 *	  hash_alg "char")
 *
 * With a NULL argument a new client ID is drawn under the current
 * apikeys.token_prefix; with a client ID (rotation) only the secret is new.
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
		int			plen = strlen(apikeys_token_prefix);

		memcpy(token, apikeys_token_prefix, plen);
		token[plen] = '_';
		Base62Random(token + plen + 1, APIKEYS_CLIENT_RANDOM_LEN);
		cid_len = plen + 1 + APIKEYS_CLIENT_RANDOM_LEN;
	}
	else
	{
		text	   *cid = PG_GETARG_TEXT_PP(0);

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
