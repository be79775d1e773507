/*-------------------------------------------------------------------------
 *
 * verify_standby.c
 *	  The shared verification cache on a hot standby: entries validated
 *	  against the heap tuple they were filled from.
 *
 * On a primary the cache is kept fresh by the row trigger on apikeys.keys
 * and the generation protocol of verify_cache.c.  A hot standby replays the
 * primary's changes without firing any trigger, so that protocol cannot
 * run there.  Instead, an entry filled during recovery remembers the row
 * version it was read from (KeyOrigin: heap TID, raw xmin, and the shared
 * buffer that held the page), and every hit re-checks that row version in
 * the buffer before the entry is used:
 *
 *	  the block is read from the table's current relfilenode (usually
 *	  through ReadRecentBuffer: a pin of the remembered buffer, no
 *	  buffer-mapping lookup; if the page was evicted, an ordinary read of
 *	  that one block), and under a share content lock the line pointer is
 *	  LP_NORMAL, its tuple has the same raw xmin, and no xmax other than a
 *	  row lock (HEAP_XMAX_IS_LOCKED_ONLY).
 *
 * Anything else is a miss, which reads the table with a fresh snapshot
 * (verify_lookup.c), exactly what a standby did before it had a cache.
 *
 * Why this is exactly as fresh as reading the table.  Every change to a
 * key (UPDATE, DELETE, and so every revoke, disable, rotation, reset)
 * stamps the xmax of the row version that was current, and redo of that
 * heap record stamps it on the standby, under the buffer's exclusive
 * content lock, before redo reaches the transaction's commit record.  The
 * row version an entry was filled from was the current one for a fresh
 * snapshot at fill time; its content never changes afterwards (only hint
 * bits, xmax and freezing touch a tuple in place).  So if a change to the
 * key committed on the standby (its commit record replayed) before a
 * verification began, the check finds the xmax and misses; if the check
 * finds no xmax, no change of the key has even been replayed yet.  The
 * check is made at use, not at fill, so a fill racing with replay is
 * harmless: the next use sees the xmax.  An xmax of a transaction still
 * in progress or aborted also misses: that costs a lookup, never a stale
 * answer.  Updates of last_used_at alone (the primary's hourly rollup)
 * also make a new row version: one refill per key and rollup.
 *
 * Cases that could fool a weaker check:
 *	- HOT pruning: redo may turn the line pointer into a redirect, mark it
 *	  dead or unused; only LP_NORMAL with the same xmin passes.  A reused
 *	  line pointer holds a tuple of another transaction: the row version
 *	  we remember had a committed xmin X, and X, being finished, can insert
 *	  nothing more, so a tuple with xmin X in that slot is ours.  Freezing
 *	  keeps the raw xmin (PostgreSQL 9.4 and later); were it to change, the
 *	  check would only miss.
 *	- Full-page images replace the whole page with the primary's copy, in
 *	  which every change up to that LSN, xmax included, is present.
 *	- Relation rewrites (VACUUM FULL, CLUSTER, ALTER TABLE ... TYPE) give a
 *	  new relfilenode: the entry carries the old one (verify_cache.c's table
 *	  identity), and ReadRecentBuffer compares the buffer's tag with the
 *	  current one; we take AccessShareLock on the table first, which
 *	  processes pending relcache invalidations, so "current" is current.
 *	  Truncation by VACUUM or dropping the table drops the buffers, and the
 *	  hint then fails; a block past the end is a miss.  The lock also keeps
 *	  either from happening while we read the page; it is taken
 *	  conditionally, and a conflict is a miss.
 *	- Eviction of the page from shared buffers makes the hint fail: the
 *	  block is read again (RelationGetNumberOfBlocks first, so a truncated
 *	  table is a miss, never an error).
 *	- A key whose scopes name a scope set holds the set expanded; a change
 *	  to apikeys.scope_sets touches no key row, so such keys are never
 *	  cached during recovery (they read the table each time).
 *	- Expiry and rotation grace are computed at each verification from the
 *	  row's timestamps; the pepper is applied to the presented secret and
 *	  is not part of an entry.
 *	- Promotion: entries filled during recovery carry generation 0, which
 *	  the primary protocol never issues (generations start at 1), so after
 *	  promotion they are never used and are replaced as keys are looked up.
 *	  A verification that began before promotion ends may still use the
 *	  standby check, which stays valid on a primary: an UPDATE stamps the
 *	  xmax before it commits there too.
 *
 * No WAL of our own and no resource manager: a standby without the
 * library (or not preloaded) simply reads the table.
 *
 * IDENTIFICATION
 *	  src/verify_standby.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "storage/lmgr.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "compat.h"
#include "verify_standby.h"

/*
 * KeyOriginFromSlot records where the tuple in slot (from an index scan of
 * apikeys.keys, still pinned) lives; origin->valid stays false when the
 * slot holds no shared-buffer heap tuple.
 */
