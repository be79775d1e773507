\i test/setup.sql
--
-- usage: the shared cache, usage counters, failing addresses and rate
-- limits, as seen from SQL.
--
-- Without apikeys preloaded the output differs: expected/usage_1.out.
-- This line keeps each run to its own expected file (test/run.sh checks
-- that every file with an alternate prints it).
SELECT apikeys_internal._preloaded() AS preloaded;
SET client_min_messages = error;   -- the rate-limit warning without preloading
SELECT (k).client_id AS cid, (k).token AS tok
  FROM apikeys.create_key('usage-owner', 'usage key', ARRAY['docs:read']) k \gset
SELECT (k).client_id AS lcid, (k).token AS ltok
  FROM apikeys.create_key('usage-owner', 'limited key', ARRAY['docs:read'],
                          rate_limit => 2, rate_window => '1 hour') k \gset
RESET client_min_messages;

-- the cache and the shared tables exist; sizes are stated
SELECT shared, capacity >= 10000 AS capacity_ok, entry_bytes, shared_bytes > 0 AS has_memory
  FROM apikeys.cache_stats();
SELECT shared, key_capacity >= 10000 AS key_capacity_ok, address_capacity, dropped_keys
  FROM apikeys.usage_stats();

-- a hit after a fill
SELECT (apikeys.verify(:'tok', 'docs:read')).code;
SELECT (apikeys.verify(:'tok', 'docs:read')).code;
SELECT session_hits >= 1 AS hit FROM apikeys.cache_stats();

-- rate limit: third request in the window answers RATE_LIMITED with retry_after
SELECT (v).code, (v).retry_after BETWEEN 3500 AND 3600 AS retry_about_an_hour
  FROM (SELECT apikeys.verify(:'ltok') AS v FROM generate_series(1, 3)) s;
-- authenticate raises 54000 for it
SELECT err(format('SELECT apikeys.authenticate(%L)', :'ltok'));
-- scope is checked before the rate limit
SELECT (apikeys.verify(:'ltok', 'docs:write')).code;

-- usage is flushed into apikeys.usage, one row per key, hour and code
SELECT apikeys.flush_usage() > 0 AS flushed;
SELECT code, count FROM apikeys.key_usage WHERE client_id = :'cid' ORDER BY code;
SELECT code, count FROM apikeys.key_usage WHERE client_id = :'lcid' ORDER BY code;
SELECT hour = date_trunc('hour', hour) AS hourly FROM apikeys.key_usage LIMIT 1;
SELECT last_used_at IS NOT NULL AS used FROM apikeys.key_list WHERE client_id = :'cid';

-- The usage journal.  The background worker's flush (flush_usage(false))
-- writes the interval as one packed row of apikeys.usage_journal, not a
-- row per key: apikeys.usage and apikeys.keys are untouched until the
-- rollup, yet key_usage and key_list show the numbers at once.
SET client_min_messages = warning;
SELECT (k).client_id AS jcid, (k).token AS jtok
  FROM apikeys.create_key('usage-owner', 'journal key', ARRAY['docs:read']) k \gset
RESET client_min_messages;
SELECT (apikeys.verify(:'jtok', 'docs:read')).code FROM generate_series(1, 3);
SELECT (apikeys.verify(:'jtok', 'docs:write')).code;
SELECT apikeys.flush_usage(false) >= 0 AS journaled;
SELECT d.code, sum(d.count) AS count, count(DISTINCT d.last_used) = 1 AS one_last_use
  FROM apikeys.usage_journal j, apikeys_internal._journal_decode(j.data) d
 WHERE d.client_id = :'jcid' GROUP BY d.code ORDER BY d.code;
