# Verification while a long admin transaction holds locks on apikeys.keys
# (src/verify_lookup.c): it neither hangs nor fails open.
#   - row locks (an open UPDATE of the key, SELECT ... FOR UPDATE) never
#     block: the lookup reads the last committed row;
#   - a conflicting table lock (LOCK TABLE ... IN ACCESS EXCLUSIVE MODE)
#     makes a lookup that misses the cache fail after apikeys.lock_timeout
#     with SQLSTATE 55P03 (or after statement_timeout, if shorter, 57014);
#     never VALID without reading the table; an imported (legacy) token
#     too, and so does a lock on the other tables verification reads
#     (scope_sets, owner_policies, protected_tables): one rule, catalog.c's
#     ApikeysLockForRead;
#   - without preloading, the last_used_at write under a SHARE lock (CREATE
#     INDEX) is skipped after apikeys.lock_timeout: the request still gets
#     its answer.
# The bounds are loose (seconds) for a loaded machine; the point is that
# nothing waits for the admin transaction to end.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;
use Time::HiRes qw(time);

# timed($node, $sql): (elapsed seconds, psql rc, stdout, stderr); every
# statement runs with statement_timeout = 30s, so the old behaviour (wait
# for the lock holder) shows up as a 57014 after 30 s rather than a hang.
sub timed
{
	my ($node, $sql) = @_;
	my $t0 = time;
	my ($ret, $out, $err) = $node->psql('postgres', "SET statement_timeout = '30s'; $sql");
	return (time - $t0, $ret, $out, $err);
}

