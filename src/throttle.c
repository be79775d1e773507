/*-------------------------------------------------------------------------
 *
 * throttle.c
 *	  Failed verifications per client address, per-key rate-limit windows,
 *	  and the address forms both are keyed by.
 *
 * This file holds the two things that can answer RATE_LIMITED, both in
 * shared memory (so only when preloaded), plus the address normalisation
 * that every use of a client address goes through.
 *
 * Address forms.  An IPv4-mapped address (::ffff:a.b.c.d) and an
 * IPv4-compatible one (::a.b.c.d) are the IPv4 address a.b.c.d, for the
 * throttle, for allowed_cidrs and for trusted proxies alike: a key
 * restricted to 10.0.0.0/8 accepts ::ffff:10.1.2.3, and the mapped forms
 * of two IPv4 clients are two buckets, not one ::/64.  The loopback ::1
 * and the unspecified :: stay IPv6; ::1 is its own bucket (an /128).
 *
 * Address throttle.  Every NOT_FOUND counts against the client's address
 * (an IPv4 address, or the /64 of an IPv6 one, since one IPv6 host owns a
 * whole /64) and against its network (IPv4 /24, IPv6 /48), each in a
 * fixed window of apikeys.failure_window starting at its first failure.
 * An address is blocked after apikeys.max_failures failures, a network
 * after apikeys.max_network_failures; while either is blocked, attempts
 * from the address answer RATE_LIMITED until the window ends.  The
 * network count is what stops an attacker who walks through the 2^16
 * /64s of one /48 (or the addresses of a /24): each of them fails once,
 * the network fails every time.  Client IDs are public, so nothing is
 * counted per key here: a flood against a key never locks its owner out
 * from elsewhere.
 *
 * Layout and locking.  The table is a fixed array of APIKEYS_MAX_ADDRESSES
 * slots in APIKEYS_THROTTLE_PARTITIONS partitions, each with its own
 * LWLock and its own "block horizon" (an atomic: no entry of the partition
 * is blocked at or after it).  A key hashes (with a seed drawn at start-up,
 * so an attacker cannot aim at one partition) to a partition and a start
 * slot, and lives in one of the THROTTLE_PROBE slots from there.  So:
 *	- a verification from an address with no blocked record, the common
 *	  case also during a flood, reads two partition horizons and takes no
 *	  lock and writes nothing shared;
 *	- otherwise it takes two partition locks shared, one after the other,
 *	  and reads at most THROTTLE_PROBE slots of each;
 *	- a failure takes two partition locks exclusively, one at a time, and
 *	  touches at most THROTTLE_PROBE slots of each.  There is no global
 *	  lock and no sweep of the table.
 * When all probed slots are live, the record with the fewest failures
 * (then the oldest) is evicted; an address record with more than one
 * failure is never evicted for a new address (the new address then counts
 * only in its network's record, which may evict).  Either way a flood of
 * new addresses can never make throttling stop: their networks keep
 * counting, a blocked address stays blocked, and evictions are counted in
 * apikeys.usage_stats().dropped_addresses.
 *
 * Rate limits.  rate_limit requests per rate_window per key, in a fixed
 * window starting at the first request; exceeded answers RATE_LIMITED
 * with the seconds until the window ends.  Only VALID-bound requests count
 * (verify.c makes it the last check).  The windows live in a second table
 * of the same shape, keyed by database and client ID, with as many slots
 * as the per-key usage table; a full probe range evicts the window that
 * ends first.  Only keys with a rate limit touch it, under their
 * partition's lock.
 *
 * Both tables are per server: a standby keeps its own.  Connections with
 * no address (unix sockets) are not throttled by address.
 *
 * IDENTIFICATION
 *	  src/throttle.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include "common/hashfn.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/timestamp.h"

#include "shmem.h"
#include "throttle.h"

/*
 * Both tables are split into this many partitions, each with a lock of
 * the "apikeys throttle" tranche: the address partitions' locks first,
 * then the rate-limit partitions'.
 */
