/*-------------------------------------------------------------------------
 *
 * token.h
 *	  Token layout: prefix, client ID, secret and checksum.
 *
 * IDENTIFICATION
 *	  src/token.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_TOKEN_H
#define APIKEYS_TOKEN_H

#include "apikeys.h"

/* A token split into its parts; pointers refer into the caller's buffer. */
typedef struct ParsedToken
{
	const char *client_id;
	int			client_id_len;
	const char *secret;
	int			secret_len;
} ParsedToken;

/*
 * apikeys.allowed_prefixes, parsed (guc.c): each a valid token prefix
 * (TokenPrefixIsValid), NUL-terminated.
 */
typedef struct ApikeysPrefixList
{
	int			n;
	char		prefixes[FLEXIBLE_ARRAY_MEMBER][APIKEYS_PREFIX_MAXLEN + 1];
} ApikeysPrefixList;

extern const ApikeysPrefixList *apikeys_allowed_prefix_list;

extern bool TokenPrefixIsValid(const char *prefix, size_t len);
extern bool TokenLayout(const char *token, size_t len, size_t *cid_len);
extern bool TokenParse(const char *token, size_t len, ParsedToken *out);
extern bool ClientIdIsWellFormed(const char *client_id, size_t len);
extern bool SecretIsWellFormed(const char *secret, size_t len);
extern void TokenChecksum(const char *data, size_t len, char *out);
extern void Base62Random(char *out, int n);

#endif							/* APIKEYS_TOKEN_H */
