# test/t/062_tcp_client.pl
#
# A real TCP client on 127.0.0.1 (the cluster listens there, with host
# trust authentication in pg_hba.conf) and apikeys preloaded, as README
# recommends, with the default throttle settings.  Without client_ip,
# verification takes the connection's address:
#   - allowed_cidrs applies to it: 127.0.0.0/8 accepted, 10.0.0.0/8 refused
#     (and the same keys over a unix socket, where no address is known,
#     fail closed);
#   - failed verifications are throttled per caller (the address with the
#     client ID it names): after apikeys.max_failures failures, that
#     caller's failing attempts answer RATE_LIMITED, while correct secrets
#     from the same address, the same key's included, stay VALID;
#   - one stranger sending 10,000 failures through 127.0.0.1 (wrong
#     secrets of another caller's key, and junk) never makes a valid key of
#     the other callers behind that address answer anything but VALID,
#     through verify, verify_client, authenticate and pre_request (the
#     PostgREST case, trust_forwarded_for off: PostgREST's own address);
#   - the audit log records the client's address.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

# the extension is created below, after the two connections are checked
my $node = start_node('tcp', tcp => 1, create => '');

my $tcp = tcp_connstr($node);
# tq: over TCP from 127.0.0.1; uq: over the unix socket (setup and checks)
sub tq { return $node->safe_psql('postgres', $_[0], connstr => $tcp); }
sub uq { return sq($node, $_[0]); }

is(tq('SELECT inet_client_addr()'), '127.0.0.1', 'the client connects over TCP from 127.0.0.1');
is(uq('SELECT inet_client_addr() IS NULL'), 't', 'the other client uses the unix socket');

uq('CREATE EXTENSION apikeys');
uq(q{CREATE TABLE tok AS
	SELECT 'loopback'::text AS name, (k).client_id, (k).token
	  FROM apikeys.create_key('tcp-owner', 'loopback', ARRAY['docs:read'],
	                          allowed_cidrs => ARRAY['127.0.0.0/8']::cidr[]) k
	UNION ALL
	SELECT 'ten', (k).client_id, (k).token
	  FROM apikeys.create_key('tcp-owner', 'ten', ARRAY['docs:read'],
	                          allowed_cidrs => ARRAY['10.0.0.0/8']::cidr[]) k
	UNION ALL
	SELECT 'open', (k).client_id, (k).token
	  FROM apikeys.create_key('tcp-owner', 'open', ARRAY['docs:read']) k});
