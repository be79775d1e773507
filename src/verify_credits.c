/*-------------------------------------------------------------------------
 *
 * verify_credits.c
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
 * background worker writes the balances that changed to
 * apikeys.credit_balances at every visit (apikeys.flush_interval, with the
 * usage flush), through apikeys_internal._credits_write: a table of their own, so
 * that a flush fires none of apikeys.keys' triggers and outdates nothing in
 * the shared verification cache.
 *
 * The key's row and the balance.  The key's row (and the shared cache,
 * which copies it) holds credits (the balance if nothing was spent since
 * an admin set it), credits_seq (bumped whenever an admin sets the
 * balance outright: create_key, update_key) and credits_added (the total
 * add_credits ever gave).  An entry, and a credit_balances row, remember
 * the credits_seq and credits_added they have counted.  A verification
 * that brings a key with a newer credits_seq replaces the entry's balance
 * with the row's (the admin's new balance wins over spends); one with a
 * larger credits_added adds the difference (a top-up adds to what was
 * spent meanwhile); an older one changes nothing (the entry is newer than
 * that copy).  So admins write only the key's row, transactionally, and
 * shared memory follows at the next verification after their commit.  A
 * key without an entry starts from its credit_balances row when that row
 * has the key's credits_seq, else from the key's row (LiveFromStored, the
 * one rule); the table is read with the latest snapshot, outside any lock
 * of ours.
 *
 * Refill.  A key with refill_amount and refill_every starts a period at
 * credits_refilled_at; the first look at the balance after a period ended
 * sets the balance back to refill_amount and moves the start by whole
 * periods (CreditsRefill), under the partition lock (or the key's row lock
 * without preloading): once per period, whoever comes first.
 *
 * What a crash or failover loses.  The entries are in memory only: after
 * a crash, an immediate shutdown or a failover, each key starts again
 * from its credit_balances row, that is from the last flush (on a promoted
 * standby: the last flush that had replicated to it).  What was
 * spent since (at most one apikeys.flush_interval of spends, plus a flush
 * that was under way) is given back: the bound of the over-spend.  A
 * refill applied only in memory is applied again from storage, which is
 * the same refill.  A clean shutdown loses nothing: as usage.c does for
 * counts, the postmaster saves the entries not yet written to a file
 * after the shutdown checkpoint (CreditsSaveAtExit), and the next start
 * loads them back before any backend runs (CreditsLoadSaved), if that
 * checkpoint is still the last one (no run came in between) and the
 * server does not start as a standby; the launcher's first visit of each
 * database writes them out.
 *
 * Standbys cannot write, and their memory is not the primary's: a key
 * with credits answers USAGE_EXCEEDED on a hot standby (its balance is
 * shown as the key's row holds it).  Without preloading the spend is a
 * write of its credit_balances row, the key's row locked (FOR NO KEY
 * UPDATE) until the transaction ends, so a key with credits then needs a
 * transaction that may write: pre_request (which writes nothing) and
 * read-only transactions answer USAGE_EXCEEDED.
 *
 * Space.  The table holds APIKEYS_CREDITS_MAX_KEYS keys; an entry is
 * dropped by the flush once its balance is written (committed) and it has
 * been left unchanged for two flush intervals.  When it is full, a key not
 * in it answers USAGE_EXCEEDED (never an unchecked spend) and a warning
 * says so.
 *
 * IDENTIFICATION
 *	  src/verify_credits.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "catalog/pg_control.h"
#include "common/controldata_utils.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "compat.h"
#include "verify_credits.h"
#include "worker_dblist.h"
#include "verify_ownerlimit.h"
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

static void CreditsLoadSaved(void);
static void CreditsSaveAtExit(int code, Datum arg);

/*
 * CreditsShmemInit creates or attaches the table (AddinShmemInitLock held).
 * The postmaster, creating it, loads what a clean shutdown saved and saves
 * at its own exit.
 */
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
	credits_hash = ApikeysShmemInitHash("apikeys credits by key",
										APIKEYS_CREDITS_MAX_KEYS, &info,
										HASH_ELEM | HASH_BLOBS | HASH_PARTITION | HASH_FIXED_SIZE);
	if (!found && !IsUnderPostmaster)
	{
		CreditsLoadSaved();
		on_shmem_exit(CreditsSaveAtExit, (Datum) 0);
	}
}

