\i test/setup.sql
--
-- create_key: every argument, every invalid input, the key cap.
--
\set VERBOSITY terse

-- Every argument of the contract.
-- (without preloading, a rate limit draws a warning that names the random
-- client ID: test/t/052_not_preloaded.pl checks it)
SET client_min_messages = error;
SELECT (k).client_id AS cid, (k).expires_at AS exp
  FROM (SELECT apikeys.create_key(
            owner => 'globo', name => 'billing sync',
            scopes => ARRAY['invoices:read', 'invoices:create', 'invoices:read',
                            'employees:read(name, start_date)'],
            expires_at => now() + interval '30 days',
            description => 'Nightly export to the ledger',
            contact_email => 'ops@globex.example',
            contact_phone => '+447894123456',
            allowed_cidrs => ARRAY['10.0.0.0/8', '2001:db8::/32']::cidr[],
            metadata => '{"ticket": "OPS-1"}',
            db_role => 'regress_verifier',
            rate_limit => 100,
            rate_window => '10 seconds') AS k) s \gset
RESET client_min_messages;
SELECT owner, name, description, scopes, status, created_by,
       expires_at = :'exp' AS expiry_kept, expires_at - created_at AS lifetime,
       last_used_at, contact_email, contact_phone, allowed_cidrs, metadata, db_role,
       rate_limit, rate_window
  FROM apikeys.key_list WHERE client_id = :'cid';

-- Defaults: expiry = now() + the owner's max lifetime (1 year), empty metadata.
SELECT (k).client_id AS cid2 FROM (SELECT apikeys.create_key('globo', 'defaults', '{}') AS k) s \gset
SELECT scopes, expires_at - created_at AS lifetime, metadata, rate_limit, rate_window,
       description IS NULL AS no_description
  FROM apikeys.key_list WHERE client_id = :'cid2';

-- Owners are free text: tenants, teams, accounts.
SELECT count(*) FROM (SELECT apikeys.create_key(o, 'n', '{}')
                        FROM unnest(ARRAY['team:payments', 'Ünïcode Ltd', 'acct_42']) o) s;

-- Invalid input: each gets 22023 naming the field, and nothing is written.
-- err() runs each call in a subtransaction whose rollback would remove any
-- row written, so rows counted afterwards prove little.  What survives a
-- rollback is counted as well: the audit log's identity sequence (a row
-- inserted, then rolled back, still advances it), the shared cache's
-- invalidation counter (a keys row updated or deleted, then rolled back,
-- still bumps it) and the owner-policy rows, counted from a new transaction.
-- One valid create_key at the end shows that the same counters do move.
SELECT count(*) AS keys_before FROM apikeys.keys \gset
SELECT count(*) AS audit_before FROM apikeys.audit_log \gset
SELECT count(*) AS policies_before FROM apikeys.owner_policies \gset
SELECT last_value AS audit_seq_before FROM apikeys.audit_log_id_seq \gset
-- (0 without preloading: no cache)
SELECT coalesce(invalidations, 0) AS inval_before FROM apikeys.cache_stats() \gset
SELECT err(q) FROM (VALUES
    ($$SELECT apikeys.create_key(NULL, 'n', '{}')$$),
    ($$SELECT apikeys.create_key('', 'n', '{}')$$),
    ($$SELECT apikeys.create_key('   ', 'n', '{}')$$),
    ($$SELECT apikeys.create_key(repeat('o', 257), 'n', '{}')$$),
    ($$SELECT apikeys.create_key('o', NULL, '{}')$$),
    ($$SELECT apikeys.create_key('o', '', '{}')$$),
    ($$SELECT apikeys.create_key('o', repeat('n', 129), '{}')$$),
    ($$SELECT apikeys.create_key('o', 'n', NULL)$$),
    ($$SELECT apikeys.create_key('o', 'n', ARRAY[NULL])$$),
    ($$SELECT apikeys.create_key('o', 'n', '{Invoices:read}')$$),
    ($$SELECT apikeys.create_key('o', 'n', '{invoices}')$$),
    ($$SELECT apikeys.create_key('o', 'n', '{invoices:}')$$),
    ($$SELECT apikeys.create_key('o', 'n', '{invoices:read(}')$$),
    ($$SELECT apikeys.create_key('o', 'n', '{"invoices:*(a)"}')$$),
    ($$SELECT apikeys.create_key('o', 'n', '{""}')$$),
    ($$SELECT apikeys.create_key('o', 'n', (SELECT array_agg('r:read'::text) FROM generate_series(1, 101)))$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', expires_at => now() - interval '1 second')$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', expires_at => now() + interval '366 days')$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', description => repeat('d', 1025))$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', contact_email => 'not-an-email')$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', contact_email => 'a@b')$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', contact_email => 'a b@example.com')$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', contact_phone => '07894123456')$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', contact_phone => '+0123456789')$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', contact_phone => '+44 7894 123456')$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', allowed_cidrs => ARRAY[NULL]::cidr[])$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', metadata => '[1, 2]')$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', metadata => jsonb_build_object('x', repeat('m', 70000)))$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', db_role => 'no_such_role')$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', db_role => 'postgres')$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', rate_limit => 0)$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', rate_limit => -5)$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', rate_limit => 5, rate_window => '0 seconds')$$),
    ($$SELECT apikeys.create_key('o', 'n', '{}', rate_limit => 5, rate_window => '2 days')$$)
) AS cases(q);
-- invalid CIDR text is rejected by the cidr type itself (22P02)
SELECT err($$SELECT apikeys.create_key('o', 'n', '{}', allowed_cidrs => '{10.0.0.1/8}')$$);
SELECT count(*) - :keys_before AS keys_written, (SELECT count(*) FROM apikeys.audit_log) - :audit_before AS audit_rows_written
  FROM apikeys.keys;