#define APIKEYS_THROTTLE_PARTITIONS	64
#define THROTTLE_TRANCHE	"apikeys throttle"

/* Address throttle records (addresses and networks) */
#define APIKEYS_MAX_ADDRESSES		16384

/* slots of a partition probed for one key */
#define THROTTLE_PROBE		16

#define ADDR_SLOTS_PER_PART	(APIKEYS_MAX_ADDRESSES / APIKEYS_THROTTLE_PARTITIONS)

/* what a record counts: one address, or a network */
#define KIND_ADDRESS		0
#define KIND_NETWORK		1

typedef struct AddressSlot
{
	ApikeysNet	key;			/* family 0: empty slot */
	uint8		kind;
	int32		failures;
	TimestampTz window_start;
	int64		window_us;
	pg_atomic_uint32 blocked;	/* attempts answered RATE_LIMITED */
} AddressSlot;

typedef struct AddressPartition
{
	pg_atomic_uint64 horizon;	/* no entry here is blocked at or after */
	AddressSlot slots[ADDR_SLOTS_PER_PART];
} AddressPartition;

typedef struct RateKey
{
	Oid			dbid;
	char		client_id[APIKEYS_CLIENT_ID_MAXLEN + 1];	/* zero-padded */
} RateKey;

typedef struct RateSlot
{
	RateKey		key;			/* dbid InvalidOid: empty slot */
	TimestampTz start;
	int64		window_us;
	int32		count;
} RateSlot;

typedef struct ThrottleShared
{
	uint64		seed;
	pg_atomic_uint64 dropped_addresses;
	AddressPartition parts[APIKEYS_THROTTLE_PARTITIONS];
} ThrottleShared;

static void NetTruncate(ApikeysNet *n, int bits);

static ThrottleShared *throttle = NULL;
static RateSlot *rate_slots = NULL; /* partition p: [p * per, (p+1) * per) */
static LWLockPadded *throttle_locks = NULL;

/* rate-limit windows: as many as the per-key usage table holds */
#define RATE_SLOTS_PER_PART() \
	((Max(apikeys_cache_size / 4, 10000) + APIKEYS_THROTTLE_PARTITIONS - 1) / APIKEYS_THROTTLE_PARTITIONS)

/*
 * AddressLock and RateLock: a partition's lock (partitions are visited
 * one after the other, never two locks of the tranche at once).
 */
static inline LWLock *
AddressLock(int part)
{
	Assert(part >= 0 && part < APIKEYS_THROTTLE_PARTITIONS);
	Assert(throttle_locks != NULL);
	return &throttle_locks[part].lock;
}

static inline LWLock *
RateLock(int part)
{
	Assert(part >= 0 && part < APIKEYS_THROTTLE_PARTITIONS);
	Assert(throttle_locks != NULL);
	return &throttle_locks[APIKEYS_THROTTLE_PARTITIONS + part].lock;
}

/* ThrottleShmemSize: bytes for both tables. */
Size
ThrottleShmemSize(void)
{
	Size		size = MAXALIGN(sizeof(ThrottleShared));

	size = add_size(size, mul_size(mul_size(RATE_SLOTS_PER_PART(), APIKEYS_THROTTLE_PARTITIONS),
								   sizeof(RateSlot)));
	return size;
}

/* ThrottleShmemRequest asks for both tables' memory and their locks. */
void
ThrottleShmemRequest(void)
{
	RequestAddinShmemSpace(ThrottleShmemSize());
	RequestNamedLWLockTranche(THROTTLE_TRANCHE, 2 * APIKEYS_THROTTLE_PARTITIONS);
}

