/*-------------------------------------------------------------------------
 *
 * usage_item.h
 *	  A key's usage numbers for one hour, as the flush, the journal and
 *	  the rollup pass them around (types only; the functions that build
 *	  item sets are in usage.c).
 *
 * IDENTIFICATION
 *	  src/usage_item.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_USAGE_ITEM_H
#define APIKEYS_USAGE_ITEM_H

#include "apikeys.h"
#include "utils/hsearch.h"

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

#endif							/* APIKEYS_USAGE_ITEM_H */
