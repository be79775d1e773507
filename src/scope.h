/*-------------------------------------------------------------------------
 *
 * scope.h
 *	  Scope grammar, parser and matcher.
 *
 * IDENTIFICATION
 *	  src/scope.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_SCOPE_H
#define APIKEYS_SCOPE_H

#include "apikeys.h"
#include "utils/array.h"

#define APIKEYS_SCOPE_MAXLEN		256
#define APIKEYS_SCOPE_MAXFIELDS		64
#define APIKEYS_SCOPE_SET_MAXLEN	63	/* of a set's name, without the @ */

/*
 * The resource whose scopes let a key manage keys (apikeys:read, :create,
 * :update, :delete).  A field list on it would restrict nothing the
 * self-service functions look at, so the grammar refuses one rather than
 * accept and ignore it.
 */
#define APIKEYS_RESERVED_RESOURCE	"apikeys"

typedef struct ScopeSpan
{
	const char *p;
	int			len;
} ScopeSpan;

/* A parsed scope; spans point into the parsed string. */
typedef struct Scope
{
	bool		all;			/* the lone "*" */
	bool		set;			/* "@name": a scope set named by resource */
	ScopeSpan	resource;
	ScopeSpan	action;			/* "*" matches every action */
	int			nfields;		/* 0: every field */
	ScopeSpan	fields[APIKEYS_SCOPE_MAXFIELDS];
} Scope;

extern bool ScopeParse(const char *s, size_t len, Scope *out, const char **why);
extern void ScopeParseOrError(const char *s, size_t len, Scope *out);
extern bool ScopeGrants(const Scope *granted, const Scope *required);
extern bool ScopeArrayGrants(ArrayType *granted, const Scope *required);
extern bool ScopeArrayHasSet(ArrayType *scopes);
extern text *ScopeCanonical(Scope *s);
extern bool ScopeArrayCovers(ArrayType *granted, const Scope *required);
extern bool ScopeArrayAllowsField(ArrayType *granted, const char *resource,
								  size_t rlen, const char *field, size_t flen);

#endif							/* APIKEYS_SCOPE_H */