/* ThrottleShmemInit creates or attaches both tables (AddinShmemInitLock held). */
void
ThrottleShmemInit(void)
{
	bool		found;
	Size		rate_bytes = mul_size(mul_size(RATE_SLOTS_PER_PART(), APIKEYS_THROTTLE_PARTITIONS),
									  sizeof(RateSlot));

	Assert(LWLockHeldByMeInMode(AddinShmemInitLock, LW_EXCLUSIVE));
	throttle_locks = GetNamedLWLockTranche(THROTTLE_TRANCHE);
	throttle = ShmemInitStruct("apikeys address throttle", sizeof(ThrottleShared), &found);
	if (!found)
	{
		if (!pg_strong_random(&throttle->seed, sizeof(throttle->seed)))
			throttle->seed = (uint64) GetCurrentTimestamp();
		pg_atomic_init_u64(&throttle->dropped_addresses, 0);
		for (int p = 0; p < APIKEYS_THROTTLE_PARTITIONS; p++)
		{
			pg_atomic_init_u64(&throttle->parts[p].horizon, 0);
			for (int i = 0; i < ADDR_SLOTS_PER_PART; i++)
			{
				memset(&throttle->parts[p].slots[i].key, 0, sizeof(ApikeysNet));
				pg_atomic_init_u32(&throttle->parts[p].slots[i].blocked, 0);
			}
		}
	}
	rate_slots = ShmemInitStruct("apikeys rate limits", rate_bytes, &found);
	if (!found)
		memset(rate_slots, 0, rate_bytes);
}

/* ---------------------------------------------------------------------
 * Address forms
 * ---------------------------------------------------------------------
 */

/*
 * NetNormalize turns an IPv4-mapped (::ffff:a.b.c.d) or IPv4-compatible
 * (::a.b.c.d, other than :: and ::1) address or network of prefix /96 or
 * longer into IPv4.
 */
void
NetNormalize(ApikeysNet *n)
{
	static const uint8 zeros[12] = {0};
	static const uint8 mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	bool		is_mapped;
	bool		is_compat;

	if (n->family != PGSQL_AF_INET6 || n->bits < 96)
		return;
	is_mapped = memcmp(n->addr, mapped, 12) == 0;
	is_compat = memcmp(n->addr, zeros, 12) == 0 &&
		(n->addr[12] | n->addr[13] | n->addr[14] | (n->addr[15] & 0xfe)) != 0;
	if (!is_mapped && !is_compat)
		return;
	n->family = PGSQL_AF_INET;
	n->bits -= 96;
	memmove(n->addr, n->addr + 12, 4);
	memset(n->addr + 4, 0, 12);
}

/* NetFromInet reads an inet or cidr datum into n, normalised. */
bool
NetFromInet(Datum addr, ApikeysNet *n)
{
	inet	   *ip = DatumGetInetPP(addr);

	memset(n, 0, sizeof(ApikeysNet));
	n->family = ip_family(ip);
	n->bits = ip_bits(ip);
	if (n->family == PGSQL_AF_INET)
		memcpy(n->addr, ip_addr(ip), 4);
	else if (n->family == PGSQL_AF_INET6)
		memcpy(n->addr, ip_addr(ip), 16);
	else
		return false;
	NetNormalize(n);
	return true;
}

/*
 * NetParse reads a plain IPv4 or IPv6 address (inet_pton's strict forms:
 * no classful shorthand, no zone), with "/bits" when allow_prefix, into
 * *n, normalised.  A prefix with bits set past it is refused, as cidr
 * refuses it.  false for anything else.
 */
