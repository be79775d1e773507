\i test/setup.sql
--
-- postgrest_tenant: what examples/postgrest/setup.sql serves to a tenant
-- and an integrator: every my_* function, my_keys with all its columns,
-- and claim_key for the secret handoff, each through the api.* wrapper
-- PostgREST calls, with the HTTP status each refusal carries.  Requests
-- are replayed as PostgREST makes them (request.headers, pre_request, then
-- the function, as anon), in the style of sql/postgrest.sql.
--
\set ECHO none
SET client_min_messages = warning;
\o /dev/null
\i examples/postgrest/setup.sql
\o
RESET client_min_messages;
\set ECHO all

SELECT apikeys.set_owner_policy('tenant_acme', max_keys => 10);
SET ROLE regress_admin;
SELECT (k).token AS console
  FROM (SELECT apikeys.create_key('tenant_acme', 'acme console', ARRAY['apikeys:*', 'expenses:read']) k) s \gset
SELECT (k).client_id AS other_cid
  FROM (SELECT apikeys.create_key('tenant_globex', 'globex books', ARRAY['expenses:read']) k) s \gset
RESET ROLE;
SELECT json_build_object('x-api-key', :'console')::text AS h_console,
       json_build_object('accept', '*/*')::text AS h_none \gset

-- request(headers): what PostgREST does before the function runs
PREPARE request(text) AS
SELECT set_config('role', 'anon', true), set_config('request.headers', $1, true);

-- Everything the example serves is there
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args
  FROM pg_proc p WHERE p.pronamespace = 'api'::regnamespace ORDER BY 1;
SELECT (SELECT array_agg(attname ORDER BY attnum) FROM pg_attribute
         WHERE attrelid = 'api.my_keys'::regclass AND attnum > 0)
     = (SELECT array_agg(attname ORDER BY attnum) FROM pg_attribute
         WHERE attrelid = 'apikeys.my_keys'::regclass AND attnum > 0) AS my_keys_has_every_column;

SET SESSION AUTHORIZATION authenticator;
-- POST /rpc/my_create_key with every argument
BEGIN;
EXECUTE request(:'h_console') \gset
SELECT apikeys.pre_request();
SELECT (k).client_id AS child_cid, (k).token ~ '^ak_' AS child_has_token
  FROM (SELECT api.my_create_key('integration', ARRAY['expenses:read'], now() + interval '30 days',
                                 'nightly export', 'ops@example.com', '+447894123456',
                                 '{192.0.2.0/24}', '{"team": "books"}') k) s \gset
COMMIT;
SELECT :'child_has_token' AS child_has_token;
-- POST /rpc/my_update_key, my_disable_key, my_enable_key, my_rotate_key
BEGIN;
EXECUTE request(:'h_console') \gset
SELECT apikeys.pre_request();
SELECT api.my_update_key(:'child_cid', name => 'integration v2', metadata => '{"team": "ledger"}');
SELECT api.my_disable_key(:'child_cid', 'pausing');
SELECT status FROM api.my_keys WHERE client_id = :'child_cid';
SELECT api.my_enable_key(:'child_cid');
SELECT (api.my_rotate_key(:'child_cid', '1 hour')).token ~ '^ak_' AS rotated;
-- GET /my_keys: every column, this tenant's keys only
SELECT name, scopes, status, description, contact_email, allowed_cidrs, metadata
  FROM api.my_keys ORDER BY name;
COMMIT;
-- Refusals, with the HTTP status in the PGRST detail
BEGIN;
EXECUTE request(:'h_console') \gset
SELECT apikeys.pre_request();
SELECT err(format('SELECT api.my_update_key(%L, scopes => %L)', :'child_cid', '{expenses:*}')) AS wider_scope;
SELECT err(format('SELECT api.my_disable_key(%L)', :'other_cid')) AS other_owner;
SELECT err(format('SELECT api.my_update_key(%L, scopes => %L)', :'child_cid', '{"not a scope"}')) AS invalid_input;
COMMIT;
BEGIN;
EXECUTE request(:'h_none') \gset
SELECT apikeys.pre_request();
SELECT err(format('SELECT api.my_delete_key(%L)', :'child_cid')) AS no_key;
SELECT count(*) AS my_keys_without_a_key FROM api.my_keys;
COMMIT;
-- POST /rpc/my_revoke_key, then /rpc/my_delete_key
BEGIN;
EXECUTE request(:'h_console') \gset
SELECT apikeys.pre_request();
SELECT api.my_revoke_key(:'child_cid', 'retired');
SELECT err(format('SELECT api.my_enable_key(%L)', :'child_cid')) AS enable_revoked;
SELECT api.my_delete_key(:'child_cid');
SELECT count(*) AS child_left FROM api.my_keys WHERE client_id = :'child_cid';
COMMIT;

-- The secret handoff through the API: a tenant key cannot start one (it
-- would send e-mail and SMS to addresses of its choosing: refused, 0A000);
-- the platform's admin does, and the integrator claims it with the link's
-- token and the SMS code, once, with no key of its own.
BEGIN;
EXECUTE request(:'h_console') \gset
SELECT apikeys.pre_request();
SELECT err($$SELECT api.my_create_key('handed over', ARRAY['expenses:read'],
                                 contact_email => 'dev@example.com', contact_phone => '+15555550100',
                                 handoff => true)$$) AS tenant_handoff_refused;
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT (k).client_id AS handoff_cid, (k).token IS NULL AS no_token_in_answer
  FROM (SELECT apikeys.create_key('tenant_acme', 'handed over', ARRAY['expenses:read'],
                                  contact_email => 'dev@example.com', contact_phone => '+15555550100',
                                  handoff => true) k) s \gset
SELECT :'no_token_in_answer' AS no_token_in_answer;
RESET SESSION AUTHORIZATION;
-- what the delivery worker would send (superuser reads the outbox here)
SELECT (SELECT payload->>'claim_token' FROM apikeys.outbox
         WHERE client_id = :'handoff_cid' AND event = 'handoff_link') AS claim_token,
       (SELECT payload->>'code' FROM apikeys.outbox
         WHERE client_id = :'handoff_cid' AND event = 'handoff_code') AS claim_code \gset
SET SESSION AUTHORIZATION authenticator;
BEGIN;
EXECUTE request(:'h_none') \gset
SELECT apikeys.pre_request();
SELECT err(format('SELECT api.claim_key(%L, %L)', :'claim_token', '000000')) AS wrong_code;
COMMIT;
BEGIN;
EXECUTE request(:'h_none') \gset
SELECT apikeys.pre_request();
SELECT (k).client_id = :'handoff_cid' AS same_key, (k).token ~ '^ak_' AS claimed_token
  FROM api.claim_key(:'claim_token', :'claim_code') k;
COMMIT;
BEGIN;
EXECUTE request(:'h_none') \gset
SELECT apikeys.pre_request();
SELECT err(format('SELECT api.claim_key(%L, %L)', :'claim_token', :'claim_code')) AS claimed_twice;
COMMIT;
RESET SESSION AUTHORIZATION;

-- clean up the example
DROP SCHEMA api, api_auth CASCADE;
REVOKE apikeys_verifier FROM api_user;
DELETE FROM apikeys.protected_tables WHERE tbl::text LIKE 'api.%' OR tbl::text ~ '^[0-9]+$';
REVOKE apikeys_verifier FROM anon;
DROP ROLE authenticator, anon, api_user;
