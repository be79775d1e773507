/*-------------------------------------------------------------------------
 *
 * admin_claim.c
 *	  The C side of the secret handoff: claim secrets, constant-time hash
 *	  comparison, the count of code comparisons per claim, and the
 *	  claim's glue to the address throttle.
 *
 * A handoff key is created with a secret nobody knows; the integrator gets
 * a claim token by email and a 6-digit code by SMS, and apikeys.claim_key
 * trades the two for the real secret (the rules are SQL, in the install
 * script).  What must be C:
 *
 * - drawing the claim token and the code from pg_strong_random();
 * - comparing their hashes in constant time;
 * - choosing the caller's address (the argument, the forwarding headers
 *   exactly as pre_request reads them, or the connection's) and counting
 *   failed claims against it in the address throttle (verify_throttle.c);
 * - counting each code comparison where the caller's rollback cannot undo
 *   it, BEFORE the comparison, so that no claim ever has more than five
 *   codes compared.
 *
 * Counting comparisons.  claim_key answers every failure with an ERROR
 * (SQLSTATE 28000), which rolls back whatever its transaction wrote, so a
 * counter kept only in the claim's row would never move.  The count must
 * live somewhere the rollback does not reach, be taken before the code is
 * looked at (a count taken after the comparison lets every concurrent
 * caller compare before any count lands: 24 sessions compared 153 codes
 * that way), and must not depend on anything an attacker can exhaust.
 *
 * - Preloaded (the design that holds): a table of claim attempts in shared
 *   memory, APIKEYS_CLAIM_SLOTS entries under one LWLock.  ClaimGate takes
 *   the lock, finds or makes the claim's entry (seeded from the durable
 *   count in the claim's row, the floor after a restart), refuses when five
 *   comparisons were already granted, else grants one and counts it, and
 *   only then lets the caller compare.  Grant and count are one step under
 *   one exclusive lock, so however many sessions race, at most five grants
 *   are ever handed out per claim in the life of the server; a grant is
 *   counted whether the code then proves right or wrong, and whether the
 *   caller's transaction commits or not.  No worker, no row lock and no
 *   free slot of any kind is needed.  A full table (every probed entry
 *   belongs to a claim that has not expired) refuses the claim with an
 *   error: fail closed.  Entries are reused once their claim has expired
 *   (an expired claim can never be claimed, so its count no longer
 *   matters).
 *
 *   The durable copy (claims.failures, and locked_at with its audit row
 *   after five wrong codes) is written by a short-lived "claim sync"
 *   worker that claim_key starts after a wrong code and waits for; it
 *   never waits for a row lock (SKIP LOCKED: a locked row is written next
 *   time) and, when no worker slot is free, the count simply stays in
 *   shared memory until a later wrong code finds a slot.  The durable copy
 *   matters only across a restart: what a crash (or a restart before the
 *   sync ran) can cost is the comparisons not yet written, at most five
 *   per claim per restart.
 *
 * - Not preloaded (no shared memory): each attempt is counted in the
 *   claim's row by a worker in a transaction of its own BEFORE the code is
 *   compared (the worker compares too, and locks the claim at the fifth
 *   wrong code), and claim_key waits for it.  The row update is atomic
 *   (failures < 5 in its WHERE clause), so five holds under concurrency
 *   here too.  But this needs a free worker slot: when none is free, or
 *   the worker cannot finish (a lock held on the claim's row past
 *   lock_timeout), the claim is refused (53400) and no code is compared:
 *   fail closed, at the price that holding every worker slot blocks claims.
 *   Preload apikeys to claim without that dependency.
 *
 * - On a hot standby nothing can be recorded, so claim_key refuses at once
 *   (25006).
 *
 * IDENTIFICATION
 *	  src/admin_claim.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "worker_dblist.h"
#include "shmem.h"
#include "verify_throttle.h"
#include "token.h"
#include "verify.h"

/* 32 base62 characters: 190 bits, URL-safe */
#define APIKEYS_CLAIM_TOKEN_LEN		32
#define APIKEYS_CLAIM_CODE_DIGITS	6

/* code comparisons a claim allows, ever */
#define APIKEYS_CLAIM_MAX_ATTEMPTS	5

/* entries of the attempt table, and how many of them one claim may probe */
#define APIKEYS_CLAIM_SLOTS			8192
#define CLAIM_PROBE					64

