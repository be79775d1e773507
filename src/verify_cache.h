/*-------------------------------------------------------------------------
 *
 * verify_cache.h
 *	  The shared verification cache.
 *
 * IDENTIFICATION
 *	  src/verify_cache.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_VERIFY_CACHE_H
#define APIKEYS_VERIFY_CACHE_H

#include "catalog.h"
#include "usage_counters.h"
#include "verify_lookup.h"

/*
 * Where a lookup found (or put) the key: KeyLookupCached fills it, the
 * caller hands it to CacheCountUsage, so counting needs no second search
 * and no state left behind in verify_cache.c.  way < 0: the key is not cached.
 */
typedef struct CacheHandle
{
	int64		way;			/* index of the entry, set * CACHE_WAYS + way */
	uint32		hash;			/* ClientIdHash of the client ID */
	ApikeysKeysId id;			/* the table the entry must belong to */
	bool		counted;		/* the lookup already counted the outcome */
} CacheHandle;

/*
 * Judges a cache hit while its entry is held (see KeyLookupCached): the
 * outcome to count at once, or APIKEYS_NUM_CODES to count it later.
 */
typedef ApikeysCode (*CacheHitJudge) (const KeyInfo *key, void *arg,
									  TimestampTz *now);

extern void CacheShmemRequest(void);
extern void CacheShmemInit(void);
extern void CacheXactInit(void);
extern bool KeyLookupCached(const char *client_id, int len, KeyInfo *out,
							CacheHandle *handle, CacheHitJudge judge, void *arg);
extern bool CacheCountUsage(const CacheHandle *handle,
							const char *client_id, int len,
							ApikeysCode code, TimestampTz now);
extern void CacheDrainUsage(Oid dbid, UsageCountsFn fn, void *arg);

#endif							/* APIKEYS_VERIFY_CACHE_H */
