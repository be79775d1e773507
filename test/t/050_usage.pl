# Usage counters, the background flush, abuse protection and rate limits,
# with apikeys preloaded (src/usage.c, src/worker.c).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

# fail fast: every wait here is a few seconds at most
$PostgreSQL::Test::Utils::timeout_default = 30;

my $node = start_node('usage', conf => qq{
apikeys.cache_size = 1000
apikeys.flush_interval = 1
apikeys.max_failures = 5
apikeys.failure_window = 10
restart_after_crash = on
});


# one key for usage, one with a rate limit; tokens kept in a table
sq($node, q{CREATE TABLE tok AS
      SELECT 'plain'::text AS name, (k).client_id, (k).token
        FROM apikeys.create_key('usage-owner', 'plain', ARRAY['docs:read']) k
      UNION ALL
      SELECT 'limited', (k).client_id, (k).token
        FROM apikeys.create_key('usage-owner', 'limited', ARRAY['docs:read'],
                                rate_limit => 3, rate_window => '3 seconds') k});
my $v = "(SELECT token FROM tok WHERE name = 'plain')";
my $cid = sq($node, "SELECT client_id FROM tok WHERE name = 'plain'");
# a well-formed client ID / secret pair with the wrong secret
sub wrong { return "apikeys.verify_client('$cid', repeat('A', 43), NULL, '$_[0]')"; }

# --- the launcher runs
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'apikeys usage flusher'"),
	'usage flusher is running');

# --- verification in a READ ONLY transaction works and writes no WAL
sq($node, "SELECT apikeys.verify($v)");    # warm the cache
my $audit_before = sq($node, 'SELECT count(*) FROM apikeys.audit_log');
# The bgwriter logs a running-xacts record (Standby rmgr) every 15 s on
# its own, and any reader may prune a heap page it visits (catalog pages
# too), so the WAL between the two positions is read back with
# pg_walinspect and only records of other kinds count (a reader's pruning
# is Heap2 PRUNE up to 16, PRUNE_ON_ACCESS from 17).
# Earlier updates leave dead tuples whose opportunistic pruning on read
# would write WAL of its own (any reader does that), so VACUUM first.
sq($node, "CREATE EXTENSION IF NOT EXISTS pg_walinspect");
sq($node, "VACUUM apikeys.keys, tok");
my $ro = $node->safe_psql('postgres', qq{
	ALTER SYSTEM SET apikeys.flush_interval = 3600; SELECT pg_reload_conf(); SELECT pg_sleep(1.5);
	SELECT pg_current_wal_insert_lsn() AS before \\gset
	BEGIN READ ONLY;
	SELECT count(*) FROM generate_series(1, 1000) g, tok WHERE tok.name = 'plain'
	   AND (apikeys.verify(tok.token, CASE WHEN g > 0 THEN 'docs:read' END)).valid;
	COMMIT;
	SELECT pg_current_wal_insert_lsn() AS after, pg_sleep(0.5) AS slept \\gset
	SELECT CASE WHEN :'before'::pg_lsn = :'after'::pg_lsn THEN 0
	            ELSE (SELECT count(*) FROM pg_get_wal_records_info(:'before', :'after')
	                   WHERE resource_manager <> 'Standby'
	                     AND NOT (resource_manager = 'Heap2' AND record_type IN ('PRUNE', 'PRUNE_ON_ACCESS'))) END;
});
my @ro = split /\n/, $ro;
is($ro[-2], '1000', '1000 verifications VALID inside READ ONLY transaction');
is($ro[-1], '0', 'no WAL record written by 1000 verifications');

# --- usage rows appear after a flush, last_used_at is set, no audit rows
sq($node, "SELECT apikeys.verify($v, 'docs:write')");    # INSUFFICIENT_SCOPE
sq($node, "SELECT " . wrong('192.0.2.10'));    # NOT_FOUND for a known ID
ok(sq($node, 'SELECT apikeys.flush_usage()') > 0, 'flush_usage wrote rows');
is(sq($node, qq{SELECT string_agg(code || '=' || count, ',' ORDER BY code) FROM apikeys.key_usage WHERE client_id = '$cid'}),
	'INSUFFICIENT_SCOPE=1,NOT_FOUND=1,VALID=1001', 'usage per key and code');
is(sq($node, qq{SELECT last_used_at IS NOT NULL AND last_used_at > now() - interval '1 minute' FROM apikeys.key_list WHERE client_id = '$cid'}),
	't', 'last_used_at set by the flush');
is(sq($node, 'SELECT count(*) FROM apikeys.audit_log'), $audit_before, 'the flush wrote no audit rows');
is(sq($node, 'SELECT apikeys.flush_usage()'), '0', 'a second flush has nothing to write');

# --- the background worker flushes by itself
sq($node, "ALTER SYSTEM SET apikeys.flush_interval = 1; SELECT pg_reload_conf()");
sq($node, "SELECT apikeys.verify($v)");
ok($node->poll_query_until('postgres',
	qq{SELECT count = 1002 FROM apikeys.key_usage WHERE client_id = '$cid' AND code = 'VALID'}, 't'),
	'the background worker flushed within a few intervals');

# --- failures survive a rolled-back request
for my $i (1 .. 3)
{
	sq($node, "BEGIN; SELECT " . wrong('198.51.100.7') . "; ROLLBACK;");
}
is(sq($node, q{SELECT failures FROM apikeys.failing_addresses WHERE address = '198.51.100.7'}), '3',
	'failures counted although each request rolled back');

