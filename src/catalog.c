/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Cached OIDs of the extension's tables.
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

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "catalog.h"

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
