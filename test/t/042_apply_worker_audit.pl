# test/t/042_apply_worker_audit.pl
#
# The audit log is append-only (apikeys_internal._audit_append_only_trigger), with
# one exception for logical replication: a DELETE applied by a worker the
# server started for a subscription is the publisher's purge_audit, and is
# let through (docs/security.md, "Replica mode").  What recognises such a
# worker is apikeys_internal._in_apply_worker() (src/admin_audit.c), and PostgreSQL has
# several kinds of them, renamed and added between majors: the leader apply
# worker, the table synchronization worker (its own entry point since 17)
# and the parallel apply worker of a streamed transaction (16).  So the
# publisher's purge is made to reach the subscriber through each of them:
#   1. a table synchronization worker: the purge commits while the worker's
#      initial COPY waits for a lock, so the worker replays it when it
#      catches up;
#   2. the leader apply worker: an ordinary small transaction;
#   3. a streamed transaction (larger than logical_decoding_work_mem):
#      streaming = parallel from 16 (a parallel apply worker applies it),
#      streaming = on on 15 (the leader applies it from its spool file).
# A probe trigger on the subscriber records which kind of worker deleted
# the rows (from pg_stat_subscription), so each part shows that it
# exercised the worker it names.  Sessions, also in replica mode, still
# cannot delete audit rows.  A detection that misses one kind of worker
# leaves that worker failing on the append-only trigger, retrying forever:
# the purge never arrives and the part fails within its time limit.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

# apikeys not preloaded, and in database app on both sides
my $pub = start_node('pub', preload => 0, init => { allows_streaming => 'logical' },
	conf => "logical_decoding_work_mem = '64kB'\n", create => 'CREATE DATABASE app');
my $sub = start_node('sub', preload => 0, create => 'CREATE DATABASE app');
my $major = int(sq($pub, 'SHOW server_version_num') / 10000);

for my $node ($pub, $sub)
{
	sq($node, 'CREATE EXTENSION apikeys', db => 'app');
}

# the probe: which kind of process deletes audit rows on the subscriber
# (a BEFORE trigger named to fire before audit_log_append_only)
$sub->safe_psql('app', q{
CREATE TABLE public.deleted_by (kind text);
CREATE FUNCTION public.probe() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.deleted_by
    SELECT coalesce((SELECT CASE WHEN s.relid IS NOT NULL THEN 'tablesync'
                                 WHEN to_jsonb(s) ->> 'leader_pid' IS NOT NULL THEN 'parallel apply'
                                 ELSE 'apply' END
                     FROM pg_catalog.pg_stat_subscription s
                     WHERE s.pid = pg_catalog.pg_backend_pid()), 'session');
    RETURN OLD;
END
$$;
CREATE TRIGGER a_probe BEFORE DELETE ON apikeys.audit_log
    FOR EACH ROW EXECUTE FUNCTION public.probe();
ALTER TABLE apikeys.audit_log ENABLE ALWAYS TRIGGER a_probe;
});

my $filler = "INSERT INTO apikeys.audit_log (event) SELECT 'filler' FROM generate_series(1, %d)";
my $count = 'SELECT count(*) FROM apikeys.audit_log';

# kinds(): the kinds of process that deleted audit rows since the last
# call, as "kind:rows" (and forgets them)
sub kinds
{
	return $sub->safe_psql('app', q{
		WITH d AS (DELETE FROM public.deleted_by RETURNING kind)
		SELECT coalesce(string_agg(kind || ':' || n, ' ' ORDER BY kind), '')
		FROM (SELECT kind, count(*) AS n FROM d GROUP BY kind) k});
}

# arrived(SQL): polls the subscriber until SQL answers what it answers on
# the publisher, for at most 90 s; true when it did.  (A worker that fails
# on the append-only trigger retries forever: waiting longer proves
# nothing.)
sub arrived
{
	my ($sql) = @_;
	my $want = $pub->safe_psql('app', $sql);
	for (1 .. 900)
	{
		return 1 if $sub->safe_psql('app', $sql) eq $want;
		usleep(100_000);
	}
	diag("subscriber: " . $sub->safe_psql('app', $sql) . ", publisher: $want");
	return 0;
}

