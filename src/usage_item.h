/*-------------------------------------------------------------------------
 *
 * usage_item.h
 *	  A key's usage numbers for one hour, as the flush, the journal and
 *	  the rollup pass them around, and the set that gathers them
 *	  (usage_item.c).
 *
 * IDENTIFICATION
 *	  src/usage_item.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_USAGE_ITEM_H
#define APIKEYS_USAGE_ITEM_H

#include "apikeys.h"

/* A key's numbers for one hour, gathered for a flush or a rollup. */
typedef struct UsageItemKey
{
	char		client_id[APIKEYS_CLIENT_ID_MAXLEN + 1];	/* zero-terminated */
	TimestampTz hour;
} UsageItemKey;

typedef struct UsageItem
{
	UsageItemKey key;
	uint32		hash;			/* of the key, computed once (usage_item.c) */
	int			len;			/* strlen(key.client_id), computed once */
	uint64		counts[APIKEYS_NUM_CODES];
	TimestampTz last_used;		/* 0: no VALID use */
} UsageItem;

/*
 * A set of items, one per client ID and hour, in its own memory context:
 * the items in chunks (never moved, so adding never copies them), in the
 * order they were first added, and an index of 12-byte slots (hash, item
 * number) that finds an item by its key.
 */
#define USAGE_ITEMS_CHUNK_BITS	12
#define USAGE_ITEMS_CHUNK		(1 << USAGE_ITEMS_CHUNK_BITS)

typedef struct UsageItems
{
	MemoryContext cxt;
	UsageItem **chunks;
	int			nchunks;
	int			maxchunks;
	uint32		n;				/* items */
	struct usage_index_hash *index;
} UsageItems;

/* UsageItemAt: item i (0 <= i < UsageItemsCount()) of a set. */
static inline UsageItem *
UsageItemAt(const UsageItems *items, uint32 i)
{
	return &items->chunks[i >> USAGE_ITEMS_CHUNK_BITS][i & (USAGE_ITEMS_CHUNK - 1)];
}

/* UsageItemsCount: the items of a set. */
static inline uint32
UsageItemsCount(const UsageItems *items)
{
	return items->n;
}

extern UsageItems *UsageItemsCreate(uint32 expected);
extern void UsageItemsDestroy(UsageItems *items);
extern void UsageItemAdd(UsageItems *items, const char *client_id, int len,
						 TimestampTz hour, const uint64 *counts,
						 TimestampTz last_used);

/* Where drained or decoded numbers go: a set of items, under one hour. */
typedef struct UsageItemSink
{
	UsageItems *items;
	TimestampTz hour;
} UsageItemSink;

#endif							/* APIKEYS_USAGE_ITEM_H */
