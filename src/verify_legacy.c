/*-------------------------------------------------------------------------
 *
 * verify_legacy.c
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
 * Both probes lock apikeys.keys as every lookup does (ApikeysLockForRead
 * in catalog.c, through IndexScanOpen): under a conflicting table lock an
 * imported token fails after apikeys.lock_timeout with 55P03, exactly as a
 * native one does.
 *
 * Rotation with a grace period.  rotate_key moves the legacy hash to
 * prev_secret_hash (prev_hash_alg 'l') and the legacy token keeps working
 * until prev_expires_at, as a native key's previous secret does: a token
 * not found by keys_legacy_hash_idx is looked up again in the partial
 * index keys_legacy_prev_hash_idx, and the key then judged by its client
 * ID (verify.c's JudgeKey knows the previous hash is a legacy one, and
 * answers EXPIRED once the grace has passed).  Such a row counts as an
 * imported key for the flag above, and the trigger treats a change of
 * either column alike.
 *
 * IDENTIFICATION
 *	  src/verify_legacy.c
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
#include "verify_legacy.h"

#define LEGACY_INDEX	"keys_legacy_hash_idx"
#define LEGACY_PREV_INDEX	"keys_legacy_prev_hash_idx"

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
 * LegacyScan probes the index index_name (keys_legacy_hash_idx or
 * keys_legacy_prev_hash_idx) with the latest snapshot: for the given hash
 * (client_id filled when found), or for any entry (hash NULL).
 */
static bool
LegacyScan(const char *index_name, const uint8 *hash, char *client_id, int *cid_len)
{
	Oid			relid = ApikeysKeysRelid();
	Oid			idxoid;
	PkScan		ps;
	TupleTableSlot *slot;
	ScanKeyData skey;
	bytea	   *key_bytea = NULL;

	if (!OidIsValid(relid))
		return false;
	legacy_keys_relid = relid;
	idxoid = get_relname_relid(index_name, get_rel_namespace(relid));
	if (!OidIsValid(idxoid))
		return false;			/* an installation without imports */

	/* locked as every lookup is: wait at most apikeys.lock_timeout */
	IndexScanOpen(&ps, relid, idxoid);
	if (hash != NULL)
	{
		key_bytea = (bytea *) palloc(VARHDRSZ + APIKEYS_HASH_LEN);
		SET_VARSIZE(key_bytea, VARHDRSZ + APIKEYS_HASH_LEN);
		memcpy(VARDATA(key_bytea), hash, APIKEYS_HASH_LEN);
		ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_BYTEAEQ,
					PointerGetDatum(key_bytea));
		slot = IndexScanFetch(&ps, &skey, 1);
	}
	else
		slot = IndexScanFetch(&ps, NULL, 0);
	if (slot != NULL && hash != NULL)
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, Anum_keys_client_id, &isnull);
		text	   *t = DatumGetTextPP(d);
		int			len = VARSIZE_ANY_EXHDR(t);

		if (isnull || len > APIKEYS_CLIENT_ID_MAXLEN)
			slot = NULL;
		else
		{
			memcpy(client_id, VARDATA_ANY(t), len);
			client_id[len] = '\0';
			*cid_len = len;
		}
	}
	PkScanEnd(&ps);
	if (key_bytea != NULL)
		pfree(key_bytea);
	return slot != NULL;
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
	found = LegacyScan(LEGACY_INDEX, NULL, NULL, NULL) ||
		LegacyScan(LEGACY_PREV_INDEX, NULL, NULL, NULL);
	/* the locks above processed pending invalidations: this is current */
	any_legacy = found ? 1 : 0;
	return found;
}

/*
 * LegacyLookup finds the imported key whose legacy hash is hash, or else
 * the key rotated away from it (its previous hash: JudgeKey decides whether
 * the grace still holds); client_id (APIKEYS_CLIENT_ID_MAXLEN + 1 bytes)
 * receives its client ID.
 */
bool
LegacyLookup(const uint8 *hash, char *client_id, int *cid_len)
{
	return LegacyScan(LEGACY_INDEX, hash, client_id, cid_len) ||
		LegacyScan(LEGACY_PREV_INDEX, hash, client_id, cid_len);
}

/* LegacyAlgs reads a keys row's hash_alg and prev_hash_alg ('\0' for NULL). */
static void
LegacyAlgs(HeapTuple tuple, TupleDesc desc, char *alg, char *prev_alg)
{
	bool		isnull;
	Datum		d;

	d = heap_getattr(tuple, Anum_keys_hash_alg, desc, &isnull);
	*alg = isnull ? '\0' : DatumGetChar(d);
	d = heap_getattr(tuple, Anum_keys_prev_hash_alg, desc, &isnull);
	*prev_alg = isnull ? '\0' : DatumGetChar(d);
}

PG_FUNCTION_INFO_V1(apikeys_keys_legacy_cache_trigger);

/*
 * SQL function: apikeys_internal._keys_legacy_cache_trigger() returns trigger
 *
 * AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW on apikeys.keys: when the
 * row's legacy hashes (hash_alg or prev_hash_alg 'l') come or go, a relcache
 * invalidation of the table, so every backend reads LegacyImportsExist
 * again.
 */
Datum
apikeys_keys_legacy_cache_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	TupleDesc	desc;
	char		before = '\0';
	char		after = '\0';
	char		prev_before = '\0';
	char		prev_after = '\0';

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "apikeys_internal._keys_legacy_cache_trigger must be an AFTER ROW trigger");
	desc = RelationGetDescr(td->tg_relation);
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		LegacyAlgs(td->tg_trigtuple, desc, &after, &prev_after);
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		LegacyAlgs(td->tg_trigtuple, desc, &before, &prev_before);
	else
	{
		LegacyAlgs(td->tg_trigtuple, desc, &before, &prev_before);
		LegacyAlgs(td->tg_newtuple, desc, &after, &prev_after);
	}
	/* only a legacy hash (current or previous) coming or going changes it */
	if ((before != after &&
		 (before == APIKEYS_HASH_LEGACY || after == APIKEYS_HASH_LEGACY)) ||
		(prev_before != prev_after &&
		 (prev_before == APIKEYS_HASH_LEGACY || prev_after == APIKEYS_HASH_LEGACY)))
		CacheInvalidateRelcache(td->tg_relation);
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(apikeys_legacy_token_max_length);

/* SQL function: apikeys_internal._legacy_token_max_length() returns integer */
Datum
apikeys_legacy_token_max_length(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(APIKEYS_LEGACY_TOKEN_MAXLEN);
}
