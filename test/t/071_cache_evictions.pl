# test/t/071_cache_evictions.pl
#
# The cache_evictions counter of apikeys.stats (src/verify_cache.c CacheInsert,
# src/stats.c): a cache of the smallest size (apikeys.cache_size = 64,
# rounded up to 16 ways in each of the 128 partitions) is filled past its
# capacity by verifying each of 3,000 keys once, on a fresh server with no
# prewarm and nothing else verified.  Every verification misses and fills
# one entry, into a free way or over a live entry (an eviction), so:
#   - evictions happened (> 0), and entries never exceed capacity;
#   - the view's gauges are cache_stats()'s;
#   - entries + evictions = the keys filled, exactly: a fill that evicts
#     and is not counted (or one counted twice) shows here.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

my $n = 3000;
my $node = start_node('evictions', conf => q{
apikeys.cache_size = 64
apikeys.prewarm = off
apikeys.flush_interval = 3600
});

# keys written directly (the hash of a known secret, as 055 does): fast
sq($node, qq{INSERT INTO apikeys.keys (client_id, owner, name, scopes, secret_hash, hash_alg, expires_at)
     SELECT 'ak_' || lpad(g::text, 16, '0'), 'bulk', 'bulk ' || g, '{docs:read}'::apikeys.scope[],
            sha256(convert_to('S' || lpad(g::text, 42, '0'), 'UTF8')), 's', now() + interval '30 days'
       FROM generate_series(1, $n) g});

my ($capacity, $entries0, $evictions0) = split /\|/, sq($node, q{
	SELECT c.capacity, c.entries, s.cache_evictions FROM apikeys.cache_stats() c, apikeys.stats s});
is("$entries0|$evictions0", '0|0', 'a fresh server: an empty cache, no eviction');
cmp_ok($capacity, '<', $n, "the cache holds fewer entries ($capacity) than there are keys ($n)");

is(sq($node, qq{SELECT count(*) FROM generate_series(1, $n) g
         WHERE (apikeys.verify_client('ak_' || lpad(g::text, 16, '0'), 'S' || lpad(g::text, 42, '0'))).valid}),
	$n, "$n keys verify, once each");

my ($entries, $cap, $evictions, $v_entries, $v_cap) = split /\|/, sq($node, q{
	SELECT c.entries, c.capacity, s.cache_evictions, s.cache_entries, s.cache_capacity
	  FROM apikeys.cache_stats() c, apikeys.stats s});
cmp_ok($evictions, '>', 0, "filling the cache past its capacity evicts ($evictions evictions)");
cmp_ok($entries, '<=', $cap, "the cache holds at most its capacity ($entries of $cap)");
is("$v_entries|$v_cap", "$entries|$cap", 'apikeys.stats shows the entries and capacity of cache_stats()');
is($entries + $evictions, $n, 'every fill took a free way or evicted a counted entry: entries + evictions = keys filled');

$node->stop;
done_testing();
