/*-------------------------------------------------------------------------
 *
 * usage_lastused.c
 *	  The non-preloaded last_used_at write.
 *
 * Without shared_preload_libraries nothing is shared, so usage cannot be
 * counted and flushed (usage_counters.c, usage_journal.c); the one thing kept is
 * apikeys.keys.last_used_at, written directly by the verification.
 * Hand-rolled key tables do that with an UPDATE per request: a row
 * version and WAL per request, a row lock that serialises requests on a
 * hot key, and an error in READ ONLY transactions and on hot standbys.
 * Here it is written at most once per key per
 * apikeys.last_used_granularity, only from a read-write transaction on a
 * primary, never when the caller says it must write nothing
 * (pre_request), as the extension owner, with FOR UPDATE SKIP LOCKED so a
 * verification never waits for a row lock, under apikeys.lock_timeout so
 * it never waits long for a table lock, inside a subtransaction so that a
 * failure there never fails the verification.
 *
 * A leaf: calls catalog.c (ApikeysRunAsOwner: the owner, the lock timeout,
 * the subtransaction).
 *
 * IDENTIFICATION
 *	  src/usage_lastused.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "usage_lastused.h"

/* What LastUsedWrite does as the extension owner. */
typedef struct LastUsedWrite
{
	const KeyInfo *key;
	TimestampTz now;
	int64		gran;
} LastUsedWrite;

/* LastUsedUpdate: the UPDATE itself, run by ApikeysRunAsOwner. */
static void
LastUsedUpdate(void *arg)
{
	static SPIPlanPtr plan = NULL;
	LastUsedWrite *w = (LastUsedWrite *) arg;
	Datum		args[3];

	if (plan == NULL)
	{
		Oid			types[3] = {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
		SPIPlanPtr	p = SPI_prepare(
									"UPDATE apikeys.keys k SET last_used_at = $2 "
									"  FROM (SELECT l.client_id FROM apikeys.keys l "
									"         WHERE l.client_id OPERATOR(pg_catalog.=) $1 "
									"           AND (l.last_used_at IS NULL OR l.last_used_at OPERATOR(pg_catalog.<) $3) "
									"         FOR UPDATE SKIP LOCKED) s "
									" WHERE k.client_id OPERATOR(pg_catalog.=) s.client_id",
									3, types);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "could not prepare the last-used update");
		plan = p;
	}
	args[0] = CStringGetTextDatum(w->key->client_id);
	args[1] = TimestampTzGetDatum(w->now);
	args[2] = TimestampTzGetDatum(w->now - w->gran);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "last-used update failed");
}

/*
 * LastUsedWriteDirect writes key's last_used_at = now, unless it was
 * written less than apikeys.last_used_granularity ago or the transaction
 * cannot write (read-only, recovery, parallel mode).  Never raises: a
 * failed write (a serialization failure in REPEATABLE READ, a lock
 * timeout) is skipped.
 */
void
LastUsedWriteDirect(const KeyInfo *key, TimestampTz now)
{
	LastUsedWrite w;

	w.key = key;
	w.now = now;
	w.gran = (int64) apikeys_last_used_granularity * USECS_PER_SEC;
	if (XactReadOnly || RecoveryInProgress() || IsInParallelMode())
		return;
	if (key->has_last_used && now - key->last_used_at < w.gran)
		return;
	(void) ApikeysRunAsOwner(LastUsedUpdate, &w);
}
