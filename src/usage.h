/*-------------------------------------------------------------------------
 *
 * usage.h
 *	  Where a verification's outcome is counted, and gathering the counts
 *	  for a flush.
 *
 * IDENTIFICATION
 *	  src/usage.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_USAGE_H
#define APIKEYS_USAGE_H

#include "apikeys.h"
#include "verify_cache.h"
#include "verify_lookup.h"
#include "usage_item.h"

extern void UsageRecordFailure(const CacheHandle *handle,
							   const char *client_id, int cid_len);
extern void UsageRecord(const CacheHandle *handle, const KeyInfo *key,
						ApikeysCode code, TimestampTz now, bool may_write);

extern void UsageItemSinkAdd(const char *client_id, int len,
							 const uint64 *counts, TimestampTz last_used,
							 void *sink);
extern void UsageCollect(UsageItems *items, TimestampTz hour);
extern void UsageSaveRegister(void);
extern bool UsageLoadSaved(void);

#endif							/* APIKEYS_USAGE_H */
