/*-------------------------------------------------------------------------
 *
 * scopeset.c
 *	  Named scope sets: expanding "@name" in a key's scopes.
 *
 * A key's scopes may name a set ("@support") defined with
 * apikeys.define_scope_set(); the key grants what the set grants at the
 * time of each verification.  The expansion is done once, when a key is
 * loaded for verification (verify_lookup.c calls ScopeSetExpand), so the key that
 * verify, authenticate and the shared cache hold carries plain scopes:
 * matching a key with a set costs exactly what matching the same scopes
 * written inline costs.
 *
 * Freshness.  The sets are read with the latest snapshot, like the key
 * itself, so a redefinition committed before this call is always seen.
 * A cached key holds the expansion made when it was filled; a change to
 * apikeys.scope_sets therefore invalidates every cached key of the
 * database (the statement trigger apikeys_internal._scope_sets_cache_trigger, and
 * the per-database "scope-set generation" in verify_cache.c).
 *
 * A set holds plain scopes only (define_scope_set refuses "@" members), so
 * expansion is one level deep and cannot loop.  A set that does not exist
 * (a superuser deleted the row by hand: drop_scope_set refuses while a key
 * uses it) expands to nothing: it fails closed.
 *
 * Like verify_lookup.c this reads the table through its primary-key index, not
 * through SPI, and needs no privilege on it.
 *
 * IDENTIFICATION
 *	  src/scopeset.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "scope.h"
#include "scopeset.h"

#define APIKEYS_SCOPE_SETS_TABLE	"scope_sets"

/* Column numbers of apikeys.scope_sets, checked on first use. */
#define Anum_scope_sets_name		1
#define Anum_scope_sets_scopes		2

static Oid	scope_sets_relid = InvalidOid;
static bool callback_registered = false;

/* InvalidateScopeSetsRelid forgets the OID when the table changes shape. */
static void
InvalidateScopeSetsRelid(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == scope_sets_relid)
		scope_sets_relid = InvalidOid;
}

/* ScopeSetsRelid: the OID of apikeys.scope_sets (InvalidOid if missing). */
static Oid
ScopeSetsRelid(void)
{
	Oid			nsp;
	Oid			relid;

	if (OidIsValid(scope_sets_relid))
		return scope_sets_relid;
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(InvalidateScopeSetsRelid, (Datum) 0);
		callback_registered = true;
	}
	nsp = get_namespace_oid(APIKEYS_SCHEMA_NAME, true);
	relid = OidIsValid(nsp) ? get_relname_relid(APIKEYS_SCOPE_SETS_TABLE, nsp) : InvalidOid;
	if (!OidIsValid(relid))
		return InvalidOid;
	if (get_attnum(relid, "name") != Anum_scope_sets_name ||
		get_attnum(relid, "scopes") != Anum_scope_sets_scopes)
		elog(ERROR, "apikeys.scope_sets does not have the expected columns");
	scope_sets_relid = relid;
	return relid;
}

/*
 * ScopeSetExpand returns scopes with every "@name" replaced by the scopes
 * of that set, in the current memory context; scopes itself when it names
 * no set (the common case costs one pass over the array).
 */
ArrayType *
ScopeSetExpand(ArrayType *scopes)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Oid			relid;
	PkScan		ps;
	ArrayBuildState *out;
	Oid			elemtype = ARR_ELEMTYPE(scopes);

	if (!ScopeArrayHasSet(scopes))
		return scopes;

	deconstruct_array(scopes, elemtype, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	out = initArrayResult(elemtype, CurrentMemoryContext, false);

	relid = ScopeSetsRelid();
	if (!OidIsValid(relid))
	{
		/* no table: no set exists, keep the plain scopes only */
		for (int i = 0; i < n; i++)
		{
			text	   *t = DatumGetTextPP(elems[i]);

			if (!nulls[i] && !(VARSIZE_ANY_EXHDR(t) > 0 && VARDATA_ANY(t)[0] == '@'))
				accumArrayResult(out, elems[i], false, elemtype, CurrentMemoryContext);
		}
		return DatumGetArrayTypeP(makeArrayResult(out, CurrentMemoryContext));
	}

	PkScanBegin(&ps, relid, false);
	for (int i = 0; i < n; i++)
	{
		text	   *t;
		TupleTableSlot *slot;

		if (nulls[i])
			continue;
		t = DatumGetTextPP(elems[i]);
		if (!(VARSIZE_ANY_EXHDR(t) > 0 && VARDATA_ANY(t)[0] == '@'))
		{
			accumArrayResult(out, elems[i], false, elemtype, CurrentMemoryContext);
			continue;
		}

		slot = PkScanFetch(&ps, VARDATA_ANY(t) + 1, VARSIZE_ANY_EXHDR(t) - 1);
		if (slot != NULL)
		{
			bool		isnull;
			Datum		d = slot_getattr(slot, Anum_scope_sets_scopes, &isnull);

			if (!isnull)
			{
				ArrayType  *members = DatumGetArrayTypePCopy(d);
				Datum	   *me;
				bool	   *mn;
				int			m;

				deconstruct_array(members, elemtype, -1, false, TYPALIGN_INT,
								  &me, &mn, &m);
				for (int j = 0; j < m; j++)
				{
					text	   *mt;

					if (mn[j])
						continue;
					mt = DatumGetTextPP(me[j]);
					/* members are plain scopes; never follow a nested set */
					if (VARSIZE_ANY_EXHDR(mt) > 0 && VARDATA_ANY(mt)[0] == '@')
						continue;
					accumArrayResult(out, PointerGetDatum(mt), false, elemtype,
									 CurrentMemoryContext);
				}
			}
		}
	}
	PkScanEnd(&ps);
	return DatumGetArrayTypeP(makeArrayResult(out, CurrentMemoryContext));
}

PG_FUNCTION_INFO_V1(apikeys_expand_scopes);

/*
 * SQL function: apikeys_internal._expand_scopes(scopes scope[]) returns scope[]
 *
 * The same expansion verification makes, for the no-escalation check of
 * the self-service functions and for key_hygiene: one code path, so what
 * a key is checked against is what it is verified with.
 */
Datum
apikeys_expand_scopes(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_ARRAYTYPE_P(ScopeSetExpand(PG_GETARG_ARRAYTYPE_P(0)));
}
