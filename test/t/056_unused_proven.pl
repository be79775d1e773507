# revoke_unused_after revokes only on PROVEN non-use (issue 18 item 7).
# Each way a use can go unrecorded is tried with a key that is used in
# exactly that way beside an idle one, then apply_policies runs:
#   - worker slots all taken: the flush cannot start; the use waits in
#     shared memory, the database stays on the worklist (the WARNING repeats
#     every round) and apply_policies journals the use itself: kept;
#   - an unclean shutdown loses uses not yet flushed: nothing is revoked
#     until unused_after has passed since, with a WARNING and an audit row;
#   - a hot standby verifies, and its uses never reach the primary: nothing
#     is revoked while the primary knows of a standby, unless
#     apikeys.standbys_verify = off says standbys serve no verifications;
#   - without preloading, a READ ONLY transaction (a PostgREST GET) records
#     no use: nothing is revoked as unused, with a WARNING.
# On the code before this rule, every "kept" check below fails: the key in
# daily use was revoked.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

$PostgreSQL::Test::Utils::timeout_default = 60;

# keys(node, owner): a key used (name 'used') and an idle one, both created
# 100 days ago, under a 30-day policy; returns (used client_id, token, idle client_id)
sub keys_for
{
	my ($node, $owner) = @_;
	my $out = $node->safe_psql('postgres', qq{
		SET client_min_messages = error;
		SELECT apikeys.set_owner_policy('$owner', revoke_unused_after => '30 days');
		CREATE TABLE "tok_$owner" AS
		SELECT name, (k).client_id, (k).token
		  FROM (VALUES ('used'), ('idle')) n(name),
		       LATERAL apikeys.create_key('$owner', n.name, ARRAY['docs:read']) k;
		UPDATE apikeys.keys SET created_at = now() - interval '100 days' WHERE owner = '$owner';
		SELECT (SELECT client_id FROM "tok_$owner" WHERE name = 'used') || '|' ||
		       (SELECT token FROM "tok_$owner" WHERE name = 'used') || '|' ||
		       (SELECT client_id FROM "tok_$owner" WHERE name = 'idle');});
	return split /\|/, (split /\n/, $out)[-1];
}

sub status
{
	my ($node, $cid) = @_;
	return $node->safe_psql('postgres',
		"SELECT CASE WHEN revoked_at IS NULL THEN 'active' ELSE 'revoked' END FROM apikeys.keys WHERE client_id = '$cid'");
}

# apply_policies, returning its stderr (the WARNING)
sub apply
{
	my ($node) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', 'SELECT apikeys.apply_policies()');
	is($ret, 0, 'apply_policies runs');
	return $err;
}

# the code before this rule has no _usage_accept_losses: ignore its absence
sub accept_losses
{
	my ($node) = @_;
	$node->psql('postgres', 'SELECT apikeys_internal._usage_accept_losses()');
}

# --- 1. worker slots all taken: max_worker_processes leaves none for a flush
my $slots = start_node('slots', conf => qq{
max_worker_processes = 1     # the launcher's; no flush or policy worker can start
max_logical_replication_workers = 0   # no logical replication launcher either
apikeys.flush_interval = 1
apikeys.prewarm = off
});
my ($s_used, $s_tok, $s_idle) = keys_for($slots, 'slots');
accept_losses($slots);
my $err;
my $log_from = -s $slots->logfile;
is($slots->safe_psql('postgres', "SELECT (apikeys.verify('$s_tok')).code"), 'VALID', 'slots: the used key verifies');
sleep(4);    # four flush rounds
my $log = slurp_file($slots->logfile, $log_from);
my $warnings = () = $log =~ /WARNING:  could not start an apikeys usage flush worker/g;
cmp_ok($warnings, '>=', 2,
	'slots: a flush that cannot start is a WARNING, retried every round (the database stays marked)');
my (undef, $not_started) = $slots->psql('postgres', 'SELECT visits_not_started FROM apikeys_internal._usage_health()');
cmp_ok($not_started || 0, '>=', 2,
	'slots: visits that could not start are counted');
apply($slots);
is(status($slots, $s_used), 'active', 'slots: the key used while no flush could run is kept');
is(status($slots, $s_idle), 'revoked', 'slots: the idle key beside it is revoked (non-use proven)');
$slots->stop;

