\i test/setup.sql
--
-- postgrest: replays, statement by statement, what PostgREST sends for a
-- request with db-pre-request = "apikeys.pre_request", against the example
-- in examples/postgrest/setup.sql (which this test runs, so it cannot rot).
--
SELECT current_user AS superuser \gset
\o /dev/null
\i examples/postgrest/setup.sql
\o
INSERT INTO api.expenses (owner, spent_on, category, description, amount, public) VALUES
    ('acme',   '2026-01-10', 'travel', 'Train to Leeds',    54.20, false),
    ('acme',   '2026-01-12', 'meals',  'Team lunch',        80.00, true),
    ('globex', '2026-01-11', 'office', 'Paper',             12.50, false),
    ('globex', '2026-01-15', 'travel', 'Conference flight', 300.00, true);

-- Keys (random values stay in psql variables).
SET ROLE regress_admin;
SELECT (k).client_id AS acme_cid, (k).client_secret AS acme_secret, (k).token AS acme
  FROM (SELECT apikeys.create_key('acme', 'acme books', ARRAY['expenses:read', 'expenses:create'],
                                  db_role => 'api_user') AS k) s \gset
SELECT (k).token AS acme_ro
  FROM (SELECT apikeys.create_key('acme', 'acme read-only', ARRAY['expenses:read'],
                                  db_role => 'api_user') AS k) s \gset
SELECT (k).token AS acme_cats
  FROM (SELECT apikeys.create_key('acme', 'acme categories', ARRAY['categories:read']) AS k) s \gset
SELECT (k).token AS acme_net
  FROM (SELECT apikeys.create_key('acme', 'acme office', ARRAY['expenses:read'],
                                  allowed_cidrs => '{203.0.113.0/24}') AS k) s \gset
SELECT (k).token AS acme_foreign_role
  FROM (SELECT apikeys.create_key('acme', 'acme foreign role', ARRAY['expenses:read'],
                                  db_role => 'regress_nobody') AS k) s \gset
SELECT (k).token AS globex
  FROM (SELECT apikeys.create_key('globex', 'globex books', ARRAY['expenses:*'],
                                  db_role => 'api_user') AS k) s \gset
SELECT (k).client_id AS old_cid, (k).token AS old_tok
  FROM (SELECT apikeys.create_key('initech', 'rotated', ARRAY['expenses:read']) AS k) s \gset
SELECT apikeys.rotate_key(:'old_cid') IS NOT NULL AS rotated;
SELECT (k).client_id AS dis_cid, (k).token AS dis_tok
  FROM (SELECT apikeys.create_key('initech', 'disabled', ARRAY['expenses:read']) AS k) s \gset
SELECT apikeys.disable_key(:'dis_cid');
SELECT (k).client_id AS rev_cid, (k).token AS rev_tok
  FROM (SELECT apikeys.create_key('initech', 'revoked', ARRAY['expenses:read']) AS k) s \gset
SELECT apikeys.revoke_key(:'rev_cid');
SELECT (k).client_id AS exp_cid, (k).token AS exp_tok
  FROM (SELECT apikeys.create_key('initech', 'expired', ARRAY['expenses:read']) AS k) s \gset
RESET ROLE;
UPDATE apikeys.keys SET expires_at = now() - interval '1 minute' WHERE client_id = :'exp_cid';

