\i test/setup.sql
--
-- escalation: the attacks of issue 18 on self-service, scope sets,
-- revocation, owner names and settings, each next to the allowed case.
--
-- Without preloading, owner-wide rate limits are not enforced and a SET of
-- an apikeys.* setting before the library loads makes a placeholder:
-- those checks differ, hence escalation_1.out.
--
SELECT apikeys_internal._preloaded() AS preloaded;
SET client_min_messages = warning;
SELECT apikeys.set_owner_policy('esc_t', max_keys => 50);
SELECT current_user AS su \gset

-- the platform's manager key for the tenant, and a helper that runs a
-- statement as a key (authenticated in a transaction that is rolled back
-- unless keep): the result of err()
CREATE FUNCTION esc_as(tok text, q text, ip inet DEFAULT NULL) RETURNS text
-- authenticate() and the action are one statement: no outside-a-block warning
SET client_min_messages = error
LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    PERFORM apikeys.authenticate(tok, NULL, ip);
    r := err(q);
    RETURN r;
END $$;
SELECT (k).client_id AS mgr_cid, (k).token AS mgr_tok, (k).expires_at AS mgr_exp
  FROM (SELECT apikeys.create_key('esc_t', 'manager', ARRAY['apikeys:*', 'orders:read'],
                                  expires_at => now() + '30 days') k) s \gset

-- 2a. A scope set the tenant does not control -------------------------------
-- The manager gives a child '@esc_ops' while the set is within its scopes;
-- the platform later widens the set to '*'.  The child holds the set's
-- scopes as they were (plain scopes), so the widening gives it nothing.
SELECT apikeys.define_scope_set('esc_ops', ARRAY['orders:read']);
BEGIN;
SELECT valid FROM apikeys.authenticate(:'mgr_tok');
SELECT (k).client_id AS setchild_cid, (k).token AS setchild_tok
  FROM (SELECT apikeys.my_create_key('set child', ARRAY['@esc_ops', 'apikeys:create']) k) s \gset
