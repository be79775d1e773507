/*-------------------------------------------------------------------------
 *
 * usage_lastused.h
 *	  The non-preloaded last_used_at write.
 *
 * IDENTIFICATION
 *	  src/usage_lastused.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_USAGE_LASTUSED_H
#define APIKEYS_USAGE_LASTUSED_H

#include "verify_lookup.h"

extern void LastUsedWriteDirect(const KeyInfo *key, TimestampTz now);

#endif							/* APIKEYS_USAGE_LASTUSED_H */
