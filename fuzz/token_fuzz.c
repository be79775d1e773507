/*-------------------------------------------------------------------------
 *
 * token_fuzz.c
 *	  libFuzzer target for the token parser (src/token.c).
 *
 * Any byte string goes to TokenParse, ClientIdIsWellFormed,
 * SecretIsWellFormed and TokenPrefixIsValid: none may crash or read out
 * of bounds (AddressSanitizer sees the exact-size buffer).  Beyond "does
 * not crash", it checks what the parser promises:
 *	- an accepted token splits into a well-formed client ID and secret that
 *	  lie inside the input, and its checksum really is CRC-32C of the rest;
 *	- a token built from the input's bytes (mapped to the token alphabet,
 *	  with a correct checksum) is always accepted and splits back into the
 *	  same parts, and changing any one of its characters makes it rejected
 *	  or still consistent.
 *
 * IDENTIFICATION
 *	  fuzz/token_fuzz.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "token.h"

#define CHECK(cond) \
	do { if (!(cond)) { fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); abort(); } } while (0)

static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* the properties of any accepted token */
static void
CheckAccepted(const char *tok, size_t len, const ParsedToken *p)
{
	char		sum[APIKEYS_CHECKSUM_LEN];

	CHECK(p->client_id == tok);
	CHECK(p->client_id_len >= APIKEYS_CLIENT_RANDOM_LEN + 2);
	CHECK(p->client_id_len <= APIKEYS_CLIENT_ID_MAXLEN);
	CHECK(ClientIdIsWellFormed(p->client_id, p->client_id_len));
	CHECK(p->secret == tok + p->client_id_len + 1);
	CHECK(p->secret_len == APIKEYS_SECRET_LEN);
	CHECK(SecretIsWellFormed(p->secret, p->secret_len));
	CHECK((size_t) p->client_id_len + 1 + APIKEYS_SECRET_LEN + APIKEYS_CHECKSUM_LEN == len);
	TokenChecksum(tok, len - APIKEYS_CHECKSUM_LEN, sum);
	CHECK(memcmp(sum, tok + len - APIKEYS_CHECKSUM_LEN, APIKEYS_CHECKSUM_LEN) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *) data;
	ParsedToken p;
	char		tok[APIKEYS_TOKEN_MAXLEN + 1];
	size_t		n = 0;
	size_t		plen;
	size_t		i = 0;

	/* 1. raw input: no crash; accepted means consistent */
	(void) ClientIdIsWellFormed(s, size);
	(void) SecretIsWellFormed(s, size);
	(void) TokenPrefixIsValid(s, size);
	if (TokenParse(s, size, &p))
		CheckAccepted(s, size, &p);

	/* 2. a token built from the input always parses back */
	if (size < 1 + APIKEYS_CLIENT_RANDOM_LEN + APIKEYS_SECRET_LEN)
		return 0;
	plen = 1 + data[i++] % APIKEYS_PREFIX_MAXLEN;
	tok[n++] = 'a' + data[i++ % size] % 26;
	while (n < plen)
	{
		uint8		b = data[i++ % size];

		tok[n++] = (b % 37 < 26) ? 'a' + b % 26 : (b % 37 < 36 ? '0' + b % 10 : '_');
	}
	if (tok[n - 1] == '_')
		tok[n - 1] = 'z';
	tok[n++] = '_';
	for (int k = 0; k < APIKEYS_CLIENT_RANDOM_LEN; k++)
		tok[n++] = b62[data[i++ % size] % 62];
	tok[n++] = '_';
	for (int k = 0; k < APIKEYS_SECRET_LEN; k++)
		tok[n++] = b62[data[i++ % size] % 62];
	TokenChecksum(tok, n, tok + n);
	n += APIKEYS_CHECKSUM_LEN;

	CHECK(TokenPrefixIsValid(tok, plen));
	CHECK(TokenParse(tok, n, &p));
	CheckAccepted(tok, n, &p);
	CHECK(p.client_id_len == (int) (plen + 1 + APIKEYS_CLIENT_RANDOM_LEN));

	/* 3. one changed character: rejected, or (same-class swaps in the
	 * prefix aside) still a consistent token */
	{
		size_t		pos = data[size - 1] % n;
		char		orig = tok[pos];

		tok[pos] = (orig == 'A') ? 'B' : 'A';
		if (TokenParse(tok, n, &p))
			CheckAccepted(tok, n, &p);
		tok[pos] = orig;
	}
	return 0;
}
