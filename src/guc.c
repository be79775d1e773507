/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  The apikeys.* configuration parameters.
 *
 * GUCs hold configuration only.  The authenticated request context is
 * never a GUC: any PGC_USERSET setting can be changed by the client, and
 * the context must not be forgeable (see context.c).
 *
 * IDENTIFICATION
 *	  src/guc.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"

#include "apikeys.h"
#include "throttle.h"
#include "token.h"

char	   *apikeys_token_prefix = NULL;
char	   *apikeys_pepper = NULL;
int			apikeys_default_max_keys = 5;
int			apikeys_default_max_lifetime = 365 * 24 * 3600;
bool		apikeys_trust_forwarded_for = false;
char	   *apikeys_trusted_proxies = NULL;
const ApikeysNetList *apikeys_trusted_proxy_list = NULL;
int			apikeys_last_used_granularity = 60;
int			apikeys_flush_interval = 10;
int			apikeys_cache_size = 100000;
int			apikeys_max_failures = 100;
int			apikeys_max_network_failures = 1000;
int			apikeys_failure_window = 3600;

/*
 * CheckTokenPrefix accepts a lowercase prefix that token.c can parse back
 * out of a token.
 */
static bool
CheckTokenPrefix(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || !TokenPrefixIsValid(*newval, strlen(*newval)))
	{
		GUC_check_errdetail("A token prefix is 1 to %d characters: a lowercase letter, then lowercase letters, digits or underscores, not ending in an underscore.",
							APIKEYS_PREFIX_MAXLEN);
		return false;
	}
	return true;
}

/*
 * CheckTrustedProxies accepts a list of addresses and CIDR networks
 * separated by commas or spaces, and hands the parsed list (normalised:
 * ::ffff:10.0.0.0/104 is 10.0.0.0/8) to AssignTrustedProxies.
 */
static bool
CheckTrustedProxies(char **newval, void **extra, GucSource source)
{
	const char *p = *newval != NULL ? *newval : "";
	int			max = 1;
	ApikeysNetList *list;

	for (const char *q = p; *q; q++)
		if (*q == ',' || *q == ' ' || *q == '\t')
			max++;
	/* extra must be malloc'd: the GUC machinery free()s it */
	list = malloc(offsetof(ApikeysNetList, nets) + max * sizeof(ApikeysNet));
	if (list == NULL)
	{
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		return false;
	}
	list->n = 0;
	while (*p)
	{
		int			len = 0;

		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		while (p[len] != '\0' && p[len] != ',' && p[len] != ' ' && p[len] != '\t')
			len++;
		if (len == 0)
			break;
		if (!NetParse(p, len, true, &list->nets[list->n]))
		{
			GUC_check_errdetail("\"%.*s\" is not an IP address or a CIDR network with no bits set past its prefix.",
								Min(len, 64), p);
			free(list);
			return false;
		}
		list->n++;
		p += len;
	}
	*extra = list;
	return true;
}

static void
AssignTrustedProxies(const char *newval, void *extra)
{
	apikeys_trusted_proxy_list = (const ApikeysNetList *) extra;
}

/*
 * ApikeysDefineGucs defines every apikeys.* setting and reserves the
 * prefix so that a typo is an error rather than a silent placeholder.
 */
void
ApikeysDefineGucs(void)
{
	DefineCustomStringVariable("apikeys.token_prefix",
							   "Sets the prefix of newly issued tokens and client IDs.",
							   "Existing keys keep the prefix they were issued with.",
							   &apikeys_token_prefix,
							   "ak",
							   PGC_SUSET,
							   0,
							   CheckTokenPrefix,
							   NULL,
							   NULL);

	DefineCustomStringVariable("apikeys.pepper",
							   "Sets a server-side secret mixed into stored secret hashes (HMAC-SHA-256).",
							   "Empty means plain SHA-256. Keys issued with a pepper verify only while the same pepper is set.",
							   &apikeys_pepper,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL,
							   NULL,
							   NULL);

	DefineCustomIntVariable("apikeys.default_max_keys",
							"Sets the number of live keys an owner may hold when no owner policy says otherwise.",
							NULL,
							&apikeys_default_max_keys,
							5,
							1,
							1000000,
							PGC_SUSET,
							0,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("apikeys.default_max_lifetime",
							"Sets the longest lifetime of a key when no owner policy says otherwise.",
							NULL,
							&apikeys_default_max_lifetime,
							365 * 24 * 3600,
							60,
							INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	DefineCustomBoolVariable("apikeys.trust_forwarded_for",
							 "Takes the client address from X-Forwarded-For or Forwarded in pre_request.",
							 "Turn on only behind a proxy that appends to the header. The address used is the rightmost entry not in apikeys.trusted_proxies.",
							 &apikeys_trust_forwarded_for,
							 false,
							 PGC_SUSET,
							 0,
							 NULL,
							 NULL,
							 NULL);

	DefineCustomStringVariable("apikeys.trusted_proxies",
							   "Sets the addresses and networks of proxies whose X-Forwarded-For or Forwarded entries are skipped.",
							   "A list of CIDR networks separated by commas. pre_request takes the rightmost entry not in the list; empty: the rightmost entry.",
							   &apikeys_trusted_proxies,
							   "",
							   PGC_SUSET,
							   GUC_LIST_INPUT,
							   CheckTrustedProxies,
							   AssignTrustedProxies,
							   NULL);

	DefineCustomIntVariable("apikeys.last_used_granularity",
							"Sets how often last_used_at is written per key when the library is not preloaded.",
							NULL,
							&apikeys_last_used_granularity,
							60,
							1,
							INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("apikeys.flush_interval",
							"Sets how often the background worker writes usage and last-used times to tables.",
							NULL,
							&apikeys_flush_interval,
							10,
							1,
							3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	/* PGC_POSTMASTER settings can only be defined while preloading */
	if (apikeys_preloaded)
		DefineCustomIntVariable("apikeys.cache_size",
								"Sets the number of keys held in the shared verification cache.",
								"Used only when apikeys is in shared_preload_libraries.",
								&apikeys_cache_size,
								100000,
								64,
								INT_MAX / 1024,
								PGC_POSTMASTER,
								0,
								NULL,
								NULL,
								NULL);

	DefineCustomIntVariable("apikeys.max_failures",
							"Sets how many failed verifications from one address are allowed within apikeys.failure_window.",
							NULL,
							&apikeys_max_failures,
							100,
							1,
							INT_MAX,
							PGC_SUSET,
							0,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("apikeys.max_network_failures",
							"Sets how many failed verifications from one network (IPv4 /24, IPv6 /48) are allowed within apikeys.failure_window.",
							"Stops a client that rotates through the addresses of its network.",
							&apikeys_max_network_failures,
							1000,
							1,
							INT_MAX,
							PGC_SUSET,
							0,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("apikeys.failure_window",
							"Sets the window over which failed verifications are counted per address.",
							NULL,
							&apikeys_failure_window,
							3600,
							1,
							INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	MarkGUCPrefixReserved("apikeys");
}
