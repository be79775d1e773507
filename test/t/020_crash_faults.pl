# test/t/020_crash_faults.pl
#
# Crashes in the middle of key changes.  A backend is killed with SIGKILL
# after create_key, rotate_key or revoke_all_keys has done all its writes
# (key rows and audit rows, its transaction ID assigned) and before its
# commit: a deferred constraint trigger the test puts on apikeys.audit_log
# makes the commit wait on an advisory lock the test holds.  The kill makes
# the postmaster reset every backend and recover from WAL; then the server
# is stopped in immediate mode with transactions open.  Another open
# transaction holds uncommitted changes of its own at each crash.
#
# All of it runs twice: without and with apikeys in
# shared_preload_libraries (README's setup: shared cache, usage worker),
# each in a subtest.  After each recovery:
#   - every committed change is there and no uncommitted one is;
#   - tokens verify exactly as the committed state says;
#   - the audit trail matches the keys: one "created" row per key, a
#     "revoked" row for each revoked key and none for the others, a
#     "rotated" row per committed rotation, no row for a change that never
#     committed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

my $node;

# issue OWNER NAME: returns (client_id, token), committed
sub issue { return issue_key($node, @_); }
sub code  { return verify_code($node, $_[0]); }

# The audit trail against the keys: each query lists violations.
my $audit_check = q{
SELECT 'key without exactly one created row: ' || k.client_id
  FROM apikeys.keys k
 WHERE (SELECT count(*) FROM apikeys.audit_log a
         WHERE a.client_id = k.client_id AND a.event = 'created') <> 1
UNION ALL
SELECT 'revoked key without a revoked row: ' || k.client_id
  FROM apikeys.keys k
 WHERE k.revoked_at IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM apikeys.audit_log a
                    WHERE a.client_id = k.client_id AND a.event = 'revoked')
UNION ALL
SELECT 'live key with a revoked row: ' || k.client_id
  FROM apikeys.keys k
 WHERE k.revoked_at IS NULL
   AND EXISTS (SELECT 1 FROM apikeys.audit_log a
                WHERE a.client_id = k.client_id AND a.event = 'revoked')
UNION ALL
SELECT 'audit row for a key that never existed: ' || a.client_id
  FROM apikeys.audit_log a
 WHERE a.client_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM apikeys.keys k WHERE k.client_id = a.client_id)
   AND NOT EXISTS (SELECT 1 FROM apikeys.audit_log d
                    WHERE d.client_id = a.client_id AND d.event = 'deleted')
UNION ALL
SELECT 'revoked_all row whose count differs from the owner''s revoked rows: ' || r.owner
  FROM apikeys.audit_log r
 WHERE r.event = 'revoked_all'
   AND (r.detail->>'count')::int <>
       (SELECT count(*) FROM apikeys.audit_log a
         WHERE a.owner = r.owner AND a.event = 'revoked' AND a.txid = r.txid)
};

sub check_consistent
{
	my ($label) = @_;
	is($node->safe_psql('postgres', $audit_check), '', "$label: audit trail matches the keys");
}

# The hold: with test.hold = on, a transaction that wrote an audit row
# waits at its commit (deferred trigger) for advisory lock 4242.
my $hold_sql = q{
CREATE FUNCTION public.hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF current_setting('test.hold', true) = 'on' THEN
		PERFORM pg_advisory_xact_lock(4242);
	END IF;
	RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER hold_commit AFTER INSERT ON apikeys.audit_log
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.hold_commit();
};

# start_held SQL: a session whose statement SQL runs and then waits at its
# commit (the holder session keeps advisory lock 4242); returns the
# sessions and the waiting backend's PID once it has written: it waits on
# the advisory lock with its transaction ID assigned and row locks on
# apikeys.keys and apikeys.audit_log.
sub start_held
{
	my ($sql) = @_;
	my $holder = $node->background_psql('postgres');
	$holder->query_safe('SELECT pg_advisory_lock(4242)');
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	my $pid = $s->query_safe('SELECT pg_backend_pid()');
	chomp $pid;
	$s->query_safe('SET test.hold = on');
	$s->{stdin} .= "$sql;\n";
	$s->{run}->pump_nb;
	$node->poll_query_until('postgres', qq{
		SELECT a.wait_event = 'advisory' AND a.backend_xid IS NOT NULL
		   AND (SELECT count(DISTINCT l.relation) FROM pg_locks l
		         WHERE l.pid = a.pid AND l.mode = 'RowExclusiveLock'
		           AND l.relation IN ('apikeys.keys'::regclass, 'apikeys.audit_log'::regclass)) = 2
		  FROM pg_stat_activity a WHERE a.pid = $pid})
	  or die "backend $pid never reached its commit having written";
	return ($holder, $s, $pid);
}

