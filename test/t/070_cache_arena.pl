# The shared cache's arena (src/verify_cache.c, "Records"): seed-shaped keys (a
# UUID owner, 8 to 15 scopes of which some carry field lists, a network, a
# database role, metadata) are cached, and many more of them than the
# arena holds keep being answered right while entries are evicted to make
# room in it:
#   1. every answer carries the key's own owner, scopes, name and metadata,
#      from the cache or not;
#   2. the second verification of a key the arena has room for is a hit;
#   3. under two pgbench clients verifying random keys (so fills and arena
#      evictions race), revokes are each seen by the very next
#      verification, here and in another session open all along;
#   4. usage counts every verification exactly once, although counts move
#      out of evicted entries all along;
#   5. the arena never holds more than its size;
#   6. in a larger cache, records read through the entry's chunk list (up
#      to 26 chunks) and through the chunk links (longer ones, up to 8 kB)
#      come back whole, boundaries included.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

# 64 entries are rounded up to 16 ways in each of the 128 partitions: 2048
# entries and a 512 kB arena, room for about 1,000 seed-shaped keys
my $node = start_node('arena', conf => qq{
apikeys.cache_size = 64
apikeys.default_max_keys = 5000
log_statement = none
}, create => '');
$node->safe_psql('postgres', q{
	CREATE EXTENSION apikeys;
	CREATE ROLE seed_app NOLOGIN;
	CREATE TABLE tok AS
	SELECT g AS id, (k).client_id, (k).token
	  FROM generate_series(1, 3000) g,
	       LATERAL apikeys.create_key(
	           (SELECT md5(g::text)::uuid::text), 'seed key ' || g,
	           (SELECT array_agg(CASE WHEN i % 4 = 0 THEN 'res' || i || ':read(id,name,amount,currency)'
	                                  ELSE 'res' || i || ':read' END)
	              FROM generate_series(1, 8 + g % 8) i),
	           allowed_cidrs => ARRAY['10.0.0.0/8']::cidr[],
	           metadata => jsonb_build_object('customer', g, 'plan', 'business', 'region', 'eu-west-1'),
	           db_role => 'seed_app') k;
	GRANT SELECT ON tok TO PUBLIC;
	CREATE TABLE answers (id int, began timestamptz, code text);
	CREATE TABLE changes (id int, committed_before timestamptz)});

# 1 and 2: two passes over 60 keys (about two per partition: room for
# all), then over all 3000
my $check = q{
	SELECT count(*) FILTER (WHERE (v).code = 'VALID' AND (v).owner = md5(t.id::text)::uuid::text
	                          AND (v).name = 'seed key ' || t.id
	                          AND (v).metadata = jsonb_build_object('customer', t.id, 'plan', 'business', 'region', 'eu-west-1')
	                          AND cardinality((v).scopes) = 8 + t.id % 8
	                          AND (v).scopes @> ARRAY['res4:read(amount,currency,id,name)'])
	  FROM tok t, LATERAL (SELECT apikeys.verify(t.token, 'res4:read(id,amount)', '10.1.2.3') AS v) x
	 WHERE t.id <= %d};
is($node->safe_psql('postgres', sprintf($check, 60)), '60', 'seed-shaped keys answer with their own fields (cold)');
is($node->safe_psql('postgres', sprintf($check, 60) . q{;
	SELECT session_hits, session_misses FROM apikeys.cache_stats()}),
	"60\n60|0", 'the second verification of each is a hit');
is($node->safe_psql('postgres', sprintf($check, 3000)), '3000', 'all 3000 answer with their own fields');
is($node->safe_psql('postgres', sprintf($check, 3000)), '3000', 'and again, while the arena evicts');
my ($evictions, $fits) = split /\|/, $node->safe_psql('postgres',
	'SELECT arena_evictions, arena_used_bytes <= arena_bytes AND entries <= capacity FROM apikeys.cache_stats()');
ok($evictions > 0, "entries were evicted to make room in the arena ($evictions)");
is($fits, 't', 'the arena and the table stay within their size');

# 3: revokes under concurrent verification
my $script = $node->basedir . '/verify.sql';
PostgreSQL::Test::Utils::append_to_file($script,
	"\\set id random(1, 3000)\n"
	  . "INSERT INTO answers SELECT id, clock_timestamp(), (apikeys.verify(token, 'res1:read', '10.1.2.3')).code FROM tok WHERE id = :id;\n");
