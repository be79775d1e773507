/*-------------------------------------------------------------------------
 *
 * lastused.h
 *	  The non-preloaded last_used_at write.
 *
 * IDENTIFICATION
 *	  src/lastused.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_LASTUSED_H
#define APIKEYS_LASTUSED_H

#include "lookup.h"

extern void LastUsedWriteDirect(const KeyInfo *key, TimestampTz now);

#endif							/* APIKEYS_LASTUSED_H */
