/*-------------------------------------------------------------------------
 *
 * credits.c
 *	  Usage credits: a key's balance, its lazy refill, the spend of one
 *	  verification (USAGE_EXCEEDED), and the flush of balances held in
 *	  shared memory to apikeys.keys.
 *
 * Where the balance lives.  With shared_preload_libraries, a key's live
 * balance is an entry of a shared hash table (one per key in use, keyed by
 * database and client ID, in CREDITS_PARTITIONS partitions with a lock
 * each).  A verification takes its cost there under the partition lock:
 * check and take are one step, so no interleaving of verifications can
 * take more than the balance holds, and nothing is written per call.  The
 * background worker writes the balances that changed to the key's row at
 * every visit (apikeys.flush_interval, with the usage flush), through
 * apikeys._credits_write, which the audit trigger does not record.
 *
 * The row and the entry.  The row (and the shared cache, which copies it)
 * holds the balance as last written, credits_seq (bumped whenever an admin
 * sets the balance outright: create_key, update_key) and credits_added
 * (the total add_credits ever gave).  An entry remembers the credits_seq
 * and credits_added it has seen.  A verification that brings a key with
 * a newer credits_seq replaces the entry's balance with the row's (the
 * admin's new balance wins over spends); one with a larger credits_added
 * adds the difference (a top-up adds to what was spent meanwhile); an
 * older one changes nothing (the entry is newer than that copy).  So
 * admins write only the row, transactionally, and shared memory follows
 * at the next verification after their commit.  A flush writes the
 * entry's balance plus any top-up it has not seen, and only while the row
 * still has the entry's credits_seq.
 *
 * Refill.  A key with refill_amount and refill_every starts a period at
 * credits_refilled_at; the first look at the balance after a period ended
 * sets the balance back to refill_amount and moves the start by whole
 * periods (CreditsRefill), under the partition lock (or the row lock
 * without preloading): once per period, whoever comes first.
 *
 * What a crash or failover loses.  The entries are in memory only: after
 * a crash, an immediate shutdown, a restart or a failover, each key starts
 * again from its row, that is from the last flush.  What was spent since
 * (at most one apikeys.flush_interval of spends, plus a flush that was
 * under way) is given back: the bound of the over-spend.  A refill applied
 * only in memory is applied again from the row, which is the same refill.
 *
 * Standbys cannot write, and their memory is not the primary's: a key
 * with credits answers USAGE_EXCEEDED on a hot standby (its balance is
 * shown as the row holds it).  Without preloading the spend is a row
 * update (apikeys._credits_spend_row, the row locked), so a key with
 * credits then needs a transaction that may write: pre_request (which
 * writes nothing) and read-only transactions answer USAGE_EXCEEDED.
 *
 * Space.  The table holds APIKEYS_CREDITS_MAX_KEYS keys; an entry is
 * dropped by the flush once it has been written and left unchanged for
 * two flush intervals (by then every copy of the row older than that
 * write is gone from the shared cache).  When it is full, a key not in it
 * answers USAGE_EXCEEDED (never an unchecked spend) and a warning says so.
 *
 * IDENTIFICATION
 *	  src/credits.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "credits.h"
#include "dblist.h"
#include "ownerlimit.h"
#include "shmem.h"

#define CREDITS_TRANCHE			"apikeys credits"
#define CREDITS_PARTITIONS		16
#define APIKEYS_CREDITS_MAX_KEYS	16384

/* An entry's key: the database and the zero-padded client ID. */
typedef struct CreditsTag
{
	Oid			dbid;
	char		client_id[APIKEYS_CLIENT_ID_MAXLEN + 1];
} CreditsTag;

/* A key's live balance (see the top of the file). */
typedef struct CreditsEntry
{
	CreditsTag	tag;
	int64		seq;			/* the row's credits_seq it was loaded from */
	int64		added_seen;		/* the row's credits_added it has counted */
	int64		balance;
	TimestampTz period;			/* start of the refill period */
	uint64		changes;		/* spends and refills so far */
	uint64		flushed;		/* changes written by a committed flush */
	TimestampTz touched;		/* loaded or last changed */
} CreditsEntry;