my $bench = start_pgbench($node, $script, 2, 10);
my $obs = $node->background_psql('postgres');
my ($wrong, $wrong_obs) = (0, 0);
for my $id (1 .. 100)
{
	my $before = $obs->query_safe("SELECT (apikeys.verify(token, NULL, '10.1.2.3')).code FROM tok WHERE id = $id");
	chomp $before;
	$wrong_obs++ if $before ne 'VALID';
	my $got = $node->safe_psql('postgres', qq{
		SELECT (apikeys.verify(token, NULL, '10.1.2.3')).code FROM tok WHERE id = $id;
		SELECT apikeys.revoke_key(client_id) IS NOT NULL FROM tok WHERE id = $id;
		INSERT INTO changes VALUES ($id, clock_timestamp());
		SELECT (apikeys.verify(token, NULL, '10.1.2.3')).code FROM tok WHERE id = $id;});
	my @lines = split /\n/, $got;
	$wrong++ if $lines[-1] ne 'REVOKED';
	my $other = $obs->query_safe("SELECT (apikeys.verify(token, NULL, '10.1.2.3')).code FROM tok WHERE id = $id");
	chomp $other;
	$wrong_obs++ if $other ne 'REVOKED';
}
is($wrong, 0, '100 revokes each seen by the next verification in the session that made it');
is($wrong_obs, 0, 'and in another session open all along');
$obs->quit;
my ($tx, $out, $err) = finish_pgbench($bench);
unlike($err, qr/aborted|ERROR/, 'no pgbench client failed') or diag($err);
ok($tx > 0, "pgbench verified concurrently ($tx)");
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM answers a JOIN changes c USING (id)
	 WHERE a.began > c.committed_before AND a.code <> 'REVOKED'}),
	'0', 'every pgbench verification that began after a revoke saw it');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM answers a LEFT JOIN changes c USING (id)
	 WHERE a.code NOT IN ('VALID', 'REVOKED') OR (a.code = 'REVOKED' AND c.id IS NULL)}),
	'0', 'pgbench saw no other answer');

# 4: every verification counted once: 60 x 2 + 3000 x 2 + pgbench + 100 x 4
$node->safe_psql('postgres', 'SELECT apikeys.flush_usage()');
is($node->safe_psql('postgres', 'SELECT sum(count) FROM apikeys.key_usage'),
	120 + 6000 + $tx + 400, 'usage counts every verification exactly once');

$node->stop;

# 6: 20,000 entries: a partition's arena takes records of up to 78 chunks,
# so both ways of reading a record are used; each record's metadata is a
# string of its length, and the answer must return it byte for byte
my $big = start_node('arena_big', conf => qq{
apikeys.cache_size = 20000
log_statement = none
}, create => '');
$big->safe_psql('postgres', q{
	CREATE EXTENSION apikeys;
	CREATE TABLE tok AS
	SELECT n, (k).token
	  FROM unnest(ARRAY[100, 1000, 3000, 3200, 3300, 4000, 7000]) n,
	       LATERAL apikeys.create_key('owner ' || n, 'big ' || n, ARRAY['api:read'],
	           metadata => jsonb_build_object('pad', repeat(chr(65 + n % 26), n))) k});
my $big_check = q{
	SELECT string_agg(n || ':' || ((v).code = 'VALID' AND (v).owner = 'owner ' || t.n
	                   AND (v).metadata = jsonb_build_object('pad', repeat(chr(65 + t.n % 26), t.n)))::text, ' ' ORDER BY n)
	  FROM tok t, LATERAL (SELECT apikeys.verify(t.token, 'api:read') AS v) x};
my $whole = '100:true 1000:true 3000:true 3200:true 3300:true 4000:true 7000:true';
is($big->safe_psql('postgres', $big_check), $whole, 'large records answer whole (cold)');
is($big->safe_psql('postgres', $big_check . q{;
	SELECT session_hits, session_misses FROM apikeys.cache_stats()}),
	"$whole\n7|0", 'and whole from the cache, through the chunk list and the chunk links');
$big->stop;
done_testing();