bool
NetParse(const char *str, int len, bool allow_prefix, ApikeysNet *n)
{
	char		buf[INET6_ADDRSTRLEN + 8];
	char	   *slash;
	int			maxbits;

	if (len <= 0 || len >= (int) sizeof(buf))
		return false;
	memcpy(buf, str, len);
	buf[len] = '\0';
	memset(n, 0, sizeof(ApikeysNet));
	slash = strchr(buf, '/');
	if (slash != NULL)
	{
		if (!allow_prefix)
			return false;
		*slash++ = '\0';
	}
	if (inet_pton(AF_INET, buf, n->addr) == 1)
	{
		n->family = PGSQL_AF_INET;
		maxbits = 32;
	}
	else if (inet_pton(AF_INET6, buf, n->addr) == 1)
	{
		n->family = PGSQL_AF_INET6;
		maxbits = 128;
	}
	else
		return false;
	n->bits = maxbits;
	if (slash != NULL)
	{
		int			bits = 0;
		ApikeysNet	masked;

		if (*slash == '\0' || strlen(slash) > 3)
			return false;
		for (const char *p = slash; *p; p++)
		{
			if (*p < '0' || *p > '9')
				return false;
			bits = bits * 10 + (*p - '0');
		}
		if (bits > maxbits)
			return false;
		masked = *n;
		NetTruncate(&masked, bits);
		if (memcmp(masked.addr, n->addr, 16) != 0)
			return false;
		n->bits = bits;
	}
	NetNormalize(n);
	return true;
}

/* InetFromNet builds an inet datum. */
Datum
InetFromNet(const ApikeysNet *n)
{
	inet	   *ip = palloc0(sizeof(inet));

	ip_family(ip) = n->family;
	ip_bits(ip) = n->bits;
	memcpy(ip_addr(ip), n->addr, n->family == PGSQL_AF_INET ? 4 : 16);
	SET_INET_VARSIZE(ip);
	return InetPGetDatum(ip);
}

/*
 * AddressNormalize: the inet a client address stands for (an IPv4-mapped
 * or -compatible IPv6 address as IPv4; anything else unchanged).
 */
Datum
AddressNormalize(Datum addr)
{
	ApikeysNet	n;
	inet	   *ip = DatumGetInetPP(addr);

	if (ip_family(ip) != PGSQL_AF_INET6 || !NetFromInet(addr, &n) ||
		n.family != PGSQL_AF_INET)
		return addr;
	return InetFromNet(&n);
}

/* NetContains: is addr (same family, normalised) inside net? */
bool
NetContains(const ApikeysNet *net, const ApikeysNet *addr)
{
	int			full = net->bits / 8;
	int			rest = net->bits % 8;

	if (net->family != addr->family || addr->bits < net->bits)
		return false;
	if (memcmp(net->addr, addr->addr, full) != 0)
		return false;
	if (rest != 0)
	{
		uint8		mask = (uint8) (0xff << (8 - rest));

		if ((net->addr[full] & mask) != (addr->addr[full] & mask))
			return false;
	}
	return true;
}

/* NetTruncate keeps the first bits of n and zeroes the rest. */
static void
NetTruncate(ApikeysNet *n, int bits)
{
	int			full = bits / 8;
	int			rest = bits % 8;

	if (rest != 0)
		n->addr[full++] &= (uint8) (0xff << (8 - rest));
	if (full < 16)
		memset(n->addr + full, 0, 16 - full);
	n->bits = bits;
}

/*
 * ThrottleKeys: the record keys of a client address, its own (IPv4 /32,
 * IPv6 /64, ::1 /128) and its network's (IPv4 /24, IPv6 /48; none for ::1).
 * Returns how many (1 or 2).
 */
static int
ThrottleKeys(Datum addr, ApikeysNet *keys)
{
	static const uint8 loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	ApikeysNet	n;

	if (!NetFromInet(addr, &n))
		return 0;
	if (n.family == PGSQL_AF_INET6 && memcmp(n.addr, loopback, 16) == 0)
	{
		keys[0] = n;
		keys[0].bits = 128;
		return 1;
	}
	keys[0] = n;
	keys[1] = n;
	if (n.family == PGSQL_AF_INET)
	{
		NetTruncate(&keys[0], 32);
		NetTruncate(&keys[1], 24);
	}
	else
	{
		NetTruncate(&keys[0], 64);
		NetTruncate(&keys[1], 48);
	}
	return 2;
}

/* ---------------------------------------------------------------------
 * Address throttle
 * ---------------------------------------------------------------------
 */

