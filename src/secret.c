/*-------------------------------------------------------------------------
 *
 * secret.c
 *	  Hashing of client secrets and constant-time comparison.
 *
 * Secrets carry 256 bits of entropy, so a fast hash is the right choice:
 * a slow password hash (bcrypt) buys nothing against brute force here and
 * costs every request a millisecond.  The database stores SHA-256 of the
 * secret, or HMAC-SHA-256 keyed by apikeys.pepper when a pepper is set.
 * The algorithm is recorded per key, so turning a pepper on later leaves
 * older keys verifiable; turning it off (or losing it) makes every key
 * issued under it fail verification.
 *
 * Both use PostgreSQL's own pg_cryptohash / pg_hmac, backed by OpenSSL,
 * except on the verification hot path: with OpenSSL 3, pg_cryptohash_create
 * fetches the digest by name and allocates a context on every call, which
 * costs several times the SHA-256 of a 43-byte secret itself (profiled:
 * about 10 % of a cached verification went to EVP_MD_fetch's locks,
 * ERR_clear_error and frees).  So when PostgreSQL is built with OpenSSL we
 * fetch SHA-256 once per backend and reuse one digest context; the pepper
 * path (HMAC) keeps pg_hmac, as peppered keys are the exception.
 * Comparison uses timingsafe_bcmp so a wrong secret takes the same time
 * whatever its first wrong byte.
 *
 * IDENTIFICATION
 *	  src/secret.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "common/hmac.h"

#ifdef USE_OPENSSL
#include <openssl/evp.h>
#endif

#include "secret.h"

/* SecretCurrentHashAlg says how a key issued now is hashed. */
char
SecretCurrentHashAlg(void)
{
	return (apikeys_pepper != NULL && apikeys_pepper[0] != '\0') ?
		APIKEYS_HASH_HMAC : APIKEYS_HASH_SHA256;
}

/*
 * SecretHash writes the APIKEYS_HASH_LEN-byte hash of secret[0..len) with
 * the given algorithm into out.  Returns false when the algorithm needs a
 * pepper and none is set: such a key cannot be verified now.
 */
bool
SecretHash(const char *secret, size_t len, char alg, uint8 *out)
{
	if (alg == APIKEYS_HASH_HMAC)
	{
		pg_hmac_ctx *ctx;

		if (apikeys_pepper == NULL || apikeys_pepper[0] == '\0')
			return false;
		ctx = pg_hmac_create(PG_SHA256);
		if (ctx == NULL ||
			pg_hmac_init(ctx, (const uint8 *) apikeys_pepper, strlen(apikeys_pepper)) < 0 ||
			pg_hmac_update(ctx, (const uint8 *) secret, len) < 0 ||
			pg_hmac_final(ctx, out, APIKEYS_HASH_LEN) < 0)
			elog(ERROR, "could not compute HMAC-SHA-256: %s", pg_hmac_error(ctx));
		pg_hmac_free(ctx);
	}
	else
	{
#ifdef USE_OPENSSL
		static const EVP_MD *md = NULL;
		static EVP_MD_CTX *mdctx = NULL;
		unsigned int outlen = 0;

		/* fetched once per backend; both live until the backend exits */
		if (md == NULL)
		{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
			/* an explicit fetch: EVP_sha256() would be re-fetched per init */
			md = EVP_MD_fetch(NULL, "SHA256", NULL);
#else
			md = EVP_sha256();
#endif
			if (md == NULL)
				elog(ERROR, "could not fetch SHA-256 from OpenSSL");
		}
		if (mdctx == NULL && (mdctx = EVP_MD_CTX_new()) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		if (EVP_DigestInit_ex(mdctx, md, NULL) != 1 ||
			EVP_DigestUpdate(mdctx, secret, len) != 1 ||
			EVP_DigestFinal_ex(mdctx, out, &outlen) != 1 ||
			outlen != APIKEYS_HASH_LEN)
			elog(ERROR, "could not compute SHA-256");
#else
		pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

		if (ctx == NULL ||
			pg_cryptohash_init(ctx) < 0 ||
			pg_cryptohash_update(ctx, (const uint8 *) secret, len) < 0 ||
			pg_cryptohash_final(ctx, out, APIKEYS_HASH_LEN) < 0)
			elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
		pg_cryptohash_free(ctx);
#endif
	}
	return true;
}

/* SecretHashEqual compares two hashes in constant time. */
bool
SecretHashEqual(const uint8 *a, const uint8 *b)
{
	return timingsafe_bcmp(a, b, APIKEYS_HASH_LEN) == 0;
}
