# test/t/073_cache_two_sets.pl
#
# A key may live in either of two sets of its partition (src/verify_cache.c
# SetBase): a cache filled to about 60 % keeps every key, where one set per
# key overflowed.  apikeys.cache_size = 8192 is 512 sets of 16 ways, 4 sets
# per partition; 5,000 keys with fixed client IDs (so the same hashes, the
# same placement at every run) are verified once each on a fresh server, then
# again:
#   - the first pass fills every key and evicts none (with one set per key,
#     these client IDs overflow some sets: evictions > 0 and fewer entries);
#   - the second pass is served entirely from the cache (no new miss).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

my $n = 5000;
my $node = start_node('two_sets', conf => q{
apikeys.cache_size = 8192
apikeys.prewarm = off
apikeys.flush_interval = 3600
});

# keys written directly (the hash of a known secret, as 071 does)
sq($node, qq{INSERT INTO apikeys.keys (client_id, owner, name, scopes, secret_hash, hash_alg, expires_at)
     SELECT 'ak_' || lpad(g::text, 16, '0'), 'bulk', 'bulk ' || g, '{docs:read}'::apikeys.scope[],
            sha256(convert_to('S' || lpad(g::text, 42, '0'), 'UTF8')), 's', now() + interval '30 days'
       FROM generate_series(1, $n) g});

my $pass = qq{SELECT count(*) FROM generate_series(1, $n) g
         WHERE (apikeys.verify_client('ak_' || lpad(g::text, 16, '0'), 'S' || lpad(g::text, 42, '0'))).valid};

is(sq($node, $pass), $n, "$n keys verify");
my ($capacity, $entries, $evictions, $misses) = split /\|/, sq($node, q{
	SELECT c.capacity, c.entries, s.cache_evictions, s.cache_misses FROM apikeys.cache_stats() c, apikeys.stats s});
is($capacity, 8192, 'the cache has 8192 ways');
is("$entries|$evictions|$misses", "$n|0|$n",
	'one fill per key, every key kept, none evicted (entries|evictions|misses)');

is(sq($node, $pass), $n, "$n keys verify again");
my ($hits2, $misses2) = split /\|/, sq($node, q{SELECT cache_hits, cache_misses FROM apikeys.stats});
is("$hits2|$misses2", "$n|$n", 'the second pass is served from the cache: no new miss');

$node->stop;
done_testing();