/* KeyHash places a key: partition and first slot. */
static void
KeyHash(const void *key, Size len, int per_part, int *part, int *slot)
{
	uint64		h = hash_bytes_extended((const unsigned char *) key, (int) len,
										throttle->seed);

	*part = (int) (h % APIKEYS_THROTTLE_PARTITIONS);
	*slot = (int) ((h / APIKEYS_THROTTLE_PARTITIONS) % (uint64) per_part);
}

static inline bool
NetEqual(const ApikeysNet *a, const ApikeysNet *b)
{
	return a->family == b->family && a->bits == b->bits &&
		memcmp(a->addr, b->addr, 16) == 0;
}

static inline int32
KindLimit(int kind)
{
	return kind == KIND_NETWORK ? apikeys_max_network_failures : apikeys_max_failures;
}

/* SecondsUntil: whole seconds from now until t, at least 1. */
static int
SecondsUntil(TimestampTz t, TimestampTz now)
{
	int64		us = t - now;

	return (int) Max(1, (us + USECS_PER_SEC - 1) / USECS_PER_SEC);
}

/*
 * ThrottleAddressBlocked: has this address, or its network, used up its
 * failures?  Sets *retry_after to the seconds until the later window ends.
 */
bool
ThrottleAddressBlocked(bool ip_known, Datum addr, int *retry_after)
{
	ApikeysNet	keys[2];
	int			nkeys;
	TimestampTz now;
	bool		blocked = false;

	if (!ip_known || !ApikeysSharedReady())
		return false;
	nkeys = ThrottleKeys(addr, keys);
	now = GetCurrentTimestamp();
	for (int k = 0; k < nkeys; k++)
	{
		int			part;
		int			start;
		AddressPartition *p;

		KeyHash(&keys[k], sizeof(ApikeysNet), ADDR_SLOTS_PER_PART, &part, &start);
		p = &throttle->parts[part];
		if ((uint64) now >= pg_atomic_read_u64(&p->horizon))
			continue;			/* nothing blocked here: the common case */
		LWLockAcquire(AddressLock(part), LW_SHARED);
		for (int i = 0; i < THROTTLE_PROBE; i++)
		{
			AddressSlot *s = &p->slots[(start + i) % ADDR_SLOTS_PER_PART];

			if (!NetEqual(&s->key, &keys[k]))
				continue;
			if (s->failures >= KindLimit(s->kind) &&
				now < s->window_start + s->window_us)
			{
				int			secs = SecondsUntil(s->window_start + s->window_us, now);

				if (!blocked || secs > *retry_after)
					*retry_after = secs;
				blocked = true;
				pg_atomic_fetch_add_u32(&s->blocked, 1);
			}
			break;
		}
		LWLockRelease(AddressLock(part));
	}
	return blocked;
}

/*
 * CountFailure adds one failure to the record of key (kind KIND_*),
 * creating it, in a free or expired slot or by eviction (see the header).
 */
