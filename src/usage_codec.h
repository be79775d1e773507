/*-------------------------------------------------------------------------
 *
 * usage_codec.h
 *	  The packed format of a usage journal row (see usage_codec.c).
 *
 * IDENTIFICATION
 *	  src/usage_codec.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_USAGE_CODEC_H
#define APIKEYS_USAGE_CODEC_H

#include "apikeys.h"

#define JOURNAL_VERSION		1
#define JOURNAL_HEADER_LEN	(1 + 8)
/* length byte, client ID, mask, a 10-byte varint per code and the last use */
#define JOURNAL_ENTRY_MAXLEN	(1 + APIKEYS_CLIENT_ID_MAXLEN + 2 + (APIKEYS_NUM_CODES + 1) * 10)

typedef void (*JournalEntryFn) (const char *client_id, int len,
								const uint64 *counts, TimestampTz last_used,
								void *arg);

extern void JournalPutHeader(uint8 *dst, TimestampTz base);
extern size_t JournalPutEntry(uint8 *dst, TimestampTz base,
							  const char *client_id, int len,
							  const uint64 *counts, TimestampTz last_used);
extern bool JournalDecodeBytes(const uint8 *p, size_t len,
							   JournalEntryFn fn, void *arg);

#endif							/* APIKEYS_USAGE_CODEC_H */
