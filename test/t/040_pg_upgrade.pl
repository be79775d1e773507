# test/t/040_pg_upgrade.pl
#
# apikeys moves to a newer PostgreSQL major: by pg_upgrade, and by a dump
# taken on the old major restored on the new.  Keys verify, revocations
# hold, the audit trail and the usage rows are whole, the shared cache
# answers correctly after (a revocation after the upgrade reaches it), and
# apikeys.protected_tables.tbl (a regclass, the only OID-valued column,
# which pg_upgrade supports because it keeps relation OIDs) still names the
# protected table, so unprotect() works.
#
# The old side is APIKEYS_UPGRADE_FROM: an installation of an older major
# with apikeys installed in it, which test/run.sh provides in the run of
# every major above the oldest one it tests (15 -> 18 here).  Without it
# (the oldest major, or make installcheck) both sides are the major under
# test, which still checks the layout.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

my ($bindir) = grep { -x "$_/pg_upgrade" } split /:/, $ENV{PATH};
die 'pg_upgrade not found on PATH (it ships with the PostgreSQL server)' unless defined $bindir;
my $from = $ENV{APIKEYS_UPGRADE_FROM};
my $oldbin = defined $from ? "$from/bin" : $bindir;
die "APIKEYS_UPGRADE_FROM=$from is not a PostgreSQL installation" unless -x "$oldbin/pg_ctl";

my $flush = "apikeys.flush_interval = '1h'\n";
my $conf = "shared_preload_libraries = 'apikeys'\n$flush";

# both sides with data checksums (the default of initdb since 18)
# not start_node: the old node is of another installation, and pg_upgrade wants the new one initialised, not started
my $old = PostgreSQL::Test::Cluster->new('old', defined $from ? (install_path => $from) : ());
$old->init(extra => ['--data-checksums']);
$old->append_conf('postgresql.conf', $conf);
$old->start;
my $oldversion = sq($old, 'SHOW server_version_num');
my $newversion = `$bindir/postgres --version`;
chomp $newversion;
note "from $oldversion ($oldbin) to $newversion ($bindir)";

sq($old, q{
CREATE EXTENSION apikeys;
CREATE TABLE public.docs (id int, owner text);
SELECT apikeys.protect('public.docs', 'owner');
SELECT apikeys.set_owner_policy('acme', 7);
});
my @tok = map {
	(split /\|/,
		sq($old, "SELECT client_id, token FROM apikeys.create_key('acme', 'k$_', ARRAY['docs:read'])"))[1]
} 1 .. 3;
my $cid1 = sq($old, "SELECT apikeys.token_client_id('$tok[0]')");
my $cid3 = sq($old, "SELECT apikeys.token_client_id('$tok[2]')");
sq($old, "SELECT apikeys.revoke_key('$cid3')");
# usage: verifications counted in shared memory, then written
sq($old, "SELECT apikeys.verify(t) FROM unnest(ARRAY['$tok[0]', '$tok[0]', '$tok[1]', '$tok[2]']) t");
ok(sq($old, 'SELECT apikeys.flush_usage()') > 0, 'old: usage written');

my %q = (
	audit => "SELECT count(*) || ' ' || md5(string_agg(a::text, ',' ORDER BY id)) FROM apikeys.audit_log a",
	keys => "SELECT count(*) || ' ' || md5(string_agg((to_jsonb(k) - 'last_used_at')::text, ',' ORDER BY client_id)) FROM apikeys.keys k",
	usage => "SELECT count(*) || ' ' || md5(string_agg(u::text, ',' ORDER BY client_id, hour, code)) FROM apikeys.usage u",
	version => "SELECT extversion FROM pg_extension WHERE extname = 'apikeys'",
	protected => 'SELECT tbl::text FROM apikeys.protected_tables',
);
my %before = map { $_ => sq($old, $q{$_}) } keys %q;
like($before{usage}, qr/^[1-9]/, 'old: there are usage rows to carry over');