/*
 * One claim's attempts.  A claim is known by its database, its ID and the
 * first bytes of its code hash (the tag): claim IDs start again at 1 when
 * the extension is created anew, the tag does not repeat.
 */
typedef struct ClaimSlot
{
	Oid			dbid;			/* InvalidOid: free */
	int64		claim_id;
	uint64		tag;
	TimestampTz expires_at;		/* reusable from then on */
	int32		attempts;		/* comparisons granted */
	int32		wrong;			/* of them, known to be wrong */
	int32		synced;			/* attempts written to the claim's row */
	bool		lock_synced;	/* the lock (five wrong) written too */
} ClaimSlot;

typedef struct ClaimShared
{
	uint64		seed;
	pg_atomic_uint64 refused_full;	/* claims refused: table full */
	pg_atomic_uint64 last_no_slot_log;	/* when "no slot" was last logged */
	ClaimSlot	slots[APIKEYS_CLAIM_SLOTS];
} ClaimShared;

typedef enum ClaimGateResult
{
	CLAIM_GRANTED,				/* compare, and report the outcome */
	CLAIM_EXHAUSTED,			/* five comparisons were made: refuse */
	CLAIM_FULL					/* no entry for the claim: refuse */
} ClaimGateResult;

/*
 * The request a claim_key caller shares with its counting worker when
 * apikeys is not preloaded (a dynamic shared memory segment).
 */
typedef struct ClaimCountRequest
{
	Oid			dbid;
	int64		claim_id;
	int32		presented_len;
	uint8		presented[APIKEYS_HASH_LEN];
	int32		result;			/* -1 no answer, 0 refused or wrong, 1 right */
} ClaimCountRequest;

#define CLAIM_TRANCHE	"apikeys claim attempts"

static ClaimShared *claims = NULL;
static LWLock *claim_lock = NULL;	/* the attempt table's one lock */

static LWLock *
ClaimLock(void)
{
	Assert(claim_lock != NULL);
	Assert(!DbListLockHeldByMe());	/* held alone */
	return claim_lock;
}

PGDLLEXPORT void ApikeysClaimSyncMain(Datum arg);
PGDLLEXPORT void ApikeysClaimCountMain(Datum arg);

PG_FUNCTION_INFO_V1(apikeys_claim_secrets);
PG_FUNCTION_INFO_V1(apikeys_hash_equal);
PG_FUNCTION_INFO_V1(apikeys_claim_begin);
PG_FUNCTION_INFO_V1(apikeys_claim_attempt);
PG_FUNCTION_INFO_V1(apikeys_claim_failed);
PG_FUNCTION_INFO_V1(apikeys_claim_attempts);

/* ClaimShmemRequest asks for the attempt table's memory and its lock. */
void
ClaimShmemRequest(void)
{
	RequestAddinShmemSpace(sizeof(ClaimShared));
	RequestNamedLWLockTranche(CLAIM_TRANCHE, 1);
}

/* ClaimShmemInit creates or attaches the attempt table (AddinShmemInitLock held). */
void
ClaimShmemInit(void)
{
	bool		found;

	Assert(LWLockHeldByMeInMode(AddinShmemInitLock, LW_EXCLUSIVE));
	claim_lock = &GetNamedLWLockTranche(CLAIM_TRANCHE)->lock;
	claims = ShmemInitStruct("apikeys claim attempts", sizeof(ClaimShared), &found);
	if (!found)
	{
		memset(claims, 0, sizeof(ClaimShared));
		if (!pg_strong_random(&claims->seed, sizeof(claims->seed)))
			claims->seed = (uint64) GetCurrentTimestamp();
		pg_atomic_init_u64(&claims->refused_full, 0);
		pg_atomic_init_u64(&claims->last_no_slot_log, 0);
	}
}

/*
 * SQL function: apikeys_internal._claim_secrets() returns record
 *	 (claim_token text, code text)
 *
 * A fresh claim token and a 6-digit code, both from pg_strong_random().
 * The code is drawn without modulo bias: values of the 32-bit draw at or
 * above the largest multiple of 10^6 are drawn again.
 */
