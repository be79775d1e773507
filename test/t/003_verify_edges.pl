# Verification edge cases that need more than one database or a clock:
# - an unknown client ID and a wrong secret both hash the presented secret
#   and take about the same time: the unknown ID answers some 20 % sooner
#   (the wrong secret also reads the key's row), which tells at most that a
#   client ID exists, and client IDs are public; never anything about the
#   secret.  The median ratio is printed (0.82 measured on a loaded 2-core
#   machine: 3.4 us against 4.15 us per call);
# - bytes that are not UTF-8 (a SQL_ASCII database) never raise or crash.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('edges');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION apikeys');
my ($cid, $secret) = split /\|/, $node->safe_psql('postgres',
	"SELECT client_id || '|' || client_secret FROM apikeys.create_key('t', 'timing', '{}')");

# Many small interleaved batches in one session; the median of the
# per-round ratios shrugs off the noise of a shared machine.
my $out = $node->safe_psql('postgres', qq{
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
is($node->safe_psql('postgres', "SELECT (apikeys.verify_client('ak_ZZZZZZZZZZZZZZZZ', repeat('A', 43))).code || (apikeys.verify_client('$cid', repeat('A', 43))).code"),
	'NOT_FOUNDNOT_FOUND', 'both answer NOT_FOUND');

# Non-UTF-8 bytes: a SQL_ASCII database accepts any byte in text.
$node->safe_psql('postgres', "CREATE DATABASE bytes ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
$node->safe_psql('bytes', 'CREATE EXTENSION apikeys');
my $codes = $node->safe_psql('bytes', q{
SELECT string_agg(DISTINCT (apikeys.verify(convert_from(b, 'SQL_ASCII'))).code, ',')
  FROM (VALUES ('\xff'::bytea), ('\xc328'::bytea), ('\x616b5ffe'::bytea),
               (decode(repeat('ff', 69), 'hex')), (decode(repeat('80', 100000), 'hex'))) v(b);
});
like($codes, qr/^MALFORMED$/, 'invalid UTF-8 byte sequences answer MALFORMED');
is($node->safe_psql('bytes', q{SELECT (apikeys.verify_client(convert_from('\xfffe'::bytea, 'SQL_ASCII'), convert_from(decode(repeat('e9', 43), 'hex'), 'SQL_ASCII'))).code}),
	'MALFORMED', 'verify_client with non-UTF-8 id and secret answers MALFORMED');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is still up');

done_testing();
