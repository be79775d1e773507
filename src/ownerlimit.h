/*-------------------------------------------------------------------------
 *
 * ownerlimit.h
 *	  Owner-wide rate limits: one window shared by all keys of an owner.
 *
 * IDENTIFICATION
 *	  src/ownerlimit.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_OWNERLIMIT_H
#define APIKEYS_OWNERLIMIT_H

#include "apikeys.h"

extern bool OwnerRateLimited(const char *owner, int *retry_after);
extern bool OwnerLimitKnownNone(const char *owner);

#endif							/* APIKEYS_OWNERLIMIT_H */
