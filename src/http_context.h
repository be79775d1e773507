/*-------------------------------------------------------------------------
 *
 * http_context.h
 *	  The transaction-scoped, unforgeable request context.
 *
 * IDENTIFICATION
 *	  src/http_context.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_HTTP_CONTEXT_H
#define APIKEYS_HTTP_CONTEXT_H

#include "verify.h"

extern void ContextSet(const VerifyResult *res);
extern void ContextClear(void);
extern bool ContextGet(const char **client_id, ArrayType **scopes, bool *derived);
extern void ContextRaiseFailure(const VerifyResult *res);

#endif							/* APIKEYS_HTTP_CONTEXT_H */