Datum
apikeys_claim_secrets(PG_FUNCTION_ARGS)
{
	char		tok[APIKEYS_CLAIM_TOKEN_LEN];
	char		code[APIKEYS_CLAIM_CODE_DIGITS + 1];
	const uint32 limit = UINT32_MAX - (UINT32_MAX % 1000000);
	uint32		r;
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	Base62Random(tok, APIKEYS_CLAIM_TOKEN_LEN);
	do
	{
		if (!pg_strong_random(&r, sizeof(r)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random values")));
	} while (r >= limit);
	snprintf(code, sizeof(code), "%06u", r % 1000000);

	values[0] = PointerGetDatum(cstring_to_text_with_len(tok, APIKEYS_CLAIM_TOKEN_LEN));
	values[1] = PointerGetDatum(cstring_to_text(code));
	explicit_bzero(tok, sizeof(tok));
	explicit_bzero(code, sizeof(code));
	explicit_bzero(&r, sizeof(r));

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * SQL function: apikeys_internal._hash_equal(a bytea, b bytea) returns boolean
 *
 * Constant-time equality of two hashes (timingsafe_bcmp), so a wrong
 * claim code takes as long to refuse as any other.
 */
Datum
apikeys_hash_equal(PG_FUNCTION_ARGS)
{
	bytea	   *a;
	bytea	   *b;
	size_t		len;

	/* NULL equals nothing (the function is not STRICT: see the script) */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);
	a = PG_GETARG_BYTEA_PP(0);
	b = PG_GETARG_BYTEA_PP(1);
	len = VARSIZE_ANY_EXHDR(a);

	if (len != VARSIZE_ANY_EXHDR(b))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(timingsafe_bcmp(VARDATA_ANY(a), VARDATA_ANY(b), len) == 0);
}


/* HashEqual compares two hashes in constant time. */
static bool
HashEqual(const uint8 *a, int alen, const uint8 *b, int blen)
{
	return alen == blen && timingsafe_bcmp(a, b, alen) == 0;
}

/* ---------------------------------------------------------------------
 * The caller's address
 * ---------------------------------------------------------------------
 */

/*
 * SQL function: apikeys_internal._claim_begin(client_ip inet) returns inet
 *
 * Opens every claim: refuses at once during recovery (nothing can be
 * counted on a standby), and returns the caller's address, normalised as
 * the throttle keys it: client_ip when given (a trusted backend claiming
 * on its client's behalf), else the address pre_request would use (the
 * forwarding headers of a PostgREST request under
 * apikeys.trust_forwarded_for, else the connection's), else NULL (a unix
 * socket).  An unreadable forwarding header raises INVALID_FORWARDED, as
 * it does for a key presented to pre_request.
 */
Datum
apikeys_claim_begin(PG_FUNCTION_ARGS)
{
	Datum		addr = (Datum) 0;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot claim an API key during recovery"),
				 errdetail("A claim counts its attempts and writes the key, which a standby cannot do."),
				 errhint("Claim the key on the primary server.")));

	if (!PG_ARGISNULL(0))
		addr = PG_GETARG_DATUM(0);
	else if (!RequestClientAddress(&addr))
		PG_RETURN_NULL();
	PG_RETURN_DATUM(AddressNormalize(addr));
}

/*
 * SQL function: apikeys_internal._claim_failed(address inet) returns void
 *
 * Counts a failed claim against the caller's address (NULL: none known) in
 * the address throttle.  claim_key never asks the throttle whether the
 * address is blocked: a claim link is a credential, and a correct one is
 * never refused because other callers failed from the same address (a
 * proxy's, a NAT's).  What stops code guessing is the per-claim count, not
 * the address; the address count keeps junk claims visible (and, while the
 * throttle blocks verifications by address, costly to the failing caller).
 * Not STRICT: a NULL address is the unix-socket case.
 */
Datum
apikeys_claim_failed(PG_FUNCTION_ARGS)
{
	ThrottleRecordFailure(!PG_ARGISNULL(0), PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0));
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * The attempt table (preloaded)
 * ---------------------------------------------------------------------
 */

/*
 * ClaimSlotFind returns the index of claim (claim_id, tag)'s entry in
 * this database, or -1.  With create, a missing entry is made in a free
 * or expired slot of its probe range, with floor attempts (and as many
 * wrong: the row counts only comparisons that were recorded, and it is
 * safer to count them all as wrong).  Caller holds ClaimLock exclusively
 * when creating, at least shared otherwise.
 */
