/*-------------------------------------------------------------------------
 *
 * scope.c
 *	  The apikeys.scope type: grammar, canonical form and matching.
 *
 * A scope is one of
 *		*								full access
 *		resource:*						every action on resource, every field
 *		resource:action					one action, every field
 *		resource:action(field, ...)		one action, only those fields
 *		@name							a named scope set (apikeys.scope_sets)
 * resource is [a-z0-9_./-]+, action a lowercase word ([a-z][a-z_]*), field
 * [a-z_][a-z0-9_]*.  The standard actions are create, read, update,
 * delete and download, but any lowercase word is accepted so products can
 * add their own ("approve", "export").
 *
 * Matching (does a key holding "granted" satisfy "required"?):
 * - "*" grants everything; nothing but "*" grants "*".
 * - The resource must be equal: there is no hierarchy, so "a" does not
 *   grant "a/b".  Explicit beats clever for a security boundary.
 * - "res:*" grants any action, and any field, on res; "res:*" is required
 *   only by itself or "*".
 * - "res:act" grants "res:act" and "res:act(any fields)".
 * - "res:act(a,b)" grants "res:act" (the key may use the action, limited to
 *   those fields) and "res:act(f,...)" when every f is in {a, b}.
 * - "@name" matches nothing here, either way: a key's sets are replaced by
 *   their scopes when the key is loaded for verification (scopeset.c), and
 *   the no-escalation check expands them first as well.  An unexpanded set
 *   reference therefore fails closed.
 * Over a set of granted scopes a required field list is satisfied field by
 * field, so "r:read(a)" plus "r:read(b)" grant "r:read(a,b)", and a
 * field-less grant of an action wins over any field-limited one.
 *
 * The type stores the canonical text (no blanks, fields sorted and
 * deduplicated), so equality is byte equality and every stored scope has
 * already passed the grammar.
 *
 * IDENTIFICATION
 *	  src/scope.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "scope.h"

#define SCOPE_FORM_DETAIL "A scope has the form resource:action, resource:action(field, ...), resource:* or *."

static inline bool
IsLower(char c)
{
	return c >= 'a' && c <= 'z';
}

static inline bool
IsDigit(char c)
{
	return c >= '0' && c <= '9';
}

static inline bool
IsResourceChar(char c)
{
	return IsLower(c) || IsDigit(c) || c == '_' || c == '-' || c == '.' || c == '/';
}

static inline bool
SpanEq(const ScopeSpan *a, const ScopeSpan *b)
{
	return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

static inline bool
SpanIsStar(const ScopeSpan *a)
{
	return a->len == 1 && a->p[0] == '*';
}

/*
 * ScopeParse parses s[0..len) into out.  On failure returns false and sets
 * *why to a sentence for errdetail.  Over 100 lines on purpose: one pass
 * over the grammar (resource, ':', action, optional field list), each
 * rejection next to the character that causes it with its own errdetail
 * sentence; split into pieces it would need a cursor struct threaded
 * through them and read worse.
 */
