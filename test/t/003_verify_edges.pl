# Verification edge cases that need more than one database or a clock:
# - an unknown client ID and a wrong secret both hash the presented secret
#   and take about the same time: the unknown ID answers some 20 % sooner
#   (the wrong secret also reads the key's row), which tells at most that a
#   client ID exists, and client IDs are public; never anything about the
#   secret.  The median ratio is printed (0.82 measured on a loaded 2-core
#   machine: 3.4 us against 4.15 us per call); the hash's own share is
#   measured, so a build that skips it is caught;
# - update_key warns that a rate limit is not enforced without preloading;
# - bytes that are not UTF-8 (a SQL_ASCII database) never raise or crash.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

# not preloaded: update_key's warning below is the one without preloading
my $node = start_node('edges', preload => 0);
my ($cid, $secret) = split /\|/, sq($node,
	"SELECT client_id || '|' || client_secret FROM apikeys.create_key('t', 'timing', '{}')");

# Many small interleaved batches in one session; the median of the
# per-round ratios shrugs off the noise of a shared machine.
my $out = sq($node, qq{
CREATE TEMP TABLE timings (round int, kind text, us float8);
DO \$\$
DECLARE
    t0 timestamptz;
    wrong text := repeat('A', 43);
BEGIN
    FOR r IN 1..200 LOOP
        t0 := clock_timestamp();
        PERFORM apikeys.verify_client('ak_ZZZZZZZZZZZZZZZZ', wrong) FROM generate_series(1, 50);
        INSERT INTO timings VALUES (r, 'unknown', extract(epoch FROM clock_timestamp() - t0) * 1e6);
        t0 := clock_timestamp();
        PERFORM apikeys.verify_client('$cid', wrong) FROM generate_series(1, 50);
        INSERT INTO timings VALUES (r, 'wrong_secret', extract(epoch FROM clock_timestamp() - t0) * 1e6);
    END LOOP;
END
\$\$;
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY u.us / w.us)::numeric, 2)
  FROM timings u JOIN timings w USING (round)
 WHERE u.kind = 'unknown' AND w.kind = 'wrong_secret';
});
note "median per-round time ratio unknown/wrong_secret: $out";
ok($out > 0.5 && $out < 2, "unknown client ID and wrong secret take about the same time (ratio unknown/wrong $out)");
is(sq($node, "SELECT (apikeys.verify_client('ak_ZZZZZZZZZZZZZZZZ', repeat('A', 43))).code || (apikeys.verify_client('$cid', repeat('A', 43))).code"),
	'NOT_FOUNDNOT_FOUND', 'both answer NOT_FOUND');

# The ratio above cannot see a skipped hash: SHA-256 of a secret is a
# fraction of a microsecond, about a tenth of a call.  So measure the hash's
# share directly, as differences of per-call medians between two kinds of
# call that take exactly the same path except for one hash:
# - the known cost of one SHA-256 (+ compare): a wrong secret against a key
#   rotated under a pepper (HMAC now, SHA-256 before: two hashes) minus one
#   against a key issued under the pepper (HMAC only);
# - the claim: without a pepper, a wrong secret against a SHA-256 key (hash
#   and compare) minus one against the HMAC key (which cannot be hashed now,
#   so it takes the branch an unknown client ID takes: the dummy hash and
#   compare).  Same lookup, same row; in a build that skips the dummy hash
#   this difference is the whole hash.
my $pcid = sq($node, qq{
SET apikeys.pepper = 'pepper-for-timing';
SELECT count(*) FROM apikeys.rotate_key('$cid', '1 hour');
SELECT client_id FROM apikeys.create_key('t', 'peppered', '{}');
});
$pcid = (split /\n/, $pcid)[-1];
my $scid = sq($node,
	"SELECT client_id FROM apikeys.create_key('t', 'plain', '{}')");
is(sq($node, "SELECT string_agg(hash_alg::text || '/' || COALESCE(prev_hash_alg::text, '-'), ',' ORDER BY client_id = '$cid' DESC, client_id = '$pcid' DESC) FROM apikeys.keys WHERE client_id IN ('$cid', '$pcid', '$scid')"),
	'h/s,h/-,s/-', 'timing keys: rotated HMAC over SHA-256, HMAC, SHA-256');
