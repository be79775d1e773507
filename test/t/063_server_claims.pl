# test/t/063_server_claims.pl
#
# README claims that need a server setup pg_regress cannot give:
#   1. memory: at the default apikeys.cache_size (100,000 slots) the cache
#      takes 55.5 MiB and apikeys 72 MiB of shared memory in all (read from
#      pg_shmem_allocations and PostgreSQL's own shared_memory_size, with
#      and without apikeys preloaded);
#   2. usage counts are dropped, and counted as dropped in usage_stats(),
#      when the usage table (at least 10,000 keys) is full; verification
#      fails open;
#   3. cache_prewarm() loads the live keys most recently used first, no
#      more than the cache holds;
#   4. a pepper across a standby and a failover: keys issued under a pepper
#      verify on a standby with the same pepper and after its promotion,
#      and answer NOT_FOUND on a standby with another pepper.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

$PostgreSQL::Test::Utils::timeout_default = 120;

my $MiB = 1024 * 1024;

#
# 1. memory, at the default cache_size
#
my $primary = PostgreSQL::Test::Cluster->new('pepper_primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', q{
shared_preload_libraries = 'apikeys'
apikeys.pepper = 'pepper-one'
});

# shared_memory_size (MB, rounded up) with and without apikeys, computed
# by the server binary on the stopped cluster
sub shmem_mb
{
	my ($libs) = @_;
	my ($stdout, $stderr);
	IPC::Run::run([ 'postgres', '-D', $primary->data_dir, '-c', "shared_preload_libraries=$libs",
			'-C', 'shared_memory_size' ], '>', \$stdout, '2>', \$stderr)
	  or die "postgres -C failed: $stderr";
	chomp $stdout;
	return $stdout;
}
my $with = shmem_mb('apikeys');
my $without = shmem_mb('');
my $delta = $with - $without;
ok($delta >= 71 && $delta <= 73,
	"apikeys adds 72 MiB of shared memory at cache_size 100,000 (measured $delta: $with MB with, $without MB without)");

$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION apikeys');
is($primary->safe_psql('postgres', "SHOW apikeys.cache_size"), '100000', 'the default cache_size');
my $cache_bytes = $primary->safe_psql('postgres',
	"SELECT size FROM pg_shmem_allocations WHERE name = 'apikeys verification cache'");
ok(abs($cache_bytes / $MiB - 55.5) <= 0.25,
	sprintf('the cache takes 55.5 MiB at 100,000 slots (pg_shmem_allocations: %.2f MiB)', $cache_bytes / $MiB));
my ($cs, $us) = split /\|/, $primary->safe_psql('postgres',
	'SELECT c.shared_bytes, u.shared_bytes FROM apikeys.cache_stats() c, apikeys.usage_stats() u');
is($cs, $cache_bytes, 'cache_stats().shared_bytes reports that allocation');
ok(abs(($cs + $us) / $MiB - 69.5) <= 0.5,
	sprintf('cache_stats() and usage_stats() report 69.5 MiB in all (%.2f + %.2f MiB)', $cs / $MiB, $us / $MiB));

#
# 4. a pepper across a standby and a failover
#
$primary->safe_psql('postgres', q{
	CREATE TABLE tok AS SELECT (k).client_id, (k).token
	  FROM apikeys.create_key('pepper-owner', 'peppered', ARRAY['docs:read']) k});
my $v = '(SELECT token FROM tok)';
is($primary->safe_psql('postgres', "SELECT hash_alg FROM apikeys.keys"), 'h',
	'the key was issued under the pepper (HMAC)');
is($primary->safe_psql('postgres', "SELECT (apikeys.verify($v)).code"), 'VALID', 'VALID on the primary');
$primary->backup('bk');
my $same = PostgreSQL::Test::Cluster->new('pepper_same');
$same->init_from_backup($primary, 'bk', has_streaming => 1);
$same->start;
my $other = PostgreSQL::Test::Cluster->new('pepper_other');
$other->init_from_backup($primary, 'bk', has_streaming => 1);
$other->append_conf('postgresql.conf', "apikeys.pepper = 'pepper-two'\n");
$other->start;
$primary->wait_for_catchup($_, 'replay', $primary->lsn('insert')) for $same, $other;
is($same->safe_psql('postgres', "SELECT pg_is_in_recovery() || ' ' || (apikeys.verify($v)).code"),
	'true VALID', 'VALID on a standby with the same pepper');
is($other->safe_psql('postgres', "SELECT pg_is_in_recovery() || ' ' || (apikeys.verify($v)).code || ' ' || coalesce((apikeys.verify($v)).owner, 'no owner')"),
	'true NOT_FOUND no owner', 'NOT_FOUND, no owner, on a standby with another pepper');
$primary->stop;
$same->promote;
is($same->safe_psql('postgres', "SELECT pg_is_in_recovery() || ' ' || (apikeys.verify($v)).code"),
	'false VALID', 'VALID after the standby with the same pepper is promoted');
my $after = $same->safe_psql('postgres',
	"SELECT token FROM apikeys.create_key('pepper-owner', 'after failover', ARRAY['docs:read'])");
is($same->safe_psql('postgres', "SELECT (apikeys.verify('$after')).code"), 'VALID',
	'a key issued on the promoted server verifies there');
$same->stop;
$other->stop;