# a dump taken on the old major, with its own pg_dump
my $dump = PostgreSQL::Test::Utils::tempdir() . '/old.sql';
command_ok([ "$oldbin/pg_dump", '-d', $old->connstr('postgres'), '-f', $dump ],
	'pg_dump of the old major');
$old->stop;

# the same database, checked on a server of the new major
sub check_carried
{
	my ($node, $how) = @_;
	for my $k (sort keys %q)
	{
		is(sq($node, $q{$k}), $before{$k}, "$how: $k the same");
	}
	is(sq($node, "SELECT (apikeys.verify('$tok[0]')).code"), 'VALID', "$how: keys verify");
	is(sq($node, "SELECT (apikeys.verify('$tok[2]')).code"), 'REVOKED', "$how: revocations hold");
	# the shared cache: a hit, then a revocation made here reaches it
	is(sq($node, "SELECT string_agg((apikeys.verify('$tok[1]')).code, ',') FROM generate_series(1, 3)"),
		'VALID,VALID,VALID', "$how: a key verifies again and again (cached)");
	my $cid2 = sq($node, "SELECT apikeys.token_client_id('$tok[1]')");
	sq($node, "SELECT apikeys.revoke_key('$cid2')");
	is(sq($node, "SELECT (apikeys.verify('$tok[1]')).code"), 'REVOKED',
		"$how: a revocation after the move reaches the cache");
	sq($node, "SELECT apikeys.unprotect('public.docs')");
	is(sq($node, "SELECT count(*) FROM pg_policy WHERE polrelid = 'public.docs'::regclass"),
		'0', "$how: unprotect works");
	my ($c, $t) = split /\|/,
	  sq($node, "SELECT client_id, token FROM apikeys.create_key('acme', 'new', ARRAY['docs:read'])");
	is(sq($node, "SELECT (apikeys.verify('$t')).code"), 'VALID', "$how: issuing works");
	sq($node, "SELECT apikeys.verify('$tok[0]')");
	ok(sq($node, 'SELECT apikeys.flush_usage()') > 0, "$how: usage is counted");
	like(sq($node, "SELECT sum(count) FROM apikeys.usage WHERE client_id = '$cid1'"),
		qr/^[3-9]$/, "$how: on top of the rows carried over");
}

# pg_upgrade
my $new = PostgreSQL::Test::Cluster->new('new');
$new->init(extra => ['--data-checksums']);
$new->append_conf('postgresql.conf', $conf);
chdir $new->basedir or die;
my $upgraded = run_log(
	[
		"$bindir/pg_upgrade", '--no-sync',
		'-d', $old->data_dir, '-D', $new->data_dir,
		'-b', $oldbin, '-B', $bindir,
		'-s', $new->host,
		'-p', $old->port, '-P', $new->port
	]);
# Known here: Debian's 15.20 stores a version in every column's options
# ("pg_attver", a key reserved in the back branches); 18.6's pg_dump, which
# pg_upgrade runs, copies it and 18.6's server refuses it.  That is
# PostgreSQL's (a later 18 release knows the key), so it is a skip that
# test/run.sh counts as "not run", and only where it finds the same mismatch
# in the two majors' headers itself; any other failure fails.
my ($attver) = grep { !$upgraded && slurp_file($_) =~ /unrecognized parameter "pg_attver"/ }
  glob($new->data_dir . '/pg_upgrade_output.d/*/log/pg_upgrade_dump_*.log');
SKIP:
{
	skip "needs pg_upgrade-attver: the old major keeps pg_attver column options, which this major's pg_dump copies and its server refuses",
	  1 + keys(%q) + 8
	  if $attver;
	ok($upgraded, "pg_upgrade from $oldversion succeeds");
	$new->start;
	check_carried($new, 'pg_upgrade');
	$new->stop;
}

# the old major's dump, restored on the new
my $restored = start_node('restored', conf => $flush, create => '');
command_ok([ "$bindir/psql", '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $restored->connstr('postgres'), '-f', $dump ],
	"the dump of $oldversion restores");
check_carried($restored, 'dump and restore');
$restored->stop;

done_testing();