-- about 30 bytes per key, whatever the number of calls
SELECT bool_and(length(data) < 16 + 48 * keys) AS compact FROM apikeys.usage_journal;
SELECT count(*) AS usage_rows FROM apikeys.usage WHERE client_id = :'jcid';
SELECT last_used_at IS NULL AS stored_not_yet FROM apikeys.keys WHERE client_id = :'jcid';
SELECT last_used_at IS NOT NULL AS listed FROM apikeys.key_list WHERE client_id = :'jcid';
SELECT code, count FROM apikeys.key_usage WHERE client_id = :'jcid' ORDER BY code;
-- the rollup (flush_usage(), and NULL means the same) empties the journal
-- into apikeys.usage, the last use on the VALID row; apikeys.keys stays
-- untouched; the numbers seen do not change
SELECT apikeys.flush_usage(NULL) > 0 AS rolled_up;
SELECT count(*) AS journal_rows_with_key FROM apikeys.usage_journal j, apikeys_internal._journal_decode(j.data) d
 WHERE d.client_id = :'jcid';
SELECT code, count FROM apikeys.usage WHERE client_id = :'jcid' ORDER BY code;
SELECT code, count FROM apikeys.key_usage WHERE client_id = :'jcid' ORDER BY code;
SELECT u.last_used_at = l.last_used_at AS rolled_up_equals_listed, k.last_used_at IS NULL AS keys_row_untouched
  FROM apikeys.usage u JOIN apikeys.key_list l USING (client_id) JOIN apikeys.keys k USING (client_id)
 WHERE client_id = :'jcid' AND u.code = 'VALID';
SELECT code, last_used_at IS NOT NULL AS has_last_use FROM apikeys.usage WHERE client_id = :'jcid' ORDER BY code;
-- apikeys.usage is a view: the rollup packs the keys of an hour per bucket
-- of client IDs (their last two characters) into one row of
-- apikeys.usage_packed, not one row per key; the last use is read from it
SELECT count(*) AS packed_rows_with_key, bool_and(p.bucket = right(:'jcid', 2)) AS in_its_bucket,
       bool_and(d.last_used = apikeys_internal._usage_last_use(:'jcid')) AS last_use_found
  FROM apikeys.usage_packed p, apikeys_internal._journal_decode(p.data) d
 WHERE d.client_id = :'jcid' AND d.code = 'VALID';
SELECT apikeys_internal._usage_last_use('ak_nosuchkey') IS NULL AS unknown_key_no_use;
-- more use after the rollup adds to the same hour's row
SELECT (apikeys.verify(:'jtok', 'docs:read')).code;
SELECT apikeys.flush_usage() > 0 AS rolled_up_again;
SELECT code, count FROM apikeys.usage WHERE client_id = :'jcid' ORDER BY code;
-- a rollup over several hours (as after a long outage of the worker): one
-- usage row per hour, and last_used_at the latest use whatever the hours
-- between (here the middle hour has counts but no VALID use)
SET client_min_messages = warning;
SELECT (k).client_id AS hcid
  FROM apikeys.create_key('usage-owner', 'hours key', ARRAY['docs:read']) k \gset
RESET client_min_messages;
CREATE FUNCTION pg_temp.journal_row(cid text, base timestamptz, valid int, used boolean)
RETURNS bytea LANGUAGE sql AS $$
  SELECT '\x01'::bytea
      || int8send(((extract(epoch FROM base) - 946684800) * 1000000)::int8)
      || set_byte('\x00'::bytea, 0, length(cid)) || convert_to(cid, 'UTF8')
      || CASE WHEN valid > 0 THEN '\x0001'::bytea || set_byte('\x00'::bytea, 0, valid)
              ELSE '\x0004'::bytea || '\x01'::bytea END   -- one NOT_FOUND
      || CASE WHEN used THEN '\x01'::bytea ELSE '\x00'::bytea END
$$;
SELECT date_trunc('hour', now()) - interval '3 hours' + interval '10 minutes' AS h1,
       date_trunc('hour', now()) - interval '2 hours' + interval '10 minutes' AS h2,
       date_trunc('hour', now()) - interval '1 hour' + interval '10 minutes' AS h3 \gset
INSERT INTO apikeys.usage_journal (flushed_at, keys, data) VALUES
  (:'h1', 1, pg_temp.journal_row(:'hcid', :'h1', 2, true)),
  (:'h2', 1, pg_temp.journal_row(:'hcid', :'h2', 0, false)),
  (:'h3', 1, pg_temp.journal_row(:'hcid', :'h3', 3, true));
