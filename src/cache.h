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

typedef void (*CacheUsageFn) (const char *client_id, int len,
							  const uint32 *counts, TimestampTz last_used,
							  void *arg);

extern bool KeyLookupCached(const char *client_id, int len, KeyInfo *out);
extern bool CacheCountUsage(const char *client_id, int len, ApikeysCode code,
							TimestampTz now);
extern void CacheDrainUsage(Oid dbid, CacheUsageFn fn, void *arg);

#endif							/* APIKEYS_CACHE_H */
