# The failure throttle (src/verify_throttle.c) against the attacks of issue 10: a
# forged X-Forwarded-For entry behind an appending proxy, address forms
# that shared one bucket, and a flood of distinct addresses that filled the
# table (fail open) and stalled valid verifications behind a global lock;
# and of issue 18: a blocked address or network must never refuse a
# correct secret (only the failing attempts answer RATE_LIMITED), and the
# answers must not tell which client IDs exist.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;
use IPC::Run;
use Time::HiRes qw(usleep);

$PostgreSQL::Test::Utils::timeout_default = 120;

my $node = start_node('throttle', conf => qq{
apikeys.max_failures = 5
apikeys.max_network_failures = 50
apikeys.failure_window = 3600
apikeys.trust_forwarded_for = on
});


sq($node, q{CREATE TABLE tok AS
      SELECT 'plain'::text AS name, (k).client_id, (k).client_secret, (k).token
        FROM apikeys.create_key('thr-owner', 'plain', ARRAY['docs:read']) k
      UNION ALL
      SELECT 'target', (k).client_id, (k).client_secret, (k).token
        FROM apikeys.create_key('thr-victim', 'target', ARRAY['docs:read']) k
      UNION ALL
      SELECT 'office', (k).client_id, (k).client_secret, (k).token
        FROM apikeys.create_key('thr-owner', 'office', ARRAY['docs:read'],
                                allowed_cidrs => '{203.0.113.0/24}') k});
my $cid = sq($node, "SELECT client_id FROM tok WHERE name = 'plain'");
# the flood guesses secrets of another owner's key (the timed key is not
# the one attacked, so only the throttle is shared between the two)
my $target = sq($node, "SELECT client_id FROM tok WHERE name = 'target'");

