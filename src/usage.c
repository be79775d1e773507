/*-------------------------------------------------------------------------
 *
 * usage.c
 *	  Usage counters, last-used times, failure counters and rate limits.
 *
 * IDENTIFICATION
 *	  src/usage.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "usage.h"

void
ApikeysShmemInit(void)
{
}

bool
UsageAddressBlocked(bool ip_known, Datum addr, int *retry_after)
{
	return false;
}

void
UsageRecordFailure(const char *client_id, int cid_len, bool ip_known, Datum addr)
{
}

bool
UsageRateLimited(const char *client_id, int32 limit, int64 window_us, int *retry_after)
{
	return false;
}

void
UsageRecord(const KeyInfo *key, ApikeysCode code, TimestampTz now)
{
}