static int
ClaimSlotFind(int64 claim_id, uint64 tag, bool create,
			  TimestampTz expires_at, int floor)
{
	struct
	{
		Oid			dbid;
		int64		claim_id;
		uint64		tag;
	}			key;
	uint64		h;
	int			reuse = -1;
	TimestampTz now = GetCurrentTimestamp();

	Assert(create ? LWLockHeldByMeInMode(ClaimLock(), LW_EXCLUSIVE) :
		   LWLockHeldByMe(ClaimLock()));
	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.claim_id = claim_id;
	key.tag = tag;
	h = hash_bytes_extended((const unsigned char *) &key, sizeof(key), claims->seed);

	for (int i = 0; i < CLAIM_PROBE; i++)
	{
		int			idx = (int) ((h + i) % APIKEYS_CLAIM_SLOTS);
		ClaimSlot  *s = &claims->slots[idx];

		if (s->dbid == MyDatabaseId && s->claim_id == claim_id && s->tag == tag)
			return idx;
		if (reuse < 0 && (s->dbid == InvalidOid || s->expires_at <= now))
			reuse = idx;
	}
	if (!create || reuse < 0)
		return -1;

	claims->slots[reuse].dbid = MyDatabaseId;
	claims->slots[reuse].claim_id = claim_id;
	claims->slots[reuse].tag = tag;
	claims->slots[reuse].expires_at = expires_at;
	claims->slots[reuse].attempts = floor;
	claims->slots[reuse].wrong = floor;
	claims->slots[reuse].synced = floor;
	claims->slots[reuse].lock_synced = floor >= APIKEYS_CLAIM_MAX_ATTEMPTS;
	return reuse;
}

/*
 * ClaimGate grants one code comparison for a claim, counting it before
 * the caller sees the code's hash, or refuses: five were granted already,
 * or there is no entry to count it in.  The one place the rule "at most
 * five comparisons per claim" is enforced while preloaded.
 */
static ClaimGateResult
ClaimGate(int64 claim_id, uint64 tag, TimestampTz expires_at, int floor)
{
	ClaimGateResult r;
	int			idx;

	LWLockAcquire(ClaimLock(), LW_EXCLUSIVE);
	idx = ClaimSlotFind(claim_id, tag, true, expires_at, floor);
	if (idx < 0)
		r = CLAIM_FULL;
	else
	{
		ClaimSlot  *s = &claims->slots[idx];

		/* the row may know of more (a count written before a restart) */
		s->attempts = Max(s->attempts, floor);
		if (s->attempts >= APIKEYS_CLAIM_MAX_ATTEMPTS)
			r = CLAIM_EXHAUSTED;
		else
		{
			s->attempts++;
			r = CLAIM_GRANTED;
		}
	}
	LWLockRelease(ClaimLock());
	return r;
}

/* ClaimWrong records that a granted comparison found the code wrong. */
static void
ClaimWrong(int64 claim_id, uint64 tag)
{
	int			idx;

	LWLockAcquire(ClaimLock(), LW_EXCLUSIVE);
	idx = ClaimSlotFind(claim_id, tag, false, 0, 0);
	if (idx >= 0)
		claims->slots[idx].wrong++;
	LWLockRelease(ClaimLock());
}

/* ClaimDirty: does this database have counts not yet in their rows? */
static bool
ClaimDirty(void)
{
	bool		dirty = false;

	LWLockAcquire(ClaimLock(), LW_SHARED);
	for (int i = 0; i < APIKEYS_CLAIM_SLOTS && !dirty; i++)
	{
		ClaimSlot  *s = &claims->slots[i];

		dirty = s->dbid == MyDatabaseId &&
			(s->attempts > s->synced ||
			 (s->wrong >= APIKEYS_CLAIM_MAX_ATTEMPTS && !s->lock_synced));
	}
	LWLockRelease(ClaimLock());
	return dirty;
}

/*
 * ClaimWorker fills worker in to run function for this database's claims
 * (the database travels in bgw_extra), with main argument arg.
 */
static void
ClaimWorker(BackgroundWorker *worker, const char *function, const char *name,
			Datum arg)
{
	WorkerDefine(worker, function, name, BgWorkerStart_RecoveryFinished);
	worker->bgw_main_arg = arg;
	snprintf(worker->bgw_extra, BGW_EXTRALEN, "%u", MyDatabaseId);
}

/*
 * ClaimSync has a worker write this database's counts to the claims' rows
 * and waits for it.  Only the durable copy depends on it: when no slot is
 * free the counts stay in shared memory (and keep refusing) until a later
 * wrong code finds one.
 */
