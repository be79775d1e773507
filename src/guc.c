/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  The apikeys.* configuration parameters.
 *
 * GUCs hold configuration only.  The authenticated request context is
 * never a GUC: any PGC_USERSET setting can be changed by the client, and
 * the context must not be forgeable (see http_context.c).
 *
 * IDENTIFICATION
 *	  src/guc.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/parallel.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "apikeys.h"
#include "compat.h"
#include "verify_throttle.h"
#include "token.h"

char	   *apikeys_token_prefix = NULL;
static char *allowed_prefixes = NULL;	/* the text; the list is below */
const ApikeysPrefixList *apikeys_allowed_prefix_list = NULL;
char	   *apikeys_pepper = NULL;	/* the key itself, set by AssignPepper */
static char *pepper_shown = NULL;	/* what SQL sees: PEPPER_MASK or "" */
int			apikeys_default_max_keys = 5;
int			apikeys_default_max_lifetime = 365 * 24 * 3600;
bool		apikeys_trust_forwarded_for = false;
char	   *apikeys_trusted_proxies = NULL;
const ApikeysNetList *apikeys_trusted_proxy_list = NULL;
int			apikeys_last_used_granularity = 60;
int			apikeys_flush_interval = 10;
int			apikeys_cache_size = 100000;
bool		apikeys_prewarm = false;
int			apikeys_max_failures = 100;
int			apikeys_max_network_failures = 1000;
int			apikeys_failure_window = 3600;
int			apikeys_lock_timeout = 1000;
int			apikeys_claim_lifetime = 24 * 3600;
int			apikeys_max_derived_ttl = 3600;
int			apikeys_outbox_max_attempts = 10;
int			apikeys_outbox_backoff = 10;
int			apikeys_outbox_max_backoff = 3600;
int			apikeys_outbox_retention = 7 * 24 * 3600;
int			apikeys_policy_interval = 3600;
int			apikeys_default_revoke_unused_after = 0;
int			apikeys_default_warn_before_expiry = 14 * 24 * 3600;
int			apikeys_default_rotate_every = 0;
int			apikeys_max_tenant_actions = 60;
int			apikeys_standbys_verify = APIKEYS_STANDBYS_AUTO;

static const struct config_enum_entry standbys_verify_options[] = {
	{"auto", APIKEYS_STANDBYS_AUTO, false},
	{"on", APIKEYS_STANDBYS_ON, false},
	{"off", APIKEYS_STANDBYS_OFF, false},
	{"true", APIKEYS_STANDBYS_ON, true},
	{"false", APIKEYS_STANDBYS_OFF, true},
	{NULL, 0, false}
};

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
 * A list setting (apikeys.allowed_prefixes, apikeys.trusted_proxies) is
 * items separated by commas, spaces or tabs.  GucListMax is the most items
 * the text can hold (to size the parsed list); GucListNext moves *p to the
 * next item and sets *len to its length, false when there is none left.
 */
static bool
GucListSeparator(char c)
{
	return c == ',' || c == ' ' || c == '\t';
}

static int
GucListMax(const char *p)
{
	int			max = 1;

	for (; *p; p++)
		if (GucListSeparator(*p))
			max++;
	return max;
}

static bool
GucListNext(const char **p, int *len)
{
	const char *s = *p;
	int			n = 0;

	while (GucListSeparator(*s))
		s++;
	while (s[n] != '\0' && !GucListSeparator(s[n]))
		n++;
	*p = s;
	*len = n;
	return n > 0;
}

/*
 * CheckAllowedPrefixes accepts a list of token prefixes separated by commas
 * or spaces, each under token_prefix's rule (TokenPrefixIsValid: so every
 * one of them matches the secret scanners' regex and parses back out of a
 * token), and hands the parsed list to AssignAllowedPrefixes.
 */