static void
CountFailure(const ApikeysNet *key, int kind, TimestampTz now)
{
	int			part;
	int			start;
	AddressPartition *p;
	AddressSlot *s = NULL;
	AddressSlot *free_slot = NULL;
	AddressSlot *victim = NULL;
	int64		window_us = (int64) apikeys_failure_window * USECS_PER_SEC;

	KeyHash(key, sizeof(ApikeysNet), ADDR_SLOTS_PER_PART, &part, &start);
	p = &throttle->parts[part];
	LWLockAcquire(AddressLock(part), LW_EXCLUSIVE);
	for (int i = 0; i < THROTTLE_PROBE; i++)
	{
		AddressSlot *c = &p->slots[(start + i) % ADDR_SLOTS_PER_PART];

		if (c->key.family != 0 && NetEqual(&c->key, key))
		{
			s = c;
			break;
		}
		if (free_slot != NULL)
			continue;
		if (c->key.family == 0 || now >= c->window_start + c->window_us)
			free_slot = c;
		else if (victim == NULL || c->failures < victim->failures ||
				 (c->failures == victim->failures &&
				  c->window_start < victim->window_start))
			victim = c;
	}

	if (s != NULL && now >= s->window_start + s->window_us)
	{
		/* its window has passed: a new one starts */
		s->failures = 0;
		s->window_start = now;
		s->window_us = window_us;
		pg_atomic_write_u32(&s->blocked, 0);
	}
	else if (s == NULL)
	{
		if (free_slot != NULL)
			s = free_slot;
		else if (kind == KIND_NETWORK || victim->failures <= 1)
		{
			s = victim;
			pg_atomic_fetch_add_u64(&throttle->dropped_addresses, 1);
		}
		else
		{
			/* every probed record has failed more: the network counts it */
			LWLockRelease(AddressLock(part));
			pg_atomic_fetch_add_u64(&throttle->dropped_addresses, 1);
			return;
		}
		s->key = *key;
		s->kind = kind;
		s->failures = 0;
		s->window_start = now;
		s->window_us = window_us;
		pg_atomic_write_u32(&s->blocked, 0);
	}

	s->failures++;
	if (s->failures >= KindLimit(kind))
	{
		uint64		until = (uint64) (s->window_start + s->window_us);
		uint64		cur = pg_atomic_read_u64(&p->horizon);

		/* under the partition lock: the only writer of this horizon */
		if (cur < until)
			pg_atomic_write_u64(&p->horizon, until);
	}
	LWLockRelease(AddressLock(part));
}

/*
 * ThrottleRecordFailure counts a NOT_FOUND against the client address and
 * its network.  Shared memory: the count survives the request's rollback.
 */
void
ThrottleRecordFailure(bool ip_known, Datum addr)
{
	ApikeysNet	keys[2];
	int			nkeys;
	TimestampTz now;

	if (!ip_known || !ApikeysSharedReady())
		return;
	nkeys = ThrottleKeys(addr, keys);
	now = GetCurrentTimestamp();
	for (int k = 0; k < nkeys; k++)
		CountFailure(&keys[k], k == 0 ? KIND_ADDRESS : KIND_NETWORK, now);
}

/* ThrottleAddressStats: live records, capacity, and records dropped. */
void
ThrottleAddressStats(int64 *tracked, int64 *capacity, int64 *dropped)
{
	TimestampTz now = GetCurrentTimestamp();

	*tracked = 0;
	*capacity = APIKEYS_MAX_ADDRESSES;
	*dropped = 0;
	if (!ApikeysSharedReady())
		return;
	for (int part = 0; part < APIKEYS_THROTTLE_PARTITIONS; part++)
	{
		LWLockAcquire(AddressLock(part), LW_SHARED);
		for (int i = 0; i < ADDR_SLOTS_PER_PART; i++)
		{
			AddressSlot *s = &throttle->parts[part].slots[i];

			if (s->key.family != 0 && now < s->window_start + s->window_us)
				(*tracked)++;
		}
		LWLockRelease(AddressLock(part));
	}
	*dropped = (int64) pg_atomic_read_u64(&throttle->dropped_addresses);
}

/* ---------------------------------------------------------------------
 * Rate limits
 * ---------------------------------------------------------------------
 */

/*
 * ThrottleRateLimited: is this request over the key's limit?  Counts it
 * when it is not, and sets *retry_after when it is.
 */