SELECT apikeys.flush_usage() >= 3 AS rolled_up_hours;
SELECT hour - date_trunc('hour', :'h1'::timestamptz) AS after_first_hour, code, count
  FROM apikeys.usage WHERE client_id = :'hcid' ORDER BY hour, code;
SELECT l.last_used_at = :'h3'::timestamptz AS latest_use, k.last_used_at IS NULL AS keys_row_untouched
  FROM apikeys.key_list l JOIN apikeys.keys k USING (client_id) WHERE client_id = :'hcid';

SELECT apikeys_internal._recent_use(NULL) IS NULL AS no_key_no_time,
       apikeys_internal._recent_use('ak_nosuchkey') IS NULL AS unknown_key_no_time;
-- cache_prewarm() fills the shared cache with the live keys, so even a key
-- never verified yet answers from the cache
SET client_min_messages = warning;
SELECT (k).token AS pwtok
  FROM apikeys.create_key('usage-owner', 'prewarm key', ARRAY['docs:read']) k \gset
RESET client_min_messages;
SELECT apikeys.cache_prewarm() = (SELECT count(*) FROM apikeys.keys WHERE revoked_at IS NULL)
       AS prewarmed_every_live_key;
SELECT session_hits AS hits_before, session_misses AS misses_before FROM apikeys.cache_stats() \gset
SELECT (apikeys.verify(:'pwtok', 'docs:read')).code AS first_verification;
SELECT session_hits = :hits_before + 1 AS hit, session_misses = :misses_before AS no_miss
  FROM apikeys.cache_stats();

-- journal data is checked as it is read: every malformed row is an error,
-- never a wrong count
SELECT err($$SELECT * FROM apikeys_internal._journal_decode('\x'::bytea)$$) AS empty;
SELECT err($$SELECT * FROM apikeys_internal._journal_decode('\x02000000000000000000'::bytea)$$) AS bad_version;
SELECT err($$SELECT * FROM apikeys_internal._journal_decode('\x0100000000000000'::bytea)$$) AS short_header;
SELECT err($$SELECT * FROM apikeys_internal._journal_decode('\x01000000000000000000'::bytea)$$) AS empty_client_id;
SELECT err($$SELECT * FROM apikeys_internal._journal_decode('\x010000000000000000056162636465'::bytea)$$) AS no_mask;
SELECT err($$SELECT * FROM apikeys_internal._journal_decode('\x01000000000000000001610200'::bytea)$$) AS unknown_code;
SELECT err($$SELECT * FROM apikeys_internal._journal_decode('\x0100000000000000000161000180'::bytea)$$) AS cut_varint;
SELECT err($$SELECT * FROM apikeys_internal._journal_decode('\x01000000000000000001610001ffffffffffffffffffff01'::bytea)$$) AS long_varint;
SELECT * FROM apikeys_internal._journal_decode('\x010000000000000000016100010500'::bytea);

-- failed verifications are counted per address, one row per address (the
-- table is the server's, not the database's: a make installcheck before
-- this one on the same server counted its own; compare with what was there)
SELECT coalesce((SELECT failures FROM apikeys.failing_addresses WHERE address = '192.0.2.99'), 0)
       AS failures_before \gset
SELECT (apikeys.verify_client(:'cid', repeat('A', 43), NULL, '192.0.2.99')).code
  FROM generate_series(1, 2);
SELECT address, failures - :failures_before AS new_failures, blocked, blocked_attempts
  FROM apikeys.failing_addresses WHERE address = '192.0.2.99';

-- PREPARE TRANSACTION after changing a key is refused (the cache must see
-- the change when it commits): test/t/004_prepare_and_login.pl (a stock
-- server has max_prepared_transactions = 0).

-- an update of last_used_at alone leaves the cache entry (and writes no audit row)
SELECT count(*) AS audit_rows FROM apikeys.audit_log WHERE client_id = :'cid' \gset
SELECT (apikeys.verify(:'tok')).code;
UPDATE apikeys.keys SET last_used_at = now() WHERE client_id = :'cid';
SELECT count(*) = :audit_rows AS no_audit_row FROM apikeys.audit_log WHERE client_id = :'cid';

