--
-- examples/postgrest/setup.sql -- a small "expenses" API served by PostgREST
-- and guarded by apikeys.  Run as a superuser in the database PostgREST
-- serves:
--
--     psql -v ON_ERROR_STOP=1 -d mydb -f setup.sql
--
-- What it creates:
--   authenticator  the role PostgREST logs in as (LOGIN NOINHERIT): it can
--                  only switch to anon or to a key's db_role
--   anon           the role of every request before pre_request runs; it
--                  may read public data only
--   api_user       the db_role of keys that may write (create_key(...,
--                  db_role => 'api_user'))
--   api.categories public reference data, readable by everyone
--   api.expenses   one row per expense, owned by an apikeys owner; a row is
--                  visible to keys of its owner holding expenses:read, and to
--                  everyone when it is marked public
--   api.my_*       tenant self-service: a key holding apikeys:* manages its
--                  owner's keys (POST /rpc/my_create_key, my_update_key,
--                  my_rotate_key, my_disable_key, my_enable_key, my_revoke_key,
--                  my_delete_key; GET /my_keys)
--   api.claim_key  the secret handoff's claim (POST /rpc/claim_key)
--
-- The login password of authenticator is set outside this script, e.g.
--     ALTER ROLE authenticator PASSWORD '...';
--

CREATE EXTENSION IF NOT EXISTS apikeys CASCADE;

-- Roles ----------------------------------------------------------------------
CREATE ROLE authenticator LOGIN NOINHERIT;
CREATE ROLE anon NOLOGIN;
CREATE ROLE api_user NOLOGIN;
-- authenticator may switch to anon and to the key role; NOINHERIT so that it
-- has no privileges of its own.
GRANT anon, api_user TO authenticator;
-- pre_request runs as anon (PostgREST switches to db-anon-role first), so
-- anon is the role that needs the verifier's rights.
GRANT apikeys_verifier TO anon;

-- The API schema -------------------------------------------------------------
CREATE SCHEMA api;
GRANT USAGE ON SCHEMA api TO anon, api_user;

CREATE TABLE api.categories (
    id          text PRIMARY KEY,
    label       text NOT NULL
);
INSERT INTO api.categories VALUES
    ('travel', 'Travel'), ('meals', 'Meals'), ('office', 'Office supplies');
GRANT SELECT ON api.categories TO anon, api_user;

CREATE TABLE api.expenses (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- the apikeys owner: filled in from the authenticated key
    owner       text NOT NULL DEFAULT apikeys.current_owner(),
    spent_on    date NOT NULL DEFAULT CURRENT_DATE,
    category    text NOT NULL REFERENCES api.categories,
    description text NOT NULL,
    amount      numeric(12,2) NOT NULL CHECK (amount >= 0),
    -- published expense reports: readable without a key
    public      boolean NOT NULL DEFAULT false
);
CREATE INDEX ON api.expenses (owner);

-- Row-level security: a key of the row's owner with expenses:read sees the
-- row, expenses:create may add rows for its own owner only, and so on;
-- rows marked public are readable by anyone.
SELECT apikeys.protect('api.expenses', 'owner', 'expenses', public_filter => 'public');

GRANT SELECT ON api.expenses TO anon;
GRANT SELECT, INSERT, DELETE ON api.expenses TO api_user;
GRANT UPDATE (spent_on, category, description, amount, public) ON api.expenses TO api_user;

-- Optional: check the route's scope up front.  With db-pre-request =
-- "api_auth.pre_request", a key lacking expenses:read gets 403 on
-- GET /expenses instead of just the public rows, and POST needs
-- expenses:create before anything runs.  Requests without a key stay
-- anonymous.  The schema is not in db-schemas, so it is not an endpoint.
-- No SET clause on purpose: it would undo pre_request's SET ROLE on return.
CREATE SCHEMA api_auth;
GRANT USAGE ON SCHEMA api_auth TO anon, api_user;
CREATE FUNCTION api_auth.pre_request() RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    resource text := pg_catalog.split_part(pg_catalog.current_setting('request.path', true), '/', 2);
    method text := pg_catalog.current_setting('request.method', true);
    action text;
