/*-------------------------------------------------------------------------
 *
 * throttle.h
 *	  Failed verifications per client address, per-key rate-limit windows,
 *	  and the address forms both are keyed by.
 *
 * IDENTIFICATION
 *	  src/throttle.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_THROTTLE_H
#define APIKEYS_THROTTLE_H

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

/* Address throttle and rate limits (shared memory; no-ops without it) */
extern Size ThrottleShmemSize(void);
extern void ThrottleShmemRequest(void);
extern void ThrottleShmemInit(void);
extern bool ThrottleAddressBlocked(bool ip_known, Datum addr, int *retry_after);
extern void ThrottleRecordFailure(bool ip_known, Datum addr);
extern bool ThrottleRateLimited(const char *client_id, int32 limit,
								int64 window_us, int *retry_after);
extern void ThrottleAddressStats(int64 *tracked, int64 *capacity, int64 *dropped);
extern void ThrottleDiscardDatabase(void);

#endif							/* APIKEYS_THROTTLE_H */
