/*-------------------------------------------------------------------------
 *
 * admin_grant.c
 *	  What the no-escalation check (apikeys_internal._check_grant) needs from C: the
 *	  measures verification itself uses, so that a grant is judged on what
 *	  the key will actually be able to do.
 *
 * A network in allowed_cidrs is compared after the normalisation that
 * verification applies (verify_throttle.c NetFromInet: ::ffff:a.b.c.d/n and
 * ::a.b.c.d/n with n >= 96 are IPv4 networks), so a manager limited to
 * ::/0 cannot grant ::ffff:0.0.0.0/96, which verification reads as
 * 0.0.0.0/0, the whole IPv4 space.  A rate window is measured by
 * IntervalUs (verify_ownerlimit.c), as verification measures it, not by
 * date_part('epoch'), whose months are 30.44 days.
 *
 * IDENTIFICATION
 *	  src/admin_grant.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/inet.h"
#include "utils/timestamp.h"

#include "verify_ownerlimit.h"
#include "verify_throttle.h"

PG_FUNCTION_INFO_V1(apikeys_cidrs_outside);

/*
 * SQL function: apikeys_internal._cidrs_outside(inner cidr[], outer cidr[]) returns cidr
 *
 * The first network of inner that is not inside one of outer's networks,
 * both normalised as verification normalises them; NULL when every one is
 * inside.  A NULL element, or one of an unknown family, is outside.  NULL
 * when inner is NULL; every network is outside a NULL outer.
 */
Datum
apikeys_cidrs_outside(PG_FUNCTION_ARGS)
{
	ArrayType  *inner;
	Datum	   *ielems;
	bool	   *inulls;
	int			ni;
	Datum	   *oelems = NULL;
	bool	   *onulls = NULL;
	int			no = 0;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	inner = PG_GETARG_ARRAYTYPE_P(0);
	deconstruct_array(inner, CIDROID, -1, false, TYPALIGN_INT,
					  &ielems, &inulls, &ni);
	if (!PG_ARGISNULL(1))
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), CIDROID, -1, false,
						  TYPALIGN_INT, &oelems, &onulls, &no);
	for (int i = 0; i < ni; i++)
	{
		ApikeysNet	net;
		bool		inside = false;

		if (inulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("allowed_cidrs cannot contain NULL")));
		if (NetFromInet(ielems[i], &net))
		{
			for (int j = 0; j < no && !inside; j++)
			{
				ApikeysNet	outer;

				if (!onulls[j] && NetFromInet(oelems[j], &outer) &&
					NetContains(&outer, &net))
					inside = true;
			}
		}
		if (!inside)
			PG_RETURN_DATUM(ielems[i]);
	}
	PG_RETURN_NULL();
}

PG_FUNCTION_INFO_V1(apikeys_interval_us);

/*
 * SQL function: apikeys_internal._interval_us(w interval) returns bigint
 *
 * A rate window's length as verification measures it (IntervalUs: a month
 * is 30 days, a day 24 hours).  NULL in, NULL out.
 */
Datum
apikeys_interval_us(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_INT64(IntervalUs(PG_GETARG_INTERVAL_P(0)));
}