bool
ScopeParse(const char *s, size_t len, Scope *out, const char **why)
{
	size_t		i = 0;

	memset(out, 0, offsetof(Scope, fields));
	*why = SCOPE_FORM_DETAIL;

	if (len == 0)
	{
		*why = "A scope cannot be empty.";
		return false;
	}
	if (len > APIKEYS_SCOPE_MAXLEN)
	{
		*why = "A scope is at most 256 characters long.";
		return false;
	}
	if (len == 1 && s[0] == '*')
	{
		out->all = true;
		return true;
	}

	/* @name: a named scope set; the name is [a-z][a-z0-9_]* */
	if (s[0] == '@')
	{
		out->set = true;
		out->resource.p = s + 1;
		out->resource.len = (int) (len - 1);
		if (len < 2 || !IsLower(s[1]))
		{
			*why = "A scope set name starts with a lowercase letter.";
			return false;
		}
		for (i = 2; i < len; i++)
			if (!(IsLower(s[i]) || IsDigit(s[i]) || s[i] == '_'))
			{
				*why = "A scope set name has only lowercase letters, digits and underscores.";
				return false;
			}
		if (len - 1 > APIKEYS_SCOPE_SET_MAXLEN)
		{
			*why = "A scope set name is at most 63 characters long.";
			return false;
		}
		return true;
	}

	/* resource */
	out->resource.p = s;
	while (i < len && IsResourceChar(s[i]))
		i++;
	out->resource.len = (int) i;
	if (i == 0 || i >= len || s[i] != ':')
	{
		if (i < len && s[i] >= 'A' && s[i] <= 'Z')
			*why = "Resources, actions and fields are lowercase.";
		return false;
	}
	i++;

	/* action */
	out->action.p = s + i;
	if (i < len && s[i] == '*')
		i++;
	else
	{
		if (i >= len || !IsLower(s[i]))
		{
			if (i < len && s[i] >= 'A' && s[i] <= 'Z')
				*why = "Resources, actions and fields are lowercase.";
			return false;
		}
		while (i < len && (IsLower(s[i]) || s[i] == '_'))
			i++;
	}
	out->action.len = (int) (s + i - out->action.p);

	if (i == len)
		return true;

	/* optional field list */
	if (s[i] != '(')
		return false;
	if (SpanIsStar(&out->action))
	{
		*why = "A field list cannot follow the action \"*\".";
		return false;
	}
	/* the reserved resource's scopes are all or nothing: see scope.h */
	if (out->resource.len == sizeof(APIKEYS_RESERVED_RESOURCE) - 1 &&
		memcmp(out->resource.p, APIKEYS_RESERVED_RESOURCE, out->resource.len) == 0)
	{
		*why = "The scopes of the reserved resource \"apikeys\" take no field list.";
		return false;
	}
	i++;
	for (;;)
	{
		ScopeSpan  *f;

		while (i < len && s[i] == ' ')
			i++;
		if (i >= len || !(IsLower(s[i]) || s[i] == '_'))
		{
			*why = "A field list holds one or more field names, separated by commas.";
			return false;
		}
		if (out->nfields >= APIKEYS_SCOPE_MAXFIELDS)
		{
			*why = "A scope names at most 64 fields.";
			return false;
		}
		f = &out->fields[out->nfields++];
		f->p = s + i;
		while (i < len && (IsLower(s[i]) || IsDigit(s[i]) || s[i] == '_'))
			i++;
		f->len = (int) (s + i - f->p);
		while (i < len && s[i] == ' ')
			i++;
		if (i < len && s[i] == ',')
		{
			i++;
			continue;
		}
		if (i < len && s[i] == ')' && i + 1 == len)
			return true;
		*why = "A field list holds one or more field names, separated by commas.";
		return false;
	}
}

/*
 * ScopeEchoable says whether an invalid scope may be quoted in an error.  A
 * token lands in a scope argument when arguments are swapped, and errors
 * reach clients and the server log, so only what is short and structured
 * is quoted: at most 64 bytes with no run of more than 24 letters, digits,
 * '_' or '-' (an apikeys token, whose client ID and secret are one such
 * run, a derived token's payload and signature, a hex or UUID key all are;
 * a resource or action name is shorter).
 */
static bool
ScopeEchoable(const char *s, size_t len)
{
	int			run = 0;

	if (len > 64)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		char		c = s[i];

		if (IsLower(c) || IsDigit(c) || (c >= 'A' && c <= 'Z') ||
			c == '_' || c == '-')
		{
			if (++run > 24)
				return false;
		}
		else
			run = 0;
	}
	return true;
}

/*
 * ScopeParseOrError parses a scope or raises 22023, naming it only when it
 * looks like a scope (ScopeEchoable): never a credential in an error.
 */
void
ScopeParseOrError(const char *s, size_t len, Scope *out)
{
	const char *why;

	if (ScopeParse(s, len, out, &why))
		return;
	if (ScopeEchoable(s, len))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid scope \"%.*s\"", (int) len, s),
				 errdetail("%s", why)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid scope"),
			 errdetail("%s The value is not shown: a long or unstructured value could be a credential.", why),
			 errhint("A scope is resource:action, such as \"api:read\"; check that a token was not passed where a scope is expected.")));
}

/* FieldIn says whether f is one of g's fields. */
static bool
FieldIn(const ScopeSpan *f, const Scope *g)
{
	for (int i = 0; i < g->nfields; i++)
		if (SpanEq(f, &g->fields[i]))
			return true;
	return false;
}

/*
 * ScopeGrantsAction says whether granted covers required's resource and
 * action, ignoring fields.
 */
