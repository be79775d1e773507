/*-------------------------------------------------------------------------
 *
 * scope_fuzz.c
 *	  libFuzzer target for the scope grammar and matcher (src/scope.c).
 *
 * The input is split at its first newline into two scopes, a and b (b = a
 * without one).  Both go to ScopeParse; no input may crash it or make it
 * read past the end (AddressSanitizer sees exact-size copies).  For parsed
 * scopes it checks the matcher's laws:
 *	- every scope grants itself;
 *	- "*" grants every scope, and no scope but "*" grants "*";
 *	- "res:*" grants every scope of res;
 *	- a scope with fields never grants more than the same scope without;
 *	- a parse's spans lie inside the input, with at most 64 fields.
 *
 * IDENTIFICATION
 *	  fuzz/scope_fuzz.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "scope.h"

#define CHECK(cond) \
	do { if (!(cond)) { fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); abort(); } } while (0)

static void
CheckSpan(const ScopeSpan *sp, const char *s, size_t len)
{
	CHECK(sp->len >= 0);
	CHECK(sp->p >= s && sp->p + sp->len <= s + len);
}

static void
CheckParsed(const Scope *sc, const char *s, size_t len)
{
	if (sc->all)
		return;
	CheckSpan(&sc->resource, s, len);
	CheckSpan(&sc->action, s, len);
	CHECK(sc->resource.len > 0 && sc->action.len > 0);
	CHECK(sc->nfields >= 0 && sc->nfields <= APIKEYS_SCOPE_MAXFIELDS);
	for (int i = 0; i < sc->nfields; i++)
	{
		CheckSpan(&sc->fields[i], s, len);
		CHECK(sc->fields[i].len > 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *nl = memchr(data, '\n', size);
	size_t		alen = nl ? (size_t) (nl - (const char *) data) : size;
	size_t		blen = nl ? size - alen - 1 : size;
	char	   *a = malloc(alen);
	char	   *b = malloc(blen);
	Scope		sa,
				sb,
				star,
				resstar,
				nofields;
	const char *why;
	bool		oka,
				okb;
	char		buf[APIKEYS_SCOPE_MAXLEN + 3];

	/* exact-size copies, so AddressSanitizer catches a read past the end */
	memcpy(a, data, alen);
	memcpy(b, nl ? nl + 1 : (const char *) data, blen);

	oka = ScopeParse(a, alen, &sa, &why);
	okb = ScopeParse(b, blen, &sb, &why);
	CHECK(ScopeParse("*", 1, &star, &why) && star.all);

	if (oka)
	{
		CheckParsed(&sa, a, alen);
		CHECK(ScopeGrants(&sa, &sa));
		CHECK(ScopeGrants(&star, &sa));
		CHECK(ScopeGrants(&sa, &star) == sa.all);
		if (!sa.all && sa.resource.len + 2 <= (int) sizeof(buf))
		{
			/* res:* grants it */
			memcpy(buf, sa.resource.p, sa.resource.len);
			memcpy(buf + sa.resource.len, ":*", 2);
			CHECK(ScopeParse(buf, sa.resource.len + 2, &resstar, &why));
			CHECK(ScopeGrants(&resstar, &sa));
		}
		if (!sa.all && sa.nfields > 0)
		{
			/* the same scope without fields */
			nofields = sa;
			nofields.nfields = 0;
			CHECK(ScopeGrants(&nofields, &sa));
		}
	}
	if (oka && okb)
	{
		CheckParsed(&sb, b, blen);
		if (ScopeGrants(&sa, &sb) && !sa.all && !sb.all)
			CHECK(sa.resource.len == sb.resource.len &&
				  memcmp(sa.resource.p, sb.resource.p, sa.resource.len) == 0);
		if (!sa.all && sa.nfields > 0 && ScopeGrants(&sa, &sb))
		{
			nofields = sa;
			nofields.nfields = 0;
			CHECK(ScopeGrants(&nofields, &sb));
		}
	}
	free(a);
	free(b);
	return 0;
}
