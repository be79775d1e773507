\i test/setup.sql
--
-- probefix3: the third outside probe's breaks (/work/probe-out3), each at
-- the rule that owns it:
--   1. a tenant never mints credits (_check_grant): a key with credits
--      cannot set a balance above 0 (its own included), and gives a new
--      key at most what it has left now;
--   2. every balance set is audited (update_key, _keys_audit_trigger),
--      also when it equals the last balance set;
--   3. pre_request takes no derived token from Authorization: Basic;
--   4. an invalid scope that may be a credential is not quoted in errors
--      (nor a derived token given as a client ID);
--   5. import_key refuses a token verification would not look up as
--      legacy (TokenClassify);
--   6. add_credits near the bigint maximum: 22023, nothing written.
--
SET client_min_messages = warning;
SELECT apikeys.set_owner_policy('pf3_t', max_keys => 100);

-- 1. No credits minted through self-service ------------------------------------
SET ROLE regress_admin;
SELECT client_id AS m_cid, token AS m_tok
  FROM apikeys.create_key('pf3_t', 'manager', ARRAY['apikeys:*', 'api:read'],
                          credits => 100, refill_amount => 100, refill_every => '30 days') \gset
RESET ROLE;
SET ROLE regress_verifier;
-- the manager spends 98 of its 100 credits, authenticate one more
SELECT count(*) FILTER (WHERE (v).code = 'VALID') AS spent
  FROM (SELECT apikeys.verify(:'m_tok', 'api:read') v FROM generate_series(1, 98) OFFSET 0) s;
