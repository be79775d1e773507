/*-------------------------------------------------------------------------
 *
 * verify_ownerlimit.c
 *	  Owner-wide rate limits: one window shared by all keys of an owner.
 *
 * With a limit per key, a customer with five keys gets five times the
 * limit.  apikeys.set_owner_policy(owner, rate_limit => n, rate_window =>
 * w) sets one window for all keys of the owner, on each server: a
 * verification that passed the checks before it, the key's own rate limit
 * included, is counted in the owner's window too, and answers
 * RATE_LIMITED with retry_after when that window is full; one that credits
 * then refuse is given back (OwnerRateGiveBack, from verify.c's
 * JudgeLimits), so only VALID answers use up the owner's window.
 *
 * The window lives in verify_throttle.c's rate-limit table (shared memory, keyed
 * by database), under a name no client ID can have: '@' and 32 hex digits
 * of a 128-bit hash of the owner.  Owners whose hashes collide would share
 * a window; at 128 bits that does not happen by accident.
 *
 * Reading the owner's policy row on every verification would cost an
 * index scan each time, so each backend keeps the limits it has read in a
 * small hash table, and forgets all of them on a relcache invalidation of
 * apikeys.owner_policies.  The row trigger owner_policies_limit_cache
 * sends that invalidation when a rate_limit or rate_window is written, so
 * a change reaches every connection at its next transaction after the
 * commit (PostgreSQL processes invalidations at transaction start), and
 * the changing transaction itself at once.  Like every rate limit this
 * needs shared_preload_libraries; without it nothing is read or counted.
 *
 * IDENTIFICATION
 *	  src/verify_ownerlimit.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "compat.h"
#include "verify_ownerlimit.h"
#include "shmem.h"
#include "verify_throttle.h"

#define OWNER_POLICIES_TABLE	"owner_policies"
#define OWNER_CACHE_MAX			4096	/* entries before the table is reset */
#define OWNER_NAME_LEN			33	/* '@' and 32 hex digits */
#define OWNER_LIMITED_INDEX		"owner_policies_rate_limited_idx"

/*
 * Entries are keyed by a 64-bit hash of the owner and hold the owner itself
 * (in owner_cxt), compared on every hit: an owner of any length the SQL
 * functions accept (APIKEYS_OWNER_MAX_CHARS characters, whatever their
 * bytes) has a fixed-size key, and nothing here measures an owner name, so
 * no owner is left unlimited for its length.  Of two owners with one hash,
 * the second's limit is read from the table each time.
 */
typedef struct OwnerLimitEntry
{
	uint64		hash;			/* hash key */
	char	   *owner;
	int32		limit;			/* 0: no owner-wide limit */
	int64		window_us;
} OwnerLimitEntry;

static HTAB *owner_limits = NULL;
static MemoryContext owner_cxt = NULL;	/* the table and its owner names */
static Oid	policies_relid = InvalidOid;

/*
 * Whether any owner of this database has a rate limit: -1 not known yet,
 * 0 none, 1 some.  Most databases have none, and then no verification
 * looks an owner up at all (a population of many owners would otherwise
 * overflow owner_limits and read owner_policies at every verification).
 * Forgotten with the table, by the same relcache callback.
 */
static int	any_owner_limits = -1;
static bool callback_registered = false;

/* ForgetOwnerLimits: the relcache callback; any change may be ours. */
static void
ForgetOwnerLimits(Datum arg, Oid relid)
{
	if (relid != InvalidOid && relid != policies_relid)
		return;
	policies_relid = InvalidOid;
	any_owner_limits = -1;
	if (owner_cxt != NULL)
	{
		MemoryContextDelete(owner_cxt);
		owner_cxt = NULL;
		owner_limits = NULL;
	}
}

/*
 * IntervalUs: an interval's length in microseconds, a month being 30 days
 * and a day 24 hours (as PostgreSQL compares intervals).  The one measure
 * of a rate window: verification (verify_lookup.c, here) and the no-escalation
 * check (apikeys_internal._interval_us) use it.
 */
int64
IntervalUs(const Interval *w)
{
	return w->time + (int64) w->day * USECS_PER_DAY +
		(int64) w->month * 30 * USECS_PER_DAY;
}

/*
 * ReadOwnerLimit reads the owner's rate_limit and rate_window from
 * apikeys.owner_policies through its primary key, with the latest snapshot.
 */