typedef struct CreditsShared
{
	pg_atomic_uint64 refused_full;	/* verifications refused: table full */
} CreditsShared;

static HTAB *credits_hash = NULL;
static LWLockPadded *credits_locks = NULL;
static CreditsShared *credits_shared = NULL;

/* CreditsShmemSize: the table, its counter and nothing else. */
static Size
CreditsShmemSize(void)
{
	return add_size(MAXALIGN(sizeof(CreditsShared)),
					hash_estimate_size(APIKEYS_CREDITS_MAX_KEYS, sizeof(CreditsEntry)));
}

/* CreditsShmemRequest asks for the table's memory and its locks. */
void
CreditsShmemRequest(void)
{
	RequestAddinShmemSpace(CreditsShmemSize());
	RequestNamedLWLockTranche(CREDITS_TRANCHE, CREDITS_PARTITIONS);
}

/* CreditsShmemInit creates or attaches the table (AddinShmemInitLock held). */
void
CreditsShmemInit(void)
{
	bool		found;
	HASHCTL		info;

	Assert(LWLockHeldByMeInMode(AddinShmemInitLock, LW_EXCLUSIVE));
	credits_locks = GetNamedLWLockTranche(CREDITS_TRANCHE);
	credits_shared = ShmemInitStruct("apikeys credits", sizeof(CreditsShared), &found);
	if (!found)
		pg_atomic_init_u64(&credits_shared->refused_full, 0);
	info.keysize = sizeof(CreditsTag);
	info.entrysize = sizeof(CreditsEntry);
	info.num_partitions = CREDITS_PARTITIONS;
	credits_hash = ShmemInitHash("apikeys credits by key",
								 APIKEYS_CREDITS_MAX_KEYS, APIKEYS_CREDITS_MAX_KEYS,
								 &info,
								 HASH_ELEM | HASH_BLOBS | HASH_PARTITION | HASH_FIXED_SIZE);
}

/*
 * CreditsRefill applies the refills due by now: when the period that
 * started at *period is over, the balance is set back to amount and the
 * period moves on by whole periods, so a refill happens once per period
 * whenever it is looked at.  True when it refilled.  The one refill rule:
 * shared memory, the row path and _credits_refilled all come here.
 */
static bool
CreditsRefill(int64 *balance, TimestampTz *period, int64 amount, int64 every_us,
			  TimestampTz now)
{
	int64		n;

	if (amount <= 0 || every_us <= 0)
		return false;
	if (*period == 0)
	{
		*period = now;			/* no period yet: it starts now */
		return false;
	}
	if (now < *period || now - *period < every_us)
		return false;
	n = (now - *period) / every_us;
	*period += n * every_us;
	*balance = amount;
	return true;
}

/* RetryAfter: whole seconds until the next refill (0: none comes). */
static int
RetryAfter(TimestampTz period, int64 every_us, int64 amount, int cost,
		   TimestampTz now)
{
	int64		us;

	if (every_us <= 0 || amount < cost)
		return 0;
	us = period + every_us - now;
	if (us <= 0)
		return 1;
	return (int) Min((us + USECS_PER_SEC - 1) / USECS_PER_SEC, (int64) PG_INT32_MAX);
}

/* RowOutcome: the row's balance with any refill due; spends nothing. */
static void
RowOutcome(const KeyInfo *key, int cost, bool ok, TimestampTz now,
		   CreditsOutcome *out)
{
	int64		balance = key->credits;
	TimestampTz period = key->credits_at;

	(void) CreditsRefill(&balance, &period, key->refill_amount, key->refill_every_us, now);
	out->ok = ok;
	out->balance = balance;
	out->retry_after = ok ? 0 :
		RetryAfter(period, key->refill_every_us, key->refill_amount, cost, now);
}

