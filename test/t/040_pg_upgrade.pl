# test/t/040_pg_upgrade.pl
#
# pg_upgrade carries apikeys over: keys verify, revocations hold, the audit
# trail is whole, and apikeys.protected_tables.tbl (a regclass, the only
# OID-valued column, which pg_upgrade supports because it keeps relation
# OIDs) still names the protected table, so unprotect() works.
# Same major version on both sides: this checks the layout, which is what
# a 15 -> 16 upgrade depends on too.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($bindir) = grep { -x "$_/pg_upgrade" } split /:/, $ENV{PATH};
die 'pg_upgrade not found on PATH (it ships with postgresql-15)' unless defined $bindir;

my $old = PostgreSQL::Test::Cluster->new('old');
$old->init;
$old->start;
$old->safe_psql(
	'postgres', q{
CREATE EXTENSION apikeys;
CREATE TABLE public.docs (id int, owner text);
SELECT apikeys.protect('public.docs', 'owner');
SELECT apikeys.set_owner_policy('acme', 7);
});
my @tok = map {
	(split /\|/,
		$old->safe_psql('postgres',
			"SELECT client_id, token FROM apikeys.create_key('acme', 'k$_', ARRAY['docs:read'])"))[1]
} 1 .. 3;
my $cid3 = $old->safe_psql('postgres', "SELECT apikeys.token_client_id('$tok[2]')");
$old->safe_psql('postgres', "SELECT apikeys.revoke_key('$cid3')");
my $audit = $old->safe_psql('postgres',
	"SELECT count(*) || ' ' || md5(string_agg(a::text, ',' ORDER BY id)) FROM apikeys.audit_log a");
my $keys = $old->safe_psql('postgres',
	"SELECT md5(string_agg((to_jsonb(k) - 'last_used_at')::text, ',' ORDER BY client_id)) FROM apikeys.keys k");
my $version = $old->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'apikeys'");
$old->stop;

my $new = PostgreSQL::Test::Cluster->new('new');
$new->init;

chdir $new->basedir or die;
command_ok(
	[
		'pg_upgrade', '--no-sync',
		'-d', $old->data_dir, '-D', $new->data_dir,
		'-b', $bindir, '-B', $bindir,
		'-s', $new->host,
		'-p', $old->port, '-P', $new->port
	],
	'pg_upgrade succeeds');
$new->start;

is($new->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'apikeys'"),
	$version, 'the extension version is kept');
is($new->safe_psql('postgres', "SELECT (apikeys.verify('$tok[0]')).code"), 'VALID', 'keys verify after pg_upgrade');
is($new->safe_psql('postgres', "SELECT (apikeys.verify('$tok[2]')).code"), 'REVOKED', 'revocations hold');
is($new->safe_psql('postgres',
	"SELECT md5(string_agg((to_jsonb(k) - 'last_used_at')::text, ',' ORDER BY client_id)) FROM apikeys.keys k"), $keys,
	'key rows identical');
is( $new->safe_psql('postgres',
		"SELECT count(*) || ' ' || md5(string_agg(a::text, ',' ORDER BY id)) FROM apikeys.audit_log a"),
	$audit, 'audit rows identical');
is($new->safe_psql('postgres', 'SELECT tbl::text FROM apikeys.protected_tables'),
	'docs', 'protected_tables.tbl still names the table');
$new->safe_psql('postgres', "SELECT apikeys.unprotect('public.docs')");
is($new->safe_psql('postgres', "SELECT count(*) FROM pg_policy WHERE polrelid = 'public.docs'::regclass"),
	'0', 'unprotect works after pg_upgrade');
my ($c, $t) = split /\|/,
  $new->safe_psql('postgres', "SELECT client_id, token FROM apikeys.create_key('acme', 'new', ARRAY['docs:read'])");
is($new->safe_psql('postgres', "SELECT (apikeys.verify('$t')).code"), 'VALID', 'issuing works after pg_upgrade');

$new->stop;
done_testing();
