/*-------------------------------------------------------------------------
 *
 * apikeys.c
 *	  Module entry point: PG_MODULE_MAGIC and _PG_init.
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

const char *const ApikeysCodeNames[APIKEYS_NUM_CODES] = {
	"VALID",
	"MALFORMED",
	"NOT_FOUND",
	"EXPIRED",
	"DISABLED",
	"REVOKED",
	"INSUFFICIENT_SCOPE",
	"IP_NOT_ALLOWED",
	"RATE_LIMITED"
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