/* MakeTag fills a zero-padded tag for this database's key. */
static void
MakeTag(const char *client_id, CreditsTag *tag)
{
	memset(tag, 0, sizeof(CreditsTag));
	tag->dbid = MyDatabaseId;
	strlcpy(tag->client_id, client_id, sizeof(tag->client_id));
}

static inline LWLock *
PartitionLock(uint32 hash)
{
	return &credits_locks[hash % CREDITS_PARTITIONS].lock;
}

/*
 * EntryFollowRow brings an entry up to date with a copy of its row (see
 * the top of the file): a newer credits_seq replaces the balance, a larger
 * credits_added adds the difference (after any refill due, as add_credits
 * does to the row), an older copy changes nothing.
 */
static void
EntryFollowRow(CreditsEntry *e, const KeyInfo *key, TimestampTz now)
{
	if (key->credits_seq > e->seq)
	{
		e->seq = key->credits_seq;
		e->added_seen = key->credits_added;
		e->balance = key->credits;
		e->period = key->credits_at;
		e->touched = now;
	}
	else if (key->credits_seq == e->seq && key->credits_added > e->added_seen)
	{
		(void) CreditsRefill(&e->balance, &e->period, key->refill_amount,
							 key->refill_every_us, now);
		e->balance += key->credits_added - e->added_seen;
		e->added_seen = key->credits_added;
		e->changes++;
		e->touched = now;
	}
}

/* CreditsCheckShared: CreditsCheck with shared memory (see the top). */
static void
CreditsCheckShared(const KeyInfo *key, int cost, bool spend, TimestampTz now,
				   CreditsOutcome *out)
{
	CreditsTag	tag;
	uint32		hash;
	LWLock	   *lock;
	CreditsEntry *e;
	bool		found;
	bool		changed = false;

	MakeTag(key->client_id, &tag);
	hash = get_hash_value(credits_hash, &tag);
	lock = PartitionLock(hash);
	LWLockAcquire(lock, LW_EXCLUSIVE);
	e = hash_search_with_hash_value(credits_hash, &tag, hash, HASH_ENTER_NULL, &found);
	if (e == NULL)
	{
		LWLockRelease(lock);
		/* never an unchecked spend: refuse until a flush makes room */
		if (pg_atomic_fetch_add_u64(&credits_shared->refused_full, 1) % 10000 == 0)
			ereport(WARNING,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("too many API keys with credits in use"),
					 errdetail("Shared memory holds the balances of %d keys.",
							   APIKEYS_CREDITS_MAX_KEYS),
					 errhint("Keys not used for two flush intervals make room.")));
		RowOutcome(key, cost, !spend, now, out);
		return;
	}
	if (!found)
	{
		e->seq = key->credits_seq;
		e->added_seen = key->credits_added;
		e->balance = key->credits;
		e->period = key->credits_at;
		e->changes = e->flushed = 0;
		e->touched = now;
	}
	else
		EntryFollowRow(e, key, now);

	if (CreditsRefill(&e->balance, &e->period, key->refill_amount,
					  key->refill_every_us, now))
		changed = true;
	out->ok = true;
	if (spend)
	{
		out->ok = e->balance >= cost;
		if (out->ok)
		{
			e->balance -= cost;
			changed = true;
		}
	}
	if (changed)
	{
		e->changes++;
		e->touched = now;
	}
	out->balance = e->balance;
	out->retry_after = out->ok ? 0 :
		RetryAfter(e->period, key->refill_every_us, key->refill_amount, cost, now);
	LWLockRelease(lock);

	if (changed)
		DbListMarkDirty(MyDatabaseId);	/* the worker writes it out */
}

/*
 * CreditsSpendRow: the spend without shared memory, a row update through
 * apikeys._credits_spend_row (the row locked until the transaction ends),
 * as the extension owner, in a subtransaction.  An error (a serialization
 * failure, a lock timeout) refuses the spend: never a free use.
 */