COMMIT;
SELECT scopes FROM apikeys.key_list WHERE client_id = :'setchild_cid';
SELECT apikeys.define_scope_set('esc_ops', ARRAY['*']);
SELECT code FROM apikeys.verify(:'setchild_tok', 'orders:delete') AS widened_set_gives;
SELECT esc_as(:'setchild_tok', $$SELECT apikeys.my_create_key('root', ARRAY['*'])$$) AS child_mints_star;
-- my_update_key expands too
BEGIN;
SELECT valid FROM apikeys.authenticate(:'mgr_tok');
SELECT apikeys.define_scope_set('esc_ops', ARRAY['orders:read']);
SELECT apikeys.my_update_key(:'setchild_cid', scopes => ARRAY['@esc_ops']);
COMMIT;
SELECT scopes FROM apikeys.key_list WHERE client_id = :'setchild_cid';
-- a key an admin gives '@esc_ops' follows the set (the platform's choice)
SELECT (k).token AS adminset_tok
  FROM (SELECT apikeys.create_key('esc_t', 'admin set', ARRAY['@esc_ops'],
                                  expires_at => now() + '1 day') k) s \gset
SELECT apikeys.define_scope_set('esc_ops', ARRAY['orders:read', 'orders:update']);
SELECT code FROM apikeys.verify(:'adminset_tok', 'orders:update') AS admin_given_set_follows;

-- 2b. State changes: only on keys within the acting key's power; no key
-- lifts an admin's disable --------------------------------------------------
SELECT (k).client_id AS big_cid
  FROM (SELECT apikeys.create_key('esc_t', 'platform root', ARRAY['*'],
                                  expires_at => now() + '1 day') k) s \gset
SELECT apikeys.disable_key(:'big_cid', 'platform decision');
SELECT esc_as(:'mgr_tok', format('SELECT apikeys.my_enable_key(%L)', :'big_cid')) AS enable_broader;
SELECT apikeys.enable_key(:'big_cid');
SELECT esc_as(:'mgr_tok', format('SELECT apikeys.my_disable_key(%L)', :'big_cid')) AS disable_broader;
SELECT esc_as(:'mgr_tok', format('SELECT apikeys.my_revoke_key(%L)', :'big_cid')) AS revoke_broader;
SELECT esc_as(:'mgr_tok', format('SELECT apikeys.my_delete_key(%L)', :'big_cid')) AS delete_broader;
SELECT esc_as(:'mgr_tok', format('SELECT apikeys.my_rotate_key(%L)', :'big_cid')) AS rotate_broader;
SELECT esc_as(:'mgr_tok', format('SELECT apikeys.my_update_key(%L, name => %L)', :'big_cid', 'x')) AS update_broader;
SELECT status FROM apikeys.key_list WHERE client_id = :'big_cid';
-- a key within its power: the manager disables and enables it
SELECT (k).client_id AS small_cid
  FROM (SELECT apikeys.create_key('esc_t', 'small', ARRAY['orders:read'],
                                  expires_at => now() + '1 day') k) s \gset
SELECT esc_as(:'mgr_tok', format('SELECT apikeys.my_disable_key(%L)', :'small_cid')) AS disable_smaller;
SELECT status FROM apikeys.key_list WHERE client_id = :'small_cid';
SELECT esc_as(:'mgr_tok', format('SELECT apikeys.my_enable_key(%L)', :'small_cid')) AS enable_smaller;
SELECT status FROM apikeys.key_list WHERE client_id = :'small_cid';
-- the platform disables it: no key may enable it
SELECT apikeys.disable_key(:'small_cid', 'platform');
SELECT esc_as(:'mgr_tok', format('SELECT apikeys.my_enable_key(%L)', :'small_cid')) AS enable_platform_disabled;
-- a key disables it, then the platform disables it too: the platform's now
SELECT apikeys.enable_key(:'small_cid');
SELECT esc_as(:'mgr_tok', format('SELECT apikeys.my_disable_key(%L)', :'small_cid')) AS tenant_disables;
SELECT apikeys.disable_key(:'small_cid', 'platform, too');
SELECT esc_as(:'mgr_tok', format('SELECT apikeys.my_enable_key(%L)', :'small_cid')) AS enable_after_platform;
SELECT status FROM apikeys.key_list WHERE client_id = :'small_cid';
-- nor can a key make an admin's disable its own by disabling again
SELECT esc_as(:'mgr_tok', format('SELECT apikeys.my_disable_key(%L)', :'small_cid')) AS disable_again;
SELECT esc_as(:'mgr_tok', format('SELECT apikeys.my_enable_key(%L)', :'small_cid')) AS enable_after_disable_again;
SELECT apikeys.enable_key(:'small_cid');
-- a key may act on itself
SELECT (k).client_id AS self_cid, (k).token AS self_tok
  FROM (SELECT apikeys.create_key('esc_t', 'self', ARRAY['apikeys:update', 'orders:read'],
                                  expires_at => now() + '1 day') k) s \gset
SELECT esc_as(:'self_tok', format('SELECT apikeys.my_rotate_key(%L)', :'self_cid')) AS rotate_self;

-- 2c. Networks are compared as verification normalises them ---------------
SELECT (k).token AS v6_tok
  FROM (SELECT apikeys.create_key('esc_t', 'v6 manager', ARRAY['apikeys:*', 'orders:read'],
                                  expires_at => now() + '1 day', allowed_cidrs => '{::/0}') k) s \gset
-- verification reads ::ffff:0.0.0.0/96 as every IPv4 address
SELECT (k).token AS mapped_tok
  FROM (SELECT apikeys.create_key('esc_t', 'mapped', ARRAY['orders:read'],
                                  expires_at => now() + '1 day',
                                  allowed_cidrs => '{::ffff:0.0.0.0/96}') k) s \gset
SELECT code FROM apikeys.verify(:'mapped_tok', NULL, '192.0.2.1') AS mapped_from_ipv4;
SELECT code FROM apikeys.verify(:'v6_tok', NULL, '192.0.2.1') AS v6_any_from_ipv4;
SELECT esc_as(:'v6_tok', $$SELECT apikeys.my_create_key('m', ARRAY['orders:read'], allowed_cidrs => '{::ffff:0.0.0.0/96}')$$, '2001:db8::1') AS grant_mapped;
SELECT esc_as(:'v6_tok', $$SELECT apikeys.my_create_key('c', ARRAY['orders:read'], allowed_cidrs => '{::10.0.0.0/104}')$$, '2001:db8::1') AS grant_compat;
SELECT esc_as(:'v6_tok', $$SELECT apikeys.my_create_key('v6', ARRAY['orders:read'], allowed_cidrs => '{2001:db8::/32}')$$, '2001:db8::1') AS grant_v6;
-- and the other way: a manager limited to 10.0.0.0/8 may give ::ffff:10.1.0.0/112
SELECT (k).token AS v4_tok
  FROM (SELECT apikeys.create_key('esc_t', 'v4 manager', ARRAY['apikeys:*', 'orders:read'],
                                  expires_at => now() + '1 day', allowed_cidrs => '{10.0.0.0/8}') k) s \gset
SELECT esc_as(:'v4_tok', $$SELECT apikeys.my_create_key('m4', ARRAY['orders:read'], allowed_cidrs => '{::ffff:10.1.0.0/112}')$$, '10.1.2.3') AS grant_mapped_inside;
SELECT esc_as(:'v4_tok', $$SELECT apikeys.my_create_key('m4', ARRAY['orders:read'], allowed_cidrs => '{::ffff:11.0.0.0/104}')$$, '10.1.2.3') AS grant_mapped_outside;
SELECT apikeys_internal._cidrs_outside('{::ffff:0.0.0.0/96}', '{::/0}') AS outside,
       apikeys_internal._cidrs_outside('{::ffff:10.1.0.0/112}', '{10.0.0.0/8}') AS inside;

-- 2d. Rate windows are measured as verification measures them --------------
-- (without preloading, create_key warns that rate limits are not enforced)
SET client_min_messages = error;
SELECT apikeys_internal._interval_us('1 year -359 days') = 86400000000 AS one_day,
       apikeys_internal._interval_us('1 day') = 86400000000 AS one_day_too;
SELECT (k).token AS rate_tok
  FROM (SELECT apikeys.create_key('esc_t', 'rate manager', ARRAY['apikeys:*', 'orders:read'],
                                  expires_at => now() + '2 days', rate_limit => 10,
                                  rate_window => '1 day') k) s \gset
SELECT (k).client_id AS fast_cid
  FROM (SELECT apikeys.create_key('esc_t', 'fast', ARRAY['orders:read'],
                                  expires_at => now() + '1 day', rate_limit => 60,
                                  rate_window => '1 year -359 days') k) s \gset
SELECT (k).client_id AS slow_cid
  FROM (SELECT apikeys.create_key('esc_t', 'slow', ARRAY['orders:read'],
                                  expires_at => now() + '1 day', rate_limit => 10,
                                  rate_window => '1 year -359 days') k) s \gset
SELECT esc_as(:'rate_tok', format('SELECT apikeys.my_rotate_key(%L)', :'fast_cid')) AS rotate_faster;
SELECT esc_as(:'rate_tok', format('SELECT apikeys.my_rotate_key(%L)', :'slow_cid')) AS rotate_same_rate;
SET client_min_messages = warning;

-- 2e. A manager key that expires inside an open transaction ----------------
SELECT (k).token AS short_tok, (k).expires_at AS short_exp
  FROM (SELECT apikeys.create_key('esc_t', 'short manager', ARRAY['apikeys:*', 'orders:read'],
                                  expires_at => clock_timestamp() + '4 seconds') k) s \gset
BEGIN;
SELECT valid FROM apikeys.authenticate(:'short_tok');
SELECT err($$SELECT apikeys.my_create_key('before expiry', ARRAY['orders:read'])$$) AS before_expiry;
-- sleep until just past its expiry, inside the transaction
SELECT pg_sleep(greatest(0, extract(epoch FROM :'short_exp'::timestamptz - clock_timestamp())) + 0.05);
SELECT err($$SELECT apikeys.my_create_key('after expiry', ARRAY['orders:read'])$$) AS after_expiry;
SELECT err(format('SELECT apikeys.my_revoke_key(%L)', :'small_cid')) AS revoke_after_expiry;
ROLLBACK;

-- 2f. Field lists on the reserved apikeys scopes ----------------------------
SELECT err($$SELECT 'apikeys:create(name)'::apikeys.scope$$);
SELECT err($$SELECT apikeys.create_key('esc_t', 'x', ARRAY['apikeys:read(owner)'])$$);
SELECT err($$SELECT apikeys.define_scope_set('esc_bad', ARRAY['apikeys:update(name)'])$$);
SELECT 'apikeys:read'::apikeys.scope AS plain_ok, 'apikeys_x:read(a)'::apikeys.scope AS other_resource_ok;

-- 5. Self-service handoff is refused ---------------------------------------
SELECT esc_as(:'mgr_tok', $$SELECT apikeys.my_create_key('h', ARRAY['orders:read'], contact_email => 'victim@example.com', contact_phone => '+447894123456', handoff => true)$$) AS my_handoff;
SELECT count(*) AS outbox_deliveries FROM apikeys.outbox WHERE owner = 'esc_t' AND channel IS NOT NULL;

-- 6. One revocation ---------------------------------------------------------
-- nothing but apikeys_internal._revoke_key sets revoked_at
SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('apikeys', 'apikeys_internal') AND p.prosrc ~* 'revoked_at\s*=\s*pg_catalog\.now'
 ORDER BY 1;
-- revoke_key(with_descendants): the manager's children, and theirs
SELECT apikeys.set_owner_policy('esc_tree', max_keys => 20);
SELECT (k).client_id AS root_cid, (k).token AS root_tok
  FROM (SELECT apikeys.create_key('esc_tree', 'root', ARRAY['apikeys:*', 'docs:read']) k) s \gset
BEGIN;
SELECT valid FROM apikeys.authenticate(:'root_tok');
SELECT (k).client_id AS kid_cid, (k).token AS kid_tok
  FROM (SELECT apikeys.my_create_key('kid', ARRAY['apikeys:*', 'docs:read']) k) s \gset
SELECT (k).client_id AS kid2_cid
  FROM (SELECT apikeys.my_create_key('kid2', ARRAY['docs:read']) k) s \gset
COMMIT;
BEGIN;
SELECT valid FROM apikeys.authenticate(:'kid_tok');
SELECT (k).client_id AS grandkid_cid
  FROM (SELECT apikeys.my_create_key('grandkid', ARRAY['docs:read']) k) s \gset
COMMIT;
SELECT apikeys.create_key('esc_tree', 'unrelated', ARRAY['docs:read']) IS NOT NULL AS unrelated;
-- a revoked key's children are descendants too
SELECT apikeys.revoke_key(:'kid_cid', 'already gone');
SELECT err(format('SELECT apikeys.revoke_key(%L, NULL, NULL)', :'root_cid')) AS null_flag;
-- without the flag only the key itself (what revoke_key always did) ...
BEGIN;
SELECT apikeys.revoke_key(:'root_cid', 'leaked');
SELECT name, status FROM apikeys.key_list WHERE owner = 'esc_tree' ORDER BY name;
ROLLBACK;
-- ... with it, the whole tree that is still live, each audited
SELECT apikeys.revoke_key(:'root_cid', 'leaked', with_descendants => true);
SELECT name, status FROM apikeys.key_list WHERE owner = 'esc_tree' ORDER BY name;
SELECT k.name, replace(replace(a.detail->>'reason', :'root_cid', '<root>'), :'kid_cid', '<kid>') AS reason,
       a.detail->'with_descendants' AS flag
  FROM apikeys.audit_log a JOIN apikeys.key_list k USING (client_id)
 WHERE a.owner = 'esc_tree' AND a.event = 'revoked' ORDER BY k.name;
SELECT err(format('SELECT apikeys.revoke_key(%L, NULL, true)', :'root_cid')) AS again;
-- revoke_all_keys and report_leaked go through it too (counted, audited)
SELECT apikeys.revoke_all_keys('esc_tree', 'offboarded') AS revoked_all;
SELECT count(*) AS revoked_rows FROM apikeys.audit_log
 WHERE owner = 'esc_tree' AND event = 'revoked' AND detail->>'all' = 'true';
SELECT (k).token AS leak_tok
  FROM (SELECT apikeys.create_key('esc_tree', 'leaky', ARRAY['docs:read']) k) s \gset
SELECT apikeys.report_leaked(:'leak_tok');
SELECT code FROM apikeys.verify(:'leak_tok') AS after_report;

-- 8. Owner names are measured in characters, everywhere --------------------
SELECT err($$SELECT apikeys_internal._check_owner(repeat('鍵', 256))$$) AS chars_256;
SELECT err($$SELECT apikeys_internal._check_owner(repeat('鍵', 257))$$) AS chars_257;
SELECT apikeys.set_owner_policy(repeat('鍵', 100), rate_limit => 2, rate_window => '1 hour');
SELECT (k).token AS cjk_tok
  FROM (SELECT apikeys.create_key(repeat('鍵', 100), 'cjk', ARRAY['docs:read']) k) s \gset
SELECT octet_length(repeat('鍵', 100)) AS owner_bytes;
-- preloaded: the third verification is over the owner's limit
SELECT code FROM apikeys.verify(:'cjk_tok');
SELECT code FROM apikeys.verify(:'cjk_tok');
SELECT code FROM apikeys.verify(:'cjk_tok');

-- 9. Tenant management actions are bounded ---------------------------------
SELECT (k).token AS flood_tok
  FROM (SELECT apikeys.create_key('esc_flood', 'manager', ARRAY['apikeys:*', 'orders:read'],
                                  expires_at => now() + '1 day') k) s \gset
SELECT (k).client_id AS flood_cid
  FROM (SELECT apikeys.create_key('esc_flood', 'target', ARRAY['orders:read'],
                                  expires_at => now() + '1 hour') k) s \gset
SET apikeys.max_tenant_actions = 3;
SELECT esc_as(:'flood_tok', format('SELECT apikeys.my_disable_key(%L)', :'flood_cid')) AS action_1;
SELECT esc_as(:'flood_tok', format('SELECT apikeys.my_enable_key(%L)', :'flood_cid')) AS action_2;
-- a refused action is not counted
SELECT esc_as(:'flood_tok', format('SELECT apikeys.my_enable_key(%L)', :'big_cid')) AS other_owner;
SELECT esc_as(:'flood_tok', format('SELECT apikeys.my_disable_key(%L)', :'flood_cid')) AS action_3;
SELECT esc_as(:'flood_tok', format('SELECT apikeys.my_enable_key(%L)', :'flood_cid')) AS action_4;
SELECT esc_as(:'flood_tok', $$SELECT apikeys.my_create_key('more', ARRAY['orders:read'])$$) AS action_5;
SELECT count(*) AS audit_rows FROM apikeys.audit_log WHERE owner = 'esc_flood' AND detail ? 'by_key';
-- 0 is no limit
SET apikeys.max_tenant_actions = 0;
SELECT esc_as(:'flood_tok', format('SELECT apikeys.my_enable_key(%L)', :'flood_cid')) AS unlimited;
RESET apikeys.max_tenant_actions;
SELECT apikeys.enable_key(:'small_cid');

-- 11. The secret hash is compared whole -------------------------------------
SELECT (k).client_id AS hash_cid, (k).token AS hash_tok
  FROM (SELECT apikeys.create_key('esc_t', 'hash', ARRAY['docs:read'],
                                  expires_at => now() + '1 day') k) s \gset
SELECT code FROM apikeys.verify(:'hash_tok') AS intact;
UPDATE apikeys.keys SET secret_hash = set_byte(secret_hash, 31, get_byte(secret_hash, 31) # 1)
 WHERE client_id = :'hash_cid';
SELECT code FROM apikeys.verify(:'hash_tok') AS last_byte_differs;
UPDATE apikeys.keys SET secret_hash = set_byte(secret_hash, 31, get_byte(secret_hash, 31) # 1)
 WHERE client_id = :'hash_cid';
SELECT code FROM apikeys.verify(:'hash_tok') AS restored;
UPDATE apikeys.keys SET secret_hash = set_byte(secret_hash, 0, get_byte(secret_hash, 0) # 128)
 WHERE client_id = :'hash_cid';
SELECT code FROM apikeys.verify(:'hash_tok') AS first_byte_differs;

-- 11. The no-escalation expiry is compared to the microsecond --------------
SELECT esc_as(:'mgr_tok', format($$SELECT apikeys.my_create_key('late 1s', ARRAY['orders:read'], expires_at => %L::timestamptz + '1 second')$$, :'mgr_exp'))::varchar(5) AS one_second_later;
SELECT esc_as(:'mgr_tok', format($$SELECT apikeys.my_create_key('late 1us', ARRAY['orders:read'], expires_at => %L::timestamptz + '1 microsecond')$$, :'mgr_exp'))::varchar(5) AS one_microsecond_later;
SELECT esc_as(:'mgr_tok', format($$SELECT apikeys.my_create_key('same', ARRAY['orders:read'], expires_at => %L::timestamptz)$$, :'mgr_exp')) AS same_expiry;

-- 9. Settings set as placeholders before the library loads -----------------
-- A new connection of an admin (not superuser): without preloading the
-- library is not loaded yet, so SET makes a placeholder of a superuser-only
-- setting; apply_policies must read the setting as registered.
SELECT (k).client_id AS old_cid
  FROM (SELECT apikeys.create_key('esc_pl', 'in use', ARRAY['docs:read']) k) s \gset
\c - regress_admin
SET client_min_messages = error;
SELECT err($$SET apikeys.default_revoke_unused_after = '1 microsecond'$$) AS placeholder_set;
SELECT apikeys.apply_policies() >= 0 AS applied;
SELECT status FROM apikeys.key_list WHERE client_id = :'old_cid';
\c - :su
SET client_min_messages = warning;

DROP FUNCTION esc_as(text, text, inet);