BEGIN
    action := CASE WHEN method IN ('GET', 'HEAD') THEN 'read'
                   WHEN method = 'POST' THEN 'create'
                   WHEN method IN ('PATCH', 'PUT') THEN 'update'
                   WHEN method = 'DELETE' THEN 'delete' END;
    IF resource IN ('expenses', 'categories') AND action IS NOT NULL THEN
        PERFORM apikeys.pre_request(resource || ':' || action);
    ELSE
        PERFORM apikeys.pre_request();   -- /rpc/..., / (OpenAPI), others
    END IF;
END
$$;

-- Tenant self-service: the API access page of a tenant -------------------------
-- A key holding apikeys:* scopes (a "tenant admin key") manages its owner's
-- keys through POST /rpc/my_create_key, /rpc/my_rotate_key, ... and
-- GET /my_keys.  The functions below are thin wrappers in the served schema
-- around apikeys.my_*, which act only for the key of the request and never
-- give a key more than that key holds.  They also turn the refusals into the
-- right HTTP status: PostgREST answers 42501 with 401 when no JWT was sent,
-- and an API key is not a JWT, so without the wrapper every refusal would be
-- a 401; 54000 (the owner's key cap) and 55000 (a revoked key) would be 500.
--   no API key                     401 + WWW-Authenticate
--   key without the apikeys scope,
--   or asking for more than it has 403
--   another owner's or no such key 404
--   invalid input                  400
--   key cap reached, key revoked   409
-- Runs as the caller (anon, or the key's db_role), like every request.
GRANT apikeys_verifier TO api_user;   -- keys with db_role api_user may self-serve too

CREATE FUNCTION api_auth.refuse(state text, msg text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    status integer := CASE WHEN state = '42501' AND apikeys.current_client_id() IS NULL THEN 401
                           WHEN state = '42501' THEN 403
                           WHEN state = '42704' THEN 404
                           WHEN state = '22023' THEN 400
                           ELSE 409 END;
BEGIN
    RAISE SQLSTATE 'PGRST' USING
        MESSAGE = json_build_object('code', state, 'message', msg, 'details', null, 'hint', null)::text,
        DETAIL = json_build_object('status', status, 'headers',
                     CASE WHEN status = 401 THEN json_build_object('WWW-Authenticate', 'ApiKey realm="api"')
                          ELSE '{}'::json END)::text;
END
$$;

-- POST /rpc/my_create_key: every argument of apikeys.my_create_key;
-- handoff => true sends the new key's secret to its contacts instead
CREATE FUNCTION api.my_create_key(name text, scopes text[], expires_at timestamptz DEFAULT NULL,
                                  description text DEFAULT NULL, contact_email text DEFAULT NULL,
                                  contact_phone text DEFAULT NULL, allowed_cidrs cidr[] DEFAULT NULL,
                                  metadata jsonb DEFAULT '{}', handoff boolean DEFAULT false)
    RETURNS apikeys.new_key
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN apikeys.my_create_key(name, scopes, expires_at, description, contact_email,
                                 contact_phone, allowed_cidrs, COALESCE(metadata, '{}'), handoff);
EXCEPTION WHEN insufficient_privilege OR undefined_object OR program_limit_exceeded
               OR object_not_in_prerequisite_state OR invalid_parameter_value THEN
    PERFORM api_auth.refuse(SQLSTATE, SQLERRM);
    RETURN NULL;
END
$$;

-- POST /rpc/my_update_key: NULL (or a missing field) leaves a setting
CREATE FUNCTION api.my_update_key(client_id text, name text DEFAULT NULL, description text DEFAULT NULL,
                                  scopes text[] DEFAULT NULL, expires_at timestamptz DEFAULT NULL,
                                  contact_email text DEFAULT NULL, contact_phone text DEFAULT NULL,
                                  allowed_cidrs cidr[] DEFAULT NULL, metadata jsonb DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM apikeys.my_update_key(client_id, name, description, scopes, expires_at, contact_email,
                                  contact_phone, allowed_cidrs, metadata);
EXCEPTION WHEN insufficient_privilege OR undefined_object OR object_not_in_prerequisite_state
               OR invalid_parameter_value THEN
    PERFORM api_auth.refuse(SQLSTATE, SQLERRM);
END
$$;

CREATE FUNCTION api.my_rotate_key(client_id text, grace interval DEFAULT '0')
    RETURNS apikeys.new_key
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN apikeys.my_rotate_key(client_id, grace);
EXCEPTION WHEN insufficient_privilege OR undefined_object OR object_not_in_prerequisite_state
               OR invalid_parameter_value THEN
    PERFORM api_auth.refuse(SQLSTATE, SQLERRM);
    RETURN NULL;
END
$$;

CREATE FUNCTION api.my_disable_key(client_id text, reason text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM apikeys.my_disable_key(client_id, reason);
EXCEPTION WHEN insufficient_privilege OR undefined_object OR object_not_in_prerequisite_state
               OR invalid_parameter_value THEN
    PERFORM api_auth.refuse(SQLSTATE, SQLERRM);
END
$$;

CREATE FUNCTION api.my_enable_key(client_id text)
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM apikeys.my_enable_key(client_id);
EXCEPTION WHEN insufficient_privilege OR undefined_object OR object_not_in_prerequisite_state THEN
    PERFORM api_auth.refuse(SQLSTATE, SQLERRM);
END
$$;

CREATE FUNCTION api.my_revoke_key(client_id text, reason text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM apikeys.my_revoke_key(client_id, reason);
EXCEPTION WHEN insufficient_privilege OR undefined_object OR object_not_in_prerequisite_state
               OR invalid_parameter_value THEN
    PERFORM api_auth.refuse(SQLSTATE, SQLERRM);
END
$$;

CREATE FUNCTION api.my_delete_key(client_id text)
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM apikeys.my_delete_key(client_id);
EXCEPTION WHEN insufficient_privilege OR undefined_object OR object_not_in_prerequisite_state THEN
    PERFORM api_auth.refuse(SQLSTATE, SQLERRM);
END
$$;

-- GET /my_keys: the tenant's keys, every column of apikeys.my_keys (empty
-- without apikeys:read)
CREATE VIEW api.my_keys WITH (security_invoker = true) AS
    SELECT * FROM apikeys.my_keys;

-- The secret handoff's claim page (no key needed): POST /rpc/claim_key
-- {"claim_token": "...", "code": "123456"} answers the new key's token,
-- once.  Every failure is the same 403 (SQLSTATE 28000), whatever was wrong.
CREATE FUNCTION api.claim_key(claim_token text, code text)
    RETURNS apikeys.new_key
    LANGUAGE sql SET search_path = pg_catalog, pg_temp
    RETURN apikeys.claim_key(claim_token, code);

REVOKE ALL ON FUNCTION api_auth.refuse(text, text),
       api.my_create_key(text, text[], timestamptz, text, text, text, cidr[], jsonb, boolean),
       api.my_update_key(text, text, text, text[], timestamptz, text, text, cidr[], jsonb),
       api.my_rotate_key(text, interval), api.my_disable_key(text, text), api.my_enable_key(text),
       api.my_revoke_key(text, text), api.my_delete_key(text), api.claim_key(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_auth.refuse(text, text),
      api.my_create_key(text, text[], timestamptz, text, text, text, cidr[], jsonb, boolean),
      api.my_update_key(text, text, text, text[], timestamptz, text, text, cidr[], jsonb),
      api.my_rotate_key(text, interval), api.my_disable_key(text, text), api.my_enable_key(text),
      api.my_revoke_key(text, text), api.my_delete_key(text), api.claim_key(text, text) TO anon, api_user;
GRANT SELECT ON api.my_keys TO anon, api_user;

-- Keys are issued by an apikeys_admin, for example:
--   SELECT token FROM apikeys.create_key('acme', 'acme bookkeeping',
--            ARRAY['expenses:read', 'expenses:create'], db_role => 'api_user');
