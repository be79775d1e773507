/*-------------------------------------------------------------------------
 *
 * legacy.c
 *	  Imported keys: finding a legacy token by the SHA-256 of the token.
 *
 * apikeys.import_key stores a key an adopter already issued as the
 * SHA-256 of its whole token (hash_alg 'l'), under a client ID of our
 * own.  A legacy token has no client ID to look the key up by, so
 * verification finds it through the partial unique index
 * keys_legacy_hash_idx on secret_hash WHERE hash_alg = 'l', then judges
 * it like any key (verify.c), by that client ID.
 *
 * Most databases hold no imported key, and there a string that is not in
 * apikeys' token format must stay MALFORMED without touching a table.  So
 * each backend remembers whether the index holds any entry (one probe of
 * an index that is usually empty), and forgets it on a relcache
 * invalidation of apikeys.keys, which the row trigger keys_legacy_cache
 * sends whenever a row with hash_alg 'l' is inserted or deleted, or its
 * hash_alg changes to or from 'l' (rotation):
 * every connection sees the change at its next transaction after the
 * commit, a hot standby too (invalidations are replayed from the WAL),
 * and the changing transaction at once.
 *
 * IDENTIFICATION
 *	  src/legacy.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "compat.h"
#include "legacy.h"

#define LEGACY_INDEX	"keys_legacy_hash_idx"

/* -1 not known yet, 0 no imported key, 1 some */
static int	any_legacy = -1;
static Oid	legacy_keys_relid = InvalidOid;
static bool callback_registered = false;

/* ForgetLegacy: the relcache callback; any change of apikeys.keys may be one */
static void
ForgetLegacy(Datum arg, Oid relid)
{
	if (relid != InvalidOid && relid != legacy_keys_relid)
		return;
	any_legacy = -1;
}

/*
 * LegacyScan probes keys_legacy_hash_idx with the latest snapshot: for the
 * given hash (client_id filled when found), or for any entry (hash NULL).
 */
static bool
LegacyScan(const uint8 *hash, char *client_id, int *cid_len)
{
	Oid			relid = ApikeysKeysRelid();
	Oid			idxoid;
	Relation	rel;
	Relation	idx;
	Snapshot	snapshot;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData skey;
	bytea	   *key_bytea = NULL;
	bool		found;

	if (!OidIsValid(relid))
		return false;
	legacy_keys_relid = relid;
	idxoid = get_relname_relid(LEGACY_INDEX, get_rel_namespace(relid));
	if (!OidIsValid(idxoid))
		return false;			/* an installation without imports */

	rel = table_open(relid, AccessShareLock);
	idx = index_open(idxoid, AccessShareLock);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	slot = table_slot_create(rel, NULL);
	if (hash != NULL)
	{
		key_bytea = (bytea *) palloc(VARHDRSZ + APIKEYS_HASH_LEN);
		SET_VARSIZE(key_bytea, VARHDRSZ + APIKEYS_HASH_LEN);
		memcpy(VARDATA(key_bytea), hash, APIKEYS_HASH_LEN);
		ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_BYTEAEQ,
					PointerGetDatum(key_bytea));
		scan = ApikeysIndexBeginScan(rel, idx, snapshot, 1);
		index_rescan(scan, &skey, 1, NULL, 0);
	}
	else
	{
		scan = ApikeysIndexBeginScan(rel, idx, snapshot, 0);
		index_rescan(scan, NULL, 0, NULL, 0);
	}
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	if (found && hash != NULL)
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, Anum_keys_client_id, &isnull);
		text	   *t = DatumGetTextPP(d);
		int			len = VARSIZE_ANY_EXHDR(t);

		if (isnull || len > APIKEYS_CLIENT_ID_MAXLEN)
			found = false;
		else
		{
			memcpy(client_id, VARDATA_ANY(t), len);
			client_id[len] = '\0';
			*cid_len = len;
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	if (key_bytea != NULL)
		pfree(key_bytea);
	return found;
}

/*
 * LegacyImportsExist: does this database hold any imported key (live or
 * not)?  Read once after each change of one.
 */
bool
LegacyImportsExist(void)
{
	bool		found;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(ForgetLegacy, (Datum) 0);
		callback_registered = true;
	}
	if (any_legacy >= 0)
		return any_legacy != 0;
	found = LegacyScan(NULL, NULL, NULL);
	/* the locks above processed pending invalidations: this is current */
	any_legacy = found ? 1 : 0;
	return found;
}

/*
 * LegacyLookup finds the imported key whose legacy hash is hash; client_id
 * (APIKEYS_CLIENT_ID_MAXLEN + 1 bytes) receives its client ID.
 */
bool
LegacyLookup(const uint8 *hash, char *client_id, int *cid_len)
{
	return LegacyScan(hash, client_id, cid_len);
}

PG_FUNCTION_INFO_V1(apikeys_keys_legacy_cache_trigger);

/*
 * SQL function: apikeys._keys_legacy_cache_trigger() returns trigger
 *
 * AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW on apikeys.keys, WHEN the
 * row is or was an imported key: a relcache invalidation of the table, so
 * every backend reads LegacyImportsExist again.
 */
Datum
apikeys_keys_legacy_cache_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	TupleDesc	desc;
	bool		isnull;
	char		before = '\0';
	char		after = '\0';

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "apikeys._keys_legacy_cache_trigger must be an AFTER ROW trigger");
	desc = RelationGetDescr(td->tg_relation);
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		after = DatumGetChar(heap_getattr(td->tg_trigtuple, Anum_keys_hash_alg, desc, &isnull));
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		before = DatumGetChar(heap_getattr(td->tg_trigtuple, Anum_keys_hash_alg, desc, &isnull));
	else
	{
		before = DatumGetChar(heap_getattr(td->tg_trigtuple, Anum_keys_hash_alg, desc, &isnull));
		after = DatumGetChar(heap_getattr(td->tg_newtuple, Anum_keys_hash_alg, desc, &isnull));
	}
	/* only an imported key coming or going changes the answer */
	if (before != after &&
		(before == APIKEYS_HASH_LEGACY || after == APIKEYS_HASH_LEGACY))
		CacheInvalidateRelcache(td->tg_relation);
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(apikeys_legacy_token_max_length);

/* SQL function: apikeys._legacy_token_max_length() returns integer */
Datum
apikeys_legacy_token_max_length(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(APIKEYS_LEGACY_TOKEN_MAXLEN);
}
