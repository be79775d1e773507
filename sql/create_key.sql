--
-- create_key: every argument, every invalid input, the key cap.
--
\set VERBOSITY terse

-- Every argument of the contract.
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
SELECT count(*) AS keys_before FROM apikeys.keys \gset
SELECT count(*) AS audit_before FROM apikeys.audit_log \gset
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
