/*-------------------------------------------------------------------------
 *
 * verify_ownerlimit.h
 *	  Owner-wide rate limits: one window shared by all keys of an owner.
 *
 * IDENTIFICATION
 *	  src/verify_ownerlimit.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_VERIFY_OWNERLIMIT_H
#define APIKEYS_VERIFY_OWNERLIMIT_H

#include "apikeys.h"

#include "datatype/timestamp.h"

/*
 * The longest owner name, in characters (SQL's length(), whatever the
 * bytes: 256 CJK characters are 768 bytes).  apikeys_internal._check_owner checks
 * it through apikeys_internal._owner_max_length(); nothing in C measures owners.
 */
#define APIKEYS_OWNER_MAX_CHARS		256

extern bool OwnerRateLimited(const char *owner, int *retry_after,
							 TimestampTz *reset);
extern void OwnerRateGiveBack(const char *owner, TimestampTz reset);
extern int64 IntervalUs(const Interval *w);
extern bool OwnerLimitKnownNone(const char *owner);

#endif							/* APIKEYS_VERIFY_OWNERLIMIT_H */
