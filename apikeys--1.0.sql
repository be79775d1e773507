/* apikeys--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION apikeys" to load this file. \quit

--------------------------------------------------------------------------------
-- Schema guard
--
-- CREATE EXTENSION reuses an existing schema "apikeys".  Whoever owns that
-- schema can later rename it and put their own apikeys.* functions in its
-- place, which the SECURITY DEFINER functions below would then run as the
-- extension owner; anything already in it could shadow our objects.  So
-- refuse a schema that a non-superuser owns, that someone else may create
-- objects in, or that is not empty.  (The schema CREATE EXTENSION makes
-- itself is owned by the installing superuser and empty.)
--------------------------------------------------------------------------------
DO $guard$
DECLARE
    v_nsp oid;
    v_owner name;
    v_super boolean;
BEGIN
    SELECT n.oid, r.rolname, r.rolsuper INTO v_nsp, v_owner, v_super
      FROM pg_catalog.pg_namespace n
      JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE n.nspname OPERATOR(pg_catalog.=) 'apikeys';
    IF NOT v_super THEN
        RAISE EXCEPTION 'schema "apikeys" is owned by role "%", which is not a superuser', v_owner
            USING ERRCODE = '42501',
                  DETAIL = 'The owner of the schema could replace the extension''s functions.',
                  HINT = 'Drop the schema, or make a superuser its owner, then create the extension again.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n,
                      pg_catalog.aclexplode(n.nspacl) a
                WHERE n.oid OPERATOR(pg_catalog.=) v_nsp
                  AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
                  AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner) THEN
        RAISE EXCEPTION 'schema "apikeys" grants CREATE to roles other than its owner'
            USING ERRCODE = '42501',
                  DETAIL = 'Those roles could add objects that shadow the extension''s.',
                  HINT = 'Revoke CREATE on the schema, then create the extension again.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
                  AND d.refobjid OPERATOR(pg_catalog.=) v_nsp
                  -- the extension itself depends on its schema
                  AND d.classid OPERATOR(pg_catalog.<>) 'pg_catalog.pg_extension'::pg_catalog.regclass) THEN
        RAISE EXCEPTION 'schema "apikeys" is not empty'
            USING ERRCODE = '55000',
                  DETAIL = 'Objects created before the extension could shadow its own.',
                  HINT = 'Drop or move the objects in schema apikeys, then create the extension again.';
    END IF;
END
$guard$;

--------------------------------------------------------------------------------
-- Roles
--
-- apikeys_admin     issues and manages keys, reads key_list and audit_log.
-- apikeys_verifier  verifies keys and uses the context functions; nothing else.
-- Both are NOLOGIN: grant them to login roles.  Created only when missing, so
-- re-creating the extension keeps existing grants.
--------------------------------------------------------------------------------
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'apikeys_admin') THEN
        EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', 'apikeys_admin');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'apikeys_verifier') THEN
        EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', 'apikeys_verifier');
    END IF;
END
$roles$;

--------------------------------------------------------------------------------
-- Schema privileges
--
-- PUBLIC may look into the schema (RLS policies on user tables call the
-- context functions) but may execute nothing it is not granted below.
--------------------------------------------------------------------------------
REVOKE ALL ON SCHEMA apikeys FROM PUBLIC;
GRANT USAGE ON SCHEMA apikeys TO PUBLIC;

--------------------------------------------------------------------------------
-- Types
--------------------------------------------------------------------------------

-- apikeys.scope: a validated permission string (see src/scope.c)
CREATE TYPE apikeys.scope;

CREATE FUNCTION apikeys.scope_in(cstring) RETURNS apikeys.scope
    AS 'MODULE_PATHNAME', 'apikeys_scope_in'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION apikeys.scope_out(apikeys.scope) RETURNS cstring
    AS 'MODULE_PATHNAME', 'apikeys_scope_out'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE apikeys.scope (
    INPUT = apikeys.scope_in,
    OUTPUT = apikeys.scope_out,
    LIKE = pg_catalog.text,
    CATEGORY = 'S',
    COLLATABLE = false
);

-- A scope is stored as its canonical text, so text is binary-compatible
-- one way; the other way must pass the grammar.
CREATE CAST (apikeys.scope AS pg_catalog.text) WITHOUT FUNCTION AS IMPLICIT;
CREATE CAST (pg_catalog.text AS apikeys.scope) WITH INOUT AS ASSIGNMENT;

-- Bytewise (scopes are canonical), so no collation is needed: the built-in
-- texteq would fail for lack of one, as the type is not collatable.
CREATE FUNCTION apikeys.scope_eq(apikeys.scope, apikeys.scope) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scope_eq'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION apikeys.scope_ne(apikeys.scope, apikeys.scope) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scope_ne'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR apikeys.= (
    LEFTARG = apikeys.scope, RIGHTARG = apikeys.scope,
    FUNCTION = apikeys.scope_eq,
    COMMUTATOR = OPERATOR(apikeys.=), NEGATOR = OPERATOR(apikeys.<>),
    RESTRICT = eqsel, JOIN = eqjoinsel
);

CREATE OPERATOR apikeys.<> (
    LEFTARG = apikeys.scope, RIGHTARG = apikeys.scope,
    FUNCTION = apikeys.scope_ne,
    COMMUTATOR = OPERATOR(apikeys.<>), NEGATOR = OPERATOR(apikeys.=),
    RESTRICT = neqsel, JOIN = neqjoinsel
);

-- A total bytewise order and a hash, so scopes and scope[] columns can be
-- sorted, grouped, indexed and ANALYZEd (autovacuum's ANALYZE of
-- apikeys.keys needs them: without an operator class of its own the type
-- would borrow text's, which demands a collation it does not have).
CREATE FUNCTION apikeys.scope_cmp(apikeys.scope, apikeys.scope) RETURNS integer
    AS 'MODULE_PATHNAME', 'apikeys_scope_cmp'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION apikeys.scope_lt(apikeys.scope, apikeys.scope) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scope_lt'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION apikeys.scope_le(apikeys.scope, apikeys.scope) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scope_le'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION apikeys.scope_gt(apikeys.scope, apikeys.scope) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scope_gt'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION apikeys.scope_ge(apikeys.scope, apikeys.scope) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scope_ge'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION apikeys.scope_hash(apikeys.scope) RETURNS integer
    AS 'MODULE_PATHNAME', 'apikeys_scope_hash'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR apikeys.< (
    LEFTARG = apikeys.scope, RIGHTARG = apikeys.scope, FUNCTION = apikeys.scope_lt,
    COMMUTATOR = OPERATOR(apikeys.>), NEGATOR = OPERATOR(apikeys.>=),
    RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);

CREATE OPERATOR apikeys.<= (
    LEFTARG = apikeys.scope, RIGHTARG = apikeys.scope, FUNCTION = apikeys.scope_le,
    COMMUTATOR = OPERATOR(apikeys.>=), NEGATOR = OPERATOR(apikeys.>),
    RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);

CREATE OPERATOR apikeys.> (
    LEFTARG = apikeys.scope, RIGHTARG = apikeys.scope, FUNCTION = apikeys.scope_gt,
    COMMUTATOR = OPERATOR(apikeys.<), NEGATOR = OPERATOR(apikeys.<=),
    RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);

CREATE OPERATOR apikeys.>= (
    LEFTARG = apikeys.scope, RIGHTARG = apikeys.scope, FUNCTION = apikeys.scope_ge,
    COMMUTATOR = OPERATOR(apikeys.<=), NEGATOR = OPERATOR(apikeys.<),
    RESTRICT = scalargesel, JOIN = scalargejoinsel
);

CREATE OPERATOR CLASS apikeys.scope_ops
    DEFAULT FOR TYPE apikeys.scope USING btree AS
        OPERATOR 1 apikeys.<,
        OPERATOR 2 apikeys.<=,
        OPERATOR 3 apikeys.=,
        OPERATOR 4 apikeys.>=,
        OPERATOR 5 apikeys.>,
        FUNCTION 1 apikeys.scope_cmp(apikeys.scope, apikeys.scope);

CREATE OPERATOR CLASS apikeys.scope_hash_ops
    DEFAULT FOR TYPE apikeys.scope USING hash AS
        OPERATOR 1 apikeys.=,
        FUNCTION 1 apikeys.scope_hash(apikeys.scope);

CREATE FUNCTION apikeys.scope_grants(granted apikeys.scope, required apikeys.scope)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scope_grants'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR apikeys.@> (
    LEFTARG = apikeys.scope, RIGHTARG = apikeys.scope,
    FUNCTION = apikeys.scope_grants
);

CREATE FUNCTION apikeys.scopes_grant(granted apikeys.scope[], required apikeys.scope)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scopes_grant'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR apikeys.@> (
    LEFTARG = apikeys.scope[], RIGHTARG = apikeys.scope,
    FUNCTION = apikeys.scopes_grant
);

-- What create_key and rotate_key return: the only time the secret is seen.
CREATE TYPE apikeys.new_key AS (
    client_id       text,
    client_secret   text,
    token           text,
    expires_at      timestamptz
);

-- What verify, verify_client and authenticate return.
CREATE TYPE apikeys.verification AS (
    valid           boolean,
    code            text,
    client_id       text,
    owner           text,
    scopes          text[],
    expires_at      timestamptz,
    retry_after     integer
);

--------------------------------------------------------------------------------
-- Tables and indexes
--
-- Nobody but the extension owner can read these tables.  Admins work
-- through the functions and views below; verification reads apikeys.keys
-- through its primary-key index from C (src/lookup.c).  No column stores an
-- OID, so dump/restore and pg_upgrade carry everything over.
--------------------------------------------------------------------------------

-- One row per key.  The column order is part of the C code (src/catalog.h):
-- add columns only at the end.
CREATE TABLE apikeys.keys (
    client_id           text COLLATE "C" PRIMARY KEY,
    owner               text NOT NULL,
    name                text NOT NULL,
    scopes              apikeys.scope[] NOT NULL,
    secret_hash         bytea NOT NULL,
    hash_alg            "char" NOT NULL,
    expires_at          timestamptz NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by          text NOT NULL DEFAULT CURRENT_USER,
    disabled_at         timestamptz,
    revoked_at          timestamptz,
    prev_secret_hash    bytea,
    prev_hash_alg       "char",
    prev_expires_at     timestamptz,
    last_used_at        timestamptz,
    description         text,
    contact_email       text,
    contact_phone       text,
    allowed_cidrs       cidr[],
    metadata            jsonb,
    db_role             text,
    rate_limit          integer,
    rate_window         interval,
    CONSTRAINT keys_hash_alg_check CHECK (hash_alg OPERATOR(pg_catalog.=) ANY (ARRAY['s'::"char", 'h'::"char"])),
    CONSTRAINT keys_secret_hash_check CHECK (pg_catalog.octet_length(secret_hash) OPERATOR(pg_catalog.=) 32)
);

CREATE INDEX keys_owner_idx ON apikeys.keys (owner);

-- Per-owner limits; a row appears when an owner gets a first key or a policy.
CREATE TABLE apikeys.owner_policies (
    owner           text PRIMARY KEY,
    max_keys        integer,
    max_lifetime    interval,
    keys_issued     bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT owner_policies_max_keys_check CHECK (max_keys OPERATOR(pg_catalog.>) 0),
    CONSTRAINT owner_policies_max_lifetime_check CHECK (max_lifetime OPERATOR(pg_catalog.>) '0'::interval)
);

-- The append-only audit trail.  Never holds a secret or a hash.
CREATE TABLE apikeys.audit_log (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    actor               text NOT NULL DEFAULT SESSION_USER,
    event               text NOT NULL,
    client_id           text,
    owner               text,
    detail              jsonb NOT NULL DEFAULT '{}',
    client_addr         inet DEFAULT pg_catalog.inet_client_addr(),
    db_user             text,
    application_name    text,
    txid                xid8 DEFAULT pg_catalog.pg_current_xact_id()
);

CREATE INDEX audit_log_client_id_idx ON apikeys.audit_log (client_id);
CREATE INDEX audit_log_at_idx ON apikeys.audit_log (at);

-- Tables apikeys.protect() has set up, so unprotect() undoes exactly that.
CREATE TABLE apikeys.protected_tables (
    tbl             regclass PRIMARY KEY,
    owner_column    name NOT NULL,
    resource        text NOT NULL,
    public_filter   text,
    enabled_rls     boolean NOT NULL,
    forced_rls      boolean NOT NULL
);

-- Verification counts per key, per hour, per outcome code.  One row per
-- (key, hour, code), never one per request; written by the hourly rollup.
CREATE TABLE apikeys.usage (
    client_id   text COLLATE "C" NOT NULL,
    hour        timestamptz NOT NULL,
    code        text NOT NULL,
    count       bigint NOT NULL,
    CONSTRAINT usage_pkey PRIMARY KEY (client_id, hour, code),
    CONSTRAINT usage_count_check CHECK (count OPERATOR(pg_catalog.>=) 0)
);

-- One row per flush: the numbers of every key used in the interval, packed
-- (format in src/journal.c; decode with apikeys._journal_decode()).
CREATE TABLE apikeys.usage_journal (
    flushed_at  timestamptz NOT NULL,
    keys        integer NOT NULL,
    data        bytea NOT NULL,
    CONSTRAINT usage_journal_keys_check CHECK (keys OPERATOR(pg_catalog.>) 0)
);
-- client IDs are random: compression would cost time and save nothing
ALTER TABLE apikeys.usage_journal ALTER COLUMN data SET STORAGE EXTERNAL;

-- Room on each page, so the rollup's last_used_at updates are HOT (that
-- column is in no index): no index writes, far less WAL and bloat.
ALTER TABLE apikeys.keys SET (fillfactor = 90);

--------------------------------------------------------------------------------
-- Dump configuration: keys, policies and the audit trail are user data.
--------------------------------------------------------------------------------
SELECT pg_catalog.pg_extension_config_dump('apikeys.keys', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.owner_policies', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.audit_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.protected_tables', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.usage', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.usage_journal', '');

--------------------------------------------------------------------------------
-- Row-level security on our own tables: no policies, so only the owner
-- (and superusers) see rows even if a privilege is granted by mistake.
--------------------------------------------------------------------------------
ALTER TABLE apikeys.keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE apikeys.owner_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE apikeys.protected_tables ENABLE ROW LEVEL SECURITY;
ALTER TABLE apikeys.usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE apikeys.usage_journal ENABLE ROW LEVEL SECURITY;

--------------------------------------------------------------------------------
-- C functions
--------------------------------------------------------------------------------

-- Internal: new client ID (or the given one) + secret + token + hash.
CREATE FUNCTION apikeys._mint(client_id text,
                              OUT client_id text, OUT client_secret text, OUT token text,
                              OUT secret_hash bytea, OUT hash_alg "char")
    RETURNS record
    AS 'MODULE_PATHNAME', 'apikeys_mint'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;

-- Internal: the event label the audit trigger reads (src/audit.c).
CREATE FUNCTION apikeys._op_begin(event text, detail jsonb) RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_op_begin'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;

CREATE FUNCTION apikeys._op_end() RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_op_end'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION apikeys._op_event() RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_op_event'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION apikeys._op_detail() RETURNS jsonb
    AS 'MODULE_PATHNAME', 'apikeys_op_detail'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION apikeys._outer_user() RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_outer_user'
    LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION apikeys.token_client_id(token text) RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_token_client_id'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION apikeys.verify(token text, required_scope text DEFAULT NULL,
                               client_ip inet DEFAULT NULL)
    RETURNS apikeys.verification
    AS 'MODULE_PATHNAME', 'apikeys_verify'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL RESTRICTED;

CREATE FUNCTION apikeys.verify_client(client_id text, client_secret text,
                                      required_scope text DEFAULT NULL,
                                      client_ip inet DEFAULT NULL)
    RETURNS apikeys.verification
    AS 'MODULE_PATHNAME', 'apikeys_verify_client'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL RESTRICTED;

CREATE FUNCTION apikeys.authenticate(token text, required_scope text DEFAULT NULL,
                                     client_ip inet DEFAULT NULL)
    RETURNS apikeys.verification
    AS 'MODULE_PATHNAME', 'apikeys_authenticate'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;

CREATE FUNCTION apikeys.current_client_id() RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_current_client_id'
    LANGUAGE C STABLE PARALLEL RESTRICTED;

CREATE FUNCTION apikeys.current_owner() RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_current_owner'
    LANGUAGE C STABLE PARALLEL RESTRICTED;

CREATE FUNCTION apikeys.current_scopes() RETURNS text[]
    AS 'MODULE_PATHNAME', 'apikeys_current_scopes'
    LANGUAGE C STABLE PARALLEL RESTRICTED;

CREATE FUNCTION apikeys.has_scope(scope text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_has_scope'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;

CREATE FUNCTION apikeys.require_scope(scope text) RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_require_scope'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;

CREATE FUNCTION apikeys.field_allowed(resource text, field text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_field_allowed'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;

-- SECURITY INVOKER on purpose: it switches to the key's db_role.
CREATE FUNCTION apikeys.pre_request() RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_pre_request'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- The same, also requiring a scope of a presented key (403 without it).
CREATE FUNCTION apikeys.pre_request(required_scope text) RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_pre_request'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
-- Usage, the shared cache and the background worker (src/usage.c,
-- src/cache.c, src/journal.c, src/worker.c).  With apikeys in
-- shared_preload_libraries, verification counts usage, failures per client
-- address and rate-limit windows in shared memory and writes nothing; the
-- worker writes each apikeys.flush_interval's usage as one row of
-- apikeys.usage_journal, and a rollup about once an hour folds the journal
-- into apikeys.usage and apikeys.keys.last_used_at.  Without preloading,
-- last_used_at is written at most once per key per
-- apikeys.last_used_granularity and nothing else is kept.

CREATE FUNCTION apikeys._keys_cache_trigger()
    RETURNS trigger
    AS 'MODULE_PATHNAME', 'apikeys_keys_cache_trigger'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION apikeys._cache_invalidate_all()
    RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_cache_invalidate_all'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Is this session a logical replication apply worker?  Not settable from
-- SQL: it is the process's kind, fixed when the server started it.
CREATE FUNCTION apikeys._in_apply_worker()
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_in_apply_worker'
    LANGUAGE C STABLE PARALLEL RESTRICTED;

CREATE FUNCTION apikeys._preloaded()
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_preloaded_fn'
    LANGUAGE C VOLATILE PARALLEL SAFE;

-- Without an argument (or NULL) a rollup; with false, the worker's flush.
-- Not STRICT: a STRICT call with NULL constants is folded away before the
-- EXECUTE privilege is checked.
CREATE FUNCTION apikeys.flush_usage(rollup boolean DEFAULT true)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'apikeys_flush_usage'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION apikeys._failing_addresses(OUT address inet, OUT failures integer,
                                           OUT window_start timestamptz,
                                           OUT window_end timestamptz,
                                           OUT blocked boolean,
                                           OUT blocked_attempts bigint)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'apikeys_failing_addresses'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

CREATE FUNCTION apikeys.cache_stats(OUT shared boolean, OUT capacity bigint,
                                    OUT entries bigint, OUT entry_bytes integer,
                                    OUT shared_bytes bigint, OUT invalidations bigint,
                                    OUT session_hits bigint, OUT session_misses bigint)
    RETURNS record
    AS 'MODULE_PATHNAME', 'apikeys_cache_stats'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

CREATE FUNCTION apikeys.usage_stats(OUT shared boolean, OUT tracked_keys bigint,
                                    OUT key_capacity bigint, OUT tracked_addresses bigint,
                                    OUT address_capacity bigint, OUT dropped_keys bigint,
                                    OUT dropped_addresses bigint, OUT shared_bytes bigint)
    RETURNS record
    AS 'MODULE_PATHNAME', 'apikeys_usage_stats'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

-- The packed journal row (format in src/journal_codec.c) and the last-use
-- times awaiting the rollup, for the views below.
CREATE FUNCTION apikeys._journal_decode(data bytea,
                                        OUT client_id text, OUT code text,
                                        OUT count bigint, OUT last_used timestamptz)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'apikeys_journal_decode'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    ROWS 1000;

CREATE FUNCTION apikeys._recent_use(client_id text)
    RETURNS timestamptz
    AS 'MODULE_PATHNAME', 'apikeys_recent_use'
    LANGUAGE C VOLATILE PARALLEL SAFE;

-- After a restart the shared cache is empty, and every key's first
-- verification is a miss; this fills it at once, as pg_prewarm does for
-- buffers.  It reads apikeys.keys as the extension owner.
CREATE FUNCTION apikeys.cache_prewarm()
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'apikeys_cache_prewarm'
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;

--------------------------------------------------------------------------------
-- Internal SQL helpers
--------------------------------------------------------------------------------

-- _audit appends one audit row and tells listeners (NOTIFY apikeys_events).
-- It is the only writer of audit_log, so every row has the same shape.
CREATE FUNCTION apikeys._audit(p_event text, p_client_id text, p_owner text, p_detail jsonb)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO apikeys.audit_log (event, client_id, owner, detail, db_user, application_name)
    VALUES (p_event, p_client_id, p_owner, COALESCE(p_detail, '{}'::jsonb),
            apikeys._outer_user(),
            pg_catalog.current_setting('application_name', true));
    PERFORM pg_catalog.pg_notify('apikeys_events',
        pg_catalog.jsonb_build_object('event', p_event, 'client_id', p_client_id,
                                      'owner', p_owner)::text);
END
$$;

-- _key_row finds a key for a change and locks it; 42704 when missing,
-- 55000 when revoked (unless p_allow_revoked).
CREATE FUNCTION apikeys._key_row(p_client_id text, p_allow_revoked boolean DEFAULT false)
    RETURNS apikeys.keys
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k apikeys.keys;
BEGIN
    IF p_client_id IS NULL THEN
        RAISE EXCEPTION 'client_id cannot be NULL' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO k FROM apikeys.keys
     WHERE client_id OPERATOR(pg_catalog.=) p_client_id
     FOR UPDATE;
    IF NOT FOUND THEN
        -- a whole token where a client ID belongs: never echo the secret
        IF apikeys.token_client_id(p_client_id) IS NOT NULL THEN
            RAISE EXCEPTION 'a token was given where a client ID is expected'
                USING ERRCODE = '22023',
                      HINT = 'Pass the client ID (the token up to the secret), never the token itself.';
        END IF;
        RAISE EXCEPTION 'API key "%" does not exist', p_client_id
            USING ERRCODE = '42704';
    END IF;
    IF k.revoked_at IS NOT NULL AND NOT p_allow_revoked THEN
        RAISE EXCEPTION 'API key "%" has been revoked', p_client_id
            USING ERRCODE = '55000',
                  HINT = 'A revoked key cannot be changed; issue a new key with apikeys.create_key().';
    END IF;
    RETURN k;
END
$$;

-- _owner_limits returns the effective (max_keys, max_lifetime) of an owner.
CREATE FUNCTION apikeys._owner_limits(p_owner text, OUT max_keys integer, OUT max_lifetime interval)
    RETURNS record
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT p.max_keys, p.max_lifetime INTO max_keys, max_lifetime
      FROM apikeys.owner_policies p WHERE p.owner OPERATOR(pg_catalog.=) p_owner;
    max_keys := COALESCE(max_keys,
        pg_catalog.current_setting('apikeys.default_max_keys')::integer);
    max_lifetime := COALESCE(max_lifetime,
        pg_catalog.current_setting('apikeys.default_max_lifetime')::interval);
END
$$;

-- _check_text: non-empty (when required) and not too long; 22023 otherwise.
CREATE FUNCTION apikeys._check_text(p_field text, p_value text, p_max integer, p_required boolean)
    RETURNS void
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL OR pg_catalog.btrim(p_value) OPERATOR(pg_catalog.=) '' THEN
        IF p_required THEN
            RAISE EXCEPTION '% cannot be empty', p_field USING ERRCODE = '22023';
        END IF;
        RETURN;
    END IF;
    IF pg_catalog.length(p_value) OPERATOR(pg_catalog.>) p_max THEN
        RAISE EXCEPTION '% is too long', p_field
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('The %s is at most %s characters.', p_field, p_max);
    END IF;
END
$$;

-- _check_settings validates every optional setting of a key; 22023 naming
-- the field on the first bad one.  NULL means "not given".
CREATE FUNCTION apikeys._check_settings(p_scopes text[], p_description text,
                                        p_contact_email text, p_contact_phone text,
                                        p_allowed_cidrs cidr[], p_metadata jsonb,
                                        p_db_role text, p_rate_limit integer,
                                        p_rate_window interval)
    RETURNS apikeys.scope[]
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    v_scopes apikeys.scope[];
BEGIN
    IF p_scopes IS NOT NULL THEN
        IF pg_catalog.array_position(p_scopes, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'scopes cannot contain NULL' USING ERRCODE = '22023';
        END IF;
        IF pg_catalog.cardinality(p_scopes) OPERATOR(pg_catalog.>) 100 THEN
            RAISE EXCEPTION 'too many scopes'
                USING ERRCODE = '22023', DETAIL = 'A key has at most 100 scopes.';
        END IF;
        -- each element passes the grammar (22023 naming the scope) and
        -- duplicates go, keeping the first occurrence's order
        SELECT COALESCE(pg_catalog.array_agg(s ORDER BY first_pos), '{}')
          INTO v_scopes
          FROM (SELECT s::apikeys.scope::text AS s, pg_catalog.min(pos) AS first_pos
                  FROM pg_catalog.unnest(p_scopes) WITH ORDINALITY AS u(s, pos)
                 GROUP BY 1) d;
    END IF;

    PERFORM apikeys._check_text('description', p_description, 1024, false);

    IF p_contact_email IS NOT NULL AND p_contact_email OPERATOR(pg_catalog.<>) '' AND
       (pg_catalog.length(p_contact_email) OPERATOR(pg_catalog.>) 254 OR
        p_contact_email OPERATOR(pg_catalog.!~) '^[A-Za-z0-9.!#$%&''*+/=?^_`{|}~-]+@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$') THEN
        RAISE EXCEPTION 'invalid contact email "%"', p_contact_email
            USING ERRCODE = '22023',
                  HINT = 'Give an address such as api-owner@example.com.';
    END IF;

    IF p_contact_phone IS NOT NULL AND p_contact_phone OPERATOR(pg_catalog.<>) '' AND
       p_contact_phone OPERATOR(pg_catalog.!~) '^\+[1-9][0-9]{6,14}$' THEN
        RAISE EXCEPTION 'invalid contact phone "%"', p_contact_phone
            USING ERRCODE = '22023',
                  DETAIL = 'A phone number is in E.164 form: a plus sign and 7 to 15 digits.',
                  HINT = 'For example +447894123456.';
    END IF;

    IF p_allowed_cidrs IS NOT NULL THEN
        IF pg_catalog.array_position(p_allowed_cidrs, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'allowed_cidrs cannot contain NULL' USING ERRCODE = '22023';
        END IF;
        IF pg_catalog.cardinality(p_allowed_cidrs) OPERATOR(pg_catalog.>) 100 THEN
            RAISE EXCEPTION 'too many allowed_cidrs entries'
                USING ERRCODE = '22023', DETAIL = 'A key allows at most 100 networks.';
        END IF;
    END IF;

    IF p_metadata IS NOT NULL THEN
        IF pg_catalog.jsonb_typeof(p_metadata) OPERATOR(pg_catalog.<>) 'object' THEN
            RAISE EXCEPTION 'metadata must be a JSON object' USING ERRCODE = '22023';
        END IF;
        IF pg_catalog.octet_length(p_metadata::text) OPERATOR(pg_catalog.>) 65536 THEN
            RAISE EXCEPTION 'metadata is too large'
                USING ERRCODE = '22023', DETAIL = 'Metadata is at most 64 kB as JSON text.';
        END IF;
    END IF;

    IF p_db_role IS NOT NULL AND p_db_role OPERATOR(pg_catalog.<>) '' THEN
        SELECT rolsuper, rolbypassrls INTO r
          FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) p_db_role;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'role "%" does not exist', p_db_role USING ERRCODE = '22023';
        END IF;
        IF r.rolsuper OR r.rolbypassrls THEN
            RAISE EXCEPTION 'role "%" cannot be used for API keys', p_db_role
                USING ERRCODE = '22023',
                      DETAIL = 'Superuser and BYPASSRLS roles would escape row-level security.';
        END IF;
    END IF;

    IF p_rate_limit IS NOT NULL AND p_rate_limit OPERATOR(pg_catalog.<) 0 THEN
        RAISE EXCEPTION 'rate_limit must be positive' USING ERRCODE = '22023',
            HINT = 'Use NULL at creation, or 0 in update_key, for no limit.';
    END IF;
    IF p_rate_window IS NOT NULL AND
       (p_rate_window OPERATOR(pg_catalog.<) '1 second'::interval OR
        p_rate_window OPERATOR(pg_catalog.>) '1 day'::interval) THEN
        RAISE EXCEPTION 'rate_window must be between 1 second and 1 day' USING ERRCODE = '22023';
    END IF;

    RETURN v_scopes;
END
$$;

-- _check_expiry: in the future and within the owner's max lifetime.
CREATE FUNCTION apikeys._check_expiry(p_expires_at timestamptz, p_max_lifetime interval)
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_expires_at OPERATOR(pg_catalog.<=) pg_catalog.now() THEN
        RAISE EXCEPTION 'expiry must be in the future' USING ERRCODE = '22023';
    END IF;
    IF p_expires_at OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.+) p_max_lifetime) THEN
        RAISE EXCEPTION 'expiry is beyond the maximum key lifetime'
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('Keys of this owner live at most %s.', p_max_lifetime),
                  HINT = 'Choose an earlier expiry, or change the owner''s max_lifetime with apikeys.set_owner_policy().';
    END IF;
END
$$;

--------------------------------------------------------------------------------
-- Issuing and managing keys (apikeys_admin)
--------------------------------------------------------------------------------

CREATE FUNCTION apikeys.create_key(owner text, name text, scopes text[],
                                   expires_at timestamptz DEFAULT NULL,
                                   description text DEFAULT NULL,
                                   contact_email text DEFAULT NULL,
                                   contact_phone text DEFAULT NULL,
                                   allowed_cidrs cidr[] DEFAULT NULL,
                                   metadata jsonb DEFAULT '{}',
                                   db_role name DEFAULT NULL,
                                   rate_limit integer DEFAULT NULL,
                                   rate_window interval DEFAULT '1 minute')
    RETURNS apikeys.new_key
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_scopes apikeys.scope[];
    v_max_keys integer;
    v_max_lifetime interval;
    v_live bigint;
    v_expires timestamptz;
    v_cid text;
    m record;
BEGIN
    PERFORM apikeys._check_text('owner', create_key.owner, 256, true);
    PERFORM apikeys._check_text('name', create_key.name, 128, true);
    IF create_key.scopes IS NULL THEN
        RAISE EXCEPTION 'scopes cannot be NULL' USING ERRCODE = '22023',
            HINT = 'Give an empty array for a key that may do nothing yet.';
    END IF;
    IF create_key.rate_limit IS NOT NULL AND create_key.rate_limit OPERATOR(pg_catalog.=) 0 THEN
        RAISE EXCEPTION 'rate_limit must be positive' USING ERRCODE = '22023',
            HINT = 'Use NULL for no limit.';
    END IF;
    v_scopes := apikeys._check_settings(create_key.scopes, create_key.description,
                    create_key.contact_email, create_key.contact_phone,
                    create_key.allowed_cidrs, create_key.metadata,
                    create_key.db_role::text, create_key.rate_limit,
                    CASE WHEN create_key.rate_limit IS NOT NULL THEN create_key.rate_window END);

    -- Serialise creates for this owner: the upsert row-locks the owner's
    -- policy row, and a REPEATABLE READ transaction racing another create
    -- fails with a serialization error instead of overshooting the cap.
    INSERT INTO apikeys.owner_policies AS p (owner, keys_issued)
    VALUES (create_key.owner, 1)
    ON CONFLICT ON CONSTRAINT owner_policies_pkey
    DO UPDATE SET keys_issued = p.keys_issued OPERATOR(pg_catalog.+) 1;

    SELECT l.max_keys, l.max_lifetime INTO v_max_keys, v_max_lifetime
      FROM apikeys._owner_limits(create_key.owner) l;

    v_expires := COALESCE(create_key.expires_at,
                          pg_catalog.now() OPERATOR(pg_catalog.+) v_max_lifetime);
    PERFORM apikeys._check_expiry(v_expires, v_max_lifetime);

    SELECT pg_catalog.count(*) INTO v_live FROM apikeys.keys k
     WHERE k.owner OPERATOR(pg_catalog.=) create_key.owner
       AND k.revoked_at IS NULL
       AND k.expires_at OPERATOR(pg_catalog.>) pg_catalog.now();
    IF v_live OPERATOR(pg_catalog.>=) v_max_keys THEN
        RAISE EXCEPTION 'owner "%" already has the maximum number of API keys', create_key.owner
            USING ERRCODE = '54000',
                  DETAIL = pg_catalog.format('The owner has %s live keys; the limit is %s.', v_live, v_max_keys),
                  HINT = 'Revoke a key, or raise max_keys with apikeys.set_owner_policy().';
    END IF;

    -- A client ID that already exists (96 random bits: never in practice)
    -- must not surface as a unique violation whose DETAIL names another
    -- owner's key: ON CONFLICT DO NOTHING, draw again, and after three
    -- misses fail with a message of our own.
    FOR attempt IN 1..3 LOOP
        m := apikeys._mint(NULL);

        INSERT INTO apikeys.keys (client_id, owner, name, scopes, secret_hash, hash_alg,
                                  expires_at, created_by, description, contact_email,
                                  contact_phone, allowed_cidrs, metadata, db_role,
                                  rate_limit, rate_window)
        VALUES (m.client_id, create_key.owner, create_key.name, v_scopes, m.secret_hash,
                m.hash_alg, v_expires, apikeys._outer_user(),
                NULLIF(create_key.description, ''), NULLIF(create_key.contact_email, ''),
                NULLIF(create_key.contact_phone, ''), create_key.allowed_cidrs,
                NULLIF(create_key.metadata, '{}'::jsonb), NULLIF(create_key.db_role::text, ''),
                create_key.rate_limit,
                CASE WHEN create_key.rate_limit IS NOT NULL THEN create_key.rate_window END)
        ON CONFLICT (client_id) DO NOTHING
        RETURNING keys.client_id INTO v_cid;
        EXIT WHEN v_cid IS NOT NULL;
    END LOOP;
    IF v_cid IS NULL THEN
        RAISE EXCEPTION 'could not issue a unique client ID'
            USING ERRCODE = '23505',
                  HINT = 'Try again.';
    END IF;

    PERFORM apikeys._audit('created', m.client_id, create_key.owner,
        pg_catalog.jsonb_build_object('name', create_key.name, 'scopes', v_scopes,
                                      'expires_at', v_expires));

    RETURN ROW(m.client_id, m.client_secret, m.token, v_expires)::apikeys.new_key;
END
$$;

CREATE FUNCTION apikeys.rotate_key(client_id text, grace interval DEFAULT '0')
    RETURNS apikeys.new_key
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k apikeys.keys;
    m record;
    v_prev_until timestamptz;
BEGIN
    IF grace IS NULL OR grace OPERATOR(pg_catalog.<) '0'::interval THEN
        RAISE EXCEPTION 'grace must be zero or a positive interval' USING ERRCODE = '22023';
    END IF;
    k := apikeys._key_row(rotate_key.client_id);
    IF k.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now() THEN
        RAISE EXCEPTION 'API key "%" has expired', rotate_key.client_id
            USING ERRCODE = '55000',
                  HINT = 'An expired key cannot be rotated; issue a new key with apikeys.create_key().';
    END IF;

    m := apikeys._mint(k.client_id);
    -- the old secret lives on for the grace period, never past the key's expiry
    v_prev_until := LEAST(pg_catalog.now() OPERATOR(pg_catalog.+) grace, k.expires_at);

    PERFORM apikeys._op_begin('rotated', pg_catalog.jsonb_build_object(
        'grace', grace, 'old_secret_valid_until',
        CASE WHEN grace OPERATOR(pg_catalog.>) '0'::interval THEN v_prev_until END));
    UPDATE apikeys.keys SET
        prev_secret_hash = CASE WHEN grace OPERATOR(pg_catalog.>) '0'::interval THEN secret_hash END,
        prev_hash_alg    = CASE WHEN grace OPERATOR(pg_catalog.>) '0'::interval THEN hash_alg END,
        prev_expires_at  = CASE WHEN grace OPERATOR(pg_catalog.>) '0'::interval THEN v_prev_until END,
        secret_hash      = m.secret_hash,
        hash_alg         = m.hash_alg
     WHERE keys.client_id OPERATOR(pg_catalog.=) k.client_id;
    PERFORM apikeys._op_end();

    RETURN ROW(m.client_id, m.client_secret, m.token, k.expires_at)::apikeys.new_key;
END
$$;

CREATE FUNCTION apikeys.disable_key(client_id text, reason text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM apikeys._check_text('reason', reason, 1024, false);
    PERFORM apikeys._key_row(disable_key.client_id);
    PERFORM apikeys._op_begin('disabled', pg_catalog.jsonb_build_object('reason', reason));
    UPDATE apikeys.keys SET disabled_at = pg_catalog.now()
     WHERE keys.client_id OPERATOR(pg_catalog.=) disable_key.client_id
       AND disabled_at IS NULL;
    PERFORM apikeys._op_end();
END
$$;

CREATE FUNCTION apikeys.enable_key(client_id text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM apikeys._key_row(enable_key.client_id);
    PERFORM apikeys._op_begin('enabled', NULL);
    UPDATE apikeys.keys SET disabled_at = NULL
     WHERE keys.client_id OPERATOR(pg_catalog.=) enable_key.client_id
       AND disabled_at IS NOT NULL;
    PERFORM apikeys._op_end();
END
$$;

CREATE FUNCTION apikeys.revoke_key(client_id text, reason text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM apikeys._check_text('reason', reason, 1024, false);
    PERFORM apikeys._key_row(revoke_key.client_id);
    PERFORM apikeys._op_begin('revoked', pg_catalog.jsonb_build_object('reason', reason));
    UPDATE apikeys.keys SET revoked_at = pg_catalog.now()
     WHERE keys.client_id OPERATOR(pg_catalog.=) revoke_key.client_id;
    PERFORM apikeys._op_end();
END
$$;

CREATE FUNCTION apikeys.revoke_all_keys(owner text, reason text DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    PERFORM apikeys._check_text('owner', revoke_all_keys.owner, 256, true);
    PERFORM apikeys._check_text('reason', reason, 1024, false);
    PERFORM apikeys._op_begin('revoked', pg_catalog.jsonb_build_object('reason', reason, 'all', true));
    UPDATE apikeys.keys SET revoked_at = pg_catalog.now()
     WHERE keys.owner OPERATOR(pg_catalog.=) revoke_all_keys.owner
       AND revoked_at IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM apikeys._op_end();
    PERFORM apikeys._audit('revoked_all', NULL, revoke_all_keys.owner,
        pg_catalog.jsonb_build_object('reason', reason, 'count', n));
    RETURN n;
END
$$;

CREATE FUNCTION apikeys.delete_key(client_id text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM apikeys._key_row(delete_key.client_id, true);
    PERFORM apikeys._op_begin('deleted', NULL);
    DELETE FROM apikeys.keys WHERE keys.client_id OPERATOR(pg_catalog.=) delete_key.client_id;
    PERFORM apikeys._op_end();
END
$$;

CREATE FUNCTION apikeys.update_key(client_id text,
                                   name text DEFAULT NULL,
                                   description text DEFAULT NULL,
                                   scopes text[] DEFAULT NULL,
                                   expires_at timestamptz DEFAULT NULL,
                                   contact_email text DEFAULT NULL,
                                   contact_phone text DEFAULT NULL,
                                   allowed_cidrs cidr[] DEFAULT NULL,
                                   metadata jsonb DEFAULT NULL,
                                   db_role name DEFAULT NULL,
                                   rate_limit integer DEFAULT NULL,
                                   rate_window interval DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k apikeys.keys;
    v_scopes apikeys.scope[];
    v_max_lifetime interval;
BEGIN
    IF update_key.name IS NOT NULL THEN
        PERFORM apikeys._check_text('name', update_key.name, 128, true);
    END IF;
    v_scopes := apikeys._check_settings(update_key.scopes, update_key.description,
                    update_key.contact_email, update_key.contact_phone,
                    update_key.allowed_cidrs, update_key.metadata,
                    update_key.db_role::text, update_key.rate_limit, update_key.rate_window);
    k := apikeys._key_row(update_key.client_id);

    IF update_key.expires_at IS NOT NULL THEN
        IF update_key.expires_at OPERATOR(pg_catalog.>) k.expires_at THEN
            RAISE EXCEPTION 'cannot extend the expiry of API key "%"', k.client_id
                USING ERRCODE = '22023',
                      DETAIL = pg_catalog.format('The key expires at %s; an expiry can only be brought forward.', k.expires_at),
                      HINT = 'Issue a new key for a longer lifetime.';
        END IF;
        SELECT l.max_lifetime INTO v_max_lifetime FROM apikeys._owner_limits(k.owner) l;
        PERFORM apikeys._check_expiry(update_key.expires_at, v_max_lifetime);
    END IF;

    PERFORM apikeys._op_begin('updated', NULL);
    UPDATE apikeys.keys SET
        name          = COALESCE(update_key.name, keys.name),
        description   = CASE WHEN update_key.description IS NULL THEN keys.description
                             ELSE NULLIF(update_key.description, '') END,
        scopes        = COALESCE(v_scopes, keys.scopes),
        expires_at    = COALESCE(update_key.expires_at, keys.expires_at),
        -- a rotation's grace never outlives a shortened expiry (LEAST
        -- ignores NULLs, so a key never rotated must stay NULL here)
        prev_expires_at = CASE WHEN keys.prev_expires_at IS NOT NULL
                               THEN LEAST(keys.prev_expires_at,
                                          COALESCE(update_key.expires_at, keys.expires_at)) END,
        contact_email = CASE WHEN update_key.contact_email IS NULL THEN keys.contact_email
                             ELSE NULLIF(update_key.contact_email, '') END,
        contact_phone = CASE WHEN update_key.contact_phone IS NULL THEN keys.contact_phone
                             ELSE NULLIF(update_key.contact_phone, '') END,
        allowed_cidrs = CASE WHEN update_key.allowed_cidrs IS NULL THEN keys.allowed_cidrs
                             ELSE NULLIF(update_key.allowed_cidrs, '{}'::cidr[]) END,
        metadata      = CASE WHEN update_key.metadata IS NULL THEN keys.metadata
                             ELSE NULLIF(update_key.metadata, '{}'::jsonb) END,
        db_role       = CASE WHEN update_key.db_role IS NULL THEN keys.db_role
                             ELSE NULLIF(update_key.db_role::text, '') END,
        rate_limit    = CASE WHEN update_key.rate_limit IS NULL THEN keys.rate_limit
                             ELSE NULLIF(update_key.rate_limit, 0) END,
        rate_window   = CASE WHEN update_key.rate_limit OPERATOR(pg_catalog.=) 0 THEN NULL
                             ELSE COALESCE(update_key.rate_window, keys.rate_window,
                                           CASE WHEN update_key.rate_limit IS NOT NULL
                                                THEN '1 minute'::interval END) END
     WHERE keys.client_id OPERATOR(pg_catalog.=) k.client_id;
    PERFORM apikeys._op_end();
END
$$;

CREATE FUNCTION apikeys.set_owner_policy(owner text, max_keys integer DEFAULT NULL,
                                         max_lifetime interval DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old_p apikeys.owner_policies;
BEGIN
    PERFORM apikeys._check_text('owner', set_owner_policy.owner, 256, true);
    IF set_owner_policy.max_keys IS NOT NULL AND
       (set_owner_policy.max_keys OPERATOR(pg_catalog.<) 1 OR
        set_owner_policy.max_keys OPERATOR(pg_catalog.>) 1000000) THEN
        RAISE EXCEPTION 'max_keys must be between 1 and 1000000' USING ERRCODE = '22023';
    END IF;
    IF set_owner_policy.max_lifetime IS NOT NULL AND
       (set_owner_policy.max_lifetime OPERATOR(pg_catalog.<) '1 minute'::interval OR
        set_owner_policy.max_lifetime OPERATOR(pg_catalog.>) '100 years'::interval) THEN
        RAISE EXCEPTION 'max_lifetime must be between 1 minute and 100 years' USING ERRCODE = '22023';
    END IF;

    SELECT * INTO old_p FROM apikeys.owner_policies p
     WHERE p.owner OPERATOR(pg_catalog.=) set_owner_policy.owner FOR UPDATE;

    PERFORM apikeys._op_begin('policy_changed', NULL);
    INSERT INTO apikeys.owner_policies AS p (owner, max_keys, max_lifetime)
    VALUES (set_owner_policy.owner, set_owner_policy.max_keys, set_owner_policy.max_lifetime)
    ON CONFLICT ON CONSTRAINT owner_policies_pkey DO UPDATE SET
        max_keys = COALESCE(EXCLUDED.max_keys, p.max_keys),
        max_lifetime = COALESCE(EXCLUDED.max_lifetime, p.max_lifetime),
        updated_at = pg_catalog.now();
    PERFORM apikeys._op_end();

    PERFORM apikeys._audit('policy_changed', NULL, set_owner_policy.owner,
        pg_catalog.jsonb_build_object(
            'max_keys', pg_catalog.jsonb_build_object('old', old_p.max_keys,
                'new', COALESCE(set_owner_policy.max_keys, old_p.max_keys)),
            'max_lifetime', pg_catalog.jsonb_build_object('old', old_p.max_lifetime,
                'new', COALESCE(set_owner_policy.max_lifetime, old_p.max_lifetime))));
END
$$;

CREATE FUNCTION apikeys.purge_audit(older_than interval)
    RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    IF older_than IS NULL OR older_than OPERATOR(pg_catalog.<) '0'::interval THEN
        RAISE EXCEPTION 'older_than must be zero or a positive interval' USING ERRCODE = '22023';
    END IF;
    PERFORM apikeys._op_begin('purge', NULL);
    DELETE FROM apikeys.audit_log
     WHERE at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) older_than);
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM apikeys._op_end();
    PERFORM apikeys._audit('audit_purged', NULL, NULL,
        pg_catalog.jsonb_build_object('older_than', older_than, 'rows', n));
    RETURN n;
END
$$;

-- Anyone who finds a leaked token can kill it (GitHub's credential
-- revocation API).  It says nothing either way, so it is no oracle.
CREATE FUNCTION apikeys.report_leaked(token text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v apikeys.verification;
BEGIN
    v := apikeys.verify(token, NULL, NULL);
    -- the secret matched unless the key is unknown or the token is junk
    IF v.client_id IS NULL OR v.code OPERATOR(pg_catalog.=) 'REVOKED' THEN
        RETURN;
    END IF;
    PERFORM apikeys._op_begin('revoked', pg_catalog.jsonb_build_object(
        'reason', 'leaked', 'reported_by', SESSION_USER));
    UPDATE apikeys.keys SET revoked_at = pg_catalog.now()
     WHERE client_id OPERATOR(pg_catalog.=) v.client_id AND revoked_at IS NULL;
    PERFORM apikeys._op_end();
END
$$;

--------------------------------------------------------------------------------
-- Triggers: every change to a key is audited; the audit log is append-only
--------------------------------------------------------------------------------

-- Audits UPDATE and DELETE on apikeys.keys, labelled by the extension
-- function that made the change or, for a direct change, direct_update /
-- direct_delete.  Hashes never reach the audit row: a new secret shows as
-- "secret": "replaced".  Inserts are audited by create_key itself, so a
-- restore (COPY into the table) does not add rows to the trail.
CREATE FUNCTION apikeys._keys_audit_trigger()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ev text := apikeys._op_event();
    det jsonb := COALESCE(apikeys._op_detail(), '{}'::jsonb);
    o jsonb;
    n jsonb;
    changes jsonb := '{}'::jsonb;
    col text;
    hidden text[] := ARRAY['secret_hash', 'hash_alg', 'prev_secret_hash', 'prev_hash_alg',
                          'prev_expires_at', 'last_used_at'];
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
        PERFORM apikeys._audit(COALESCE(ev, 'direct_delete'), OLD.client_id, OLD.owner,
            det OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('name', OLD.name));
        RETURN OLD;
    END IF;

    o := pg_catalog.to_jsonb(OLD) OPERATOR(pg_catalog.-) hidden;
    n := pg_catalog.to_jsonb(NEW) OPERATOR(pg_catalog.-) hidden;
    FOR col IN SELECT pg_catalog.jsonb_object_keys(n) LOOP
        IF (o OPERATOR(pg_catalog.->) col) IS DISTINCT FROM (n OPERATOR(pg_catalog.->) col) THEN
            changes := changes OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(col,
                pg_catalog.jsonb_build_object('old', o OPERATOR(pg_catalog.->) col,
                                              'new', n OPERATOR(pg_catalog.->) col));
        END IF;
    END LOOP;
    IF OLD.secret_hash IS DISTINCT FROM NEW.secret_hash THEN
        changes := changes OPERATOR(pg_catalog.||) '{"secret": "replaced"}'::jsonb;
    END IF;
    IF changes OPERATOR(pg_catalog.=) '{}'::jsonb THEN
        RETURN NEW;
    END IF;
    PERFORM apikeys._audit(COALESCE(ev, 'direct_update'), NEW.client_id, NEW.owner,
        det OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('changes', changes));
    RETURN NEW;
END
$$;

CREATE TRIGGER keys_audit
    AFTER UPDATE OR DELETE ON apikeys.keys
    FOR EACH ROW EXECUTE FUNCTION apikeys._keys_audit_trigger();

-- Refuses UPDATE, DELETE and TRUNCATE of audit rows, except inside
-- apikeys.purge_audit, which audits itself, and except a DELETE applied by
-- a logical replication apply worker: that is the publisher's purge_audit
-- (whose own audit row replicates as an INSERT), and the publisher's copy
-- of this trigger let nothing else through.
CREATE FUNCTION apikeys._audit_append_only_trigger()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'DELETE' AND
       (apikeys._op_event() IS NOT DISTINCT FROM 'purge' OR apikeys._in_apply_worker()) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the API key audit log is append-only'
        USING ERRCODE = '42501',
              HINT = 'Use apikeys.purge_audit(older_than) to apply a retention period.';
END
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON apikeys.audit_log
    FOR EACH ROW EXECUTE FUNCTION apikeys._audit_append_only_trigger();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON apikeys.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION apikeys._audit_append_only_trigger();

-- ENABLE ALWAYS: a session with session_replication_role = replica (a
-- superuser's, a restore's, a logical replication apply worker's) must not
-- get around append-only either.  Apply workers may still apply the
-- publisher's purge (see the function above).
ALTER TABLE apikeys.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
ALTER TABLE apikeys.audit_log ENABLE ALWAYS TRIGGER audit_log_no_truncate;

-- A TRUNCATE of the keys would bypass the row trigger: refuse it.
CREATE FUNCTION apikeys._keys_no_truncate_trigger()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'apikeys.keys cannot be truncated'
        USING ERRCODE = '42501',
              HINT = 'Use apikeys.revoke_all_keys() or apikeys.delete_key(), which are audited.';
END
$$;

CREATE TRIGGER keys_no_truncate
    BEFORE TRUNCATE ON apikeys.keys
    FOR EACH STATEMENT EXECUTE FUNCTION apikeys._keys_no_truncate_trigger();
-- ALWAYS as well: a replica-mode TRUNCATE would empty the table behind the
-- cache's back.  Replica-mode INSERT, UPDATE and DELETE (restore, logical
-- replication apply) stay allowed: keys_cache sees them.
ALTER TABLE apikeys.keys ENABLE ALWAYS TRIGGER keys_no_truncate;
-- Invalidates the shared verification cache when a key changes.  ENABLE
-- ALWAYS: it must also fire under session_replication_role = replica
-- (logical replication apply).
CREATE TRIGGER keys_cache
    AFTER UPDATE OR DELETE ON apikeys.keys
    FOR EACH ROW EXECUTE FUNCTION apikeys._keys_cache_trigger();
ALTER TABLE apikeys.keys ENABLE ALWAYS TRIGGER keys_cache;

-- ALTER TABLE fires no row trigger, yet it can change what the cache must
-- answer: ALTER COLUMN ... TYPE ... USING rewrites every row, and DISABLE
-- TRIGGER ALL / ENABLE TRIGGER ALL (which pg_restore --disable-triggers
-- emits) turns the ALWAYS triggers above into ORIGIN ones, so a replica-mode
-- UPDATE (restore, logical replication apply) would no longer invalidate and
-- a replica-mode TRUNCATE or DELETE of audit rows would get through.  After
-- every ALTER TABLE of keys or audit_log this event trigger sets those
-- triggers back to ENABLE ALWAYS (also when they were disabled: none of them
-- fires on the INSERTs or COPY a restore runs) and outdates the whole shared
-- cache at commit.  SECURITY DEFINER because it runs for every ALTER TABLE
-- in the database, also of roles that cannot see this schema.
CREATE FUNCTION apikeys._ddl_guard()
    RETURNS event_trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands() c
                    WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND (c.objid OPERATOR(pg_catalog.=) 'apikeys.keys'::pg_catalog.regclass
                           OR c.objid OPERATOR(pg_catalog.=) 'apikeys.audit_log'::pg_catalog.regclass)) THEN
        RETURN;
    END IF;
    FOR t IN SELECT tg.tgrelid::pg_catalog.regclass AS rel, tg.tgname
               FROM pg_catalog.pg_trigger tg
              WHERE ((tg.tgrelid OPERATOR(pg_catalog.=) 'apikeys.keys'::pg_catalog.regclass
                      AND (tg.tgname OPERATOR(pg_catalog.=) 'keys_cache'
                           OR tg.tgname OPERATOR(pg_catalog.=) 'keys_no_truncate'))
                  OR (tg.tgrelid OPERATOR(pg_catalog.=) 'apikeys.audit_log'::pg_catalog.regclass
                      AND (tg.tgname OPERATOR(pg_catalog.=) 'audit_log_append_only'
                           OR tg.tgname OPERATOR(pg_catalog.=) 'audit_log_no_truncate')))
                AND tg.tgenabled OPERATOR(pg_catalog.<>) 'A'
    LOOP
        -- nested ALTER TABLE: fires this again, which then finds nothing to do
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', t.rel, t.tgname);
    END LOOP;
    PERFORM apikeys._cache_invalidate_all();
END
$$;

CREATE EVENT TRIGGER apikeys_ddl_guard
    ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION apikeys._ddl_guard();
-- event triggers, too, follow session_replication_role unless ALWAYS
ALTER EVENT TRIGGER apikeys_ddl_guard ENABLE ALWAYS;

-- Rate limits need shared memory: say so when one is set without it.
CREATE FUNCTION apikeys._rate_limit_warning_trigger()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.rate_limit IS NOT NULL AND NOT apikeys._preloaded() THEN
        RAISE WARNING 'rate limit of API key "%" is not enforced', NEW.client_id
            USING DETAIL = 'Rate limits are kept in shared memory.',
                  HINT = 'Add apikeys to "shared_preload_libraries" and restart the server.';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER keys_rate_limit_warning
    AFTER INSERT OR UPDATE OF rate_limit ON apikeys.keys
    FOR EACH ROW EXECUTE FUNCTION apikeys._rate_limit_warning_trigger();

--------------------------------------------------------------------------------
-- Views
--------------------------------------------------------------------------------

-- Last use: the stored time, or a later one still in the journal.
CREATE VIEW apikeys.key_list AS
SELECT k.client_id,
       k.owner,
       k.name,
       k.description,
       k.scopes,
       CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'
            WHEN k.disabled_at IS NOT NULL THEN 'disabled'
            WHEN k.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now() THEN 'expired'
            ELSE 'active' END AS status,
       k.created_at,
       k.created_by,
       k.expires_at,
       GREATEST(k.last_used_at, apikeys._recent_use(k.client_id)) AS last_used_at,
       k.contact_email,
       k.contact_phone,
       k.allowed_cidrs,
       COALESCE(k.metadata, '{}'::jsonb) AS metadata,
       k.db_role,
       k.rate_limit,
       k.rate_window,
       k.disabled_at,
       k.revoked_at,
       k.prev_expires_at AS old_secret_valid_until
  FROM apikeys.keys k;

-- apikeys.key_hygiene: the keys an administrator should look at, each with
-- its findings, so a periodic review (or an alert) is one SELECT:
--   full_access          holds the lone "*" scope
--   expires_soon         expires within 14 days (plan the replacement)
--   never_used           not used in the 7 days since it was issued
--   unused_90_days       last used more than 90 days ago (revoke it?)
--   no_contact           no contact email or phone to warn before expiry
--   old_secret_in_grace  a rotation's previous secret still works
-- Only live keys (active or disabled) appear, and only with a finding.
-- A view over apikeys.keys, run with the extension owner's rights like
-- key_list, showing no secret or hash.
CREATE VIEW apikeys.key_hygiene AS
SELECT k.client_id,
       k.owner,
       k.name,
       CASE WHEN k.disabled_at IS NOT NULL THEN 'disabled' ELSE 'active' END AS status,
       k.created_at,
       k.expires_at,
       k.last_used_at,
       f.findings
  FROM (SELECT k0.client_id, k0.owner, k0.name, k0.disabled_at, k0.revoked_at,
               k0.created_at, k0.expires_at, k0.scopes, k0.contact_email,
               k0.contact_phone, k0.prev_secret_hash, k0.prev_expires_at,
               GREATEST(k0.last_used_at, apikeys._recent_use(k0.client_id)) AS last_used_at
          FROM apikeys.keys k0) k,
       LATERAL (SELECT pg_catalog.array_remove(ARRAY[
                    CASE WHEN '*'::text OPERATOR(pg_catalog.=) ANY (k.scopes::text[])
                         THEN 'full_access' END,
                    CASE WHEN k.expires_at OPERATOR(pg_catalog.<)
                              (pg_catalog.now() OPERATOR(pg_catalog.+) '14 days'::interval)
                         THEN 'expires_soon' END,
                    CASE WHEN k.last_used_at IS NULL
                          AND k.created_at OPERATOR(pg_catalog.<)
                              (pg_catalog.now() OPERATOR(pg_catalog.-) '7 days'::interval)
                         THEN 'never_used' END,
                    CASE WHEN k.last_used_at OPERATOR(pg_catalog.<)
                              (pg_catalog.now() OPERATOR(pg_catalog.-) '90 days'::interval)
                         THEN 'unused_90_days' END,
                    CASE WHEN k.contact_email IS NULL AND k.contact_phone IS NULL
                         THEN 'no_contact' END,
                    CASE WHEN k.prev_secret_hash IS NOT NULL
                          AND k.prev_expires_at OPERATOR(pg_catalog.>) pg_catalog.now()
                         THEN 'old_secret_in_grace' END
                ]::text[], NULL) AS findings) f
 WHERE k.revoked_at IS NULL
   AND k.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()
   AND pg_catalog.cardinality(f.findings) OPERATOR(pg_catalog.>) 0;

-- Usage: the rolled-up hours plus what the journal holds.
CREATE VIEW apikeys.key_usage AS
SELECT s.client_id, s.hour, s.code, pg_catalog.sum(s.count)::bigint AS count
  FROM (SELECT u.client_id, u.hour, u.code, u.count
          FROM apikeys.usage u
        UNION ALL
        SELECT d.client_id COLLATE "C", pg_catalog.date_trunc('hour', j.flushed_at), d.code, d.count
          FROM apikeys.usage_journal j,
               LATERAL apikeys._journal_decode(j.data) d
         WHERE d.code IS NOT NULL) s
 GROUP BY s.client_id, s.hour, s.code;

-- The noisiest client addresses (IPv4, or IPv6 /64) in their current
-- failure window: one row per address, never one per attempt.
CREATE VIEW apikeys.failing_addresses AS
SELECT f.address, f.failures, f.window_start, f.window_end, f.blocked, f.blocked_attempts
  FROM apikeys._failing_addresses() f
 ORDER BY f.failures DESC, f.address;

--------------------------------------------------------------------------------
-- Row-level security for user tables
--------------------------------------------------------------------------------

-- _protected_record / _protected_forget keep protect()'s bookkeeping.  They
-- run as the extension owner (the table is not PUBLIC-writable) and act
-- only for the owner of the table in question.
CREATE FUNCTION apikeys._protected_record(p_tbl regclass, p_owner_column name, p_resource text,
                                          p_public_filter text, p_enabled_rls boolean,
                                          p_forced_rls boolean)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_catalog.pg_has_role(apikeys._outer_user()::name,
              (SELECT relowner FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) p_tbl), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', p_tbl USING ERRCODE = '42501';
    END IF;
    -- A row left by a dropped table whose OID was reused is replaced.
    INSERT INTO apikeys.protected_tables AS t (tbl, owner_column, resource, public_filter, enabled_rls, forced_rls)
    VALUES (p_tbl, p_owner_column, p_resource, p_public_filter, p_enabled_rls, p_forced_rls)
    ON CONFLICT (tbl) DO UPDATE
       SET owner_column = EXCLUDED.owner_column, resource = EXCLUDED.resource,
           public_filter = EXCLUDED.public_filter, enabled_rls = EXCLUDED.enabled_rls,
           forced_rls = EXCLUDED.forced_rls;
    -- Forget tables dropped without unprotect().
    DELETE FROM apikeys.protected_tables t
     WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) t.tbl);
END
$$;

CREATE FUNCTION apikeys._protected_forget(p_tbl regclass)
    RETURNS apikeys.protected_tables
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p apikeys.protected_tables;
BEGIN
    IF NOT pg_catalog.pg_has_role(apikeys._outer_user()::name,
              (SELECT relowner FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) p_tbl), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', p_tbl USING ERRCODE = '42501';
    END IF;
    DELETE FROM apikeys.protected_tables t WHERE t.tbl OPERATOR(pg_catalog.=) p_tbl RETURNING * INTO p;
    RETURN p;
END
$$;

-- protect: RLS policies mapping SELECT/INSERT/UPDATE/DELETE to
-- resource:read/create/update/delete for keys of the row's owner.
-- Runs as the caller, who must own tbl.
CREATE FUNCTION apikeys.protect(tbl regclass, owner_column name,
                                resource text DEFAULT NULL,
                                public_filter text DEFAULT NULL,
                                force boolean DEFAULT false)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_res text;
    v_own text;
    v_pub text;
    v_type text;
    c record;
BEGIN
    IF tbl IS NULL OR owner_column IS NULL THEN
        RAISE EXCEPTION 'table and owner column are required' USING ERRCODE = '22023';
    END IF;
    SELECT relname, relrowsecurity, relforcerowsecurity, relkind INTO c
      FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) tbl;
    IF c.relkind OPERATOR(pg_catalog.<>) ALL (ARRAY['r'::"char", 'p'::"char"]) THEN
        RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = '22023';
    END IF;
    IF NOT pg_catalog.pg_has_role(CURRENT_USER,
              (SELECT relowner FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) tbl), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', tbl USING ERRCODE = '42501';
    END IF;
    SELECT pg_catalog.format_type(a.atttypid, NULL) INTO v_type
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid OPERATOR(pg_catalog.=) tbl
       AND a.attname OPERATOR(pg_catalog.=) owner_column
       AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped;
    IF v_type IS NULL THEN
        RAISE EXCEPTION 'column "%" of table % does not exist', owner_column, tbl
            USING ERRCODE = '22023';
    END IF;
    v_res := COALESCE(resource, c.relname);
    -- validate resource through the scope grammar (22023 on failure)
    PERFORM (v_res OPERATOR(pg_catalog.||) ':read')::apikeys.scope;

    -- idempotent: undo an earlier protect() first
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_policy
                WHERE polrelid OPERATOR(pg_catalog.=) tbl
                  AND polname OPERATOR(pg_catalog.=) 'apikeys_read') THEN
        PERFORM apikeys.unprotect(tbl);
        SELECT relrowsecurity, relforcerowsecurity INTO c.relrowsecurity, c.relforcerowsecurity
          FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) tbl;
    END IF;

    -- The key's owner is cast to the column's type (text, uuid, bigint ...),
    -- so an index on the owner column serves the policy.  The type modifier
    -- is dropped: a cast to varchar(n) would truncate, and a truncated
    -- owner could match someone else's rows.
    v_own := pg_catalog.format('(%I OPERATOR(pg_catalog.=) (apikeys.current_owner())::%s)',
                               owner_column, v_type);
    v_pub := CASE WHEN public_filter IS NOT NULL AND public_filter OPERATOR(pg_catalog.<>) ''
                  THEN pg_catalog.format(' OR (%s)', public_filter) ELSE '' END;

    EXECUTE pg_catalog.format('CREATE POLICY apikeys_read ON %s FOR SELECT USING ((%s AND apikeys.has_scope(%L))%s)',
                              tbl, v_own, v_res OPERATOR(pg_catalog.||) ':read', v_pub);
    EXECUTE pg_catalog.format('CREATE POLICY apikeys_create ON %s FOR INSERT WITH CHECK (%s AND apikeys.has_scope(%L))',
                              tbl, v_own, v_res OPERATOR(pg_catalog.||) ':create');
    EXECUTE pg_catalog.format('CREATE POLICY apikeys_update ON %s FOR UPDATE USING (%s AND apikeys.has_scope(%L)) WITH CHECK (%s AND apikeys.has_scope(%L))',
                              tbl, v_own, v_res OPERATOR(pg_catalog.||) ':update',
                              v_own, v_res OPERATOR(pg_catalog.||) ':update');
    EXECUTE pg_catalog.format('CREATE POLICY apikeys_delete ON %s FOR DELETE USING (%s AND apikeys.has_scope(%L))',
                              tbl, v_own, v_res OPERATOR(pg_catalog.||) ':delete');
    EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    IF force THEN
        EXECUTE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    END IF;

    PERFORM apikeys._protected_record(tbl, owner_column, v_res, NULLIF(public_filter, ''),
                                      NOT c.relrowsecurity, force AND NOT c.relforcerowsecurity);
END
$$;

-- unprotect removes exactly what protect created: its four policies, and
-- RLS itself only if protect was the one to turn it on.
CREATE FUNCTION apikeys.unprotect(tbl regclass)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p apikeys.protected_tables;
    pol text;
BEGIN
    p := apikeys._protected_forget(tbl);
    IF p.tbl IS NULL THEN
        RAISE EXCEPTION 'table % is not protected by apikeys', tbl
            USING ERRCODE = '55000', HINT = 'Use apikeys.protect() first.';
    END IF;
    FOREACH pol IN ARRAY ARRAY['apikeys_read', 'apikeys_create', 'apikeys_update', 'apikeys_delete'] LOOP
        EXECUTE pg_catalog.format('DROP POLICY IF EXISTS %I ON %s', pol, tbl);
    END LOOP;
    IF p.forced_rls THEN
        EXECUTE pg_catalog.format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', tbl);
    END IF;
    IF p.enabled_rls THEN
        EXECUTE pg_catalog.format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', tbl);
    END IF;
END
$$;

-- create_field_view: a view of a protected table that shows each column
-- only to keys allowed to read that field (resource:read(field, ...));
-- other columns read as NULL.  The view is security_invoker, so the
-- table's RLS still decides which rows are visible.  An unqualified
-- view_name is created in the table's schema.
CREATE FUNCTION apikeys.create_field_view(view_name text, tbl regclass,
                                          resource text DEFAULT NULL,
                                          always_visible name[] DEFAULT '{}')
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_res text;
    cols text;
    v_name text[];
    v_view text;
BEGIN
    IF view_name IS NULL OR view_name OPERATOR(pg_catalog.=) '' OR tbl IS NULL THEN
        RAISE EXCEPTION 'view name and table are required' USING ERRCODE = '22023';
    END IF;
    -- This function runs with search_path = pg_catalog, so an unqualified
    -- name would land there: it goes into the table's schema instead.
    v_name := pg_catalog.parse_ident(view_name);
    IF pg_catalog.cardinality(v_name) OPERATOR(pg_catalog.=) 1 THEN
        v_view := pg_catalog.format('%I.%I',
                      (SELECT n.nspname FROM pg_catalog.pg_class c
                         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                        WHERE c.oid OPERATOR(pg_catalog.=) tbl),
                      v_name[1]);
    ELSIF pg_catalog.cardinality(v_name) OPERATOR(pg_catalog.=) 2 THEN
        v_view := pg_catalog.format('%I.%I', v_name[1], v_name[2]);
    ELSE
        RAISE EXCEPTION 'invalid view name "%"', view_name USING ERRCODE = '22023',
            HINT = 'Give a view name, optionally qualified by a schema name.';
    END IF;
    v_res := COALESCE(resource, (SELECT relname FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) tbl));
    PERFORM (v_res OPERATOR(pg_catalog.||) ':read')::apikeys.scope;

    SELECT pg_catalog.string_agg(
               CASE WHEN a.attname OPERATOR(pg_catalog.=) ANY (always_visible)
                    THEN pg_catalog.quote_ident(a.attname)
                    ELSE pg_catalog.format('CASE WHEN apikeys.field_allowed(%L, %L) THEN %I END AS %I',
                                           v_res, a.attname, a.attname, a.attname) END,
               ', ' ORDER BY a.attnum)
      INTO cols
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped;

    EXECUTE pg_catalog.format('CREATE VIEW %s WITH (security_invoker = true, security_barrier = true) AS SELECT %s FROM %s',
                              v_view, cols, tbl);
END
$$;

--------------------------------------------------------------------------------
-- Grants
--
-- The rule: PUBLIC gets the context functions (RLS policies on user tables
-- call them), report_leaked and the scope type's functions.
-- apikeys_verifier gets verify, verify_client, authenticate and
-- pre_request.  apikeys_admin gets those, every key-management function
-- and SELECT on key_list and audit_log.  Internal functions (_*) and the
-- tables belong to the extension owner alone.
--------------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA apikeys FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA apikeys FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    apikeys.scope_in(cstring),
    apikeys.scope_out(apikeys.scope),
    apikeys.scope_eq(apikeys.scope, apikeys.scope),
    apikeys.scope_ne(apikeys.scope, apikeys.scope),
    apikeys.scope_cmp(apikeys.scope, apikeys.scope),
    apikeys.scope_lt(apikeys.scope, apikeys.scope),
    apikeys.scope_le(apikeys.scope, apikeys.scope),
    apikeys.scope_gt(apikeys.scope, apikeys.scope),
    apikeys.scope_ge(apikeys.scope, apikeys.scope),
    apikeys.scope_hash(apikeys.scope),
    apikeys.scope_grants(apikeys.scope, apikeys.scope),
    apikeys.scopes_grant(apikeys.scope[], apikeys.scope),
    apikeys.token_client_id(text),
    apikeys.current_client_id(),
    apikeys.current_owner(),
    apikeys.current_scopes(),
    apikeys.has_scope(text),
    apikeys.require_scope(text),
    apikeys.field_allowed(text, text),
    apikeys.report_leaked(text),
    apikeys.protect(regclass, name, text, text, boolean),
    apikeys.unprotect(regclass),
    apikeys.create_field_view(text, regclass, text, name[]),
    apikeys._protected_record(regclass, name, text, text, boolean, boolean),
    apikeys._protected_forget(regclass)
TO PUBLIC;

GRANT EXECUTE ON FUNCTION
    apikeys.verify(text, text, inet),
    apikeys.verify_client(text, text, text, inet),
    apikeys.authenticate(text, text, inet),
    apikeys.pre_request(),
    apikeys.pre_request(text)
TO apikeys_verifier, apikeys_admin;

GRANT EXECUTE ON FUNCTION
    apikeys.create_key(text, text, text[], timestamptz, text, text, text, cidr[], jsonb, name, integer, interval),
    apikeys.rotate_key(text, interval),
    apikeys.disable_key(text, text),
    apikeys.enable_key(text),
    apikeys.revoke_key(text, text),
    apikeys.revoke_all_keys(text, text),
    apikeys.delete_key(text),
    apikeys.update_key(text, text, text, text[], timestamptz, text, text, cidr[], jsonb, name, integer, interval),
    apikeys.set_owner_policy(text, integer, interval),
    apikeys.purge_audit(interval)
TO apikeys_admin;

GRANT SELECT ON apikeys.key_list, apikeys.audit_log TO apikeys_admin;

GRANT EXECUTE ON FUNCTION
    apikeys.flush_usage(boolean),
    apikeys._failing_addresses(),
    apikeys._journal_decode(bytea),
    apikeys._recent_use(text),
    apikeys.cache_stats(),
    apikeys.usage_stats(),
    apikeys.cache_prewarm()
TO apikeys_admin;

GRANT SELECT ON apikeys.key_usage, apikeys.failing_addresses, apikeys.key_hygiene TO apikeys_admin;

--------------------------------------------------------------------------------
-- Comments
--------------------------------------------------------------------------------
COMMENT ON SCHEMA apikeys IS 'API keys: issuance, hashed verification, scopes and row-level security';

COMMENT ON TYPE apikeys.scope IS 'A permission: resource:action, resource:action(field, ...), resource:* or *';
COMMENT ON TYPE apikeys.new_key IS 'A newly issued or rotated key; the only place its secret ever appears';
COMMENT ON TYPE apikeys.verification IS 'Outcome of verify/verify_client/authenticate: valid, code, and the key''s identity once its secret matched';

COMMENT ON TABLE apikeys.keys IS 'API keys: one row per key, holding only a hash of the secret (extension owner only)';
COMMENT ON TABLE apikeys.owner_policies IS 'Per-owner key cap and maximum lifetime (extension owner only)';
COMMENT ON TABLE apikeys.audit_log IS 'Append-only audit trail of every key change; never holds a secret or hash';
COMMENT ON TABLE apikeys.protected_tables IS 'Tables set up by apikeys.protect(), so unprotect() can undo exactly that';
COMMENT ON VIEW apikeys.key_list IS 'API keys for administrators: metadata and status, never secrets or hashes';

COMMENT ON COLUMN apikeys.audit_log.actor IS 'session_user of the change';
COMMENT ON COLUMN apikeys.audit_log.db_user IS 'current_user as set by the caller (SET ROLE), outside SECURITY DEFINER';
COMMENT ON COLUMN apikeys.audit_log.detail IS 'What changed (old -> new), reasons and counts; never secrets';
COMMENT ON COLUMN apikeys.key_list.status IS 'active, disabled, revoked or expired';
COMMENT ON COLUMN apikeys.key_list.old_secret_valid_until IS 'After a rotation with grace: when the previous secret stops working';

COMMENT ON FUNCTION apikeys.scope_in(cstring) IS 'Input function of apikeys.scope (validates the grammar, SQLSTATE 22023)';
COMMENT ON FUNCTION apikeys.scope_out(apikeys.scope) IS 'Output function of apikeys.scope';
COMMENT ON FUNCTION apikeys.scope_eq(apikeys.scope, apikeys.scope) IS 'Equality of canonical scopes';
COMMENT ON FUNCTION apikeys.scope_ne(apikeys.scope, apikeys.scope) IS 'Inequality of canonical scopes';
COMMENT ON FUNCTION apikeys.scope_cmp(apikeys.scope, apikeys.scope) IS 'Bytewise order of canonical scopes (btree support)';
COMMENT ON FUNCTION apikeys.scope_lt(apikeys.scope, apikeys.scope) IS 'Bytewise order of canonical scopes';
COMMENT ON FUNCTION apikeys.scope_le(apikeys.scope, apikeys.scope) IS 'Bytewise order of canonical scopes';
COMMENT ON FUNCTION apikeys.scope_gt(apikeys.scope, apikeys.scope) IS 'Bytewise order of canonical scopes';
COMMENT ON FUNCTION apikeys.scope_ge(apikeys.scope, apikeys.scope) IS 'Bytewise order of canonical scopes';
COMMENT ON FUNCTION apikeys.scope_hash(apikeys.scope) IS 'Hash of a canonical scope (hash index and hash join support)';
COMMENT ON FUNCTION apikeys.scope_grants(apikeys.scope, apikeys.scope) IS 'Does the granted scope satisfy the required one? (operator @>)';
COMMENT ON FUNCTION apikeys.scopes_grant(apikeys.scope[], apikeys.scope) IS 'Does a set of granted scopes satisfy the required one? (operator @>)';
COMMENT ON FUNCTION apikeys.token_client_id(text) IS 'The client ID inside a well-formed token (checksum checked), or NULL';
COMMENT ON FUNCTION apikeys.verify(text, text, inet) IS 'Checks a token (and optionally a scope and client address); answers a code, never raises for a bad token';
COMMENT ON FUNCTION apikeys.verify_client(text, text, text, inet) IS 'Like verify, for a client ID and client secret presented separately';
COMMENT ON FUNCTION apikeys.authenticate(text, text, inet) IS 'Verifies a token and makes it this transaction''s identity; raises 28000/42501/54000 on failure';
COMMENT ON FUNCTION apikeys.current_client_id() IS 'Client ID authenticated in this transaction, or NULL';
COMMENT ON FUNCTION apikeys.current_owner() IS 'Owner of the key authenticated in this transaction, or NULL';
COMMENT ON FUNCTION apikeys.current_scopes() IS 'Scopes of the key authenticated in this transaction, or NULL';
COMMENT ON FUNCTION apikeys.has_scope(text) IS 'Does the key authenticated in this transaction hold this scope?';
COMMENT ON FUNCTION apikeys.require_scope(text) IS 'Raises 42501 unless the key authenticated in this transaction holds this scope';
COMMENT ON FUNCTION apikeys.field_allowed(text, text) IS 'May the key authenticated in this transaction read this field of this resource?';
COMMENT ON FUNCTION apikeys.pre_request(text) IS 'Like pre_request(), and a presented key must also hold required_scope (else PGRST 403); for a db-pre-request wrapper that maps method and path to a scope';
COMMENT ON FUNCTION apikeys.pre_request() IS 'PostgREST db-pre-request: authenticates x-api-key / apikey / Basic, raises PGRST with the HTTP status on failure';
COMMENT ON FUNCTION apikeys.create_key(text, text, text[], timestamptz, text, text, text, cidr[], jsonb, name, integer, interval) IS 'Issues a key; returns its secret and token, shown this once';
COMMENT ON FUNCTION apikeys.rotate_key(text, interval) IS 'Replaces a key''s secret; the old one works until now() + grace (never past expiry)';
COMMENT ON FUNCTION apikeys.disable_key(text, text) IS 'Disables a key until enable_key (reversible)';
COMMENT ON FUNCTION apikeys.enable_key(text) IS 'Re-enables a disabled key';
COMMENT ON FUNCTION apikeys.revoke_key(text, text) IS 'Revokes a key forever';
COMMENT ON FUNCTION apikeys.revoke_all_keys(text, text) IS 'Revokes every key of an owner forever; returns how many';
COMMENT ON FUNCTION apikeys.delete_key(text) IS 'Deletes a key; its audit trail stays';
COMMENT ON FUNCTION apikeys.update_key(text, text, text, text[], timestamptz, text, text, cidr[], jsonb, name, integer, interval) IS 'Changes a key''s settings; NULL leaves a setting, '''' (or {} / 0) clears it; expiry can only be shortened';
COMMENT ON FUNCTION apikeys.set_owner_policy(text, integer, interval) IS 'Sets an owner''s key cap and maximum key lifetime';
COMMENT ON FUNCTION apikeys.purge_audit(interval) IS 'Deletes audit rows older than the interval; leaves its own audit row';
COMMENT ON FUNCTION apikeys.report_leaked(text) IS 'Anyone may report a leaked token: a valid one is revoked; says nothing either way';
COMMENT ON FUNCTION apikeys.protect(regclass, name, text, text, boolean) IS 'Enables RLS on a table: rows visible/changeable only to keys of the row''s owner with resource:read/create/update/delete';
COMMENT ON FUNCTION apikeys.unprotect(regclass) IS 'Removes exactly what apikeys.protect created';
COMMENT ON FUNCTION apikeys.create_field_view(text, regclass, text, name[]) IS 'Creates a view showing each column only to keys allowed to read that field; others read as NULL';
COMMENT ON FUNCTION apikeys._mint(text) IS 'Internal: draws a client ID and secret, builds the token, hashes the secret';
COMMENT ON FUNCTION apikeys._op_begin(text, jsonb) IS 'Internal: labels the audit rows of the change that follows';
COMMENT ON FUNCTION apikeys._op_end() IS 'Internal: clears the audit label';
COMMENT ON FUNCTION apikeys._op_event() IS 'Internal: the current audit label';
COMMENT ON FUNCTION apikeys._op_detail() IS 'Internal: the current audit detail';
COMMENT ON FUNCTION apikeys._outer_user() IS 'Internal: current_user as the caller set it, outside SECURITY DEFINER';
COMMENT ON FUNCTION apikeys._audit(text, text, text, jsonb) IS 'Internal: appends an audit row and sends NOTIFY apikeys_events';
COMMENT ON FUNCTION apikeys._key_row(text, boolean) IS 'Internal: finds and locks a key for a change';
COMMENT ON FUNCTION apikeys._owner_limits(text) IS 'Internal: an owner''s effective key cap and maximum lifetime';
COMMENT ON FUNCTION apikeys._check_text(text, text, integer, boolean) IS 'Internal: validates a text argument';
COMMENT ON FUNCTION apikeys._check_settings(text[], text, text, text, cidr[], jsonb, text, integer, interval) IS 'Internal: validates a key''s settings';
COMMENT ON FUNCTION apikeys._check_expiry(timestamptz, interval) IS 'Internal: validates an expiry against the maximum lifetime';
COMMENT ON FUNCTION apikeys._protected_record(regclass, name, text, text, boolean, boolean) IS 'Internal: records what protect() did (table owner only)';
COMMENT ON FUNCTION apikeys._protected_forget(regclass) IS 'Internal: forgets and returns what protect() did (table owner only)';
COMMENT ON FUNCTION apikeys._keys_audit_trigger() IS 'Internal: audits every UPDATE and DELETE of apikeys.keys';
COMMENT ON FUNCTION apikeys._audit_append_only_trigger() IS 'Internal: keeps apikeys.audit_log append-only';
COMMENT ON FUNCTION apikeys._keys_no_truncate_trigger() IS 'Internal: refuses TRUNCATE of apikeys.keys';

COMMENT ON TABLE apikeys.usage IS 'Verification counts per key, per hour, per outcome code, written by the hourly rollup of the usage journal (extension owner only)';
COMMENT ON VIEW apikeys.failing_addresses IS 'Client addresses (IPv6: /64) with failed verifications in their current window, noisiest first';
COMMENT ON COLUMN apikeys.failing_addresses.blocked IS 'Reached apikeys.max_failures: attempts answer RATE_LIMITED until window_end';
COMMENT ON FUNCTION apikeys.cache_stats() IS 'Size and use of the shared verification cache (NULLs when not preloaded)';
COMMENT ON FUNCTION apikeys.usage_stats() IS 'Size and use of the shared usage, failure and rate-limit tables (NULLs when not preloaded)';
COMMENT ON FUNCTION apikeys._failing_addresses() IS 'Internal: the address failure table behind apikeys.failing_addresses';
COMMENT ON FUNCTION apikeys._keys_cache_trigger() IS 'Internal: invalidates the shared verification cache entry of a changed or deleted key';
COMMENT ON FUNCTION apikeys._cache_invalidate_all() IS 'Internal: outdates every entry of the shared verification cache when the transaction ends';
COMMENT ON FUNCTION apikeys._in_apply_worker() IS 'Internal: is this session a logical replication apply worker?';
COMMENT ON FUNCTION apikeys._ddl_guard() IS 'Internal: after ALTER TABLE of keys or audit_log, re-enables their ALWAYS triggers and outdates the shared cache';
COMMENT ON EVENT TRIGGER apikeys_ddl_guard IS 'Keeps the ALWAYS triggers of apikeys.keys and apikeys.audit_log ALWAYS, and the shared cache fresh, after ALTER TABLE';
COMMENT ON FUNCTION apikeys._preloaded() IS 'Internal: is apikeys in shared_preload_libraries?';
COMMENT ON FUNCTION apikeys._rate_limit_warning_trigger() IS 'Internal: warns that rate limits are not enforced without shared_preload_libraries';
COMMENT ON VIEW apikeys.key_hygiene IS 'Live keys that need attention, with findings: full_access, expires_soon, never_used, unused_90_days, no_contact, old_secret_in_grace';
COMMENT ON COLUMN apikeys.key_hygiene.findings IS 'Why the key is listed; see the view''s comment';
COMMENT ON FUNCTION apikeys.cache_prewarm() IS 'Fills the shared verification cache with this database''s live keys, most recently used first, up to its capacity; returns keys loaded (0 when not preloaded or on a standby)';
COMMENT ON TABLE apikeys.usage_journal IS 'Usage flushed from shared memory and not yet rolled up into apikeys.usage: one packed row per flush (extension owner only)';
COMMENT ON COLUMN apikeys.usage_journal.keys IS 'Keys whose numbers the row holds';
COMMENT ON FUNCTION apikeys._journal_decode(bytea) IS 'Internal: the keys, codes, counts and last-use times of a usage journal row';
COMMENT ON FUNCTION apikeys._recent_use(text) IS 'Internal: a key''s last use flushed to the usage journal and not yet rolled up (NULL when none)';
COMMENT ON FUNCTION apikeys.flush_usage(boolean) IS 'Writes this database''s usage now: with rollup (the default) into apikeys.usage and last_used_at, returning usage rows written; without, as one journal row like the background worker, returning keys written';
COMMENT ON VIEW apikeys.key_usage IS 'Verification counts per key, per hour, per outcome code (rolled-up hours and the usage journal; flushed every apikeys.flush_interval when preloaded)';