-- the same calls outside err(), each its own transaction that fails
SELECT apikeys.create_key('o', 'n', '{}', contact_email => 'not-an-email');
SELECT apikeys.create_key('o', 'n', '{invoices}');
SELECT apikeys.create_key('o', 'n', '{}', expires_at => now() + interval '366 days');
SELECT apikeys.create_key('o', 'n', '{}', db_role => 'postgres');
SELECT (SELECT last_value FROM apikeys.audit_log_id_seq) - :audit_seq_before AS audit_ids_used,
       (SELECT coalesce(invalidations, 0) FROM apikeys.cache_stats()) - :inval_before AS cache_invalidations,
       (SELECT count(*) FROM apikeys.owner_policies) - :policies_before AS policy_rows_written,
       (SELECT count(*) FROM apikeys.keys WHERE owner = 'o') AS keys_of_o;
SELECT count(*) FROM apikeys.create_key('o', 'n', '{}');   -- a valid call: one of each
SELECT (SELECT last_value FROM apikeys.audit_log_id_seq) - :audit_seq_before AS audit_ids_used,
       (SELECT count(*) FROM apikeys.owner_policies) - :policies_before AS policy_rows_written,
       (SELECT count(*) FROM apikeys.keys WHERE owner = 'o') AS keys_of_o;
SELECT apikeys.delete_key(client_id) FROM apikeys.keys WHERE owner = 'o';
-- (one invalidation with the shared cache, none without: apikeys_internal._preloaded())
SELECT (SELECT coalesce(invalidations, 0) FROM apikeys.cache_stats()) - :inval_before
       = CASE WHEN apikeys_internal._preloaded() THEN 1 ELSE 0 END AS cache_invalidations_after_delete;

-- The key cap: at most max_keys live keys per owner (default 5), 54000 after.
SELECT count(*) FROM (SELECT apikeys.create_key('initrode', 'k' || i, '{}') FROM generate_series(1, 5) i) s;
SELECT err($$SELECT apikeys.create_key('initrode', 'sixth', '{}')$$);
-- revoked and expired keys do not count; disabled ones do
SELECT client_id AS first_cid FROM apikeys.key_list WHERE owner = 'initrode' ORDER BY created_at, client_id LIMIT 1 \gset
SELECT apikeys.revoke_key(:'first_cid');
SELECT err($$SELECT apikeys.create_key('initrode', 'sixth', '{}')$$);
SELECT client_id AS second_cid FROM apikeys.key_list WHERE owner = 'initrode' AND status = 'active' ORDER BY client_id LIMIT 1 \gset
SELECT apikeys.disable_key(:'second_cid');
SELECT err($$SELECT apikeys.create_key('initrode', 'seventh', '{}')$$);
UPDATE apikeys.keys SET expires_at = now() - interval '1 second' WHERE client_id = :'second_cid';
SELECT err($$SELECT apikeys.create_key('initrode', 'seventh', '{}')$$);
SELECT status, count(*) FROM apikeys.key_list WHERE owner = 'initrode' GROUP BY 1 ORDER BY 1;