static void
CreditsSpendRow(const KeyInfo *key, int cost, TimestampTz now, CreditsOutcome *out)
{
	static SPIPlanPtr plan = NULL;
	ApikeysSavedUser saved;
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	Datum		args[2];
	volatile bool ok = false;
	volatile int64 balance = 0;
	volatile TimestampTz period = 0;
	volatile bool got = false;

	GetUserIdAndSecContext(&saved.userid, &saved.sec_context);
	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		ApikeysBecomeOwner(&saved);
		(void) LookupLockTimeoutBegin();	/* unwound with the subtransaction */
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (plan == NULL)
		{
			Oid			types[2] = {TEXTOID, INT4OID};
			SPIPlanPtr	p = SPI_prepare("SELECT s.spent, s.balance, s.refilled_at "
										"  FROM apikeys._credits_spend_row($1, $2) s",
										2, types);

			if (p == NULL || SPI_keepplan(p) != 0)
				elog(ERROR, "could not prepare the credit spend");
			plan = p;
		}
		args[0] = CStringGetTextDatum(key->client_id);
		args[1] = Int32GetDatum(cost);
		if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "credit spend failed");
		if (SPI_processed == 1)
		{
			bool		n1,
						n2,
						n3;
			Datum		d1 = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &n1);
			Datum		d2 = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &n2);
			Datum		d3 = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &n3);

			if (!n1 && !n2)
			{
				got = true;
				ok = DatumGetBool(d1);
				balance = DatumGetInt64(d2);
				period = n3 ? 0 : DatumGetTimestampTz(d3);
			}
		}
		SPI_finish();
		ApikeysRestoreUser(&saved);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ApikeysRestoreUser(&saved);
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();

	if (!got)
	{
		RowOutcome(key, cost, false, now, out);
		return;
	}
	out->ok = ok;
	out->balance = balance;
	out->retry_after = ok ? 0 :
		RetryAfter(period, key->refill_every_us, key->refill_amount, cost, now);
}

/*
 * CreditsCheck: the credit step of a verification of a key with credits
 * (key->has_credits).  spend: the verification is VALID so far, take cost
 * credits (or refuse: out->ok false, nothing taken); otherwise only report
 * the balance.  may_write false (pre_request) forbids the row update that
 * a spend needs without shared memory.
 */
void
CreditsCheck(const KeyInfo *key, int cost, bool spend, TimestampTz now,
			 bool may_write, CreditsOutcome *out)
{
	Assert(key->has_credits);
	Assert(cost > 0);
	if (RecoveryInProgress())
	{
		/* a standby cannot record a spend: refuse (see the top) */
		RowOutcome(key, cost, !spend, now, out);
		out->retry_after = 0;
		return;
	}
	if (ApikeysSharedReady())
	{
		CreditsCheckShared(key, cost, spend, now, out);
		return;
	}
	if (!spend || !may_write || XactReadOnly || IsInParallelMode())
	{
		RowOutcome(key, cost, !spend, now, out);
		return;
	}
	CreditsSpendRow(key, cost, now, out);
}

/* A balance taken by a flush, to be marked written once it commits. */
typedef struct FlushItem
{
	CreditsTag	tag;
	int64		seq;
	int64		added_seen;
	int64		balance;
	TimestampTz period;
	uint64		changes;
} FlushItem;

static List *flush_pending = NIL;	/* in TopMemoryContext */
static bool flush_callback = false;

/*
 * FlushXactCallback marks the balances a flush wrote as written once its
 * transaction has committed (never before: a flush that rolls back leaves
 * them to the next one).
 */