static void
ClaimSync(void)
{
	BackgroundWorker worker;

	if (!ClaimDirty())
		return;
	ClaimWorker(&worker, "ApikeysClaimSyncMain", "apikeys claim sync", (Datum) 0);
	if (!RunWorkerAndWait(&worker, "an apikeys claim sync worker", DEBUG1))
	{
		TimestampTz now = GetCurrentTimestamp();
		uint64		last = pg_atomic_read_u64(&claims->last_no_slot_log);

		/* at most once a minute: refused attempts must not flood the log */
		if (now - (TimestampTz) last < 60 * USECS_PER_SEC ||
			!pg_atomic_compare_exchange_u64(&claims->last_no_slot_log, &last, (uint64) now))
			return;
		ereport(LOG,
				(errmsg("could not write claim attempts to their claims: no background worker slot is free"),
				 errdetail("The attempts are counted in shared memory and refused there; only their copy in apikeys.claims waits."),
				 errhint("Raise \"max_worker_processes\".")));
	}
}

/* ---------------------------------------------------------------------
 * Counting in the row (not preloaded)
 * ---------------------------------------------------------------------
 */

/*
 * ClaimCountInRow has a worker count the attempt in the claim's row, in a
 * transaction of its own, and compare the code there; it waits for the
 * worker and returns its answer.  Fails closed: no worker, or no answer,
 * and the claim is refused with no code compared.
 */
static bool
ClaimCountInRow(int64 claim_id, const uint8 *presented, int presented_len)
{
	dsm_segment *seg;
	ClaimCountRequest *req;
	BackgroundWorker worker;
	int32		result = -1;
	bool		started;

	seg = dsm_create(sizeof(ClaimCountRequest), 0);
	req = dsm_segment_address(seg);
	memset(req, 0, sizeof(ClaimCountRequest));
	req->dbid = MyDatabaseId;
	req->claim_id = claim_id;
	req->presented_len = Min(presented_len, APIKEYS_HASH_LEN);
	memcpy(req->presented, presented, req->presented_len);
	req->result = -1;

	ClaimWorker(&worker, "ApikeysClaimCountMain", "apikeys claim count",
				UInt32GetDatum(dsm_segment_handle(seg)));
	started = RunWorkerAndWait(&worker, "an apikeys claim count worker", DEBUG1);
	if (started)
	{
		pg_read_barrier();
		result = req->result;
	}
	explicit_bzero(req, sizeof(ClaimCountRequest));
	dsm_detach(seg);

	if (result < 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not count a claim attempt"),
				 errdetail(!started ?
						   "No background worker slot is free, and without apikeys in \"shared_preload_libraries\" each claim attempt is counted by a worker before the code is compared." :
						   "The worker that counts claim attempts could not finish; no code was compared."),
				 errhint("Add apikeys to \"shared_preload_libraries\" (claims then need no worker), or raise \"max_worker_processes\".")));
	return result == 1;
}

/*
 * SQL function: apikeys_internal._claim_attempt(claim_id bigint, failures integer,
 *		expires_at timestamptz, code_hash bytea, presented bytea) returns boolean
 *
 * The one door to a code comparison: counts the attempt first (in shared
 * memory when preloaded, else in the claim's row through a worker), then
 * compares presented with code_hash in constant time.  True only for the
 * right code with an attempt granted; false for a wrong code or a claim
 * that has used up its five comparisons.  failures is the claim row's
 * durable count, the floor.  Raises 53400 when the attempt cannot be
 * counted (nothing compared).
 */