# --- 2. a clean shutdown keeps the uses not yet flushed; an unclean one loses them
my $node = start_node('primary', init => { allows_streaming => 1 }, conf => qq{
apikeys.flush_interval = 3600   # the use stays in shared memory
apikeys.prewarm = off
restart_after_crash = on
});
my ($r_used, $r_tok, $r_idle) = keys_for($node, 'restart');
accept_losses($node);
is($node->safe_psql('postgres', "SELECT (apikeys.verify('$r_tok')).code"), 'VALID', 'restart: the used key verifies');
$node->restart;    # fast: clean
# the launcher reads the saved usage back at its first start, and removes the file
my $saved = $node->data_dir . '/pg_stat/apikeys_usage.stat';
for (my $i = 0; $i < 300 && -e $saved; $i++) { select(undef, undef, undef, 0.1); }
ok(!-e $saved, 'restart: the saved usage was read back and its file removed');
$err = apply($node);
is(status($node, $r_used), 'active', 'restart: the use saved at the clean shutdown keeps the key');
is(status($node, $r_idle), 'revoked', 'restart: a clean restart loses nothing, so the idle key is revoked');
unlike($err, qr/did not revoke/, 'restart: no WARNING');
is($node->safe_psql('postgres', "SELECT count FROM apikeys.key_usage WHERE client_id = '$r_used' AND code = 'VALID'"),
	'1', 'restart: the saved count reached apikeys.key_usage');
# a use still in shared memory (no flush for an hour), the journal's last uses all known:
# apply_policies journals it itself before it decides
my ($l_used, $l_tok, $l_idle) = keys_for($node, 'late');
is($node->safe_psql('postgres', "SELECT (apikeys.verify('$l_tok')).code"), 'VALID', 'unflushed: the used key verifies');
is($node->safe_psql('postgres', 'SELECT journal_in_recent FROM apikeys_internal._usage_health()'), 't',
	'unflushed: the journal was rolled up at start');
apply($node);
is(status($node, $l_used), 'active', 'unflushed: the key whose use is only in shared memory is kept');
is(status($node, $l_idle), 'revoked', 'unflushed: the idle key is revoked');

my ($c_used, $c_tok, $c_idle) = keys_for($node, 'crash');
accept_losses($node);
is($node->safe_psql('postgres', "SELECT (apikeys.verify('$c_tok')).code"), 'VALID', 'crash: the used key verifies');
# a backend killed: the postmaster resets shared memory (no clean exit, nothing saved)
my $victim = $node->background_psql('postgres', on_error_stop => 0);
my $vpid = $victim->query_safe('SELECT pg_backend_pid()');
kill 'KILL', $vpid;
eval { $victim->quit; };
$node->poll_query_until('postgres', 'SELECT true') or die 'no restart after the crash';
sleep(1);    # the launcher's first start
$err = apply($node);
# 3 keys: the journal is unlogged, so the crash also emptied the journal
# row that held the use of the 'late' key above, which must be kept too
like($err, qr/did not revoke 3 keys.*\n.*may have been lost/, 'crash: a WARNING says why nothing was revoked');
is(status($node, $c_used), 'active', 'crash: the key whose use was lost is kept');
is(status($node, $l_used), 'active', 'crash: so is the key whose journaled use the crash emptied');
is(status($node, $c_idle), 'active', 'crash: so is the idle key (its non-use is not proven either)');
is($node->safe_psql('postgres', qq{
	SELECT detail->>'policy' || ' ' || (detail->>'reason' LIKE 'uses until % may have been lost%')::text || ' ' ||
	       (detail->'client_ids' ? '$c_used')::text
	  FROM apikeys.audit_log WHERE event = 'unused_not_revoked' ORDER BY id DESC LIMIT 1}),
	'revoke_unused_after true true', 'crash: an audit row names the keys and the reason');

# --- 3. a hot standby verifies; its uses never reach the primary
my $standby = start_standby($node, 'standby');
my ($b_used, $b_tok, $b_idle) = keys_for($node, 'standby');
$node->wait_for_catchup($standby, 'replay', $node->lsn('insert'));
accept_losses($node);
is($standby->safe_psql('postgres', "SELECT (apikeys.verify('$b_tok')).code"), 'VALID',
	'standby: the used key verifies on the standby only');
$err = apply($node);
like($err, qr/non-use is not proven: this primary has a standby/, 'standby: a WARNING names the standby');
is(status($node, $b_used), 'active', 'standby: the key used on the standby is kept');
is(status($node, $b_idle), 'active', 'standby: nothing is revoked while a standby may verify');
# the administrator says standbys serve no verifications
$node->append_conf('postgresql.conf', 'apikeys.standbys_verify = off');
$node->reload;
apply($node);
is(status($node, $b_idle), 'revoked', 'standby: with apikeys.standbys_verify = off the idle key is revoked');
$standby->stop;

# --- 4. not preloaded: a READ ONLY transaction records no use
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "''");
$node->restart;
my ($n_used, $n_tok, $n_idle) = keys_for($node, 'plain');
is($node->safe_psql('postgres', "BEGIN READ ONLY; SELECT (apikeys.verify('$n_tok')).code; COMMIT;"), 'VALID',
	'not preloaded: the key is used in a READ ONLY transaction (as PostgREST GETs are)');
$err = apply($node);
like($err, qr/not in shared_preload_libraries/, 'not preloaded: a WARNING says why nothing was revoked');
is(status($node, $n_used), 'active', 'not preloaded: the key used read-only is kept');
is(status($node, $n_idle), 'active', 'not preloaded: nothing is revoked as unused');
$node->stop;

done_testing();
