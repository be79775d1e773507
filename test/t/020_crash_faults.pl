# test/t/020_crash_faults.pl
#
# Crashes in the middle of key changes.  A backend is killed with SIGKILL
# while it is inside create_key, rotate_key or revoke_all_keys (blocked on a
# row lock that another open transaction holds, after part of its work),
# which makes the postmaster reset every backend and recover from WAL; then
# the server is stopped in immediate mode with transactions open.  After
# each recovery:
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

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf', "restart_after_crash = on\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION apikeys');

# issue OWNER NAME: returns (client_id, token), committed
sub issue
{
	my ($owner, $name) = @_;
	my $out = $node->safe_psql('postgres',
		"SELECT client_id, token FROM apikeys.create_key('$owner', '$name', ARRAY['docs:read'])");
	return split /\|/, $out;
}

sub code
{
	my ($token) = @_;
	return $node->safe_psql('postgres', "SELECT (apikeys.verify('$token')).code");
}

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

# wait_blocked PID: until that backend waits on a lock
sub wait_blocked
{
	my ($pid) = @_;
	$node->poll_query_until('postgres',
		"SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $pid")
	  or die "backend $pid never blocked";
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

# committed state before any crash
my ($c1, $t1) = issue('alice', 'committed 1');
my ($c2, $t2) = issue('alice', 'committed 2');
my ($c3, $t3) = issue('bob', 'bob 1');
my ($c4, $t4) = issue('bob', 'bob 2');
my ($c5, $t5) = issue('carol', 'carol 1');
check_consistent('before');

#
# 1. create_key: an open transaction created a key for alice (and holds
#    her policy row); a second create_key for alice is killed while it
#    waits inside the function.  Meanwhile another session commits a key.
#
my $s1 = $node->background_psql('postgres');
my $s2 = $node->background_psql('postgres', on_error_stop => 0);
$s1->query_safe('BEGIN');
my $uncommitted = $s1->query_safe(
	"SELECT client_id FROM apikeys.create_key('alice', 'uncommitted', ARRAY['docs:read'])");
chomp $uncommitted;
my $s2pid = $s2->query_safe('SELECT pg_backend_pid()');
$s2->{stdin} .= "SELECT client_id FROM apikeys.create_key('alice', 'killed mid-call', ARRAY['docs:read']);\n";
$s2->{run}->pump_nb;
wait_blocked($s2pid);
my ($c6, $t6) = issue('dave', 'committed during');
kill9_and_recover($s2pid);
$s1->{run}->kill_kill; $s2->{run}->kill_kill;

is($node->safe_psql('postgres', "SELECT count(*) FROM apikeys.keys WHERE client_id = '$uncommitted'"),
	'0', 'create_key: the uncommitted key is gone');
is($node->safe_psql('postgres', "SELECT count(*) FROM apikeys.keys WHERE name = 'killed mid-call'"),
	'0', 'create_key: the killed call left no key');
is($node->safe_psql('postgres', "SELECT count(*) FROM apikeys.audit_log WHERE client_id = '$uncommitted'"),
	'0', 'create_key: ... and no audit row');
is(code($t6), 'VALID', 'create_key: the key committed just before the crash verifies');
is(code($t1), 'VALID', 'create_key: older keys verify');
is( $node->safe_psql('postgres', "SELECT count(*) FROM apikeys.keys WHERE owner = 'alice'"),
	'2', 'create_key: alice has her two committed keys');
check_consistent('after killing create_key');

#
# 2. rotate_key: an open transaction rotated c1 (new secret written, row
#    locked); a second rotate_key of c1 is killed inside the function.
#
$s1 = $node->background_psql('postgres');
$s2 = $node->background_psql('postgres', on_error_stop => 0);
$s1->query_safe('BEGIN');
my $newtok = $s1->query_safe("SELECT token FROM apikeys.rotate_key('$c1')");
chomp $newtok;
$s2pid = $s2->query_safe('SELECT pg_backend_pid()');
$s2->{stdin} .= "SELECT token FROM apikeys.rotate_key('$c1');\n";
$s2->{run}->pump_nb;
wait_blocked($s2pid);
# a committed rotation of another key, with its audit row
my $rot2 = $node->safe_psql('postgres', "SELECT token FROM apikeys.rotate_key('$c2')");
kill9_and_recover($s2pid);
$s1->{run}->kill_kill; $s2->{run}->kill_kill;

is(code($t1), 'VALID', 'rotate_key: the old secret still works (rotation never committed)');
is(code($newtok), 'NOT_FOUND', 'rotate_key: the uncommitted new secret does not');
is( $node->safe_psql('postgres', "SELECT count(*) FROM apikeys.audit_log WHERE client_id = '$c1' AND event = 'rotated'"),
	'0', 'rotate_key: no rotated row for the uncommitted rotation');
is(code($rot2), 'VALID', 'rotate_key: a rotation committed before the crash holds');
is(code($t2), 'NOT_FOUND', 'rotate_key: ... and its old secret is dead');
is( $node->safe_psql('postgres', "SELECT count(*) FROM apikeys.audit_log WHERE client_id = '$c2' AND event = 'rotated'"),
	'1', 'rotate_key: ... with exactly one rotated row');
check_consistent('after killing rotate_key');

#
# 3. revoke_all_keys: an open transaction revoked all of bob's keys; a
#    second revoke_all_keys('bob') is killed inside the function.  Carol's
#    keys are revoked and committed meanwhile.
#
$s1 = $node->background_psql('postgres');
$s2 = $node->background_psql('postgres', on_error_stop => 0);
$s1->query_safe('BEGIN');
is($s1->query_safe("SELECT apikeys.revoke_all_keys('bob', 'uncommitted')"), '2',
	'revoke_all_keys: two keys revoked in the open transaction');
$s2pid = $s2->query_safe('SELECT pg_backend_pid()');
$s2->{stdin} .= "SELECT apikeys.revoke_all_keys('bob', 'killed');\n";
$s2->{run}->pump_nb;
wait_blocked($s2pid);
is($node->safe_psql('postgres', "SELECT apikeys.revoke_all_keys('carol', 'committed')"),
	'1', 'revoke_all_keys: a committed revocation meanwhile');
kill9_and_recover($s2pid);
$s1->{run}->kill_kill; $s2->{run}->kill_kill;

is(code($t3), 'VALID', 'revoke_all_keys: bob\'s keys were never revoked');
is(code($t4), 'VALID', 'revoke_all_keys: ... both of them');
is( $node->safe_psql('postgres', "SELECT count(*) FROM apikeys.audit_log WHERE owner = 'bob' AND event IN ('revoked', 'revoked_all')"),
	'0', 'revoke_all_keys: no audit row for the uncommitted revocation');
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
done_testing();
