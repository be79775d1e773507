/*-------------------------------------------------------------------------
 *
 * usage_counters.h
 *	  Per-key usage counters in shared memory.
 *
 * IDENTIFICATION
 *	  src/usage_counters.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_USAGE_COUNTERS_H
#define APIKEYS_USAGE_COUNTERS_H

#include "apikeys.h"

/* Where drained counts go: one key's counts by outcome and last VALID use. */
typedef void (*UsageCountsFn) (const char *client_id, int len,
							   const uint32 *counts, TimestampTz last_used,
							   void *arg);

extern Size CountersShmemSize(void);
extern void CountersShmemRequest(void);
extern void CountersShmemInit(void);
extern bool CountersLockHeldByMe(void);
extern void CountersCountOne(const char *client_id, int len, ApikeysCode code,
							 TimestampTz now);
extern void CountersAdd(Oid dbid, const char *client_id, int len,
						const uint32 *counts, TimestampTz last_used);
extern void CountersDrain(Oid dbid, UsageCountsFn fn, void *arg);
extern void CountersDiscardDatabase(Oid dbid);
extern void CountersStats(int64 *tracked, int64 *capacity, int64 *dropped);

#endif							/* APIKEYS_USAGE_COUNTERS_H */
