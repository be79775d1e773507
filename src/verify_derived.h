/*-------------------------------------------------------------------------
 *
 * verify_derived.h
 *	  Derived tokens: their format, their signature, their scopes.
 *
 * IDENTIFICATION
 *	  src/verify_derived.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_VERIFY_DERIVED_H
#define APIKEYS_VERIFY_DERIVED_H

#include "apikeys.h"
#include "datatype/timestamp.h"
#include "utils/array.h"

/* "<client ID>.dt1.<payload>.<signature>" (verify_derived.c) */
#define APIKEYS_DERIVED_MARKER		"dt1"
#define APIKEYS_DERIVED_MAXLEN		4096
#define APIKEYS_DERIVED_SIG_LEN		32	/* HMAC-SHA-256 */

/*
 * A derived token as read from its text; what it says is trusted only once
 * DerivedSignatureValid has accepted it for its key.
 */
typedef struct DerivedToken
{
	char		client_id[APIKEYS_CLIENT_ID_MAXLEN + 1];
	int			client_id_len;
	TimestampTz expires_at;		/* the token's own end */
	ArrayType  *scopes;			/* text[]; NULL: all of the key's */
	const char *signed_part;	/* the text the signature covers */
	int			signed_len;
	uint8		sig[APIKEYS_DERIVED_SIG_LEN];
	uint8		signing_key[APIKEYS_DERIVED_SIG_LEN];
} DerivedToken;

extern bool DerivedTokenShaped(const char *token, size_t len);
extern bool DerivedTokenParse(const char *token, size_t len, DerivedToken *out);
extern bool DerivedSignatureValid(const DerivedToken *dt, char hash_alg,
								  const uint8 *key_hash);
extern ArrayType *DerivedScopes(const DerivedToken *dt, ArrayType *key_scopes);
extern text *DerivedTokenMint(const char *client_id, char hash_alg,
							  const uint8 *key_hash, TimestampTz expires_at,
							  ArrayType *scopes);

#endif							/* APIKEYS_VERIFY_DERIVED_H */