-- A policy raises or lowers the cap and the lifetime.
SELECT apikeys.set_owner_policy('initrode', max_keys => 7, max_lifetime => '90 days');
SELECT err($$SELECT apikeys.create_key('initrode', 'eighth', '{}')$$);
SELECT err($$SELECT apikeys.create_key('initrode', 'ninth', '{}', expires_at => now() + interval '91 days')$$);
SELECT expires_at - created_at AS default_lifetime FROM apikeys.key_list WHERE owner = 'initrode' AND name = 'eighth';
SELECT err($$SELECT apikeys.create_key('initrode', 'ninth', '{}')$$);
SELECT err($$SELECT apikeys.create_key('initrode', 'tenth', '{}')$$);

-- The default cap and lifetime come from settings.
SET apikeys.default_max_keys = 1;
SELECT err($$SELECT apikeys.create_key('hooly', 'a', '{}')$$);
SELECT err($$SELECT apikeys.create_key('hooly', 'b', '{}')$$);
RESET apikeys.default_max_keys;
SET apikeys.default_max_lifetime = '1d';
SELECT err($$SELECT apikeys.create_key('hooly', 'c', '{}', expires_at => now() + interval '2 days')$$);
RESET apikeys.default_max_lifetime;

-- Below the cap, create_key reads none of the owner's keys: the policy
-- row's bound (live keys at the last count + keys issued since) answers, so
-- the cost does not grow with the keys the owner holds.  At the bound it
-- counts, and the cap holds: revoked keys make room, a lowered cap binds.
SELECT apikeys.set_owner_policy('bound', max_keys => 3);
SELECT count(*) FROM (SELECT apikeys.create_key('bound', 'k' || i, '{}') FROM generate_series(1, 2) i) s;
CREATE FUNCTION pg_temp.owner_reads() RETURNS bigint LANGUAGE sql AS $$
    SELECT pg_stat_get_xact_numscans('apikeys.keys'::regclass)
         + pg_stat_get_xact_numscans('apikeys.keys_owner_idx'::regclass)
         + pg_stat_get_xact_numscans('apikeys.keys_owner_live_idx'::regclass) $$;
-- (counted within one transaction: the counters of earlier ones may not
-- have been sent yet)
BEGIN;
SELECT pg_temp.owner_reads() AS reads_before \gset
SELECT count(*) FROM apikeys.create_key('bound', 'third', '{}');
SELECT pg_temp.owner_reads() - :reads_before AS keys_read_below_the_cap;
SELECT err($$SELECT apikeys.create_key('bound', 'fourth', '{}')$$);
SELECT pg_temp.owner_reads() - :reads_before > 0 AS keys_read_at_the_cap;
COMMIT;
SELECT client_id AS bound_cid FROM apikeys.key_list WHERE owner = 'bound' ORDER BY client_id LIMIT 1 \gset
SELECT apikeys.revoke_key(:'bound_cid');
SELECT count(*) FROM apikeys.create_key('bound', 'fourth', '{}');
SELECT err($$SELECT apikeys.create_key('bound', 'fifth', '{}')$$);
SELECT count(*) FROM apikeys.set_owner_policy('bound', max_keys => 10);
SELECT count(*) FROM apikeys.create_key('bound', 'fifth', '{}');
SELECT count(*) FROM apikeys.set_owner_policy('bound', max_keys => 4);
SELECT err($$SELECT apikeys.create_key('bound', 'sixth', '{}')$$);
SELECT status, count(*) FROM apikeys.key_list WHERE owner = 'bound' GROUP BY 1 ORDER BY 1;
SELECT apikeys.delete_key(client_id) FROM apikeys.keys WHERE owner = 'bound';

