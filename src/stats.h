/*-------------------------------------------------------------------------
 *
 * stats.h
 *	  Server-wide counters behind the apikeys.stats view.
 *
 * IDENTIFICATION
 *	  src/stats.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_STATS_H
#define APIKEYS_STATS_H

#include "apikeys.h"

/*
 * Event counters other than the verification codes.  The verification
 * codes come first in the same array (ServerStatsCountVerification), so an
 * event's slot is APIKEYS_NUM_CODES + its number.
 */
typedef enum StatsEvent
{
	STATS_CACHE_HIT = 0,
	STATS_CACHE_MISS,
	STATS_CACHE_EVICTION,
	STATS_USAGE_FLUSH,			/* a flush or rollup worker committed */
	STATS_POLICY_RUN,			/* the worker's apply_policies() committed */
	STATS_POLICY_ACTION,		/* actions those runs took */
	STATS_NUM_EVENTS
} StatsEvent;

extern void ServerStatsShmemRequest(void);
extern void ServerStatsShmemInit(void);
extern void ServerStatsCountVerification(ApikeysCode code);
extern void ServerStatsCount(StatsEvent event, int64 n);
extern void ServerStatsNoteUsageFlush(void);
extern void ServerStatsNotePolicyRun(int64 actions);

#endif							/* APIKEYS_STATS_H */
