# test/t/054_usage_worker_faults.pl
#
# The usage background worker under faults (apikeys in
# shared_preload_libraries, apikeys.flush_interval = 1s):
#   - usage counted in shared memory reaches apikeys.key_usage and
#     key_list.last_used_at after a flush (as one usage journal row), and
#     apikeys.usage (the VALID row holding the last use) after a rollup,
#     which never writes apikeys.keys;
#   - the worker survives being killed: SIGTERM (the postmaster restarts it
#     after bgw_restart_time) and SIGKILL (the postmaster resets every
#     process and starts it again);
#   - a crash loses at most the usage counted since the last rollup (the
#     journal is unlogged), and nothing else: keys, audit rows and
#     rolled-up usage stay, and the loss is noted for the proof of non-use;
#     a clean restart keeps the journal;
#   - more keys used between rollups than the recent-use table holds make
#     the worker roll up early, so no last use waits for the hour.  The
#     hourly rollup would do the same once the hour turns, so that part
#     starts at least five minutes before the top of the hour (sleeping
#     past it if need be) and asserts that the hour did not turn before
#     the rollup was seen.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

my $node = start_node('worker', conf => q{
apikeys.flush_interval = 1
apikeys.cache_size = 10000
restart_after_crash = on
});

my ($cid, $tok) = issue_key($node, 'acme', 'k');

sub verify_n
{
	my ($n) = @_;
	$node->safe_psql('postgres',
		"SELECT count(*) FROM generate_series(1, $n) g WHERE (apikeys.verify('$tok')).code = 'VALID'");
}

sub flushed
{
	return $node->safe_psql('postgres',
		"SELECT COALESCE(sum(count), 0) FROM apikeys.key_usage WHERE client_id = '$cid' AND code = 'VALID'");
}

# launcher_pid: the launcher has no database connection, so it is not in
# pg_stat_activity; find the postmaster's child with its process title.
sub launcher_pid
{
	my $pm = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
	for my $stat (glob '/proc/[0-9]*/stat')
	{
		my ($pid) = $stat =~ m{/proc/(\d+)/stat};
		open my $fh, '<', $stat or next;
		my $line = <$fh>;
		close $fh;
		next unless defined $line && $line =~ /\)\s+\S+\s+(\d+)/ && $1 == $pm;
		open $fh, '<', "/proc/$pid/cmdline" or next;
		my $cmd = <$fh> // '';
		close $fh;
		return $pid if $cmd =~ /apikeys usage flusher/;
	}
	return undef;
}

# wait_launcher(NOT_PID): until a launcher other than NOT_PID runs
sub wait_launcher
{
	my ($not) = @_;
	for (1 .. 300)
	{
		my $pid = launcher_pid();
		return $pid if defined $pid && (!defined $not || $pid != $not);
		select undef, undef, undef, 0.2;
	}
	return undef;
}

# the launcher runs, and usage arrives after a flush
ok(defined wait_launcher(), 'the usage worker is running');
verify_n(100);
ok($node->poll_query_until('postgres',
		"SELECT COALESCE(sum(count), 0) = 100 FROM apikeys.key_usage WHERE client_id = '$cid' AND code = 'VALID'"),
	'100 verifications reach apikeys.key_usage after a flush');
ok($node->poll_query_until('postgres', "SELECT last_used_at IS NOT NULL FROM apikeys.key_list WHERE client_id = '$cid'"),
	'key_list shows the last use after the flush');