bool
ThrottleRateLimited(const char *client_id, int32 limit, int64 window_us, int *retry_after)
{
	RateKey		k;
	int			len = strlen(client_id);
	int			per = RATE_SLOTS_PER_PART();
	int			part;
	int			start;
	RateSlot   *base;
	RateSlot   *s = NULL;
	RateSlot   *free_slot = NULL;
	RateSlot   *victim = NULL;
	TimestampTz now;
	bool		limited = false;

	if (!ApikeysSharedReady() || limit <= 0 || window_us <= 0 ||
		len <= 0 || len > APIKEYS_CLIENT_ID_MAXLEN)
		return false;
	memset(&k, 0, sizeof(k));
	k.dbid = MyDatabaseId;
	memcpy(k.client_id, client_id, len);
	KeyHash(&k, sizeof(k), per, &part, &start);
	base = rate_slots + (Size) part * per;
	now = GetCurrentTimestamp();

	LWLockAcquire(RateLock(part), LW_EXCLUSIVE);
	for (int i = 0; i < THROTTLE_PROBE && i < per; i++)
	{
		RateSlot   *c = &base[(start + i) % per];

		if (c->key.dbid != InvalidOid && memcmp(&c->key, &k, sizeof(k)) == 0)
		{
			s = c;
			break;
		}
		if (free_slot != NULL)
			continue;
		if (c->key.dbid == InvalidOid || now >= c->start + c->window_us)
			free_slot = c;
		else if (victim == NULL ||
				 c->start + c->window_us < victim->start + victim->window_us)
			victim = c;
	}
	if (s == NULL)
	{
		/* a new window: in a free slot, or instead of the one ending first */
		s = free_slot != NULL ? free_slot : victim;
		s->key = k;
		s->start = 0;
	}
	if (s->start == 0 || window_us != s->window_us || now >= s->start + s->window_us)
	{
		s->start = now;
		s->window_us = window_us;
		s->count = 0;
	}
	if (s->count >= limit)
	{
		limited = true;
		*retry_after = SecondsUntil(s->start + s->window_us, now);
	}
	else
		s->count++;
	LWLockRelease(RateLock(part));
	return limited;
}

/*
 * ThrottleDiscardDatabase drops the current database's rate-limit windows
 * (the extension is no longer installed there).
 */
void
ThrottleDiscardDatabase(void)
{
	int			per = RATE_SLOTS_PER_PART();

	if (!ApikeysSharedReady())
		return;
	for (int part = 0; part < APIKEYS_THROTTLE_PARTITIONS; part++)
	{
		RateSlot   *base = rate_slots + (Size) part * per;

		LWLockAcquire(RateLock(part), LW_EXCLUSIVE);
		for (int i = 0; i < per; i++)
			if (base[i].key.dbid == MyDatabaseId)
				memset(&base[i], 0, sizeof(RateSlot));
		LWLockRelease(RateLock(part));
	}
}

PG_FUNCTION_INFO_V1(apikeys_failing_addresses);

/*
 * SQL function: apikeys._failing_addresses() returns setof record
 *	 (address inet, failures integer, window_start timestamptz,
 *	  window_end timestamptz, blocked boolean, blocked_attempts bigint)
 *
 * The addresses (IPv4 /32, IPv6 /64, ::1) and networks (IPv4 /24, IPv6
 * /48) with failed verifications in their current window; the view
 * apikeys.failing_addresses orders them, noisiest first.
 */
Datum
apikeys_failing_addresses(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();

	InitMaterializedSRF(fcinfo, 0);
	if (!ApikeysSharedReady())
		return (Datum) 0;

	for (int part = 0; part < APIKEYS_THROTTLE_PARTITIONS; part++)
	{
		LWLockAcquire(AddressLock(part), LW_SHARED);
		for (int i = 0; i < ADDR_SLOTS_PER_PART; i++)
		{
			AddressSlot *s = &throttle->parts[part].slots[i];
			Datum		values[6];
			bool		nulls[6] = {false};

			if (s->key.family == 0 || now >= s->window_start + s->window_us)
				continue;
			values[0] = InetFromNet(&s->key);
			values[1] = Int32GetDatum(s->failures);
			values[2] = TimestampTzGetDatum(s->window_start);
			values[3] = TimestampTzGetDatum(s->window_start + s->window_us);
			values[4] = BoolGetDatum(s->failures >= KindLimit(s->kind));
			values[5] = Int64GetDatum((int64) pg_atomic_read_u32(&s->blocked));
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		LWLockRelease(AddressLock(part));
	}
	return (Datum) 0;
}