static bool
ScopeGrantsAction(const Scope *granted, const Scope *required)
{
	/* set references are expanded before matching: unexpanded, fail closed */
	if (granted->set || required->set)
		return false;
	if (granted->all)
		return true;
	if (required->all)
		return false;
	if (!SpanEq(&granted->resource, &required->resource))
		return false;
	if (SpanIsStar(&granted->action))
		return true;
	if (SpanIsStar(&required->action))
		return false;
	return SpanEq(&granted->action, &required->action);
}

/* GrantCoversField: granted covers the action and (all fields or f). */
static bool
GrantCoversField(const Scope *granted, const Scope *required, const ScopeSpan *f)
{
	if (!ScopeGrantsAction(granted, required))
		return false;
	if (granted->all || SpanIsStar(&granted->action) || granted->nfields == 0)
		return true;
	return FieldIn(f, granted);
}

/* ScopeGrants: does one granted scope satisfy required? */
bool
ScopeGrants(const Scope *granted, const Scope *required)
{
	if (!ScopeGrantsAction(granted, required))
		return false;
	for (int i = 0; i < required->nfields; i++)
		if (!GrantCoversField(granted, required, &required->fields[i]))
			return false;
	return true;
}

/*
 * StoredScopeMayGrant: can the stored (canonical) scope s[0..len) grant
 * required's action at all?  Only "*" or a scope of required's resource
 * can, so the others need not be parsed (a key holds a dozen scopes; a
 * verification asks about one).  Conservative: true whenever unsure.
 */
static inline bool
StoredScopeMayGrant(const char *s, int len, const Scope *required)
{
	int			rlen = required->resource.len;

	if (required->all || required->set || (len == 1 && s[0] == '*'))
		return true;
	return len > rlen && s[rlen] == ':' &&
		memcmp(s, required->resource.p, rlen) == 0;
}

/*
 * ScopeArrayGrants: does a set of granted scopes (an apikeys.scope[] of
 * canonical, already validated strings) satisfy required?  Fields are
 * satisfied one by one across the set.  Only the scopes that may grant
 * are parsed (StoredScopeMayGrant).
 */
bool
ScopeArrayGrants(ArrayType *granted, const Scope *required)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int		   *cand;
	int			ncand = 0;
	Scope	   *parsed;
	int			nparsed = 0;
	bool		result = false;

	deconstruct_array(granted, ARR_ELEMTYPE(granted), -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	cand = palloc(sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		text	   *t;

		if (nulls[i])
			continue;
		t = DatumGetTextPP(elems[i]);
		if (StoredScopeMayGrant(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), required))
			cand[ncand++] = i;
	}
	/* a Scope is about 1 kB: allocate only for the candidates */
	parsed = palloc(sizeof(Scope) * Max(ncand, 1));
	for (int c = 0; c < ncand; c++)
	{
		text	   *t = DatumGetTextPP(elems[cand[c]]);
		const char *why;

		if (!ScopeParse(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &parsed[nparsed], &why))
			continue;			/* cannot happen for a stored scope */
		if (ScopeGrantsAction(&parsed[nparsed], required))
			nparsed++;
	}

	if (nparsed > 0)
	{
		result = true;
		for (int f = 0; f < required->nfields && result; f++)
		{
			bool		covered = false;

			for (int g = 0; g < nparsed && !covered; g++)
				covered = GrantCoversField(&parsed[g], required, &required->fields[f]);
			result = covered;
		}
	}
	pfree(parsed);
	pfree(cand);
	return result;
}

/*
 * ScopeArrayCovers: may a key holding granted give a key the scope
 * required?  Stricter than ScopeArrayGrants in one way only: a field-less
 * scope means every field, so it is covered only by a field-less grant of
 * the action ("res:act", "res:*" or "*"); "res:act(a,b)" lets its holder
 * use the action, but give it only with fields among a and b.  A field
 * list is covered field by field, as in ScopeArrayGrants.  This is the
 * subset test of the no-escalation rule (apikeys_internal._check_grant).
 */
bool
ScopeArrayCovers(ArrayType *granted, const Scope *required)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	bool		result = false;

	if (required->nfields > 0 || required->all || required->set ||
		SpanIsStar(&required->action))
		return ScopeArrayGrants(granted, required);

	deconstruct_array(granted, ARR_ELEMTYPE(granted), -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (int i = 0; i < n && !result; i++)
	{
		text	   *t;
		Scope		g;
		const char *why;

		if (nulls[i])
			continue;
		t = DatumGetTextPP(elems[i]);
		if (!ScopeParse(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &g, &why))
			continue;
		result = ScopeGrantsAction(&g, required) &&
			(g.all || SpanIsStar(&g.action) || g.nfields == 0);
	}
	pfree(elems);
	pfree(nulls);
	return result;
}