# the flush wrote journal rows, not a row per key: the rollup is hourly
is($node->safe_psql('postgres',
		"SELECT (SELECT count(*) > 0 FROM apikeys.usage_journal)
		     || ' ' || (SELECT count(*) FROM apikeys.usage)
		     || ' ' || (SELECT last_used_at IS NULL FROM apikeys.keys WHERE client_id = '$cid')"),
	'true 0 true', 'the worker\'s flush writes the journal only, not apikeys.usage or apikeys.keys');

# SIGTERM: the postmaster restarts the worker
my $pid = launcher_pid();
kill 'TERM', $pid;
ok(defined wait_launcher($pid), 'after SIGTERM the worker is restarted');
verify_n(10);
ok($node->poll_query_until('postgres',
		"SELECT COALESCE(sum(count), 0) = 110 FROM apikeys.key_usage WHERE client_id = '$cid' AND code = 'VALID'"),
	'... and flushes again');

# SIGKILL of the worker: a crash of the whole server; the worker comes back.
# The 110 were rolled up first; 7 more reach only the (unlogged) journal.
$node->safe_psql('postgres', 'SELECT apikeys.flush_usage()');
verify_n(7);
ok($node->poll_query_until('postgres',
		"SELECT COALESCE(sum(count), 0) = 117 FROM apikeys.key_usage WHERE client_id = '$cid' AND code = 'VALID'"),
	'7 more verifications reach the journal');
$pid = launcher_pid();
my $log_offset = -s $node->logfile;
kill 'KILL', $pid;
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
$node->poll_query_until('postgres', 'SELECT 1', '1');
ok(defined wait_launcher($pid), 'after SIGKILL the server recovers and the worker runs again');
is(flushed(), '110', 'rolled-up usage survives the crash, the journal since the rollup is lost');
is($node->safe_psql('postgres', 'SELECT lost_until IS NOT NULL FROM apikeys_internal._usage_health()'), 't',
	'... and the loss is noted for the proof of non-use');
ok($node->poll_query_until('postgres', 'SELECT NOT EXISTS (SELECT FROM apikeys.usage_journal)'),
	'after the crash the journal is empty');
is($node->safe_psql('postgres',
		"SELECT (SELECT sum(count) FROM apikeys.usage WHERE client_id = '$cid' AND code = 'VALID')
		     || ' ' || (SELECT bool_and(last_used_at IS NOT NULL) FROM apikeys.usage WHERE client_id = '$cid' AND code = 'VALID')
		     || ' ' || (SELECT last_used_at IS NULL FROM apikeys.keys WHERE client_id = '$cid')
		     || ' ' || (SELECT last_used_at IS NOT NULL FROM apikeys.key_list WHERE client_id = '$cid')"),
	'110 true true true', '... into apikeys.usage with the last use, apikeys.keys untouched, key_list shows it');

# A clean restart keeps the journal: count, let a flush pass, restart.
verify_n(50);
ok($node->poll_query_until('postgres',
		"SELECT COALESCE(sum(count), 0) = 160 FROM apikeys.key_usage WHERE client_id = '$cid' AND code = 'VALID'"),
	'usage before the restart is journaled');
is($node->safe_psql('postgres', 'SELECT count(*) > 0 FROM apikeys.usage_journal'), 't', '... not rolled up');
$node->restart;
is(flushed(), '160', 'a clean restart keeps the journaled usage');

# A crash loses at most what the last rollup had not folded: roll up, count
# more and let a flush journal it, crash at once.  The rolled-up usage stays.
$node->safe_psql('postgres', 'SELECT apikeys.flush_usage()');
my $before = flushed();
verify_n(30);
ok($node->poll_query_until('postgres',
		"SELECT COALESCE(sum(count), 0) = $before + 30 FROM apikeys.key_usage WHERE client_id = '$cid' AND code = 'VALID'"),
	'30 more are journaled');
my $audit = $node->safe_psql('postgres', 'SELECT count(*) FROM apikeys.audit_log');
$node->stop('immediate');
$node->start;
my $after = flushed();
is($after, $before,
	"an immediate shutdown loses the journal since the last rollup, not the rolled-up usage ($before before the 30)");
is($node->safe_psql('postgres', "SELECT (apikeys.verify('$tok')).code"), 'VALID', 'keys survive');
is($node->safe_psql('postgres', 'SELECT count(*) FROM apikeys.audit_log'), $audit, 'audit rows survive');

# From the first flush after this restart (the oldest journal row the
# worker knows of) to the early rollup below, the hour must not turn.
my $to_hour = $node->safe_psql('postgres', 'SELECT 3600 - extract(epoch FROM now())::bigint % 3600');
if ($to_hour < 300)
{
	note("sleeping ${to_hour}s past the top of the hour");
	sleep($to_hour + 5);
}
my $hour0 = $node->safe_psql('postgres', 'SELECT extract(epoch FROM now())::bigint / 3600');
verify_n(5);
ok($node->poll_query_until('postgres',
		"SELECT COALESCE(sum(count), 0) = $after + 6 FROM apikeys.key_usage WHERE client_id = '$cid' AND code = 'VALID'"),
	'counting and flushing resume after the crash');

# 10,100 keys used, the recent-use table holds 10,000 (cache_size): the
# flush that fills it asks for a rollup, and the worker does it at its next
# visit instead of at the next hour.
$node->safe_psql('postgres', q{
INSERT INTO apikeys.keys (client_id, owner, name, scopes, secret_hash, hash_alg, expires_at)
SELECT 'ak_' || lpad(g::text, 16, '0'), 'bulk', 'bulk ' || g, '{docs:read}'::apikeys.scope[],
       sha256(convert_to('S' || lpad(g::text, 42, '0'), 'UTF8')), 's', now() + interval '30 days'
  FROM generate_series(1, 10100) g});
is($node->safe_psql('postgres', q{
SELECT count(*) FROM generate_series(1, 10100) g
 WHERE (apikeys.verify_client('ak_' || lpad(g::text, 16, '0'), 'S' || lpad(g::text, 42, '0'))).valid}),
	'10100', '10,100 keys verify');
ok($node->poll_query_until('postgres', q{
SELECT NOT EXISTS (SELECT FROM apikeys.usage_journal)
   AND (SELECT count(*) FROM apikeys.key_list WHERE owner = 'bulk' AND last_used_at IS NOT NULL) = 10100
   AND (SELECT count(DISTINCT u.client_id) FROM apikeys.usage u JOIN apikeys.keys k USING (client_id)
         WHERE k.owner = 'bulk' AND u.code = 'VALID' AND u.last_used_at IS NOT NULL) = 10100}),
	'a full recent-use table makes the worker roll up early: every last use is stored');
is($node->safe_psql('postgres', 'SELECT extract(epoch FROM now())::bigint / 3600'), $hour0,
	'... within the hour of the journal\'s first row, so not the hourly rollup');

$node->stop;
done_testing();