static void
ReadOwnerLimit(const char *owner, OwnerLimitEntry *e)
{
	Oid			nsp;
	AttrNumber	att_limit;
	AttrNumber	att_window;
	PkScan		ps;
	TupleTableSlot *slot;

	e->limit = 0;
	e->window_us = 0;

	if (!OidIsValid(policies_relid))
	{
		nsp = get_namespace_oid(APIKEYS_SCHEMA_NAME, true);
		policies_relid = OidIsValid(nsp) ?
			get_relname_relid(OWNER_POLICIES_TABLE, nsp) : InvalidOid;
		if (!OidIsValid(policies_relid))
			return;
	}
	att_limit = get_attnum(policies_relid, "rate_limit");
	att_window = get_attnum(policies_relid, "rate_window");
	if (att_limit == InvalidAttrNumber || att_window == InvalidAttrNumber)
		return;

	PkScanBegin(&ps, policies_relid, false);
	if ((slot = PkScanFetch(&ps, owner, strlen(owner))) != NULL)
	{
		bool		nl,
					nw;
		Datum		dl = slot_getattr(slot, att_limit, &nl);
		Datum		dw = slot_getattr(slot, att_window, &nw);

		if (!nl && DatumGetInt32(dl) > 0)
		{
			e->limit = DatumGetInt32(dl);
			e->window_us = nw ? 60 * USECS_PER_SEC : IntervalUs(DatumGetIntervalP(dw));
			if (e->window_us <= 0)
				e->limit = 0;
		}
	}
	PkScanEnd(&ps);
}

/* PoliciesRelid: the OID of apikeys.owner_policies (InvalidOid: none). */
static Oid
PoliciesRelid(void)
{
	if (!OidIsValid(policies_relid))
	{
		Oid			nsp = get_namespace_oid(APIKEYS_SCHEMA_NAME, true);

		policies_relid = OidIsValid(nsp) ?
			get_relname_relid(OWNER_POLICIES_TABLE, nsp) : InvalidOid;
	}
	return policies_relid;
}

/*
 * AnyOwnerLimits: does any owner have a rate limit?  Read once after each
 * change of apikeys.owner_policies, from its partial index of rate-limited
 * owners (one probe of an index that is usually empty), with the latest
 * snapshot.  Without that index (an installation not yet updated), true.
 */
static bool
AnyOwnerLimits(void)
{
	Oid			relid;
	Oid			idxoid;
	PkScan		ps;
	bool		found;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(ForgetOwnerLimits, (Datum) 0);
		callback_registered = true;
	}
	if (any_owner_limits >= 0)
		return any_owner_limits != 0;

	relid = PoliciesRelid();
	if (!OidIsValid(relid))
		return false;			/* no policies, no limits */
	idxoid = get_relname_relid(OWNER_LIMITED_INDEX, get_rel_namespace(relid));
	if (!OidIsValid(idxoid))
		return true;

	IndexScanOpen(&ps, relid, idxoid);
	found = IndexScanFetch(&ps, NULL, 0) != NULL;
	PkScanEnd(&ps);

	/* the locks above processed pending invalidations: this is current */
	any_owner_limits = found ? 1 : 0;
	return found;
}

/*
 * OwnerLimit: the owner's limit, from this backend's table or the row;
 * NULL when it cannot be cached (then the caller reads the row).
 */
