/*-------------------------------------------------------------------------
 *
 * verify_legacy.h
 *	  Imported keys: legacy tokens found by the hash of the whole token.
 *
 * IDENTIFICATION
 *	  src/verify_legacy.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_VERIFY_LEGACY_H
#define APIKEYS_VERIFY_LEGACY_H

#include "apikeys.h"

extern bool LegacyImportsExist(void);
extern bool LegacyLookup(const uint8 *hash, char *client_id, int *cid_len);

#endif							/* APIKEYS_VERIFY_LEGACY_H */