-- The documented limits, on both sides of each bound (README, Validation):
-- owner 256 and name 128 characters, 100 scopes, description 1024, email
-- 254, phone + and 7 to 15 digits, 100 allowed_cidrs, db_role neither
-- superuser nor BYPASSRLS.
SELECT apikeys.set_owner_policy('limits', max_keys => 30);
CREATE ROLE regress_bypass NOLOGIN BYPASSRLS;
CREATE ROLE regress_plain NOLOGIN;
SELECT length(e) AS email_length FROM (VALUES (repeat('a', 62) || '@' || repeat('b', 63) || '.' || repeat('c', 63) || '.' || repeat('d', 63))) v(e);
SELECT label, left(err(q), 60) AS result FROM (VALUES
    ('owner 256', $$SELECT apikeys.create_key(repeat('o', 256), 'n', '{}')$$),
    ('name 128', $$SELECT apikeys.create_key('limits', repeat('n', 128), '{}')$$),
    ('scopes 100', $$SELECT apikeys.create_key('limits', 'n', (SELECT array_agg('r' || i || ':read') FROM generate_series(1, 100) i))$$),
    ('scopes 101', $$SELECT apikeys.create_key('limits', 'n', (SELECT array_agg('r' || i || ':read') FROM generate_series(1, 101) i))$$),
    ('description 1024', $$SELECT apikeys.create_key('limits', 'n', '{}', description => repeat('d', 1024))$$),
    ('email 254', $$SELECT apikeys.create_key('limits', 'n', '{}', contact_email => repeat('a', 62) || '@' || repeat('b', 63) || '.' || repeat('c', 63) || '.' || repeat('d', 63))$$),
    ('email 255', $$SELECT apikeys.create_key('limits', 'n', '{}', contact_email => repeat('a', 63) || '@' || repeat('b', 63) || '.' || repeat('c', 63) || '.' || repeat('d', 63))$$),
    ('phone 7 digits', $$SELECT apikeys.create_key('limits', 'n', '{}', contact_phone => '+1234567')$$),
    ('phone 6 digits', $$SELECT apikeys.create_key('limits', 'n', '{}', contact_phone => '+123456')$$),
    ('phone 15 digits', $$SELECT apikeys.create_key('limits', 'n', '{}', contact_phone => '+123456789012345')$$),
    ('phone 16 digits', $$SELECT apikeys.create_key('limits', 'n', '{}', contact_phone => '+1234567890123456')$$),
    ('cidrs 100', $$SELECT apikeys.create_key('limits', 'n', '{}', allowed_cidrs => (SELECT array_agg(format('10.%s.0.0/16', i)::cidr) FROM generate_series(1, 100) i))$$),
    ('cidrs 101', $$SELECT apikeys.create_key('limits', 'n', '{}', allowed_cidrs => (SELECT array_agg(format('10.%s.0.0/16', i)::cidr) FROM generate_series(1, 101) i))$$),
    ('db_role plain', $$SELECT apikeys.create_key('limits', 'n', '{}', db_role => 'regress_plain')$$),
    ('db_role BYPASSRLS', $$SELECT apikeys.create_key('limits', 'n', '{}', db_role => 'regress_bypass')$$),
    ('db_role superuser', $$SELECT apikeys.create_key('limits', 'n', '{}', db_role => 'postgres')$$)
) AS c(label, q);
-- what was accepted is stored whole
SELECT max(length(contact_email)) AS email, max(cardinality(allowed_cidrs)) AS cidrs,
       max(cardinality(scopes)) AS scopes, max(length(description)) AS description,
       max(length(name)) AS name, count(*) AS keys
  FROM apikeys.key_list WHERE owner = 'limits';
SELECT count(*) AS long_owner_keys FROM apikeys.key_list WHERE owner = repeat('o', 256);
-- update_key holds the same bounds
SELECT client_id AS lim_cid FROM apikeys.key_list WHERE owner = 'limits' ORDER BY client_id LIMIT 1 \gset
SELECT label, left(err(format(q, :'lim_cid')), 60) AS result FROM (VALUES
    ('email 255', $$SELECT apikeys.update_key(%L, contact_email => repeat('a', 63) || '@' || repeat('b', 63) || '.' || repeat('c', 63) || '.' || repeat('d', 63))$$),
    ('cidrs 101', $$SELECT apikeys.update_key(%L, allowed_cidrs => (SELECT array_agg(format('10.%%s.0.0/16', i)::cidr) FROM generate_series(1, 101) i))$$),
    ('phone 16 digits', $$SELECT apikeys.update_key(%L, contact_phone => '+1234567890123456')$$),
    ('db_role BYPASSRLS', $$SELECT apikeys.update_key(%L, db_role => 'regress_bypass')$$)
) AS c(label, q);
SELECT apikeys.delete_key(client_id) FROM apikeys.keys WHERE owner IN ('limits', repeat('o', 256));
DROP ROLE regress_bypass, regress_plain;
