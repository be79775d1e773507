# Verification on a streaming hot standby (apikeys preloaded on both):
# it works, writes nothing (the primary's WAL does not move), caches the
# key it verified (entries validated against the heap, verify_standby.c; the
# freshness under replay is 068_standby_cache.pl's) and keeps its own rate
# limits and failure counters; its usage views show the rolled-up hours.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

$PostgreSQL::Test::Utils::timeout_default = 60;

my $primary = start_node('primary', init => { allows_streaming => 1 }, conf => qq{
apikeys.cache_size = 1000
apikeys.flush_interval = 1
apikeys.max_failures = 3
apikeys.prewarm = off    # so the cache holds exactly what was verified
});
$primary->safe_psql('postgres', q{
	CREATE TABLE tok AS
	SELECT 'plain'::text AS name, (k).client_id, (k).token
	  FROM apikeys.create_key('standby-owner', 'plain', ARRAY['docs:read']) k
	UNION ALL
	SELECT 'limited', (k).client_id, (k).token
	  FROM apikeys.create_key('standby-owner', 'limited', ARRAY['docs:read'],
	                          rate_limit => 2, rate_window => '1 hour') k});

my $standby = start_standby($primary, 'standby');
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));

my $v = "(SELECT token FROM tok WHERE name = 'plain')";
my $cid = $primary->safe_psql('postgres', "SELECT client_id FROM tok WHERE name = 'plain'");

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'standby is in recovery');

# let the primary's flusher settle, then verify many times on the standby
sleep(2);
my $lsn_before = $primary->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
is($standby->safe_psql('postgres',
	"SELECT count(*) FROM generate_series(1, 500) g, tok WHERE tok.name = 'plain'
	    AND (apikeys.verify(tok.token, CASE WHEN g > 0 THEN 'docs:read' END)).valid"),
	'500', '500 verifications VALID on the standby');
is($standby->safe_psql('postgres', "SELECT (apikeys.verify($v, 'docs:write')).code"),
	'INSUFFICIENT_SCOPE', 'scope checked on the standby');
sleep(2.5);    # more than one flush interval
is($primary->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()'), $lsn_before,
	'verifications on the standby wrote no WAL on the primary');
# a standby cannot write usage anywhere, so it must not count it in its
# shared memory either (counts that could never be flushed would only fill
# the table): its usage table tracks no key after 501 verifications
is($standby->safe_psql('postgres', 'SELECT tracked_keys, dropped_keys FROM apikeys.usage_stats()'), '0|0',
	'a standby does not count usage in its shared memory');
is($standby->safe_psql('postgres', 'SELECT entries FROM apikeys.cache_stats()'), '1',
	'the standby caches the one key it verified');

# a revocation on the primary is seen on the standby after replay
$primary->safe_psql('postgres', "SELECT apikeys.revoke_key('$cid')");
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
is($standby->safe_psql('postgres', "SELECT (apikeys.verify($v)).code"), 'REVOKED',
	'revocation seen on the standby right after replay');

# rate limits and failure counters are per server
my $l = "(SELECT token FROM tok WHERE name = 'limited')";
is($standby->safe_psql('postgres', "SELECT string_agg((apikeys.verify($l)).code, ',') FROM generate_series(1, 3)"),
	'VALID,VALID,RATE_LIMITED', 'rate limit enforced on the standby');
is($primary->safe_psql('postgres', "SELECT (apikeys.verify($l)).code"), 'VALID',
	'the primary counts its own rate limit');
my $lcid = $primary->safe_psql('postgres', "SELECT client_id FROM tok WHERE name = 'limited'");
for my $i (1 .. 3)
{
	$standby->safe_psql('postgres', "SELECT apikeys.verify_client('$lcid', repeat('A', 43), NULL, '192.0.2.44')");
}
is($standby->safe_psql('postgres', "SELECT blocked FROM apikeys.failing_addresses WHERE address = '192.0.2.44'"),
	't', 'failure counter kept on the standby');
is($primary->safe_psql('postgres', "SELECT count(*) FROM apikeys.failing_addresses"), '0',
	'and not shared with the primary');

# READ ONLY on the primary works too (and writes nothing)
is($primary->safe_psql('postgres',
	"BEGIN READ ONLY; SELECT string_agg((apikeys.verify($l, NULL, '192.0.2.1')).code, ',') FROM generate_series(1, 2); COMMIT;"),
	'VALID,RATE_LIMITED', 'verification and rate limit in a READ ONLY transaction on the primary');

# The usage views on the standby: the rolled-up hours (replayed) and no
# journal (unlogged: the primary's alone, never read during recovery)
$primary->safe_psql('postgres', 'SELECT apikeys.flush_usage()');
$primary->safe_psql('postgres', "SELECT apikeys.verify($l)");
$primary->safe_psql('postgres', 'SELECT apikeys.flush_usage(false)');
my $rolled = $primary->safe_psql('postgres', "SELECT sum(count) FROM apikeys.usage WHERE client_id = '$lcid'");
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
is($standby->safe_psql('postgres', "SELECT sum(count) FROM apikeys.key_usage WHERE client_id = '$lcid'"), $rolled,
	'key_usage on the standby: the rolled-up counts, without the primary\'s journal');
is($standby->safe_psql('postgres', "SELECT last_used_at IS NOT NULL FROM apikeys.key_list WHERE client_id = '$lcid'"),
	't', 'key_list on the standby shows the rolled-up last use');

$standby->stop;
$primary->stop;
done_testing();