Datum
apikeys_claim_attempt(PG_FUNCTION_ARGS)
{
	int64		claim_id;
	int			floor;
	TimestampTz expires_at;
	bytea	   *code_hash;
	bytea	   *presented;
	uint64		tag = 0;
	bool		right;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) ||
		PG_ARGISNULL(3) || PG_ARGISNULL(4))
		PG_RETURN_BOOL(false);
	claim_id = PG_GETARG_INT64(0);
	floor = Max(PG_GETARG_INT32(1), 0);
	expires_at = PG_GETARG_TIMESTAMPTZ(2);
	code_hash = PG_GETARG_BYTEA_PP(3);
	presented = PG_GETARG_BYTEA_PP(4);
	memcpy(&tag, VARDATA_ANY(code_hash), Min(sizeof(tag), VARSIZE_ANY_EXHDR(code_hash)));

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot claim an API key during recovery")));

	if (!ApikeysSharedReady())
		PG_RETURN_BOOL(ClaimCountInRow(claim_id,
									   (const uint8 *) VARDATA_ANY(presented),
									   VARSIZE_ANY_EXHDR(presented)));

	switch (ClaimGate(claim_id, tag, expires_at, Min(floor, APIKEYS_CLAIM_MAX_ATTEMPTS)))
	{
		case CLAIM_FULL:
			pg_atomic_fetch_add_u64(&claims->refused_full, 1);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not count a claim attempt"),
					 errdetail("The table of claim attempts in shared memory has no free entry (%d claims with attempts that have not expired).",
							   APIKEYS_CLAIM_SLOTS),
					 errhint("Entries are freed as their claims expire; lower \"apikeys.claim_lifetime\" or try again later.")));
			break;
		case CLAIM_EXHAUSTED:
			/* make sure the lock reaches the row, then refuse uncompared */
			ClaimSync();
			PG_RETURN_BOOL(false);
		case CLAIM_GRANTED:
			break;
	}

	right = HashEqual((const uint8 *) VARDATA_ANY(code_hash), VARSIZE_ANY_EXHDR(code_hash),
					  (const uint8 *) VARDATA_ANY(presented), VARSIZE_ANY_EXHDR(presented));
	if (!right)
	{
		ClaimWrong(claim_id, tag);
		ClaimSync();
	}
	PG_RETURN_BOOL(right);
}

/*
 * SQL function: apikeys_internal._claim_attempts() returns setof record
 *	 (claim_id bigint, tag bytea, attempts integer, wrong integer, synced integer)
 *
 * This database's entries of the attempt table (none without preloading):
 * for tests and for an operator who wants to see what is counted.  tag is
 * the first 8 bytes of the claim's code_hash: an entry belongs to the row
 * with that ID and tag (IDs start again when the extension is recreated).
 */
Datum
apikeys_claim_attempts(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (!ApikeysSharedReady())
		return (Datum) 0;

	LWLockAcquire(ClaimLock(), LW_SHARED);
	for (int i = 0; i < APIKEYS_CLAIM_SLOTS; i++)
	{
		ClaimSlot  *s = &claims->slots[i];
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};
		bytea	   *tag;

		if (s->dbid != MyDatabaseId)
			continue;
		tag = palloc(VARHDRSZ + sizeof(uint64));
		SET_VARSIZE(tag, VARHDRSZ + sizeof(uint64));
		memcpy(VARDATA(tag), &s->tag, sizeof(uint64));
		values[0] = Int64GetDatum(s->claim_id);
		values[1] = PointerGetDatum(tag);
		values[2] = Int32GetDatum(s->attempts);
		values[3] = Int32GetDatum(s->wrong);
		values[4] = Int32GetDatum(s->synced);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(ClaimLock());
	return (Datum) 0;
}

/* ---------------------------------------------------------------------
 * Workers
 * ---------------------------------------------------------------------
 */

/* ClaimWorkerConnect: signals, and a connection to the caller's database. */
static void
ClaimWorkerConnect(const char *appname)
{
	Oid			dbid = InvalidOid;

	if (sscanf(MyBgworkerEntry->bgw_extra, "%u", &dbid) != 1)
		elog(ERROR, "invalid database for the apikeys claim worker");
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	pgstat_report_appname(appname);
}

/*
 * ApikeysClaimSyncMain writes the attempt table's counts of its database
 * to the claims' rows through apikeys_internal._claim_record (which skips a locked
 * row rather than wait), then, once committed, marks what it wrote.
 */