/* ---- balances kept across a clean shutdown (see the top) ---- */

#define CREDITS_SAVE_FILE		"pg_stat/apikeys_credits.stat"
#define CREDITS_SAVE_TMP		"pg_stat/apikeys_credits.tmp"
#define CREDITS_SAVE_MAGIC		0x41504b43	/* "APKC" */

typedef struct CreditsSaveHeader
{
	uint32		magic;
	uint32		entry_size;
	XLogRecPtr	checkpoint;		/* the shutdown checkpoint it followed */
} CreditsSaveHeader;

/* One saved balance: an entry's tag and what a flush would write. */
typedef struct CreditsSaved
{
	CreditsTag	tag;
	int64		seq;
	int64		added_seen;
	int64		balance;
	TimestampTz period;
} CreditsSaved;

/*
 * CreditsSaveAtExit: on_shmem_exit of the postmaster.  After a shutdown
 * checkpoint only (a clean exit: every backend is gone, nothing spends any
 * more), the entries not yet written go to CREDITS_SAVE_FILE, with that
 * checkpoint's location.  An immediate shutdown exits with 0 too, but
 * leaves no shutdown checkpoint: nothing is saved, as after a crash.
 */
static void
CreditsSaveAtExit(int code, Datum arg)
{
	ControlFileData *control;
	bool		crc_ok;
	CreditsSaveHeader h;
	HASH_SEQ_STATUS seq;
	CreditsEntry *e;
	FILE	   *f;
	bool		ok;
	int			n = 0;

	if (code != 0 || !ApikeysSharedReady() || credits_hash == NULL)
		return;
	control = get_controlfile(DataDir, &crc_ok);
	if (!crc_ok || control->state != DB_SHUTDOWNED)
		return;
	memset(&h, 0, sizeof(h));
	h.magic = CREDITS_SAVE_MAGIC;
	h.entry_size = sizeof(CreditsSaved);
	h.checkpoint = control->checkPoint;
	f = fopen(CREDITS_SAVE_TMP, PG_BINARY_W);
	if (f == NULL)
		return;
	ok = fwrite(&h, sizeof(h), 1, f) == 1;
	/* no lock: no other process is left */
	hash_seq_init(&seq, credits_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		CreditsSaved rec;

		if (!ok || e->changes == e->flushed)
			continue;
		memset(&rec, 0, sizeof(rec));
		rec.tag = e->tag;
		rec.seq = e->seq;
		rec.added_seen = e->added_seen;
		rec.balance = e->balance;
		rec.period = e->period;
		ok = fwrite(&rec, sizeof(rec), 1, f) == 1;
		n++;
	}
	if (fclose(f) != 0 || !ok || n == 0 || rename(CREDITS_SAVE_TMP, CREDITS_SAVE_FILE) != 0)
	{
		if (n > 0)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not save API key credit balances to \"%s\": %m",
							CREDITS_SAVE_FILE)));
		unlink(CREDITS_SAVE_TMP);
	}
}

/*
 * CreditsLoadSaved (the postmaster, creating the table, before any backend
 * runs): the balances a clean shutdown saved become entries again, marked
 * unwritten, so the launcher's first visit of each database writes them.
 * Only when the server stopped cleanly at the checkpoint the file names
 * (a run in between, with apikeys not preloaded, may have spent from the
 * table since) and does not start as a standby (a promoted standby, or a
 * backup made from a copy, starts from the replicated balances).  The file
 * is deleted in every case.
 */
