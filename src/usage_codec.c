/*-------------------------------------------------------------------------
 *
 * usage_codec.c
 *	  The packed format of a usage journal row, with no server dependency
 *	  (so that fuzz/usage_codec_fuzz.c can test it outside the server).
 *
 * A row's data, big-endian:
 *	 uint8  version (1)
 *	 int64  base: the flush's time, in PostgreSQL microseconds
 *	 entries until the end, each:
 *	   uint8  client ID length (1 .. APIKEYS_CLIENT_ID_MAXLEN), its bytes
 *	   uint16 mask of the outcome codes counted (bit n: code n)
 *	   varint count, for each code in the mask, lowest first
 *	   varint 0 when the key had no VALID use, else 1 + (base - last use)
 * Varints are unsigned LEB128 (7 bits per byte, low bits first), at most
 * 10 bytes.  A last use after base is stored as base.
 *
 * IDENTIFICATION
 *	  src/usage_codec.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/int.h"
#include "port/pg_bswap.h"

#include "usage_codec.h"

StaticAssertDecl(APIKEYS_NUM_CODES <= 16, "the code mask is 16 bits");

static size_t
PutVarint(uint8 *dst, uint64 v)
{
	size_t		n = 0;

	do
	{
		uint8		b = v & 0x7F;

		v >>= 7;
		if (v != 0)
			b |= 0x80;
		dst[n++] = b;
	} while (v != 0);
	return n;
}

/* JournalPutHeader writes the JOURNAL_HEADER_LEN bytes of a row. */
void
JournalPutHeader(uint8 *dst, TimestampTz base)
{
	uint64		be = pg_hton64((uint64) base);

	dst[0] = JOURNAL_VERSION;
	memcpy(dst + 1, &be, 8);
}

/*
 * JournalPutEntry writes one key's entry (at most JOURNAL_ENTRY_MAXLEN
 * bytes) and returns its length; 0 (nothing written) when the key has
 * nothing to record or its client ID does not fit.
 */
size_t
JournalPutEntry(uint8 *dst, TimestampTz base, const char *client_id, int len,
				const uint64 *counts, TimestampTz last_used)
{
	uint16		mask = 0;
	uint16		bemask;
	size_t		n = 0;

	if (len <= 0 || len > APIKEYS_CLIENT_ID_MAXLEN)
		return 0;
	for (int c = 0; c < APIKEYS_NUM_CODES; c++)
		if (counts[c] != 0)
			mask |= (uint16) 1 << c;
	if (mask == 0 && last_used == 0)
		return 0;
	dst[n++] = (uint8) len;
	memcpy(dst + n, client_id, len);
	n += len;
	bemask = pg_hton16(mask);
	memcpy(dst + n, &bemask, 2);
	n += 2;
	for (int c = 0; c < APIKEYS_NUM_CODES; c++)
		if (mask & ((uint16) 1 << c))
			n += PutVarint(dst + n, counts[c]);
	if (last_used == 0)
		n += PutVarint(dst + n, 0);
	else
	{
		/* unsigned arithmetic: exact for base >= last_used, no overflow */
		uint64		delta = last_used >= base ? 0 : (uint64) base - (uint64) last_used;

		n += PutVarint(dst + n, 1 + Min(delta, (uint64) PG_INT64_MAX - 1));
	}
	return n;
}

/* ReadVarint: false when the input ends first or the value passes 64 bits */
static bool
ReadVarint(const uint8 **p, const uint8 *end, uint64 *v)
{
	int			shift = 0;

	*v = 0;
	for (;;)
	{
		uint8		b;

		if (*p >= end || shift > 63 || (shift == 63 && (**p & 0x7E) != 0))
			return false;
		b = *(*p)++;
		*v |= (uint64) (b & 0x7F) << shift;
		if ((b & 0x80) == 0)
			return true;
		shift += 7;
	}
}

/*
 * JournalDecodeBytes calls fn for each entry of a row's data, in order;
 * false as soon as the data is not a valid row (fn has then seen the
 * entries before the fault).
 */
bool
JournalDecodeBytes(const uint8 *p, size_t len, JournalEntryFn fn, void *arg)
{
	const uint8 *end = p + len;
	uint64		be;
	TimestampTz base;

	if (len < JOURNAL_HEADER_LEN || p[0] != JOURNAL_VERSION)
		return false;
	memcpy(&be, p + 1, 8);
	base = (TimestampTz) pg_ntoh64(be);
	p += JOURNAL_HEADER_LEN;

	while (p < end)
	{
		int			cid_len = *p++;
		const char *cid = (const char *) p;
		uint16		mask;
		uint64		counts[APIKEYS_NUM_CODES] = {0};
		uint64		lu;
		TimestampTz last_used = 0;

		if (cid_len <= 0 || cid_len > APIKEYS_CLIENT_ID_MAXLEN || end - p < cid_len + 2)
			return false;
		p += cid_len;
		memcpy(&mask, p, 2);
		mask = pg_ntoh16(mask);
		p += 2;
		if (mask >> APIKEYS_NUM_CODES)
			return false;
		for (int c = 0; c < APIKEYS_NUM_CODES; c++)
			if ((mask & ((uint16) 1 << c)) && !ReadVarint(&p, end, &counts[c]))
				return false;
		if (!ReadVarint(&p, end, &lu))
			return false;
		if (lu != 0)
		{
			if (lu - 1 > (uint64) PG_INT64_MAX ||
				pg_sub_s64_overflow(base, (int64) (lu - 1), &last_used))
				return false;
		}
		fn(cid, cid_len, counts, last_used, arg);
	}
	return true;
}
