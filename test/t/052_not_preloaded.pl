# Without shared_preload_libraries the extension still works fully:
# verification reads the table directly, last_used_at is written at most
# once per key per apikeys.last_used_granularity, only in read-write
# transactions and never from pre_request; rate limits are not enforced
# (with a WARNING when set) and nothing is counted in shared memory.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

my $node = start_node('plain', preload => 0);


sq($node, q{CREATE TABLE tok AS SELECT (k).client_id, (k).token
       FROM apikeys.create_key('np-owner', 'k', ARRAY['docs:read']) k});
my $v = "(SELECT token FROM tok)";
my $cid = sq($node, "SELECT client_id FROM tok");
sub last_used { return sq($node, "SELECT coalesce(last_used_at::text, 'never') FROM apikeys.key_list WHERE client_id = '$cid'"); }

is(sq($node, "SELECT shared FROM apikeys.cache_stats()"), 'f', 'no shared memory without preloading');

# READ ONLY: verifies, writes nothing
is(sq($node, "BEGIN READ ONLY; SELECT (apikeys.verify($v)).code; COMMIT;"), 'VALID', 'VALID in a READ ONLY transaction');
is(last_used(), 'never', 'no last_used_at write from a READ ONLY transaction');

# pre_request never writes, even in a read-write transaction
my $hdr = sq($node, "SELECT json_build_object('x-api-key', token)::text FROM tok");
sq($node, "BEGIN; SELECT set_config('request.headers', '$hdr', true); SELECT apikeys.pre_request(); COMMIT;");
my @out = split /\n/, sq($node, "BEGIN; SELECT set_config('request.headers', '$hdr', true) IS NOT NULL; SELECT apikeys.pre_request(); SELECT apikeys.current_client_id(); COMMIT;");
is($out[-1], $cid, 'pre_request authenticates');
is(last_used(), 'never', 'pre_request wrote nothing');

# read-write: first use writes, later uses within the granularity do not
is(sq($node, "SELECT (apikeys.verify($v)).code"), 'VALID', 'VALID in a read-write transaction');
my $first = last_used();
isnt($first, 'never', 'first use wrote last_used_at');
sq($node, "SELECT apikeys.verify($v) FROM generate_series(1, 20)");
is(last_used(), $first, 'no rewrite within apikeys.last_used_granularity');
my $xmin = sq($node, "SELECT xmin FROM apikeys.keys WHERE client_id = '$cid'");
sq($node, "SELECT apikeys.verify($v)");
is(sq($node, "SELECT xmin FROM apikeys.keys WHERE client_id = '$cid'"), $xmin, 'no new row version either');

# after the granularity it is written again
$node->append_conf('postgresql.conf', 'apikeys.last_used_granularity = 1');
$node->reload;
sleep(1.2);
sq($node, "SELECT apikeys.verify($v)");
isnt(last_used(), $first, 'rewritten once the granularity has passed');

# a verification never waits for a row lock on the key (SKIP LOCKED)
my $bg = $node->background_psql('postgres');
$bg->query_safe("BEGIN; SELECT 1 FROM apikeys.keys WHERE client_id = '$cid' FOR UPDATE;");
sleep(1.2);
is(sq($node, "SET statement_timeout = '3s'; SELECT (apikeys.verify($v)).code"), 'VALID',
	'verification does not wait for a locked key row');
$bg->query_safe('COMMIT');
$bg->quit;

# no audit rows from last-used writes
is(sq($node, "SELECT count(*) FROM apikeys.audit_log WHERE client_id = '$cid'"), '1', 'only the creation is audited');