-- Privileges: admins read usage and addresses, verifiers and others cannot
SET ROLE regress_admin;
SELECT count(*) > 0 AS admin_reads_usage FROM apikeys.key_usage;
SELECT count(*) >= 1 AS admin_reads_addresses FROM apikeys.failing_addresses;
SELECT shared FROM apikeys.cache_stats();
SELECT shared FROM apikeys.usage_stats();
SELECT apikeys.flush_usage() >= 0 AS admin_flushes;
SELECT apikeys.cache_prewarm() > 0 AS admin_prewarms;
SELECT err('SELECT * FROM apikeys.usage');
SELECT err('SELECT * FROM apikeys.usage_journal');
SELECT err('DELETE FROM apikeys.usage_journal');
RESET ROLE;
SET ROLE regress_verifier;
SELECT err('SELECT * FROM apikeys.key_usage');
SELECT err('SELECT apikeys.cache_prewarm()');
SELECT err('SELECT * FROM apikeys.failing_addresses');
SELECT err('SELECT * FROM apikeys_internal._failing_addresses()');
SELECT err('SELECT apikeys.flush_usage()');
SELECT err('SELECT * FROM apikeys.cache_stats()');
SELECT err('SELECT * FROM apikeys.usage_stats()');
SELECT err('SELECT * FROM apikeys.usage');
RESET ROLE;
SET ROLE regress_nobody;
SELECT err('SELECT * FROM apikeys.key_usage');
SELECT err('SELECT apikeys.flush_usage()');
SELECT err('SELECT apikeys.flush_usage(false)');
SELECT err('SELECT apikeys_internal._recent_use(NULL)');
SELECT err($$SELECT * FROM apikeys_internal._journal_decode('\x'::bytea)$$);
SELECT err('SELECT apikeys_internal._preloaded()');
RESET ROLE;

-- who may execute the new functions
SELECT p.oid::regprocedure AS function,
       has_function_privilege('apikeys_admin', p.oid, 'EXECUTE') AS admin,
       has_function_privilege('apikeys_verifier', p.oid, 'EXECUTE') AS verifier,
       has_function_privilege('regress_nobody', p.oid, 'EXECUTE') AS nobody
  FROM pg_proc p
 WHERE p.pronamespace IN ('apikeys'::regnamespace, 'apikeys_internal'::regnamespace)
   AND p.proname IN ('flush_usage', '_failing_addresses', 'cache_stats', 'usage_stats',
                     '_keys_cache_trigger', '_preloaded', '_rate_limit_warning_trigger')
 ORDER BY p.oid::regprocedure::text COLLATE "C";

-- clean up this test's keys
SET client_min_messages = warning;
SELECT apikeys.delete_key(:'cid'), apikeys.delete_key(:'lcid');
RESET client_min_messages;

-- RATE_LIMITED as the request paths report it: authenticate raises 54000,
-- pre_request answers PGRST with status 429 and a Retry-After header.
-- (without preloading, a rate limit draws a warning that names the random
-- client ID: test/t/052_not_preloaded.pl checks it)
SET client_min_messages = error;
SELECT token AS rtok FROM apikeys.create_key('usage-rate', 'limited', '{docs:read}',
                                             rate_limit => 1, rate_window => '1 hour') \gset
RESET client_min_messages;
BEGIN;
SELECT (apikeys.authenticate(:'rtok')).code;
COMMIT;
SELECT regexp_replace(err(format('SELECT apikeys.authenticate(%L)', :'rtok')), '"retry_after": [0-9]+', '"retry_after": <n>') AS authenticate;
SELECT set_config('request.headers', json_build_object('x-api-key', :'rtok')::text, false) IS NOT NULL AS headers_set;
SELECT regexp_replace(err('SELECT apikeys.pre_request()'), '"Retry-After":"[0-9]+"', '"Retry-After":"<seconds>"') AS pre_request;
SELECT regexp_replace(err('SELECT apikeys.pre_request()'), '"Retry-After":"[0-9]+"', '"Retry-After":"<seconds>"') ~ '"Retry-After":"<seconds>"' AS has_retry_after;
SELECT set_config('request.headers', '', false) IS NOT NULL AS headers_cleared;
SELECT (apikeys.verify(:'rtok')).retry_after BETWEEN 3500 AND 3600 AS retry_after_in_window;