-- request.headers as PostgREST builds it: a JSON object, lower-case names.
SELECT json_build_object('accept', '*/*', 'host', 'localhost:3000', 'user-agent', 'curl/8.4.0')::text AS h_none,
       json_build_object('accept', '*/*', 'host', 'localhost:3000', 'x-api-key', :'acme')::text AS h_acme,
       json_build_object('accept', '*/*', 'apikey', :'acme')::text AS h_acme_apikey,
       json_build_object('accept', '*/*', 'authorization',
           'Basic ' || replace(encode(convert_to(:'acme_cid' || ':' || :'acme_secret', 'UTF8'), 'base64'), E'\n', ''))::text AS h_basic,
       json_build_object('accept', '*/*', 'authorization',
           'Basic ' || replace(encode(convert_to(:'acme_cid' || ':' || reverse(:'acme_secret'), 'UTF8'), 'base64'), E'\n', ''))::text AS h_basic_bad,
       json_build_object('accept', '*/*', 'x-api-key', :'acme_ro')::text AS h_acme_ro,
       json_build_object('accept', '*/*', 'x-api-key', :'acme_cats')::text AS h_acme_cats,
       json_build_object('accept', '*/*', 'x-api-key', :'globex')::text AS h_globex,
       json_build_object('accept', '*/*', 'x-api-key', 'ak_not_a_real_key')::text AS h_malformed,
       json_build_object('accept', '*/*', 'x-api-key', :'old_tok')::text AS h_rotated,
       json_build_object('accept', '*/*', 'x-api-key', :'dis_tok')::text AS h_disabled,
       json_build_object('accept', '*/*', 'x-api-key', :'rev_tok')::text AS h_revoked,
       json_build_object('accept', '*/*', 'x-api-key', :'exp_tok')::text AS h_expired,
       json_build_object('accept', '*/*', 'x-api-key', :'acme_net', 'x-forwarded-for', '10.0.0.1, 203.0.113.9')::text AS h_xff_in,
       json_build_object('accept', '*/*', 'x-api-key', :'acme_net', 'x-forwarded-for', '198.51.100.1')::text AS h_xff_out,
       json_build_object('accept', '*/*', 'x-api-key', :'acme_net', 'x-forwarded-for', 'unknown')::text AS h_xff_junk,
       json_build_object('accept', '*/*', 'x-api-key', :'acme_net')::text AS h_net,
       json_build_object('accept', '*/*', 'authorization', 'Bearer ' || :'acme')::text AS h_bearer,
       json_build_object('accept', '*/*', 'authorization', 'Basic !!not-base64!!')::text AS h_basic_junk,
       json_build_object('accept', '*/*', 'authorization',
           'Basic ' || encode(convert_to('no colon here', 'UTF8'), 'base64'))::text AS h_basic_nocolon,
       json_build_object('accept', '*/*', 'authorization',
           'basic ' || replace(encode(convert_to(:'acme_cid' || ':' || :'acme_secret', 'UTF8'), 'base64'), E'\n', ''),
           'x-api-key', :'globex')::text AS h_both,
       json_build_object('accept', '*/*', 'apikey', :'acme', 'x-api-key', :'globex')::text AS h_xapi_apikey,
       json_build_object('accept', '*/*', 'x-api-key', :'acme_foreign_role')::text AS h_foreign_role
\gset

-- Everything below runs as PostgREST's login role (a fresh session whose
-- session user is authenticator; SET SESSION AUTHORIZATION rather than a
-- login, so that installcheck passes under peer authentication too).
\c -
SET SESSION AUTHORIZATION authenticator;
-- PostgREST's statements, prepared as it prepares them (extended protocol).
-- 1. the transaction settings, one SELECT, in this order:
PREPARE pgrst_config(text, text, text) AS
SELECT set_config('search_path', '"api", "public"', true),
       set_config('role', 'anon', true),
       set_config('request.jwt.claims', '{"role":"anon"}', true),
       set_config('request.method', $1, true),
       set_config('request.path', $2, true),
       set_config('request.headers', $3, true),
       set_config('request.cookies', '{}', true);
-- The statements below name api.expenses: PostgREST prepares them after
-- switching to anon (authenticator alone may not even look into api).
BEGIN;
SET LOCAL ROLE anon;
-- 2. GET /expenses?order=id
PREPARE get_expenses AS
WITH pgrst_source AS (SELECT "api"."expenses".* FROM "api"."expenses" ORDER BY "expenses"."id")
SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total,
       coalesce(json_agg(_postgrest_t), '[]') AS body,
       nullif(current_setting('response.headers', true), '') AS response_headers,
       nullif(current_setting('response.status', true), '') AS response_status
  FROM (SELECT "id", "owner", "description", "amount", "public" FROM pgrst_source) _postgrest_t;