/*
 * ScopeArrayHasSet: does an apikeys.scope[] name a scope set ("@name")?
 * Stored scopes are canonical, so a set reference is exactly an element
 * starting with '@'.
 */
bool
ScopeArrayHasSet(ArrayType *scopes)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	bool		found = false;

	deconstruct_array(scopes, ARR_ELEMTYPE(scopes), -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (int i = 0; i < n && !found; i++)
	{
		text	   *t;

		if (nulls[i])
			continue;
		t = DatumGetTextPP(elems[i]);
		found = VARSIZE_ANY_EXHDR(t) > 0 && VARDATA_ANY(t)[0] == '@';
	}
	pfree(elems);
	pfree(nulls);
	return found;
}

/*
 * ScopeArrayAllowsField: may a key holding granted read this field of this
 * resource?
 */
bool
ScopeArrayAllowsField(ArrayType *granted, const char *resource, size_t rlen,
					  const char *field, size_t flen)
{
	Scope		req;

	memset(&req, 0, sizeof(req));
	req.resource.p = resource;
	req.resource.len = (int) rlen;
	req.action.p = "read";
	req.action.len = 4;
	req.nfields = 1;
	req.fields[0].p = field;
	req.fields[0].len = (int) flen;
	return ScopeArrayGrants(granted, &req);
}

/* SpanCmp orders field names bytewise, for qsort. */
static int
SpanCmp(const void *a, const void *b)
{
	const ScopeSpan *x = (const ScopeSpan *) a;
	const ScopeSpan *y = (const ScopeSpan *) b;
	int			c = memcmp(x->p, y->p, Min(x->len, y->len));

	return c != 0 ? c : x->len - y->len;
}

/*
 * ScopeCanonical renders a parsed scope without blanks, its fields sorted
 * and without duplicates: a field list is a set, so "r:read(b,a,a)" and
 * "r:read(a,b)" are the same scope and must compare equal bytewise.
 * Sorts s->fields in place.
 */
text *
ScopeCanonical(Scope *s)
{
	StringInfoData buf;
	text	   *result;

	initStringInfo(&buf);
	if (s->all)
		appendStringInfoChar(&buf, '*');
	else if (s->set)
	{
		appendStringInfoChar(&buf, '@');
		appendBinaryStringInfo(&buf, s->resource.p, s->resource.len);
	}
	else
	{
		appendBinaryStringInfo(&buf, s->resource.p, s->resource.len);
		appendStringInfoChar(&buf, ':');
		appendBinaryStringInfo(&buf, s->action.p, s->action.len);
		if (s->nfields > 0)
		{
			qsort(s->fields, s->nfields, sizeof(ScopeSpan), SpanCmp);
			appendStringInfoChar(&buf, '(');
			for (int i = 0; i < s->nfields; i++)
			{
				if (i > 0 && SpanEq(&s->fields[i], &s->fields[i - 1]))
					continue;
				if (i > 0)
					appendStringInfoChar(&buf, ',');
				appendBinaryStringInfo(&buf, s->fields[i].p, s->fields[i].len);
			}
			appendStringInfoChar(&buf, ')');
		}
	}
	result = cstring_to_text_with_len(buf.data, buf.len);
	pfree(buf.data);
	return result;
}

PG_FUNCTION_INFO_V1(apikeys_scope_in);
PG_FUNCTION_INFO_V1(apikeys_scope_out);
PG_FUNCTION_INFO_V1(apikeys_scope_eq);
PG_FUNCTION_INFO_V1(apikeys_scope_ne);
PG_FUNCTION_INFO_V1(apikeys_scope_grants);
PG_FUNCTION_INFO_V1(apikeys_scopes_grant);

/* SQL function: apikeys.scope_in(cstring) returns apikeys.scope */
Datum
apikeys_scope_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);
	Scope		s;

	ScopeParseOrError(str, strlen(str), &s);
	PG_RETURN_TEXT_P(ScopeCanonical(&s));
}

/* SQL function: apikeys.scope_out(apikeys.scope) returns cstring */
Datum
apikeys_scope_out(PG_FUNCTION_ARGS)
{
	PG_RETURN_CSTRING(text_to_cstring(PG_GETARG_TEXT_PP(0)));
}

/*
 * ScopeDatumEq compares two stored scopes.  They are canonical, so byte
 * equality is scope equality; no collation is involved (texteq would
 * demand one, and the type is not collatable).
 */
