\i test/setup.sql
--
-- lifecycle: disable, enable, revoke, revoke all, delete, update, rotate,
-- owner policies, report_leaked, and the statuses key_list shows.
--
\set VERBOSITY terse
SELECT apikeys.set_owner_policy('wayne', max_keys => 20);
-- snap(cid): what a change to the key would alter, including what survives
-- a rollback: the key's row (as key_list shows it), its audit rows, the
-- audit log's identity sequence and the shared cache's invalidation count.
-- A "no change" below compares two snapshots.
CREATE FUNCTION pg_temp.snap(cid text) RETURNS text LANGUAGE sql AS $$
    SELECT md5((SELECT (to_jsonb(l) - 'last_used_at')::text FROM apikeys.key_list l WHERE l.client_id = cid))
           || ' audit=' || (SELECT count(*) FROM apikeys.audit_log a WHERE a.client_id = cid)
           || ' seq=' || (SELECT last_value FROM apikeys.audit_log_id_seq)
           || ' inval=' || coalesce((SELECT invalidations FROM apikeys.cache_stats())::text, 'no cache')
$$;
SELECT (k).client_id AS cid, (k).token AS tok
  FROM (SELECT apikeys.create_key('wayne', 'main', '{cases:read}') AS k) s \gset

-- disable / enable: reversible; DISABLED while disabled
SELECT apikeys.disable_key(:'cid', 'suspicious traffic');
SELECT status, disabled_at IS NOT NULL AS disabled FROM apikeys.key_list WHERE client_id = :'cid';
SELECT (apikeys.verify(:'tok')).code;
SELECT pg_temp.snap(:'cid') AS before \gset
SELECT apikeys.disable_key(:'cid');  -- already disabled: no change, no error
SELECT pg_temp.snap(:'cid') = :'before' AS unchanged;
SELECT apikeys.enable_key(:'cid');
SELECT status FROM apikeys.key_list WHERE client_id = :'cid';
SELECT (apikeys.verify(:'tok')).code;
SELECT pg_temp.snap(:'cid') AS before \gset
SELECT apikeys.enable_key(:'cid');   -- already enabled: no change
SELECT pg_temp.snap(:'cid') = :'before' AS unchanged;
-- (and a real change moves every part of the snapshot)
SELECT apikeys.disable_key(:'cid');
SELECT pg_temp.snap(:'cid') AS after_disable \gset
-- (the fourth part, the cache's invalidations, reads "inval=no cache" without preloading)
SELECT split_part(:'before', ' ', g) <> split_part(:'after_disable', ' ', g)
       OR split_part(:'after_disable', ' ', g) = 'inval=no' AND NOT apikeys_internal._preloaded() AS moved
  FROM generate_series(1, 4) g;
SELECT apikeys.enable_key(:'cid');

-- update_key: each setting; NULL leaves it, '' / {} / 0 clears it
-- (without preloading, a rate limit draws a warning that names the random
-- client ID: test/t/052_not_preloaded.pl checks it)
SET client_min_messages = error;
SELECT apikeys.update_key(:'cid', name => 'renamed', description => 'now with a description',
        scopes => '{cases:read, cases:update}', contact_email => 'bruce@wayne.example',
        contact_phone => '+15555550100', allowed_cidrs => '{10.0.0.0/8}',
        metadata => '{"team": "cave"}', db_role => 'regress_verifier', rate_limit => 10,
        rate_window => '1 hour');
RESET client_min_messages;
SELECT name, description, scopes, contact_email, contact_phone, allowed_cidrs, metadata,
       db_role, rate_limit, rate_window
  FROM apikeys.key_list WHERE client_id = :'cid';
SELECT (apikeys.verify(:'tok', 'cases:update', '10.1.2.3')).code;
SELECT apikeys.update_key(:'cid', description => '', contact_email => '', contact_phone => '',
        allowed_cidrs => '{}', metadata => '{}', db_role => '', rate_limit => 0);
SELECT name, description, scopes, contact_email, contact_phone, allowed_cidrs, metadata,
       db_role, rate_limit, rate_window
  FROM apikeys.key_list WHERE client_id = :'cid';
SELECT pg_temp.snap(:'cid') AS before \gset
SELECT apikeys.update_key(:'cid');   -- nothing given: nothing changes
SELECT pg_temp.snap(:'cid') = :'before' AS unchanged;

-- expiry: can be brought forward, never extended
SELECT expires_at AS old_exp FROM apikeys.key_list WHERE client_id = :'cid' \gset
SELECT apikeys.update_key(:'cid', expires_at => now() + interval '10 days');
SELECT expires_at < :'old_exp' AS shortened, old_secret_valid_until IS NULL AS no_grace_invented
  FROM apikeys.key_list WHERE client_id = :'cid';
SELECT err(format($$SELECT apikeys.update_key(%L, expires_at => now() + interval '20 days')$$, :'cid'));
SELECT err(format($$SELECT apikeys.update_key(%L, expires_at => now() - interval '1 day')$$, :'cid'));

-- Invalid input to update_key: 22023, nothing changes (the snapshot includes
-- what err()'s rollback cannot undo: audit ids used and cache invalidations)
SELECT pg_temp.snap(:'cid') AS before \gset
SELECT err(format($$SELECT apikeys.update_key(%L, name => '')$$, :'cid'));
SELECT err(format($$SELECT apikeys.update_key(%L, scopes => '{BAD}')$$, :'cid'));
SELECT err(format($$SELECT apikeys.update_key(%L, contact_email => 'nope')$$, :'cid'));
SELECT err(format($$SELECT apikeys.update_key(%L, contact_phone => '12')$$, :'cid'));
SELECT err(format($$SELECT apikeys.update_key(%L, rate_limit => -1)$$, :'cid'));
SELECT err(format($$SELECT apikeys.update_key(%L, metadata => '"x"')$$, :'cid'));
SELECT err(format($$SELECT apikeys.update_key(%L, db_role => 'postgres')$$, :'cid'));
SELECT name, scopes FROM apikeys.key_list WHERE client_id = :'cid';
SELECT pg_temp.snap(:'cid') = :'before' AS unchanged;
-- the same outside err(): each call its own failing transaction
SELECT apikeys.update_key(:'cid', contact_email => 'nope');
SELECT apikeys.update_key(:'cid', rate_limit => -1);
SELECT apikeys.update_key(:'cid', name => 'valid', scopes => '{BAD}');
SELECT pg_temp.snap(:'cid') = :'before' AS unchanged;

-- rotate_key without grace: the new secret works at once, the old one stops
SELECT (k).token AS tok_r1, (k).client_id = :'cid' AS same_client_id, (k).expires_at = k2.expires_at AS same_expiry
  FROM (SELECT apikeys.rotate_key(:'cid') AS k) s, apikeys.key_list k2 WHERE k2.client_id = :'cid' \gset
SELECT :'same_client_id' AS same_client_id, :'same_expiry' AS same_expiry,
       (apikeys.verify(:'tok_r1', 'cases:read')).code AS new_secret,
       (apikeys.verify(:'tok', 'cases:read')).code AS old_secret;

-- rotate_key with grace: both work until now() + grace, then the old one
-- answers EXPIRED; scopes and settings are kept
SELECT (k).token AS tok_r2 FROM (SELECT apikeys.rotate_key(:'cid', '1 hour') AS k) s \gset
SELECT (apikeys.verify(:'tok_r2', 'cases:read')).code AS new_secret,
       (apikeys.verify(:'tok_r1', 'cases:read')).code AS old_secret_in_grace,
       (apikeys.verify(:'tok', 'cases:read')).code AS older_secret;
SELECT old_secret_valid_until BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes' AS grace_hour
  FROM apikeys.key_list WHERE client_id = :'cid';
UPDATE apikeys.keys SET prev_expires_at = now() - interval '1 second' WHERE client_id = :'cid';
SELECT (apikeys.verify(:'tok_r1')).code AS old_secret_after_grace,
       (apikeys.verify(:'tok_r2')).code AS new_secret_after_grace;
-- grace never outlives the key
SELECT (k).token AS tok_r3 FROM (SELECT apikeys.rotate_key(:'cid', '1 year') AS k) s \gset
SELECT old_secret_valid_until = expires_at AS grace_capped_at_expiry
  FROM apikeys.key_list WHERE client_id = :'cid';
SELECT err(format($$SELECT apikeys.rotate_key(%L, '-1 hour')$$, :'cid'));
SELECT err(format($$SELECT apikeys.rotate_key(%L, NULL)$$, :'cid'));

-- an expired key cannot be rotated: issue a new one
SELECT (k).client_id AS exp_cid, (k).token AS exp_tok FROM (SELECT apikeys.create_key('wayne', 'old', '{}') AS k) s \gset
SELECT apikeys.disable_key(:'exp_cid', 'before it expired');
UPDATE apikeys.keys SET expires_at = now() - interval '1 second' WHERE client_id = :'exp_cid';
SELECT status FROM apikeys.key_list WHERE client_id = :'exp_cid';
SELECT err(format($$SELECT apikeys.rotate_key(%L)$$, :'exp_cid'));
-- nor re-enabled into life: enable_key lifts the disable (audited), and the
-- key stays expired (status expired, verify EXPIRED)
SELECT (apikeys.verify(:'exp_tok')).code AS disabled_and_expired;
SELECT apikeys.enable_key(:'exp_cid');
SELECT status, disabled_at IS NULL AS not_disabled, expires_at < now() AS still_past_expiry
  FROM apikeys.key_list WHERE client_id = :'exp_cid';
SELECT (apikeys.verify(:'exp_tok')).code AS after_enable;
SELECT event FROM apikeys.audit_log WHERE client_id = :'exp_cid' ORDER BY id;

-- revoke_key: irreversible; REVOKED forever; any further change is 55000
SELECT apikeys.revoke_key(:'cid', 'laptop stolen');
SELECT status, revoked_at IS NOT NULL AS revoked FROM apikeys.key_list WHERE client_id = :'cid';
SELECT (apikeys.verify(:'tok_r3')).code;
SELECT err(format($$SELECT apikeys.enable_key(%L)$$, :'cid'));
SELECT err(format($$SELECT apikeys.disable_key(%L)$$, :'cid'));
SELECT err(format($$SELECT apikeys.revoke_key(%L)$$, :'cid'));
SELECT err(format($$SELECT apikeys.rotate_key(%L)$$, :'cid'));
SELECT err(format($$SELECT apikeys.update_key(%L, name => 'x')$$, :'cid'));

-- unknown client IDs: 42704
SELECT err(q) FROM (VALUES
    ($$SELECT apikeys.disable_key('ak_nosuchkey00000000')$$),
    ($$SELECT apikeys.enable_key('ak_nosuchkey00000000')$$),
    ($$SELECT apikeys.revoke_key('ak_nosuchkey00000000')$$),
    ($$SELECT apikeys.rotate_key('ak_nosuchkey00000000')$$),
    ($$SELECT apikeys.update_key('ak_nosuchkey00000000', name => 'x')$$),
    ($$SELECT apikeys.delete_key('ak_nosuchkey00000000')$$),
    ($$SELECT apikeys.delete_key(NULL)$$)) AS c(q);
SELECT err(format($$SELECT apikeys.disable_key(%L, %L)$$, :'exp_cid', repeat('r', 1025)));

-- revoke_all_keys: every live key of the owner, returns how many; cannot be undone
SELECT count(*) FROM (SELECT apikeys.create_key('wayne', 'bulk ' || i, '{}') FROM generate_series(1, 3) i) s;
SELECT status, count(*) FROM apikeys.key_list WHERE owner = 'wayne' GROUP BY 1 ORDER BY 1;
SELECT apikeys.revoke_all_keys('wayne', 'offboarding');
SELECT status, count(*) FROM apikeys.key_list WHERE owner = 'wayne' GROUP BY 1 ORDER BY 1;
SELECT apikeys.revoke_all_keys('wayne');
SELECT apikeys.revoke_all_keys('nobody-at-all');
SELECT err($$SELECT apikeys.revoke_all_keys('')$$);

-- delete_key: the key is gone (even a revoked one); the audit trail stays
SELECT apikeys.delete_key(:'cid');
SELECT count(*) AS remaining FROM apikeys.key_list WHERE client_id = :'cid';
SELECT (apikeys.verify(:'tok_r3')).code;
SELECT count(*) > 0 AS audit_kept FROM apikeys.audit_log WHERE client_id = :'cid';

-- set_owner_policy: validation; NULL leaves a setting as it is
SELECT err(q) FROM (VALUES
    ($$SELECT apikeys.set_owner_policy('', 5)$$),
    ($$SELECT apikeys.set_owner_policy('x', 0)$$),
    ($$SELECT apikeys.set_owner_policy('x', 5, '0 seconds')$$),
    ($$SELECT apikeys.set_owner_policy('x', 5, '101 years')$$)) AS c(q);
SELECT apikeys.set_owner_policy('stark', max_keys => 2);
SELECT apikeys.set_owner_policy('stark', max_lifetime => '30 days');
SELECT owner, max_keys, max_lifetime FROM apikeys.owner_policies WHERE owner = 'stark';

-- report_leaked: anyone may call it; a valid token is revoked with reason
-- 'leaked', anything else does nothing and says nothing
SELECT (k).client_id AS leak_cid, (k).token AS leak_tok
  FROM (SELECT apikeys.create_key('stark', 'leaky', '{}') AS k) s \gset
SET ROLE regress_nobody;
SELECT apikeys.report_leaked('garbage');
SELECT apikeys.report_leaked(NULL);
SELECT apikeys.report_leaked('ak_0000000000000000_' || substr(:'leak_tok', 21));
-- a well-formed token (valid checksum) with the real client ID and a wrong
-- secret: verify gets to the secret and answers NOT_FOUND, and the key
-- must stay active (a report_leaked that revoked by client ID would not)
SELECT apikeys.report_leaked(forge_token(:'leak_cid', repeat('x', 43)));
RESET ROLE;
SELECT (apikeys.verify(forge_token(:'leak_cid', repeat('x', 43)))).code AS forged_code,
       status AS after_wrong_secret,
       (SELECT count(*) FROM apikeys.audit_log WHERE client_id = :'leak_cid' AND event = 'revoked') AS revoked_rows
  FROM apikeys.key_list WHERE client_id = :'leak_cid';
SET ROLE regress_nobody;
SELECT apikeys.report_leaked(:'leak_tok');
SELECT apikeys.report_leaked(:'leak_tok');
RESET ROLE;
SELECT status FROM apikeys.key_list WHERE client_id = :'leak_cid';
SELECT event, detail->>'reason' AS reason, detail->>'reported_by' AS reported_by
  FROM apikeys.audit_log WHERE client_id = :'leak_cid' ORDER BY id;