-- 3. GET /expenses?id=eq.$1
PREPARE get_expense(bigint) AS
WITH pgrst_source AS (SELECT "api"."expenses".* FROM "api"."expenses" WHERE "api"."expenses"."id" = $1)
SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total,
       coalesce(json_agg(_postgrest_t), '[]') AS body
  FROM (SELECT "id", "owner", "description" FROM pgrst_source) _postgrest_t;
-- 4. POST /expenses with Prefer: return=representation
PREPARE post_expense(json) AS
WITH pgrst_source AS (
    INSERT INTO "api"."expenses"("amount", "category", "description", "spent_on")
    SELECT "pgrst_body"."amount", "pgrst_body"."category", "pgrst_body"."description", "pgrst_body"."spent_on"
      FROM (SELECT $1 AS json_data) pgrst_payload,
           LATERAL (SELECT "amount", "category", "description", "spent_on"
                      FROM json_to_record(pgrst_payload.json_data)
                           AS _("amount" numeric, "category" text, "description" text, "spent_on" date)) pgrst_body
    RETURNING "api"."expenses".*)
SELECT '' AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, array[]::text[] AS header,
       coalesce(json_agg(_postgrest_t), '[]') AS body
  FROM (SELECT "id", "owner", "description", "amount" FROM "pgrst_source") _postgrest_t;
-- 5. POST /expenses with an owner in the body
PREPARE post_expense_owner(json) AS
WITH pgrst_source AS (
    INSERT INTO "api"."expenses"("amount", "category", "description", "owner")
    SELECT "pgrst_body"."amount", "pgrst_body"."category", "pgrst_body"."description", "pgrst_body"."owner"
      FROM (SELECT $1 AS json_data) pgrst_payload,
           LATERAL (SELECT "amount", "category", "description", "owner"
                      FROM json_to_record(pgrst_payload.json_data)
                           AS _("amount" numeric, "category" text, "description" text, "owner" text)) pgrst_body
    RETURNING 1)
SELECT '' AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total
  FROM (SELECT 1 FROM "pgrst_source") _postgrest_t;
-- who_am_i: what the rest of the request runs as (not sent by PostgREST)
PREPARE who_am_i AS
SELECT current_user, apikeys.current_owner() AS owner,
       nullif(current_setting('request.headers', true), '')::jsonb AS headers_left;
COMMIT;

-- GET /expenses, no key: anonymous, public rows only
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_none') \gset cfg_
SELECT apikeys.pre_request();
EXECUTE who_am_i;
EXECUTE get_expenses;
COMMIT;

-- GET /expenses, acme's key in x-api-key: acme's rows and public rows, as
-- the key's db_role; the key is gone from request.headers
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_acme') \gset cfg_
SELECT apikeys.pre_request();
EXECUTE who_am_i;
EXECUTE get_expenses;
COMMIT;

-- the next transaction on the same connection has no identity
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE who_am_i;
COMMIT;

-- GET /expenses?id=eq.3: globex's private row, asked for by acme: never visible
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_acme') \gset cfg_
SELECT apikeys.pre_request();
EXECUTE get_expense(3);
COMMIT;
-- and by globex: its own
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_globex') \gset cfg_
SELECT apikeys.pre_request();
EXECUTE get_expense(3);
EXECUTE get_expenses;
COMMIT;

-- the apikey header, and Authorization: Basic base64(client_id:client_secret)
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_acme_apikey') \gset cfg_
SELECT apikeys.pre_request();
EXECUTE who_am_i;
COMMIT;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_basic') \gset cfg_
SELECT apikeys.pre_request();
EXECUTE who_am_i;
EXECUTE get_expense(1);
COMMIT;