void
ApikeysClaimSyncMain(Datum arg)
{
	int			n = 0;
	int64	   *ids;
	uint64	   *tags;
	int32	   *attempts;
	bool	   *lock;
	bool	   *written;
	bool		installed;

	ClaimWorkerConnect("apikeys claim sync");
	if (!ApikeysSharedReady())
		proc_exit(0);

	ids = palloc(sizeof(int64) * APIKEYS_CLAIM_SLOTS);
	tags = palloc(sizeof(uint64) * APIKEYS_CLAIM_SLOTS);
	attempts = palloc(sizeof(int32) * APIKEYS_CLAIM_SLOTS);
	lock = palloc(sizeof(bool) * APIKEYS_CLAIM_SLOTS);
	written = palloc0(sizeof(bool) * APIKEYS_CLAIM_SLOTS);

	LWLockAcquire(ClaimLock(), LW_SHARED);
	for (int i = 0; i < APIKEYS_CLAIM_SLOTS; i++)
	{
		ClaimSlot  *s = &claims->slots[i];
		bool		want_lock = s->wrong >= APIKEYS_CLAIM_MAX_ATTEMPTS;

		if (s->dbid != MyDatabaseId ||
			!(s->attempts > s->synced || (want_lock && !s->lock_synced)))
			continue;
		ids[n] = s->claim_id;
		tags[n] = s->tag;
		attempts[n] = s->attempts;
		lock[n] = want_lock;
		n++;
	}
	LWLockRelease(ClaimLock());

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	installed = OidIsValid(get_extension_oid("apikeys", true));
	if (installed && n > 0)
	{
		Oid			argtypes[4] = {INT8OID, BYTEAOID, INT4OID, BOOLOID};
		SPIPlanPtr	plan;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		/* claim rows are skipped when locked; nothing else may hold it up */
		if (SPI_execute("SELECT pg_catalog.set_config('lock_timeout', '1s', true)", false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not set lock_timeout");
		plan = SPI_prepare("SELECT apikeys_internal._claim_record($1, $2, $3, $4)", 4, argtypes);
		if (plan == NULL)
			elog(ERROR, "could not prepare the claim sync");
		for (int i = 0; i < n; i++)
		{
			bytea	   *tag = palloc(VARHDRSZ + sizeof(uint64));
			Datum		values[4];
			bool		isnull;

			SET_VARSIZE(tag, VARHDRSZ + sizeof(uint64));
			memcpy(VARDATA(tag), &tags[i], sizeof(uint64));
			values[0] = Int64GetDatum(ids[i]);
			values[1] = PointerGetDatum(tag);
			values[2] = Int32GetDatum(attempts[i]);
			values[3] = BoolGetDatum(lock[i]);
			if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
				elog(ERROR, "could not write claim attempts");
			written[i] = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1, &isnull)) && !isnull;
		}
		SPI_finish();
	}
	PopActiveSnapshot();
	CommitTransactionCommand();

	/* committed: what was written (or has no row any more) is synced */
	LWLockAcquire(ClaimLock(), LW_EXCLUSIVE);
	for (int i = 0; i < n; i++)
	{
		int			idx;

		if (installed && !written[i])
			continue;
		idx = ClaimSlotFind(ids[i], tags[i], false, 0, 0);
		if (idx < 0)
			continue;
		claims->slots[idx].synced = Max(claims->slots[idx].synced, attempts[i]);
		if (lock[i])
			claims->slots[idx].lock_synced = true;
	}
	LWLockRelease(ClaimLock());
	proc_exit(0);
}

/*
 * ApikeysClaimCountMain is the worker behind ClaimCountInRow: it counts
 * one attempt in the claim's row and compares the code, through
 * apikeys_internal._claim_count_attempt, commits, and only then answers in the
 * shared request.  A lock held on the row ends it after lock_timeout (1 s)
 * with no answer, which the caller takes as a refusal.
 */
void
ApikeysClaimCountMain(Datum arg)
{
	dsm_segment *seg = dsm_attach(DatumGetUInt32(arg));
	ClaimCountRequest *req;
	Oid			argtypes[2] = {INT8OID, BYTEAOID};
	Datum		values[2];
	bytea	   *presented;
	bool		isnull = true;
	bool		right = false;

	if (seg == NULL)
		proc_exit(0);			/* the caller gave up */
	req = dsm_segment_address(seg);
	ClaimWorkerConnect("apikeys claim count");

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT pg_catalog.set_config('lock_timeout', '1s', true)", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not set lock_timeout");
	presented = palloc(VARHDRSZ + req->presented_len);
	SET_VARSIZE(presented, VARHDRSZ + req->presented_len);
	memcpy(VARDATA(presented), req->presented, req->presented_len);
	values[0] = Int64GetDatum(req->claim_id);
	values[1] = PointerGetDatum(presented);
	if (SPI_execute_with_args("SELECT apikeys_internal._claim_count_attempt($1, $2)",
							  2, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not count a claim attempt");
	right = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	explicit_bzero(VARDATA(presented), req->presented_len);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	/* counted and committed: now the caller may learn the outcome */
	req->result = (!isnull && right) ? 1 : 0;
	pg_write_barrier();
	dsm_detach(seg);
	proc_exit(0);
}