void
KeyOriginFromSlot(TupleTableSlot *slot, KeyOrigin *origin)
{
	BufferHeapTupleTableSlot *bslot = (BufferHeapTupleTableSlot *) slot;

	memset(origin, 0, sizeof(KeyOrigin));
	if (!TTS_IS_BUFFERTUPLE(slot) || bslot->base.tuple == NULL ||
		!BufferIsValid(bslot->buffer) || BufferIsLocal(bslot->buffer))
		return;
	origin->tid = slot->tts_tid;
	origin->xmin = HeapTupleHeaderGetRawXmin(bslot->base.tuple->t_data);
	origin->buffer = bslot->buffer;
	origin->valid = TransactionIdIsNormal(origin->xmin);
}

/*
 * KeyOriginLock takes AccessShareLock on relid without waiting, which also
 * processes pending invalidations, and returns the table, open.  NULL (and
 * no lock held) when the lock is not free at once or the table is gone:
 * the caller reads the table instead.
 */
Relation
KeyOriginLock(Oid relid)
{
	Relation	rel;

	if (!ConditionalLockRelationOid(relid, AccessShareLock))
		return NULL;
	rel = RelationIdGetRelation(relid);
	if (rel == NULL)
		UnlockRelationOid(relid, AccessShareLock);
	return rel;
}

/* KeyOriginUnlock closes and unlocks what KeyOriginLock returned. */
void
KeyOriginUnlock(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);

	RelationClose(rel);
	UnlockRelationOid(relid, AccessShareLock);
}

/*
 * KeyOriginUnchanged: is the row version origin names still in rnode's
 * buffer, unchanged and neither updated nor deleted (committed or not)?
 * See the top of this file.  The caller holds KeyOriginLock.  *found_in is
 * set to the buffer the page was found in (InvalidBuffer if none), which
 * differs from origin->buffer when the page had been evicted and read
 * again: the caller may remember it for the next check.
 */
bool
KeyOriginUnchanged(Relation rel, const KeyOrigin *origin, Buffer *found_in)
{
	Buffer		buf = origin->buffer;
	BlockNumber blk = ItemPointerGetBlockNumberNoCheck(&origin->tid);
	OffsetNumber off = ItemPointerGetOffsetNumberNoCheck(&origin->tid);
	bool		ok = false;
	Page		page;

	*found_in = InvalidBuffer;
	Assert(CheckRelationLockedByMe(rel, AccessShareLock, true));
	if (!origin->valid)
		return false;
	if (buf < 1 || buf > NBuffers ||
		!ReadRecentBuffer(ApikeysRelationFile(rel), MAIN_FORKNUM, blk, buf))
	{
		/* evicted (or never a shared buffer): read the block, if it exists */
		if (blk >= RelationGetNumberOfBlocks(rel))
			return false;
		buf = ReadBufferExtended(rel, MAIN_FORKNUM, blk, RBM_NORMAL, NULL);
	}

	*found_in = buf;
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (off >= FirstOffsetNumber && off <= PageGetMaxOffsetNumber(page))
	{
		ItemId		lp = PageGetItemId(page, off);

		if (ItemIdIsNormal(lp))
		{
			HeapTupleHeader htup = (HeapTupleHeader) PageGetItem(page, lp);

			ok = HeapTupleHeaderGetRawXmin(htup) == origin->xmin &&
				(!TransactionIdIsValid(HeapTupleHeaderGetRawXmax(htup)) ||
				 HEAP_XMAX_IS_LOCKED_ONLY(htup->t_infomask));
		}
	}
	UnlockReleaseBuffer(buf);
	return ok;
}