static bool
CheckAllowedPrefixes(char **newval, void **extra, GucSource source)
{
	const char *p = *newval != NULL ? *newval : "";
	int			max = GucListMax(p);
	int			len;
	ApikeysPrefixList *list;

	/* extra comes from the GUC allocator: the GUC machinery frees it */
	list = ApikeysGucMalloc(offsetof(ApikeysPrefixList, prefixes) +
							max * sizeof(list->prefixes[0]));
	if (list == NULL)
	{
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		return false;
	}
	list->n = 0;
	while (GucListNext(&p, &len))
	{
		if (!TokenPrefixIsValid(p, len))
		{
			GUC_check_errdetail("\"%.*s\" is not a token prefix: 1 to %d characters, a lowercase letter, then lowercase letters, digits or underscores, not ending in an underscore.",
								Min(len, 64), p, APIKEYS_PREFIX_MAXLEN);
			ApikeysGucFree(list);
			return false;
		}
		memcpy(list->prefixes[list->n], p, len);
		list->prefixes[list->n][len] = '\0';
		list->n++;
		p += len;
	}
	*extra = list;
	return true;
}

static void
AssignAllowedPrefixes(const char *newval, void *extra)
{
	apikeys_allowed_prefix_list = (const ApikeysPrefixList *) extra;
}

/*
 * TokenPrefixConfigured: is this prefix apikeys.token_prefix or one of
 * apikeys.allowed_prefixes?  The prefixes a new key may carry
 * (admin_keys.c), and those whose mistyped tokens verification answers
 * MALFORMED without looking for an imported key (verify.c, TokenClassify).
 */