BEGIN;
SELECT code, credits_remaining FROM apikeys.authenticate(:'m_tok');
-- it cannot refill itself (the probe's break: 1 -> 100), not even to what it holds
SELECT err(format('SELECT apikeys.my_update_key(%L, credits => 100)', :'m_cid'));
SELECT err(format('SELECT apikeys.my_update_key(%L, credits => 1)', :'m_cid'));
-- a new key gets at most what it has left: 50 refused, none given inherits 1
SELECT err($$SELECT apikeys.my_create_key('c50', ARRAY['api:read'], credits => 50)$$);
SELECT client_id AS c_cid, token AS c_tok
  FROM apikeys.my_create_key('child', ARRAY['api:read']) \gset
COMMIT;
RESET ROLE;
SELECT name, credits, refill_amount, refill_every FROM apikeys.keys
 WHERE owner = 'pf3_t' AND name IN ('c50', 'child') ORDER BY name;
SET ROLE regress_verifier;
-- the child spends its one credit; its manager cannot give it more, only 0
SELECT code, credits_remaining FROM apikeys.verify(:'c_tok', 'api:read');
BEGIN;
SELECT code FROM apikeys.authenticate(:'m_tok');
SELECT err(format('SELECT apikeys.my_update_key(%L, credits => 1)', :'c_cid'));
SELECT err(format('SELECT apikeys.my_update_key(%L, credits => 0)', :'c_cid'));
-- still within its power: an exhausted manager disables its child
SELECT err(format('SELECT apikeys.my_disable_key(%L)', :'c_cid'));
COMMIT;
-- the manager spent its last credit on authenticate: no more
SELECT code, credits_remaining FROM apikeys.verify(:'m_tok', 'api:read');
RESET ROLE;
-- a manager without credits still gives and sets balances freely
SET ROLE regress_admin;
SELECT token AS f_tok FROM apikeys.create_key('pf3_t', 'free manager', ARRAY['apikeys:*', 'api:read']) \gset
RESET ROLE;
SET ROLE regress_verifier;
BEGIN;
SELECT code FROM apikeys.authenticate(:'f_tok');
SELECT err(format('SELECT apikeys.my_update_key(%L, credits => 500)', :'c_cid'));
COMMIT;
RESET ROLE;
SELECT apikeys_internal._credits_balance(:'c_cid') AS child_balance;

-- 2. Every balance set is audited ----------------------------------------------
SET ROLE regress_admin;
SELECT client_id AS a_cid, token AS a_tok
  FROM apikeys.create_key('pf3_t', 'audited', ARRAY['api:read'], credits => 10) \gset
SELECT code, credits_remaining FROM apikeys.verify(:'a_tok', 'api:read');
-- 10 again (keys.credits is still 10): the live 9 is replaced, so audited
SELECT apikeys.update_key(:'a_cid', credits => 10);
SELECT apikeys.update_key(:'a_cid', credits => 11);
-- an update that changes nothing writes nothing
SELECT apikeys.update_key(:'a_cid');
RESET ROLE;
SELECT event, detail -> 'changes' AS changes FROM apikeys.audit_log
 WHERE client_id = :'a_cid' AND event = 'updated' ORDER BY id;
SELECT count(*) AS outbox_rows FROM apikeys.outbox
 WHERE client_id = :'a_cid' AND event = 'updated';
-- the self-service refill of the child above is audited too, by its actor
SELECT detail -> 'changes' AS changes FROM apikeys.audit_log
 WHERE client_id = :'c_cid' AND event = 'updated' AND detail ? 'changes'
   AND detail -> 'changes' ? 'credits' ORDER BY id;

-- 3. No derived token from Authorization: Basic --------------------------------
SET ROLE regress_admin;
SELECT token AS d_tok FROM apikeys.create_key('pf3_t', 'deriver', ARRAY['api:read']) \gset
RESET ROLE;
SET ROLE regress_verifier;
BEGIN;
SELECT code FROM apikeys.authenticate(:'d_tok');
SELECT apikeys.derive_token(ARRAY['api:read']) AS dt \gset
COMMIT;
BEGIN;
SELECT set_config('request.headers', json_build_object('x-api-key', :'dt')::text, true) IS NOT NULL AS headers_set;
SELECT err('SELECT apikeys.pre_request()') AS x_api_key;
ROLLBACK;
BEGIN;
SELECT set_config('request.headers', json_build_object('authorization',
    'Basic ' || translate(encode(convert_to(:'dt' || ':', 'UTF8'), 'base64'), E'\n', ''))::text, true) IS NOT NULL AS headers_set;
SELECT err('SELECT apikeys.pre_request()') AS basic_token_colon;
SELECT apikeys.current_client_id() IS NULL AS anonymous;
ROLLBACK;
BEGIN;
SELECT set_config('request.headers', json_build_object('authorization',
    'Basic ' || translate(encode(convert_to(':' || :'dt', 'UTF8'), 'base64'), E'\n', ''))::text, true) IS NOT NULL AS headers_set;
SELECT err('SELECT apikeys.pre_request()') AS basic_colon_token;
ROLLBACK;
-- a native token as Basic's user name still works
BEGIN;
SELECT set_config('request.headers', json_build_object('authorization',
    'Basic ' || translate(encode(convert_to(:'d_tok' || ':', 'UTF8'), 'base64'), E'\n', ''))::text, true) IS NOT NULL AS headers_set;
SELECT err('SELECT apikeys.pre_request()') AS basic_native;
ROLLBACK;

-- 4. No credential in an invalid-scope error -----------------------------------
-- swapped arguments, a derived token as a scope, a cast: not quoted
SELECT position(:'d_tok' IN e) = 0 AS no_token, e
  FROM err(format('SELECT apikeys.verify(%L, %L)', 'api:read', :'d_tok')) e;
SELECT position(split_part(:'dt', '.', 4) IN e) = 0 AS no_signature, e
  FROM err(format('SELECT apikeys.verify(%L, %L)', 'api:read', :'dt')) e;
SELECT position('0123456789abcdef0123456789abcdef' IN e) = 0 AS no_hex_key, e
  FROM err($$SELECT 'sk_live:0123456789abcdef0123456789abcdef'::apikeys.scope$$) e;
BEGIN;
SELECT code FROM apikeys.authenticate(:'d_tok');
SELECT position(:'d_tok' IN e) = 0 AS no_token, e
  FROM err(format('SELECT apikeys.derive_token(ARRAY[%L])', :'d_tok')) e;
ROLLBACK;
-- what looks like a scope is still quoted
SELECT err($$SELECT 'Api:Read'::apikeys.scope$$);
SELECT err($$SELECT 'orders:read(id,'::apikeys.scope$$);
RESET ROLE;
-- a derived token where a client ID belongs: not quoted either
SET ROLE regress_admin;
SELECT position(split_part(:'dt', '.', 4) IN e) = 0 AS no_signature, e
  FROM err(format('SELECT apikeys.disable_key(%L)', :'dt')) e;
-- nor a legacy token or a hex key; a value shaped like a client ID is quoted
SELECT err($$SELECT apikeys.disable_key('sk.live.0123456789abcdef')$$);
SELECT err($$SELECT apikeys.update_key('0123456789abcdef0123456789abcdef', name => 'x')$$);
SELECT err($$SELECT apikeys.disable_key('ak_AAAAAAAAAAAAAAAA')$$);
RESET ROLE;
SET ROLE regress_verifier;
BEGIN;
SELECT code FROM apikeys.authenticate(:'f_tok');
SELECT err($$SELECT apikeys.my_disable_key('sk.live.0123456789abcdef')$$);
ROLLBACK;
RESET ROLE;

-- 5. import_key takes only what verification looks up as legacy ----------------
SET ROLE regress_admin;
SELECT err($$SELECT apikeys.import_key('pf3_t', 'dt shaped', '{}', token => 'zz_AAAAAAAAAAAAAAAA.dt1.AAAA.BBBB')$$);
SELECT apikeys.import_key('pf3_t', 'dotted', '{api:read}', token => 'abc.dt1.def.ghi') IS NOT NULL AS imported;
SELECT code FROM apikeys.verify('abc.dt1.def.ghi', 'api:read');
RESET ROLE;
SELECT count(*) AS dt_shaped_imported FROM apikeys.keys WHERE owner = 'pf3_t' AND name = 'dt shaped';
-- later tests count imported keys: none left behind
SELECT apikeys.delete_key(client_id) FROM apikeys.keys WHERE owner = 'pf3_t' AND hash_alg = 'l';

-- 6. add_credits near the bigint maximum: 22023, nothing written ---------------
SET ROLE regress_admin;
SELECT err(format('SELECT apikeys.add_credits(%L, 9223372036854775800)', :'a_cid'));
SELECT err(format('SELECT apikeys.add_credits(%L, 9223372036854775807)', :'a_cid'));
RESET ROLE;
SELECT credits, credits_added FROM apikeys.keys WHERE client_id = :'a_cid';
SELECT count(*) AS credits_added_rows FROM apikeys.audit_log
 WHERE client_id = :'a_cid' AND event = 'credits_added';