static bool
ScopeDatumEq(text *a, text *b)
{
	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

/* SQL function: apikeys.scope_eq(scope, scope) returns boolean */
Datum
apikeys_scope_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ScopeDatumEq(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1)));
}

/* SQL function: apikeys.scope_ne(scope, scope) returns boolean */
Datum
apikeys_scope_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(!ScopeDatumEq(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1)));
}

/*
 * ScopeDatumCmp orders stored scopes bytewise.  The order means nothing
 * beyond being total and stable; it exists so that scopes (and scope[]
 * columns) can be sorted, grouped, indexed and ANALYZEd without a
 * collation.
 */
static int
ScopeDatumCmp(text *a, text *b)
{
	int			la = VARSIZE_ANY_EXHDR(a);
	int			lb = VARSIZE_ANY_EXHDR(b);
	int			c = memcmp(VARDATA_ANY(a), VARDATA_ANY(b), Min(la, lb));

	if (c != 0)
		return c < 0 ? -1 : 1;
	return (la > lb) - (la < lb);
}

PG_FUNCTION_INFO_V1(apikeys_scope_cmp);
PG_FUNCTION_INFO_V1(apikeys_scope_lt);
PG_FUNCTION_INFO_V1(apikeys_scope_le);
PG_FUNCTION_INFO_V1(apikeys_scope_gt);
PG_FUNCTION_INFO_V1(apikeys_scope_ge);
PG_FUNCTION_INFO_V1(apikeys_scope_hash);

/* SQL function: apikeys.scope_cmp(scope, scope) returns integer */
Datum
apikeys_scope_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(ScopeDatumCmp(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1)));
}

/* SQL function: apikeys.scope_lt(scope, scope) returns boolean */
Datum
apikeys_scope_lt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ScopeDatumCmp(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1)) < 0);
}

/* SQL function: apikeys.scope_le(scope, scope) returns boolean */
Datum
apikeys_scope_le(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ScopeDatumCmp(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1)) <= 0);
}

/* SQL function: apikeys.scope_gt(scope, scope) returns boolean */
Datum
apikeys_scope_gt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ScopeDatumCmp(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1)) > 0);
}

/* SQL function: apikeys.scope_ge(scope, scope) returns boolean */
Datum
apikeys_scope_ge(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ScopeDatumCmp(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1)) >= 0);
}

/* SQL function: apikeys.scope_hash(scope) returns integer */
Datum
apikeys_scope_hash(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	return hash_any((const unsigned char *) VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/* SQL function: apikeys.scope_grants(granted scope, required scope) returns boolean */
Datum
apikeys_scope_grants(PG_FUNCTION_ARGS)
{
	text	   *g = PG_GETARG_TEXT_PP(0);
	text	   *r = PG_GETARG_TEXT_PP(1);
	Scope		gs,
				rs;

	ScopeParseOrError(VARDATA_ANY(g), VARSIZE_ANY_EXHDR(g), &gs);
	ScopeParseOrError(VARDATA_ANY(r), VARSIZE_ANY_EXHDR(r), &rs);
	PG_RETURN_BOOL(ScopeGrants(&gs, &rs));
}

PG_FUNCTION_INFO_V1(apikeys_scopes_cover);

/* SQL function: apikeys_internal._scopes_cover(granted scope[], required scope) returns boolean */
Datum
apikeys_scopes_cover(PG_FUNCTION_ARGS)
{
	ArrayType  *g;
	text	   *r;
	Scope		rs;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	g = PG_GETARG_ARRAYTYPE_P(0);
	r = PG_GETARG_TEXT_PP(1);

	ScopeParseOrError(VARDATA_ANY(r), VARSIZE_ANY_EXHDR(r), &rs);
	PG_RETURN_BOOL(ScopeArrayCovers(g, &rs));
}

/* SQL function: apikeys.scopes_grant(granted scope[], required scope) returns boolean */
Datum
apikeys_scopes_grant(PG_FUNCTION_ARGS)
{
	ArrayType  *g = PG_GETARG_ARRAYTYPE_P(0);
	text	   *r = PG_GETARG_TEXT_PP(1);
	Scope		rs;

	ScopeParseOrError(VARDATA_ANY(r), VARSIZE_ANY_EXHDR(r), &rs);
	PG_RETURN_BOOL(ScopeArrayGrants(g, &rs));
}