bool
TokenPrefixConfigured(const char *prefix, size_t len)
{
	const ApikeysPrefixList *list = apikeys_allowed_prefix_list;

	if (apikeys_token_prefix != NULL && strlen(apikeys_token_prefix) == len &&
		memcmp(apikeys_token_prefix, prefix, len) == 0)
		return true;
	for (int i = 0; list != NULL && i < list->n; i++)
		if (strlen(list->prefixes[i]) == len &&
			memcmp(list->prefixes[i], prefix, len) == 0)
			return true;
	return false;
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
	int			max = GucListMax(p);
	int			len;
	ApikeysNetList *list;

	/* extra comes from the GUC allocator: the GUC machinery frees it */
	list = ApikeysGucMalloc(offsetof(ApikeysNetList, nets) + max * sizeof(ApikeysNet));
	if (list == NULL)
	{
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		return false;
	}
	list->n = 0;
	while (GucListNext(&p, &len))
	{
		if (!NetParse(p, len, true, &list->nets[list->n]))
		{
			GUC_check_errdetail("\"%.*s\" is not an IP address or a CIDR network with no bits set past its prefix.",
								Min(len, 64), p);
			ApikeysGucFree(list);
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
 * The pepper is readable by nobody through SQL.  GUC_SUPERUSER_ONLY does
 * not hide a setting from members of pg_read_all_settings (so pg_monitor):
 * PostgreSQL lets them read it with SHOW, current_setting() and pg_settings,
 * and a show hook would not cover pg_settings.reset_val and boot_val, which
 * print the stored value.  So the stored value never is the key: the check
 * hook moves the key into the setting's "extra" (which PostgreSQL keeps,
 * stacks and restores with each value, for SET LOCAL, RESET and rollback)
 * and stores PEPPER_MASK in its place, or "" when no pepper is set.  The
 * assign hook points apikeys_pepper at the key in extra.
 *
 * A parallel worker receives the leader's settings as their stored text,
 * the mask, and so gets no pepper; nothing that hashes a secret is parallel
 * safe (verify and verify_client are PARALLEL RESTRICTED).  Anywhere else
 * the mask itself is refused as a pepper, so it always means "hidden".
 *
 * Catalog-stored settings (ALTER ROLE/DATABASE ... SET, CREATE FUNCTION
 * ... SET) keep their text in pg_db_role_setting and pg_proc, which every
 * role can read, so they are refused where PostgreSQL validates them
 * (source PGC_S_TEST) and ignored where they would apply.
 */
#define PEPPER_MASK "********"

static bool
CheckPepper(char **newval, void **extra, GucSource source)
{
	char	   *key;

	if (*newval == NULL)
		return true;
	if (source == PGC_S_TEST || source == PGC_S_DATABASE || source == PGC_S_USER ||
		source == PGC_S_DATABASE_USER || source == PGC_S_GLOBAL)
	{
		GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
		GUC_check_errmsg("\"apikeys.pepper\" cannot be stored in the system catalogs");
		GUC_check_errdetail("Every role can read settings stored with ALTER ROLE, ALTER DATABASE or CREATE FUNCTION.");
		GUC_check_errhint("Set it in postgresql.conf, readable only by the server's operating system user.");
		return false;
	}
	if (strcmp(*newval, PEPPER_MASK) == 0)
	{
		if (!IsParallelWorker())
		{
			GUC_check_errdetail("\"%s\" is how a hidden pepper is shown.", PEPPER_MASK);
			return false;
		}
		key = ApikeysGucStrdup("");
	}
	else
		key = ApikeysGucStrdup(*newval);
	if (key == NULL)
	{
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		return false;
	}
	if (key[0] != '\0')
	{
		char	   *shown = ApikeysGucStrdup(PEPPER_MASK);

		if (shown == NULL)
		{
			explicit_bzero(key, strlen(key));
			ApikeysGucFree(key);
			GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
			return false;
		}
		explicit_bzero(*newval, strlen(*newval));
		ApikeysGucFree(*newval);
		*newval = shown;
	}
	*extra = key;
	return true;
}

static void
AssignPepper(const char *newval, void *extra)
{
	apikeys_pepper = (char *) extra;
}

/*
 * ApikeysDefineGucs defines every apikeys.* setting and reserves the
 * prefix so that a typo is an error rather than a silent placeholder.
 * Longer than 100 lines on purpose: one DefineCustom*Variable call per
 * setting, one argument per line (STYLE.md), in one flat list that reads
 * like the settings table in README.
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

	DefineCustomStringVariable("apikeys.allowed_prefixes",
							   "Sets further prefixes an administrator may give a new key.",
							   "A list separated by commas, each under the rule of apikeys.token_prefix, which is always allowed. Existing keys keep the prefix they were issued with.",
							   &allowed_prefixes,
							   "",
							   PGC_SUSET,
							   GUC_LIST_INPUT,
							   CheckAllowedPrefixes,
							   AssignAllowedPrefixes,
							   NULL);

	DefineCustomStringVariable("apikeys.pepper",
							   "Sets a server-side secret mixed into stored secret hashes (HMAC-SHA-256).",
							   "Empty means plain SHA-256. Keys issued with a pepper verify only while the same pepper is set.",
							   &pepper_shown,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   CheckPepper,
							   AssignPepper,
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
							"Sets the smallest change of a key's stored last_used_at that is written.",
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
							"Sets how often the background worker writes usage and last-used times to the usage journal.",
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

	DefineCustomBoolVariable("apikeys.prewarm",
							 "Reloads the shared verification cache in the background when the server starts.",
							 "The most recently used keys of every database are loaded first, up to apikeys.cache_size.",
							 &apikeys_prewarm,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL,
							 NULL,
							 NULL);

	/* PGC_POSTMASTER settings can only be defined while preloading */
	if (process_shared_preload_libraries_in_progress)
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

	DefineCustomIntVariable("apikeys.claim_lifetime",
							"Sets how long a handoff claim (link and code) can be used.",
							"After that the key stays pending until apikeys.reset_key() sends a new handoff.",
							&apikeys_claim_lifetime,
							24 * 3600,
							60,
							30 * 24 * 3600,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("apikeys.max_derived_ttl",
							"Sets the longest life apikeys.derive_token() may give a derived token.",
							"A longer ttl is refused; a derived token never outlives its key either.",
							&apikeys_max_derived_ttl,
							3600,
							1,
							7 * 24 * 3600,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("apikeys.outbox_max_attempts",
							"Sets how many times an outbox row is handed out before delivery is given up.",
							NULL,
							&apikeys_outbox_max_attempts,
							10,
							1,
							1000,
							PGC_SUSET,
							0,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("apikeys.outbox_backoff",
							"Sets the delay before an outbox row is retried the first time; each further retry doubles it.",
							NULL,
							&apikeys_outbox_backoff,
							10,
							1,
							24 * 3600,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("apikeys.outbox_max_backoff",
							"Sets the longest delay between two attempts to deliver an outbox row.",
							NULL,
							&apikeys_outbox_max_backoff,
							3600,
							1,
							7 * 24 * 3600,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("apikeys.outbox_retention",
							"Sets how long delivered and abandoned outbox rows are kept.",
							"apikeys.apply_policies() deletes older ones; 0 keeps them forever.",
							&apikeys_outbox_retention,
							7 * 24 * 3600,
							0,
							INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("apikeys.policy_interval",
							"Sets how often the background worker runs apikeys.apply_policies() in each database.",
							"Used only when apikeys is in shared_preload_libraries.",
							&apikeys_policy_interval,
							3600,
							1,
							INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("apikeys.default_revoke_unused_after",
							"Sets after how long unused keys are revoked when no owner policy says otherwise.",
							"0 turns it off.",
							&apikeys_default_revoke_unused_after,
							0,
							0,
							INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	DefineCustomEnumVariable("apikeys.standbys_verify",
							 "Says whether hot standbys of this primary serve verifications.",
							 "A standby's uses are not recorded on the primary, so while standbys may verify keys, revoke_unused_after revokes nothing. auto: any standby the primary knows of (a walsender, a physical replication slot) may.",
							 &apikeys_standbys_verify,
							 APIKEYS_STANDBYS_AUTO,
							 standbys_verify_options,
							 PGC_SIGHUP,
							 0,
							 NULL,
							 NULL,
							 NULL);

	DefineCustomIntVariable("apikeys.default_warn_before_expiry",
							"Sets how long before expiry a key's contact is warned when no owner policy says otherwise.",
							"0 turns it off.  On by default: keys expire (after a year unless the owner's policy says otherwise), and a key should not die unannounced.",
							&apikeys_default_warn_before_expiry,
							14 * 24 * 3600,
							0,
							INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("apikeys.default_rotate_every",
							"Sets the age of a secret after which rotation is asked for when no owner policy says otherwise.",
							"0 turns it off.",
							&apikeys_default_rotate_every,
							0,
							0,
							INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("apikeys.max_tenant_actions",
							"Sets how many key management actions (my_* functions) the keys of one owner may take per minute.",
							"More are refused with SQLSTATE 54000. 0 means no limit.",
							&apikeys_max_tenant_actions,
							60,
							0,
							1000000,
							PGC_SUSET,
							0,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("apikeys.lock_timeout",
							"Sets the longest wait of a verification for a lock on apikeys.keys.",
							"A verification that must read the table while a conflicting lock is held fails after this wait instead of hanging. 0 waits as long as lock_timeout says.",
							&apikeys_lock_timeout,
							1000,
							0,
							INT_MAX,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL,
							NULL,
							NULL);

	MarkGUCPrefixReserved("apikeys");

	/*
	 * Until the library is loaded, a pepper in postgresql.conf is a
	 * placeholder setting, which every role can read with SHOW.  Only
	 * preloading loads us before any session can run a query.
	 */
	if (!process_shared_preload_libraries_in_progress && apikeys_pepper != NULL && apikeys_pepper[0] != '\0')
		ereport(WARNING,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("\"apikeys.pepper\" is set but apikeys is not in \"shared_preload_libraries\""),
				 errdetail("Before the library is loaded, any role can read the pepper with SHOW."),
				 errhint("Add apikeys to \"shared_preload_libraries\" and restart the server.")));
}
