/*-------------------------------------------------------------------------
 *
 * usage_item.c
 *	  The set of per-key, per-hour usage numbers that a flush, the journal
 *	  and the rollup gather (UsageItems).
 *
 * A flush gathers the numbers of every key used in the interval (hundreds
 * of thousands at a million keys in use) and a rollup those of the
 * journal.  A dynahash of 56-byte zero-padded keys cost a bucket split
 * and a fresh element per key, a hash over the padding, and a scattered
 * walk to read the set back.  Here the items sit in chunks in the order
 * they came (read back sequentially) and an open-addressing index
 * (lib/simplehash.h) of 12-byte slots finds a key's item by a hash
 * computed once; growing the index moves slots, never items.
 *
 * Calls nothing of ours; called by usage.c, usage_journal.c and
 * usage_recent.c.
 *
 * IDENTIFICATION
 *	  src/usage_item.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/memutils.h"

#include "usage_item.h"

/* A slot of the index: an item's number and its key's hash. */
typedef struct UsageIndexSlot
{
	uint32		item;
	uint32		hash;
	char		status;
} UsageIndexSlot;

static inline bool
ItemsEqual(const UsageItems *items, uint32 a, uint32 b)
{
	const UsageItem *x = UsageItemAt(items, a);
	const UsageItem *y = UsageItemAt(items, b);

	return x->key.hour == y->key.hour && x->len == y->len &&
		memcmp(x->key.client_id, y->key.client_id, x->len) == 0;
}

#define SH_PREFIX usage_index
#define SH_ELEMENT_TYPE UsageIndexSlot
#define SH_KEY_TYPE uint32
#define SH_KEY item
#define SH_HASH_KEY(tb, key) (UsageItemAt((UsageItems *) (tb)->private_data, key)->hash)
#define SH_EQUAL(tb, a, b) ItemsEqual((UsageItems *) (tb)->private_data, a, b)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/*
 * UsageItemsCreate: an empty set, in a memory context of its own under
 * CurrentMemoryContext; expected is a guess of the items it will hold (it
 * grows past it).
 */
UsageItems *
UsageItemsCreate(uint32 expected)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "apikeys usage items",
											  ALLOCSET_DEFAULT_SIZES);
	UsageItems *items = MemoryContextAllocZero(cxt, sizeof(UsageItems));

	items->cxt = cxt;
	items->maxchunks = 16;
	items->chunks = MemoryContextAlloc(cxt, sizeof(UsageItem *) * items->maxchunks);
	items->index = usage_index_create(cxt, Max(expected, 256), items);
	return items;
}

/* UsageItemsDestroy frees a set and its items. */
void
UsageItemsDestroy(UsageItems *items)
{
	MemoryContextDelete(items->cxt);
}

/* ItemHash: the hash of a client ID and hour. */
static inline uint32
ItemHash(const char *client_id, int len, TimestampTz hour)
{
	return hash_combine(hash_bytes((const unsigned char *) client_id, len),
						murmurhash32((uint32) ((uint64) hour ^ ((uint64) hour >> 32))));
}

/* UsageItemAdd adds one source's numbers for a key and hour to a set. */
void
UsageItemAdd(UsageItems *items, const char *client_id, int len, TimestampTz hour,
			 const uint64 *counts, TimestampTz last_used)
{
	UsageItem  *cand;
	UsageItem  *it;
	UsageIndexSlot *slot;
	bool		found;

	if (len <= 0 || len > APIKEYS_CLIENT_ID_MAXLEN)
		return;
	if (items->n == PG_UINT32_MAX)
		elog(ERROR, "too many API key usage items");
	/* the candidate goes where a new item would: the index compares to it */
	if ((items->n >> USAGE_ITEMS_CHUNK_BITS) == (uint32) items->nchunks)
	{
		if (items->nchunks == items->maxchunks)
		{
			items->maxchunks *= 2;
			items->chunks = repalloc_huge(items->chunks,
										  sizeof(UsageItem *) * items->maxchunks);
		}
		items->chunks[items->nchunks++] =
			MemoryContextAllocHuge(items->cxt, sizeof(UsageItem) * USAGE_ITEMS_CHUNK);
	}
	cand = UsageItemAt(items, items->n);
	memcpy(cand->key.client_id, client_id, len);
	cand->key.client_id[len] = '\0';
	cand->key.hour = hour;
	cand->len = len;
	cand->hash = ItemHash(client_id, len, hour);

	slot = usage_index_insert_hash(items->index, items->n, cand->hash, &found);
	if (found)
		it = UsageItemAt(items, slot->item);
	else
	{
		it = cand;
		items->n++;
		memset(it->counts, 0, sizeof(it->counts));
		it->last_used = 0;
	}
	for (int c = 0; c < APIKEYS_NUM_CODES; c++)
		it->counts[c] += counts[c];
	if (last_used > it->last_used)
		it->last_used = last_used;
}
