\i test/setup.sql
--
-- selfservice: keys that manage their owner's keys (apikeys:* scopes and
-- the my_* functions), named scope sets, and the no-escalation rule.
--
-- Every escalation attempt below must fail with 42501 (42704 for another
-- owner's key); the matching allowed case sits beside it, so a check that
-- refused everything would show up too.
--
SET client_min_messages = warning;
CREATE ROLE regress_ss_role_a NOLOGIN;
CREATE ROLE regress_ss_role_b NOLOGIN;
SELECT apikeys.set_owner_policy('ss_acme', max_keys => 20);
SELECT apikeys.set_owner_policy('ss_globex', max_keys => 20);

-- Named scope sets -----------------------------------------------------------
SET ROLE regress_admin;
SELECT apikeys.define_scope_set('ss_reader', ARRAY['orders:read', 'invoices:read(id,total)'],
                                'Read orders and invoice totals');
SELECT apikeys.define_scope_set('ss_wide', ARRAY['orders:*']);
SELECT apikeys.define_scope_set('ss_root', ARRAY['*']);
SELECT err('SELECT * FROM apikeys.scope_sets');   -- not for admins: the table is the owner's
RESET ROLE;
SELECT name, scopes, description FROM apikeys.scope_sets ORDER BY name;
-- Invalid input: scope set names, contents, unknown sets
SELECT err($$SELECT apikeys.define_scope_set('Bad', ARRAY['a:read'])$$);
SELECT err($$SELECT apikeys.define_scope_set('1x', ARRAY['a:read'])$$);
SELECT err($$SELECT apikeys.define_scope_set(NULL, ARRAY['a:read'])$$);
SELECT err($$SELECT apikeys.define_scope_set('ss_x', NULL)$$);
SELECT err($$SELECT apikeys.define_scope_set('ss_x', ARRAY['a:Read'])$$);
SELECT err($$SELECT apikeys.define_scope_set('ss_nested', ARRAY['@ss_reader'])$$);
SELECT err($$SELECT '@'::apikeys.scope$$);
SELECT err($$SELECT '@Reader'::apikeys.scope$$);
SELECT err($$SELECT '@9lives'::apikeys.scope$$);
SELECT err($$SELECT '@a-b'::apikeys.scope$$);
SELECT err($$SELECT ('@' || repeat('a', 64))::apikeys.scope$$);
SELECT ('@' || repeat('a', 63))::apikeys.scope IS NOT NULL AS longest_name_ok;
SELECT err($$SELECT apikeys.create_key('ss_acme', 'x', ARRAY['@ss_nosuch'])$$);
SELECT err($$SELECT apikeys.drop_scope_set('ss_nosuch')$$);
-- a set reference matches nothing unexpanded (fails closed)
SELECT apikeys.scopes_grant(ARRAY['@ss_root']::apikeys.scope[], 'orders:read') AS unexpanded_grants,
       apikeys.scope_grants('*', '@ss_reader') AS star_grants_set_ref;

-- a key holding a set: listed as written, verified as expanded
SET ROLE regress_admin;
SELECT (k).client_id AS set_cid, (k).token AS set_tok
  FROM (SELECT apikeys.create_key('ss_acme', 'set holder', ARRAY['@ss_reader', 'docs:read']) k) s \gset
SELECT scopes FROM apikeys.key_list WHERE client_id = :'set_cid';
SELECT code, scopes FROM apikeys.verify(:'set_tok', 'invoices:read(total)');
SELECT code FROM apikeys.verify(:'set_tok', 'invoices:read(secret)');
-- redefined: the next verification sees the new set (the cache is outdated)
SELECT apikeys.define_scope_set('ss_reader', ARRAY['orders:read']);
SELECT code, scopes FROM apikeys.verify(:'set_tok', 'invoices:read(total)');
SELECT apikeys.define_scope_set('ss_reader', ARRAY['orders:read', 'invoices:read(id,total)']);
SELECT code FROM apikeys.verify(:'set_tok', 'invoices:read(total)');
-- in use: cannot be dropped (2BP01), an unused set can
SELECT err($$SELECT apikeys.drop_scope_set('ss_reader')$$);
SELECT apikeys.define_scope_set('ss_unused', ARRAY['x:read']);
SELECT apikeys.drop_scope_set('ss_unused');
SELECT err($$SELECT apikeys.update_key(k.client_id, scopes => ARRAY['@ss_unused']) FROM apikeys.key_list k WHERE k.name = 'set holder'$$);
-- key_hygiene: a set granting * is full access
SELECT (k).client_id AS root_cid FROM (SELECT apikeys.create_key('ss_acme', 'root by set', ARRAY['@ss_root']) k) s \gset
SELECT findings @> ARRAY['full_access'] AS flagged FROM apikeys.key_hygiene WHERE client_id = :'root_cid';
SELECT findings @> ARRAY['full_access'] AS flagged FROM apikeys.key_hygiene WHERE client_id = :'set_cid';
SELECT apikeys.revoke_key(:'root_cid');
SELECT event, detail->>'name' AS name FROM apikeys.audit_log
 WHERE event LIKE 'scope_set_%' ORDER BY id;

-- Keys for the self-service tests ---------------------------------------------
-- mgr: a tenant admin key; create_only: only apikeys:create; limited: with
-- a db_role, a rate limit and a network restriction; reader: no apikeys:*
SELECT (k).client_id AS mgr_cid, (k).token AS mgr
  FROM (SELECT apikeys.create_key('ss_acme', 'tenant admin',
          ARRAY['apikeys:*', 'orders:read', 'invoices:read(id,total)', '@ss_reader'],
          expires_at => now() + interval '30 days') k) s \gset
SELECT (k).client_id AS co_cid, (k).token AS create_only
  FROM (SELECT apikeys.create_key('ss_acme', 'create only', ARRAY['apikeys:create', 'orders:read']) k) s \gset
SET client_min_messages = error;   -- the rate-limit warning (random client ID) without preloading
SELECT (k).client_id AS lim_cid, (k).token AS limited
  FROM (SELECT apikeys.create_key('ss_acme', 'limited admin', ARRAY['apikeys:*', 'orders:read'],
          db_role => 'regress_ss_role_a', rate_limit => 10, rate_window => '1 minute',
          allowed_cidrs => '{10.0.0.0/8}') k) s \gset
SELECT (k).token AS reader
  FROM (SELECT apikeys.create_key('ss_acme', 'reader', ARRAY['orders:read', 'apikeys:read']) k) s \gset
SELECT (k).token AS noadmin
  FROM (SELECT apikeys.create_key('ss_acme', 'no admin scope', ARRAY['orders:read']) k) s \gset
-- siblings: one with another db_role, one unlimited, one faster
SELECT (k).client_id AS role_b_cid
  FROM (SELECT apikeys.create_key('ss_acme', 'role b', ARRAY['orders:read'], db_role => 'regress_ss_role_b',
          expires_at => now() + interval '20 days') k) s \gset
SELECT (k).client_id AS role_a_unlimited_cid
  FROM (SELECT apikeys.create_key('ss_acme', 'role a unlimited', ARRAY['orders:read'],
          db_role => 'regress_ss_role_a', allowed_cidrs => '{10.1.0.0/16}',
          expires_at => now() + interval '20 days') k) s \gset
SELECT (k).client_id AS role_a_fast_cid
  FROM (SELECT apikeys.create_key('ss_acme', 'role a fast', ARRAY['orders:read'],
          db_role => 'regress_ss_role_a', rate_limit => 100, allowed_cidrs => '{10.1.0.0/16}',
          expires_at => now() + interval '20 days') k) s \gset
SELECT (k).client_id AS role_a_slow_cid
  FROM (SELECT apikeys.create_key('ss_acme', 'role a slow', ARRAY['orders:read'],
          db_role => 'regress_ss_role_a', rate_limit => 5, allowed_cidrs => '{10.1.0.0/16}',
          expires_at => now() + interval '20 days') k) s \gset
SELECT (k).client_id AS role_a_anynet_cid
  FROM (SELECT apikeys.create_key('ss_acme', 'role a any network', ARRAY['orders:read'],
          db_role => 'regress_ss_role_a', rate_limit => 5,
          expires_at => now() + interval '20 days') k) s \gset
SET client_min_messages = warning;
SELECT (k).client_id AS wide_cid
  FROM (SELECT apikeys.create_key('ss_acme', 'wide sibling', ARRAY['orders:*'],
          expires_at => now() + interval '20 days') k) s \gset
SELECT (k).client_id AS later_cid
  FROM (SELECT apikeys.create_key('ss_acme', 'later sibling', ARRAY['orders:read'],
          expires_at => now() + interval '60 days') k) s \gset
SELECT (k).client_id AS globex_cid, (k).token AS globex
  FROM (SELECT apikeys.create_key('ss_globex', 'globex admin', ARRAY['apikeys:*', 'orders:read']) k) s \gset
RESET ROLE;

-- The verifier may call the my_* functions and read my_keys, nothing else
SET ROLE regress_verifier;
SELECT err($$SELECT apikeys.create_key('ss_acme', 'x', '{}')$$);
SELECT err($$SELECT * FROM apikeys.key_list$$);

-- Escalation: no authenticated key ------------------------------------------
SELECT err($$SELECT apikeys.my_create_key('x', '{}')$$);
SELECT err(format('SELECT apikeys.my_update_key(%L, name => %L)', :'set_cid', 'x'));
SELECT err(format('SELECT apikeys.my_rotate_key(%L)', :'set_cid'));
SELECT err(format('SELECT apikeys.my_disable_key(%L)', :'set_cid'));
SELECT err(format('SELECT apikeys.my_enable_key(%L)', :'set_cid'));
SELECT err(format('SELECT apikeys.my_revoke_key(%L)', :'set_cid'));
SELECT err(format('SELECT apikeys.my_delete_key(%L)', :'set_cid'));
SELECT count(*) AS my_keys_without_key FROM apikeys.my_keys;

-- Escalation: a key without apikeys:* ----------------------------------------
BEGIN;
SELECT code FROM apikeys.authenticate(:'noadmin');
SELECT err($$SELECT apikeys.my_create_key('x', '{}')$$);
SELECT err(format('SELECT apikeys.my_revoke_key(%L)', :'set_cid'));
SELECT count(*) AS my_keys_without_read FROM apikeys.my_keys;
ROLLBACK;

-- apikeys:read alone: my_keys lists the owner's keys, nothing can change
BEGIN;
SELECT code FROM apikeys.authenticate(:'reader');
SELECT count(*) > 5 AS lists_own, bool_and(owner = 'ss_acme') AS only_own FROM apikeys.my_keys;
SELECT err($$SELECT apikeys.my_create_key('x', '{}')$$);
SELECT err(format('SELECT apikeys.my_disable_key(%L)', :'set_cid'));
ROLLBACK;

-- The tenant admin key: what it may do --------------------------------------
BEGIN;
SELECT code FROM apikeys.authenticate(:'mgr');
-- a read-only key for an integration: inherits the admin key's expiry
SELECT (k).client_id AS child_cid, (k).token AS child
  FROM (SELECT apikeys.my_create_key('integration', ARRAY['orders:read', 'invoices:read(id)']) k) s \gset
SELECT m.owner, m.scopes, m.expires_at = a.expires_at AS inherits_expiry, m.db_role, m.rate_limit
  FROM apikeys.my_keys m, apikeys.my_keys a
 WHERE m.client_id = :'child_cid' AND a.client_id = :'mgr_cid';
-- a set the admin's scopes cover; sets on both sides are expanded
SELECT (apikeys.my_create_key('by set', ARRAY['@ss_reader'])).client_id IS NOT NULL AS created_by_set;
SELECT apikeys.my_update_key(:'child_cid', name => 'integration (orders)', scopes => ARRAY['orders:read']);
SELECT (apikeys.my_rotate_key(:'child_cid', '1 hour')).token IS NOT NULL AS rotated;
SELECT apikeys.my_disable_key(:'child_cid', 'paused');
SELECT apikeys.my_enable_key(:'child_cid');
SELECT count(*) AS owners_seen FROM (SELECT DISTINCT owner FROM apikeys.my_keys) o;
-- a handoff is refused (0A000): it would send an e-mail and an SMS to
-- addresses of the tenant's choosing (sql/escalation.sql)
SELECT err($$SELECT apikeys.my_create_key('handed off', ARRAY['orders:read'],
                                          contact_email => 'dev@example.com',
                                          contact_phone => '+447894123456', handoff => true)$$);
COMMIT;
-- the child works at once, with its own scopes only
SELECT code FROM apikeys.verify(:'child');
SELECT code, scopes FROM apikeys.verify(:'child', 'invoices:read(id)');
-- audit rows of these changes name the acting key
RESET ROLE;
SELECT event, detail->>'by_key' = :'mgr_cid' AS by_mgr
  FROM apikeys.audit_log WHERE client_id = :'child_cid' ORDER BY id;
SET ROLE regress_verifier;

-- Escalation: a broader scope, *, a wider field list, a later expiry --------
BEGIN;
SELECT code FROM apikeys.authenticate(:'mgr');
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['orders:*'])$$);
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['orders:update'])$$);
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['*'])$$);
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['invoices:read(id,secret,total)'])$$);
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['invoices:read'])$$);
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['invoices:*'])$$);
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['orders:read'], expires_at => now() + interval '45 days')$$);
SELECT err(format('SELECT apikeys.my_update_key(%L, scopes => ARRAY[%L])', :'child_cid', 'orders:*'));
-- a @set whose expansion exceeds the caller's scopes
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['@ss_wide'])$$);
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['@ss_root'])$$);
SELECT err(format('SELECT apikeys.my_update_key(%L, scopes => ARRAY[%L])', :'child_cid', '@ss_wide'));
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['@ss_nosuch'])$$);
-- a sibling the admin could not have made: no rotation (it would learn the
-- secret), no update
SELECT err(format('SELECT apikeys.my_rotate_key(%L)', :'wide_cid'));
SELECT err(format('SELECT apikeys.my_update_key(%L, name => %L)', :'wide_cid', 'x'));
SELECT err(format('SELECT apikeys.my_rotate_key(%L)', :'later_cid'));
-- another db_role
SELECT err(format('SELECT apikeys.my_rotate_key(%L)', :'role_b_cid'));
SELECT err(format('SELECT apikeys.my_update_key(%L, name => %L)', :'role_b_cid', 'x'));
-- another owner's key: as if it did not exist
SELECT err(format('SELECT apikeys.my_update_key(%L, name => %L)', :'globex_cid', 'x'));
SELECT err(format('SELECT apikeys.my_rotate_key(%L)', :'globex_cid'));
SELECT err(format('SELECT apikeys.my_disable_key(%L)', :'globex_cid'));
SELECT err(format('SELECT apikeys.my_enable_key(%L)', :'globex_cid'));
SELECT err(format('SELECT apikeys.my_revoke_key(%L)', :'globex_cid'));
SELECT err(format('SELECT apikeys.my_delete_key(%L)', :'globex_cid'));
SELECT err(format('SELECT apikeys.my_revoke_key(%L)', 'ak_nosuchkey0000000000'));
SELECT err(format('SELECT apikeys.my_revoke_key(%L)', :'globex'));
ROLLBACK;

