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
#include "utils/hsearch.h"

extern Size RecentShmemSize(void);
extern void RecentShmemRequest(void);
extern void RecentShmemInit(void);
extern void RecentNote(HTAB *items);
extern void RecentForget(HTAB *items);
extern TimestampTz RecentUse(const char *client_id, int len);
extern void RecentDiscardDatabase(Oid dbid);

#endif							/* APIKEYS_USAGE_RECENT_H */
