# The shared verification cache never outlives what apikeys.keys says, also
# along the paths that fire no row trigger (src/verify_cache.c, src/catalog.c and
# the event trigger apikeys_ddl_guard):
#   1. session_replication_role = replica: TRUNCATE of keys, DELETE, UPDATE
#      and TRUNCATE of audit_log are refused (ALWAYS triggers);
#   2. ALTER TABLE ... DISABLE TRIGGER ALL / ENABLE TRIGGER ALL leaves the
#      ALWAYS triggers ALWAYS, so a replica-mode UPDATE still invalidates;
#   3. a rewrite (ALTER COLUMN ... TYPE ... USING) is seen, through the event
#      trigger and, without it, through the relfilenode in each entry;
#   4. DROP DATABASE + CREATE DATABASE ... OID <same> TEMPLATE <same>: the old
#      database's cached keys are not answered in the new one;
#   5. real pg_dump + pg_restore --disable-triggers, and pg_restore --clean;
#   6. logical replication of keys and audit_log into a subscriber restored
#      with --disable-triggers: apply works (also the publisher's purge_audit)
#      and invalidates the subscriber's cache.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

my $conf = qq{
shared_preload_libraries = 'apikeys'
apikeys.default_max_keys = 100
};
my $pub = start_node('pub', init => { allows_streaming => 'logical' }, preload => 0,
	conf => $conf, create => 'CREATE DATABASE app');
$pub->safe_psql('app', 'CREATE EXTENSION apikeys');

my $n = 0;
# issue($node, $db): a new key; returns (client_id, token)
sub issue
{
	my ($node, $db) = @_;
	$n++;
	my $row = $node->safe_psql($db,
		"SELECT client_id || '|' || token FROM apikeys.create_key('owner-$n', 'k$n', ARRAY['docs:read'])");
	return split /\|/, $row;
}

sub code
{
	my ($node, $db, $token) = @_;
	return $node->safe_psql($db, "SELECT (apikeys.verify('$token')).code");
}

# warm($node, $db, $token): fills the shared cache with the key and checks
# that a new session is answered from it (a hit); returns the code.
sub warm
{
	my ($node, $db, $token, $what) = @_;
	code($node, $db, $token);
	my $out = $node->safe_psql($db, qq{
		SELECT (apikeys.verify('$token')).code;
		SELECT session_hits FROM apikeys.cache_stats();});
	my ($c, $hits) = split /\n/, $out;
	is($hits, '1', "$what: answered from the shared cache before the change");
	return $c;
}

sub replica
{
	my ($node, $db, $sql) = @_;
	return $node->psql($db, "SET session_replication_role = replica; $sql");
}

sub triggers
{
	my ($node, $db) = @_;
	return $node->safe_psql($db, q{
		SELECT string_agg(tgname || '=' || tgenabled::text, ' ' ORDER BY tgname)
		  FROM pg_trigger
		 WHERE tgname IN ('keys_cache', 'keys_no_truncate', 'audit_log_append_only', 'audit_log_no_truncate')});
}
my $all_always =
  'audit_log_append_only=A audit_log_no_truncate=A keys_cache=A keys_no_truncate=A';

#
# 1. replica mode cannot truncate keys or change the audit log
#
my ($c1, $t1) = issue($pub, 'app');
is(warm($pub, 'app', $t1, 'replica TRUNCATE'), 'VALID', 'key valid before');
my $nkeys = $pub->safe_psql('app', 'SELECT count(*) FROM apikeys.keys');
my ($ret, $out, $err) = replica($pub, 'app', 'TRUNCATE apikeys.keys');
isnt($ret, 0, 'replica-mode TRUNCATE of apikeys.keys is refused');
like($err, qr/apikeys\.keys cannot be truncated/, '... with the no-truncate message');
is($pub->safe_psql('app', 'SELECT count(*) FROM apikeys.keys'), $nkeys, '... and the keys are all there');
is(code($pub, 'app', $t1), 'VALID', '... and the key still verifies');

my $naudit = $pub->safe_psql('app', 'SELECT count(*) FROM apikeys.audit_log');
for my $sql ('DELETE FROM apikeys.audit_log', 'TRUNCATE apikeys.audit_log',
	"UPDATE apikeys.audit_log SET event = 'forged'")
{
	($ret, $out, $err) = replica($pub, 'app', $sql);
	isnt($ret, 0, "replica-mode $sql is refused");
	like($err, qr/append-only/, '... as append-only');
}
is($pub->safe_psql('app', 'SELECT count(*) FROM apikeys.audit_log'), $naudit,
	'the audit log is unchanged');