#
# 2 and 3: a tiny cache (64 slots), so the usage table (10,000 keys) fills
#
my $node = start_node('tiny', conf => q{
apikeys.cache_size = 64
apikeys.flush_interval = 3600
apikeys.prewarm = off    # cache_prewarm() by hand below (069 tests the reload)
});
$node->safe_psql('postgres', q{
INSERT INTO apikeys.keys (client_id, owner, name, scopes, secret_hash, hash_alg, expires_at)
SELECT 'ak_' || lpad(g::text, 16, '0'), 'bulk', 'bulk ' || g, '{docs:read}'::apikeys.scope[],
       sha256(convert_to('S' || lpad(g::text, 42, '0'), 'UTF8')), 's', now() + interval '30 days'
  FROM generate_series(1, 13048) g});
my ($cap, $kcap) = split /\|/, $node->safe_psql('postgres',
	'SELECT c.capacity, u.key_capacity FROM apikeys.cache_stats() c, apikeys.usage_stats() u');
is($kcap, '10000', 'the usage table holds 10,000 keys (its minimum)');
is($cap, '2048', 'cache_size 64 rounds up to 2,048 slots (128 partitions of one 16-way set)');
my $n = 10000 + $cap + 1000;    # more keys than the usage table and the cache hold

my $verify_range = sub {
	my ($from, $to) = @_;
	return qq{SELECT count(*) FROM generate_series($from, $to) g
		WHERE (apikeys.verify_client('ak_' || lpad(g::text, 16, '0'), 'S' || lpad(g::text, 42, '0'))).valid};
};
is($node->safe_psql('postgres', $verify_range->(1, $n)), $n,
	"$n keys verify although the usage table holds 10,000 and the cache $cap: it fails open");
my $dropped = $node->safe_psql('postgres', 'SELECT dropped_keys FROM apikeys.usage_stats()');
ok($dropped >= 1000 && $dropped <= 1000 + $cap,
	"usage_stats() counts the usage dropped ($dropped keys; 1,000 did not fit, plus what the cache gave back)");
$node->safe_psql('postgres', 'SELECT apikeys.flush_usage()');
my ($sum, $dropped2) = split /\|/, $node->safe_psql('postgres',
	"SELECT (SELECT sum(count) FROM apikeys.key_usage WHERE client_id LIKE 'ak\\_0%'), dropped_keys FROM apikeys.usage_stats()");
is($sum + $dropped2, $n, "every verification is either counted ($sum) or counted as dropped ($dropped2)");

# prewarm: key g last used g seconds ago, so 1 is the most recent; key 2
# is revoked (prewarm loads live keys only).  The last uses are rolled-up
# ones (where a preloaded server keeps them, packed per bucket: the rows
# the rollup above wrote are replaced), apikeys.keys.last_used_at is NULL.
$node->safe_psql('postgres', q{
DELETE FROM apikeys.usage_packed;
INSERT INTO apikeys.usage_packed (hour, bucket, keys, data)
SELECT date_trunc('hour', now()), right(k.client_id, 2), count(*),
       apikeys_internal._usage_pack(array_agg(k.client_id), array_agg('VALID'::text), array_agg(1::bigint),
                           array_agg(now() - substr(k.client_id, 4)::int * interval '1 second'))
  FROM apikeys.keys k WHERE k.owner = 'bulk' GROUP BY 2;
UPDATE apikeys.keys SET revoked_at = now() WHERE client_id = 'ak_' || lpad('2', 16, '0')});
is($node->safe_psql('postgres', "SELECT count(*) FROM apikeys.keys WHERE owner = 'bulk' AND last_used_at IS NOT NULL"),
	'0', 'prewarm order: the last uses are the rolled-up ones only');
$node->restart;
is($node->safe_psql('postgres', 'SELECT entries FROM apikeys.cache_stats()'), '0', 'the cache is empty after a restart');
is($node->safe_psql('postgres', 'SELECT apikeys.cache_prewarm()'), $cap,
	'cache_prewarm() loads as many keys as the cache holds, no more');
my $entries = $node->safe_psql('postgres', 'SELECT entries FROM apikeys.cache_stats()');
ok($entries > $cap / 2 && $entries <= $cap, "the cache holds $entries of its $cap slots");
# one session: first the most recent live keys (1, 3, 4, ...: hits, less
# any a set collision pushed out), then the older ones: none was loaded,
# so each first verification is a miss
my $top = $cap + 1;    # keys 1..$top less the revoked key 2
my $out = $node->safe_psql('postgres', qq{
	SELECT count(*) FROM generate_series(1, $top) g
	 WHERE g <> 2 AND (apikeys.verify_client('ak_' || lpad(g::text, 16, '0'), 'S' || lpad(g::text, 42, '0'))).valid;
	CREATE TEMP TABLE s1 AS SELECT session_hits, session_misses FROM apikeys.cache_stats();
	SELECT count(*) FROM generate_series($top + 1, $top + 500) g
	 WHERE (apikeys.verify_client('ak_' || lpad(g::text, 16, '0'), 'S' || lpad(g::text, 42, '0'))).valid;
	SELECT s1.session_hits || '|' || s1.session_misses || '|' || (c.session_hits - s1.session_hits)
	  FROM s1, apikeys.cache_stats() c;});
my ($hits_top, $miss_top, $hits_old) = split /\|/, (split /\n/, $out)[-1];
ok(defined $hits_old, 'session hit counts read');
ok($hits_top >= $entries - $miss_top && $hits_top > 0,
	"the $cap most recently used live keys were loaded ($hits_top hits, $miss_top misses, $entries entries)");
is($hits_old, '0', 'no older key was loaded: the 500 next ones are all misses');
is($node->safe_psql('postgres', "SELECT (apikeys.verify_client('ak_' || lpad('2', 16, '0'), 'S' || lpad('2', 42, '0'))).code"),
	'REVOKED', 'the revoked key answers REVOKED');

$node->stop;
done_testing();
