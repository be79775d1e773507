/*-------------------------------------------------------------------------
 *
 * apikeys.h
 *	  Shared constants, types and module entry points of the apikeys
 *	  extension.
 *
 * IDENTIFICATION
 *	  src/apikeys.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_H
#define APIKEYS_H

#include "postgres.h"

#include "datatype/timestamp.h"

#define APIKEYS_SCHEMA_NAME			"apikeys"
#define APIKEYS_KEYS_TABLE			"keys"

/* Token layout (see token.c for the design notes) */
#define APIKEYS_PREFIX_MAXLEN		20
#define APIKEYS_CLIENT_RANDOM_LEN	16
#define APIKEYS_SECRET_LEN			43	/* 43 base62 chars = 256 bits */
#define APIKEYS_CHECKSUM_LEN		6	/* CRC-32C in base62 */
#define APIKEYS_CLIENT_ID_MAXLEN	(APIKEYS_PREFIX_MAXLEN + 1 + APIKEYS_CLIENT_RANDOM_LEN)
#define APIKEYS_TOKEN_MAXLEN		(APIKEYS_CLIENT_ID_MAXLEN + 1 + APIKEYS_SECRET_LEN + APIKEYS_CHECKSUM_LEN)
#define APIKEYS_HASH_LEN			32	/* SHA-256 / HMAC-SHA-256 */

/* Hash algorithms recorded per key, so a pepper can be added later */
#define APIKEYS_HASH_SHA256			's'
#define APIKEYS_HASH_HMAC			'h'
/* an imported key: SHA-256 of the whole legacy token (src/verify_legacy.c) */
#define APIKEYS_HASH_LEGACY			'l'
/* the longest legacy token looked up; longer input stays MALFORMED */
#define APIKEYS_LEGACY_TOKEN_MAXLEN	512

/*
 * Verification outcome codes.  The values index the per-code counters in
 * shared memory and the code mask of usage journal rows, so they are
 * fixed: a new code goes at the end.  They are not in the order the
 * checks are made; that order is in verify.c.
 */
typedef enum ApikeysCode
{
	APIKEYS_VALID = 0,
	APIKEYS_MALFORMED,
	APIKEYS_NOT_FOUND,
	APIKEYS_EXPIRED,
	APIKEYS_DISABLED,
	APIKEYS_REVOKED,
	APIKEYS_INSUFFICIENT_SCOPE,
	APIKEYS_IP_NOT_ALLOWED,
	APIKEYS_RATE_LIMITED,
	APIKEYS_USAGE_EXCEEDED,		/* too few credits left (verify_credits.c) */
	APIKEYS_NUM_CODES
} ApikeysCode;

/*
 * What each outcome means to each interface, in one table (apikeys.c):
 * its name in apikeys.verification.code, the error apikeys.authenticate
 * raises, and the HTTP answer apikeys.pre_request gives PostgREST.
 */
typedef struct ApikeysOutcome
{
	const char *name;			/* apikeys.verification.code */
	int			sqlstate;		/* authenticate's SQLSTATE (0: VALID) */
	const char *message;		/* its message; a "%s" is the client ID */
	const char *hint;			/* its hint, or NULL */
	int			http_status;	/* pre_request's HTTP status (0: VALID) */
	const char *http_message;	/* the JSON body's message */
} ApikeysOutcome;

extern const ApikeysOutcome ApikeysOutcomes[APIKEYS_NUM_CODES];

/* GUC variables (guc.c) */
extern char *apikeys_token_prefix;
extern bool TokenPrefixConfigured(const char *prefix, size_t len);
extern char *apikeys_pepper;
extern int	apikeys_default_max_keys;
extern int	apikeys_default_max_lifetime;
extern bool apikeys_trust_forwarded_for;
extern int	apikeys_last_used_granularity;
extern int	apikeys_flush_interval;
extern int	apikeys_cache_size;
extern bool apikeys_prewarm;
extern int	apikeys_max_failures;
extern int	apikeys_max_network_failures;
extern int	apikeys_failure_window;
extern int	apikeys_claim_lifetime;
extern int	apikeys_max_derived_ttl;
extern int	apikeys_outbox_max_attempts;
extern int	apikeys_outbox_backoff;
extern int	apikeys_outbox_max_backoff;
extern int	apikeys_outbox_retention;
extern int	apikeys_policy_interval;
extern int	apikeys_default_revoke_unused_after;
extern int	apikeys_default_warn_before_expiry;
extern int	apikeys_default_rotate_every;
extern int	apikeys_max_tenant_actions;
extern int	apikeys_lock_timeout;

/* apikeys.standbys_verify: may hot standbys serve verifications? */
typedef enum ApikeysStandbysVerify
{
	APIKEYS_STANDBYS_AUTO,		/* if the primary knows of a standby */
	APIKEYS_STANDBYS_ON,
	APIKEYS_STANDBYS_OFF
} ApikeysStandbysVerify;
extern int	apikeys_standbys_verify;

/* Module initialisers, called from _PG_init */
extern void ApikeysDefineGucs(void);
extern void ApikeysContextInit(void);
extern void ApikeysCatalogInit(void);
extern void WorkerRegister(void);	/* worker.c, preloaded only */
extern void ClaimShmemRequest(void);	/* admin_claim.c, preloaded only */
extern void ClaimShmemInit(void);

#endif							/* APIKEYS_H */
