# Keys, policies and the audit trail survive pg_dump and a restore into a
# new cluster: the same tokens verify the same way there.  Neither the dump
# nor the server log (log_statement = all) contains a secret.
#
# It runs twice: without and with apikeys in shared_preload_libraries on
# both clusters (README's setup), each in a subtest.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

my %tok;

for_each_preload(\&run_config);
done_testing();

sub run_config
{
my ($preload, $libs) = @_;
%tok = ();
my $src = PostgreSQL::Test::Cluster->new($preload ? 'source_preloaded' : 'source');
$src->init;
$src->append_conf('postgresql.conf', qq(
log_statement = 'all'
log_min_duration_statement = 0
log_min_messages = debug1
shared_preload_libraries = '$libs'
));
$src->start;
is($src->safe_psql('postgres', "SELECT current_setting('shared_preload_libraries')"), $libs,
	"source runs with shared_preload_libraries = '$libs'");
$src->safe_psql('postgres', 'CREATE DATABASE app');
$src->safe_psql('app', 'CREATE EXTENSION apikeys');
$src->safe_psql('app', "SELECT apikeys.set_owner_policy('dump-owner', 10)");

# issue keys in every state; remember their tokens and secrets
my @secrets;
for my $name (qw(active disabled revoked rotated expired scoped)) {
	my $row = $src->safe_psql('app',
		"SELECT client_id || '|' || client_secret || '|' || token FROM apikeys.create_key('dump-owner', '$name', ARRAY['docs:read'])");
	my ($cid, $secret, $token) = split /\|/, $row;
	$tok{$name} = { cid => $cid, token => $token };
	push @secrets, $secret, $token;
}
$src->safe_psql('app', "SELECT apikeys.disable_key('$tok{disabled}{cid}', 'paused')");
$src->safe_psql('app', "SELECT apikeys.revoke_key('$tok{revoked}{cid}', 'gone')");
my $rot = $src->safe_psql('app',
	"SELECT client_secret || '|' || token FROM apikeys.rotate_key('$tok{rotated}{cid}', '1 hour')");
my ($rsecret, $rtoken) = split /\|/, $rot;
push @secrets, $rsecret, $rtoken;
$tok{rotated_new} = { cid => $tok{rotated}{cid}, token => $rtoken };
$src->safe_psql('app', "UPDATE apikeys.keys SET expires_at = now() - interval '1 minute' WHERE client_id = '$tok{expired}{cid}'");
$src->safe_psql('app', "SELECT apikeys.set_owner_policy('dump-owner', 9, '30 days')");
# verify a few times, also with wrong tokens, so the log has verify calls
$src->safe_psql('app', "SELECT apikeys.verify('not-a-token')");

my $log = slurp_file($src->logfile);
my $leaks_log = grep { index($log, $_) >= 0 } @secrets;
is($leaks_log, 0, 'no secret or token in the server log (log_statement = all) after issuing');

# From here on the test itself sends tokens to verify(): a client's own
# statement text is logged by log_statement, which is the client's choice.
my $before = codes($src);
is_deeply($before, {
	active => 'VALID', disabled => 'DISABLED', revoked => 'REVOKED', rotated => 'VALID',
	rotated_new => 'VALID', expired => 'EXPIRED', scoped => 'VALID' }, 'codes before the dump');

my $audit_before = $src->safe_psql('app',
	'SELECT string_agg(id || event || coalesce(client_id, \'\') || detail::text, \',\' ORDER BY id) FROM apikeys.audit_log');
my $policy_before = $src->safe_psql('app', 'SELECT owner, max_keys, max_lifetime FROM apikeys.owner_policies ORDER BY 1');

# dump (plain SQL, so it can be searched) and restore into a new cluster
my $dumpfile = $src->basedir . '/app.sql';
$src->command_ok([ 'pg_dump', '-d', $src->connstr('app'), '-f', $dumpfile ], 'pg_dump');
my $dump = slurp_file($dumpfile);
like($dump, qr/COPY apikeys\.keys/, 'the dump carries the keys table');
like($dump, qr/COPY apikeys\.audit_log/, 'the dump carries the audit log');

my $leaks_dump = grep { index($dump, $_) >= 0 } @secrets;
is($leaks_dump, 0, 'no secret or token in the dump');

my $dst = PostgreSQL::Test::Cluster->new($preload ? 'restored_preloaded' : 'restored');
$dst->init;
$dst->append_conf('postgresql.conf', "shared_preload_libraries = '$libs'\n");
$dst->start;
$dst->safe_psql('postgres', 'CREATE DATABASE app');
$dst->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $dst->connstr('app'), '-f', $dumpfile ],
	'restore into a new cluster');

is_deeply(codes($dst), $before, 'the same tokens verify the same way after the restore');
is($dst->safe_psql('app',
	'SELECT string_agg(id || event || coalesce(client_id, \'\') || detail::text, \',\' ORDER BY id) FROM apikeys.audit_log'),
	$audit_before, 'every audit row is there, unchanged');
is($dst->safe_psql('app', 'SELECT owner, max_keys, max_lifetime FROM apikeys.owner_policies ORDER BY 1'),
	$policy_before, 'owner policies are there');

# the restored database keeps working: new keys, new audit rows, the cap
my $n = $dst->safe_psql('app',
	"SELECT count(*) FROM apikeys.create_key('dump-owner', 'after restore', '{}')");
is($n, '1', 'create_key works after the restore');
is($dst->safe_psql('app', "SELECT count(*) FROM apikeys.audit_log WHERE detail->>'name' = 'after restore'"),
	'1', 'new audit rows continue the sequence');
my ($ret, $out, $err) = $dst->psql('app', 'UPDATE apikeys.audit_log SET event = \'x\'');
like($err, qr/append-only/, 'the audit log is still append-only after the restore');
$src->stop;
$dst->stop;
}

sub codes
{
	my ($node) = @_;
	my %c;
	for my $k (sort keys %tok) {
		$c{$k} = $node->safe_psql('app', "SELECT (apikeys.verify('$tok{$k}{token}', 'docs:read')).code");
	}
	return \%c;
}