static const OwnerLimitEntry *
OwnerLimit(const char *owner, uint64 hash)
{
	OwnerLimitEntry *e;
	OwnerLimitEntry tmp;
	bool		found;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(ForgetOwnerLimits, (Datum) 0);
		callback_registered = true;
	}
	if (owner_limits != NULL && hash_get_num_entries(owner_limits) >= OWNER_CACHE_MAX)
		ForgetOwnerLimits((Datum) 0, InvalidOid);
	if (owner_limits == NULL)
	{
		HASHCTL		ctl;

		owner_cxt = AllocSetContextCreate(TopMemoryContext, "apikeys owner limits",
										  ALLOCSET_SMALL_SIZES);
		ctl.keysize = sizeof(uint64);
		ctl.entrysize = sizeof(OwnerLimitEntry);
		ctl.hcxt = owner_cxt;
		owner_limits = hash_create("apikeys owner limits", 256, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	e = hash_search(owner_limits, &hash, HASH_FIND, NULL);
	if (e != NULL)
		return strcmp(e->owner, owner) == 0 ? e : NULL;

	/* read first: an invalidation while reading may drop the table */
	ReadOwnerLimit(owner, &tmp);
	if (owner_limits == NULL)
		return NULL;			/* forgotten meanwhile: read again */
	e = hash_search(owner_limits, &hash, HASH_ENTER, &found);
	e->owner = MemoryContextStrdup(owner_cxt, owner);
	e->limit = tmp.limit;
	e->window_us = tmp.window_us;
	return e;
}

/* OwnerWindowName: the name of owner's window in verify_throttle.c's table. */
static void
OwnerWindowName(const char *owner, size_t len, uint64 h0, char *name)
{
	snprintf(name, OWNER_NAME_LEN + 1, "@%016llx%016llx", (unsigned long long) h0,
			 (unsigned long long) hash_bytes_extended((const unsigned char *) owner, len, 1));
}

/*
 * OwnerRateLimited: is this verification over its owner's limit?  Counts
 * it in the owner's window when it is not, and sets *reset to that
 * window's end (0: not counted), for OwnerRateGiveBack; sets *retry_after
 * when it is.
 */
bool
OwnerRateLimited(const char *owner, int *retry_after, TimestampTz *reset)
{
	const OwnerLimitEntry *e;
	OwnerLimitEntry uncached;
	size_t		len;
	uint64		h0;
	char		name[OWNER_NAME_LEN + 1];
	int32		remaining;
	bool		limited;

	StaticAssertStmt(OWNER_NAME_LEN <= APIKEYS_CLIENT_ID_MAXLEN,
					 "an owner's window name fits where client IDs go");
	*reset = 0;
	if (!ApikeysSharedReady() || owner == NULL || !AnyOwnerLimits())
		return false;
	len = strlen(owner);
	if (len == 0)
		return false;
	h0 = hash_bytes_extended((const unsigned char *) owner, len, 0);
	e = OwnerLimit(owner, h0);
	if (e == NULL)
	{
		ReadOwnerLimit(owner, &uncached);
		e = &uncached;
	}
	if (e->limit <= 0)
		return false;
	OwnerWindowName(owner, len, h0, name);
	limited = ThrottleRateWindow(name, e->limit, e->window_us, retry_after,
								 &remaining, reset);
	if (limited)
		*reset = 0;
	return limited;
}

/*
 * OwnerRateGiveBack takes back the request OwnerRateLimited counted in
 * owner's window ending at reset (verify.c: a later check refused it).
 */
void
OwnerRateGiveBack(const char *owner, TimestampTz reset)
{
	size_t		len;
	char		name[OWNER_NAME_LEN + 1];

	if (reset == 0 || owner == NULL || (len = strlen(owner)) == 0)
		return;
	OwnerWindowName(owner, len,
					hash_bytes_extended((const unsigned char *) owner, len, 0), name);
	ThrottleRateGiveBack(name, reset);
}

/*
 * OwnerLimitKnownNone: does this backend already know, without reading
 * anything, that owner has no rate limit?  A cache hit counts a VALID
 * outcome under the cache lock only then (verify.c), since reading the
 * policy there is not allowed.
 */
bool
OwnerLimitKnownNone(const char *owner)
{
	OwnerLimitEntry *e;
	uint64		h;

	if (any_owner_limits == 0)
		return true;			/* nobody has one */
	if (owner_limits == NULL || owner == NULL)
		return false;
	h = hash_bytes_extended((const unsigned char *) owner, strlen(owner), 0);
	e = hash_search(owner_limits, &h, HASH_FIND, NULL);
	return e != NULL && strcmp(e->owner, owner) == 0 && e->limit <= 0;
}

PG_FUNCTION_INFO_V1(apikeys_owner_max_length);

/*
 * SQL function: apikeys_internal._owner_max_length() returns integer
 *
 * The longest owner name in characters: the one limit, checked by
 * apikeys_internal._check_owner for every function that takes an owner.
 */
Datum
apikeys_owner_max_length(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(APIKEYS_OWNER_MAX_CHARS);
}

PG_FUNCTION_INFO_V1(apikeys_owner_limit_cache_trigger);

/*
 * SQL function: apikeys_internal._owner_limit_cache_trigger() returns trigger
 *
 * AFTER INSERT OR DELETE OR UPDATE OF rate_limit, rate_window FOR EACH ROW
 * on apikeys.owner_policies: a relcache invalidation of the table, sent to
 * every backend at commit, which empties their tables of owner limits.
 */
Datum
apikeys_owner_limit_cache_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "apikeys_internal._owner_limit_cache_trigger must be an AFTER ROW trigger");
	CacheInvalidateRelcache(td->tg_relation);
	return PointerGetDatum(NULL);
}