static void
CreditsLoadSaved(void)
{
	FILE	   *f;
	CreditsSaveHeader h;
	ControlFileData *control;
	bool		crc_ok;
	TimestampTz now = GetCurrentTimestamp();
	int			n = 0;

	f = fopen(CREDITS_SAVE_FILE, PG_BINARY_R);
	if (f == NULL)
		return;
	control = get_controlfile(DataDir, &crc_ok);
	if (fread(&h, sizeof(h), 1, f) == 1 && h.magic == CREDITS_SAVE_MAGIC &&
		h.entry_size == sizeof(CreditsSaved) &&
		crc_ok && control->state == DB_SHUTDOWNED && control->checkPoint == h.checkpoint &&
		access("standby.signal", F_OK) != 0 && access("recovery.signal", F_OK) != 0)
	{
		CreditsSaved rec;

		while (fread(&rec, sizeof(rec), 1, f) == 1)
		{
			CreditsEntry *e;
			bool		found;

			e = hash_search(credits_hash, &rec.tag, HASH_ENTER_NULL, &found);
			if (e == NULL)
				break;			/* full: cannot be, it held them all */
			e->seq = rec.seq;
			e->added_seen = rec.added_seen;
			e->balance = rec.balance;
			e->period = rec.period;
			e->changes = 1;
			e->flushed = 0;
			e->touched = now;
			n++;
		}
		if (n > 0)
			ereport(LOG,
					(errmsg("loaded %d API key credit balances saved at the last shutdown", n)));
	}
	fclose(f);
	unlink(CREDITS_SAVE_FILE);
}

/*
 * CreditsRefill applies the refills due by now: when the period that
 * started at *period is over, the balance is set back to amount and the
 * period moves on by whole periods, so a refill happens once per period
 * whenever it is looked at.  True when it refilled.  The one refill rule:
 * shared memory, the spend without it and _credits_balance all come here.
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

/* A key's credit_balances row, as last written. */
typedef struct StoredBalance
{
	bool		found;
	int64		seq;
	int64		added_seen;
	int64		balance;
	TimestampTz period;
} StoredBalance;

/* The live balance of a key without an entry (see the top of the file). */
typedef struct LiveBalance
{
	int64		seq;
	int64		added_seen;
	int64		balance;
	TimestampTz period;
} LiveBalance;

/*
 * LiveFromStored: the one rule for where a key's live balance starts when
 * no shared entry holds it: its credit_balances row while that has the
 * key's credits_seq (plus the top-ups it has not counted, after any refill
 * due, as an entry adds them), else the key's own credits.
 */
static void
LiveFromStored(const KeyInfo *key, const StoredBalance *b, TimestampTz now,
			   LiveBalance *live)
{
	if (b->found && b->seq >= key->credits_seq)
	{
		live->seq = b->seq;
		live->added_seen = b->added_seen;
		live->balance = b->balance;
		live->period = b->period;
		if (key->credits_added > b->added_seen)
		{
			(void) CreditsRefill(&live->balance, &live->period, key->refill_amount,
								 key->refill_every_us, now);
			live->balance += key->credits_added - b->added_seen;
			live->added_seen = key->credits_added;
		}
	}
	else
	{
		live->seq = key->credits_seq;
		live->added_seen = key->credits_added;
		live->balance = key->credits;
		live->period = key->credits_at;
	}
}

/*
 * ReadStored reads the key's credit_balances row (none: b->found false,
 * also while the table does not exist: the extension not yet updated),
 * with the latest snapshot.  Takes no lock of ours.
 */