#
# 2. DISABLE TRIGGER ALL / ENABLE TRIGGER ALL keeps the ALWAYS triggers
#
my ($c2, $t2) = issue($pub, 'app');
is(warm($pub, 'app', $t2, 'trigger toggle'), 'VALID', 'key valid before the toggle');
$pub->safe_psql('app', 'ALTER TABLE apikeys.keys DISABLE TRIGGER ALL');
$pub->safe_psql('app', 'ALTER TABLE apikeys.audit_log DISABLE TRIGGER ALL');
is(triggers($pub, 'app'), $all_always, 'DISABLE TRIGGER ALL leaves the ALWAYS triggers ALWAYS');
$pub->safe_psql('app', 'ALTER TABLE apikeys.keys ENABLE TRIGGER ALL');
$pub->safe_psql('app', 'ALTER TABLE apikeys.audit_log ENABLE TRIGGER ALL');
is(triggers($pub, 'app'), $all_always, 'ENABLE TRIGGER ALL leaves them ALWAYS too');
is(warm($pub, 'app', $t2, 'after the toggle'), 'VALID', 'key valid after the toggle');
($ret, $out, $err) = replica($pub, 'app',
	"UPDATE apikeys.keys SET revoked_at = now() WHERE client_id = '$c2'");
is($ret, 0, 'replica-mode UPDATE (what restore and apply do) works');
is(code($pub, 'app', $t2), 'REVOKED', '... and the cache sees it');

#
# 3. a rewrite fires no row trigger
#
my ($c3, $t3) = issue($pub, 'app');
is(warm($pub, 'app', $t3, 'rewrite'), 'VALID', 'key valid before the rewrite');
my $rfn = $pub->safe_psql('app', "SELECT relfilenode FROM pg_class WHERE oid = 'apikeys.keys'::regclass");
$pub->safe_psql('app',
	"ALTER TABLE apikeys.keys ALTER COLUMN hash_alg TYPE \"char\" USING 'h'");
isnt($pub->safe_psql('app', "SELECT relfilenode FROM pg_class WHERE oid = 'apikeys.keys'::regclass"),
	$rfn, 'ALTER COLUMN ... TYPE ... USING rewrote the table');
is(code($pub, 'app', $t3), 'NOT_FOUND', 'the rewritten hash algorithm is seen at once');

# without the event trigger, the relfilenode in each entry still tells
my ($c4, $t4) = issue($pub, 'app');
$pub->psql('app', 'ALTER EVENT TRIGGER apikeys_ddl_guard DISABLE');
is(warm($pub, 'app', $t4, 'rewrite without the event trigger'), 'VALID', 'key valid before');
$pub->safe_psql('app',
	"ALTER TABLE apikeys.keys ALTER COLUMN hash_alg TYPE \"char\" USING 'h'");
is(code($pub, 'app', $t4), 'NOT_FOUND',
	'a rewrite is seen also without the event trigger (relfilenode changed)');
$pub->psql('app', 'ALTER EVENT TRIGGER apikeys_ddl_guard ENABLE ALWAYS');
# VACUUM FULL keeps the contents: still the right answer
my ($c5, $t5) = issue($pub, 'app');
warm($pub, 'app', $t5, 'VACUUM FULL');
$pub->safe_psql('app', 'VACUUM FULL apikeys.keys');
is(code($pub, 'app', $t5), 'VALID', 'after VACUUM FULL the key still verifies');

#
# 4. a database re-created with the same OID from the same template
#
$pub->safe_psql('postgres', 'CREATE DATABASE tmpl');
$pub->safe_psql('tmpl', 'CREATE EXTENSION apikeys');
$pub->safe_psql('postgres', 'CREATE DATABASE d TEMPLATE tmpl');
my ($c6, $t6) = issue($pub, 'd');
is(warm($pub, 'd', $t6, 'database re-creation'), 'VALID', 'key valid in d');
my $dboid = $pub->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'd'");
my $relid = $pub->safe_psql('d', "SELECT 'apikeys.keys'::regclass::oid || '/' || relfilenode FROM pg_class WHERE oid = 'apikeys.keys'::regclass");
$pub->safe_psql('postgres', 'DROP DATABASE d');
$pub->safe_psql('postgres', "CREATE DATABASE d OID $dboid TEMPLATE tmpl");
is($pub->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'd'"), $dboid,
	'd re-created with the same OID');
is($pub->safe_psql('d', "SELECT 'apikeys.keys'::regclass::oid || '/' || relfilenode FROM pg_class WHERE oid = 'apikeys.keys'::regclass"),
	$relid, '... and the same OID and relfilenode of apikeys.keys');
is(code($pub, 'd', $t6), 'NOT_FOUND', "the dropped database's key is not answered in the new one");

#
# 5. pg_dump + pg_restore --disable-triggers, then pg_restore --clean
#
my ($c7, $t7) = issue($pub, 'app');
my $dump = $pub->basedir . '/app.dump';
$pub->command_ok([ 'pg_dump', '-Fc', '-d', $pub->connstr('app'), '-f', $dump ], 'pg_dump -Fc');
# --disable-triggers acts on data-only restores: into an installed extension
$pub->safe_psql('postgres', 'CREATE DATABASE restored');
$pub->safe_psql('restored', 'CREATE EXTENSION apikeys');
my ($script) = run_command([ 'pg_restore', '--data-only', '--disable-triggers', '-f', '-', $dump ]);
like($script, qr/ALTER TABLE apikeys\.keys DISABLE TRIGGER ALL;.*COPY apikeys\.keys.*ALTER TABLE apikeys\.keys ENABLE TRIGGER ALL;/s,
	'pg_restore --disable-triggers emits DISABLE/ENABLE TRIGGER ALL around the keys');
