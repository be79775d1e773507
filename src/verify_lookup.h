/*-------------------------------------------------------------------------
 *
 * verify_lookup.h
 *	  Finding a key's verification data by client ID.
 *
 * IDENTIFICATION
 *	  src/verify_lookup.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_VERIFY_LOOKUP_H
#define APIKEYS_VERIFY_LOOKUP_H

#include "apikeys.h"
#include "verify_standby.h"
#include "utils/array.h"
#include "utils/jsonb.h"

/* What verification needs to know of one key. */
typedef struct KeyInfo
{
	char		client_id[APIKEYS_CLIENT_ID_MAXLEN + 1];
	char	   *owner;
	char	   *name;			/* the key's name (for the verification row) */
	Jsonb	   *metadata;		/* its metadata; NULL: none */
	ArrayType  *scopes;			/* apikeys.scope[] */
	TimestampTz expires_at;
	bool		disabled;
	bool		revoked;
	char		hash_alg;
	uint8		hash[APIKEYS_HASH_LEN];
	bool		has_prev;		/* rotation grace: the previous secret */
	char		prev_hash_alg;
	uint8		prev_hash[APIKEYS_HASH_LEN];
	TimestampTz prev_expires_at;
	ArrayType  *allowed_cidrs;	/* NULL: any address */
	char	   *db_role;		/* NULL: none */
	int32		rate_limit;		/* 0: none */
	int64		rate_window_us;
	bool		has_last_used;
	TimestampTz last_used_at;
	bool		has_credits;	/* a balance (verify_credits.c); else
								 * unlimited */
	int64		credits;		/* the balance as the row holds it */
	int64		refill_amount;	/* 0: no refill */
	int64		refill_every_us;
	TimestampTz credits_at;		/* start of the refill period */
	int64		credits_seq;	/* times an admin set the balance */
	int64		credits_added;	/* credits add_credits ever gave */
	KeyOrigin	origin;			/* the row version read (verify_standby.c) */
} KeyInfo;

extern bool KeyLookup(const char *client_id, int len, KeyInfo *out);

#endif							/* APIKEYS_VERIFY_LOOKUP_H */
