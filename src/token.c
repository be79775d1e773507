/*-------------------------------------------------------------------------
 *
 * token.c
 *	  Token layout: prefix, client ID, base62 randomness and checksum.
 *
 * A token is one string made of [A-Za-z0-9_] only, so it is safe in HTTP
 * headers, URLs and shells and is selected whole by a double click:
 *
 *		ak_7fGh2Kq9ZxB3mN0p_<43 base62 secret chars><6 base62 checksum chars>
 *		\________________/ \____________________________________________/
 *		     client ID              client secret + checksum
 *
 * - The prefix (default "ak", setting apikeys.token_prefix) lets secret
 *   scanners find leaked tokens.  It may itself contain underscores
 *   ("acme_live"), so tokens are parsed from the right, where every part
 *   has a fixed length.
 * - The client ID is the prefix, "_", and 16 random base62 characters
 *   (~95 bits): it is public, it is what lists show, and the key is looked
 *   up by it without hashing anything.
 * - The secret is 43 base62 characters drawn from pg_strong_random() by
 *   rejection sampling: 43 * log2(62) = 256 bits of entropy.
 * - The checksum is CRC-32C of everything before it, as 6 base62 digits.
 *   A mistyped, truncated or forged token is rejected as MALFORMED before
 *   any table is touched, and a scanner can check a candidate offline.
 *
 * Nothing here touches SQL; it is pure string work shared by issuance,
 * verification and the fuzz target.
 *
 * IDENTIFICATION
 *	  src/token.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "port/pg_crc32c.h"

#include "token.h"

static const char base62_digits[] =
"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* IsBase62 is true for [0-9A-Za-z]. */
static inline bool
IsBase62(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
		(c >= 'a' && c <= 'z');
}

/* AllBase62 checks that s[0..len) is base62 only. */
static bool
AllBase62(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!IsBase62(s[i]))
			return false;
	return true;
}

/*
 * TokenPrefixIsValid accepts a lowercase letter followed by lowercase
 * letters, digits and underscores, at most APIKEYS_PREFIX_MAXLEN long and
 * not ending in an underscore.
 */
bool
TokenPrefixIsValid(const char *prefix, size_t len)
{
	if (len < 1 || len > APIKEYS_PREFIX_MAXLEN)
		return false;
	if (!(prefix[0] >= 'a' && prefix[0] <= 'z'))
		return false;
	for (size_t i = 1; i < len; i++)
	{
		char		c = prefix[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return prefix[len - 1] != '_';
}

/*
 * ClientIdIsWellFormed checks "<prefix>_<16 base62>".
 */
bool
ClientIdIsWellFormed(const char *client_id, size_t len)
{
	size_t		plen;

	if (len < APIKEYS_CLIENT_RANDOM_LEN + 2 || len > APIKEYS_CLIENT_ID_MAXLEN)
		return false;
	plen = len - APIKEYS_CLIENT_RANDOM_LEN - 1;
	if (client_id[plen] != '_')
		return false;
	return TokenPrefixIsValid(client_id, plen) &&
		AllBase62(client_id + plen + 1, APIKEYS_CLIENT_RANDOM_LEN);
}

/* SecretIsWellFormed checks a client secret: 43 base62 characters. */
bool
SecretIsWellFormed(const char *secret, size_t len)
{
	return len == APIKEYS_SECRET_LEN && AllBase62(secret, len);
}

/*
 * TokenChecksum writes the CRC-32C of data as APIKEYS_CHECKSUM_LEN base62
 * digits, most significant first (62^6 > 2^32, so it is exact).
 */
void
TokenChecksum(const char *data, size_t len, char *out)
{
	pg_crc32c	crc;
	uint64		v;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, data, len);
	FIN_CRC32C(crc);

	v = crc;
	for (int i = APIKEYS_CHECKSUM_LEN - 1; i >= 0; i--)
	{
		out[i] = base62_digits[v % 62];
		v /= 62;
	}
}

/*
 * TokenLayout: is token laid out as an apikeys token, "<client ID>_<43
 * base62 secret><6 base62 checksum>" with a valid prefix, whatever its
 * checksum?  Sets *cid_len.  Any input is safe.
 */
bool
TokenLayout(const char *token, size_t len, size_t *cid_len)
{
	if (len < APIKEYS_CLIENT_RANDOM_LEN + 2 + 1 + APIKEYS_SECRET_LEN + APIKEYS_CHECKSUM_LEN ||
		len > APIKEYS_TOKEN_MAXLEN)
		return false;

	*cid_len = len - APIKEYS_CHECKSUM_LEN - APIKEYS_SECRET_LEN - 1;
	if (token[*cid_len] != '_')
		return false;
	return ClientIdIsWellFormed(token, *cid_len) &&
		AllBase62(token + *cid_len + 1, APIKEYS_SECRET_LEN + APIKEYS_CHECKSUM_LEN);
}

/*
 * TokenParse splits a token into client ID and secret and checks its
 * checksum.  Returns false, touching nothing, for anything that is not a
 * well-formed token: wrong length, wrong characters, or a bad checksum.
 * Any input is safe, including huge, empty and non-UTF-8 strings.
 */
bool
TokenParse(const char *token, size_t len, ParsedToken *out)
{
	size_t		cid_len;
	char		sum[APIKEYS_CHECKSUM_LEN];

	if (!TokenLayout(token, len, &cid_len))
		return false;

	TokenChecksum(token, len - APIKEYS_CHECKSUM_LEN, sum);
	if (memcmp(sum, token + len - APIKEYS_CHECKSUM_LEN, APIKEYS_CHECKSUM_LEN) != 0)
		return false;

	out->client_id = token;
	out->client_id_len = (int) cid_len;
	out->secret = token + cid_len + 1;
	out->secret_len = APIKEYS_SECRET_LEN;
	return true;
}

/*
 * Base62Random fills out[0..n) with uniformly random base62 characters
 * from pg_strong_random().  Bytes >= 248 are rejected so that "% 62" is
 * unbiased.  There is no weaker fallback: if the strong source fails, the
 * caller gets an ERROR.
 */
void
Base62Random(char *out, int n)
{
	unsigned char buf[64];
	int			filled = 0;

	while (filled < n)
	{
		if (!pg_strong_random(buf, sizeof(buf)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random bytes for an API key")));
		for (int i = 0; i < (int) sizeof(buf) && filled < n; i++)
			if (buf[i] < 248)
				out[filled++] = base62_digits[buf[i] % 62];
	}
	explicit_bzero(buf, sizeof(buf));
}
