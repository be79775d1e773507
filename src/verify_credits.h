/*-------------------------------------------------------------------------
 *
 * verify_credits.h
 *	  Usage credits: a key's balance, its lazy refill, the spend of one
 *	  verification, and the flush of balances held in shared memory.
 *
 * IDENTIFICATION
 *	  src/verify_credits.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_VERIFY_CREDITS_H
#define APIKEYS_VERIFY_CREDITS_H

#include "verify_lookup.h"

/* What a credit check found. */
typedef struct CreditsOutcome
{
	bool		ok;				/* spent (or, not spending, nothing to say) */
	int64		balance;		/* what remains */
	int			retry_after;	/* seconds to the next refill; 0: none */
} CreditsOutcome;

extern void CreditsShmemRequest(void);
extern void CreditsShmemInit(void);
extern void CreditsCheck(const KeyInfo *key, int cost, bool spend,
						 TimestampTz now, bool may_write, CreditsOutcome *out);
extern int64 CreditsFlushDatabase(void);

#endif							/* APIKEYS_VERIFY_CREDITS_H */
