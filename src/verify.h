/*-------------------------------------------------------------------------
 *
 * verify.h
 *	  Verification of tokens and client ID / secret pairs.
 *
 * IDENTIFICATION
 *	  src/verify.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_VERIFY_H
#define APIKEYS_VERIFY_H

#include "apikeys.h"
#include "fmgr.h"
#include "verify_lookup.h"
#include "scope.h"
#include "token.h"

typedef struct VerifyResult
{
	ApikeysCode code;
	bool		have_key;		/* the secret matched: key fields are set */
	bool		secret_live;	/* it is the current secret, or the previous
								 * one within its grace */
	bool		derived;		/* a derived token: key.scopes and
								 * key.expires_at are the token's */
	KeyInfo		key;
	int			retry_after;	/* seconds, for RATE_LIMITED */
	int32		rate_limit;		/* the key's limit (0: none) */
	bool		rate_known;		/* its window was consulted: the next two set */
	int32		rate_remaining; /* requests left in the window */
	TimestampTz rate_reset;		/* when the window ends */
	bool		credits_known;	/* the key has credits: the next one is set */
	int64		credits_remaining;	/* its balance after this verification */
} VerifyResult;

extern void VerifyCredentials(const char *client_id, int cid_len,
							  const char *secret, int secret_len,
							  const Scope *required,
							  bool ip_known, Datum client_ip,
							  bool may_write, int cost, VerifyResult *res);

/* what a presented token is: one classifier for verification and import */
typedef enum TokenKind
{
	TOKEN_JUNK,					/* empty, or too long for a legacy token */
	TOKEN_DERIVED,				/* shaped like a derived token */
	TOKEN_NATIVE,				/* a well-formed apikeys token */
	TOKEN_LEGACY,				/* anything else: looked up as imported */
	TOKEN_MISTYPED				/* an apikeys token of a configured prefix,
								 * but its checksum fails */
} TokenKind;

extern TokenKind TokenClassify(const char *s, int len, ParsedToken *pt);
extern void VerifyToken(text *token, bool derived_ok, const Scope *required,
						bool ip_known, Datum client_ip, bool may_write,
						int cost, VerifyResult *res);
extern void VerifyClientSecret(const char *client_id, int cid_len,
							   const char *secret, int secret_len,
							   const Scope *required,
							   bool ip_known, Datum client_ip,
							   bool may_write, int cost, VerifyResult *res);
extern int	ApikeysHttpStatus(ApikeysCode code);
extern bool ConnectionAddress(Datum *addr);
extern bool RequestClientAddress(Datum *addr);	/* http_postgrest.c */
extern const Scope *VerifyRequiredScopeArg(FunctionCallInfo fcinfo, int argno, Scope *buf);
extern bool VerifyClientAddressArg(FunctionCallInfo fcinfo, int argno, Datum *addr);
extern Datum VerificationDatum(FunctionCallInfo fcinfo, VerifyResult *r);
extern void VerifyTokenArgs(FunctionCallInfo fcinfo, VerifyResult *res);

#endif							/* APIKEYS_VERIFY_H */