for my $preloaded (1, 0)
{
	my $mode = $preloaded ? 'preloaded' : 'not preloaded';
	my $node = start_node($preloaded ? 'locks_pre' : 'locks_nopre', preload => $preloaded,
		conf => "apikeys.last_used_granularity = 1\n");
	my ($c1, $t1) = issue_key($node, 'lock-owner', 'held');
	my ($c2, $t2) = issue_key($node, 'lock-owner', 'other');
	my ($c3, $t3) = issue_key($node, 'lock-owner', 'never verified');	# never in the cache
	# an imported key: found by the hash of its whole token (src/verify_legacy.c)
	my $legacy = 'sk_live_imported_lock_test_0123456789';
	$node->safe_psql('postgres',
		"SELECT apikeys.import_key('lock-owner', 'imported', ARRAY['docs:read'], token => '$legacy')");
	is($node->safe_psql('postgres', "SELECT (apikeys.verify('$legacy')).code"),
		'VALID', "$mode: the imported token verifies");
	# a key naming a scope set, and one with a database role (pre_request)
	$node->safe_psql('postgres', q{SELECT apikeys.define_scope_set('readers', ARRAY['docs:read']);
		CREATE ROLE lock_api NOLOGIN});
	my ($cs, $ts) = issue_key($node, 'lock-owner-2', 'set', "ARRAY['\@readers']");
	my ($cr, $tr) = split /\|/, $node->safe_psql('postgres',
		"SELECT client_id, token FROM apikeys.create_key('lock-owner-2', 'role', ARRAY['docs:read'], db_role => 'lock_api')");
	my $pre_request = "BEGIN; SELECT set_config('request.headers', json_build_object('x-api-key', '$tr')::text, true);\n"
	  . "SELECT apikeys.pre_request(); SELECT current_user; COMMIT;";
	like($node->safe_psql('postgres', $pre_request), qr/^lock_api$/m,
		"$mode: pre_request switches to the key's role");
	# $t2 answered once, so it is in the shared cache when there is one
	$node->safe_psql('postgres', "SELECT apikeys.verify('$t2')");

	# row locks: an open UPDATE of the key, then FOR UPDATE
	my $admin = $node->background_psql('postgres');
	$admin->query_safe('BEGIN');
	$admin->query_safe("SELECT apikeys.update_key('$c1', name => 'renamed in an open transaction')");
	my ($secs, $ret, $out, $err) = timed($node, "SELECT (apikeys.verify('$t1')).code");
	is($out, 'VALID', "$mode: a key whose row an open transaction updated verifies");
	cmp_ok($secs, '<', 10, "$mode: ... without waiting for that transaction");
	$admin->query_safe('ROLLBACK');
	$admin->query_safe('BEGIN');
	$admin->query_safe("SELECT 1 FROM apikeys.keys WHERE client_id = '$c1' FOR UPDATE");
	($secs, $ret, $out, $err) = timed($node, "SELECT (apikeys.verify('$t1')).code");
	is($out, 'VALID', "$mode: a key held FOR UPDATE verifies");
	cmp_ok($secs, '<', 10, "$mode: ... without waiting");
	$admin->query_safe('ROLLBACK');

	# ACCESS EXCLUSIVE: a lookup ($t3 is in no cache) fails after
	# apikeys.lock_timeout (1 s).  $t2 is verified again first: the
	# rolled-back UPDATE of $t1 above outdated its partition, which may be
	# $t2's too (1 in 128), and then $t2 would have to read the table.
	$node->safe_psql('postgres', "SELECT apikeys.verify('$t2')");
	$admin->query_safe('BEGIN');
	$admin->query_safe('LOCK TABLE apikeys.keys IN ACCESS EXCLUSIVE MODE');
	($secs, $ret, $out, $err) = timed($node,
		"\\set VERBOSITY verbose\nSELECT (apikeys.verify('$t3')).code");
	isnt($ret, 0, "$mode: under ACCESS EXCLUSIVE a lookup fails");
	isnt($out, 'VALID', "$mode: ... and never answers VALID");
	like($err, qr/55P03/, "$mode: ... with the lock timeout error");
	cmp_ok($secs, '<', 20, "$mode: ... after apikeys.lock_timeout, not when the lock is released");
	# an imported token is looked up under the same rule (a new session:
	# its "any imported keys?" probe reads the table too)
	($secs, $ret, $out, $err) = timed($node,
		"\\set VERBOSITY verbose\nSELECT (apikeys.verify('$legacy')).code");
	isnt($ret, 0, "$mode: under ACCESS EXCLUSIVE an imported token's lookup fails");
	isnt($out, 'VALID', "$mode: ... and never answers VALID");
	like($err, qr/55P03/, "$mode: ... with the lock timeout error, as a native token's");
	cmp_ok($secs, '<', 20, "$mode: ... after apikeys.lock_timeout, not when the lock is released");
	($secs, $ret, $out, $err) = timed($node,
		"SET statement_timeout = '200ms'; SET apikeys.lock_timeout = 0;\n\\set VERBOSITY verbose\nSELECT (apikeys.verify('$t3')).code");
	like($err, qr/57014/, "$mode: with a shorter statement_timeout, that one cancels it");
	($secs, $ret, $out, $err) = timed($node, "SELECT (apikeys.authenticate('$t3')).code");
	isnt($ret, 0, "$mode: authenticate fails closed too");
	if ($preloaded)
	{
		# nothing that committed changed: the cache may answer
		($secs, $ret, $out, $err) = timed($node, "SELECT (apikeys.verify('$t2')).code");
		is($out, 'VALID', 'preloaded: a cached key is answered from the cache meanwhile');
	}
	$admin->query_safe('ROLLBACK');

	# SHARE (CREATE INDEX): reading is fine; the last_used_at write of the
	# non-preloaded mode must not wait for it
	$admin->query_safe('BEGIN');
	$admin->query_safe('LOCK TABLE apikeys.keys IN SHARE MODE');
	sleep 1.1;		# last_used_granularity = 1: a write is due
	($secs, $ret, $out, $err) = timed($node, "SELECT (apikeys.verify('$t1')).code");
	is($out, 'VALID', "$mode: under a SHARE lock the key verifies");
	cmp_ok($secs, '<', 20, "$mode: ... without waiting for the lock holder");
	$admin->query_safe('ROLLBACK');

	# the other tables the verification path reads are locked by the same
	# rule (catalog.c ApikeysLockForRead): scope sets, owner policies,
	# protected tables
	$admin->query_safe('BEGIN');
	$admin->query_safe('LOCK TABLE apikeys.scope_sets IN ACCESS EXCLUSIVE MODE');
	($secs, $ret, $out, $err) = timed($node,
		"\\set VERBOSITY verbose\nSELECT (apikeys.verify('$ts')).code");
	like($err, qr/55P03/, "$mode: under ACCESS EXCLUSIVE on scope_sets a key naming a set fails with 55P03");
	cmp_ok($secs, '<', 20, "$mode: ... after apikeys.lock_timeout");
	$admin->query_safe('ROLLBACK');
	$admin->query_safe('BEGIN');
	$admin->query_safe('LOCK TABLE apikeys.owner_policies IN ACCESS EXCLUSIVE MODE');
	($secs, $ret, $out, $err) = timed($node,
		"\\set VERBOSITY verbose\nSELECT (apikeys.verify('$t1')).code");
	if ($preloaded)
	{
		like($err, qr/55P03/, 'preloaded: under ACCESS EXCLUSIVE on owner_policies the owner-limit probe fails with 55P03');
	}
	else
	{
		is($out, 'VALID', 'not preloaded: owner limits are not read (no shared windows), the key verifies');
	}
	cmp_ok($secs, '<', 20, "$mode: ... without waiting for the lock holder");
	$admin->query_safe('ROLLBACK');
	$admin->query_safe('BEGIN');
	$admin->query_safe('LOCK TABLE apikeys.protected_tables IN ACCESS EXCLUSIVE MODE');
	($secs, $ret, $out, $err) = timed($node, "\\set VERBOSITY verbose\n$pre_request");
	like($err, qr/55P03/, "$mode: under ACCESS EXCLUSIVE on protected_tables pre_request's role switch fails with 55P03");
	cmp_ok($secs, '<', 20, "$mode: ... after apikeys.lock_timeout");
	$admin->query_safe('ROLLBACK');
	$admin->quit;

	# and with statement_timeout set, ordinary verification works
	($secs, $ret, $out, $err) = timed($node,
		"SET statement_timeout = '5s'; SELECT (apikeys.verify('$t1')).code");
	is($out, 'VALID', "$mode: verification under a statement_timeout");
	$node->stop;
}
done_testing();
