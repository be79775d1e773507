# test/t/071_derived_standby.pl
#
# Derived tokens (apikeys.derive_token) where pg_regress cannot reach: a
# token derived on the primary verifies on a hot standby, the standby
# derives tokens itself (in a read-only transaction) that the primary
# accepts, and a revoke replayed there ends them at once; a derived token's
# uses count against its key's rate limit; pg_dump leaves the signing secret
# out, so a restored database makes a new one and no derived token of the
# source verifies there, while native tokens do.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'apikeys'");
$primary->start;
sq($primary, q{
CREATE EXTENSION apikeys;
CREATE ROLE app LOGIN IN ROLE apikeys_verifier;
});

sub code
{
	my ($node, $token, $scope) = @_;
	return verify_code($node, $token, $scope, extra_params => [ '-U', 'app' ]);
}

# derive_token for TOKEN on NODE, as the verifier, in a READ ONLY transaction
sub derive
{
	my ($node, $token, $args) = @_;
	$args //= '';
	return $node->safe_psql('postgres', qq{
BEGIN READ ONLY;
SELECT valid FROM apikeys.authenticate('$token') \\g /dev/null
SELECT apikeys.derive_token($args);
COMMIT;
}, extra_params => [ '-U', 'app' ]);
}

my ($cid, $tok) = issue_key($primary, 'acme', 'parent', "ARRAY['docs:read', 'docs:create']");
my $d1 = derive($primary, $tok, "ARRAY['docs:read']");
like($d1, qr/^\Q$cid\E\.dt1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/, 'a derived token, shaped');

my $standby = start_standby($primary, 'standby');
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');

is(code($standby, $d1, 'docs:read'), 'VALID', 'a token derived on the primary verifies on the standby');
is(code($standby, $d1, 'docs:create'), 'INSUFFICIENT_SCOPE', '... with its narrowed scopes');
my $d2 = derive($standby, $tok, "ARRAY['docs:create']");
is(code($standby, $d2, 'docs:create'), 'VALID', 'the standby derives tokens');
is(code($primary, $d2, 'docs:create'), 'VALID', '... that the primary accepts (one signing key)');

sq($primary, "SELECT apikeys.revoke_key('$cid')");
$primary->wait_for_catchup($standby, 'replay');
is(code($standby, $d1), 'REVOKED', 'a revoke replayed on the standby ends the derived token there');
is(code($standby, $d2), 'REVOKED', '... and the one the standby derived');
$standby->stop;

# rate limit: the key's own window counts its derived tokens' verifications
my ($rcid, $rtok) = split /\|/, sq($primary,
	"SELECT client_id, token FROM apikeys.create_key('acme', 'limited', ARRAY['docs:read'], rate_limit => 3, rate_window => '1 hour')");
my $rd = derive($primary, $rtok);	# authenticate: use 1
is(code($primary, $rd), 'VALID', 'derived token: use 2 of 3');
is(code($primary, $rtok), 'VALID', 'the key itself: use 3 of 3');
is(code($primary, $rd), 'RATE_LIMITED', 'the derived token meets its key\'s rate limit');

# dump and restore: the signing secret is not dumped; the restore makes its own
my ($ncid, $ntok) = issue_key($primary, 'acme', 'native');
my $nd = derive($primary, $ntok);
is(code($primary, $nd), 'VALID', 'derived before the dump');
my $secret = sq($primary, "SELECT encode(secret, 'hex') FROM apikeys.derived_signing_key");
my $dumpfile = $primary->basedir . '/derived.sql';
$primary->command_ok([ 'pg_dump', '-d', $primary->connstr('postgres'), '-f', $dumpfile ], 'pg_dump');
my $dump = slurp_file($dumpfile);
unlike($dump, qr/\Q$secret\E/i, 'the dump does not hold the signing secret');
sq($primary, 'CREATE DATABASE restored');
$primary->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $primary->connstr('restored'), '-f', $dumpfile ],
	'restore');
my $rsecret = $primary->safe_psql('restored', "SELECT encode(secret, 'hex') FROM apikeys.derived_signing_key");
like($rsecret, qr/^[0-9a-f]{64}$/, 'the restored database has a signing secret');
isnt($rsecret, $secret, '... a new one');
is($primary->safe_psql('restored', "SELECT (apikeys.verify('$ntok')).code"), 'VALID', 'the native token verifies after the restore');
is($primary->safe_psql('restored', "SELECT (apikeys.verify('$nd')).code"), 'NOT_FOUND', 'a derived token of the source does not');
my $nd2 = $primary->safe_psql('restored', qq{
BEGIN;
SELECT valid FROM apikeys.authenticate('$ntok') \\g /dev/null
SELECT apikeys.derive_token();
COMMIT;
});
is($primary->safe_psql('restored', "SELECT (apikeys.verify('$nd2')).code"), 'VALID', 'the restored database derives its own');

done_testing();