my $share = sq($node, qq{
CREATE TEMP TABLE t2 (round int, kind text, us float8);
SET apikeys.pepper = 'pepper-for-timing';
DO \$\$
DECLARE t0 timestamptz; wrong text := repeat('A', 43);
BEGIN
    FOR r IN 1..1000 LOOP
        t0 := clock_timestamp();
        PERFORM apikeys.verify_client('$cid', wrong) FROM generate_series(1, 50);
        INSERT INTO t2 VALUES (r, 'hmac_sha', extract(epoch FROM clock_timestamp() - t0) * 1e6);
        t0 := clock_timestamp();
        PERFORM apikeys.verify_client('$pcid', wrong) FROM generate_series(1, 50);
        INSERT INTO t2 VALUES (r, 'hmac', extract(epoch FROM clock_timestamp() - t0) * 1e6);
    END LOOP;
END \$\$;
RESET apikeys.pepper;
DO \$\$
DECLARE t0 timestamptz; wrong text := repeat('A', 43);
BEGIN
    FOR r IN 1..1000 LOOP
        t0 := clock_timestamp();
        PERFORM apikeys.verify_client('$scid', wrong) FROM generate_series(1, 50);
        INSERT INTO t2 VALUES (r, 'sha', extract(epoch FROM clock_timestamp() - t0) * 1e6);
        t0 := clock_timestamp();
        PERFORM apikeys.verify_client('$pcid', wrong) FROM generate_series(1, 50);
        INSERT INTO t2 VALUES (r, 'dummy', extract(epoch FROM clock_timestamp() - t0) * 1e6);
    END LOOP;
END \$\$;
SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY a.us - b.us) / 50)::numeric, 3)
       || '|' ||
       (SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY a.us - b.us) / 50)::numeric, 3)
          FROM t2 a JOIN t2 b USING (round) WHERE a.kind = 'sha' AND b.kind = 'dummy')
       || '|' ||
       (SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY us) / 50)::numeric, 3) FROM t2 WHERE kind = 'sha')
  FROM t2 a JOIN t2 b USING (round) WHERE a.kind = 'hmac_sha' AND b.kind = 'hmac';
});
my ($hash_us, $skip_us, $call_us) = split /\|/, (split /\n/, $share)[-1];
note "one SHA-256 + compare: $hash_us us per call; wrong secret minus unknown-key branch: $skip_us us; a call: $call_us us";
ok($hash_us > 0, "the measurement sees one hash ($hash_us us of a $call_us us call)");
# one-sided: a skipped hash makes the difference one whole hash; the
# unknown-key branch coming out slower than a wrong secret is no skip (and
# a known client ID's extra row read is documented), so only noise decides
# a negative value, and it must not fail the test
ok($skip_us < $hash_us / 2,
	"the unknown-key branch hashes like a wrong secret (difference $skip_us us, one hash $hash_us us)");
is(sq($node, "SELECT (apikeys.verify_client('$pcid', repeat('A', 43))).code || (apikeys.verify_client('$scid', repeat('A', 43))).code"),
	'NOT_FOUNDNOT_FOUND', 'both timed calls answer NOT_FOUND');

# Without preloading rate limits are not enforced: update_key says so when
# it sets one, and not when it clears one.
my ($rc, $stdout, $stderr) = $node->psql('postgres',
	"SELECT apikeys.update_key('$scid', rate_limit => 10)");
like($stderr, qr/WARNING:  rate limit of API key "\Q$scid\E" is not enforced/, 'update_key warns when it sets a rate limit without preloading');
($rc, $stdout, $stderr) = $node->psql('postgres',
	"SELECT apikeys.update_key('$scid', rate_limit => 0)");
unlike($stderr, qr/WARNING/, 'update_key does not warn when it clears the rate limit');
is(sq($node, "SELECT rate_limit IS NULL FROM apikeys.key_list WHERE client_id = '$scid'"), 't', 'the rate limit is cleared');

# Non-UTF-8 bytes: a SQL_ASCII database accepts any byte in text.
sq($node, "CREATE DATABASE bytes ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
sq($node, 'CREATE EXTENSION apikeys', db => 'bytes');
my $codes = sq($node, q{
SELECT string_agg(DISTINCT (apikeys.verify(convert_from(b, 'SQL_ASCII'))).code, ',')
  FROM (VALUES ('\xff'::bytea), ('\xc328'::bytea), ('\x616b5ffe'::bytea),
               (decode(repeat('ff', 69), 'hex')), (decode(repeat('80', 100000), 'hex'))) v(b);
}, db => 'bytes');
like($codes, qr/^MALFORMED$/, 'invalid UTF-8 byte sequences answer MALFORMED');
is(sq($node, q{SELECT (apikeys.verify_client(convert_from('\xfffe'::bytea, 'SQL_ASCII'), convert_from(decode(repeat('e9', 43), 'hex'), 'SQL_ASCII'))).code}, db => 'bytes'),
	'MALFORMED', 'verify_client with non-UTF-8 id and secret answers MALFORMED');
is(sq($node, 'SELECT 1'), '1', 'the server is still up');

done_testing();