static void
FlushXactCallback(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (flush_pending == NIL)
		return;
	if (event == XACT_EVENT_COMMIT)
	{
		foreach(lc, flush_pending)
		{
			FlushItem  *it = (FlushItem *) lfirst(lc);
			uint32		hash = get_hash_value(credits_hash, &it->tag);
			CreditsEntry *e;

			LWLockAcquire(PartitionLock(hash), LW_EXCLUSIVE);
			e = hash_search_with_hash_value(credits_hash, &it->tag, hash, HASH_FIND, NULL);
			if (e != NULL && e->seq == it->seq && e->flushed < it->changes)
				e->flushed = it->changes;
			LWLockRelease(PartitionLock(hash));
		}
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		list_free_deep(flush_pending);
		flush_pending = NIL;
	}
}

/*
 * CreditsFlushDatabase writes this database's changed balances to their
 * rows (apikeys._credits_write), in the current transaction, and drops
 * entries written and left unchanged for two flush intervals.  Returns the
 * number of keys written.  Does nothing without shared memory or during
 * recovery.
 */
int64
CreditsFlushDatabase(void)
{
	HASH_SEQ_STATUS seq;
	CreditsEntry *e;
	List	   *items = NIL;
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();
	int64		idle_us = (int64) apikeys_flush_interval * 2 * USECS_PER_SEC;
	int64		written = 0;
	SPIPlanPtr	plan;
	MemoryContext oldcxt;

	if (!ApikeysSharedReady() || RecoveryInProgress())
		return 0;

	for (int i = 0; i < CREDITS_PARTITIONS; i++)
		LWLockAcquire(&credits_locks[i].lock, LW_EXCLUSIVE);
	hash_seq_init(&seq, credits_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->tag.dbid != MyDatabaseId)
			continue;
		if (e->changes != e->flushed)
		{
			FlushItem  *it = palloc(sizeof(FlushItem));

			it->tag = e->tag;
			it->seq = e->seq;
			it->added_seen = e->added_seen;
			it->balance = e->balance;
			it->period = e->period;
			it->changes = e->changes;
			items = lappend(items, it);
		}
		else if (now - e->touched > idle_us)
			(void) hash_search(credits_hash, &e->tag, HASH_REMOVE, NULL);
	}
	for (int i = CREDITS_PARTITIONS - 1; i >= 0; i--)
		LWLockRelease(&credits_locks[i].lock);

	if (items == NIL)
		return 0;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	{
		Oid			types[5] = {TEXTOID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID};

		plan = SPI_prepare("SELECT apikeys._credits_write($1, $2, $3, $4, $5)", 5, types);
		if (plan == NULL)
			elog(ERROR, "could not prepare the credit flush");
	}
	foreach(lc, items)
	{
		FlushItem  *it = (FlushItem *) lfirst(lc);
		Datum		args[5];
		char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

		args[0] = CStringGetTextDatum(it->tag.client_id);
		args[1] = Int64GetDatum(it->seq);
		args[2] = Int64GetDatum(it->added_seen);
		args[3] = Int64GetDatum(it->balance);
		args[4] = TimestampTzGetDatum(it->period);
		if (it->period == 0)
			nulls[4] = 'n';
		if (SPI_execute_plan(plan, args, nulls, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "credit flush failed");
		written++;
	}
	SPI_finish();

	if (!flush_callback)
	{
		RegisterXactCallback(FlushXactCallback, NULL);
		flush_callback = true;
	}
	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	foreach(lc, items)
	{
		FlushItem  *it = palloc(sizeof(FlushItem));

		memcpy(it, lfirst(lc), sizeof(FlushItem));
		flush_pending = lappend(flush_pending, it);
	}
	MemoryContextSwitchTo(oldcxt);
	return written;
}

PG_FUNCTION_INFO_V1(apikeys_credits_flush);
PG_FUNCTION_INFO_V1(apikeys_credits_balance);
PG_FUNCTION_INFO_V1(apikeys_credits_refilled);

/* SQL function: apikeys._credits_flush() returns bigint */
Datum
apikeys_credits_flush(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(CreditsFlushDatabase());
}

