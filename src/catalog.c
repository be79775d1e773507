/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Cached OIDs of the extension's tables, and reading their rows by
 *	  primary key.
 *
 * Verification runs on every request, so it must not look tables up by
 * name each time.  The OID of apikeys.keys is cached per backend and
 * forgotten on any relcache invalidation of that table (DROP EXTENSION,
 * ALTER TABLE) so a re-created extension is found again.  On first use
 * the column layout is checked against the constants in catalog.h, so a
 * mismatched install script fails loudly instead of reading wrong columns.
 *
 * IDENTIFICATION
 *	  src/catalog.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "compat.h"

static void IndexScanStart(PkScan *ps, Relation rel, Oid idxoid);

static Oid	keys_relid = InvalidOid;
static Oid	keys_relfilenode = InvalidOid;
static Oid	extension_owner = InvalidOid;
static TransactionId database_xmin = InvalidTransactionId;

static const char *const keys_columns[Natts_keys] = {
	"client_id", "owner", "name", "scopes", "secret_hash", "hash_alg",
	"expires_at", "created_at", "created_by", "disabled_at", "revoked_at",
	"prev_secret_hash", "prev_hash_alg", "prev_expires_at", "last_used_at",
	"description", "contact_email", "contact_phone", "allowed_cidrs",
	"metadata", "db_role", "rate_limit", "rate_window"
};

static const char *const keys_credit_columns[KEYS_CREDIT_COLUMNS] = {
	"credits", "refill_amount", "refill_every", "credits_refilled_at",
	"credits_seq", "credits_added"
};
static AttrNumber keys_credit_attnos[KEYS_CREDIT_COLUMNS];
static bool keys_have_credits = false;

/* InvalidateKeysRelid forgets cached OIDs when apikeys.keys changes shape. */
static void
InvalidateKeysRelid(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == keys_relid)
	{
		keys_relid = InvalidOid;
		keys_relfilenode = InvalidOid;
		extension_owner = InvalidOid;
	}
}

/* ApikeysCatalogInit registers the invalidation callback. */
void
ApikeysCatalogInit(void)
{
	CacheRegisterRelcacheCallback(InvalidateKeysRelid, (Datum) 0);
}

/*
 * ApikeysKeysRelid returns the OID of apikeys.keys, raising an error when
 * the extension is not installed in this database.
 */
Oid
ApikeysKeysRelid(void)
{
	Oid			nsp;
	Oid			relid;

	if (OidIsValid(keys_relid))
		return keys_relid;

	nsp = get_namespace_oid(APIKEYS_SCHEMA_NAME, true);
	relid = OidIsValid(nsp) ? get_relname_relid(APIKEYS_KEYS_TABLE, nsp) : InvalidOid;
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"apikeys\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION apikeys.")));

	for (int i = 0; i < Natts_keys; i++)
		if (get_attnum(relid, keys_columns[i]) != i + 1)
			elog(ERROR, "apikeys.keys column \"%s\" is not at position %d",
				 keys_columns[i], i + 1);

	keys_have_credits = true;
	for (int i = 0; i < KEYS_CREDIT_COLUMNS; i++)
	{
		keys_credit_attnos[i] = get_attnum(relid, keys_credit_columns[i]);
		if (keys_credit_attnos[i] == InvalidAttrNumber)
			keys_have_credits = false;
	}

	{
		HeapTuple	tp = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));

		if (!HeapTupleIsValid(tp))
			elog(ERROR, "cache lookup failed for relation %u", relid);
		keys_relfilenode = ((Form_pg_class) GETSTRUCT(tp))->relfilenode;
		ReleaseSysCache(tp);
	}
	keys_relid = relid;
	return relid;
}

/*
 * ApikeysKeysCreditColumns returns the attribute numbers of the credit
 * columns of apikeys.keys (indexed by KEYS_CREDITS ...), or NULL while the
 * table has none (the extension not yet updated to 1.1).
 */
const AttrNumber *
ApikeysKeysCreditColumns(void)
{
	(void) ApikeysKeysRelid();
	return keys_have_credits ? keys_credit_attnos : NULL;
}

/*
 * ApikeysKeysIdentity fills id with what tells this database's apikeys.keys
 * apart from every other table that ever had the same OIDs: the database
 * OID, the raw xmin of the database's pg_database row, the table's OID and
 * its relfilenode.
 *
 * Why each: PostgreSQL 15 lets a CREATEDB role re-create a dropped database
 * with the same OID (CREATE DATABASE ... OID n), and a database cloned from
 * the same template has the same table OIDs, so the OIDs alone may name a
 * table with other rows.  The new pg_database row has a new xmin (freezing
 * keeps the raw xmin; an ALTER DATABASE that rewrites the row gives a new
 * one, which only costs misses in backends that started before it).  A
 * rewrite of the table (ALTER TABLE ... TYPE ... USING, which fires no row
 * trigger) gives it a new relfilenode and sends a relcache invalidation,
 * which makes us read the new one.  VACUUM FULL and CLUSTER also give a new
 * relfilenode: that costs a refill, nothing more.
 *
 * Per backend, the database part is read once (a backend never changes
 * database) and the table part when the table's OID is looked up, so the
 * cost per verification is comparing four words.
 */
