/*-------------------------------------------------------------------------
 *
 * verify_standby.h
 *	  Validating a shared-cache entry against the heap tuple it came from.
 *
 * IDENTIFICATION
 *	  src/verify_standby.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_VERIFY_STANDBY_H
#define APIKEYS_VERIFY_STANDBY_H

#include "executor/tuptable.h"
#include "storage/buf.h"
#include "storage/itemptr.h"
#include "utils/relcache.h"

/* Where a key's data was read from: one row version of apikeys.keys. */
typedef struct KeyOrigin
{
	ItemPointerData tid;		/* the row version's heap TID */
	bool		valid;			/* false: never validated (never a hit) */
	TransactionId xmin;			/* its raw xmin */
	Buffer		buffer;			/* the shared buffer that held it (a hint) */
} KeyOrigin;

extern void KeyOriginFromSlot(TupleTableSlot *slot, KeyOrigin *origin);
extern Relation KeyOriginLock(Oid relid);
extern void KeyOriginUnlock(Relation rel);
extern bool KeyOriginUnchanged(Relation rel, const KeyOrigin *origin,
							   Buffer *found_in);

#endif							/* APIKEYS_VERIFY_STANDBY_H */
