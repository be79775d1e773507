# test/t/062_tcp_client.pl
#
# A real TCP client on 127.0.0.1 (the cluster listens there, with host
# trust authentication in pg_hba.conf) and apikeys preloaded, as README
# recommends.  Without client_ip, verification takes the connection's
# address:
#   - allowed_cidrs applies to it: 127.0.0.0/8 accepted, 10.0.0.0/8 refused
#     (and the same keys over a unix socket, where no address is known,
#     fail closed);
#   - failed verifications are throttled per address: after
#     apikeys.max_failures failures from 127.0.0.1 the right secret from
#     there answers RATE_LIMITED, while a unix-socket client is unaffected;
#   - the audit log records the client's address.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('tcp');
$node->init;
$node->append_conf('postgresql.conf', q{
listen_addresses = '127.0.0.1'
shared_preload_libraries = 'apikeys'
apikeys.max_failures = 3
apikeys.failure_window = '1h'
});
my $hba = $node->data_dir . '/pg_hba.conf';
my $hba_text = slurp_file($hba);
open my $fh, '>', $hba or die "could not write $hba: $!";
print $fh "host all all 127.0.0.1/32 trust\n", $hba_text;
close $fh;
$node->start;

my $tcp = 'host=127.0.0.1 port=' . $node->port . ' dbname=postgres';
# tq: over TCP from 127.0.0.1; uq: over the unix socket (setup and checks)
sub tq { return $node->safe_psql('postgres', $_[0], connstr => $tcp); }
sub uq { return $node->safe_psql('postgres', $_[0]); }

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

# per-address throttling of failures, from the connection's address
my $ocid = cid('open');
my $bad = 'A' x 43;
is(tq("SELECT string_agg((apikeys.verify_client('$ocid', '$bad')).code, ',') FROM generate_series(1, 3)"),
	'NOT_FOUND,NOT_FOUND,NOT_FOUND', 'three wrong secrets from 127.0.0.1');
is(uq("SELECT string_agg(address::text || ' ' || failures || ' ' || blocked::int, ',' ORDER BY address) FROM apikeys.failing_addresses"),
	'127.0.0.0/24 3 0,127.0.0.1/32 3 1',
	'the failures are counted against 127.0.0.1, which is blocked, and its /24, which is not');
is(tq("SELECT v.code || ' ' || (v.retry_after > 0)::int FROM apikeys.verify(" . tok('open') . ") v"),
	'RATE_LIMITED 1', 'the right secret from 127.0.0.1 now answers RATE_LIMITED with retry_after');
is(uq("SELECT (apikeys.verify(" . tok('open') . ")).code"), 'VALID',
	'the right secret over the unix socket still verifies');
is(tq("SELECT (apikeys.verify(" . tok('open') . ", NULL, '192.0.2.9')).code"), 'VALID',
	'... and so does an explicit client_ip of another address');

# the audit log records the connection's address
tq("SELECT apikeys.disable_key('$ocid', 'over tcp')");
uq("SELECT apikeys.enable_key('$ocid')");
is(uq("SELECT string_agg(event || '=' || coalesce(host(client_addr), 'none'), ',' ORDER BY id)
         FROM apikeys.audit_log WHERE client_id = '$ocid' AND event IN ('disabled', 'enabled')"),
	'disabled=127.0.0.1,enabled=none', 'audit rows carry client_addr 127.0.0.1 over TCP, none over the socket');

$node->stop;
done_testing();