void
ApikeysKeysIdentity(ApikeysKeysId *id)
{
	id->relid = ApikeysKeysRelid();
	if (!TransactionIdIsValid(database_xmin))
	{
		HeapTuple	tp = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));

		if (!HeapTupleIsValid(tp))
			elog(ERROR, "cache lookup failed for database %u", MyDatabaseId);
		database_xmin = HeapTupleHeaderGetRawXmin(tp->t_data);
		ReleaseSysCache(tp);
	}
	id->dbid = MyDatabaseId;
	id->dbxmin = database_xmin;
	id->relfilenode = keys_relfilenode;
}

/* ApikeysExtensionOwner returns the role that owns the extension. */
Oid
ApikeysExtensionOwner(void)
{
	if (!OidIsValid(extension_owner))
	{
		Oid			relid = ApikeysKeysRelid();
		HeapTuple	tp = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));

		if (!HeapTupleIsValid(tp))
			elog(ERROR, "cache lookup failed for relation %u", relid);
		extension_owner = ((Form_pg_class) GETSTRUCT(tp))->relowner;
		ReleaseSysCache(tp);
	}
	return extension_owner;
}

/*
 * ApikeysBecomeOwner saves the current user and security context in saved
 * and runs on as the extension owner, in a restricted operation (no
 * SET ROLE, no temporary objects), as pg_cron writes its metadata: C code
 * that must write tables the caller cannot write directly.  Every caller
 * restores with ApikeysRestoreUser, on success and in its error path (an
 * error that reaches the transaction's end is restored by the abort).
 */
