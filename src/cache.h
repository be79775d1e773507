/*-------------------------------------------------------------------------
 *
 * cache.h
 *	  The shared verification cache.
 *
 * IDENTIFICATION
 *	  src/cache.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_CACHE_H
#define APIKEYS_CACHE_H

#include "lookup.h"

extern bool KeyLookupCached(const char *client_id, int len, KeyInfo *out);

#endif							/* APIKEYS_CACHE_H */
