/*-------------------------------------------------------------------------
 *
 * verify_lookup.c
 *	  Finding a key's verification data by client ID.
 *
 * Verification reads apikeys.keys through its primary-key index directly
 * (table_open + index scan), not through SPI.  That skips parsing,
 * planning and the executor, and it needs no privilege on the table, so
 * apikeys_verifier can verify without being able to read a single hash.
 *
 * The scan uses the latest snapshot, not the statement's: a revoke,
 * disable or rotation that committed before this call is always seen,
 * even inside a REPEATABLE READ transaction that began earlier.  Our own
 * transaction's uncommitted changes are seen as well.
 *
 * A key's named scope sets ("@name") are expanded here, so everything
 * downstream (matching, the context, the shared cache) sees plain scopes.
 *
 * Locks.  An admin transaction that changed a key (or holds it FOR UPDATE)
 * holds a row lock, which a snapshot read never waits for: the lookup sees
 * the last committed row.  A table lock that conflicts with ours (LOCK
 * TABLE ... IN ACCESS EXCLUSIVE MODE, a long ALTER TABLE) would make every
 * verification that misses the cache wait for it, and a request wait for
 * ever: so we wait at most apikeys.lock_timeout (or the session's shorter
 * lock_timeout), then fail with PostgreSQL's lock timeout error (55P03).
 * Failing closed: verification never answers without reading the table.
 * The rule is catalog.c's ApikeysLockForRead, which PkScanBegin and
 * IndexScanOpen apply to every table the verification path reads
 * (apikeys.keys here and in verify_legacy.c, scope_sets, owner_policies, and
 * protected_tables at pre_request's role switch).
 *
 * IDENTIFICATION
 *	  src/verify_lookup.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_collation.h"
#include "executor/tuptable.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "verify_lookup.h"
#include "verify_ownerlimit.h"
#include "scopeset.h"

/* CopyHash copies a 32-byte bytea into dst; false when it has another size. */
static bool
CopyHash(Datum d, uint8 *dst)
{
	bytea	   *b = DatumGetByteaPP(d);

	if (VARSIZE_ANY_EXHDR(b) != APIKEYS_HASH_LEN)
		return false;
	memcpy(dst, VARDATA_ANY(b), APIKEYS_HASH_LEN);
	return true;
}

/*
 * KeyCreditsFromSlot reads the credit columns of a row (all values of the
 * slot deformed): has_credits stays false for a key without a balance, or
 * a table that has no credit columns yet.
 */
static void
KeyCreditsFromSlot(const Datum *v, const bool *n, KeyInfo *out)
{
	const AttrNumber *a = ApikeysKeysCreditColumns();

	if (a == NULL || n[a[KEYS_CREDITS] - 1])
		return;
	out->has_credits = true;
	out->credits = DatumGetInt64(v[a[KEYS_CREDITS] - 1]);
	if (!n[a[KEYS_REFILL_AMOUNT] - 1] && !n[a[KEYS_REFILL_EVERY] - 1])
	{
		out->refill_amount = DatumGetInt64(v[a[KEYS_REFILL_AMOUNT] - 1]);
		out->refill_every_us = IntervalUs(DatumGetIntervalP(v[a[KEYS_REFILL_EVERY] - 1]));
	}
	if (!n[a[KEYS_CREDITS_AT] - 1])
		out->credits_at = DatumGetTimestampTz(v[a[KEYS_CREDITS_AT] - 1]);
	out->credits_seq = DatumGetInt64(v[a[KEYS_CREDITS_SEQ] - 1]);
	out->credits_added = DatumGetInt64(v[a[KEYS_CREDITS_ADDED] - 1]);
}

/*
 * KeyLookup fills out with the key whose client ID is client_id[0..len).
 * Returns false when there is no such key.  Allocations are made in the
 * current memory context.
 */
bool
KeyLookup(const char *client_id, int len, KeyInfo *out)
{
	PkScan		ps;
	TupleTableSlot *slot;
	bool		found = false;

	PkScanBegin(&ps, ApikeysKeysRelid(), false);
	if ((slot = PkScanFetch(&ps, client_id, len)) != NULL)
	{
		Datum	   *v;
		bool	   *n;

		slot_getallattrs(slot);
		v = slot->tts_values;
		n = slot->tts_isnull;

		memset(out, 0, sizeof(KeyInfo));
		memcpy(out->client_id, client_id, len);
		out->client_id[len] = '\0';
		out->owner = TextDatumGetCString(v[Anum_keys_owner - 1]);
		out->name = TextDatumGetCString(v[Anum_keys_name - 1]);
		if (!n[Anum_keys_metadata - 1])
			out->metadata = DatumGetJsonbPCopy(v[Anum_keys_metadata - 1]);
		out->scopes = DatumGetArrayTypePCopy(v[Anum_keys_scopes - 1]);
		out->expires_at = DatumGetTimestampTz(v[Anum_keys_expires_at - 1]);
		out->disabled = !n[Anum_keys_disabled_at - 1];
		out->revoked = !n[Anum_keys_revoked_at - 1];
		out->hash_alg = DatumGetChar(v[Anum_keys_hash_alg - 1]);
		if (!CopyHash(v[Anum_keys_secret_hash - 1], out->hash))
			out->hash_alg = '\0';	/* never matches */
		if (!n[Anum_keys_prev_secret_hash - 1] && !n[Anum_keys_prev_expires_at - 1])
		{
			out->has_prev = CopyHash(v[Anum_keys_prev_secret_hash - 1], out->prev_hash);
			out->prev_hash_alg = n[Anum_keys_prev_hash_alg - 1] ? APIKEYS_HASH_SHA256 :
				DatumGetChar(v[Anum_keys_prev_hash_alg - 1]);
			out->prev_expires_at = DatumGetTimestampTz(v[Anum_keys_prev_expires_at - 1]);
		}
		if (!n[Anum_keys_allowed_cidrs - 1])
			out->allowed_cidrs = DatumGetArrayTypePCopy(v[Anum_keys_allowed_cidrs - 1]);
		if (!n[Anum_keys_db_role - 1])
			out->db_role = TextDatumGetCString(v[Anum_keys_db_role - 1]);
		if (!n[Anum_keys_rate_limit - 1])
		{
			Interval   *w = n[Anum_keys_rate_window - 1] ? NULL :
			DatumGetIntervalP(v[Anum_keys_rate_window - 1]);

			out->rate_limit = DatumGetInt32(v[Anum_keys_rate_limit - 1]);
			out->rate_window_us = w ? IntervalUs(w) : 60 * USECS_PER_SEC;
		}
		if (!n[Anum_keys_last_used_at - 1])
		{
			out->has_last_used = true;
			out->last_used_at = DatumGetTimestampTz(v[Anum_keys_last_used_at - 1]);
		}
		KeyCreditsFromSlot(v, n, out);
		KeyOriginFromSlot(slot, &out->origin);
		found = true;
	}

	PkScanEnd(&ps);

	/* "@name" scopes become the set's scopes (scopeset.c), once, here */
	if (found)
	{
		ArrayType  *raw = out->scopes;

		out->scopes = ScopeSetExpand(raw);
		if (out->scopes != raw)
			out->origin.valid = false;	/* the set's rows are not the key's */
	}
	return found;
}