# kill9_and_recover PID: SIGKILL one backend; the postmaster resets all of
# them and replays WAL.
sub kill9_and_recover
{
	my ($pid) = @_;
	my $log_offset = -s $node->logfile;
	kill 'KILL', $pid or die "could not kill $pid";
	$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
	$node->poll_query_until('postgres', 'SELECT 1', '1')
	  or die 'server did not come back';
	$node->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()', 't');
}

for_each_preload(\&run_config);
done_testing();

sub run_config
{
my ($preload, $libs) = @_;
$node = PostgreSQL::Test::Cluster->new($preload ? 'crash_preloaded' : 'crash');
$node->init;
$node->append_conf('postgresql.conf', "restart_after_crash = on\nshared_preload_libraries = '$libs'\n");
$node->start;
is($node->safe_psql('postgres', "SELECT current_setting('shared_preload_libraries')"), $libs,
	"running with shared_preload_libraries = '$libs'");
$node->safe_psql('postgres', 'CREATE EXTENSION apikeys');
$node->safe_psql('postgres', $hold_sql);

# committed state before any crash
my ($c1, $t1) = issue('alice', 'committed 1');
my ($c2, $t2) = issue('alice', 'committed 2');
my ($c3, $t3) = issue('bob', 'bob 1');
my ($c4, $t4) = issue('bob', 'bob 2');
my ($c5, $t5) = issue('carol', 'carol 1');
check_consistent('before');

#
# 1. create_key: an open transaction created a key for alice; a create_key
#    for gina is killed at its commit, its key and audit rows written.
#    Meanwhile another session commits a key.
#
my $s1 = $node->background_psql('postgres');
$s1->query_safe('BEGIN');
my $uncommitted = $s1->query_safe(
	"SELECT client_id FROM apikeys.create_key('alice', 'uncommitted', ARRAY['docs:read'])");
chomp $uncommitted;
my ($holder, $s2, $s2pid) = start_held(
	"SELECT client_id FROM apikeys.create_key('gina', 'killed mid-commit', ARRAY['docs:read'])");
pass('create_key: the killed call had written its rows and waited at its commit');
my ($c6, $t6) = issue('dave', 'committed during');
kill9_and_recover($s2pid);
$_->{run}->kill_kill for $s1, $s2, $holder;

is($node->safe_psql('postgres', "SELECT count(*) FROM apikeys.keys WHERE client_id = '$uncommitted'"),
	'0', 'create_key: the uncommitted key is gone');
is($node->safe_psql('postgres', "SELECT count(*) FROM apikeys.keys WHERE owner = 'gina'"),
	'0', 'create_key: the killed call left no key');
is($node->safe_psql('postgres', "SELECT count(*) FROM apikeys.audit_log WHERE owner = 'gina'"),
	'0', 'create_key: ... and no audit row');
is($node->safe_psql('postgres', "SELECT count(*) FROM apikeys.audit_log WHERE client_id = '$uncommitted'"),
	'0', 'create_key: ... and no audit row');
is(code($t6), 'VALID', 'create_key: the key committed just before the crash verifies');
is(code($t1), 'VALID', 'create_key: older keys verify');
is( $node->safe_psql('postgres', "SELECT count(*) FROM apikeys.keys WHERE owner = 'alice'"),
	'2', 'create_key: alice has her two committed keys');
check_consistent('after killing create_key');

#
# 2. rotate_key: an open transaction rotated c1 (new secret written, row
#    locked); a rotate_key of c5 is killed at its commit, its new secret
#    and audit row written.
#
$s1 = $node->background_psql('postgres');
$s1->query_safe('BEGIN');
my $newtok = $s1->query_safe("SELECT token FROM apikeys.rotate_key('$c1')");
chomp $newtok;
($holder, $s2, $s2pid) = start_held("SELECT token FROM apikeys.rotate_key('$c5')");
pass('rotate_key: the killed call had written its rows and waited at its commit');
# a committed rotation of another key, with its audit row
my $rot2 = $node->safe_psql('postgres', "SELECT token FROM apikeys.rotate_key('$c2')");
kill9_and_recover($s2pid);
$_->{run}->kill_kill for $s1, $s2, $holder;

is(code($t1), 'VALID', 'rotate_key: the old secret still works (rotation never committed)');
is(code($newtok), 'NOT_FOUND', 'rotate_key: the uncommitted new secret does not');
is( $node->safe_psql('postgres', "SELECT count(*) FROM apikeys.audit_log WHERE client_id = '$c1' AND event = 'rotated'"),
	'0', 'rotate_key: no rotated row for the uncommitted rotation');
is(code($t5), 'VALID', 'rotate_key: the key whose rotation was killed keeps its secret');
is( $node->safe_psql('postgres', "SELECT count(*) FROM apikeys.audit_log WHERE client_id = '$c5' AND event = 'rotated'"),
	'0', 'rotate_key: ... and has no rotated row');
is(code($rot2), 'VALID', 'rotate_key: a rotation committed before the crash holds');
is(code($t2), 'NOT_FOUND', 'rotate_key: ... and its old secret is dead');
is( $node->safe_psql('postgres', "SELECT count(*) FROM apikeys.audit_log WHERE client_id = '$c2' AND event = 'rotated'"),
	'1', 'rotate_key: ... with exactly one rotated row');
check_consistent('after killing rotate_key');

#
# 3. revoke_all_keys: an open transaction revoked all of bob's keys; a
#    revoke_all_keys('dave') is killed at its commit, its revocation and
#    audit rows written.  Carol's keys are revoked and committed meanwhile.
#
$s1 = $node->background_psql('postgres');
$s1->query_safe('BEGIN');
is($s1->query_safe("SELECT apikeys.revoke_all_keys('bob', 'uncommitted')"), '2',
	'revoke_all_keys: two keys revoked in the open transaction');
($holder, $s2, $s2pid) = start_held("SELECT apikeys.revoke_all_keys('dave', 'killed')");
pass('revoke_all_keys: the killed call had written its rows and waited at its commit');
is($node->safe_psql('postgres', "SELECT apikeys.revoke_all_keys('carol', 'committed')"),
	'1', 'revoke_all_keys: a committed revocation meanwhile');
kill9_and_recover($s2pid);
$_->{run}->kill_kill for $s1, $s2, $holder;

is(code($t3), 'VALID', 'revoke_all_keys: bob\'s keys were never revoked');
is(code($t4), 'VALID', 'revoke_all_keys: ... both of them');
is( $node->safe_psql('postgres', "SELECT count(*) FROM apikeys.audit_log WHERE owner = 'bob' AND event IN ('revoked', 'revoked_all')"),
	'0', 'revoke_all_keys: no audit row for the uncommitted revocation');
is(code($t6), 'VALID', 'revoke_all_keys: dave\'s key was never revoked');
is( $node->safe_psql('postgres', "SELECT count(*) FROM apikeys.audit_log WHERE owner = 'dave' AND event IN ('revoked', 'revoked_all')"),
	'0', 'revoke_all_keys: ... and has no audit row for the killed revocation');
is(code($t5), 'REVOKED', 'revoke_all_keys: carol\'s committed revocation holds');
check_consistent('after killing revoke_all_keys');

#
# 4. Immediate shutdown with an open transaction that revoked, disabled
#    and created; committed changes made just before it survive.
#
$s1 = $node->background_psql('postgres');
$s1->query_safe('BEGIN');
$s1->query_safe("SELECT apikeys.revoke_key('$c3')");
$s1->query_safe("SELECT apikeys.disable_key('$c6')");
$s1->query_safe("SELECT apikeys.create_key('erin', 'uncommitted', ARRAY['docs:read'])");
my ($c7, $t7) = issue('frank', 'committed before shutdown');
$node->safe_psql('postgres', "SELECT apikeys.revoke_key('$c4', 'committed')");
$node->safe_psql('postgres', "SELECT apikeys.set_owner_policy('frank', 2, '30 days')");
$node->stop('immediate');
$s1->{run}->kill_kill;
$node->start;

is(code($t3), 'VALID', 'immediate: the uncommitted revoke is gone');
is(code($t6), 'VALID', 'immediate: the uncommitted disable is gone');
is($node->safe_psql('postgres', "SELECT count(*) FROM apikeys.keys WHERE owner = 'erin'"),
	'0', 'immediate: the uncommitted key is gone');
is(code($t7), 'VALID', 'immediate: the key committed before the shutdown verifies');
is(code($t4), 'REVOKED', 'immediate: the revocation committed before the shutdown holds');
is( $node->safe_psql('postgres', "SELECT max_keys || ' ' || max_lifetime FROM apikeys.owner_policies WHERE owner = 'frank'"),
	'2 30 days', 'immediate: the committed policy holds');
check_consistent('after an immediate shutdown');

# Everything still works after the crashes.
my ($c8, $t8) = issue('alice', 'after the crashes');
is(code($t8), 'VALID', 'issuing and verifying work after recovery');
is( $node->safe_psql('postgres', 'SELECT count(*) FROM apikeys.keys'),
	'8', 'eight keys in all: five before, three committed during the test');

$node->stop;
}