# rate limits: a WARNING, not enforced; no failure counting
my ($ret, $out, $err) = $node->psql('postgres',
	"CREATE TABLE tok2 AS SELECT (k).client_id, (k).token
	   FROM apikeys.create_key('np-owner', 'limited', ARRAY['docs:read'], rate_limit => 1, rate_window => '1 hour') k");
like($err, qr/WARNING:  rate limit of API key "[^"]+" is not enforced/, 'WARNING when a rate limit is set without preloading');
my $l = "(SELECT token FROM tok2)";
is(sq($node, "SELECT rate_limit FROM apikeys.keys WHERE client_id = (SELECT client_id FROM tok2)"), '1',
	'the rate-limited key was issued');
is(sq($node, "SELECT string_agg((apikeys.verify($l)).code, ',') FROM generate_series(1, 3)"), 'VALID,VALID,VALID',
	'a key limited to 1 use an hour verifies 3 times: the limit is not enforced');
is(sq($node, "SELECT string_agg((apikeys.verify($v)).code, ',') FROM generate_series(1, 3)"), 'VALID,VALID,VALID',
	'verification works with no shared memory');
is(sq($node, "SELECT apikeys.flush_usage()"), '0', 'flush_usage has nothing to flush');
is(sq($node, "SELECT count(*) FROM apikeys.failing_addresses"), '0', 'no address throttling without preloading');

# Every admin function works as the first statement of a new connection.
# Without preloading nothing has loaded the library in such a session, so
# the apikeys.* settings are not defined yet; a SQL function that reads one
# (update_key's expiry check reads apikeys.default_max_lifetime) must load
# the library first rather than fail with "unrecognized configuration
# parameter".  Each statement below runs in a fresh connection (safe_psql
# connects anew each time) as a plain login member of apikeys_admin.
sq($node, q{CREATE ROLE np_admin LOGIN IN ROLE apikeys_admin;
     CREATE SCHEMA np AUTHORIZATION np_admin;
     CREATE TABLE np.docs (id int PRIMARY KEY, owner text NOT NULL, body text);
     ALTER TABLE np.docs OWNER TO np_admin});
sub first_statement
{
	my ($sql) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', $sql, extra_params => [ '-X', '-U', 'np_admin' ]);
	return ($rc, $out, $err);
}
my ($fresh_cid, $fresh_token) = issue_key($node, 'np-fresh', 'f');
my ($other_cid) = sq($node, q{SELECT client_id FROM apikeys.create_key('np-fresh', 'g', ARRAY['docs:read'])});
my ($leak_token) = sq($node, q{SELECT token FROM apikeys.create_key('np-fresh', 'h', ARRAY['docs:read'])});
my @first = (
	"SELECT count(*) FROM apikeys.create_key('np-fresh2', 'k', ARRAY['docs:read'])",
	"SELECT apikeys.update_key('$fresh_cid', expires_at => now() + interval '30 days')",
	"SELECT apikeys.update_key('$fresh_cid', name => 'renamed')",
	"SELECT apikeys.update_key('$fresh_cid', scopes => ARRAY['docs:read', 'docs:update'])",
	"SELECT apikeys.update_key('$fresh_cid', description => 'd', contact_email => 'a\@example.com', contact_phone => '+447894123456', allowed_cidrs => '{10.0.0.0/8}', metadata => '{\"a\": 1}', rate_limit => 0)",
	"SELECT count(*) FROM apikeys.rotate_key('$fresh_cid', interval '1 minute')",
	"SELECT apikeys.disable_key('$fresh_cid', 'pause')",
	"SELECT apikeys.enable_key('$fresh_cid')",
	"SELECT apikeys.revoke_key('$other_cid', 'gone')",
	"SELECT apikeys.delete_key('$other_cid')",
	"SELECT apikeys.set_owner_policy('np-fresh', max_keys => 10, max_lifetime => interval '30 days')",
	"SELECT apikeys.set_owner_policy('np-new-owner', max_keys => 3)",
	"SELECT apikeys.purge_audit(interval '100 years')",
	"SELECT apikeys.report_leaked('$leak_token')",
	"SELECT (apikeys.verify('$fresh_token')).code",
	"SELECT apikeys.flush_usage()",
	"SELECT apikeys.flush_usage(false)",
	"SELECT shared FROM apikeys.cache_stats()",
	"SELECT shared FROM apikeys.usage_stats()",
	"SELECT apikeys.cache_prewarm()",
	"SELECT count(*) FROM apikeys.key_list",
	"SELECT count(*) FROM apikeys.key_usage",
	"SELECT count(*) FROM apikeys.key_hygiene",
	"SELECT count(*) FROM apikeys.failing_addresses",
	"SELECT count(*) FROM apikeys.audit_log",
	"SELECT apikeys.protect('np.docs', 'owner')",
	"SELECT apikeys.create_field_view('docs_view', 'np.docs')",
	"SELECT apikeys.unprotect('np.docs')",
	"SELECT apikeys.revoke_all_keys('np-fresh', 'done')",
);
for my $stmt (@first)
{
	my ($rc, $out, $err) = first_statement($stmt);
	ok($rc == 0 && $err !~ /ERROR/, "first statement of a new connection: $stmt")
	  or diag $err;
}

$node->stop;
done_testing();
