/*-------------------------------------------------------------------------
 *
 * usage_recent.h
 *	  Last-use times written to the usage journal but not yet rolled up.
 *
 * IDENTIFICATION
 *	  src/usage_recent.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_USAGE_RECENT_H
#define APIKEYS_USAGE_RECENT_H

#include "apikeys.h"
#include "usage_item.h"

extern Size RecentShmemSize(void);
extern void RecentShmemRequest(void);
extern void RecentShmemInit(void);
extern void RecentNote(UsageItems *items);
extern void RecentForget(UsageItems *items);
extern TimestampTz RecentUse(const char *client_id, int len);
extern void RecentDiscardDatabase(Oid dbid);

#endif							/* APIKEYS_USAGE_RECENT_H */
