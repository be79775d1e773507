\i test/setup.sql
--
-- stats: apikeys.stats, the operator's one-row view of server-wide
-- counters (verifications by code, cache, throttle, usage flush, policy
-- runs) and gauges (cache fill, blocked addresses, outbox backlog).
--
-- Without apikeys preloaded the counters are NULL: expected/stats_1.out.
SELECT apikeys_internal._preloaded() AS preloaded;

-- its columns, in order
SELECT attnum, attname, format_type(atttypid, atttypmod) AS type
  FROM pg_attribute WHERE attrelid = 'apikeys.stats'::regclass AND attnum > 0
 ORDER BY attnum;
SELECT obj_description('apikeys.stats'::regclass) IS NOT NULL AS commented;

SET ROLE regress_admin;
SELECT (k).client_id AS cid, (k).token AS tok
  FROM apikeys.create_key('stats-owner', 'stats key', ARRAY['docs:read']) k \gset
SELECT (k).client_id AS gone_cid, (k).token AS gone_tok
  FROM apikeys.create_key('stats-owner', 'deleted key', ARRAY['docs:read']) k \gset
SELECT apikeys.delete_key(:'gone_cid');

-- one row, whoever asks among those allowed
SELECT count(*) AS rows FROM apikeys.stats;
CREATE TEMP TABLE stats_before AS SELECT * FROM apikeys.stats;
GRANT SELECT ON stats_before TO PUBLIC;
SELECT (apikeys.create_key('stats-owner', 'one more', ARRAY['docs:read'])).client_id IS NOT NULL AS created;
RESET ROLE;

-- verifications by code: two VALID (a cache miss, then a hit), one
-- MALFORMED (never reaches a key), one NOT_FOUND, one INSUFFICIENT_SCOPE,
-- and one through authenticate()
SET ROLE regress_verifier;
SELECT (apikeys.verify(:'tok', 'docs:read')).code;
SELECT (apikeys.verify(:'tok', 'docs:read')).code;
SELECT (apikeys.verify('not a token')).code;
SELECT (apikeys.verify(:'gone_tok')).code;
SELECT (apikeys.verify(:'tok', 'docs:delete')).code;
BEGIN;
SELECT code FROM apikeys.authenticate(:'tok');
COMMIT;
RESET ROLE;

SET ROLE regress_admin;
SELECT a.verifications - b.verifications AS verifications,
       a.verifications_valid - b.verifications_valid AS valid,
       a.verifications_malformed - b.verifications_malformed AS malformed,
       a.verifications_not_found - b.verifications_not_found AS not_found,
       a.verifications_insufficient_scope - b.verifications_insufficient_scope AS insufficient_scope,
       a.verifications_expired - b.verifications_expired AS expired,
       a.cache_hits - b.cache_hits >= 2 AS cache_hits,
       a.cache_misses - b.cache_misses >= 1 AS cache_misses,
       a.cache_entries >= 1 AS cache_entries,
       a.cache_capacity >= 10000 AS cache_capacity,
       a.stats_since <= now() AS since_start,
       a.outbox_backlog - b.outbox_backlog >= 1 AS outbox_backlog_grew,
       a.outbox_oldest_age_seconds >= 0 AS outbox_age
  FROM apikeys.stats a, stats_before b;
-- gauges that are never negative or missing where there is shared memory
SELECT addresses_failing >= 0 AS addresses_failing, addresses_blocked >= 0 AS addresses_blocked,
       usage_keys_pending >= 0 AS usage_keys_pending, usage_flushes >= 0 AS usage_flushes,
       policy_runs >= 0 AS policy_runs, cache_evictions >= 0 AS cache_evictions
  FROM apikeys.stats;
RESET ROLE;

-- Privileges: apikeys_admin and pg_monitor read it; monitoring sees
-- counts, never the addresses behind them or the outbox.
CREATE ROLE regress_monitor LOGIN IN ROLE pg_monitor;
SET ROLE regress_monitor;
SELECT count(*) AS monitor_rows, bool_and(outbox_backlog >= 0) AS monitor_sees_backlog FROM apikeys.stats;
SELECT err('SELECT * FROM apikeys.failing_addresses') AS monitor_addresses;
SELECT err('SELECT * FROM apikeys_internal._failing_addresses()') AS monitor_addresses_fn;
SELECT err('SELECT count(*) FROM apikeys.outbox') AS monitor_outbox;
RESET ROLE;
SET ROLE regress_verifier;
SELECT err('SELECT * FROM apikeys.stats') AS verifier;
RESET ROLE;
SET ROLE regress_nobody;
SELECT err('SELECT * FROM apikeys.stats') AS nobody;
SELECT err('SELECT * FROM apikeys_internal._stats()') AS nobody_fn;
RESET ROLE;
DROP ROLE regress_monitor;
