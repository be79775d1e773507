/*-------------------------------------------------------------------------
 *
 * verify_throttle.h
 *	  The failure throttle (failed attempts per caller and network),
 *	  per-key rate-limit windows, and the address forms both are keyed by.
 *
 * IDENTIFICATION
 *	  src/verify_throttle.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_VERIFY_THROTTLE_H
#define APIKEYS_VERIFY_THROTTLE_H

#include "apikeys.h"

/*
 * A raw address or network: family PGSQL_AF_INET or PGSQL_AF_INET6, the
 * prefix length and the address bytes (zero past the family's length).
 */
typedef struct ApikeysNet
{
	uint8		family;
	uint8		bits;
	uint8		addr[16];
} ApikeysNet;

/* Address forms (no shared memory needed) */
extern void NetNormalize(ApikeysNet *n);
extern Datum AddressNormalize(Datum addr);
extern bool NetFromInet(Datum addr, ApikeysNet *n);
extern bool NetContains(const ApikeysNet *net, const ApikeysNet *addr);
extern bool NetParse(const char *str, int len, bool allow_prefix, ApikeysNet *n);
extern Datum InetFromNet(const ApikeysNet *n);

/* apikeys.trusted_proxies, parsed (guc.c) */
typedef struct ApikeysNetList
{
	int			n;
	ApikeysNet	nets[FLEXIBLE_ARRAY_MEMBER];
} ApikeysNetList;

extern const ApikeysNetList *apikeys_trusted_proxy_list;

/* Shared memory (apikeys.c's hooks call these) */
extern Size ThrottleShmemSize(void);
extern void ThrottleShmemRequest(void);
extern void ThrottleShmemInit(void);

/*
 * The failure throttle (shared memory; no-ops without it).  A failed
 * attempt calls ThrottleFailure after its credential was judged wrong,
 * with the caller's parsed address (NULL: none known) and the identity it
 * named (a client ID, as presented; NULL for none): true means answer
 * RATE_LIMITED.  A correct credential never asks.
 */
extern bool ThrottleFailure(const ApikeysNet *addr, const char *ident,
							int ident_len, int *retry_after);
extern bool ThrottleAddressBlocked(bool ip_known, Datum addr, int *retry_after);
extern void ThrottleRecordFailure(bool ip_known, Datum addr);
extern int	ThrottleUnblock(Datum addr, bool remove, int *cleared);

/* The failure throttle's counters, server-wide (ThrottleStats). */
typedef struct ThrottleStatsData
{
	int64		tracked;		/* live records (callers and networks) */
	int64		capacity;		/* records the table holds */
	int64		blocked;		/* live records past their limit now */
	int64		dropped;		/* records evicted or not stored */
	int64		failures;		/* failed attempts counted since start-up */
	int64		throttled;		/* of them answered RATE_LIMITED */
} ThrottleStatsData;

extern void ThrottleStats(ThrottleStatsData *st);
extern void ThrottleAddressStats(int64 *tracked, int64 *capacity, int64 *dropped);

/* Per-key and per-owner rate limits */
extern bool ThrottleRateWindow(const char *client_id, int32 limit,
							   int64 window_us, int *retry_after,
							   int32 *remaining, TimestampTz *reset);
extern void ThrottleRateGiveBack(const char *client_id, TimestampTz reset);
extern void ThrottleDiscardDatabase(void);

#endif							/* APIKEYS_VERIFY_THROTTLE_H */
