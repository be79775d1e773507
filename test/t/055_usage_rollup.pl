# test/t/055_usage_rollup.pl
#
# The hourly rollup (src/usage_journal.c) with apikeys preloaded:
#   - the worker's hourly rollup folds only the hours that are over into
#     apikeys.usage, with the last use on the VALID row, and leaves the
#     current hour's journal rows (rolling up mid-hour would make the next
#     rollup update rows it could have inserted);
#   - it never waits for a rollup under way in another session (a lock on
#     the journal taken without waiting, no row locks), and a rollup that
#     finds one under way journals what it took from shared memory;
#   - a rollup writes no row lock, no speculative-insertion record and
#     nothing to apikeys.keys: its WAL is inserts of packed rows into
#     apikeys.usage_packed, one per hour and bucket of client IDs, at most
#     150 bytes per key (read back with pg_walinspect, no timing).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

$PostgreSQL::Test::Utils::timeout_default = 60;

my $node = start_node('rollup', conf => qq{
apikeys.cache_size = 1000
apikeys.flush_interval = 1
}, create => 'CREATE EXTENSION apikeys; CREATE EXTENSION pg_walinspect');

# the hour must not turn while the current hour's rows are looked at
my $to_hour = sq($node, 'SELECT 3600 - extract(epoch FROM now())::bigint % 3600');
if ($to_hour < 120)
{
	note("sleeping ${to_hour}s past the top of the hour");
	sleep($to_hour + 5);
}
my $hour0 = sq($node, 'SELECT extract(epoch FROM now())::bigint / 3600');

sq($node, q{CREATE TABLE tok AS SELECT (k).client_id, (k).token
       FROM apikeys.create_key('rollup-owner', 'k', ARRAY['docs:read']) k});
my $cid = sq($node, 'SELECT client_id FROM tok');

# A rollup under way in another session holds the journal.
my $held = $node->background_psql('postgres');
$held->query_safe('BEGIN');
$held->query_safe('SELECT apikeys.flush_usage(true)');

# A journal row of the last hour, as the worker leaves one when it was down
# at the top of the hour (2 VALID uses, the last at flushed_at; format in
# src/usage_codec.c), and 3 uses now, which the worker journals.
my $past = sq($node, q{SELECT date_trunc('hour', now()) - interval '50 minutes'});
sq($node, qq{INSERT INTO apikeys.usage_journal (flushed_at, keys, data)
      SELECT '$past', 1, '\\x01'::bytea
          || int8send(((extract(epoch FROM '$past'::timestamptz) - 946684800) * 1000000)::int8)
          || set_byte('\\x00'::bytea, 0, length('$cid')) || convert_to('$cid', 'UTF8')
          || '\\x0001'::bytea || set_byte('\\x00'::bytea, 0, 2) || '\\x01'::bytea});
my $used = sq($node, 'SELECT now()');
sq($node, 'SELECT (apikeys.verify(token)).code FROM tok, generate_series(1, 3)');
ok($node->poll_query_until('postgres', q{
	SELECT EXISTS (SELECT FROM apikeys.usage_journal
	                WHERE flushed_at >= date_trunc('hour', now()))}),
	'the worker journals the current hour\'s uses');

# A second rollup now does not wait and counts nothing twice: it journals
# what it took (nothing here) and tells the worker the journal holds a
# past hour, which makes the hourly rollup due.
is(sq($node, 'SELECT apikeys.flush_usage(true)'), '0', 'a rollup while another is under way returns at once');
sleep(3);
is(sq($node, "SELECT count(*) FROM apikeys.usage_journal WHERE flushed_at = '$past'"), '1',
	'the worker\'s hourly rollup does not wait for the rollup under way');
$held->query_safe('COMMIT');
$held->quit;

ok($node->poll_query_until('postgres',
		"SELECT NOT EXISTS (SELECT FROM apikeys.usage_journal WHERE flushed_at < date_trunc('hour', now()))"),
	'once it is over, the worker rolls up the past hour');
is(sq($node, qq{SELECT string_agg(code || ' ' || count || ' ' || (last_used_at = '$past'), ',')
           FROM apikeys.usage WHERE client_id = '$cid' AND hour = date_trunc('hour', '$past'::timestamptz)}),
	'VALID 2 true', '... into apikeys.usage, the last use on the VALID row');