# --- a flood from one address never stops the right secret elsewhere
for my $i (1 .. 10)
{
	sq($node, "SELECT " . wrong('203.0.113.66'));
}
is(sq($node, q{SELECT blocked FROM apikeys.failing_addresses WHERE address = '203.0.113.66'}), 't',
	'flooding address is blocked');
is(sq($node, "SELECT (v).code || ' ' || ((v).retry_after BETWEEN 1 AND 10) FROM (SELECT " . wrong('203.0.113.66') . " v) s"),
	'RATE_LIMITED true', 'the flooding address gets RATE_LIMITED with retry_after');
is(sq($node, "SELECT (apikeys.verify($v, NULL, '203.0.113.66')).code"), 'VALID',
	'the right secret from the flooding address itself still works');
is(sq($node, "SELECT (apikeys.verify($v, NULL, '203.0.113.77')).code"), 'VALID',
	'the right secret from another address still works');
is(sq($node, "SELECT (apikeys.verify($v, NULL, '2001:db8:1::1')).code"), 'VALID',
	'and from an IPv6 address');
is(sq($node, "SELECT (apikeys.verify($v)).code"), 'VALID',
	'and from a connection without an address');
for my $i (1 .. 6)
{
	sq($node, "SELECT " . wrong("2001:db8:2::$i"));
}
is(sq($node, q{SELECT failures || ' ' || blocked FROM apikeys.failing_addresses WHERE address = '2001:db8:2::/64'}),
	'5 true', 'IPv6 failures are counted per /64 (blocked attempts are not failures)');
is(sq($node, q{SELECT count(*) FROM apikeys.failing_addresses WHERE masklen(address) IN (32, 64)}), '4',
	'one row per address, never per attempt');
is(sq($node, q{SELECT count(*) FROM apikeys.failing_addresses a
		 WHERE masklen(a.address) IN (32, 64)
		   AND NOT EXISTS (SELECT FROM apikeys.failing_addresses n
						   WHERE masklen(n.address) = CASE family(a.address) WHEN 4 THEN 24 ELSE 48 END
							 AND a.address <<= n.address AND n.failures >= a.failures)}), '0',
	'and each address counts in its network (IPv4 /24, IPv6 /48) too');
sleep(10.2);
is(sq($node, "SELECT (" . wrong('203.0.113.66') . ").code"), 'NOT_FOUND',
	'the address counts anew after the window');

# --- rate limit: RATE_LIMITED with retry_after, recovers after the window
my $l = "(SELECT token FROM tok WHERE name = 'limited')";
is(sq($node, "SELECT string_agg((apikeys.verify($l)).code, ',') FROM generate_series(1, 4)"),
	'VALID,VALID,VALID,RATE_LIMITED', 'fourth request in the window is rate limited');
is(sq($node, "SELECT (v).retry_after BETWEEN 1 AND 3 FROM (SELECT apikeys.verify($l) v) s"), 't',
	'retry_after gives the seconds until the window ends');
sleep(3.2);
is(sq($node, "SELECT (apikeys.verify($l)).code"), 'VALID', 'rate limit recovers after the window');
is(sq($node, "SELECT (apikeys.verify($l, 'docs:write')).code"), 'INSUFFICIENT_SCOPE',
	'scope is checked before the rate limit');

# --- a crash loses at most one flush interval of usage, and nothing else
sq($node, "ALTER SYSTEM SET apikeys.flush_interval = 3600; SELECT pg_reload_conf()");
sleep(1.5);
sq($node, 'SELECT apikeys.flush_usage()');
my $flushed = sq($node, qq{SELECT count FROM apikeys.key_usage WHERE client_id = '$cid' AND code = 'VALID'});
sq($node, "SELECT apikeys.verify($v) FROM generate_series(1, 7)");    # not flushed
my $keys_before = sq($node, q{SELECT md5(string_agg(client_id || status, ',' ORDER BY client_id)) FROM apikeys.key_list});
my $audit_rows = sq($node, 'SELECT count(*) FROM apikeys.audit_log');
$node->stop('immediate');
$node->start;
is(sq($node, qq{SELECT count FROM apikeys.key_usage WHERE client_id = '$cid' AND code = 'VALID'}), $flushed,
	'after a crash the flushed usage is intact (the unflushed interval is lost)');
is(sq($node, q{SELECT md5(string_agg(client_id || status, ',' ORDER BY client_id)) FROM apikeys.key_list}), $keys_before,
	'keys intact after the crash');
is(sq($node, 'SELECT count(*) FROM apikeys.audit_log'), $audit_rows, 'audit trail intact after the crash');
is(sq($node, "SELECT (apikeys.verify($v)).code"), 'VALID', 'verification works after the crash');

# --- the worker is restarted by the postmaster after being killed
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'apikeys usage flusher'"),
	'flusher running after restart');
my $pid = sq($node, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'apikeys usage flusher'");
kill 'KILL', $pid;
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'apikeys usage flusher' AND pid <> $pid"),
	'flusher restarted after kill -9');
sq($node, "ALTER SYSTEM SET apikeys.flush_interval = 1; SELECT pg_reload_conf()");
sq($node, "SELECT apikeys.verify($v)");
ok($node->poll_query_until('postgres',
	qq{SELECT count = $flushed + 1 FROM apikeys.key_usage WHERE client_id = '$cid' AND code = 'VALID'}),
	'the restarted worker flushes');

$node->stop;
done_testing();
