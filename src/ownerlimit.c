/*-------------------------------------------------------------------------
 *
 * ownerlimit.c
 *	  Owner-wide rate limits: one window shared by all keys of an owner.
 *
 * With a limit per key, a customer with five keys gets five times the
 * limit.  apikeys.set_owner_policy(owner, rate_limit => n, rate_window =>
 * w) sets one window for all keys of the owner, on each server: a
 * verification that passed every other check, the key's own rate limit
 * included, is counted in the owner's window too, and answers
 * RATE_LIMITED with retry_after when that window is full.
 *
 * The window lives in throttle.c's rate-limit table (shared memory, keyed
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
 *	  src/ownerlimit.c
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
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "ownerlimit.h"
#include "shmem.h"
#include "throttle.h"

#define OWNER_POLICIES_TABLE	"owner_policies"
#define OWNER_MAXLEN			256 /* create_key's limit on owner names */
#define OWNER_CACHE_MAX			4096	/* entries before the table is reset */

typedef struct OwnerLimitEntry
{
	char		owner[OWNER_MAXLEN + 1];	/* hash key */
	int32		limit;			/* 0: no owner-wide limit */
	int64		window_us;
} OwnerLimitEntry;

static HTAB *owner_limits = NULL;
static Oid	policies_relid = InvalidOid;
static bool callback_registered = false;

/* ForgetOwnerLimits: the relcache callback; any change may be ours. */
static void
ForgetOwnerLimits(Datum arg, Oid relid)
{
	if (relid != InvalidOid && relid != policies_relid)
		return;
	policies_relid = InvalidOid;
	if (owner_limits != NULL)
	{
		hash_destroy(owner_limits);
		owner_limits = NULL;
	}
}

/* IntervalUs: an interval's length in microseconds (a month is 30 days). */
static int64
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

/* OwnerLimit: the owner's limit, from this backend's table or the row. */
static const OwnerLimitEntry *
OwnerLimit(const char *owner)
{
	OwnerLimitEntry *e;
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

		ctl.keysize = OWNER_MAXLEN + 1;
		ctl.entrysize = sizeof(OwnerLimitEntry);
		owner_limits = hash_create("apikeys owner limits", 256, &ctl,
								   HASH_ELEM | HASH_STRINGS);
	}
	e = hash_search(owner_limits, owner, HASH_FIND, NULL);
	if (e != NULL)
		return e;

	/* read first: an invalidation while reading may drop the table */
	{
		OwnerLimitEntry tmp;

		ReadOwnerLimit(owner, &tmp);
		if (owner_limits == NULL)
			return NULL;		/* forgotten meanwhile: read again */
		e = hash_search(owner_limits, owner, HASH_ENTER, &found);
		e->limit = tmp.limit;
		e->window_us = tmp.window_us;
	}
	return e;
}

/*
 * OwnerRateLimited: is this verification over its owner's limit?  Counts
 * it in the owner's window when it is not; sets *retry_after when it is.
 */
bool
OwnerRateLimited(const char *owner, int *retry_after)
{
	const OwnerLimitEntry *e;
	OwnerLimitEntry uncached;
	size_t		len;
	char		name[APIKEYS_CLIENT_ID_MAXLEN + 1];

	if (!ApikeysSharedReady() || owner == NULL)
		return false;
	len = strlen(owner);
	if (len == 0 || len > OWNER_MAXLEN)
		return false;
	e = OwnerLimit(owner);
	if (e == NULL)
	{
		ReadOwnerLimit(owner, &uncached);
		e = &uncached;
	}
	if (e->limit <= 0)
		return false;

	snprintf(name, sizeof(name), "@%016llx%016llx",
			 (unsigned long long) hash_bytes_extended((const unsigned char *) owner, len, 0),
			 (unsigned long long) hash_bytes_extended((const unsigned char *) owner, len, 1));
	return ThrottleRateLimited(name, e->limit, e->window_us, retry_after);
}

PG_FUNCTION_INFO_V1(apikeys_owner_limit_cache_trigger);

/*
 * SQL function: apikeys._owner_limit_cache_trigger() returns trigger
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
		elog(ERROR, "apikeys._owner_limit_cache_trigger must be an AFTER ROW trigger");
	CacheInvalidateRelcache(td->tg_relation);
	return PointerGetDatum(NULL);
}