is(sq($node, qq{SELECT (SELECT count(*) FROM apikeys.usage WHERE client_id = '$cid' AND hour = date_trunc('hour', now()))
             || ' ' || (SELECT sum(d.count) FROM apikeys.usage_journal j, apikeys_internal._journal_decode(j.data) d
                         WHERE d.client_id = '$cid' AND d.code = 'VALID')}),
	'0 3', '... and leaves the current hour in the journal');
is(sq($node, qq{SELECT sum(count) FROM apikeys.key_usage WHERE client_id = '$cid' AND code = 'VALID'}), '5',
	'key_usage counts every use once');
is(sq($node, qq{SELECT (l.last_used_at >= '$used') || ' ' || (k.last_used_at IS NULL)
           FROM apikeys.key_list l JOIN apikeys.keys k USING (client_id) WHERE client_id = '$cid'}),
	'true true', 'key_list shows the latest use; apikeys.keys is not written');
is(sq($node, 'SELECT extract(epoch FROM now())::bigint / 3600'), $hour0, 'the hour did not turn meanwhile');

# The WAL of a rollup of 500 keys: no row lock (Heap/LOCK), no speculative
# insertion (Heap/HEAP_CONFIRM), no update of apikeys.keys.
sq($node, q{INSERT INTO apikeys.keys (client_id, owner, name, scopes, secret_hash, hash_alg, expires_at)
     SELECT 'ak_' || lpad(g::text, 16, '0'), 'bulk', 'bulk ' || g, '{docs:read}'::apikeys.scope[],
            sha256(convert_to('S' || lpad(g::text, 42, '0'), 'UTF8')), 's', now() + interval '30 days'
       FROM generate_series(1, 500) g});
is(sq($node, q{SELECT count(*) FROM generate_series(1, 500) g
         WHERE (apikeys.verify_client('ak_' || lpad(g::text, 16, '0'), 'S' || lpad(g::text, 42, '0'))).valid}),
	'500', '500 keys verify');
# their counts journaled now, as the worker does every flush_interval (the
# worker's own flushes are checked above; waiting for one here failed
# under load)
sq($node, 'SELECT apikeys.flush_usage(false)');
ok($node->poll_query_until('postgres', q{
	SELECT count(DISTINCT client_id) = 500 FROM apikeys.key_usage
	 WHERE client_id LIKE 'ak\_0%' AND code = 'VALID'}), '... and are flushed');
my $filenode = sq($node, q{SELECT pg_relation_filenode('apikeys.keys')});
sq($node, 'CHECKPOINT');
my $lsn0 = sq($node, 'SELECT pg_current_wal_insert_lsn()');
my $rows = sq($node, 'SELECT apikeys.flush_usage(true)');
my $lsn1 = sq($node, 'SELECT pg_current_wal_insert_lsn()');
ok($rows >= 500, "the rollup writes a usage row per key ($rows)");
is(sq($node, qq{SELECT count(*) FROM pg_get_wal_records_info('$lsn0', '$lsn1')
          WHERE resource_manager = 'Heap'
            AND (record_type IN ('LOCK', 'HEAP_CONFIRM')
                 OR (record_type LIKE '%UPDATE%' AND block_ref ~ ('/$filenode( |\$)')))}),
	'0', 'the rollup writes no row lock, no speculative insertion and no update of apikeys.keys');
my $wal = sq($node, qq{SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')});
note("rollup of $rows usage rows: $wal bytes of WAL");
# packed per hour and bucket of client IDs, not a row and an index entry
# per key (~350 bytes each): at most 150 bytes per key, full-page images
# after the checkpoint included
ok($wal <= 150 * 500, "the rollup writes at most 150 bytes of WAL per key ($wal for 500 keys)");
is(sq($node, q{SELECT count(*) || ' ' || (sum(keys) BETWEEN 500 AND 510) FROM apikeys.usage_packed
         WHERE hour = date_trunc('hour', now()) AND bucket ~ '^[0-9][0-9]$'}),
	'100 true', '... one row per bucket (the last two characters of the client ID), holding its keys');

$node->stop;
done_testing();