/*
 * SQL function: apikeys._credits_balance(client_id text) returns bigint
 *
 * The balance a verification would see now, spending nothing: the shared
 * entry brought up to date with the row as this transaction sees it (a
 * top-up of this transaction counts, uncommitted, without changing the
 * entry), or the row itself; NULL for a key without credits.
 */
Datum
apikeys_credits_balance(PG_FUNCTION_ARGS)
{
	text	   *cid = PG_GETARG_TEXT_PP(0);
	KeyInfo		key;
	Datum		arg = PointerGetDatum(cid);
	bool		isnull[6];
	Datum		v[6];
	TimestampTz now = GetCurrentTimestamp();
	int64		balance;
	TimestampTz period;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	{
		Oid			types[1] = {TEXTOID};

		if (SPI_execute_with_args("SELECT k.credits, k.refill_amount, k.refill_every, "
								  "       k.credits_refilled_at, k.credits_seq, k.credits_added "
								  "  FROM apikeys.keys k WHERE k.client_id OPERATOR(pg_catalog.=) $1",
								  1, types, &arg, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "credit balance query failed");
	}
	if (SPI_processed != 1)
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	for (int i = 0; i < 6; i++)
		v[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &isnull[i]);
	if (isnull[0])
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	memset(&key, 0, sizeof(key));
	key.credits = DatumGetInt64(v[0]);
	if (!isnull[1] && !isnull[2])
	{
		key.refill_amount = DatumGetInt64(v[1]);
		key.refill_every_us = IntervalUs(DatumGetIntervalP(v[2]));
	}
	key.credits_at = isnull[3] ? 0 : DatumGetTimestampTz(v[3]);
	key.credits_seq = DatumGetInt64(v[4]);
	key.credits_added = DatumGetInt64(v[5]);
	SPI_finish();

	balance = key.credits;
	period = key.credits_at;
	if (ApikeysSharedReady() && !RecoveryInProgress())
	{
		CreditsTag	tag;
		uint32		hash;
		CreditsEntry *e;

		MakeTag(text_to_cstring(cid), &tag);
		hash = get_hash_value(credits_hash, &tag);
		LWLockAcquire(PartitionLock(hash), LW_SHARED);
		e = hash_search_with_hash_value(credits_hash, &tag, hash, HASH_FIND, NULL);
		if (e != NULL && e->seq >= key.credits_seq)
		{
			CreditsEntry copy = *e;

			EntryFollowRow(&copy, &key, now);
			balance = copy.balance;
			period = copy.period;
		}
		LWLockRelease(PartitionLock(hash));
	}
	(void) CreditsRefill(&balance, &period, key.refill_amount, key.refill_every_us, now);
	PG_RETURN_INT64(balance);
}

/*
 * SQL function: apikeys._credits_refilled(credits bigint, refill_amount
 *		bigint, refill_every interval, refilled_at timestamptz,
 *		OUT credits bigint, OUT refilled_at timestamptz)
 *
 * A stored balance and refill period with the refills due by now applied
 * (CreditsRefill, the rule verification applies).
 */
Datum
apikeys_credits_refilled(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	int64		balance;
	TimestampTz period;
	int64		amount = 0;
	int64		every_us = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	if (PG_ARGISNULL(0))
	{
		nulls[0] = nulls[1] = true;
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
	}
	balance = PG_GETARG_INT64(0);
	period = PG_ARGISNULL(3) ? 0 : PG_GETARG_TIMESTAMPTZ(3);
	if (!PG_ARGISNULL(1) && !PG_ARGISNULL(2))
	{
		amount = PG_GETARG_INT64(1);
		every_us = IntervalUs(PG_GETARG_INTERVAL_P(2));
	}
	(void) CreditsRefill(&balance, &period, amount, every_us, GetCurrentTimestamp());
	values[0] = Int64GetDatum(balance);
	values[1] = TimestampTzGetDatum(period);
	nulls[1] = period == 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