#
# 1. a table synchronization worker applies the purge: its initial COPY
#    stops at a row the subscriber holds (an advisory lock), the purge
#    commits on the publisher and reaches the leader apply worker (which
#    leaves the table to the synchronization worker), then the COPY goes
#    on and the synchronization worker replays the purge to catch up with
#    the leader
#
$sub->safe_psql('app', q{
CREATE FUNCTION public.hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.pg_advisory_lock_shared(42);
    PERFORM pg_catalog.pg_advisory_unlock_shared(42);
    RETURN NEW;
END
$$;
CREATE TRIGGER a_hold BEFORE INSERT ON apikeys.audit_log
    FOR EACH ROW WHEN (NEW.event = 'hold') EXECUTE FUNCTION public.hold();
ALTER TABLE apikeys.audit_log ENABLE ALWAYS TRIGGER a_hold;
});
$pub->safe_psql('app', sprintf($filler, 20) . "; INSERT INTO apikeys.audit_log (event) VALUES ('hold')");
$pub->safe_psql('app', 'CREATE PUBLICATION audit_pub FOR TABLE apikeys.audit_log');
my $holder = $sub->background_psql('app');
$holder->query_safe('SELECT pg_advisory_lock(42)');
$sub->safe_psql('app', "CREATE SUBSCRIPTION audit_sub CONNECTION '" . $pub->connstr . ' dbname=app'
	  . "' PUBLICATION audit_pub WITH (streaming = off)");
ok($sub->poll_query_until('app', "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"),
	'1. the table synchronization worker is copying (its snapshot taken)');
$pub->safe_psql('app', "SELECT apikeys.purge_audit('0 seconds')");
$pub->wait_for_catchup('audit_sub');
$holder->query_safe('SELECT pg_advisory_unlock(42)');
$holder->quit;
ok(arrived(q{SELECT count(*) || ' ' || string_agg(event, ',' ORDER BY id) FROM apikeys.audit_log}),
	"1. the publisher's purge reaches the subscriber during its table synchronization");
is(kinds(), 'tablesync:21', '1. ... deleted by the table synchronization worker');
ok($sub->poll_query_until('app', "SELECT bool_and(srsubstate = 'r') FROM pg_subscription_rel"),
	'1. the table is synchronized');

#
# 2. the leader apply worker applies the purge
#
$pub->safe_psql('app', sprintf($filler, 10));
ok(arrived($count), '2. the filler rows arrive');
$pub->safe_psql('app', "SELECT apikeys.purge_audit('0 seconds')");
ok(arrived(q{SELECT count(*) || ' ' || string_agg(event, ',' ORDER BY id) FROM apikeys.audit_log}),
	"2. the publisher's purge reaches the subscriber");
is(kinds(), 'apply:11', '2. ... deleted by the apply worker');

#
# 3. a streamed purge: a parallel apply worker (16 and later), the leader
#    from its spool file (15)
#
$pub->safe_psql('app', sprintf($filler, 3000));
ok(arrived($count), '3. the filler rows arrive');
my $streaming = $major >= 16 ? 'parallel' : 'on';
$sub->safe_psql('app', "ALTER SUBSCRIPTION audit_sub SET (streaming = $streaming)");
# the leader restarts for the new option; wait until it runs again
ok($sub->poll_query_until('app',
	"SELECT count(*) = 1 FROM pg_stat_subscription WHERE relid IS NULL AND pid IS NOT NULL"),
	'3. the apply worker runs');
my $deleted = $pub->safe_psql('app', "SELECT apikeys.purge_audit('0 seconds')");
ok(arrived(q{SELECT count(*) || ' ' || string_agg(event, ',' ORDER BY id) FROM apikeys.audit_log}),
	"3. the publisher's streamed purge ($deleted rows) reaches the subscriber");
is(kinds(), ($major >= 16 ? 'parallel apply' : 'apply') . ":$deleted",
	"3. ... deleted by the " . ($major >= 16 ? 'parallel apply worker' : 'apply worker'));

# no worker ever hit the append-only trigger (its error would be in the
# log, with the worker retrying)
unlike(slurp_file($sub->logfile), qr/append-only/, 'no logical replication worker hit the append-only trigger');

#
# sessions still cannot delete audit rows, in origin or replica mode
#
for my $role ('origin', 'replica')
{
	my ($ret, $out, $err) = $sub->psql('app',
		"SET session_replication_role = $role; DELETE FROM apikeys.audit_log");
	like($err, qr/append-only/, "a session in $role mode on the subscriber cannot delete audit rows");
}
is($sub->safe_psql('app', $count), '1', '... and none was deleted');
is($sub->safe_psql('app', q{SELECT count(*) FROM pg_stat_subscription s
		WHERE pid IS NOT NULL AND relid IS NULL AND to_jsonb(s) ->> 'leader_pid' IS NULL}),
	'1', 'the apply worker is still running');

$sub->stop;
$pub->stop;
done_testing();
