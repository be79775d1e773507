/*-------------------------------------------------------------------------
 *
 * usage.h
 *	  Usage counters and last-used times.
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
#include "utils/hsearch.h"

extern void UsageRecordFailure(const char *client_id, int cid_len);
extern void UsageRecord(const KeyInfo *key, ApikeysCode code, TimestampTz now);
extern void UsageInit(void);
extern void UsageAddCounts(Oid dbid, const char *client_id, int len,
						   const uint32 *counts, TimestampTz last_used);

/* pre_request sets this around its verification: it must write nothing */
/* A key's numbers for one hour, gathered for a flush or a rollup. */
typedef struct UsageItemKey
{
	char		client_id[APIKEYS_CLIENT_ID_MAXLEN + 1];	/* zero-padded */
	TimestampTz hour;
} UsageItemKey;

typedef struct UsageItem
{
	UsageItemKey key;
	uint64		counts[APIKEYS_NUM_CODES];
	TimestampTz last_used;		/* 0: no VALID use */
} UsageItem;

/* Where drained or decoded numbers go: a set of items, under one hour. */
typedef struct UsageItemSink
{
	HTAB	   *items;
	TimestampTz hour;
} UsageItemSink;

extern HTAB *UsageItemsCreate(void);
extern void UsageItemSinkAdd(const char *client_id, int len,
							 const uint64 *counts, TimestampTz last_used,
							 void *sink);
extern void UsageItemAdd(HTAB *items, const char *client_id, int len,
						 TimestampTz hour, const uint64 *counts,
						 TimestampTz last_used);
extern void UsageCollect(HTAB *items, TimestampTz hour);
extern void UsageRestoreLastUsed(const char *client_id, TimestampTz t);
extern void UsageNoteRecent(HTAB *items);
extern void UsageForgetRecent(HTAB *items);
extern TimestampTz UsageRecentUse(const char *client_id, int len);
extern void UsageJournalState(TimestampTz oldest, bool after_rollup);

extern bool UsageWritesSuppressed;

#endif							/* APIKEYS_USAGE_H */
