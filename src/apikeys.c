/*-------------------------------------------------------------------------
 *
 * apikeys.c
 *	  Module entry point: PG_MODULE_MAGIC, _PG_init, and the table of what
 *	  each verification outcome means to each interface (ApikeysOutcomes).
 *
 * _PG_init only calls each module's initialiser, so every concern keeps
 * its set-up beside its code.
 *
 * IDENTIFICATION
 *	  src/apikeys.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "apikeys.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);

/*
 * The outcome table.  authenticate (context.c) raises 28000 for a
 * credential that is no good, 42501 for a good one that may not do this,
 * 54000 when rate limited; its messages name the client ID at most, never
 * the token.  pre_request (postgrest.c) answers 401 with WWW-Authenticate,
 * 403, or 429 with Retry-After.
 */
const ApikeysOutcome ApikeysOutcomes[APIKEYS_NUM_CODES] = {
	[APIKEYS_VALID] = {"VALID", 0, NULL, NULL, 0, NULL},
	[APIKEYS_MALFORMED] = {"MALFORMED", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
		"malformed API key", "Check that the whole token was sent, unchanged.",
	401, "The API key is malformed."},
	[APIKEYS_NOT_FOUND] = {"NOT_FOUND", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
		"invalid API key", NULL,
	401, "The API key is not valid."},
	[APIKEYS_EXPIRED] = {"EXPIRED", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
		"API key \"%s\" has expired", "Ask an administrator for a new key.",
	401, "The API key has expired."},
	[APIKEYS_DISABLED] = {"DISABLED", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
		"API key \"%s\" is disabled", NULL,
	401, "The API key is disabled."},
	[APIKEYS_REVOKED] = {"REVOKED", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
		"API key \"%s\" has been revoked", NULL,
	401, "The API key has been revoked."},
	[APIKEYS_INSUFFICIENT_SCOPE] = {"INSUFFICIENT_SCOPE", ERRCODE_INSUFFICIENT_PRIVILEGE,
		"API key \"%s\" lacks the required scope", NULL,
	403, "The API key lacks the required scope."},
	[APIKEYS_IP_NOT_ALLOWED] = {"IP_NOT_ALLOWED", ERRCODE_INSUFFICIENT_PRIVILEGE,
		"API key \"%s\" may not be used from this address", NULL,
	403, "The API key may not be used from this address."},
	[APIKEYS_RATE_LIMITED] = {"RATE_LIMITED", ERRCODE_PROGRAM_LIMIT_EXCEEDED,
		"too many requests", NULL,
	429, "Too many requests."},
};

/*
 * _PG_init sets up GUCs, the transaction-scoped request context, catalog
 * caches and, when preloaded, shared memory and the background worker.
 */
void
_PG_init(void)
{
	ApikeysDefineGucs();
	ApikeysCatalogInit();
	ApikeysContextInit();
	ApikeysShmemInit();
}