$pub->command_ok([ 'pg_restore', '--data-only', '--disable-triggers', '-d', $pub->connstr('restored'), $dump ],
	'pg_restore --data-only --disable-triggers');
is(triggers($pub, 'restored'), $all_always, 'after the restore the ALWAYS triggers are ALWAYS');
is(warm($pub, 'restored', $t7, 'restored'), 'VALID', 'a restored key verifies');
($ret, $out, $err) = replica($pub, 'restored',
	"UPDATE apikeys.keys SET revoked_at = now() WHERE client_id = '$c7'");
is(code($pub, 'restored', $t7), 'REVOKED', 'a replica-mode UPDATE after the restore is seen');

my ($c8, $t8) = issue($pub, 'restored');
is(warm($pub, 'restored', $t8, 'restore --clean'), 'VALID', 'a key made after the restore verifies');
$pub->command_ok([ 'pg_restore', '--clean', '--if-exists',
	'-d', $pub->connstr('restored'), $dump ], 'pg_restore --clean (drops and re-creates the extension)');
is(code($pub, 'restored', $t8), 'NOT_FOUND', 'after restore --clean that key is gone, also from the cache');
is(triggers($pub, 'restored'), $all_always, '... and the ALWAYS triggers are ALWAYS');
my ($c9, $t9) = ($c5, $t5);
is(warm($pub, 'restored', $t9, 'after restore --clean'), 'VALID', 'a restored key verifies');
replica($pub, 'restored', "UPDATE apikeys.keys SET disabled_at = now() WHERE client_id = '$c9'");
is(code($pub, 'restored', $t9), 'DISABLED', '... and a replica-mode UPDATE of it is seen');

#
# 6. logical replication into a subscriber set up from a restore
#
my $sub = start_node('sub', preload => 0, conf => $conf, create => 'CREATE DATABASE app');
my ($c10, $t10) = issue($pub, 'app');
$pub->command_ok([ 'pg_dump', '-Fc', '-d', $pub->connstr('app'), '-f', $dump ], 'pg_dump for the subscriber');
$sub->safe_psql('app', 'CREATE EXTENSION apikeys');
$sub->command_ok([ 'pg_restore', '--data-only', '--disable-triggers', '-d', $sub->connstr('app'), $dump ],
	'subscriber restored with --data-only --disable-triggers');
is(triggers($sub, 'app'), $all_always, "the subscriber's ALWAYS triggers are ALWAYS");
$pub->safe_psql('app', 'CREATE PUBLICATION keys_pub FOR TABLE apikeys.keys, apikeys.audit_log');
$sub->safe_psql('app', "CREATE SUBSCRIPTION keys_sub CONNECTION '" . $pub->connstr . " dbname=app"
	  . "' PUBLICATION keys_pub WITH (copy_data = false)");
$pub->wait_for_catchup('keys_sub');

is(warm($sub, 'app', $t10, 'subscriber'), 'VALID', 'the key verifies on the subscriber');
$pub->safe_psql('app', "SELECT apikeys.revoke_key('$c10', 'replicated revoke')");
$pub->wait_for_catchup('keys_sub');
is(code($sub, 'app', $t10), 'REVOKED', "the apply worker's UPDATE invalidates the subscriber's cache");

my ($c11, $t11) = issue($pub, 'app');
$pub->wait_for_catchup('keys_sub');
is(code($sub, 'app', $t11), 'VALID', 'a key created on the publisher verifies on the subscriber');
warm($sub, 'app', $t11, 'subscriber delete');
$pub->safe_psql('app', "SELECT apikeys.delete_key('$c11')");
$pub->wait_for_catchup('keys_sub');
is(code($sub, 'app', $t11), 'NOT_FOUND', "the apply worker's DELETE invalidates too");

# the publisher's purge_audit is applied (DELETEs by the apply worker)
$pub->safe_psql('app', "SELECT apikeys.purge_audit('0 seconds')");
my ($c12, $t12) = issue($pub, 'app');
$pub->wait_for_catchup('keys_sub');
is($sub->safe_psql('app', 'SELECT count(*) FROM apikeys.audit_log'),
	$pub->safe_psql('app', 'SELECT count(*) FROM apikeys.audit_log'),
	"the publisher's purge_audit is applied on the subscriber");
is(code($sub, 'app', $t12), 'VALID', '... and apply goes on after it');
unlike(slurp_file($sub->logfile), qr/append-only/, 'the apply worker never hit the append-only trigger');
($ret, $out, $err) = replica($sub, 'app', 'DELETE FROM apikeys.audit_log');
isnt($ret, 0, 'a replica-mode session on the subscriber still cannot delete audit rows');
is($sub->safe_psql('app', "SELECT count(*) FROM pg_stat_subscription WHERE subname = 'keys_sub' AND pid IS NOT NULL"),
	'1', 'the apply worker is running');

$sub->stop;
$pub->stop;
done_testing();
