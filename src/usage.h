/*-------------------------------------------------------------------------
 *
 * usage.h
 *	  Usage counters, last-used times, failure counters and rate limits.
 *
 * IDENTIFICATION
 *	  src/usage.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_USAGE_H
#define APIKEYS_USAGE_H

#include "apikeys.h"
#include "lookup.h"

extern bool UsageAddressBlocked(bool ip_known, Datum addr, int *retry_after);
extern void UsageRecordFailure(const char *client_id, int cid_len,
							   bool ip_known, Datum addr);
extern bool UsageRateLimited(const char *client_id, int32 limit,
							 int64 window_us, int *retry_after);
extern void UsageRecord(const KeyInfo *key, ApikeysCode code, TimestampTz now);
extern void UsageInit(void);
extern void UsageAddCounts(Oid dbid, const char *client_id, int len,
						   const uint32 *counts, TimestampTz last_used);

/* pre_request sets this around its verification: it must write nothing */
extern bool UsageWritesSuppressed;

#endif							/* APIKEYS_USAGE_H */