-- A whole token in Basic (probe round 2, #16): as the user name with an
-- empty password (Stripe's "token:") or as the password (":token"); an
-- imported legacy token too, through the same entry as x-api-key.
RESET SESSION AUTHORIZATION;
SET ROLE regress_admin;
SELECT apikeys.import_key('umbrella', 'umbrella legacy', ARRAY['expenses:read'], token => 'acme-legacy-T0K3N',
                          db_role => 'api_user') AS legacy_cid \gset
RESET ROLE;
SET SESSION AUTHORIZATION authenticator;
SELECT json_build_object('accept', '*/*', 'authorization', 'Basic ' || replace(encode(convert_to(
           'acme-legacy-T0K3N:', 'UTF8'), 'base64'), E'\n', ''))::text AS h_b_legacy_user,
       json_build_object('accept', '*/*', 'authorization', 'Basic ' || replace(encode(convert_to(
           ':acme-legacy-T0K3N', 'UTF8'), 'base64'), E'\n', ''))::text AS h_b_legacy_pass,
       json_build_object('accept', '*/*', 'authorization', 'Basic ' || replace(encode(convert_to(
           :'acme' || ':', 'UTF8'), 'base64'), E'\n', ''))::text AS h_b_native_user,
       json_build_object('accept', '*/*', 'authorization', 'Basic ' || replace(encode(convert_to(
           ':' || :'acme', 'UTF8'), 'base64'), E'\n', ''))::text AS h_b_native_pass,
       json_build_object('accept', '*/*', 'authorization', 'Basic ' || replace(encode(convert_to(
           :'legacy_cid' || ':acme-legacy-T0K3N', 'UTF8'), 'base64'), E'\n', ''))::text AS h_b_id_legacy,
       json_build_object('accept', '*/*', 'authorization', 'Basic ' || replace(encode(convert_to(
           'acme-legacy-T0K3X:', 'UTF8'), 'base64'), E'\n', ''))::text AS h_b_wrong_user
\gset
-- the legacy token as the user name: its key, as api_user, Authorization scrubbed
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_b_legacy_user') \gset cfg_
SELECT apikeys.pre_request();
EXECUTE who_am_i;
SELECT apikeys.current_client_id() = :'legacy_cid' AS legacy_key;
COMMIT;
-- ... as the password
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_b_legacy_pass') \gset cfg_
SELECT apikeys.pre_request();
EXECUTE who_am_i;
SELECT apikeys.current_client_id() = :'legacy_cid' AS legacy_key;
COMMIT;
-- an apikeys token in either place
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_b_native_user') \gset cfg_
SELECT apikeys.pre_request();
SELECT apikeys.current_client_id() = :'acme_cid' AS acme_key;
COMMIT;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_b_native_pass') \gset cfg_
SELECT apikeys.pre_request();
SELECT apikeys.current_client_id() = :'acme_cid' AS acme_key;
COMMIT;
-- a client ID with a legacy token is a client ID and secret pair: not one
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_b_id_legacy') \gset cfg_
SELECT apikeys.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;
-- a wrong legacy token: NOT_FOUND (imports exist), 401
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_b_wrong_user') \gset cfg_
SELECT apikeys.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;
-- the legacy key goes again, so that junk below stays MALFORMED (no imports)
RESET SESSION AUTHORIZATION;
DELETE FROM apikeys.keys WHERE client_id = :'legacy_cid';
SET SESSION AUTHORIZATION authenticator;

-- Bearer is PostgREST's JWT: pre_request never reads it (anonymous here)
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_bearer') \gset cfg_
SELECT apikeys.pre_request();
SELECT current_user, apikeys.current_owner() IS NULL AS anonymous;
COMMIT;
-- x-api-key wins over Basic, and both credentials are scrubbed: globex's
-- token in x-api-key, acme's pair in Basic (sent first): the owner is globex
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_both') \gset cfg_
SELECT apikeys.pre_request();
EXECUTE who_am_i;
COMMIT;
-- x-api-key wins over apikey: globex's in x-api-key, acme's in apikey
-- (sent first); both headers are scrubbed
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_xapi_apikey') \gset cfg_
SELECT apikeys.pre_request();
EXECUTE who_am_i;
COMMIT;
-- a key whose db_role authenticator may not switch to: the request fails
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_foreign_role') \gset cfg_
SELECT apikeys.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;

-- Unusable keys: SQLSTATE PGRST; PostgREST answers with the status and
-- headers of the detail (401 + WWW-Authenticate).
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_basic_bad') \gset cfg_
SELECT apikeys.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_basic_junk') \gset cfg_
SELECT apikeys.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_basic_nocolon') \gset cfg_
SELECT apikeys.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_malformed') \gset cfg_
SELECT apikeys.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_rotated') \gset cfg_
SELECT apikeys.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_disabled') \gset cfg_
SELECT apikeys.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_revoked') \gset cfg_
SELECT apikeys.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_expired') \gset cfg_
SELECT apikeys.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;
-- after an error, too, the connection is anonymous again
EXECUTE who_am_i;

-- Wrong scope.  pre_request() alone leaves rows to RLS: a key without
-- expenses:read sees only public rows ...
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_acme_cats') \gset cfg_
SELECT apikeys.pre_request();
EXECUTE get_expenses;
COMMIT;
-- ... while pre_request(required_scope), called by the example's
-- db-pre-request wrapper api_auth.pre_request() that maps method and path
-- to a scope, answers 403.
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_acme_cats') \gset cfg_
SELECT api_auth.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/categories', :'h_acme_cats') \gset cfg_
SELECT api_auth.pre_request();
EXECUTE who_am_i;
COMMIT;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_acme') \gset cfg_
SELECT api_auth.pre_request();
EXECUTE who_am_i;
EXECUTE get_expense(1);
COMMIT;
-- with no key the scope is not asked for: anonymous, public rows
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_none') \gset cfg_
SELECT apikeys.pre_request('expenses:read');
EXECUTE get_expense(2);
COMMIT;

-- POST /expenses with expenses:create: the row is acme's (owner defaults
-- to apikeys.current_owner())
BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE;
EXECUTE pgrst_config('POST', '/expenses', :'h_acme') \gset cfg_
SELECT apikeys.pre_request();
EXECUTE post_expense('{"spent_on":"2026-02-01","category":"meals","description":"Client dinner","amount":120.5}');
COMMIT;
-- ... but not for another owner (WITH CHECK): PostgREST gets 42501
BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE;
EXECUTE pgrst_config('POST', '/expenses', :'h_acme') \gset cfg_
SELECT apikeys.pre_request();
EXECUTE post_expense_owner('{"category":"meals","description":"Planted","amount":1,"owner":"globex"}');
\echo :LAST_ERROR_SQLSTATE
ABORT;
-- POST without expenses:create: refused by RLS (42501) ...
BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE;
EXECUTE pgrst_config('POST', '/expenses', :'h_acme_ro') \gset cfg_
SELECT apikeys.pre_request();
EXECUTE post_expense('{"category":"meals","description":"Not allowed","amount":2}');
\echo :LAST_ERROR_SQLSTATE
ABORT;
-- ... or up front with 403 by the scope-checking wrapper
BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE;
EXECUTE pgrst_config('POST', '/expenses', :'h_acme_ro') \gset cfg_
SELECT api_auth.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;
-- anonymous POST: anon has no INSERT privilege at all
BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE;
EXECUTE pgrst_config('POST', '/expenses', :'h_none') \gset cfg_
SELECT apikeys.pre_request();
EXECUTE post_expense('{"category":"meals","description":"Anonymous","amount":3}');
\echo :LAST_ERROR_SQLSTATE
ABORT;

-- Client address.  Over a unix socket no address is known, so a key with
-- allowed_cidrs fails closed (403); X-Forwarded-For is ignored unless
-- apikeys.trust_forwarded_for is on.
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_net') \gset cfg_
SELECT apikeys.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_xff_in') \gset cfg_
SELECT apikeys.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;

-- apikeys.trust_forwarded_for is superuser-only (set in postgresql.conf
-- for the authenticator's database); here: set, then become authenticator.
-- The client is the rightmost entry (the one the proxy appended); an entry
-- that is no address answers 400 (sql/forwarded.sql has every form).
\c -
SET apikeys.trust_forwarded_for = on;
SET SESSION AUTHORIZATION authenticator;
PREPARE pgrst_config(text, text, text) AS
SELECT set_config('search_path', '"api", "public"', true),
       set_config('role', 'anon', true),
       set_config('request.jwt.claims', '{"role":"anon"}', true),
       set_config('request.method', $1, true),
       set_config('request.path', $2, true),
       set_config('request.headers', $3, true),
       set_config('request.cookies', '{}', true);
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_xff_in') \gset cfg_
SELECT apikeys.pre_request();
SELECT current_user, apikeys.current_owner(),
       current_setting('request.headers')::jsonb ? 'x-forwarded-for' AS xff_kept;
COMMIT;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_xff_out') \gset cfg_
SELECT apikeys.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_xff_junk') \gset cfg_
SELECT apikeys.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;
RESET SESSION AUTHORIZATION;
RESET apikeys.trust_forwarded_for;

-- Tenant self-service (examples/postgrest/setup.sql, api.my_*): a tenant
-- admin key (apikeys:*) creates a read-only key for an integration with
-- POST /rpc/my_create_key, lists with GET /my_keys and revokes; without a
-- key 401, with a key lacking the apikeys scopes or asking for more than
-- it holds 403, another owner's key 404.
SELECT apikeys.set_owner_policy('acme', max_keys => 10);
SET ROLE regress_admin;
SELECT (k).token AS acme_console
  FROM (SELECT apikeys.create_key('acme', 'acme console', ARRAY['apikeys:*', 'expenses:read']) k) s \gset
RESET ROLE;
SELECT json_build_object('accept', 'application/json', 'content-type', 'application/json',
                         'x-api-key', :'acme_console')::text AS h_console,
       apikeys.token_client_id(:'globex') AS globex_cid \gset
SET SESSION AUTHORIZATION authenticator;
BEGIN;
SET LOCAL ROLE anon;
-- POST /rpc/my_create_key with a JSON body, as PostgREST sends it
PREPARE rpc_my_create_key(json) AS
WITH pgrst_payload AS (SELECT $1 AS json_data),
     pgrst_body AS (SELECT CASE WHEN json_typeof(json_data) = 'array' THEN json_data
                                ELSE json_build_array(json_data) END AS val FROM pgrst_payload),
     pgrst_args AS (SELECT * FROM json_to_recordset((SELECT val FROM pgrst_body)) AS _("name" text, "scopes" text[]))
SELECT null::bigint AS total_result_set, 1 AS page_total,
       coalesce(json_agg(_postgrest_t)->0, 'null') AS body
  FROM (SELECT pgrst_call.* FROM "api"."my_create_key"(
            "name" := (SELECT "name" FROM pgrst_args LIMIT 1),
            "scopes" := (SELECT "scopes" FROM pgrst_args LIMIT 1)) pgrst_call) _postgrest_t;
-- GET /my_keys?select=name,scopes,status&order=created_at
PREPARE get_my_keys AS
WITH pgrst_source AS (SELECT "api"."my_keys".* FROM "api"."my_keys" ORDER BY "my_keys"."created_at")
SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total,
       coalesce(json_agg(_postgrest_t), '[]') AS body
  FROM (SELECT "name", "scopes", "status" FROM pgrst_source) _postgrest_t;
COMMIT;

-- POST /rpc/my_create_key {"name": "acme integration", "scopes": ["expenses:read"]}
BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE;
EXECUTE pgrst_config('POST', '/rpc/my_create_key', :'h_console') \gset cfg_
SELECT apikeys.pre_request();
EXECUTE rpc_my_create_key('{"name": "acme integration", "scopes": ["expenses:read"]}') \gset rpc_
COMMIT;
SELECT :'rpc_body'::json->>'token' ~ '^ak_[A-Za-z0-9_]+$' AS token_shape,
       :'rpc_body'::json->>'client_secret' IS NOT NULL AS has_secret,
       (:'rpc_body'::json->>'expires_at')::timestamptz > now() AS expires_later;
-- the new key works at once, read-only
SELECT json_build_object('accept', '*/*', 'x-api-key', :'rpc_body'::json->>'token')::text AS h_integration,
       :'rpc_body'::json->>'client_id' AS integration_cid \gset
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_integration') \gset cfg_
SELECT apikeys.pre_request();
SELECT apikeys.current_owner(), apikeys.has_scope('expenses:read') AS reads,
       apikeys.has_scope('expenses:create') AS writes, apikeys.has_scope('apikeys:read') AS manages;
COMMIT;
-- GET /my_keys: the tenant's keys, no other owner's
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/my_keys', :'h_console') \gset cfg_
SELECT apikeys.pre_request();
EXECUTE get_my_keys;
COMMIT;
-- Refusals, through the same functions the RPCs call (err() masks client
-- IDs): the PGRST detail carries the HTTP status
BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE;
EXECUTE pgrst_config('POST', '/rpc/my_create_key', :'h_console') \gset cfg_
SELECT apikeys.pre_request();
SELECT err($$SELECT api.my_create_key('wider', ARRAY['expenses:*'])$$) AS broader_scope;
SELECT err($$SELECT api.my_create_key('manager', ARRAY['apikeys:*', 'expenses:read', 'categories:read'])$$) AS scope_it_lacks;
SELECT err(format('SELECT api.my_revoke_key(%L)', :'globex_cid')) AS other_owner;
COMMIT;
BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE;
EXECUTE pgrst_config('POST', '/rpc/my_create_key', :'h_acme_ro') \gset cfg_
SELECT apikeys.pre_request();
SELECT err($$SELECT api.my_create_key('x', ARRAY['expenses:read'])$$) AS key_without_apikeys_scope;
EXECUTE get_my_keys;
COMMIT;
BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE;
EXECUTE pgrst_config('POST', '/rpc/my_create_key', :'h_none') \gset cfg_
SELECT apikeys.pre_request();
SELECT err($$SELECT api.my_create_key('x', ARRAY['expenses:read'])$$) AS no_key;
COMMIT;
-- POST /rpc/my_revoke_key {"client_id": ...}: the integration key stops at once
BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE;
EXECUTE pgrst_config('POST', '/rpc/my_revoke_key', :'h_console') \gset cfg_
SELECT apikeys.pre_request();
SELECT api.my_revoke_key(:'integration_cid', 'integration retired');
COMMIT;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_integration') \gset cfg_
SELECT apikeys.pre_request();
\echo :LAST_ERROR_SQLSTATE
ABORT;
RESET SESSION AUTHORIZATION;
SELECT event, detail ? 'by_key' AS names_acting_key FROM apikeys.audit_log
 WHERE client_id = :'integration_cid' ORDER BY id;

-- pre_request ends an identity that authenticate() set earlier in the
-- transaction, both when the request presents no key and when its key is
-- bad and the PGRST error is caught: the request is not that key
BEGIN;
SELECT (apikeys.authenticate(:'acme')).code AS earlier_identity;
SELECT set_config('request.headers', :'h_none', true) IS NOT NULL AS no_key_headers;
SELECT apikeys.pre_request();
SELECT apikeys.current_owner() IS NULL AS cleared_by_no_key;
SELECT (apikeys.authenticate(:'acme')).code AS earlier_identity;
SELECT set_config('request.headers', :'h_revoked', true) IS NOT NULL AS bad_key_headers;
DO $$ BEGIN PERFORM apikeys.pre_request(); EXCEPTION WHEN SQLSTATE 'PGRST' THEN NULL; END $$;
SELECT apikeys.current_owner() IS NULL AS cleared_by_bad_key;
ROLLBACK;

-- ... and on every other way out of pre_request, each error caught as the
-- bad key's was: a forwarding header it cannot read (INVALID_FORWARDED),
-- request.headers that is not JSON, a malformed required scope; and a
-- request with no headers at all, or no key, or another key.
-- The request is never the earlier key (issue 18 item 9; on the old code
-- all five errors, the empty headers and the non-object left acme's
-- identity in place).
CREATE FUNCTION pg_temp.after(headers text, scope text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text;
BEGIN
    IF (apikeys.authenticate(current_setting('pr.acme'))).code <> 'VALID' THEN
        RETURN 'no earlier identity';
    END IF;
    PERFORM set_config('request.headers', headers, true);
    BEGIN
        IF scope IS NULL THEN
            PERFORM apikeys.pre_request();
        ELSE
            PERFORM apikeys.pre_request(scope);
        END IF;
        st := 'no error';
    EXCEPTION WHEN OTHERS THEN
        st := SQLSTATE;
    END;
    RETURN st || ', ' || coalesce('still ' || apikeys.current_owner(), 'anonymous');
END
$$;
BEGIN;
SELECT set_config('pr.acme', :'acme', true) IS NOT NULL AS set;
SET LOCAL apikeys.trust_forwarded_for = on;
SELECT pg_temp.after(json_build_object('x-api-key', :'acme', 'x-forwarded-for', 'unknown')::text) AS invalid_forwarded,
       pg_temp.after(json_build_object('x-api-key', :'acme', 'x-forwarded-for', '1.2.3.4', 'forwarded', 'for=1.2.3.4')::text) AS two_forwarding_headers,
       pg_temp.after('{"x-api-key": ') AS non_json_headers,
       pg_temp.after(:'h_acme', 'expenses') AS malformed_scope,
       pg_temp.after(:'h_acme', 'expenses:(') AS malformed_scope_2;
SELECT pg_temp.after('') AS no_headers,
       pg_temp.after('[1, 2]') AS headers_not_an_object,
       pg_temp.after(:'h_none') AS no_key,
       pg_temp.after(:'h_globex') AS another_key;
ROLLBACK;

-- A key's db_role that has become superuser or BYPASSRLS since the key was
-- issued (create_key refuses both): pre_request refuses to switch to it,
-- 42501, and the request has no identity.  On the old code the request
-- ran as that role.
ALTER ROLE api_user BYPASSRLS;
SET SESSION AUTHORIZATION authenticator;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_acme') \gset cfg_
SELECT err('SELECT apikeys.pre_request()') AS bypassrls_role;
SELECT current_user, apikeys.current_owner() IS NULL AS anonymous;
ABORT;
RESET SESSION AUTHORIZATION;
ALTER ROLE api_user NOBYPASSRLS SUPERUSER;
SET SESSION AUTHORIZATION authenticator;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_acme') \gset cfg_
SELECT err('SELECT apikeys.pre_request()') AS superuser_role;
SELECT current_user, apikeys.current_owner() IS NULL AS anonymous;
ABORT;
RESET SESSION AUTHORIZATION;
ALTER ROLE api_user NOSUPERUSER;
-- the role made ordinary again: the key works as before
SET SESSION AUTHORIZATION authenticator;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
EXECUTE pgrst_config('GET', '/expenses', :'h_acme') \gset cfg_
SELECT apikeys.pre_request();
SELECT current_user, apikeys.current_owner();
ABORT;
RESET SESSION AUTHORIZATION;

-- pre_request is SECURITY INVOKER (it must be, to SET ROLE) and needs the
-- verifier's rights: the role PostgREST runs it as is anon.
SELECT p.oid::regprocedure, p.prosecdef,
       has_function_privilege('anon', p.oid, 'EXECUTE') AS anon_may,
       has_function_privilege('regress_nobody', p.oid, 'EXECUTE') AS nobody_may
  FROM pg_proc p WHERE p.proname = 'pre_request' ORDER BY 1::text;
-- Outside PostgREST (no request.headers at all) pre_request does nothing.
BEGIN READ ONLY;
SET LOCAL ROLE regress_verifier;
SELECT apikeys.pre_request();
SELECT current_user, apikeys.current_owner() IS NULL AS anonymous;
COMMIT;
-- Invalid input: a malformed required scope is the wrapper's bug (22023)
SELECT err($$SELECT apikeys.pre_request('expenses')$$) AS bad_scope;

-- the rows at the end
SELECT id, owner, description, amount, public FROM api.expenses ORDER BY id;

-- clean up the example
DROP SCHEMA api, api_auth CASCADE;
REVOKE apikeys_verifier FROM api_user;
DELETE FROM apikeys.protected_tables WHERE tbl::text LIKE 'api.%' OR tbl::text ~ '^[0-9]+$';
REVOKE apikeys_verifier FROM anon;
DROP ROLE authenticator, anon, api_user;
