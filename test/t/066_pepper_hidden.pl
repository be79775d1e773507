# The pepper (the HMAC key of stored secret hashes) is readable by nobody
# through SQL (src/guc.c): not by a pg_monitor member (pg_read_all_settings
# may read superuser-only settings), not by a superuser, through SHOW,
# current_setting(), pg_settings (setting, reset_val, boot_val); it cannot
# be stored where every role can read it (ALTER ROLE/DATABASE ... SET,
# CREATE FUNCTION ... SET).  pg_file_settings, superuser-only, still shows
# the postgresql.conf line: that is documented.  Keys still verify, also
# across a reload.  Without preloading the pepper is a placeholder until the
# library loads: documented, and warned about.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

my $pepper = 'tap-pepper-0f3b9c1d7e';
my $node = start_node('pepper', conf => qq{
apikeys.pepper = '$pepper'
}, create => 'CREATE EXTENSION apikeys; CREATE EXTENSION pgcrypto');
$node->safe_psql('postgres', 'CREATE ROLE mon LOGIN IN ROLE pg_monitor');

my $row = $node->safe_psql('postgres',
	"SELECT client_id || '|' || client_secret || '|' || token FROM apikeys.create_key('pep', 'k', '{}')");
my ($cid, $secret, $token) = split /\|/, $row;
is($node->safe_psql('postgres', "SELECT hash_alg FROM apikeys.keys WHERE client_id = '$cid'"),
	'h', 'the key is stored as HMAC');
is($node->safe_psql('postgres',
		"SELECT secret_hash = hmac('$secret', '$pepper', 'sha256') FROM apikeys.keys WHERE client_id = '$cid'"),
	't', '... keyed by the pepper of postgresql.conf');
is($node->safe_psql('postgres', "SELECT (apikeys.verify('$token')).code"), 'VALID', 'the key verifies');

# everything a role can read about the setting, as one string
my $reads = q{
	SELECT current_setting('apikeys.pepper');
	SHOW apikeys.pepper;
	SELECT coalesce(string_agg(concat_ws('/', setting, reset_val, boot_val), ','), '<none>')
	  FROM pg_settings WHERE name = 'apikeys.pepper';
	SELECT count(*) FROM pg_settings WHERE setting LIKE '%tap-pepper%' OR reset_val LIKE '%tap-pepper%';
};
for my $user ('mon', 'postgres')
{
	my $out = $node->safe_psql('postgres', $reads, extra_params => [ '-U', $user ]);
	unlike($out, qr/\Q$pepper\E/, "$user reads nothing of the pepper");
	my @l = split /\n/, $out;
	is($l[0], '********', "$user: current_setting shows the mask");
	is($l[1], '********', "$user: SHOW shows the mask");
	is($l[3], '0', "$user: no pg_settings column holds it");
}
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT * FROM pg_file_settings',
	extra_params => [ '-U', 'mon' ]);
isnt($ret, 0, 'pg_file_settings is refused to a pg_monitor member');
# documented: a superuser sees postgresql.conf lines there, as with pg_read_file
like($node->safe_psql('postgres', "SELECT setting FROM pg_file_settings WHERE name = 'apikeys.pepper'"),
	qr/\Q$pepper\E/, 'pg_file_settings shows postgresql.conf to superusers (documented)');

# nowhere every role could read it
for my $sql ("ALTER ROLE mon SET apikeys.pepper = 'p2'",
	"ALTER DATABASE postgres SET apikeys.pepper = 'p2'",
	"ALTER ROLE ALL SET apikeys.pepper = 'p2'",
	"CREATE FUNCTION f() RETURNS int LANGUAGE sql SET apikeys.pepper = 'p2' AS 'SELECT 1'")
{
	($ret, $out, $err) = $node->psql('postgres', $sql);
	isnt($ret, 0, "refused: $sql");
	like($err, qr/"apikeys.pepper" cannot be stored in the system catalogs/, '... with its message');
}
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_db_role_setting WHERE array_to_string(setconfig, ',') LIKE '%pepper%'"),
	'0', 'no pepper in pg_db_role_setting');
($ret, $out, $err) = $node->psql('postgres', "SET apikeys.pepper = '********'");
isnt($ret, 0, 'the mask itself is refused as a pepper');

# SET, SET LOCAL and rollback still carry the real key (in the GUC's extra)
is($node->safe_psql('postgres', qq{
	BEGIN; SET LOCAL apikeys.pepper = 'other'; SELECT (apikeys.verify('$token')).code; ROLLBACK;
	SELECT (apikeys.verify('$token')).code;}), "NOT_FOUND\nVALID",
	'SET LOCAL of another pepper fails the key; after ROLLBACK it verifies again');

# a reload with another pepper, and back
$node->append_conf('postgresql.conf', "apikeys.pepper = 'changed'\n");
$node->reload;
$node->poll_query_until('postgres', "SELECT (apikeys.verify('$token')).code = 'NOT_FOUND'")
  or die 'reload not seen';
pass('after a reload with another pepper the key no longer verifies');
$node->append_conf('postgresql.conf', "apikeys.pepper = '$pepper'\n");
$node->reload;
$node->poll_query_until('postgres', "SELECT (apikeys.verify('$token')).code = 'VALID'")
  or die 'reload not seen';
pass('with the pepper back it verifies again');
# (the shown value did not change, so PostgreSQL logs no "changed to")
unlike(slurp_file($node->logfile), qr/parameter "apikeys.pepper" changed to/,
	'a reload does not log the new pepper');
$node->stop;

# Without preloading, the postgresql.conf line is a placeholder until the
# library loads: readable by every role (documented: preload when peppered).
my $np = PostgreSQL::Test::Cluster->new('not_preloaded');
$np->init;
$np->append_conf('postgresql.conf', "apikeys.pepper = '$pepper'\n");
$np->start;
$np->safe_psql('postgres', 'CREATE EXTENSION apikeys; CREATE ROLE nobody LOGIN');
is($np->safe_psql('postgres', 'SHOW apikeys.pepper', extra_params => [ '-U', 'nobody' ]),
	$pepper, 'without preloading, any role reads the placeholder (documented limit)');
($ret, $out, $err) = $np->psql('postgres', "SELECT (apikeys.verify('x')).code; SHOW apikeys.pepper");
like($err, qr/"apikeys.pepper" is set but apikeys is not in "shared_preload_libraries"/,
	'loading the library without preloading warns about it');
is((split /\n/, $out)[-1], '********', 'once loaded, the session sees the mask');
$np->stop;
done_testing();
