# Stress of the shared verification cache: while pgbench keeps verifying
# (and so refilling the cache) random keys from two clients, keys are
# revoked, disabled and rotated one by one; each change must be seen by the
# very next verification after its commit (src/cache.c).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('stress');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'apikeys'
apikeys.cache_size = 64
apikeys.default_max_keys = 1000
log_statement = none
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION apikeys');
# more keys than the cache holds, so fills and evictions race with changes
$node->safe_psql('postgres', q{
	CREATE TABLE tok AS
	SELECT g AS id, (k).client_id, (k).token
	  FROM generate_series(1, 300) g,
	       LATERAL apikeys.create_key('stress-' || (g % 10), 'k' || g, ARRAY['docs:read']) k;
	GRANT SELECT ON tok TO PUBLIC});

my $script = $node->basedir . '/verify.sql';
PostgreSQL::Test::Utils::append_to_file($script,
	"\\set id random(1, 300)\nSELECT (apikeys.verify(token)).code FROM tok WHERE id = :id;\n");
my ($out, $err) = ('', '');
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '2', '-j', '2', '-T', '12', '-f', $script,
	  '-h', $node->host, '-p', $node->port, 'postgres' ],
	'>', \$out, '2>', \$err);

my $wrong = 0;
my $n = 0;
for my $id (1 .. 240)
{
	my ($action, $expect) =
	  $id % 3 == 0 ? ('revoke_key', 'REVOKED')
	  : $id % 3 == 1 ? ('disable_key', 'DISABLED')
	  : ('rotate_key', 'NOT_FOUND');
	# warm: make sure the key is cached right before the change
	my $got = $node->safe_psql('postgres', qq{
		SELECT (apikeys.verify(token)).code FROM tok WHERE id = $id;
		SELECT (apikeys.verify(token)).code FROM tok WHERE id = $id;
		SELECT apikeys.$action(client_id) IS NOT NULL FROM tok WHERE id = $id;
		SELECT (apikeys.verify(token)).code FROM tok WHERE id = $id;});
	my @lines = split /\n/, $got;
	$n++;
	if ($lines[-1] ne $expect)
	{
		$wrong++;
		diag("key $id after $action: $lines[-1], expected $expect");
	}
}
is($wrong, 0, "$n changes each seen by the next verification under concurrent load");

IPC::Run::finish($bench);
like($out, qr/number of transactions actually processed: [1-9]/, 'pgbench verified concurrently');
my ($tx) = $out =~ /number of transactions actually processed: (\d+)/;

# every verification is counted once, although entries were evicted and
# invalidated all along (their counts move to the per-key table)
$node->safe_psql('postgres', 'SELECT apikeys.flush_usage()');
is($node->safe_psql('postgres', 'SELECT sum(count) FROM apikeys.key_usage'), $tx + 3 * 240,
	'usage counts every verification exactly once');
is($node->safe_psql('postgres', q{SELECT count(*) FROM tok WHERE (apikeys.verify(token)).valid}),
	'60', 'the 60 untouched keys still verify');
is($node->safe_psql('postgres', q{SELECT invalidations >= 240 FROM apikeys.cache_stats()}),
	't', 'every change invalidated');

$node->stop;
done_testing();
