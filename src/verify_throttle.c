/*-------------------------------------------------------------------------
 *
 * verify_throttle.c
 *	  The failure throttle (failed attempts per caller and network),
 *	  per-key rate-limit windows, and the address forms both are keyed by.
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
 * Failure throttle.  The rule: a correct credential is never refused
 * because other callers failed from the same address.  Behind PostgREST,
 * an application backend, a NAT or a corporate proxy one address is
 * shared by many callers, so an address can never be the unit that is
 * refused.  Every attempt is therefore judged by its own credential: the
 * key is looked up and the secret compared whatever the address did
 * before, a correct secret is answered as usual (VALID, or the key's
 * REVOKED, EXPIRED, ...), and only a failing attempt asks this file
 * whether its caller has used up its failures, in which case it answers
 * RATE_LIMITED (with retry_after) instead of NOT_FOUND.  Secrets have 256
 * bits: the throttle does not stop guessing (nothing needs to), it tells
 * a misbehaving client to back off and bounds what it costs.
 *
 * Each failure counts in two records:
 *	- its caller: the client address (an IPv4 address, the /64 of an IPv6
 *	  one, since one IPv6 host owns a whole /64, or ::1) together with the
 *	  identity the attempt named: the client ID of an existing key, or
 *	  nothing (the address alone) when the client ID named no key or no
 *	  client ID was named (a junk or legacy token).  The attacker chooses
 *	  the client ID, so a made-up one must not be a new caller each time
 *	  (it would spread one flood over ever new records and fill the
 *	  table).  The price: once an address is blocked for failures naming
 *	  unknown client IDs, a failure naming an existing client ID from there
 *	  still answers NOT_FOUND, which tells that this client ID exists;
 *	  client IDs are public identifiers with 95 random bits, so this
 *	  confirms a client ID already known and finds none.  Blocked after
 *	  apikeys.max_failures;
 *	- its network (IPv4 /24, IPv6 /48; ::1 is its own), whatever the
 *	  attempt named; blocked after apikeys.max_network_failures.  This is
 *	  what catches junk from ever new addresses: an attacker walking
 *	  through the 2^16 /64s of one /48 is a new caller every time and the
 *	  same network every time.
 * Each record counts in a fixed window of apikeys.failure_window from its
 * first failure.  A failing attempt answers RATE_LIMITED when either of
 * its records was already blocked; it then takes only shared locks and
 * adds to an atomic counter.  A valid verification never reaches this
 * file at all.  So one stranger failing through a shared address slows
 * itself (after max_failures, the attempts naming what it names) and, past
 * max_network_failures, the failing attempts of its network, never a
 * correct credential.  Records belong to one database (keys do).  Every
 * kind of failed attempt (a verification, a claim) comes in through one
 * function, ThrottleFailure, called once the attempt has been judged.
 *
 * Cost.  What a failing attempt costs is bounded by what any verification
 * costs: one lookup (shared cache or index), one SHA-256, and at most two
 * partition locks here, each held for at most THROTTLE_PROBE slots.  The
 * throttle writes no table and no WAL, and holds a fixed number of records,
 * so a flood can neither grow it nor make it slower.
 *
 * Layout and locking.  The table is a fixed array of APIKEYS_MAX_ADDRESSES
 * slots in APIKEYS_THROTTLE_PARTITIONS partitions, each with its own
 * LWLock and its own "block horizon" (an atomic: no entry of the partition
 * is blocked at or after it).  A record key hashes (with a seed drawn at
 * start-up, so an attacker cannot aim at one partition) to a partition and
 * a start slot, and lives in one of the THROTTLE_PROBE slots from there.
 * A failure whose record may be blocked (its partition's horizon is in the
 * future) looks under the lock shared first; otherwise, or when it is not
 * blocked, it counts under the lock exclusive.  There is no global lock
 * and no sweep of the table.  When all probed slots are live, the least
 * useful record is evicted (EvictsBefore): never a blocked one while an
 * unblocked one is there, else the one with the fewest failures, then the
 * oldest.  A new caller therefore always gets a record unless all its
 * probed slots are blocked (it then counts only in its network's record,
 * which always finds one), so a table full of earlier callers, from any
 * database, cannot stop a new flooding caller being counted, and a caller
 * well on its way to its limit is evicted only after every lighter record
 * around it.  Evictions are counted in
 * apikeys.usage_stats().dropped_addresses.
 *
 * Rate limits.  rate_limit requests per rate_window per key, in a fixed
 * window starting at the first request; exceeded answers RATE_LIMITED
 * with the seconds until the window ends.  Only requests answered VALID
 * count: verify.c (JudgeLimits) gives back the request that a later check
 * (the owner's window, credits) refused (ThrottleRateGiveBack).  The windows live in a second table
 * of the same shape, keyed by database and client ID, with as many slots
 * as the per-key usage table; a full probe range evicts the window that
 * ends first.  Only keys with a rate limit touch it, under their
 * partition's lock.
 *
 * Both tables are per server: a standby keeps its own.  Connections with
 * no address (unix sockets) are not throttled by address.
 *
 * IDENTIFICATION
 *	  src/verify_throttle.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include "access/htup_details.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "shmem.h"
#include "verify_throttle.h"

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

/* what a record counts: a caller (an address and what it named), or a network */
#define KIND_CALLER			0
#define KIND_NETWORK		1