# what pre_request answers for these headers: "ok" or the HTTP status
sq($node, q{CREATE FUNCTION try(headers jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE m text; d text;
BEGIN
    PERFORM set_config('request.headers', headers::text, true);
    PERFORM apikeys.pre_request();
    RETURN 'ok';
EXCEPTION WHEN SQLSTATE 'PGRST' THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL;
    RETURN (d::jsonb ->> 'status') || ' ' || (m::jsonb ->> 'code');
END $$});
# headers presenting a key (by name) behind an appending proxy
sub hdr
{
	my ($name, $xff) = @_;
	return "jsonb_build_object('x-api-key', (SELECT token FROM tok WHERE name = '$name'), 'x-forwarded-for', '$xff')";
}
# Basic credentials with the right client ID and a wrong secret
my $basic_wrong = "'Basic ' || replace(encode(convert_to('$cid:' || repeat('A', 43), 'UTF8'), 'base64'), E'\\n', '')";
sub wrong { return "(apikeys.verify_client('$cid', repeat('A', 43), NULL, '$_[0]')).code"; }
sub right { return "(apikeys.verify((SELECT token FROM tok WHERE name = 'plain'), NULL, '$_[0]')).code"; }

# --- the appending-proxy attack: the first entry is the client's own
is(sq($node, "SELECT try(" . hdr('office', '203.0.113.5, 198.51.100.20') . ")"), '403 IP_NOT_ALLOWED',
	'a forged first X-Forwarded-For entry does not pass allowed_cidrs');
is(sq($node, "SELECT try(" . hdr('office', '198.51.100.20, 203.0.113.5') . ")"), 'ok',
	'the entry the proxy appended does');
my @answers;
for my $i (1 .. 7)
{
	push @answers, sq($node, "SELECT try(jsonb_build_object('authorization', $basic_wrong, "
		  . "'x-forwarded-for', '10.0.$i.1, 198.51.100.20'))");
}
is(join(',', @answers), join(',', ('401 NOT_FOUND') x 5, ('429 RATE_LIMITED') x 2),
	'rotating the first entry does not escape the throttle: 429 after max_failures');
is(sq($node, "SELECT blocked FROM apikeys.failing_addresses WHERE address = '198.51.100.20'"), 't',
	'the failures counted against the appended (real) address');
is(sq($node, "SELECT count(*) FROM apikeys.failing_addresses WHERE address << '10.0.0.0/16'"), '0',
	'and never against the forged ones');

# --- address forms: mapped and compatible are IPv4, ::1 is its own bucket
sq($node, "SELECT " . wrong('::ffff:192.0.2.10')) for 1 .. 5;
is(sq($node, "SELECT failures || ' ' || blocked FROM apikeys.failing_addresses WHERE address = '192.0.2.10'"),
	'5 true', 'failures from ::ffff:192.0.2.10 count against 192.0.2.10');
is(sq($node, "SELECT " . wrong('192.0.2.10') . ", " . wrong('::192.0.2.10') . ", " . wrong('::ffff:192.0.2.10')),
	'RATE_LIMITED|RATE_LIMITED|RATE_LIMITED', 'its plain, compatible and mapped forms are one bucket');
is(sq($node, "SELECT " . right('192.0.2.10') . ", " . right('::192.0.2.10') . ", " . right('::ffff:192.0.2.10')),
	'VALID|VALID|VALID', 'the right secret of that very key from there is VALID in every form');
is(sq($node, "SELECT " . wrong('::ffff:192.0.2.11') . ", " . wrong('192.0.2.12') . ", " . wrong('::1')),
	'NOT_FOUND|NOT_FOUND|NOT_FOUND', 'another mapped address and the loopback are not blocked with it');
sq($node, "SELECT " . wrong('::1')) for 1 .. 4;
is(sq($node, "SELECT " . wrong('::1') . ", " . right('::1') . ", " . wrong('::ffff:192.0.2.13') . ", " . wrong('2001:db8:5::1')),
	'RATE_LIMITED|VALID|NOT_FOUND|NOT_FOUND', '::1 blocked alone: mapped addresses and other IPv6 unaffected');
is(sq($node, "SELECT failures FROM apikeys.failing_addresses WHERE address = '::1' AND client_id IS NOT NULL"), '5',
	'::1 is listed as itself, not as ::/64');

# --- the answers do not tell which client IDs exist: a failing caller is
# the address with the client ID it names when that exists, else the
# address alone (a made-up client ID is not a new caller each time)
my $ghost = 'ak_' . ('Q' x 16);
is(sq($node, "SELECT string_agg((apikeys.verify_client('$ghost', repeat('A', 43), NULL, '192.0.2.77')).code, ',') FROM generate_series(1, 6)")
	  . ' / ' . sq($node, "SELECT string_agg((apikeys.verify_client('$cid', repeat('A', 43), NULL, '192.0.2.78')).code, ',') FROM generate_series(1, 6)"),
	join(',', ('NOT_FOUND') x 5, 'RATE_LIMITED') . ' / ' . join(',', ('NOT_FOUND') x 5, 'RATE_LIMITED'),
	'failures naming an unknown client ID and an existing one are throttled alike');
is(sq($node, "SELECT " . wrong('192.0.2.77') . ", " . wrong('192.0.2.78') . ", "
	  . "(apikeys.verify_client('ak_' || repeat('R', 16), repeat('A', 43), NULL, '192.0.2.78')).code"),
	'NOT_FOUND|RATE_LIMITED|NOT_FOUND', '... and a blocked caller says nothing about other client IDs from the same address');
is(sq($node, "SELECT string_agg(host(address) || '=' || CASE WHEN client_id IS NULL THEN 'address' "
	  . "WHEN client_id = '$cid' THEN 'cid' ELSE client_id END, ',' ORDER BY address) FROM apikeys.failing_addresses "
	  . "WHERE address IN ('192.0.2.77', '192.0.2.78') AND blocked"),
	'192.0.2.77=address,192.0.2.78=cid',
	'both are listed as blocked callers: the existing client ID as presented, the unknown one as the address alone');

# --- a flood of distinct addresses
# Valid verifications from an address that never fails, timed in the
# server (ms for n).
sq($node, q{CREATE FUNCTION valid_run(n integer) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp(); c integer;
BEGIN
    SELECT count(*) INTO c FROM generate_series(1, n) g
     WHERE (apikeys.verify((SELECT token FROM tok WHERE name = 'plain'), NULL, '198.18.0.1')).code = 'VALID';
    IF c <> n THEN RAISE EXCEPTION 'only % of % valid', c, n; END IF;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$});
# IPv4 addresses g: 40 per /24 (under max_network_failures), all distinct
sub v4flood
{
	my ($from, $to) = @_;
	return "SELECT count(*) FROM generate_series($from, $to) g WHERE "
	  . "(apikeys.verify_client('$target', repeat('A', 43), NULL, "
	  . "('10.' || (g / 10000 % 250 + 1) || '.' || (g / 40 % 250) || '.' || (g % 40 + 1))::inet)).code = 'NOT_FOUND'";
}
sub best_of
{
	my $best;
	for (1 .. 3)
	{
		my $ms = sq($node, 'SELECT valid_run(20000)');
		$best = $ms if !defined $best || $ms < $best;
	}
	return $best;
}

# ten addresses (of ten /24s, none blocked as a network) blocked before the flood
sq($node, "SELECT " . wrong("100.64.$_.9")) for map { ($_) x 5 } 1 .. 10;
is(sq($node, "SELECT count(*) FROM apikeys.failing_addresses WHERE address << '100.64.0.0/16' AND blocked"), '10',
	'ten addresses blocked before the flood, and not their networks');

my $alone = best_of();
is(sq($node, v4flood(1, 40000)), '40000', 'a flood of 40,000 distinct IPv4 addresses fails');
my ($tracked, $capacity, $dropped) = split /\|/,
  sq($node, 'SELECT tracked_addresses, address_capacity, dropped_addresses FROM apikeys.usage_stats()');
ok($tracked > 0.9 * $capacity && $dropped > 0,
	"the address table filled up and evicted ($tracked of $capacity tracked, $dropped dropped)");
is(sq($node, "SELECT count(*) FROM generate_series(1, 10) i WHERE "
	  . "(apikeys.verify_client('$cid', repeat('A', 43), NULL, ('100.64.' || i || '.9')::inet)).code = 'RATE_LIMITED'"),
	'10', 'the callers blocked before the flood stay blocked');
is(sq($node, "SELECT count(*) FROM generate_series(1, 10) i WHERE "
	  . "(apikeys.verify((SELECT token FROM tok WHERE name = 'plain'), NULL, ('100.64.' || i || '.9')::inet)).code = 'VALID'"),
	'10', '... and the right secret from each of them is VALID');
@answers = ();
push @answers, sq($node, "SELECT " . wrong('172.16.5.5')) for 1 .. 7;
is(join(',', @answers), join(',', ('NOT_FOUND') x 5, ('RATE_LIMITED') x 2),
	'a new flooding address after the table filled is still throttled (no fail open)');

# valid verifications while another backend runs $sql: best of three
# runs of 20,000, in ms
sub during
{
	my ($sql, $tag) = @_;
	my ($out, $err) = ('', '');
	my $active = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%$tag%' "
	  . "AND state = 'active' AND pid <> pg_backend_pid()";
	my $h = IPC::Run::start([ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-c', $sql ],
		'>', \$out, '2>', \$err);
	ok($node->poll_query_until('postgres', "SELECT ($active) = 1"), "$tag is running");
	usleep(200_000);
	my $ms = best_of();
	my $still = sq($node, $active);
	sq($node, "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%$tag%' "
		  . "AND pid <> pg_backend_pid()");
	$h->finish;
	is($still, '1', "$tag was still running when the timing ended");
	return $ms;
}
# the same CPU taken by a backend doing nothing with apikeys: the part of
# the slowdown that is only two processes on the machine's cores
my $cpu = during("SELECT count(*) /* cpu_load */ FROM generate_series(1, 1000000000) g WHERE g % 7 = 8",
	'cpu_load');
my $during = during(v4flood(40001, 400000) =~ s/generate_series/generate_series \/* v4_flood *\//r, 'v4_flood');
my $ratio = $during / $alone;
diag(sprintf('20,000 valid verifications: %.1f ms alone, %.1f ms beside a CPU-bound backend (%.2fx), '
	  . '%.1f ms during an IPv4 flood (%.2fx)', $alone, $cpu, $cpu / $alone, $during, $ratio));
ok($ratio < 5, sprintf('valid verifications during a flood cost %.2fx (bound 5x)', $ratio));

# IPv4: one failure from each of 60 addresses of one /24
is(sq($node, "SELECT string_agg(c || ' ' || n, ',') FROM (SELECT c, count(*) n FROM (SELECT (apikeys.verify_client('$cid', repeat('A', 43), NULL, "
	  . "('100.65.7.' || g)::inet)).code c FROM generate_series(1, 60) g) s GROUP BY c ORDER BY c) t"),
	'NOT_FOUND 50,RATE_LIMITED 10', 'walking through the addresses of a /24 is throttled after max_network_failures');

# IPv6: 20,000 /64s of one /48
is(sq($node, "SELECT " . wrong('2001:db8:a000:ffff::1')), 'NOT_FOUND', 'the /48 starts unthrottled');
is(sq($node, "SELECT string_agg(c, ',') FROM (SELECT c, count(*) FROM (SELECT (apikeys.verify_client('$cid', repeat('A', 43), NULL, "
	  . "('2001:db8:a000:' || to_hex(g) || '::1')::inet)).code c FROM generate_series(1, 20000) g) s GROUP BY c ORDER BY c) t"),
	'NOT_FOUND,RATE_LIMITED', 'a flood from 20,000 /64s of one /48 ends in RATE_LIMITED');
is(sq($node, "SELECT blocked FROM apikeys.failing_addresses WHERE address = '2001:db8:a000::/48'"), 't',
	'the /48 is blocked as a network');
is(sq($node, "SELECT " . wrong('2001:db8:a000:abcd::1') . ", " . wrong('2001:db8:b000::1')),
	'RATE_LIMITED|NOT_FOUND', 'a failure from a fresh /64 of that /48 is throttled, from another /48 not');
is(sq($node, "SELECT " . right('2001:db8:a000:abcd::1') . ", " . right('2001:db8:a000:1234::1')),
	'VALID|VALID', 'the right secret from inside the blocked /48 is VALID');

# --- unblock_address: an address lifts its callers, a network everything in it
is(sq($node, "SELECT apikeys.unblock_address('2001:db8:a000:abcd::1')"), 'f',
	'an IPv6 address means its /64, which had no blocked caller');
is(sq($node, "SELECT count(*) FROM apikeys.failing_addresses WHERE address = '2001:db8:a000:abcd::/64'"), '0',
	'... its record is cleared all the same');
is(sq($node, "SELECT apikeys.unblock_address('2001:db8:a000::/48')"), 't', 'the /48 is lifted');
is(sq($node, "SELECT count(*) FROM apikeys.failing_addresses WHERE address <<= '2001:db8:a000::/48'"), '0',
	'with every caller inside it');
is(sq($node, "SELECT " . wrong('2001:db8:a000:abcd::1')), 'NOT_FOUND', 'a failure from it counts anew');
is(sq($node, "SELECT apikeys.unblock_address('::ffff:192.0.2.10')"), 't', 'a mapped address lifts its IPv4 caller');
is(sq($node, "SELECT count(*) FROM apikeys.failing_addresses WHERE address = '192.0.2.10'"), '0', '... which is gone');
is(sq($node, "SELECT string_agg(detail->>'address', ',' ORDER BY id) FROM apikeys.audit_log WHERE event = 'address_unblocked'"),
	'2001:db8:a000:abcd::1/128,2001:db8:a000::/48,::ffff:192.0.2.10/128', 'each lift is audited as given');
my ($rc, $out, $err) = $node->psql('postgres', "SET ROLE apikeys_verifier; SELECT apikeys.unblock_address('192.0.2.77')");
like($err, qr/permission denied/, 'apikeys_verifier may not unblock');
($rc, $out, $err) = $node->psql('postgres', "SELECT apikeys.unblock_address(NULL)");
like($err, qr/address cannot be NULL/, 'a NULL address is refused (22023)');

# --- what a throttled caller costs (issue 18: the throttle contains cost):
# failing attempts answered RATE_LIMITED, from a blocked caller (a wrong
# secret of an existing key: a cache hit and a hash) and from a blocked
# network with a new junk client ID each (an index lookup, a hash, a new
# caller record), against valid verifications; best of three runs of
# 20,000, ms
sq($node, qq{CREATE FUNCTION fail_run(n integer, junk boolean, addr inet) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp(); c integer;
BEGIN
    SELECT count(*) INTO c FROM generate_series(1, n) g
     WHERE (apikeys.verify_client(CASE WHEN junk THEN 'ak_' || lpad(g::text, 16, '0') ELSE '$cid' END,
                                  repeat('A', 43), NULL, addr)).code = 'RATE_LIMITED';
    IF c <> n THEN RAISE EXCEPTION 'only % of % throttled', c, n; END IF;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END \$\$});
sub best_fail
{
	my ($junk, $addr) = @_;
	my $best;
	for (1 .. 3)
	{
		my $ms = sq($node, "SELECT fail_run(20000, $junk, '$addr')");
		$best = $ms if !defined $best || $ms < $best;
	}
	return $best;
}
my $valid_ms = best_of();
my $blocked_ms = best_fail('false', '100.64.1.9');
my $junk_ms = best_fail('true', '100.65.7.200');
diag(sprintf('20,000 attempts: %.1f ms valid, %.1f ms failing from a blocked caller (%.2fx), '
	  . '%.1f ms junk from a blocked network (%.2fx)',
	$valid_ms, $blocked_ms, $blocked_ms / $valid_ms, $junk_ms, $junk_ms / $valid_ms));
ok($blocked_ms / $valid_ms < 3, sprintf('a blocked caller\'s attempt costs about a verification (%.2fx, bound 3x)', $blocked_ms / $valid_ms));
ok($junk_ms / $valid_ms < 8, sprintf('a junk attempt from a blocked network costs at most a cache miss more (%.2fx, bound 8x)', $junk_ms / $valid_ms));

done_testing();