sub tok { return "(SELECT token FROM tok WHERE name = '$_[0]')"; }
sub cid { return uq("SELECT client_id FROM tok WHERE name = '$_[0]'"); }
# try_pre(headers): what pre_request answers for these request.headers:
# "ok" (the key is the request's identity) or the HTTP status and code;
# try_auth(token): what authenticate() answers, the code or the SQLSTATE
uq(q{CREATE FUNCTION try_pre(headers jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE m text; d text;
BEGIN
    PERFORM set_config('request.headers', headers::text, true);
    PERFORM apikeys.pre_request();
    RETURN CASE WHEN apikeys.current_client_id() IS NOT NULL THEN 'ok' ELSE 'anonymous' END;
EXCEPTION WHEN SQLSTATE 'PGRST' THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL;
    RETURN (d::jsonb ->> 'status') || ' ' || (m::jsonb ->> 'code');
END $$});
uq(q{CREATE FUNCTION try_auth(tok text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RETURN (apikeys.authenticate(tok)).code;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$});
# Basic credentials: a client ID with a secret
sub basic
{
	return "jsonb_build_object('authorization', 'Basic ' || replace(encode(convert_to($_[0] || ':' || $_[1], 'UTF8'), 'base64'), E'\\n', ''))";
}

# allowed_cidrs against the connection's address
is(tq("SELECT (apikeys.verify(" . tok('loopback') . ")).code"), 'VALID',
	'allowed_cidrs 127.0.0.0/8: VALID from 127.0.0.1 without client_ip');
is(tq("SELECT (apikeys.verify(" . tok('ten') . ")).code"), 'IP_NOT_ALLOWED',
	'allowed_cidrs 10.0.0.0/8: IP_NOT_ALLOWED from 127.0.0.1 without client_ip');
is(tq("SELECT (apikeys.verify(" . tok('ten') . ", NULL, '10.1.2.3')).code"), 'VALID',
	'... the same key is VALID for a client_ip inside 10.0.0.0/8');
is(uq("SELECT (apikeys.verify(" . tok('loopback') . ")).code"), 'IP_NOT_ALLOWED',
	'over the unix socket no address is known: the 127.0.0.0/8 key fails closed');
my ($rc, $out, $err) = $node->psql('postgres',
	"BEGIN; SELECT apikeys.authenticate(" . tok('ten') . "); COMMIT;", connstr => $tcp);
like($err, qr/ERROR:  .*API key/, 'authenticate over TCP refuses the 10.0.0.0/8 key from 127.0.0.1');

# per-caller throttling of failures, from the connection's address
# (defaults: apikeys.max_failures 100, max_network_failures 1000, 1 h)
my $ocid = cid('open');
my $bad = 'A' x 43;
is(tq("SELECT string_agg(c || ' ' || n, ',' ORDER BY c) FROM (SELECT (apikeys.verify_client('$ocid', '$bad')).code c, count(*) n "
	  . "FROM generate_series(1, 101) GROUP BY 1) s"),
	'NOT_FOUND 100,RATE_LIMITED 1', '101 wrong secrets from 127.0.0.1: 100 NOT_FOUND, then RATE_LIMITED');
is(tq("SELECT string_agg(c || ' ' || n, ',') FROM (SELECT (apikeys.verify_client('$ocid', '$bad')).code c, count(*) n "
	  . "FROM generate_series(1, 5) GROUP BY 1) s"),
	'RATE_LIMITED 5', 'the failing caller stays slowed');
is(tq("SELECT v.code || ' ' || (v.retry_after IS NULL)::int FROM apikeys.verify(" . tok('open') . ") v"),
	'VALID 1', 'the right secret of the very key attacked, from 127.0.0.1, is VALID');
is(tq("SELECT (apikeys.verify_client('$ocid', '$bad')).retry_after > 0"), 't',
	'... while a wrong one answers RATE_LIMITED with retry_after');
is(uq("SELECT (apikeys.verify(" . tok('open') . ")).code"), 'VALID',
	'the right secret over the unix socket verifies');

# --- one stranger, 10,000 failures through one address, while the other
# callers behind it verify throughout (one TCP session per statement, all
# from 127.0.0.1)
uq(q{CREATE TABLE others AS
	SELECT 'other' || i AS name, (k).client_id, (k).client_secret, (k).token
	  FROM generate_series(1, 3) i, apikeys.create_key('tcp-owner-' || i, 'other' || i, ARRAY['docs:read']) k});
my $victim = uq("SELECT client_id FROM others WHERE name = 'other1'");
# what the other callers get: every verification path, from 127.0.0.1
my $others_sql = q{
SELECT string_agg(r, ',' ORDER BY r) FROM (
  SELECT DISTINCT (apikeys.verify(o.token)).code AS r FROM others o
  UNION
  SELECT DISTINCT (apikeys.verify_client(o.client_id, o.client_secret, 'docs:read')).code FROM others o
  UNION
  SELECT DISTINCT try_auth(o.token) FROM others o) s};
my $others_pre = q{SELECT string_agg(try_pre(jsonb_build_object('x-api-key', o.token)), ',' ORDER BY o.name) FROM others o};
my ($rounds, $all_valid, $pre_ok, %attacker) = (20, 0, 0, NOT_FOUND => 0, RATE_LIMITED => 0);
my $t0 = Time::HiRes::time();
for my $round (1 .. $rounds)
{
	# 500 failures per round: wrong secrets of other1's key, and junk
	# client IDs (a new one each time), half and half
	my $r = tq("SELECT string_agg(c || ' ' || n, ',' ORDER BY c) FROM (SELECT c, count(*) n FROM ("
		  . "SELECT (apikeys.verify_client(CASE WHEN g % 2 = 0 THEN '$victim' "
		  . "ELSE 'ak_' || lpad(($round * 1000 + g)::text, 16, 'x') END, '$bad')).code c "
		  . "FROM generate_series(1, 500) g) s GROUP BY c) t");
	for (split /,/, $r) { my ($c, $n) = split / /; $attacker{$c} += $n; }
	$all_valid++ if tq($others_sql) eq 'VALID';
	$pre_ok++ if tq($others_pre) eq 'ok,ok,ok';
}
my $elapsed = Time::HiRes::time() - $t0;
is($attacker{NOT_FOUND} + $attacker{RATE_LIMITED}, 10000, 'the stranger failed 10,000 times from 127.0.0.1');
ok($attacker{RATE_LIMITED} >= 9000,
	"and was slowed: $attacker{RATE_LIMITED} of its attempts answered RATE_LIMITED");
is($all_valid, $rounds, "other callers' keys through 127.0.0.1 stayed VALID in all $rounds rounds "
	  . '(verify, verify_client, authenticate)');
is($pre_ok, $rounds, "... and through pre_request with the connection's address (PostgREST, default settings)");
is(tq("SELECT try_pre(" . basic("'$victim'", "'$bad'") . ")"), '429 RATE_LIMITED',
	"the stranger's wrong secret through pre_request answers 429");
is(tq("SELECT try_pre(" . basic("'$victim'", "(SELECT client_secret FROM others WHERE name = 'other1')") . ")"), 'ok',
	'the right secret of the key it guessed 5,000 times, through pre_request (Basic): the request is that key');
is(uq("SELECT string_agg(address || ' ' || who || ' ' || failures, ',' ORDER BY address, who) FROM ("
	  . "SELECT address, coalesce(CASE client_id WHEN '$ocid' THEN 'open' WHEN '$victim' THEN 'other1' END, '-') who, failures "
	  . "FROM apikeys.failing_addresses WHERE blocked) s"),
	'127.0.0.0/24 - 1000,127.0.0.1/32 - 100,127.0.0.1/32 open 100,127.0.0.1/32 other1 100',
	'listed as blocked: 127.0.0.1 naming each attacked client ID and naming unknown ones (max_failures), and its /24 (max_network_failures)');
is(uq("SELECT count(*) FROM apikeys.failing_addresses WHERE client_id LIKE 'ak\\_xxxxxx%'"), '0',
	'a junk client ID is no caller of its own: it counts against the address alone');
diag(sprintf('10,000 failures from one caller and %d rounds of valid checks over TCP: %.1f s', $rounds, $elapsed));

# an admin lifts the blocks
is(uq("SELECT apikeys.unblock_address('127.0.0.1')"), 't', 'unblock_address(127.0.0.1) lifts the callers\' blocks');
is(uq("SELECT count(*) FROM apikeys.failing_addresses WHERE address = '127.0.0.1'"), '0',
	'every caller record of 127.0.0.1 is gone');
is(uq("SELECT blocked FROM apikeys.failing_addresses WHERE address = '127.0.0.0/24'"), 't',
	'the network record is not');
is(uq("SELECT apikeys.unblock_address('127.0.0.0/24')"), 't', 'unblock_address(127.0.0.0/24) lifts it');
is(tq("SELECT (apikeys.verify_client('$ocid', '$bad')).code"), 'NOT_FOUND',
	'a wrong secret from 127.0.0.1 counts anew');
is(uq("SELECT apikeys.unblock_address('192.0.2.1')"), 'f', 'nothing to lift: false');
is(uq("SELECT string_agg(detail->>'address' || ' ' || (detail->>'blocks_lifted'), ',' ORDER BY id) "
	  . "FROM apikeys.audit_log WHERE event = 'address_unblocked'"),
	'127.0.0.1/32 3,127.0.0.0/24 1', 'both lifts are audited (three caller blocks: two client IDs and the address alone), the no-op is not');

# the audit log records the connection's address
tq("SELECT apikeys.disable_key('$ocid', 'over tcp')");
uq("SELECT apikeys.enable_key('$ocid')");
is(uq("SELECT string_agg(event || '=' || coalesce(host(client_addr), 'none'), ',' ORDER BY id)
         FROM apikeys.audit_log WHERE client_id = '$ocid' AND event IN ('disabled', 'enabled')"),
	'disabled=127.0.0.1,enabled=none', 'audit rows carry client_addr 127.0.0.1 over TCP, none over the socket');

$node->stop;
done_testing();
