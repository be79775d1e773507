# Stress of the shared verification cache: while pgbench keeps verifying
# (and so refilling the cache) random keys from two clients, keys are
# revoked, disabled and rotated one by one; each change must be seen by the
# very next verification after its commit (src/verify_cache.c): in the session
# that made it, in another session that was open all along (its backend
# had the key cached before the change), and in every pgbench verification
# that began after the commit.  pgbench stores each answer with the time
# its verification began, so its answers are checked, not just its exit.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

my $node = start_node('stress', conf => qq{
apikeys.cache_size = 64
apikeys.default_max_keys = 1000
log_statement = none
});
# more keys than the cache holds, so fills and evictions race with changes
$node->safe_psql('postgres', q{
	CREATE TABLE tok AS
	SELECT g AS id, (k).client_id, (k).token
	  FROM generate_series(1, 300) g,
	       LATERAL apikeys.create_key('stress-' || (g % 10), 'k' || g, ARRAY['docs:read']) k;
	GRANT SELECT ON tok TO PUBLIC;
	CREATE TABLE answers (id int, began timestamptz, code text);
	CREATE TABLE changes (id int, expect text, committed_before timestamptz)});

my $script = $node->basedir . '/verify.sql';
PostgreSQL::Test::Utils::append_to_file($script,
	"\\set id random(1, 300)\n"
	  . "INSERT INTO answers SELECT id, clock_timestamp(), (apikeys.verify(token)).code FROM tok WHERE id = :id;\n");
my $bench = start_pgbench($node, $script, 2, 15);

# another session, open before any change: it must see each change too
my $obs = $node->background_psql('postgres');
my $wrong = 0;
my $wrong_obs = 0;
my $n = 0;
for my $id (1 .. 240)
{
	my ($action, $expect) =
	  $id % 3 == 0 ? ('revoke_key', 'REVOKED')
	  : $id % 3 == 1 ? ('disable_key', 'DISABLED')
	  : ('rotate_key', 'NOT_FOUND');
	# warm: make sure the key is cached right before the change, also
	# through the other session's backend
	my $before = $obs->query_safe("SELECT (apikeys.verify(token)).code FROM tok WHERE id = $id");
	chomp $before;
	if ($before ne 'VALID')
	{
		$wrong_obs++;
		diag("key $id before $action, other session: $before");
	}
	my $got = $node->safe_psql('postgres', qq{
		SELECT (apikeys.verify(token)).code FROM tok WHERE id = $id;
		SELECT (apikeys.verify(token)).code FROM tok WHERE id = $id;
		SELECT apikeys.$action(client_id) IS NOT NULL FROM tok WHERE id = $id;
		INSERT INTO changes VALUES ($id, '$expect', clock_timestamp());
		SELECT (apikeys.verify(token)).code FROM tok WHERE id = $id;});
	my @lines = split /\n/, $got;
	$n++;
	if ($lines[-1] ne $expect)
	{
		$wrong++;
		diag("key $id after $action: $lines[-1], expected $expect");
	}
	my $other = $obs->query_safe("SELECT (apikeys.verify(token)).code FROM tok WHERE id = $id");
	chomp $other;
	if ($other ne $expect)
	{
		$wrong_obs++;
		diag("key $id after $action, other session: $other, expected $expect");
	}
}
is($wrong, 0, "$n changes each seen by the next verification in the session that made it");
is($wrong_obs, 0, "$n changes each seen by the next verification in another session open all along");
$obs->quit;

my ($tx, $out, $err) = finish_pgbench($bench);
like($out, qr/number of transactions actually processed: [1-9]/, 'pgbench verified concurrently');
unlike($err, qr/aborted|ERROR/, 'no pgbench client failed') or diag($err);

# pgbench's own answers: one row per transaction; a verification that
# began after a change's commit saw the change; no answer is other than
# VALID or the key's changed state
is($node->safe_psql('postgres', 'SELECT count(*) FROM answers'), $tx, 'one stored answer per pgbench transaction');
my $after = $node->safe_psql('postgres',
	'SELECT count(*) FROM answers a JOIN changes c USING (id) WHERE a.began > c.committed_before');
ok($after >= 50, "pgbench verified changed keys after their change ($after times)");
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM answers a JOIN changes c USING (id)
	 WHERE a.began > c.committed_before AND a.code <> c.expect}),
	'0', 'every pgbench verification that began after a change saw it');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM answers a LEFT JOIN changes c USING (id)
	 WHERE a.code <> 'VALID' AND a.code IS DISTINCT FROM c.expect}),
	'0', 'pgbench saw no answer other than VALID or the changed state');

# every verification is counted once, although entries were evicted and
# invalidated all along (their counts move to the per-key table)
$node->safe_psql('postgres', 'SELECT apikeys.flush_usage()');
is($node->safe_psql('postgres', 'SELECT sum(count) FROM apikeys.key_usage'), $tx + 5 * 240,
	'usage counts every verification exactly once');
is($node->safe_psql('postgres', q{SELECT count(*) FROM tok WHERE (apikeys.verify(token)).valid}),
	'60', 'the 60 untouched keys still verify');
is($node->safe_psql('postgres', q{SELECT invalidations >= 240 FROM apikeys.cache_stats()}),
	't', 'every change invalidated');

$node->stop;
done_testing();