-- Escalation: apikeys:* from a key holding only apikeys:create --------------
BEGIN;
SELECT code FROM apikeys.authenticate(:'create_only');
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['apikeys:*'])$$);
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['apikeys:update'])$$);
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['apikeys:create', 'orders:read'])$$);
SELECT err(format('SELECT apikeys.my_revoke_key(%L)', :'set_cid'));
SELECT count(*) AS my_keys_create_only FROM apikeys.my_keys;
ROLLBACK;

-- Escalation: another db_role, a higher rate limit, wider networks ----------
BEGIN;
SELECT code FROM apikeys.authenticate(:'limited', client_ip => '10.2.3.4');
-- a child inherits the admin key's role, limit and networks
SET client_min_messages = error;   -- the rate-limit warning (random client ID) without preloading
SELECT (k).client_id AS lchild_cid
  FROM (SELECT apikeys.my_create_key('limited child', ARRAY['orders:read']) k) s \gset
SELECT db_role, rate_limit, rate_window, allowed_cidrs FROM apikeys.my_keys WHERE client_id = :'lchild_cid';
SELECT (apikeys.my_create_key('narrower net', ARRAY['orders:read'], allowed_cidrs => '{10.9.0.0/16}')).client_id IS NOT NULL AS narrower_net;
SET client_min_messages = warning;
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['orders:read'], allowed_cidrs => '{192.168.0.0/16}')$$);
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['orders:read'], allowed_cidrs => '{0.0.0.0/0}')$$);
SELECT err(format('SELECT apikeys.my_update_key(%L, allowed_cidrs => %L)', :'lchild_cid', '{}'));
-- siblings: no limit, a faster one, another role, any network
SELECT err(format('SELECT apikeys.my_rotate_key(%L)', :'role_a_unlimited_cid'));
SELECT err(format('SELECT apikeys.my_rotate_key(%L)', :'role_a_fast_cid'));
SELECT err(format('SELECT apikeys.my_rotate_key(%L)', :'role_b_cid'));
SELECT err(format('SELECT apikeys.my_rotate_key(%L)', :'role_a_anynet_cid'));
SELECT (apikeys.my_rotate_key(:'role_a_slow_cid')).token IS NOT NULL AS slower_sibling_rotated;
ROLLBACK;