void
ApikeysBecomeOwner(ApikeysSavedUser *saved)
{
	Oid			owner = ApikeysExtensionOwner();

	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	SetUserIdAndSecContext(owner,
						   saved->sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

/* ApikeysRestoreUser goes back to the identity ApikeysBecomeOwner saved. */
void
ApikeysRestoreUser(const ApikeysSavedUser *saved)
{
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
}

/*
 * ApikeysRunAsOwner runs work(arg) in a subtransaction, as the extension
 * owner (ApikeysBecomeOwner), under apikeys.lock_timeout
 * (LookupLockTimeoutBegin) and connected to SPI: the one way C writes a
 * row the caller may not write (usage_lastused.c's last_used_at,
 * verify_credits.c's balance without shared memory).  Returns true when
 * work finished; false when it raised an error, which is then discarded
 * with the subtransaction (and everything work wrote): the caller decides
 * what a failed write means.  Either way the caller's user, memory context
 * and resource owner are back as they were.
 */
bool
ApikeysRunAsOwner(ApikeysOwnerWork work, void *arg)
{
	ApikeysSavedUser saved;
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool done = false;

	/* filled before PG_TRY, so the error path can always restore it */
	GetUserIdAndSecContext(&saved.userid, &saved.sec_context);
	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		ApikeysBecomeOwner(&saved);
		/* a table lock (CREATE INDEX's SHARE) must not hold the request */
		(void) LookupLockTimeoutBegin();	/* unwound with the subtransaction */
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		work(arg);
		SPI_finish();
		ApikeysRestoreUser(&saved);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		done = true;
	}
	PG_CATCH();
	{
		/* e.g. a serialization failure in REPEATABLE READ, a lock timeout */
		MemoryContextSwitchTo(oldcxt);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ApikeysRestoreUser(&saved);
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();
	return done;
}

/*
 * LookupLockTimeoutBegin lowers lock_timeout to apikeys.lock_timeout for
 * what follows, unless the session's own is shorter; returns the GUC nest
 * level to give LookupLockTimeoutEnd.  An error on the way unwinds it with
 * the (sub)transaction.  (Named for verify_lookup.c, where it began; also
 * ApikeysRunAsOwner's bound on its write.)
 */
int
LookupLockTimeoutBegin(void)
{
	int			nest = NewGUCNestLevel();

	if (apikeys_lock_timeout > 0 &&
		(LockTimeout == 0 || LockTimeout > apikeys_lock_timeout))
	{
		char		buf[32];

		snprintf(buf, sizeof(buf), "%d", apikeys_lock_timeout);
		(void) set_config_option("lock_timeout", buf, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}
	return nest;
}

void
LookupLockTimeoutEnd(int nest)
{
	AtEOXact_GUC(true, nest);
}

/*
 * ApikeysLockForRead takes AccessShareLock on relid: at once when nothing
 * conflicts (the usual case costs one lock-table probe), else waiting at
 * most apikeys.lock_timeout (then 55P03).  The one rule for every table
 * the verification path reads (apikeys.keys, scope_sets, owner_policies,
 * protected_tables): a conflicting lock (LOCK TABLE ... ACCESS EXCLUSIVE, a
 * long ALTER TABLE) must not hold requests for ever.  PkScanBegin and
 * IndexScanOpen take it.
 */
void
ApikeysLockForRead(Oid relid)
{
	int			nest;

	if (ConditionalLockRelationOid(relid, AccessShareLock))
		return;
	nest = LookupLockTimeoutBegin();
	LockRelationOid(relid, AccessShareLock);
	LookupLockTimeoutEnd(nest);
}

/*
 * PkScanBegin opens relid and its primary-key index (one text column) for
 * PkScanFetch, with the latest snapshot: a change committed after the
 * calling statement began is seen, as verification must see a revoke at
 * once.  locked: the caller already holds AccessShareLock on relid;
 * otherwise it is taken here, by ApikeysLockForRead (apikeys.lock_timeout).
 * The one way the C code reads a row of the extension's tables by key
 * (verify_lookup.c, verify_ownerlimit.c, scopeset.c; IndexScanOpen, below, for another
 * index: verify_legacy.c, verify_ownerlimit.c); PkScanEnd releases everything.
 */
void
PkScanBegin(PkScan *ps, Oid relid, bool locked)
{
	Relation	rel;
	Oid			idxoid;

	if (!locked)
		ApikeysLockForRead(relid);
	rel = table_open(relid, NoLock);
	idxoid = ApikeysPrimaryKeyIndex(rel);
	if (!OidIsValid(idxoid))
		elog(ERROR, "table \"%s\" has no primary key", RelationGetRelationName(rel));
	IndexScanStart(ps, rel, idxoid);
	Assert(IndexRelationGetNumberOfKeyAttributes(ps->idx) == 1);
}

/* IndexScanStart: the index, snapshot and slot of a scan of rel (open). */
static void
IndexScanStart(PkScan *ps, Relation rel, Oid idxoid)
{
	ps->rel = rel;
	ps->idx = index_open(idxoid, AccessShareLock);
	ps->snapshot = RegisterSnapshot(GetLatestSnapshot());
	ps->slot = table_slot_create(ps->rel, NULL);
}

/*
 * IndexScanOpen is PkScanBegin for another index, idxoid, of relid: the
 * partial indexes that tell whether any imported key (verify_legacy.c) or any
 * owner rate limit (verify_ownerlimit.c) exists.  The table is locked by
 * ApikeysLockForRead.  Read with IndexScanFetch; PkScanEnd releases
 * everything.
 */
void
IndexScanOpen(PkScan *ps, Oid relid, Oid idxoid)
{
	ApikeysLockForRead(relid);
	IndexScanStart(ps, table_open(relid, NoLock), idxoid);
}

/*
 * IndexScanFetch returns ps->slot holding the first row the index has for
 * keys (nkeys of them, 0: any row), or NULL when there is none.
 */
TupleTableSlot *
IndexScanFetch(PkScan *ps, ScanKey keys, int nkeys)
{
	IndexScanDesc scan;
	bool		found;

	scan = ApikeysIndexBeginScan(ps->rel, ps->idx, ps->snapshot, nkeys);
	index_rescan(scan, keys, nkeys, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, ps->slot);
	index_endscan(scan);
	return found ? ps->slot : NULL;
}

/*
 * PkScanFetch finds the row whose key is key[0..len), compared with the
 * index's collation; returns ps->slot holding it (valid until the next
 * fetch or PkScanEnd), or NULL when there is none.
 */
TupleTableSlot *
PkScanFetch(PkScan *ps, const char *key, int len)
{
	ScanKeyData skey;
	text	   *t = cstring_to_text_with_len(key, len);
	TupleTableSlot *slot;

	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_TEXTEQ, PointerGetDatum(t));
	skey.sk_collation = ps->idx->rd_indcollation[0];
	slot = IndexScanFetch(ps, &skey, 1);
	pfree(t);
	return slot;
}

/* PkScanEnd releases what PkScanBegin took (the table's lock too). */
void
PkScanEnd(PkScan *ps)
{
	ExecDropSingleTupleTableSlot(ps->slot);
	UnregisterSnapshot(ps->snapshot);
	index_close(ps->idx, AccessShareLock);
	table_close(ps->rel, AccessShareLock);
}