static void
ReadStored(const char *client_id, StoredBalance *b)
{
	Oid			nsp = get_namespace_oid(APIKEYS_SCHEMA_NAME, true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("credit_balances", nsp) : InvalidOid;
	PkScan		ps;
	TupleTableSlot *slot;

	memset(b, 0, sizeof(StoredBalance));
	if (!OidIsValid(relid))
		return;
	PkScanBegin(&ps, relid, false);
	if ((slot = PkScanFetch(&ps, client_id, strlen(client_id))) != NULL)
	{
		bool		isnull;

		slot_getallattrs(slot);
		b->found = true;
		b->seq = DatumGetInt64(slot_getattr(slot, 2, &isnull));
		b->added_seen = DatumGetInt64(slot_getattr(slot, 3, &isnull));
		b->balance = DatumGetInt64(slot_getattr(slot, 4, &isnull));
		b->period = DatumGetTimestampTz(slot_getattr(slot, 5, &isnull));
		if (isnull)
			b->period = 0;
	}
	PkScanEnd(&ps);
}

/*
 * StoredOutcome: the balance as stored (LiveFromStored over a fresh read of
 * credit_balances) with any refill due; spends nothing.  For answers made
 * without a shared entry: a standby, a full table, no preloading.
 */
static void
StoredOutcome(const KeyInfo *key, int cost, bool ok, TimestampTz now,
			  CreditsOutcome *out)
{
	StoredBalance b;
	LiveBalance live;

	ReadStored(key->client_id, &b);
	LiveFromStored(key, &b, now, &live);
	(void) CreditsRefill(&live.balance, &live.period, key->refill_amount,
						 key->refill_every_us, now);
	out->ok = ok;
	out->balance = live.balance;
	out->retry_after = ok ? 0 :
		RetryAfter(live.period, key->refill_every_us, key->refill_amount, cost, now);
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
 * EntryFollowRow brings an entry up to date with a copy of its key's row
 * of the same credits_seq (see the top of the file): a larger
 * credits_added adds the difference, after any refill due; an older copy
 * changes nothing.  (A newer credits_seq is a reload: LiveFromStored.)
 */
static void
EntryFollowRow(CreditsEntry *e, const KeyInfo *key, TimestampTz now)
{
	if (key->credits_seq == e->seq && key->credits_added > e->added_seen)
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

	StoredBalance stored;
	bool		have_stored = false;

	MakeTag(key->client_id, &tag);
	hash = get_hash_value(credits_hash, &tag);
	lock = PartitionLock(hash);

	/*
	 * An entry that must be (re)loaded needs the key's credit_balances row,
	 * which is read without our lock held; then look again.
	 */
	for (;;)
	{
		LWLockAcquire(lock, LW_EXCLUSIVE);
		e = hash_search_with_hash_value(credits_hash, &tag, hash,
										have_stored ? HASH_ENTER_NULL : HASH_FIND,
										&found);
		if (e != NULL && (have_stored || key->credits_seq <= e->seq))
			break;
		if (e == NULL && have_stored)
			break;				/* full */
		LWLockRelease(lock);
		ReadStored(key->client_id, &stored);
		have_stored = true;
	}
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
		StoredOutcome(key, cost, !spend, now, out);
		return;
	}
	if (!found || key->credits_seq > e->seq)
	{
		LiveBalance live;

		LiveFromStored(key, &stored, now, &live);
		e->seq = live.seq;
		e->added_seen = live.added_seen;
		e->balance = live.balance;
		e->period = live.period;
		if (!found)
			e->changes = e->flushed = 0;
		else
			e->changes++;		/* a new balance: write it out */
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
 * ReadRowsSpi reads, through SPI (connected), the credit columns of the
 * key's row into key (has_credits false: none) and its credit_balances
 * row into b.  False when there is no such key.  The key's row is read
 * as the statement's snapshot sees it; lock_first: lock it first (FOR NO
 * KEY UPDATE, until the transaction ends) in a statement of its own, so
 * that the read that follows, with a new snapshot in READ COMMITTED, sees
 * what the lock's previous holder wrote.
 */
static bool
ReadRowsSpi(const char *client_id, bool lock_first, KeyInfo *key, StoredBalance *b)
{
	Oid			types[1] = {TEXTOID};
	Datum		arg = CStringGetTextDatum(client_id);
	Datum		v[10];
	bool		n[10];

	if (lock_first &&
		SPI_execute_with_args("SELECT 1 FROM apikeys.keys k "
							  " WHERE k.client_id OPERATOR(pg_catalog.=) $1 FOR NO KEY UPDATE",
							  1, types, &arg, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the key for its credits");
	if (SPI_execute_with_args("SELECT k.credits, k.refill_amount, k.refill_every, "
							  "       k.credits_refilled_at, k.credits_seq, k.credits_added, "
							  "       b.credits_seq, b.added_seen, b.balance, b.refilled_at "
							  "  FROM apikeys.keys k "
							  "  LEFT JOIN apikeys.credit_balances b "
							  "    ON b.client_id OPERATOR(pg_catalog.=) k.client_id "
							  " WHERE k.client_id OPERATOR(pg_catalog.=) $1",
							  1, types, &arg, NULL, !lock_first, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the key's credits");
	if (SPI_processed != 1)
		return false;
	for (int i = 0; i < 10; i++)
		v[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &n[i]);
	memset(key, 0, sizeof(KeyInfo));
	strlcpy(key->client_id, client_id, sizeof(key->client_id));
	memset(b, 0, sizeof(StoredBalance));
	if (n[0])
		return true;
	key->has_credits = true;
	key->credits = DatumGetInt64(v[0]);
	if (!n[1] && !n[2])
	{
		key->refill_amount = DatumGetInt64(v[1]);
		key->refill_every_us = IntervalUs(DatumGetIntervalP(v[2]));
	}
	key->credits_at = n[3] ? 0 : DatumGetTimestampTz(v[3]);
	key->credits_seq = DatumGetInt64(v[4]);
	key->credits_added = DatumGetInt64(v[5]);
	if (!n[6])
	{
		b->found = true;
		b->seq = DatumGetInt64(v[6]);
		b->added_seen = DatumGetInt64(v[7]);
		b->balance = DatumGetInt64(v[8]);
		b->period = n[9] ? 0 : DatumGetTimestampTz(v[9]);
	}
	return true;
}

/* What CreditsSpendRow does as the extension owner, and what it found. */
typedef struct CreditsRowSpend
{
	const KeyInfo *key;
	int			cost;
	TimestampTz now;
	bool		ok;
	int64		balance;
	TimestampTz period;
	bool		got;
} CreditsRowSpend;

/* CreditsSpendRowLocked: the read and write, run by ApikeysRunAsOwner. */
static void
CreditsSpendRowLocked(void *arg)
{
	CreditsRowSpend *sp = (CreditsRowSpend *) arg;
	KeyInfo		row;
	StoredBalance b;

	if (ReadRowsSpi(sp->key->client_id, true, &row, &b) && row.has_credits)
	{
		LiveBalance live;
		bool		changed;

		LiveFromStored(&row, &b, sp->now, &live);
		changed = CreditsRefill(&live.balance, &live.period, row.refill_amount,
								row.refill_every_us, sp->now);
		sp->ok = live.balance >= sp->cost;
		if (sp->ok)
		{
			live.balance -= sp->cost;
			changed = true;
		}
		if (changed)
		{
			Oid			types[5] = {TEXTOID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID};
			Datum		args[5];
			char		nulls[5] = {' ', ' ', ' ', ' ', live.period == 0 ? 'n' : ' '};

			args[0] = CStringGetTextDatum(sp->key->client_id);
			args[1] = Int64GetDatum(live.seq);
			args[2] = Int64GetDatum(live.added_seen);
			args[3] = Int64GetDatum(live.balance);
			args[4] = TimestampTzGetDatum(live.period);
			if (SPI_execute_with_args("SELECT apikeys_internal._credits_write($1, $2, $3, $4, $5)",
									  5, types, args, nulls, false, 1) != SPI_OK_SELECT)
				elog(ERROR, "could not write the key's credits");
		}
		sp->balance = live.balance;
		sp->period = live.period;
		sp->got = true;
	}
}

/*
 * CreditsSpendRow: the spend without shared memory.  The key's row is
 * locked until the transaction ends (ReadRowsSpi), its live balance
 * computed (LiveFromStored, CreditsRefill) and, when it changed, written
 * to credit_balances (apikeys_internal._credits_write), as the extension
 * owner in a subtransaction (ApikeysRunAsOwner).  An error (a
 * serialization failure in REPEATABLE READ, a lock timeout) refuses the
 * spend: never a free use.
 */
static void
CreditsSpendRow(const KeyInfo *key, int cost, TimestampTz now, CreditsOutcome *out)
{
	CreditsRowSpend sp = {.key = key,.cost = cost,.now = now};

	if (!ApikeysRunAsOwner(CreditsSpendRowLocked, &sp))
		sp.got = false;

	if (!sp.got)
	{
		StoredOutcome(key, cost, false, now, out);
		return;
	}
	out->ok = sp.ok;
	out->balance = sp.balance;
	out->retry_after = sp.ok ? 0 :
		RetryAfter(sp.period, key->refill_every_us, key->refill_amount, cost, now);
}

/*
 * CreditsCheck: the credit step of a verification of a key with credits
 * (key->has_credits).  spend: the verification is VALID so far, take cost
 * credits (or refuse: out->ok false, nothing taken); otherwise only report
 * the balance.  cost 0 (report_leaked's verification, never a caller's:
 * verify refuses it) spends nothing and is never refused, so a leaked key
 * can be reported whatever its balance.  may_write false (pre_request)
 * forbids the row update that a spend needs without shared memory.
 */
void
CreditsCheck(const KeyInfo *key, int cost, bool spend, TimestampTz now,
			 bool may_write, CreditsOutcome *out)
{
	Assert(key->has_credits);
	Assert(cost >= 0);
	if (cost == 0)
		spend = false;
	if (RecoveryInProgress())
	{
		/* a standby cannot record a spend: refuse (see the top) */
		StoredOutcome(key, cost, !spend, now, out);
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
		StoredOutcome(key, cost, !spend, now, out);
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
 * CreditsFlushDatabase writes this database's changed balances to
 * apikeys.credit_balances (apikeys_internal._credits_write), in the current
 * transaction, and drops
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

		plan = SPI_prepare("SELECT apikeys_internal._credits_write($1, $2, $3, $4, $5)", 5, types);
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

/* SQL function: apikeys_internal._credits_flush() returns bigint */
Datum
apikeys_credits_flush(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(CreditsFlushDatabase());
}

/*
 * SQL function: apikeys_internal._credits_balance(client_id text) returns bigint
 *
 * The balance a verification would see now, spending nothing: the shared
 * entry brought up to date with the key's row as this transaction sees it
 * (a top-up of this transaction counts, uncommitted, without changing the
 * entry), or where a verification would start from (LiveFromStored); NULL
 * for a key without credits.
 */
Datum
apikeys_credits_balance(PG_FUNCTION_ARGS)
{
	char	   *cid;
	KeyInfo		key;
	StoredBalance b;
	LiveBalance live;
	TimestampTz now;
	bool		found;

	/*
	 * Not declared STRICT: a strict call with a constant NULL would be folded
	 * away before its EXECUTE privilege is checked.
	 */
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	cid = text_to_cstring(PG_GETARG_TEXT_PP(0));
	now = GetCurrentTimestamp();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	found = ReadRowsSpi(cid, false, &key, &b);
	SPI_finish();
	if (!found || !key.has_credits)
		PG_RETURN_NULL();

	LiveFromStored(&key, &b, now, &live);
	if (ApikeysSharedReady() && !RecoveryInProgress())
	{
		CreditsTag	tag;
		uint32		hash;
		CreditsEntry *e;

		MakeTag(cid, &tag);
		hash = get_hash_value(credits_hash, &tag);
		LWLockAcquire(PartitionLock(hash), LW_SHARED);
		e = hash_search_with_hash_value(credits_hash, &tag, hash, HASH_FIND, NULL);
		if (e != NULL && e->seq >= key.credits_seq)
		{
			CreditsEntry copy = *e;

			EntryFollowRow(&copy, &key, now);
			live.balance = copy.balance;
			live.period = copy.period;
		}
		LWLockRelease(PartitionLock(hash));
	}
	(void) CreditsRefill(&live.balance, &live.period, key.refill_amount,
						 key.refill_every_us, now);
	PG_RETURN_INT64(live.balance);
}