-- Escalation: the acting key changed earlier in the same transaction --------
-- (as a superuser session that authenticates and administers in one
-- transaction: the my_* functions re-read the acting key's row)
RESET ROLE;
BEGIN;
SELECT code FROM apikeys.authenticate(:'mgr');
SELECT apikeys.update_key(:'mgr_cid', scopes => ARRAY['orders:read']);
SELECT apikeys.current_client_id() = :'mgr_cid' AS still_authenticated;
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['orders:read'])$$);
SELECT count(*) AS my_keys_after_scope_removed FROM apikeys.my_keys;
ROLLBACK;
BEGIN;
SELECT code FROM apikeys.authenticate(:'mgr');
SELECT apikeys.revoke_key(:'mgr_cid');
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['orders:read'])$$);
ROLLBACK;
BEGIN;
SELECT code FROM apikeys.authenticate(:'mgr');
SELECT apikeys.disable_key(:'mgr_cid');
SELECT err(format('SELECT apikeys.my_revoke_key(%L)', :'child_cid'));
ROLLBACK;
-- the set behind the admin's scopes narrowed in the same transaction
BEGIN;
SELECT code FROM apikeys.authenticate(:'set_tok');
SELECT apikeys.update_key(:'set_cid', scopes => ARRAY['apikeys:create', '@ss_reader']);
SELECT (apikeys.my_create_key('via set', ARRAY['invoices:read(total)'])).client_id IS NOT NULL AS allowed_by_set;
SELECT apikeys.define_scope_set('ss_reader', ARRAY['orders:read']);
SELECT err($$SELECT apikeys.my_create_key('x', ARRAY['invoices:read(total)'])$$);
ROLLBACK;

