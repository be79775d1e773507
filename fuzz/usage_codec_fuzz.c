/*-------------------------------------------------------------------------
 *
 * usage_codec_fuzz.c
 *	  libFuzzer target for the usage journal row format (src/usage_codec.c).
 *
 * Two checks on every input:
 *	- decoded as a journal row it must not crash or read past the end
 *	  (AddressSanitizer sees an exact-size copy); every entry reported has a
 *	  client ID of 1 .. APIKEYS_CLIENT_ID_MAXLEN bytes inside the input;
 *	- read as a list of keys (client ID, counts, last use), it is encoded
 *	  and decoded again: every key comes back with the same client ID and
 *	  counts, and its last use (a use after the base reads as the base),
 *	  and keys with nothing to record are left out.
 *
 * IDENTIFICATION
 *	  fuzz/usage_codec_fuzz.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "usage_codec.h"

#define CHECK(cond) \
	do { if (!(cond)) { fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); abort(); } } while (0)

#define MAX_KEYS 64

typedef struct Key
{
	char		cid[APIKEYS_CLIENT_ID_MAXLEN];
	int			len;
	uint64		counts[APIKEYS_NUM_CODES];
	TimestampTz last_used;
} Key;

typedef struct Seen
{
	const uint8 *start;
	const uint8 *end;
	Key			keys[MAX_KEYS];
	int			n;
} Seen;

static void
CheckEntry(const char *cid, int len, const uint64 *counts, TimestampTz last_used, void *arg)
{
	Seen	   *seen = (Seen *) arg;

	CHECK(len >= 1 && len <= APIKEYS_CLIENT_ID_MAXLEN);
	CHECK((const uint8 *) cid >= seen->start && (const uint8 *) cid + len <= seen->end);
}

static void
Collect(const char *cid, int len, const uint64 *counts, TimestampTz last_used, void *arg)
{
	Seen	   *seen = (Seen *) arg;
	Key		   *k;

	CHECK(seen->n < MAX_KEYS);
	k = &seen->keys[seen->n++];
	CHECK(len >= 1 && len <= APIKEYS_CLIENT_ID_MAXLEN);
	memcpy(k->cid, cid, len);
	k->len = len;
	memcpy(k->counts, counts, sizeof(k->counts));
	k->last_used = last_used;
}

/* Take: the next n bytes of the input, or zeros past its end. */
static void
Take(const uint8 **p, const uint8 *end, void *dst, size_t n)
{
	size_t		have = Min(n, (size_t) (end - *p));

	memset(dst, 0, n);
	memcpy(dst, *p, have);
	*p += have;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8	   *copy = malloc(size ? size : 1);
	Seen		seen;
	Key			keys[MAX_KEYS];
	int			nkeys = 0;
	int			expect = 0;
	const uint8 *p = data;
	const uint8 *end = data + size;
	TimestampTz base;
	uint8	   *row;
	size_t		rowlen;

	/* 1. arbitrary bytes as a row */
	memcpy(copy, data, size);
	seen.start = copy;
	seen.end = copy + size;
	seen.n = 0;
	(void) JournalDecodeBytes(copy, size, CheckEntry, &seen);
	free(copy);

	/* 2. the bytes as keys: base, then per key a length byte, the ID, counts, last use */
	Take(&p, end, &base, sizeof(base));
	while (p < end && nkeys < MAX_KEYS)
	{
		Key		   *k = &keys[nkeys++];
		uint8		len;
		uint16		which;

		Take(&p, end, &len, 1);
		k->len = 1 + len % APIKEYS_CLIENT_ID_MAXLEN;
		Take(&p, end, k->cid, k->len);
		Take(&p, end, &which, 2);
		for (int c = 0; c < APIKEYS_NUM_CODES; c++)
		{
			k->counts[c] = 0;
			if (which & (1 << c))
				Take(&p, end, &k->counts[c], (which >> 12) % 9);
		}
		Take(&p, end, &k->last_used, (which & 0x8000) ? 8 : 0);
	}

	row = malloc(JOURNAL_HEADER_LEN + (size_t) MAX_KEYS * JOURNAL_ENTRY_MAXLEN);
	JournalPutHeader(row, base);
	rowlen = JOURNAL_HEADER_LEN;
	for (int i = 0; i < nkeys; i++)
	{
		size_t		n = JournalPutEntry(row + rowlen, base, keys[i].cid, keys[i].len,
										keys[i].counts, keys[i].last_used);

		CHECK(n <= JOURNAL_ENTRY_MAXLEN);
		rowlen += n;
	}
	seen.start = row;
	seen.end = row + rowlen;
	seen.n = 0;
	CHECK(JournalDecodeBytes(row, rowlen, Collect, &seen));

	for (int i = 0; i < nkeys; i++)
	{
		bool		any = keys[i].last_used != 0;
		Key		   *k;
		TimestampTz want;

		for (int c = 0; c < APIKEYS_NUM_CODES; c++)
			any |= keys[i].counts[c] != 0;
		if (!any)
			continue;
		CHECK(expect < seen.n);
		k = &seen.keys[expect++];
		CHECK(k->len == keys[i].len && memcmp(k->cid, keys[i].cid, k->len) == 0);
		CHECK(memcmp(k->counts, keys[i].counts, sizeof(k->counts)) == 0);
		want = keys[i].last_used == 0 ? 0 : Min(keys[i].last_used, base);
		/* a use so far before the base that the gap does not fit is clamped */
		if (want != 0 && (uint64) base - (uint64) want <= (uint64) PG_INT64_MAX - 1)
			CHECK(k->last_used == want);
	}
	CHECK(expect == seen.n);
	free(row);
	return 0;
}