/*
 * The key of a record.  Built zeroed (ThrottleKeys), so that padding and
 * the unused tail of ident hash and compare alike.
 */
typedef struct ThrottleKey
{
	ApikeysNet	net;
	uint8		kind;
	uint8		ident_len;		/* 0: the attempt named nothing */
	Oid			dbid;
	char		ident[APIKEYS_CLIENT_ID_MAXLEN + 1];	/* zero-padded */
} ThrottleKey;

/*
 * A record: 80 bytes.  Its window ends apikeys.failure_window after
 * window_start, as the setting is now (a reload applies to every record).
 */
typedef struct AddressSlot
{
	ThrottleKey key;			/* net.family 0: empty slot */
	TimestampTz window_start;
	int32		failures;
	pg_atomic_uint32 blocked;	/* failing attempts answered RATE_LIMITED */
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
	pg_atomic_uint64 failures;	/* failures counted since start-up */
	pg_atomic_uint64 throttled; /* of them answered RATE_LIMITED */
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
		pg_atomic_init_u64(&throttle->failures, 0);
		pg_atomic_init_u64(&throttle->throttled, 0);
		for (int p = 0; p < APIKEYS_THROTTLE_PARTITIONS; p++)
		{
			pg_atomic_init_u64(&throttle->parts[p].horizon, 0);
			for (int i = 0; i < ADDR_SLOTS_PER_PART; i++)
			{
				memset(&throttle->parts[p].slots[i].key, 0, sizeof(ThrottleKey));
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
 * AddressKey sets *out to the form of a client address (parsed,
 * normalised) that one caller owns: an IPv4 address (/32), the /64 of an
 * IPv6 one, or ::1 (/128).
 */
static void
AddressKey(const ApikeysNet *addr, ApikeysNet *out)
{
	static const uint8 loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

	*out = *addr;
	if (out->family == PGSQL_AF_INET6 && memcmp(out->addr, loopback, 16) == 0)
		out->bits = 128;
	else
		NetTruncate(out, out->family == PGSQL_AF_INET ? 32 : 64);
}

/*
 * ThrottleKeys: the two record keys of a failure, its caller's (the
 * address with what the attempt named, ident of ident_len bytes, NULL for
 * nothing) and its network's (IPv4 /24, IPv6 /48, ::1 itself).  An
 * identity longer than a client ID is cut to that length.
 */
static void
ThrottleKeys(const ApikeysNet *addr, const char *ident, int ident_len, ThrottleKey *keys)
{
	ApikeysNet	n;

	AddressKey(addr, &n);
	memset(keys, 0, 2 * sizeof(ThrottleKey));
	keys[0].net = n;
	keys[0].kind = KIND_CALLER;
	keys[0].dbid = MyDatabaseId;
	if (ident != NULL && ident_len > 0)
	{
		keys[0].ident_len = (uint8) Min(ident_len, APIKEYS_CLIENT_ID_MAXLEN);
		memcpy(keys[0].ident, ident, keys[0].ident_len);
	}
	keys[1].net = n;
	keys[1].kind = KIND_NETWORK;
	keys[1].dbid = MyDatabaseId;
	if (n.bits != 128)
		NetTruncate(&keys[1].net, n.family == PGSQL_AF_INET ? 24 : 48);
}

/* ---------------------------------------------------------------------
 * Failure throttle
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
KeyEqual(const ThrottleKey *a, const ThrottleKey *b)
{
	return memcmp(a, b, sizeof(ThrottleKey)) == 0;
}

static inline int32
KindLimit(int kind)
{
	return kind == KIND_NETWORK ? apikeys_max_network_failures : apikeys_max_failures;
}

/* WindowEnd: when a record's window ends. */
static inline TimestampTz
WindowEnd(const AddressSlot *s)
{
	return s->window_start + (int64) apikeys_failure_window * USECS_PER_SEC;
}

/* SlotLive: does the slot hold a record whose window has not ended? */
static inline bool
SlotLive(const AddressSlot *s, TimestampTz now)
{
	return s->key.net.family != 0 && now < WindowEnd(s);
}

/* SlotBlocked: a live record that has used up its failures. */
static inline bool
SlotBlocked(const AddressSlot *s, TimestampTz now)
{
	return SlotLive(s, now) && s->failures >= KindLimit(s->key.kind);
}

/* SecondsUntil: whole seconds from now until t, at least 1. */
static int
SecondsUntil(TimestampTz t, TimestampTz now)
{
	int64		us = t - now;

	return (int) Max(1, (us + USECS_PER_SEC - 1) / USECS_PER_SEC);
}

/*
 * FindBlocked looks for key's record among its probed slots (the
 * partition's lock held) and returns it when it is blocked, else NULL.
 */
static AddressSlot *
FindBlocked(AddressPartition *p, int start, const ThrottleKey *key, TimestampTz now)
{
	Assert(LWLockHeldByMe(AddressLock((int) (p - throttle->parts))));
	for (int i = 0; i < THROTTLE_PROBE; i++)
	{
		AddressSlot *s = &p->slots[(start + i) % ADDR_SLOTS_PER_PART];

		if (KeyEqual(&s->key, key))
			return SlotBlocked(s, now) ? s : NULL;
	}
	return NULL;
}

/*
 * EvictsBefore: is live record a less useful than live record b, the one to
 * evict first when a new record needs their slots?  An unblocked record
 * before a blocked one, then the fewest failures, then the oldest window.
 */
static inline bool
EvictsBefore(const AddressSlot *a, const AddressSlot *b, TimestampTz now)
{
	bool		a_blocked = SlotBlocked(a, now);

	if (a_blocked != SlotBlocked(b, now))
		return !a_blocked;
	if (a->failures != b->failures)
		return a->failures < b->failures;
	return a->window_start < b->window_start;
}

/*
 * CountFailure adds one failure to key's record and returns false, or,
 * when the record has already used up its failures, counts the attempt as
 * blocked and returns true with *secs until its window ends.  A blocked
 * record is found under the lock shared (the horizon says when to look);
 * otherwise the record is counted under the lock exclusive, created in a
 * free or expired slot or by eviction (see the header).
 */
static bool
CountFailure(const ThrottleKey *key, TimestampTz now, int *secs)
{
	int			part;
	int			start;
	AddressPartition *p;
	AddressSlot *s = NULL;
	AddressSlot *free_slot = NULL;
	AddressSlot *victim = NULL;

	KeyHash(key, sizeof(ThrottleKey), ADDR_SLOTS_PER_PART, &part, &start);
	p = &throttle->parts[part];

	if ((uint64) now < pg_atomic_read_u64(&p->horizon))
	{
		LWLockAcquire(AddressLock(part), LW_SHARED);
		s = FindBlocked(p, start, key, now);
		if (s != NULL)
		{
			pg_atomic_fetch_add_u32(&s->blocked, 1);
			*secs = SecondsUntil(WindowEnd(s), now);
		}
		LWLockRelease(AddressLock(part));
		if (s != NULL)
			return true;
	}

	LWLockAcquire(AddressLock(part), LW_EXCLUSIVE);
	for (int i = 0; i < THROTTLE_PROBE; i++)
	{
		AddressSlot *c = &p->slots[(start + i) % ADDR_SLOTS_PER_PART];

		if (c->key.net.family != 0 && KeyEqual(&c->key, key))
		{
			s = c;
			break;
		}
		if (free_slot != NULL)
			continue;
		if (!SlotLive(c, now))
			free_slot = c;
		else if (victim == NULL || EvictsBefore(c, victim, now))
			victim = c;
	}

	if (s != NULL && SlotBlocked(s, now))
	{
		/* blocked since we looked (or the horizon was not yet raised) */
		pg_atomic_fetch_add_u32(&s->blocked, 1);
		*secs = SecondsUntil(WindowEnd(s), now);
		LWLockRelease(AddressLock(part));
		return true;
	}
	if (s != NULL && !SlotLive(s, now))
	{
		/* its window has passed: a new one starts */
		s->failures = 0;
		s->window_start = now;
		pg_atomic_write_u32(&s->blocked, 0);
	}
	else if (s == NULL)
	{
		if (free_slot != NULL)
			s = free_slot;
		else if (key->kind == KIND_NETWORK || !SlotBlocked(victim, now))
		{
			s = victim;
			pg_atomic_fetch_add_u64(&throttle->dropped_addresses, 1);
		}
		else
		{
			/*
			 * every probed record is blocked: they stay, the network counts
			 * it
			 */
			LWLockRelease(AddressLock(part));
			pg_atomic_fetch_add_u64(&throttle->dropped_addresses, 1);
			return false;
		}
		s->key = *key;
		s->failures = 0;
		s->window_start = now;
		pg_atomic_write_u32(&s->blocked, 0);
	}

	s->failures++;
	if (s->failures >= KindLimit(key->kind))
	{
		uint64		until = (uint64) WindowEnd(s);
		uint64		cur = pg_atomic_read_u64(&p->horizon);

		/* under the partition lock: the only writer of this horizon */
		Assert(LWLockHeldByMeInMode(AddressLock(part), LW_EXCLUSIVE));
		if (cur < until)
			pg_atomic_write_u64(&p->horizon, until);
	}
	LWLockRelease(AddressLock(part));
	return false;
}

/*
 * ThrottleFailure is the one entry point for a failed attempt (a wrong
 * secret, an unknown client ID, a wrong claim code): call it after the
 * credential was judged and found wrong, never before.  It counts the
 * failure against its caller (addr with ident, the identity the attempt
 * named, as presented: NULL or length 0 when it named none) and its
 * network, and returns true when either had already used up its failures:
 * the attempt then answers RATE_LIMITED, with *retry_after the seconds
 * until the later window ends.  Shared memory: the count survives the
 * request's rollback.  false with no address (addr NULL: a unix socket)
 * or without preloading.  addr is the caller's address as NetFromInet
 * parsed it (verification parses it once, for its allowed_cidrs check
 * and for this).
 *
 * ident must be a public identifier (a client ID): it is listed, to
 * apikeys_admin, in apikeys.failing_addresses.
 */
bool
ThrottleFailure(const ApikeysNet *addr, const char *ident, int ident_len,
				int *retry_after)
{
	ThrottleKey keys[2];
	TimestampTz now;
	bool		throttled = false;

	if (addr == NULL || !ApikeysSharedReady())
		return false;
	ThrottleKeys(addr, ident, ident_len, keys);
	now = GetCurrentTimestamp();
	for (int k = 0; k < 2; k++)
	{
		int			secs = 0;

		if (CountFailure(&keys[k], now, &secs))
		{
			if (!throttled || secs > *retry_after)
				*retry_after = secs;
			throttled = true;
		}
	}
	pg_atomic_fetch_add_u64(&throttle->failures, 1);
	if (throttled)
		pg_atomic_fetch_add_u64(&throttle->throttled, 1);
	return throttled;
}

/*
 * ThrottleAddressBlocked: has the caller at addr that named nothing (a
 * claim with an unknown token) used up its failures?  For admin_claim.c, which
 * asks before it compares; verification never asks before it has judged
 * the credential (ThrottleFailure).
 */
bool
ThrottleAddressBlocked(bool ip_known, Datum addr, int *retry_after)
{
	ThrottleKey keys[2];
	ApikeysNet	n;
	TimestampTz now;
	int			part;
	int			start;
	AddressPartition *p;
	AddressSlot *s;

	if (!ip_known || !ApikeysSharedReady() || !NetFromInet(addr, &n))
		return false;
	ThrottleKeys(&n, NULL, 0, keys);
	now = GetCurrentTimestamp();
	KeyHash(&keys[0], sizeof(ThrottleKey), ADDR_SLOTS_PER_PART, &part, &start);
	p = &throttle->parts[part];
	if ((uint64) now >= pg_atomic_read_u64(&p->horizon))
		return false;
	LWLockAcquire(AddressLock(part), LW_SHARED);
	s = FindBlocked(p, start, &keys[0], now);
	if (s != NULL)
	{
		*retry_after = SecondsUntil(WindowEnd(s), now);
		pg_atomic_fetch_add_u32(&s->blocked, 1);
	}
	LWLockRelease(AddressLock(part));
	return s != NULL;
}

/* ThrottleRecordFailure: ThrottleFailure for an attempt that named nothing. */
void
ThrottleRecordFailure(bool ip_known, Datum addr)
{
	int			retry_after = 0;
	ApikeysNet	n;

	if (ip_known && NetFromInet(addr, &n))
		(void) ThrottleFailure(&n, NULL, 0, &retry_after);
}

/*
 * ThrottleStats reports the failure throttle's counters, server-wide: live
 * and blocked records, capacity, records dropped, and failures counted and
 * answered RATE_LIMITED since start-up.  All zero without preloading.
 */
void
ThrottleStats(ThrottleStatsData *st)
{
	TimestampTz now = GetCurrentTimestamp();

	memset(st, 0, sizeof(ThrottleStatsData));
	st->capacity = APIKEYS_MAX_ADDRESSES;
	if (!ApikeysSharedReady())
		return;
	for (int part = 0; part < APIKEYS_THROTTLE_PARTITIONS; part++)
	{
		LWLockAcquire(AddressLock(part), LW_SHARED);
		for (int i = 0; i < ADDR_SLOTS_PER_PART; i++)
		{
			AddressSlot *s = &throttle->parts[part].slots[i];

			if (SlotLive(s, now))
				st->tracked++;
			if (SlotBlocked(s, now))
				st->blocked++;
		}
		LWLockRelease(AddressLock(part));
	}
	st->dropped = (int64) pg_atomic_read_u64(&throttle->dropped_addresses);
	st->failures = (int64) pg_atomic_read_u64(&throttle->failures);
	st->throttled = (int64) pg_atomic_read_u64(&throttle->throttled);
}

/* ThrottleAddressStats: live records, capacity, and records dropped. */
void
ThrottleAddressStats(int64 *tracked, int64 *capacity, int64 *dropped)
{
	ThrottleStatsData st;

	ThrottleStats(&st);
	*tracked = st.tracked;
	*capacity = st.capacity;
	*dropped = st.dropped;
}

/*
 * ThrottleUnblock removes (remove true) the current database's records of
 * an address or network, or only counts them (remove false), and returns
 * how many were blocked; *cleared is how many were live.  A host address
 * (/32, /128) means the records of its caller form (its /32, /64 or ::1:
 * every identity named from there); a shorter prefix means every record
 * inside it, networks included.  admin_unblock.c removes them at commit.
 */
int
ThrottleUnblock(Datum addr, bool remove, int *cleared)
{
	ApikeysNet	target;
	bool		host;
	TimestampTz now = GetCurrentTimestamp();
	int			lifted = 0;

	*cleared = 0;
	if (!ApikeysSharedReady() || !NetFromInet(addr, &target))
		return 0;
	host = target.bits == (target.family == PGSQL_AF_INET ? 32 : 128);
	if (host)
	{
		ApikeysNet	parsed = target;

		AddressKey(&parsed, &target);
	}
	for (int part = 0; part < APIKEYS_THROTTLE_PARTITIONS; part++)
	{
		LWLockAcquire(AddressLock(part), remove ? LW_EXCLUSIVE : LW_SHARED);
		for (int i = 0; i < ADDR_SLOTS_PER_PART; i++)
		{
			AddressSlot *s = &throttle->parts[part].slots[i];
			const ApikeysNet *n = &s->key.net;

			if (n->family == 0 || s->key.dbid != MyDatabaseId)
				continue;
			if (host ? !(n->family == target.family && n->bits == target.bits &&
						 memcmp(n->addr, target.addr, 16) == 0)
				: !NetContains(&target, n))
				continue;
			if (SlotLive(s, now))
			{
				(*cleared)++;
				if (SlotBlocked(s, now))
					lifted++;
			}
			if (!remove)
				continue;
			memset(&s->key, 0, sizeof(ThrottleKey));
			s->failures = 0;
			pg_atomic_write_u32(&s->blocked, 0);
		}
		LWLockRelease(AddressLock(part));
	}
	return lifted;
}

/* ---------------------------------------------------------------------
 * Rate limits
 * ---------------------------------------------------------------------
 */

/*
 * RateWindowFind: the partition and first slot of the window named name
 * (a client ID, or an owner's "@..." name) in this database; false without
 * shared memory or for a name that cannot be one.
 */
static bool
RateWindowFind(const char *name, RateKey *k, int *part, RateSlot **base,
			   int *start)
{
	int			len = strlen(name);
	int			per = RATE_SLOTS_PER_PART();

	if (!ApikeysSharedReady() || len <= 0 || len > APIKEYS_CLIENT_ID_MAXLEN)
		return false;
	memset(k, 0, sizeof(RateKey));
	k->dbid = MyDatabaseId;
	memcpy(k->client_id, name, len);
	KeyHash(k, sizeof(RateKey), per, part, start);
	*base = rate_slots + (Size) *part * per;
	return true;
}

/*
 * ThrottleRateWindow: is this request over the limit of the window named
 * client_id (a key's, or an owner's: verify_ownerlimit.c)?  Counts it when
 * it is not, and sets *retry_after when it is.  Also tells what the
 * X-RateLimit-* headers need: the requests left in the window after this
 * one, and when the window ends (both 0 without shared memory; a counted
 * request can be given back by that end, ThrottleRateGiveBack).
 */
bool
ThrottleRateWindow(const char *client_id, int32 limit, int64 window_us,
				   int *retry_after, int32 *remaining, TimestampTz *reset)
{
	RateKey		k;
	int			per = RATE_SLOTS_PER_PART();
	int			part;
	int			start;
	RateSlot   *base;
	RateSlot   *s = NULL;
	RateSlot   *free_slot = NULL;
	RateSlot   *victim = NULL;
	TimestampTz now;
	bool		limited = false;

	*remaining = 0;
	*reset = 0;
	if (limit <= 0 || window_us <= 0 ||
		!RateWindowFind(client_id, &k, &part, &base, &start))
		return false;
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
	*remaining = limit - s->count;
	*reset = s->start + s->window_us;
	LWLockRelease(RateLock(part));
	return limited;
}

/*
 * ThrottleRateGiveBack takes back one request that ThrottleRateWindow
 * counted in the window named client_id, ending at reset: the request was
 * refused by a later check (verify.c, JudgeLimits), and only a VALID answer
 * uses up a window.  Nothing when that window is gone (ended, replaced or
 * evicted): its count went with it.
 */
void
ThrottleRateGiveBack(const char *client_id, TimestampTz reset)
{
	RateKey		k;
	int			per = RATE_SLOTS_PER_PART();
	int			part;
	int			start;
	RateSlot   *base;

	if (reset == 0 || !RateWindowFind(client_id, &k, &part, &base, &start))
		return;
	LWLockAcquire(RateLock(part), LW_EXCLUSIVE);
	for (int i = 0; i < THROTTLE_PROBE && i < per; i++)
	{
		RateSlot   *c = &base[(start + i) % per];

		if (c->key.dbid != InvalidOid && memcmp(&c->key, &k, sizeof(k)) == 0)
		{
			if (c->start != 0 && c->start + c->window_us == reset && c->count > 0)
				c->count--;
			break;
		}
	}
	LWLockRelease(RateLock(part));
}

/*
 * ThrottleDiscardDatabase drops the current database's rate-limit windows
 * and failure records (the extension is no longer installed there).
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
		AddressPartition *p = &throttle->parts[part];

		LWLockAcquire(RateLock(part), LW_EXCLUSIVE);
		for (int i = 0; i < per; i++)
			if (base[i].key.dbid == MyDatabaseId)
				memset(&base[i], 0, sizeof(RateSlot));
		LWLockRelease(RateLock(part));

		LWLockAcquire(AddressLock(part), LW_EXCLUSIVE);
		for (int i = 0; i < ADDR_SLOTS_PER_PART; i++)
			if (p->slots[i].key.net.family != 0 &&
				p->slots[i].key.dbid == MyDatabaseId)
				memset(&p->slots[i].key, 0, sizeof(ThrottleKey));
		LWLockRelease(AddressLock(part));
	}
}

PG_FUNCTION_INFO_V1(apikeys_failing_addresses);

/*
 * SQL function: apikeys_internal._failing_addresses() returns setof record
 *	 (address inet, client_id text, failures integer,
 *	  window_start timestamptz, window_end timestamptz, blocked boolean,
 *	  blocked_attempts bigint)
 *
 * This database's failure records in their current window: callers (an
 * IPv4 address, IPv6 /64 or ::1, with the client ID their attempts named;
 * NULL when they named none) and networks (IPv4 /24, IPv6 /48, ::1;
 * client_id NULL).  The view apikeys.failing_addresses orders them,
 * noisiest first.
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
			Datum		values[7];
			bool		nulls[7] = {false};

			if (!SlotLive(s, now) || s->key.dbid != MyDatabaseId)
				continue;
			values[0] = InetFromNet(&s->key.net);
			if (s->key.ident_len > 0)
				values[1] = PointerGetDatum(cstring_to_text_with_len(s->key.ident,
																	 s->key.ident_len));
			else
				nulls[1] = true;
			values[2] = Int32GetDatum(s->failures);
			values[3] = TimestampTzGetDatum(s->window_start);
			values[4] = TimestampTzGetDatum(WindowEnd(s));
			values[5] = BoolGetDatum(SlotBlocked(s, now));
			values[6] = Int64GetDatum((int64) pg_atomic_read_u32(&s->blocked));
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		LWLockRelease(AddressLock(part));
	}
	return (Datum) 0;
}