-- The owner's cap applies (54000), and revoked keys cannot be changed -------
SELECT apikeys.set_owner_policy('ss_globex', max_keys => 2);
SET ROLE regress_verifier;
BEGIN;
SELECT code FROM apikeys.authenticate(:'globex');
SELECT (apikeys.my_create_key('second', ARRAY['orders:read'])).client_id AS g2_cid \gset
SELECT err($$SELECT apikeys.my_create_key('third', ARRAY['orders:read'])$$);
SELECT apikeys.my_revoke_key(:'g2_cid', 'not needed');
SELECT err(format('SELECT apikeys.my_update_key(%L, name => %L)', :'g2_cid', 'x'));
SELECT apikeys.my_delete_key(:'g2_cid');
SELECT err(format('SELECT apikeys.my_revoke_key(%L)', :'g2_cid'));
COMMIT;
RESET ROLE;
SELECT event, detail->>'by_key' = :'globex_cid' AS by_globex_admin
  FROM apikeys.audit_log WHERE client_id = :'g2_cid' ORDER BY id;

-- a my_* call that failed after naming its key leaves no name behind
SELECT apikeys.set_owner_policy('ss_globex', max_keys => 1);
BEGIN;
SELECT code FROM apikeys.authenticate(:'globex');
SELECT err($$SELECT apikeys.my_create_key('over the cap', ARRAY['orders:read'])$$);
SELECT (apikeys.create_key('ss_acme', 'by an admin', '{}')).client_id AS admin_made \gset
SELECT detail ? 'by_key' AS names_a_key FROM apikeys.audit_log WHERE client_id = :'admin_made';
ROLLBACK;

-- Clean up what this file made
SELECT count(*) > 0 AS deleted FROM apikeys.keys k, LATERAL apikeys.delete_key(k.client_id)
 WHERE k.owner IN ('ss_acme', 'ss_globex');
SELECT apikeys.drop_scope_set(name) FROM apikeys.scope_sets ORDER BY name;
DROP ROLE regress_ss_role_a;
DROP ROLE regress_ss_role_b;
RESET client_min_messages;
