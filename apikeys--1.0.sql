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
-- apikeys_delivery  drains the outbox (reads it, takes, marks done or retry).
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
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'apikeys_delivery') THEN
        EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', 'apikeys_delivery');
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
    retry_after     integer,
    http_status     integer,        -- what an HTTP API should answer: 200, 401, 403 or 429
    name            text,           -- the key's name and metadata, once its secret matched
    metadata        jsonb,
    rate_limit      integer,        -- the key's own rate limit (NULL: none) ...
    rate_remaining  integer,        -- ... requests left in its window after this one ...
    rate_reset      timestamptz     -- ... and when the window ends (NULL unless consulted)
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
    -- handoff: set while the key waits for claim_key (its hash is of a
    -- secret nobody has); when the current secret was set (rotation policy)
    pending_since       timestamptz,
    secret_set_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- self-service: the key that created this one (my_create_key), so that
    -- revoking a manager also revokes a child whose creation it was waiting
    -- for (revoke_key)
    created_by_key      text,
    -- self-service: the key that disabled this one (my_disable_key); NULL
    -- while disabled means an admin disabled it, and no key may enable it
    disabled_by_key     text,
    CONSTRAINT keys_hash_alg_check CHECK (hash_alg OPERATOR(pg_catalog.=) ANY (ARRAY['s'::"char", 'h'::"char", 'l'::"char"])),
    CONSTRAINT keys_secret_hash_check CHECK (pg_catalog.octet_length(secret_hash) OPERATOR(pg_catalog.=) 32)
);

CREATE INDEX keys_owner_idx ON apikeys.keys (owner);
-- an owner's live keys, for create_key's cap count
CREATE INDEX keys_owner_live_idx ON apikeys.keys (owner, expires_at)
    WHERE revoked_at IS NULL;
CREATE INDEX keys_created_by_key_idx ON apikeys.keys (created_by_key)
    WHERE created_by_key IS NOT NULL;
-- imported keys (hash_alg 'l': SHA-256 of the whole legacy token), found
-- by that hash when a token is not in apikeys' format (src/legacy.c)
CREATE UNIQUE INDEX keys_legacy_hash_idx ON apikeys.keys (secret_hash)
    WHERE hash_alg OPERATOR(pg_catalog.=) 'l'::"char";

-- Per-owner limits; a row appears when an owner gets a first key or a policy.
CREATE TABLE apikeys.owner_policies (
    owner           text PRIMARY KEY,
    max_keys        integer,
    max_lifetime    interval,
    keys_issued     bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- lifecycle policies: NULL takes the apikeys.default_* setting, '0' is off
    revoke_unused_after interval,
    warn_before_expiry  interval,
    rotate_every        interval,
    rate_limit          integer,
    rate_window         interval,
    -- self-service: management actions of the owner's keys in the current
    -- minute (apikeys.max_tenant_actions; _count_tenant_action)
    actions_since       timestamptz,
    actions             integer NOT NULL DEFAULT 0,
    CONSTRAINT owner_policies_max_keys_check CHECK (max_keys OPERATOR(pg_catalog.>) 0),
    CONSTRAINT owner_policies_max_lifetime_check CHECK (max_lifetime OPERATOR(pg_catalog.>) '0'::interval)
);
-- the owners with a rate limit (usually none): verification reads it once
-- after each change of this table to learn whether any owner has one
-- (src/ownerlimit.c); without it every verification looks its owner up
CREATE INDEX owner_policies_rate_limited_idx ON apikeys.owner_policies (owner)
    WHERE rate_limit IS NOT NULL;

-- Named scope sets ("roles"): a key holding '@name' grants what the set
-- grants at each verification (src/scopeset.c expands it when the key is
-- loaded).  The column order is part of the C code: add columns at the end.
CREATE TABLE apikeys.scope_sets (
    name            text COLLATE "C" PRIMARY KEY,
    scopes          apikeys.scope[] NOT NULL,
    description     text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT scope_sets_name_check CHECK (name OPERATOR(pg_catalog.~) '^[a-z][a-z0-9_]{0,62}$')
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
-- The VALID row of a key and hour also holds the key's last use in that
-- hour: key_list.last_used_at reads it from here (the rollup never updates
-- apikeys.keys, whose last_used_at is written only without preloading).
CREATE TABLE apikeys.usage (
    client_id   text COLLATE "C" NOT NULL,
    hour        timestamptz NOT NULL,
    code        text NOT NULL,
    count       bigint NOT NULL,
    last_used_at timestamptz,
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

-- Handoff claims: one row per link and code sent.  Only hashes are kept:
-- of the claim token, and of the token with the code (so the code's small
-- space cannot be searched without the token).  No foreign key to
-- apikeys.keys, so dump/restore needs no table order; claim_key checks
-- that the key still exists.
CREATE TABLE apikeys.claims (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id       text COLLATE "C" NOT NULL,
    token_hash      bytea NOT NULL,
    code_hash       bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at      timestamptz NOT NULL,
    failures        integer NOT NULL DEFAULT 0,
    claimed_at      timestamptz,
    locked_at       timestamptz,
    superseded_at   timestamptz,
    CONSTRAINT claims_token_hash_key UNIQUE (token_hash)
);

CREATE INDEX claims_client_id_idx ON apikeys.claims (client_id);

-- The outbox: durable events and deliveries, written in the transaction of
-- the change they report and drained by apikeys_delivery through
-- outbox_take / outbox_done / outbox_retry (at-least-once, leased).
CREATE TABLE apikeys.outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    event           text NOT NULL,
    client_id       text,
    owner           text,
    channel         text,
    recipient       text,
    payload         jsonb NOT NULL DEFAULT '{}',
    attempts        integer NOT NULL DEFAULT 0,
    available_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    delivered_at    timestamptz,
    leased_until    timestamptz,
    leased_by       text,
    last_error      text,
    failed_at       timestamptz,
    claim_id        bigint,
    CONSTRAINT outbox_channel_check CHECK (channel OPERATOR(pg_catalog.=) ANY (ARRAY['email'::text, 'sms'::text]))
);

CREATE INDEX outbox_pending_idx ON apikeys.outbox (id)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_claim_idx ON apikeys.outbox (claim_id) WHERE claim_id IS NOT NULL;

-- What apply_policies has already sent, so each notice goes out once: the
-- subject is the key's expires_at (expires_soon) or secret_set_at
-- (rotation_due), so a changed expiry or a new secret starts afresh.
CREATE TABLE apikeys.policy_notices (
    client_id       text COLLATE "C" NOT NULL,
    event           text NOT NULL,
    subject         timestamptz NOT NULL,
    sent_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT policy_notices_pkey PRIMARY KEY (client_id, event, subject)
);

-- Room on each page, so the rollup's last_used_at updates are HOT (that
-- column is in no index): no index writes, far less WAL and bloat.
ALTER TABLE apikeys.keys SET (fillfactor = 90);

--------------------------------------------------------------------------------
-- Dump configuration: keys, policies and the audit trail are user data.
--------------------------------------------------------------------------------
SELECT pg_catalog.pg_extension_config_dump('apikeys.keys', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.owner_policies', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.scope_sets', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.audit_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.protected_tables', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.usage', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.usage_journal', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.claims', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.claims_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.outbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.policy_notices', '');

--------------------------------------------------------------------------------
-- Row-level security on our own tables: no policies, so only the owner
-- (and superusers) see rows even if a privilege is granted by mistake.
--------------------------------------------------------------------------------
ALTER TABLE apikeys.keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE apikeys.owner_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE apikeys.scope_sets ENABLE ROW LEVEL SECURITY;
ALTER TABLE apikeys.protected_tables ENABLE ROW LEVEL SECURITY;
ALTER TABLE apikeys.usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE apikeys.usage_journal ENABLE ROW LEVEL SECURITY;
ALTER TABLE apikeys.claims ENABLE ROW LEVEL SECURITY;
ALTER TABLE apikeys.policy_notices ENABLE ROW LEVEL SECURITY;
-- the delivery role reads every outbox row (it is granted SELECT below);
-- nobody else has a policy
ALTER TABLE apikeys.outbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY outbox_delivery_read ON apikeys.outbox FOR SELECT TO apikeys_delivery USING (true);

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

-- Internal: the key a self-service function (my_*) acts for, named in the
-- audit rows of its changes (detail.by_key); cleared at transaction end.
CREATE FUNCTION apikeys._acting_begin(client_id text) RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_acting_begin'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;

CREATE FUNCTION apikeys._acting_key() RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_acting_key'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Internal: may a key holding granted give a key the scope required?  As
-- scopes_grant, except that a field-less scope needs a field-less grant
-- (the no-escalation subset test, src/scope.c ScopeArrayCovers).
-- Not STRICT (NULL in, NULL out, in C): a STRICT call with NULL constants
-- would be folded away before the EXECUTE privilege is checked.
CREATE FUNCTION apikeys._scopes_cover(granted apikeys.scope[], required apikeys.scope) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scopes_cover'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;

-- Internal: scopes with every '@name' replaced by the set's scopes, read
-- with the latest snapshot: the expansion verification makes (src/scopeset.c).
CREATE FUNCTION apikeys._expand_scopes(scopes apikeys.scope[]) RETURNS apikeys.scope[]
    AS 'MODULE_PATHNAME', 'apikeys_expand_scopes'
    LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL SAFE;

-- Internal: the first network of inner outside every network of outer,
-- both normalised as verification normalises them (src/grant.c); NULL
-- when all are inside.
CREATE FUNCTION apikeys._cidrs_outside(inner cidr[], outer cidr[]) RETURNS cidr
    AS 'MODULE_PATHNAME', 'apikeys_cidrs_outside'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;

-- Internal: an interval's length in microseconds as verification measures
-- a rate window (a month is 30 days; src/grant.c).
CREATE FUNCTION apikeys._interval_us(w interval) RETURNS bigint
    AS 'MODULE_PATHNAME', 'apikeys_interval_us'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;

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
-- src/counters.c, src/cache.c, src/journal.c, src/worker.c, src/lastused.c).  With apikeys in
-- shared_preload_libraries, verification counts usage, failures per client
-- address and rate-limit windows in shared memory and writes nothing; the
-- worker writes each apikeys.flush_interval's usage as one row of
-- apikeys.usage_journal, and a rollup about once an hour folds the journal
-- into apikeys.usage (counts and last-use times).  Without preloading,
-- last_used_at is written at most once per key per
-- apikeys.last_used_granularity and nothing else is kept.

-- Tells every backend to forget its cached owner-wide rate limits when an
-- owner's limit changes (src/ownerlimit.c).
CREATE FUNCTION apikeys._owner_limit_cache_trigger()
    RETURNS trigger
    AS 'MODULE_PATHNAME', 'apikeys_owner_limit_cache_trigger'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Outdates every cached key of the database when a scope set changes.
CREATE FUNCTION apikeys._scope_sets_cache_trigger()
    RETURNS trigger
    AS 'MODULE_PATHNAME', 'apikeys_scope_sets_cache_trigger'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION apikeys._keys_cache_trigger()
    RETURNS trigger
    AS 'MODULE_PATHNAME', 'apikeys_keys_cache_trigger'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Makes every backend read again whether the database holds imported keys.
CREATE FUNCTION apikeys._keys_legacy_cache_trigger()
    RETURNS trigger
    AS 'MODULE_PATHNAME', 'apikeys_keys_legacy_cache_trigger'
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

CREATE FUNCTION apikeys._failing_addresses(OUT address inet, OUT client_id text,
                                           OUT failures integer,
                                           OUT window_start timestamptz,
                                           OUT window_end timestamptz,
                                           OUT blocked boolean,
                                           OUT blocked_attempts bigint)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'apikeys_failing_addresses'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

-- Removes the failure records of an address or network (for
-- apikeys.unblock_address, which audits it).
CREATE FUNCTION apikeys._unblock_address(address inet, OUT blocks_lifted integer,
                                         OUT records_cleared integer)
    RETURNS record
    AS 'MODULE_PATHNAME', 'apikeys_unblock'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

CREATE FUNCTION apikeys.cache_stats(OUT shared boolean, OUT capacity bigint,
                                    OUT entries bigint, OUT entry_bytes integer,
                                    OUT shared_bytes bigint, OUT invalidations bigint,
                                    OUT session_hits bigint, OUT session_misses bigint,
                                    OUT arena_bytes bigint, OUT arena_used_bytes bigint,
                                    OUT arena_evictions bigint)
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

-- The server-wide counters behind apikeys.stats (src/stats.c): totals
-- since stats_since, NULL without shared_preload_libraries.
CREATE FUNCTION apikeys._stats(OUT stats_since timestamptz,
                               OUT verifications_valid bigint,
                               OUT verifications_malformed bigint,
                               OUT verifications_not_found bigint,
                               OUT verifications_expired bigint,
                               OUT verifications_disabled bigint,
                               OUT verifications_revoked bigint,
                               OUT verifications_insufficient_scope bigint,
                               OUT verifications_ip_not_allowed bigint,
                               OUT verifications_rate_limited bigint,
                               OUT cache_hits bigint, OUT cache_misses bigint,
                               OUT cache_evictions bigint,
                               OUT usage_keys_pending bigint, OUT usage_keys_dropped bigint,
                               OUT usage_flushes bigint, OUT usage_last_flush timestamptz,
                               OUT policy_runs bigint, OUT policy_actions bigint,
                               OUT policy_last_run timestamptz,
                               OUT addresses_failing bigint, OUT addresses_dropped bigint)
    RETURNS record
    AS 'MODULE_PATHNAME', 'apikeys_stats'
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

-- Proof of non-use, for revoke_unused_after (src/journal.c): why this
-- database cannot prove that a key without a recorded use in the last
-- unused_after was unused (NULL: it can); what that depends on; and the
-- superuser's way to accept the possible losses noted so far.
CREATE FUNCTION apikeys._usage_unproven(unused_after interval)
    RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_usage_unproven'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;

CREATE FUNCTION apikeys._usage_health(OUT lost_until timestamptz, OUT visits_not_started bigint,
                                      OUT journal_in_recent boolean)
    RETURNS record
    AS 'MODULE_PATHNAME', 'apikeys_usage_health'
    LANGUAGE C VOLATILE PARALLEL RESTRICTED;

CREATE FUNCTION apikeys._usage_accept_losses()
    RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_usage_accept_losses'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- After a restart the shared cache is empty, and every key's first
-- verification is a miss; this fills it at once, as pg_prewarm does for
-- buffers.  It reads apikeys.keys as the extension owner.
CREATE FUNCTION apikeys.cache_prewarm()
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'apikeys_cache_prewarm'
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;

-- Handoff (src/claim.c): claim secrets from pg_strong_random(), constant-
-- time hash comparison, and the claim's use of the address throttle.
CREATE FUNCTION apikeys._claim_secrets(OUT claim_token text, OUT code text)
    RETURNS record
    AS 'MODULE_PATHNAME', 'apikeys_claim_secrets'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

-- Not STRICT, like flush_usage: a STRICT call with NULL constants is
-- folded away before the EXECUTE privilege is checked.
CREATE FUNCTION apikeys._hash_equal(a bytea, b bytea)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_hash_equal'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;

-- Refuses at once on a standby; the caller's address (client_ip, else as
-- pre_request chooses it).  Not STRICT: NULL client_ip is the usual call.
CREATE FUNCTION apikeys._claim_begin(client_ip inet)
    RETURNS inet
    AS 'MODULE_PATHNAME', 'apikeys_claim_begin'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;

-- Counts one code comparison (before comparing), then compares.
CREATE FUNCTION apikeys._claim_attempt(claim_id bigint, failures integer, expires_at timestamptz,
                                       code_hash bytea, presented bytea)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_claim_attempt'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;

-- Not STRICT: a NULL address (unix socket) is a call like any other.
CREATE FUNCTION apikeys._claim_failed(address inet)
    RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_claim_failed'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;

CREATE FUNCTION apikeys._claim_attempts(OUT claim_id bigint, OUT tag bytea, OUT attempts integer,
                                        OUT wrong integer, OUT synced integer)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'apikeys_claim_attempts'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

--------------------------------------------------------------------------------
-- Internal SQL helpers
--------------------------------------------------------------------------------

-- _audit appends one audit row and wakes listeners (NOTIFY apikeys_events
-- with the event and the client ID only).
-- It is the only writer of audit_log, so every row has the same shape.
CREATE FUNCTION apikeys._audit(p_event text, p_client_id text, p_owner text, p_detail jsonb)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO apikeys.audit_log (event, client_id, owner, detail, db_user, application_name)
    VALUES (p_event, p_client_id, p_owner,
            COALESCE(p_detail, '{}'::jsonb) OPERATOR(pg_catalog.||)
                CASE WHEN apikeys._acting_key() IS NULL THEN '{}'::jsonb
                     ELSE pg_catalog.jsonb_build_object('by_key', apikeys._acting_key()) END,
            apikeys._outer_user(),
            pg_catalog.current_setting('application_name', true));
    -- Any role may LISTEN on any channel, so the payload holds only what
    -- is public: the event and the client ID.  Owners, names, reasons and
    -- the rest are in audit_log, which only apikeys_admin reads.
    PERFORM pg_catalog.pg_notify('apikeys_events',
        pg_catalog.jsonb_build_object('event', p_event, 'client_id', p_client_id)::text);
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
    -- The apikeys.* settings exist once the library is loaded, and in a new
    -- session without preloading nothing may have loaded it yet: calling
    -- one of its C functions does (its _PG_init defines the settings, with
    -- the value from postgresql.conf or the default).
    PERFORM apikeys._preloaded();
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

-- The longest owner name, in characters (length(), as every _check_text
-- measures), from the one constant the C code uses too (ownerlimit.h).
CREATE FUNCTION apikeys._owner_max_length() RETURNS integer
    AS 'MODULE_PATHNAME', 'apikeys_owner_max_length'
    LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- _check_owner: an owner name is non-empty and at most _owner_max_length()
-- characters; every function taking an owner checks it here.
CREATE FUNCTION apikeys._check_owner(p_owner text)
    RETURNS void
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM apikeys._check_text('owner', p_owner, apikeys._owner_max_length(), true);
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
    VOLATILE
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
        -- every '@name' names a defined set; the share lock makes a
        -- concurrent drop_scope_set wait for this key and then see it
        FOR r IN SELECT pg_catalog.substr(u.s::text, 2) AS name
                   FROM pg_catalog.unnest(v_scopes) AS u(s)
                  WHERE pg_catalog.left(u.s::text, 1) OPERATOR(pg_catalog.=) '@' LOOP
            PERFORM 1 FROM apikeys.scope_sets ss
              WHERE ss.name OPERATOR(pg_catalog.=) r.name FOR KEY SHARE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'scope set "%" does not exist', r.name
                    USING ERRCODE = '22023',
                          HINT = 'Define it first with apikeys.define_scope_set().';
            END IF;
        END LOOP;
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

-- _check_key_cap: 54000 when the owner's live keys and p_adding new ones
-- would be more than max_keys (create_key, import_key, import_keys).  The caller holds the owner's policy row lock.
CREATE FUNCTION apikeys._check_key_cap(p_owner text, p_max_keys integer,
                                       p_adding integer DEFAULT 1)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_live bigint;
    v_max_keys integer := p_max_keys;
BEGIN
    -- The cap count reads the owner's live keys only (keys_owner_live_idx)
    -- and stops at the cap, so it costs the same however many keys the
    -- owner has held; the exact number is counted only for the error.
    SELECT pg_catalog.count(*) INTO v_live
      FROM (SELECT 1 FROM apikeys.keys k
             WHERE k.owner OPERATOR(pg_catalog.=) p_owner
               AND k.revoked_at IS NULL
               AND k.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()
             LIMIT v_max_keys) live;
    IF v_live OPERATOR(pg_catalog.+) p_adding OPERATOR(pg_catalog.>) v_max_keys THEN
        SELECT pg_catalog.count(*) INTO v_live FROM apikeys.keys k
         WHERE k.owner OPERATOR(pg_catalog.=) p_owner
           AND k.revoked_at IS NULL
           AND k.expires_at OPERATOR(pg_catalog.>) pg_catalog.now();
        RAISE EXCEPTION 'owner "%" already has the maximum number of API keys', p_owner
            USING ERRCODE = '54000',
                  DETAIL = CASE WHEN p_adding OPERATOR(pg_catalog.=) 1
                                THEN pg_catalog.format('The owner has %s live keys; the limit is %s.', v_live, v_max_keys)
                                ELSE pg_catalog.format('The owner has %s live keys and %s more would be imported; the limit is %s.', v_live, p_adding, v_max_keys) END,
                  -- a tenant (self-service) cannot call set_owner_policy: tell it what it can do
                  HINT = CASE WHEN apikeys.current_client_id() IS NULL
                              THEN 'Revoke a key the owner no longer needs (expired keys do not count), or raise max_keys with apikeys.set_owner_policy().'
                              ELSE 'Revoke a key you no longer need with apikeys.my_revoke_key() (expired keys do not count), then try again; only an administrator can raise the limit.' END;
    END IF;
END
$$;

CREATE FUNCTION apikeys.create_key(owner text, name text, scopes text[],
                                   expires_at timestamptz DEFAULT NULL,
                                   description text DEFAULT NULL,
                                   contact_email text DEFAULT NULL,
                                   contact_phone text DEFAULT NULL,
                                   allowed_cidrs cidr[] DEFAULT NULL,
                                   metadata jsonb DEFAULT '{}',
                                   db_role name DEFAULT NULL,
                                   rate_limit integer DEFAULT NULL,
                                   rate_window interval DEFAULT '1 minute',
                                   handoff boolean DEFAULT false)
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
    m record;
    v_key apikeys.keys;
BEGIN
    PERFORM apikeys._check_owner(create_key.owner);
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
    IF create_key.handoff IS NULL THEN
        RAISE EXCEPTION 'handoff cannot be NULL' USING ERRCODE = '22023';
    END IF;
    IF create_key.handoff AND
       (NULLIF(create_key.contact_email, '') IS NULL OR NULLIF(create_key.contact_phone, '') IS NULL) THEN
        RAISE EXCEPTION 'a handoff needs a contact email and a contact phone'
            USING ERRCODE = '22023',
                  DETAIL = 'The claim link goes to the email address and the code to the phone.',
                  HINT = 'Give contact_email and contact_phone.';
    END IF;

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

    PERFORM apikeys._check_key_cap(create_key.owner, v_max_keys);

    -- With handoff, the secret minted here is dropped unseen: the stored
    -- hash matches nothing anybody has, so the key answers NOT_FOUND until
    -- claim_key mints the real one.
    --
    -- A client ID that already exists (96 random bits: never in practice)
    -- must not surface as a unique violation whose DETAIL names another
    -- owner's key: ON CONFLICT DO NOTHING, draw again, and after three
    -- misses fail with a message of our own.
    FOR attempt IN 1..3 LOOP
        m := apikeys._mint(NULL);

        INSERT INTO apikeys.keys (client_id, owner, name, scopes, secret_hash, hash_alg,
                                  expires_at, created_by, description, contact_email,
                                  contact_phone, allowed_cidrs, metadata, db_role,
                                  rate_limit, rate_window, pending_since, created_by_key)
        VALUES (m.client_id, create_key.owner, create_key.name, v_scopes, m.secret_hash,
                m.hash_alg, v_expires, apikeys._outer_user(),
                NULLIF(create_key.description, ''), NULLIF(create_key.contact_email, ''),
                NULLIF(create_key.contact_phone, ''), create_key.allowed_cidrs,
                NULLIF(create_key.metadata, '{}'::jsonb), NULLIF(create_key.db_role::text, ''),
                create_key.rate_limit,
                CASE WHEN create_key.rate_limit IS NOT NULL THEN create_key.rate_window END,
                CASE WHEN create_key.handoff THEN pg_catalog.now() END,
                apikeys._acting_key())
        ON CONFLICT (client_id) DO NOTHING
        RETURNING * INTO v_key;
        EXIT WHEN v_key.client_id IS NOT NULL;
    END LOOP;
    IF v_key.client_id IS NULL THEN
        RAISE EXCEPTION 'could not issue a unique client ID'
            USING ERRCODE = '23505',
                  HINT = 'Try again.';
    END IF;

    PERFORM apikeys._audit('created', m.client_id, create_key.owner,
        pg_catalog.jsonb_build_object('name', create_key.name, 'scopes', v_scopes,
                                      'expires_at', v_expires)
        OPERATOR(pg_catalog.||) CASE WHEN create_key.handoff
                                     THEN '{"handoff": true}'::jsonb ELSE '{}'::jsonb END);

    IF create_key.handoff THEN
        PERFORM apikeys._handoff_start(v_key);
        RETURN ROW(m.client_id, NULL, NULL, v_expires)::apikeys.new_key;
    END IF;
    RETURN ROW(m.client_id, m.client_secret, m.token, v_expires)::apikeys.new_key;
END
$$;

-- Importing keys an adopter already issued (import_key, import_keys).  The
-- key gets a client ID of ours; its hash is SHA-256 of the whole legacy
-- token (hash_alg 'l'), which verification looks up by that hash
-- (src/legacy.c).  Both paths check a key's arguments in _import_check
-- (create_key's checks), take the owner's lock and check its cap in
-- _import_reserve (create_key's _check_key_cap) and its expiry with
-- create_key's _check_expiry; import_key inserts one key (_import_one),
-- import_keys all of a table in one statement.
CREATE FUNCTION apikeys._import_check(p_owner text, p_name text, p_scopes text[],
                                      p_secret_hash text, p_hash_format text, p_token text,
                                      p_description text, p_contact_email text,
                                      p_contact_phone text, p_allowed_cidrs cidr[],
                                      p_metadata jsonb, p_db_role text,
                                      OUT hash bytea, OUT scopes apikeys.scope[])
    RETURNS record
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM apikeys._check_owner(p_owner);
    PERFORM apikeys._check_text('name', p_name, 128, true);
    IF p_scopes IS NULL THEN
        RAISE EXCEPTION 'scopes cannot be NULL' USING ERRCODE = '22023',
            HINT = 'Give an empty array for a key that may do nothing yet.';
    END IF;
    IF (p_secret_hash IS NULL) OPERATOR(pg_catalog.=) (p_token IS NULL) THEN
        RAISE EXCEPTION 'give exactly one of secret_hash and token' USING ERRCODE = '22023',
            HINT = 'Prefer secret_hash: the SHA-256 of the whole legacy token, so the token itself never travels.';
    END IF;
    IF p_token IS NOT NULL THEN
        IF p_token OPERATOR(pg_catalog.=) '' OR
           pg_catalog.octet_length(p_token) OPERATOR(pg_catalog.>) apikeys._legacy_token_max_length() THEN
            RAISE EXCEPTION 'a legacy token must be 1 to % bytes long', apikeys._legacy_token_max_length()
                USING ERRCODE = '22023';
        END IF;
        IF apikeys.token_client_id(p_token) IS NOT NULL THEN
            RAISE EXCEPTION 'the token is already an apikeys token' USING ERRCODE = '22023',
                HINT = 'Only tokens issued by another system can be imported.';
        END IF;
        hash := pg_catalog.sha256(pg_catalog.convert_to(p_token, 'UTF8'));
    ELSE
        IF p_hash_format IS NULL OR
           p_hash_format OPERATOR(pg_catalog.<>) ALL (ARRAY['sha256_hex', 'sha256_base64']) THEN
            RAISE EXCEPTION 'hash_format must be sha256_hex or sha256_base64' USING ERRCODE = '22023';
        END IF;
        -- checked before decode(), so no error (or subtransaction) is
        -- needed; ltrim with a character set is cheaper than a regex
        IF p_hash_format OPERATOR(pg_catalog.=) 'sha256_hex' AND
           pg_catalog.octet_length(p_secret_hash) OPERATOR(pg_catalog.=) 64 AND
           pg_catalog.ltrim(p_secret_hash, '0123456789abcdefABCDEF') OPERATOR(pg_catalog.=) '' THEN
            hash := pg_catalog.decode(p_secret_hash, 'hex');
        ELSIF p_hash_format OPERATOR(pg_catalog.=) 'sha256_base64' AND
              pg_catalog.octet_length(p_secret_hash) OPERATOR(pg_catalog.=) 44 AND
              pg_catalog.ltrim(p_secret_hash, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/')
                  OPERATOR(pg_catalog.=) '=' THEN
            hash := pg_catalog.decode(p_secret_hash, 'base64');
        ELSE
            RAISE EXCEPTION 'secret_hash is not a SHA-256 hash in %', p_hash_format
                USING ERRCODE = '22023',
                      DETAIL = 'A SHA-256 hash is 32 bytes: 64 hexadecimal digits or 44 base64 characters.';
        END IF;
    END IF;
    scopes := apikeys._check_settings(p_scopes, p_description, p_contact_email,
                    p_contact_phone, p_allowed_cidrs, p_metadata, p_db_role, NULL, NULL);
END
$$;

-- _import_reserve: create_key's lock on the owner's policy row, and its
-- cap for p_adding more keys; returns the owner's maximum lifetime.
CREATE FUNCTION apikeys._import_reserve(p_owner text, p_adding integer)
    RETURNS interval
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_max_keys integer;
    v_max_lifetime interval;
BEGIN
    INSERT INTO apikeys.owner_policies AS p (owner, keys_issued)
    VALUES (p_owner, p_adding)
    ON CONFLICT ON CONSTRAINT owner_policies_pkey
    DO UPDATE SET keys_issued = p.keys_issued OPERATOR(pg_catalog.+) p_adding;
    SELECT l.max_keys, l.max_lifetime INTO v_max_keys, v_max_lifetime
      FROM apikeys._owner_limits(p_owner) l;
    PERFORM apikeys._check_key_cap(p_owner, v_max_keys, p_adding);
    RETURN v_max_lifetime;
END
$$;

CREATE FUNCTION apikeys._import_one(p_owner text, p_name text, p_scopes text[],
                                    p_secret_hash text, p_hash_format text, p_token text,
                                    p_expires_at timestamptz, p_description text,
                                    p_contact_email text, p_contact_phone text,
                                    p_allowed_cidrs cidr[], p_metadata jsonb, p_db_role text,
                                    OUT client_id text, OUT expires_at timestamptz,
                                    OUT scopes apikeys.scope[])
    RETURNS record
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c record;
    v_max_lifetime interval;
    m record;
BEGIN
    c := apikeys._import_check(p_owner, p_name, p_scopes, p_secret_hash, p_hash_format,
                               p_token, p_description, p_contact_email, p_contact_phone,
                               p_allowed_cidrs, p_metadata, p_db_role);
    scopes := c.scopes;
    v_max_lifetime := apikeys._import_reserve(p_owner, 1);
    expires_at := COALESCE(p_expires_at, pg_catalog.now() OPERATOR(pg_catalog.+) v_max_lifetime);
    PERFORM apikeys._check_expiry(expires_at, v_max_lifetime);

    FOR attempt IN 1..3 LOOP
        m := apikeys._mint(NULL);
        INSERT INTO apikeys.keys (client_id, owner, name, scopes, secret_hash, hash_alg,
                                  expires_at, created_by, description, contact_email,
                                  contact_phone, allowed_cidrs, metadata, db_role)
        VALUES (m.client_id, p_owner, p_name, c.scopes, c.hash, 'l', expires_at,
                apikeys._outer_user(), NULLIF(p_description, ''), NULLIF(p_contact_email, ''),
                NULLIF(p_contact_phone, ''), p_allowed_cidrs,
                NULLIF(p_metadata, '{}'::jsonb), NULLIF(p_db_role, ''))
        ON CONFLICT DO NOTHING
        RETURNING apikeys.keys.client_id INTO client_id;
        EXIT WHEN client_id IS NOT NULL;
        -- the same legacy token imported twice: the hash's index, not the client ID
        IF EXISTS (SELECT 1 FROM apikeys.keys k
                    WHERE k.secret_hash OPERATOR(pg_catalog.=) c.hash
                      AND k.hash_alg OPERATOR(pg_catalog.=) 'l'::"char") THEN
            RAISE EXCEPTION 'this legacy token has already been imported' USING ERRCODE = '23505';
        END IF;
    END LOOP;
    IF client_id IS NULL THEN
        RAISE EXCEPTION 'could not issue a unique client ID' USING ERRCODE = '23505',
            HINT = 'Try again.';
    END IF;
END
$$;

CREATE FUNCTION apikeys._legacy_token_max_length() RETURNS integer
    AS 'MODULE_PATHNAME', 'apikeys_legacy_token_max_length'
    LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION apikeys.import_key(owner text, name text, scopes text[],
                                   secret_hash text DEFAULT NULL,
                                   hash_format text DEFAULT 'sha256_hex',
                                   token text DEFAULT NULL,
                                   expires_at timestamptz DEFAULT NULL,
                                   description text DEFAULT NULL,
                                   contact_email text DEFAULT NULL,
                                   contact_phone text DEFAULT NULL,
                                   allowed_cidrs cidr[] DEFAULT NULL,
                                   metadata jsonb DEFAULT '{}',
                                   db_role name DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    r := apikeys._import_one(import_key.owner, import_key.name, import_key.scopes,
                             import_key.secret_hash, import_key.hash_format, import_key.token,
                             import_key.expires_at, import_key.description,
                             import_key.contact_email, import_key.contact_phone,
                             import_key.allowed_cidrs, import_key.metadata,
                             import_key.db_role::text);
    PERFORM apikeys._audit('imported', r.client_id, import_key.owner,
        pg_catalog.jsonb_build_object('name', import_key.name, 'scopes', r.scopes,
                                      'expires_at', r.expires_at,
                                      'from', CASE WHEN import_key.token IS NULL
                                                   THEN import_key.hash_format ELSE 'token' END));
    RETURN r.client_id;
END
$$;

CREATE FUNCTION apikeys.import_keys(source regclass)
    RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cols text[];
    v_known text[] := ARRAY['owner', 'name', 'scopes', 'secret_hash', 'hash_format', 'token',
                            'expires_at', 'description', 'contact_email', 'contact_phone',
                            'allowed_cidrs', 'metadata', 'db_role'];
    v_types text[] := ARRAY['text', 'text', 'text[]', 'text', 'text', 'text', 'timestamptz',
                            'text', 'text', 'text', 'cidr[]', 'jsonb', 'text'];
    v_select text;
    v_rows bigint;
    v_n bigint;
BEGIN
    IF import_keys.source IS NULL THEN
        RAISE EXCEPTION 'source cannot be NULL' USING ERRCODE = '22023';
    END IF;
    -- The caller must be able to read the table: this runs as the
    -- extension owner, so it checks the caller's privilege itself.
    IF NOT pg_catalog.has_table_privilege(apikeys._outer_user(), import_keys.source, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for table %', import_keys.source
            USING ERRCODE = '42501';
    END IF;
    SELECT pg_catalog.array_agg(a.attname::text) INTO v_cols
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid OPERATOR(pg_catalog.=) import_keys.source
       AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped;
    IF NOT v_cols OPERATOR(pg_catalog.@>) ARRAY['owner', 'name', 'scopes'] THEN
        RAISE EXCEPTION 'table % needs the columns owner, name and scopes', import_keys.source
            USING ERRCODE = '22023',
                  HINT = 'Name the columns like the arguments of apikeys.import_key(), for example in a view.';
    END IF;
    IF NOT v_cols OPERATOR(pg_catalog.&&) ARRAY['secret_hash', 'token'] THEN
        RAISE EXCEPTION 'table % needs a column secret_hash or token', import_keys.source
            USING ERRCODE = '22023';
    END IF;
    -- the source's columns by import_key's names and types; absent ones NULL
    SELECT pg_catalog.string_agg(
               CASE WHEN u.c OPERATOR(pg_catalog.=) ANY (v_cols)
                    THEN pg_catalog.format('s.%I::%s AS %I', u.c, u.t, u.c)
                    ELSE pg_catalog.format('NULL::%s AS %I', u.t, u.c) END, ', ')
      INTO v_select
      FROM ROWS FROM (pg_catalog.unnest(v_known), pg_catalog.unnest(v_types)) AS u(c, t);

    -- One statement: every row checked (_import_check), every owner locked
    -- and capped once for all its new keys (_import_reserve, in owner
    -- order so that two imports cannot deadlock), every expiry checked,
    -- then one INSERT.  Any error rolls back the whole import.
    EXECUTE pg_catalog.format($q$
        WITH src AS MATERIALIZED (
            SELECT %1$s FROM %2$s s),
        checked AS MATERIALIZED (
            SELECT s.*, c.hash, c.scopes AS checked_scopes
              FROM src s,
                   LATERAL apikeys._import_check(s.owner, s.name, s.scopes, s.secret_hash,
                               COALESCE(s.hash_format, 'sha256_hex'), s.token, s.description,
                               s.contact_email, s.contact_phone, s.allowed_cidrs,
                               COALESCE(s.metadata, '{}'::jsonb), s.db_role) c),
        owners AS MATERIALIZED (
            SELECT o.owner, apikeys._import_reserve(o.owner, o.n::integer) AS max_lifetime
              FROM (SELECT ch.owner, pg_catalog.count(*) AS n FROM checked ch
                     GROUP BY ch.owner ORDER BY ch.owner) o),
        ready AS MATERIALIZED (
            SELECT ch.*, x.expires, apikeys._check_expiry(x.expires, o.max_lifetime)::text AS ok
              FROM checked ch
              JOIN owners o ON o.owner OPERATOR(pg_catalog.=) ch.owner,
                   LATERAL (SELECT COALESCE(ch.expires_at,
                                   pg_catalog.now() OPERATOR(pg_catalog.+) o.max_lifetime) AS expires) x),
        ins AS (
            INSERT INTO apikeys.keys (client_id, owner, name, scopes, secret_hash, hash_alg,
                                      expires_at, created_by, description, contact_email,
                                      contact_phone, allowed_cidrs, metadata, db_role)
            SELECT (apikeys._mint(NULL)).client_id, r.owner, r.name, r.checked_scopes, r.hash,
                   'l', r.expires, apikeys._outer_user(), NULLIF(r.description, ''),
                   NULLIF(r.contact_email, ''), NULLIF(r.contact_phone, ''), r.allowed_cidrs,
                   NULLIF(r.metadata, '{}'::jsonb), NULLIF(r.db_role, '')
              FROM ready r
            ON CONFLICT DO NOTHING
            RETURNING 1)
        SELECT (SELECT pg_catalog.count(*) FROM ready), (SELECT pg_catalog.count(*) FROM ins)
        $q$, v_select, import_keys.source)
    INTO v_rows, v_n;

    -- A row left out: its legacy hash was imported before, or is in the
    -- source twice (a client ID drawn twice does not happen at 95 bits).
    IF v_n OPERATOR(pg_catalog.<>) v_rows THEN
        RAISE EXCEPTION 'this legacy token has already been imported' USING ERRCODE = '23505',
            DETAIL = pg_catalog.format('%s of the %s keys in %s were imported before or appear twice in it; nothing was imported.',
                                       v_rows OPERATOR(pg_catalog.-) v_n, v_rows, import_keys.source);
    END IF;

    PERFORM apikeys._audit('imported', NULL, NULL,
        pg_catalog.jsonb_build_object('source', import_keys.source::text, 'keys', v_n));
    RETURN v_n;
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
    -- a rotation would show the admin the secret the handoff keeps from them
    IF k.pending_since IS NOT NULL THEN
        RAISE EXCEPTION 'API key "%" is waiting to be claimed', rotate_key.client_id
            USING ERRCODE = '55000',
                  HINT = 'Use apikeys.reset_key() to send a new claim link and code.';
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
    -- who disabled it: a key (self-service) or an admin (NULL).  An admin's
    -- disable of a key a key disabled makes it the admin's, so that no key
    -- can lift it (_check_target).
    UPDATE apikeys.keys SET disabled_at = COALESCE(disabled_at, pg_catalog.now()),
                            disabled_by_key = apikeys._acting_key()
     WHERE keys.client_id OPERATOR(pg_catalog.=) disable_key.client_id
       AND (disabled_at IS NULL OR
            (disabled_by_key IS NOT NULL AND apikeys._acting_key() IS NULL));
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
    UPDATE apikeys.keys SET disabled_at = NULL, disabled_by_key = NULL
     WHERE keys.client_id OPERATOR(pg_catalog.=) enable_key.client_id
       AND disabled_at IS NOT NULL;
    PERFORM apikeys._op_end();
END
$$;

-- _revoke_key: the one revocation; revoke_key, my_revoke_key,
-- revoke_all_keys, report_leaked and the revoke_unused_after policy all
-- come here.  It locks the key, revokes it (one audit row, labelled with
-- p_detail), and then revokes, each through this function again (so each
-- on its own audit row):
--   - every key the revoked key created through self-service
--     (created_by_key) that appeared while we waited for the lock: a key
--     may be creating a child as we come (my_create_key holds it FOR
--     SHARE), and a child that appears while we wait was made by a key
--     being revoked, so it goes with it (children that existed before we
--     came stay: they were made while their creator was live);
--   - with p_with_descendants (a leaked manager key), every key it
--     created, and theirs, recursively, that is not revoked yet; the walk
--     goes through revoked and expired keys (their children are
--     descendants too) and is a query, not a recursion, so no chain of
--     keys is too deep for it.
-- p_strict: a missing or revoked key raises (42704, 55000, as _key_row);
-- otherwise it is skipped.  Returns the number of keys revoked.
CREATE FUNCTION apikeys._revoke_key(p_client_id text, p_detail jsonb,
                                    p_with_descendants boolean DEFAULT false,
                                    p_strict boolean DEFAULT true)
    RETURNS integer
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_before text[];
    k apikeys.keys;
    c text;
    n integer := 0;
BEGIN
    IF p_with_descendants IS NULL THEN
        RAISE EXCEPTION 'with_descendants cannot be NULL' USING ERRCODE = '22023';
    END IF;
    v_before := ARRAY(SELECT k2.client_id FROM apikeys.keys k2
                       WHERE k2.created_by_key OPERATOR(pg_catalog.=) p_client_id);
    IF p_strict THEN
        k := apikeys._key_row(p_client_id);
    ELSE
        SELECT * INTO k FROM apikeys.keys k2
         WHERE k2.client_id OPERATOR(pg_catalog.=) p_client_id
         FOR UPDATE;
        IF NOT FOUND OR k.revoked_at IS NOT NULL THEN
            RETURN 0;
        END IF;
    END IF;
    PERFORM apikeys._op_begin('revoked', p_detail);
    UPDATE apikeys.keys SET revoked_at = pg_catalog.now()
     WHERE keys.client_id OPERATOR(pg_catalog.=) k.client_id
       AND revoked_at IS NULL;
    IF FOUND THEN
        n := 1;
    END IF;
    PERFORM apikeys._op_end();

    FOR c IN SELECT k2.client_id FROM apikeys.keys k2
              WHERE k2.created_by_key OPERATOR(pg_catalog.=) k.client_id
                AND k2.revoked_at IS NULL
                AND k2.client_id OPERATOR(pg_catalog.<>) ALL (v_before)
              ORDER BY k2.client_id
    LOOP
        n := n OPERATOR(pg_catalog.+) apikeys._revoke_key(c,
            pg_catalog.jsonb_build_object('reason', pg_catalog.format(
                'created by %s while it was being revoked', k.client_id)), false, false);
    END LOOP;

    IF p_with_descendants THEN
        FOR c IN WITH RECURSIVE d(client_id) AS (
                     SELECT k2.client_id FROM apikeys.keys k2
                      WHERE k2.created_by_key OPERATOR(pg_catalog.=) k.client_id
                     UNION
                     SELECT k3.client_id FROM apikeys.keys k3, d
                      WHERE k3.created_by_key OPERATOR(pg_catalog.=) d.client_id)
                 SELECT d.client_id FROM d, apikeys.keys k4
                  WHERE k4.client_id OPERATOR(pg_catalog.=) d.client_id
                    AND k4.revoked_at IS NULL
                  ORDER BY d.client_id
        LOOP
            n := n OPERATOR(pg_catalog.+) apikeys._revoke_key(c,
                pg_catalog.jsonb_build_object('reason', pg_catalog.format(
                    'created by %s or its descendants, revoked with it', k.client_id)),
                false, false);
        END LOOP;
    END IF;
    RETURN n;
END
$$;

CREATE FUNCTION apikeys.revoke_key(client_id text, reason text DEFAULT NULL,
                                   with_descendants boolean DEFAULT false)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM apikeys._check_text('reason', reason, 1024, false);
    PERFORM apikeys._revoke_key(revoke_key.client_id,
        pg_catalog.jsonb_build_object('reason', reason)
        OPERATOR(pg_catalog.||) CASE WHEN revoke_key.with_descendants
                                     THEN '{"with_descendants": true}'::jsonb
                                     ELSE '{}'::jsonb END,
        revoke_key.with_descendants, true);
END
$$;

CREATE FUNCTION apikeys.revoke_all_keys(owner text, reason text DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer := 0;
    c text;
BEGIN
    PERFORM apikeys._check_owner(revoke_all_keys.owner);
    PERFORM apikeys._check_text('reason', reason, 1024, false);

    -- Take the lock create_key takes: the owner's policy row, made here if
    -- missing (a concurrent first create_key and this upsert then wait for
    -- each other on the primary key).  A create that got the lock first has
    -- committed when we get it, and the UPDATE below (a new snapshot in READ
    -- COMMITTED) sees its key; one that comes later waits for our commit, so
    -- its key is made after the revocation.  Under REPEATABLE READ a key
    -- committed since our snapshot makes this upsert fail to serialize
    -- instead of leaving the key live.
    INSERT INTO apikeys.owner_policies AS p (owner)
    VALUES (revoke_all_keys.owner)
    ON CONFLICT ON CONSTRAINT owner_policies_pkey
    DO UPDATE SET keys_issued = p.keys_issued;

    -- one key at a time through the one revocation (a new statement for
    -- each, so a key committed by a create that held the lock before us is
    -- seen); keys another key of the owner created are the owner's too
    FOR c IN SELECT k.client_id FROM apikeys.keys k
              WHERE k.owner OPERATOR(pg_catalog.=) revoke_all_keys.owner
                AND k.revoked_at IS NULL
              ORDER BY k.client_id
    LOOP
        n := n OPERATOR(pg_catalog.+) apikeys._revoke_key(c,
            pg_catalog.jsonb_build_object('reason', reason, 'all', true), false, false);
    END LOOP;
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
                                         max_lifetime interval DEFAULT NULL,
                                         revoke_unused_after interval DEFAULT NULL,
                                         warn_before_expiry interval DEFAULT NULL,
                                         rotate_every interval DEFAULT NULL,
                                         rate_limit integer DEFAULT NULL,
                                         rate_window interval DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old_p apikeys.owner_policies;
    new_p apikeys.owner_policies;
    det jsonb := '{}'::jsonb;
    col text;
BEGIN
    PERFORM apikeys._check_owner(set_owner_policy.owner);
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
    -- the lifecycle intervals: '0' turns a policy off for this owner
    IF set_owner_policy.revoke_unused_after OPERATOR(pg_catalog.<) '0'::interval OR
       set_owner_policy.revoke_unused_after OPERATOR(pg_catalog.>) '100 years'::interval THEN
        RAISE EXCEPTION 'revoke_unused_after must be between 0 and 100 years' USING ERRCODE = '22023',
            HINT = 'Use 0 to turn the policy off for this owner.';
    END IF;
    IF set_owner_policy.warn_before_expiry OPERATOR(pg_catalog.<) '0'::interval OR
       set_owner_policy.warn_before_expiry OPERATOR(pg_catalog.>) '100 years'::interval THEN
        RAISE EXCEPTION 'warn_before_expiry must be between 0 and 100 years' USING ERRCODE = '22023',
            HINT = 'Use 0 to turn the policy off for this owner.';
    END IF;
    IF set_owner_policy.rotate_every OPERATOR(pg_catalog.<) '0'::interval OR
       set_owner_policy.rotate_every OPERATOR(pg_catalog.>) '100 years'::interval THEN
        RAISE EXCEPTION 'rotate_every must be between 0 and 100 years' USING ERRCODE = '22023',
            HINT = 'Use 0 to turn the policy off for this owner.';
    END IF;
    IF set_owner_policy.rate_limit OPERATOR(pg_catalog.<) 0 THEN
        RAISE EXCEPTION 'rate_limit must be positive' USING ERRCODE = '22023',
            HINT = 'Use 0 for no owner-wide limit.';
    END IF;
    IF set_owner_policy.rate_window IS NOT NULL AND
       (set_owner_policy.rate_window OPERATOR(pg_catalog.<) '1 second'::interval OR
        set_owner_policy.rate_window OPERATOR(pg_catalog.>) '1 day'::interval) THEN
        RAISE EXCEPTION 'rate_window must be between 1 second and 1 day' USING ERRCODE = '22023';
    END IF;

    SELECT * INTO old_p FROM apikeys.owner_policies p
     WHERE p.owner OPERATOR(pg_catalog.=) set_owner_policy.owner FOR UPDATE;

    PERFORM apikeys._op_begin('policy_changed', NULL);
    INSERT INTO apikeys.owner_policies AS p (owner, max_keys, max_lifetime, revoke_unused_after,
                                             warn_before_expiry, rotate_every, rate_limit,
                                             rate_window)
    VALUES (set_owner_policy.owner, set_owner_policy.max_keys, set_owner_policy.max_lifetime,
            set_owner_policy.revoke_unused_after, set_owner_policy.warn_before_expiry,
            set_owner_policy.rotate_every, NULLIF(set_owner_policy.rate_limit, 0),
            CASE WHEN NULLIF(set_owner_policy.rate_limit, 0) IS NOT NULL
                 THEN COALESCE(set_owner_policy.rate_window, '1 minute'::interval) END)
    ON CONFLICT ON CONSTRAINT owner_policies_pkey DO UPDATE SET
        max_keys = COALESCE(EXCLUDED.max_keys, p.max_keys),
        max_lifetime = COALESCE(EXCLUDED.max_lifetime, p.max_lifetime),
        revoke_unused_after = COALESCE(EXCLUDED.revoke_unused_after, p.revoke_unused_after),
        warn_before_expiry = COALESCE(EXCLUDED.warn_before_expiry, p.warn_before_expiry),
        rotate_every = COALESCE(EXCLUDED.rotate_every, p.rotate_every),
        rate_limit = CASE WHEN set_owner_policy.rate_limit IS NULL THEN p.rate_limit
                          ELSE EXCLUDED.rate_limit END,
        rate_window = CASE WHEN set_owner_policy.rate_limit OPERATOR(pg_catalog.=) 0 THEN NULL
                           WHEN set_owner_policy.rate_limit IS NULL AND p.rate_limit IS NULL THEN NULL
                           ELSE COALESCE(set_owner_policy.rate_window, p.rate_window,
                                         EXCLUDED.rate_window) END,
        updated_at = pg_catalog.now()
    RETURNING * INTO new_p;
    PERFORM apikeys._op_end();

    -- old -> new of every setting that changed
    FOREACH col IN ARRAY ARRAY['max_keys', 'max_lifetime', 'revoke_unused_after',
                               'warn_before_expiry', 'rotate_every', 'rate_limit',
                               'rate_window'] LOOP
        IF (pg_catalog.to_jsonb(old_p) OPERATOR(pg_catalog.->) col) IS DISTINCT FROM
           (pg_catalog.to_jsonb(new_p) OPERATOR(pg_catalog.->) col) OR
           col OPERATOR(pg_catalog.=) ANY (ARRAY['max_keys', 'max_lifetime']) THEN
            det := det OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(col,
                pg_catalog.jsonb_build_object(
                    'old', pg_catalog.to_jsonb(old_p) OPERATOR(pg_catalog.->) col,
                    'new', pg_catalog.to_jsonb(new_p) OPERATOR(pg_catalog.->) col));
        END IF;
    END LOOP;
    PERFORM apikeys._audit('policy_changed', NULL, set_owner_policy.owner, det);
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
    PERFORM apikeys._revoke_key(v.client_id, pg_catalog.jsonb_build_object(
        'reason', 'leaked', 'reported_by', SESSION_USER), false, false);
END
$$;

--------------------------------------------------------------------------------
-- Handoff, outbox and lifecycle policies
--
-- A handoff key is created pending, with a hash of a secret nobody has, so
-- it answers NOT_FOUND.  _handoff_start puts a claim token (by email) and a
-- 6-digit code (by SMS) in the outbox; claim_key trades the two for the real
-- secret, once.  Every audited change also lands in the outbox (trigger on
-- audit_log), and deliveries to people go through _deliver.  apikeys_delivery
-- drains the outbox with outbox_take / outbox_done / outbox_retry.
--------------------------------------------------------------------------------

-- _setting: an apikeys.* setting as the library registered it.  Before the
-- library is loaded in a session, any role may SET apikeys.anything and
-- create a placeholder that current_setting() would return; loading the
-- library (calling one of its C functions) replaces every placeholder by
-- the registered setting, and drops a value that the role who set it was
-- not allowed to set (they are superuser-only).  So: load, then read.
CREATE FUNCTION apikeys._setting(p_name text)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM apikeys._preloaded();
    RETURN NULLIF(pg_catalog.current_setting(p_name, true), '');
END
$$;

-- _setting_interval: an apikeys.* duration setting as an interval (read
-- through _setting), with a fallback when it is unset.
CREATE FUNCTION apikeys._setting_interval(p_name text, p_default interval)
    RETURNS interval
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE(apikeys._setting(p_name)::interval, p_default)
$$;

-- _setting_integer: the same for an integer setting.
CREATE FUNCTION apikeys._setting_integer(p_name text, p_default integer)
    RETURNS integer
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE(apikeys._setting(p_name)::integer, p_default)
$$;

-- _deliver appends one outbox row addressed to a person (channel email or
-- sms) or to applications (channel NULL) and sends a wake-up NOTIFY that
-- names only the event and the row.  The one writer of deliveries.
CREATE FUNCTION apikeys._deliver(p_event text, p_client_id text, p_owner text,
                                 p_channel text, p_recipient text, p_payload jsonb,
                                 p_claim_id bigint DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO apikeys.outbox (event, client_id, owner, channel, recipient, payload, claim_id)
    VALUES (p_event, p_client_id, p_owner, p_channel, p_recipient,
            COALESCE(p_payload, '{}'::jsonb), p_claim_id)
    RETURNING id INTO v_id;
    PERFORM pg_catalog.pg_notify('apikeys_events',
        pg_catalog.jsonb_build_object('event', p_event, 'outbox_id', v_id)::text);
    RETURN v_id;
END
$$;

-- Every audit row written by this transaction becomes an outbox event
-- (channel NULL).  Rows restored from a dump (COPY) are skipped: they carry
-- the time and txid of the transaction that wrote them, and a restoring
-- transaction never has both (the txid alone can coincide between two
-- young clusters).  So are rows whose event is already in the outbox as a
-- delivery (detail names its outbox_id).
CREATE FUNCTION apikeys._audit_outbox_trigger()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO apikeys.outbox (event, client_id, owner, payload)
    VALUES (NEW.event, NEW.client_id, NEW.owner,
            pg_catalog.jsonb_build_object('audit_id', NEW.id, 'at', NEW.at,
                                          'actor', NEW.actor, 'detail', NEW.detail));
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_log_outbox
    AFTER INSERT ON apikeys.audit_log
    FOR EACH ROW
    WHEN (NEW.at OPERATOR(pg_catalog.=) pg_catalog.now()
          AND NEW.txid OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id()
          AND NOT (NEW.detail OPERATOR(pg_catalog.?) 'outbox_id'))
    EXECUTE FUNCTION apikeys._audit_outbox_trigger();

-- Keeps keys.secret_set_at: when the current secret was set (rotation
-- policy).
CREATE FUNCTION apikeys._keys_secret_set_at_trigger()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.secret_hash IS DISTINCT FROM OLD.secret_hash THEN
        NEW.secret_set_at := pg_catalog.now();
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER keys_secret_set_at
    BEFORE UPDATE OF secret_hash ON apikeys.keys
    FOR EACH ROW EXECUTE FUNCTION apikeys._keys_secret_set_at_trigger();

-- _outbox_erase removes the one-time secrets (claim token, code) from the
-- outbox rows of the given claims.
CREATE FUNCTION apikeys._outbox_erase(p_claim_ids bigint[])
    RETURNS void
    LANGUAGE sql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE apikeys.outbox o
       SET payload = o.payload OPERATOR(pg_catalog.-) ARRAY['claim_token', 'code']::text[]
     WHERE o.claim_id OPERATOR(pg_catalog.=) ANY (p_claim_ids)
       AND o.payload OPERATOR(pg_catalog.?|) ARRAY['claim_token', 'code']::text[];
$$;

-- _handoff_start: a new claim for a pending key (any earlier open claim
-- is superseded and its secrets erased), its two deliveries and the
-- handoff_sent audit row.  Returns when the claim expires.
CREATE FUNCTION apikeys._handoff_start(k apikeys.keys)
    RETURNS timestamptz
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
    v_old bigint[];
    v_claim bigint;
    v_exp timestamptz;
BEGIN
    WITH sup AS (
        UPDATE apikeys.claims c SET superseded_at = pg_catalog.now()
         WHERE c.client_id OPERATOR(pg_catalog.=) k.client_id
           AND c.claimed_at IS NULL AND c.superseded_at IS NULL
        RETURNING c.id)
    SELECT pg_catalog.array_agg(id) INTO v_old FROM sup;
    IF v_old IS NOT NULL THEN
        PERFORM apikeys._outbox_erase(v_old);
    END IF;

    s := apikeys._claim_secrets();
    v_exp := pg_catalog.now() OPERATOR(pg_catalog.+)
             apikeys._setting_interval('apikeys.claim_lifetime', '24 hours');
    INSERT INTO apikeys.claims (client_id, token_hash, code_hash, expires_at)
    VALUES (k.client_id,
            pg_catalog.sha256(pg_catalog.convert_to(s.claim_token, 'UTF8')),
            pg_catalog.sha256(pg_catalog.convert_to(s.claim_token OPERATOR(pg_catalog.||) ':'
                                                    OPERATOR(pg_catalog.||) s.code, 'UTF8')),
            v_exp)
    RETURNING id INTO v_claim;

    PERFORM apikeys._deliver('handoff_link', k.client_id, k.owner, 'email', k.contact_email,
        pg_catalog.jsonb_build_object('claim_token', s.claim_token, 'client_id', k.client_id,
                                      'name', k.name, 'claim_expires_at', v_exp),
        v_claim);
    PERFORM apikeys._deliver('handoff_code', k.client_id, k.owner, 'sms', k.contact_phone,
        pg_catalog.jsonb_build_object('code', s.code, 'client_id', k.client_id,
                                      'claim_expires_at', v_exp),
        v_claim);
    PERFORM apikeys._audit('handoff_sent', k.client_id, k.owner,
        pg_catalog.jsonb_build_object('claim_expires_at', v_exp,
                                      'email', k.contact_email, 'phone', k.contact_phone));
    RETURN v_exp;
END
$$;

-- _claim_refuse: the one answer to every failed claim, whatever was wrong.
CREATE FUNCTION apikeys._claim_refuse()
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'could not claim the API key'
        USING ERRCODE = '28000',
              DETAIL = 'The link or the code is wrong, used or expired, or the claim is locked.',
              HINT = 'Ask the administrator of the key for a new link and code.';
END
$$;

-- _claim_record writes a claim's attempt count from the shared-memory
-- table (src/claim.c) to its row: failures never goes down, and with
-- p_lock (five wrong codes) the claim is locked, its secrets erased and the
-- lock audited, once.  Run by the claim sync worker in its own
-- transaction.  A row locked by someone else is skipped, never waited for
-- (false: try again later); a claim that is gone counts as written.
CREATE FUNCTION apikeys._claim_record(p_claim_id bigint, p_tag bytea, p_attempts integer,
                                      p_lock boolean)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c apikeys.claims;
    v_locks boolean;
BEGIN
    SELECT * INTO c FROM apikeys.claims cl
     WHERE cl.id OPERATOR(pg_catalog.=) p_claim_id
       AND pg_catalog.substr(cl.code_hash, 1, 8) OPERATOR(pg_catalog.=) p_tag
       FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN NOT EXISTS (SELECT 1 FROM apikeys.claims cl
                            WHERE cl.id OPERATOR(pg_catalog.=) p_claim_id
                              AND pg_catalog.substr(cl.code_hash, 1, 8) OPERATOR(pg_catalog.=) p_tag);
    END IF;
    v_locks := p_lock AND c.locked_at IS NULL AND c.claimed_at IS NULL AND c.superseded_at IS NULL;
    UPDATE apikeys.claims cl SET
        failures = GREATEST(cl.failures, p_attempts),
        locked_at = CASE WHEN v_locks THEN pg_catalog.now() ELSE cl.locked_at END
     WHERE cl.id OPERATOR(pg_catalog.=) c.id
    RETURNING * INTO c;
    IF v_locks THEN
        PERFORM apikeys._claim_locked(c);
    END IF;
    RETURN true;
END
$$;

-- _claim_locked: what follows the lock of a claim (five wrong codes): its
-- secrets leave the outbox and the lock is audited.
CREATE FUNCTION apikeys._claim_locked(c apikeys.claims)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM apikeys._outbox_erase(ARRAY[c.id]);
    PERFORM apikeys._audit('claim_locked', c.client_id,
        (SELECT k.owner FROM apikeys.keys k WHERE k.client_id OPERATOR(pg_catalog.=) c.client_id),
        pg_catalog.jsonb_build_object('failures', c.failures));
END
$$;

-- _claim_count_attempt: without preloading, one code comparison counted in
-- the claim's row before it is made, and made.  Run by the claim count
-- worker of src/claim.c in its own transaction (so the count survives
-- claim_key's error), under a short lock_timeout.  NULL: the claim allows no
-- more comparisons (or is closed); true: the code is right; false: wrong,
-- and the fifth wrong code locks the claim.  "failures < 5" in the UPDATE
-- makes count-and-check one atomic step under any concurrency.
CREATE FUNCTION apikeys._claim_count_attempt(p_claim_id bigint, p_presented bytea)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c apikeys.claims;
BEGIN
    UPDATE apikeys.claims cl SET failures = cl.failures OPERATOR(pg_catalog.+) 1
     WHERE cl.id OPERATOR(pg_catalog.=) p_claim_id
       AND cl.claimed_at IS NULL AND cl.locked_at IS NULL AND cl.superseded_at IS NULL
       AND cl.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()
       AND cl.failures OPERATOR(pg_catalog.<) 5
    RETURNING * INTO c;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF apikeys._hash_equal(c.code_hash, p_presented) THEN
        RETURN true;
    END IF;
    IF c.failures OPERATOR(pg_catalog.>=) 5 THEN
        UPDATE apikeys.claims cl SET locked_at = pg_catalog.now()
         WHERE cl.id OPERATOR(pg_catalog.=) c.id
        RETURNING * INTO c;
        PERFORM apikeys._claim_locked(c);
    END IF;
    RETURN false;
END
$$;

-- claim_key: the integrator's side of the handoff (apikeys_verifier).
-- Every code comparison is counted before it is made, where the error
-- that ends a failed claim cannot undo it (apikeys._claim_attempt, see
-- src/claim.c): at most five per claim, ever.  A right code then locks the
-- claim and its key without waiting (a concurrent claim holding them
-- wins) and looks again.  The caller's address (client_ip, else as
-- pre_request chooses it) only counts failures in the address throttle:
-- it never refuses a claim, so junk sent through a shared proxy cannot
-- block anyone else's.
CREATE FUNCTION apikeys.claim_key(claim_token text, code text, client_ip inet DEFAULT NULL)
    RETURNS apikeys.new_key
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c apikeys.claims;
    k apikeys.keys;
    m record;
    v_addr inet;
    v_ok boolean := false;
BEGIN
    -- a standby refuses here, at once (25006)
    v_addr := apikeys._claim_begin(claim_key.client_ip);
    -- Every failure ends at the one RAISE below, so not even the error's
    -- CONTEXT line tells which check failed.
    IF claim_key.claim_token IS NOT NULL AND claim_key.code IS NOT NULL AND
       pg_catalog.length(claim_key.claim_token) OPERATOR(pg_catalog.<=) 256 THEN
        SELECT * INTO c FROM apikeys.claims cl
         WHERE cl.token_hash OPERATOR(pg_catalog.=)
               pg_catalog.sha256(pg_catalog.convert_to(claim_key.claim_token, 'UTF8'));
        IF FOUND AND c.claimed_at IS NULL AND c.locked_at IS NULL AND
           c.superseded_at IS NULL AND c.expires_at OPERATOR(pg_catalog.>) pg_catalog.now() AND
           c.failures OPERATOR(pg_catalog.<) 5 AND
           apikeys._claim_attempt(c.id, c.failures, c.expires_at, c.code_hash,
               pg_catalog.sha256(pg_catalog.convert_to(claim_key.claim_token OPERATOR(pg_catalog.||) ':'
                                                       OPERATOR(pg_catalog.||) claim_key.code, 'UTF8'))) THEN
            -- the code is right: lock without waiting, and look again (a
            -- concurrent claim may have won meanwhile)
            BEGIN
                SELECT * INTO c FROM apikeys.claims cl
                 WHERE cl.id OPERATOR(pg_catalog.=) c.id FOR UPDATE NOWAIT;
                SELECT * INTO k FROM apikeys.keys kk
                 WHERE kk.client_id OPERATOR(pg_catalog.=) c.client_id FOR UPDATE NOWAIT;
                v_ok := c.claimed_at IS NULL AND c.locked_at IS NULL AND c.superseded_at IS NULL AND
                        k.client_id IS NOT NULL AND k.revoked_at IS NULL AND
                        k.pending_since IS NOT NULL AND
                        k.expires_at OPERATOR(pg_catalog.>) pg_catalog.now();
            EXCEPTION WHEN lock_not_available THEN
                v_ok := false;
            END;
        END IF;
    END IF;
    IF NOT v_ok THEN
        PERFORM apikeys._claim_failed(v_addr);
        PERFORM apikeys._claim_refuse();
    END IF;

    m := apikeys._mint(k.client_id);
    PERFORM apikeys._op_begin('claimed', pg_catalog.jsonb_build_object('claim_created_at', c.created_at));
    UPDATE apikeys.keys SET
        secret_hash = m.secret_hash,
        hash_alg = m.hash_alg,
        prev_secret_hash = NULL,
        prev_hash_alg = NULL,
        prev_expires_at = NULL,
        pending_since = NULL
     WHERE keys.client_id OPERATOR(pg_catalog.=) k.client_id;
    PERFORM apikeys._op_end();
    UPDATE apikeys.claims SET claimed_at = pg_catalog.now() WHERE id OPERATOR(pg_catalog.=) c.id;
    PERFORM apikeys._outbox_erase(ARRAY[c.id]);

    RETURN ROW(m.client_id, m.client_secret, m.token, k.expires_at)::apikeys.new_key;
END
$$;

-- reset_key: Spektrix's "Reset API key".  The current secret (and any
-- rotation grace) stops at once; the key is pending again and a new link
-- and code go out.
CREATE FUNCTION apikeys.reset_key(client_id text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k apikeys.keys;
    m record;
BEGIN
    k := apikeys._key_row(reset_key.client_id);
    IF k.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now() THEN
        RAISE EXCEPTION 'API key "%" has expired', reset_key.client_id
            USING ERRCODE = '55000',
                  HINT = 'An expired key cannot be reset; issue a new key with apikeys.create_key().';
    END IF;
    IF k.contact_email IS NULL OR k.contact_phone IS NULL THEN
        RAISE EXCEPTION 'API key "%" has no contact email and phone for a handoff', reset_key.client_id
            USING ERRCODE = '22023',
                  HINT = 'Set contact_email and contact_phone with apikeys.update_key() first.';
    END IF;

    m := apikeys._mint(k.client_id);   -- its secret is dropped unseen
    PERFORM apikeys._op_begin('reset', NULL);
    UPDATE apikeys.keys SET
        secret_hash = m.secret_hash,
        hash_alg = m.hash_alg,
        prev_secret_hash = NULL,
        prev_hash_alg = NULL,
        prev_expires_at = NULL,
        pending_since = pg_catalog.now()
     WHERE keys.client_id OPERATOR(pg_catalog.=) k.client_id
    RETURNING * INTO k;
    PERFORM apikeys._op_end();
    PERFORM apikeys._handoff_start(k);
END
$$;

-- _outbox_housekeeping: rows of claims that expired lose their one-time
-- secrets (and, undelivered, are given up: the link is dead); rows whose
-- last allowed attempt's lease ran out are given up.
CREATE FUNCTION apikeys._outbox_housekeeping()
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_max integer := apikeys._setting_integer('apikeys.outbox_max_attempts', 10);
BEGIN
    UPDATE apikeys.outbox o SET
        payload = o.payload OPERATOR(pg_catalog.-) ARRAY['claim_token', 'code']::text[],
        failed_at = CASE WHEN o.delivered_at IS NULL AND o.failed_at IS NULL
                         THEN pg_catalog.now() ELSE o.failed_at END,
        last_error = CASE WHEN o.delivered_at IS NULL AND o.failed_at IS NULL
                          THEN 'the claim expired before delivery' ELSE o.last_error END,
        leased_until = NULL
      FROM apikeys.claims c
     WHERE o.claim_id OPERATOR(pg_catalog.=) c.id
       AND c.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()
       AND o.payload OPERATOR(pg_catalog.?|) ARRAY['claim_token', 'code']::text[];

    UPDATE apikeys.outbox o SET
        failed_at = pg_catalog.now(),
        last_error = COALESCE(o.last_error, 'the lease of the last attempt ran out'),
        leased_until = NULL
     WHERE o.delivered_at IS NULL AND o.failed_at IS NULL
       AND o.attempts OPERATOR(pg_catalog.>=) v_max
       AND o.leased_until OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp();
END
$$;

-- outbox_take: due, undelivered rows, oldest first, each leased to the
-- caller until now() + lease.  FOR UPDATE SKIP LOCKED: concurrent takers
-- skip each other's rows instead of waiting, and a leased row is not due
-- again until its lease ends (a taker that died leaves it to come back).
CREATE FUNCTION apikeys.outbox_take(max_rows integer DEFAULT 100, lease interval DEFAULT '1 minute')
    RETURNS SETOF apikeys.outbox
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_max integer := apikeys._setting_integer('apikeys.outbox_max_attempts', 10);
BEGIN
    IF max_rows IS NULL OR max_rows OPERATOR(pg_catalog.<) 1 OR max_rows OPERATOR(pg_catalog.>) 10000 THEN
        RAISE EXCEPTION 'max_rows must be between 1 and 10000' USING ERRCODE = '22023';
    END IF;
    IF lease IS NULL OR lease OPERATOR(pg_catalog.<) '1 second'::interval OR
       lease OPERATOR(pg_catalog.>) '1 day'::interval THEN
        RAISE EXCEPTION 'lease must be between 1 second and 1 day' USING ERRCODE = '22023';
    END IF;
    PERFORM apikeys._outbox_housekeeping();
    RETURN QUERY
    WITH due AS (
        SELECT o.id FROM apikeys.outbox o
         WHERE o.delivered_at IS NULL AND o.failed_at IS NULL
           AND o.available_at OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp()
           AND (o.leased_until IS NULL OR o.leased_until OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp())
           AND o.attempts OPERATOR(pg_catalog.<) v_max
         ORDER BY o.id
         LIMIT max_rows
         FOR UPDATE SKIP LOCKED),
    taken AS (
        UPDATE apikeys.outbox o SET
            attempts = o.attempts OPERATOR(pg_catalog.+) 1,
            leased_until = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) lease,
            leased_by = pg_catalog.format('%s pid %s', apikeys._outer_user(), pg_catalog.pg_backend_pid())
          FROM due
         WHERE o.id OPERATOR(pg_catalog.=) due.id
        RETURNING o.*)
    SELECT * FROM taken ORDER BY taken.id;
END
$$;

-- outbox_done: the row was delivered.  Its one-time secrets are erased.
-- Idempotent: at-least-once delivery may report a row twice.
CREATE FUNCTION apikeys.outbox_done(id bigint)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE apikeys.outbox o SET
        delivered_at = COALESCE(o.delivered_at, pg_catalog.now()),
        leased_until = NULL,
        payload = o.payload OPERATOR(pg_catalog.-) ARRAY['claim_token', 'code']::text[]
     WHERE o.id OPERATOR(pg_catalog.=) outbox_done.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'outbox row % does not exist', COALESCE(outbox_done.id::text, 'NULL')
            USING ERRCODE = '42704';
    END IF;
END
$$;

-- outbox_retry: delivery failed; the row is due again after a backoff of
-- apikeys.outbox_backoff doubled per attempt (at most
-- apikeys.outbox_max_backoff), and given up after
-- apikeys.outbox_max_attempts attempts.
CREATE FUNCTION apikeys.outbox_retry(id bigint, error text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o apikeys.outbox;
    v_max integer := apikeys._setting_integer('apikeys.outbox_max_attempts', 10);
    v_delay interval;
BEGIN
    SELECT * INTO o FROM apikeys.outbox ob WHERE ob.id OPERATOR(pg_catalog.=) outbox_retry.id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'outbox row % does not exist', COALESCE(outbox_retry.id::text, 'NULL')
            USING ERRCODE = '42704';
    END IF;
    IF o.delivered_at IS NOT NULL THEN
        RAISE EXCEPTION 'outbox row % has already been delivered', o.id
            USING ERRCODE = '55000';
    END IF;
    v_delay := LEAST(apikeys._setting_interval('apikeys.outbox_backoff', '10 seconds')
                     OPERATOR(pg_catalog.*)
                     pg_catalog.power(2::double precision,
                                      (LEAST(GREATEST(o.attempts, 1), 30) OPERATOR(pg_catalog.-) 1)::double precision),
                     apikeys._setting_interval('apikeys.outbox_max_backoff', '1 hour'));
    UPDATE apikeys.outbox ob SET
        leased_until = NULL,
        last_error = pg_catalog."left"(COALESCE(outbox_retry.error, ''), 1000),
        available_at = pg_catalog.now() OPERATOR(pg_catalog.+) v_delay,
        failed_at = CASE WHEN o.attempts OPERATOR(pg_catalog.>=) v_max THEN pg_catalog.now() END
     WHERE ob.id OPERATOR(pg_catalog.=) o.id;
END
$$;

-- _policy_notice: one expires_soon / rotation_due notice for a key, unless
-- already sent for this subject; audited, delivered to the key's contact
-- email (or to applications when it has none).  True when sent.
CREATE FUNCTION apikeys._policy_notice(k apikeys.keys, p_event text, p_subject timestamptz,
                                       p_payload jsonb)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO apikeys.policy_notices (client_id, event, subject)
    VALUES (k.client_id, p_event, p_subject)
    ON CONFLICT ON CONSTRAINT policy_notices_pkey DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    v_id := apikeys._deliver(p_event, k.client_id, k.owner,
                             CASE WHEN k.contact_email IS NOT NULL THEN 'email' END,
                             k.contact_email,
                             p_payload OPERATOR(pg_catalog.||)
                             pg_catalog.jsonb_build_object('client_id', k.client_id, 'name', k.name));
    PERFORM apikeys._audit(p_event, k.client_id, k.owner,
        p_payload OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('outbox_id', v_id));
    RETURN true;
END
$$;

-- apply_policies: one pass of the lifecycle policies over live keys, plus
-- outbox housekeeping and retention.  Returns the number of actions
-- (revocations and notices).  Safe to run twice or concurrently: a revoke
-- re-checks revoked_at under the row lock, a notice is sent once per
-- (key, event, subject).
CREATE FUNCTION apikeys.apply_policies()
    RETURNS integer
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer := 0;
    r record;
    k apikeys.keys;
    v_retention interval := apikeys._setting_interval('apikeys.outbox_retention', '7 days');
    v_last timestamptz;
    v_proof record;
    v_skipped integer := 0;
    v_skip_reason text;
    v_skip_ids text[] := '{}';
BEGIN
    PERFORM apikeys._outbox_housekeeping();
    IF v_retention OPERATOR(pg_catalog.>) '0'::interval THEN
        DELETE FROM apikeys.outbox o
         WHERE o.delivered_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) v_retention)
            OR o.failed_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) v_retention);
        DELETE FROM apikeys.claims c
         WHERE c.expires_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) v_retention);
    END IF;

    FOR r IN
        SELECT kk.client_id, kk.expires_at,
               COALESCE(p.revoke_unused_after,
                        apikeys._setting_interval('apikeys.default_revoke_unused_after', '0')) AS unused_after,
               COALESCE(p.warn_before_expiry,
                        apikeys._setting_interval('apikeys.default_warn_before_expiry', '14 days')) AS warn_before,
               COALESCE(p.rotate_every,
                        apikeys._setting_interval('apikeys.default_rotate_every', '0')) AS rotate_every
          FROM apikeys.keys kk
          LEFT JOIN apikeys.owner_policies p ON p.owner OPERATOR(pg_catalog.=) kk.owner
         WHERE kk.revoked_at IS NULL
           AND kk.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()
         ORDER BY kk.client_id
    LOOP
        -- nothing to do for this key: skip the row fetch (with the default
        -- expiry warning on, most keys are far from their expiry)
        IF r.unused_after OPERATOR(pg_catalog.<=) '0'::interval AND
           (r.warn_before OPERATOR(pg_catalog.<=) '0'::interval OR
            r.expires_at OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.+) r.warn_before)) AND
           r.rotate_every OPERATOR(pg_catalog.<=) '0'::interval THEN
            CONTINUE;
        END IF;
        SELECT * INTO k FROM apikeys.keys kk WHERE kk.client_id OPERATOR(pg_catalog.=) r.client_id;
        IF NOT FOUND THEN
            CONTINUE;
        END IF;

        -- revoke_unused_after: never used counts from creation; only a
        -- proven non-use revokes (apikeys._unused_proven)
        IF r.unused_after OPERATOR(pg_catalog.>) '0'::interval THEN
            SELECT * INTO v_proof FROM apikeys._unused_proven(k, r.unused_after);
            v_last := v_proof.last_used_at;
            IF NOT v_proof.proven AND v_proof.reason IS NOT NULL THEN
                v_skipped := v_skipped OPERATOR(pg_catalog.+) 1;
                v_skip_reason := COALESCE(v_skip_reason, v_proof.reason);
                IF v_skipped OPERATOR(pg_catalog.<=) 100 THEN
                    v_skip_ids := v_skip_ids OPERATOR(pg_catalog.||) k.client_id;
                END IF;
            END IF;
            IF v_proof.proven THEN
                IF apikeys._revoke_key(k.client_id, pg_catalog.jsonb_build_object(
                       'reason', 'unused', 'policy', 'revoke_unused_after',
                       'unused_after', r.unused_after, 'last_used_at', v_last),
                       false, false) OPERATOR(pg_catalog.>) 0 THEN
                    PERFORM apikeys._deliver('revoked_unused', k.client_id, k.owner,
                        CASE WHEN k.contact_email IS NOT NULL THEN 'email' END, k.contact_email,
                        pg_catalog.jsonb_build_object('client_id', k.client_id, 'name', k.name,
                                                      'last_used_at', v_last,
                                                      'unused_after', r.unused_after));
                    n := n OPERATOR(pg_catalog.+) 1;
                    CONTINUE;
                END IF;
            END IF;
        END IF;

        IF r.warn_before OPERATOR(pg_catalog.>) '0'::interval AND
           k.expires_at OPERATOR(pg_catalog.<=) (pg_catalog.now() OPERATOR(pg_catalog.+) r.warn_before) THEN
            IF apikeys._policy_notice(k, 'expires_soon', k.expires_at,
                   pg_catalog.jsonb_build_object('expires_at', k.expires_at)) THEN
                n := n OPERATOR(pg_catalog.+) 1;
            END IF;
        END IF;

        IF r.rotate_every OPERATOR(pg_catalog.>) '0'::interval AND k.pending_since IS NULL AND
           k.secret_set_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) r.rotate_every) THEN
            IF apikeys._policy_notice(k, 'rotation_due', k.secret_set_at,
                   pg_catalog.jsonb_build_object('secret_set_at', k.secret_set_at,
                                                 'rotate_every', r.rotate_every)) THEN
                n := n OPERATOR(pg_catalog.+) 1;
            END IF;
        END IF;
    END LOOP;
    IF v_skipped OPERATOR(pg_catalog.>) 0 THEN
        -- said loudly, once per run: the log (the worker's run too) and the audit trail
        RAISE WARNING 'apikeys.apply_policies did not revoke % keys without a recorded use', v_skipped
            USING DETAIL = 'Their non-use is not proven: ' OPERATOR(pg_catalog.||) v_skip_reason OPERATOR(pg_catalog.||) '.',
                  HINT = 'See "Lifecycle policies" in the apikeys documentation.';
        PERFORM apikeys._audit('unused_not_revoked', NULL, NULL, pg_catalog.jsonb_build_object(
            'policy', 'revoke_unused_after', 'reason', v_skip_reason,
            'keys', v_skipped, 'client_ids', pg_catalog.to_jsonb(v_skip_ids)));
    END IF;
    RETURN n;
END
$$;

-- _unused_proven: the one rule of revoke_unused_after.  A key is revoked as
-- unused only when its last recorded use (or, never used, its creation) is
-- older than unused_after AND every use in that time would have been
-- recorded (apikeys._usage_unproven: preloaded, no standby that may verify,
-- no use lost in that time, the journal's last uses all known).  proven
-- false with a reason: it looks unused but that is not proven; without a
-- reason: it was used.  The recorded last use is the latest of
-- keys.last_used_at (written without preloading), the last use awaiting the
-- rollup (flushed to the journal: _recent_use) and the rolled-up usage rows.
CREATE FUNCTION apikeys._unused_proven(p_key apikeys.keys, p_unused_after interval,
                                       OUT proven boolean, OUT last_used_at timestamptz,
                                       OUT reason text)
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- first: the uses still in shared memory reach the journal, and no
    -- rollup moves them while this transaction reads them
    reason := apikeys._usage_unproven(p_unused_after);
    last_used_at := GREATEST(p_key.last_used_at, apikeys._recent_use(p_key.client_id),
        (SELECT u.last_used_at FROM apikeys.usage u
          WHERE u.client_id OPERATOR(pg_catalog.=) p_key.client_id AND u.last_used_at IS NOT NULL
          ORDER BY u.hour DESC LIMIT 1));
    IF COALESCE(last_used_at, p_key.created_at) OPERATOR(pg_catalog.>=)
       (pg_catalog.now() OPERATOR(pg_catalog.-) p_unused_after) THEN
        proven := false;
        reason := NULL;
    ELSE
        proven := reason IS NULL;
    END IF;
END
$$;

--------------------------------------------------------------------------------
-- Named scope sets (apikeys_admin)
--
-- A set is a named list of plain scopes; a key's scopes may name it as
-- '@name'.  Verification expands the set when it loads the key, so a
-- redefinition takes effect for every key holding the set when it commits,
-- on every connection: the statement trigger scope_sets_cache outdates
-- every cached key of the database (src/cache.c, "Named scope sets").
--------------------------------------------------------------------------------

CREATE FUNCTION apikeys.define_scope_set(name text, scopes text[], description text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_scopes apikeys.scope[];
    old_s apikeys.scope_sets;
BEGIN
    IF define_scope_set.name IS NULL OR
       define_scope_set.name OPERATOR(pg_catalog.!~) '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'invalid scope set name "%"', define_scope_set.name
            USING ERRCODE = '22023',
                  DETAIL = 'A scope set name is a lowercase letter followed by up to 62 lowercase letters, digits or underscores.';
    END IF;
    IF define_scope_set.scopes IS NULL THEN
        RAISE EXCEPTION 'scopes cannot be NULL' USING ERRCODE = '22023';
    END IF;
    v_scopes := apikeys._check_settings(define_scope_set.scopes, define_scope_set.description,
                    NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    IF EXISTS (SELECT 1 FROM pg_catalog.unnest(v_scopes) u(s)
                WHERE pg_catalog.left(u.s::text, 1) OPERATOR(pg_catalog.=) '@') THEN
        RAISE EXCEPTION 'a scope set cannot contain another scope set'
            USING ERRCODE = '22023',
                  HINT = 'List the other set''s scopes instead.';
    END IF;

    SELECT * INTO old_s FROM apikeys.scope_sets ss
     WHERE ss.name OPERATOR(pg_catalog.=) define_scope_set.name FOR UPDATE;
    INSERT INTO apikeys.scope_sets AS ss (name, scopes, description)
    VALUES (define_scope_set.name, v_scopes, NULLIF(define_scope_set.description, ''))
    ON CONFLICT ON CONSTRAINT scope_sets_pkey DO UPDATE SET
        scopes = EXCLUDED.scopes,
        description = COALESCE(EXCLUDED.description, ss.description),
        updated_at = pg_catalog.now();
    PERFORM apikeys._audit('scope_set_defined', NULL, NULL,
        pg_catalog.jsonb_build_object('name', define_scope_set.name,
            'scopes', pg_catalog.jsonb_build_object('old', old_s.scopes, 'new', v_scopes)));
END
$$;

CREATE FUNCTION apikeys.drop_scope_set(name text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    -- the row lock first: a create_key/update_key naming the set holds a
    -- share lock on it until it commits, and the count below (a new
    -- statement) then sees its key
    PERFORM 1 FROM apikeys.scope_sets ss
      WHERE ss.name OPERATOR(pg_catalog.=) drop_scope_set.name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'scope set "%" does not exist', drop_scope_set.name
            USING ERRCODE = '42704';
    END IF;
    SELECT pg_catalog.count(*) INTO n FROM apikeys.keys k
     WHERE ('@' OPERATOR(pg_catalog.||) drop_scope_set.name)::apikeys.scope
           OPERATOR(apikeys.=) ANY (k.scopes)
       AND k.revoked_at IS NULL
       AND k.expires_at OPERATOR(pg_catalog.>) pg_catalog.now();
    IF n OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'cannot drop scope set "%" because API keys use it', drop_scope_set.name
            USING ERRCODE = '2BP01',
                  DETAIL = pg_catalog.format('Live keys holding "@%s": %s.', drop_scope_set.name, n),
                  HINT = 'Change those keys'' scopes with apikeys.update_key(), or revoke them, first.';
    END IF;
    DELETE FROM apikeys.scope_sets ss WHERE ss.name OPERATOR(pg_catalog.=) drop_scope_set.name;
    PERFORM apikeys._audit('scope_set_dropped', NULL, NULL,
        pg_catalog.jsonb_build_object('name', drop_scope_set.name));
END
$$;

--------------------------------------------------------------------------------
-- Tenant self-service (apikeys_verifier): keys that manage their owner's keys
--
-- The my_* functions act for the key authenticated in this transaction
-- (authenticate or pre_request).  Each one re-reads that key's row and
-- share-locks it (_acting_row), so a key revoked, disabled, expired (at the
-- time of the call, not of the transaction's start) or stripped of its
-- apikeys:* scope earlier in the same transaction, or by a transaction
-- that committed meanwhile, can do nothing; a revoke racing a my_* call
-- waits for it (or makes it wait and then refuses it).  _acting_row also
-- counts the action against the owner's apikeys.max_tenant_actions per
-- minute.  Three rules, each in one function every my_* path calls:
--   _check_grant   a key never gives more than it holds (new keys, and
--                  a key as it will be after a change);
--   _check_target  a key changes only keys within its own power, and
--                  never lifts an admin's disable (_target_row calls it);
--   _grant_scopes  what a key gives is plain scopes: a '@set' is
--                  expanded when it is given, so a later redefinition of
--                  a set (which only admins make) never widens a key that
--                  a tenant made.
-- The work itself is done by the admin functions, so the owner's cap and
-- policies apply unchanged.
--------------------------------------------------------------------------------

-- _count_tenant_action: one management action of the owner's keys; more
-- than apikeys.max_tenant_actions in a minute is 54000 (audit and outbox
-- floods).  The owner's policy row is locked until commit, so concurrent
-- actions of one owner are counted exactly; a refused or rolled-back
-- action is not counted (it wrote nothing).
CREATE FUNCTION apikeys._count_tenant_action(p_owner text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_max integer := apikeys._setting_integer('apikeys.max_tenant_actions', 60);
    v_now timestamptz := pg_catalog.clock_timestamp();
    v_n integer;
BEGIN
    IF v_max OPERATOR(pg_catalog.<=) 0 OR p_owner IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO apikeys.owner_policies AS p (owner, actions_since, actions)
    VALUES (p_owner, v_now, 1)
    ON CONFLICT ON CONSTRAINT owner_policies_pkey DO UPDATE SET
        actions = CASE WHEN p.actions_since IS NULL OR
                            p.actions_since OPERATOR(pg_catalog.<=) (v_now OPERATOR(pg_catalog.-) '1 minute'::interval)
                       THEN 1 ELSE p.actions OPERATOR(pg_catalog.+) 1 END,
        actions_since = CASE WHEN p.actions_since IS NULL OR
                                  p.actions_since OPERATOR(pg_catalog.<=) (v_now OPERATOR(pg_catalog.-) '1 minute'::interval)
                             THEN v_now ELSE p.actions_since END
    RETURNING p.actions INTO v_n;
    IF v_n OPERATOR(pg_catalog.>) v_max THEN
        RAISE EXCEPTION 'too many key management actions for this owner'
            USING ERRCODE = '54000',
                  DETAIL = pg_catalog.format('The keys of an owner make at most %s management actions a minute.', v_max),
                  HINT = 'Wait a minute and try again; apikeys.max_tenant_actions sets the limit.';
    END IF;
END
$$;

-- _acting_row: the authenticated key's current row, if it is live at the
-- time of the call (clock_timestamp(): a transaction opened before the key
-- expired must not keep managing keys) and its scopes (sets expanded) grant
-- p_scope; else 42501.  The one liveness check of management actions; it
-- counts the action (_count_tenant_action).  With p_raise false (for
-- reading, my_keys): NULL instead of the error, no row lock, not counted.
CREATE FUNCTION apikeys._acting_row(p_scope text, p_raise boolean DEFAULT true)
    RETURNS apikeys.keys
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cid text := apikeys.current_client_id();
    k apikeys.keys;
BEGIN
    IF v_cid IS NULL THEN
        IF NOT p_raise THEN RETURN NULL; END IF;
        RAISE EXCEPTION 'no API key is authenticated'
            USING ERRCODE = '42501',
                  HINT = 'Present a key holding the apikeys:* scopes (apikeys.authenticate() or apikeys.pre_request()).';
    END IF;
    IF p_raise THEN
        -- counted first: the owner's policy row is locked before the key
        -- row, in the order create_key and revoke_all_keys take them
        PERFORM apikeys._count_tenant_action(apikeys.current_owner());
        -- a change follows: serialise with a concurrent revoke of this key
        SELECT * INTO k FROM apikeys.keys a
         WHERE a.client_id OPERATOR(pg_catalog.=) v_cid
         FOR SHARE;
    ELSE
        -- reading only (my_keys): no lock, so it works in READ ONLY
        -- transactions (PostgREST's GET) and on a standby
        SELECT * INTO k FROM apikeys.keys a
         WHERE a.client_id OPERATOR(pg_catalog.=) v_cid;
    END IF;
    IF NOT FOUND OR k.revoked_at IS NOT NULL OR k.disabled_at IS NOT NULL OR
       k.expires_at OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp() OR
       NOT apikeys.scopes_grant(apikeys._expand_scopes(k.scopes), p_scope::apikeys.scope) THEN
        IF NOT p_raise THEN RETURN NULL; END IF;
        RAISE EXCEPTION 'API key "%" may not manage keys', v_cid
            USING ERRCODE = '42501',
                  DETAIL = pg_catalog.format('This needs a live key holding the scope %s.', p_scope);
    END IF;
    RETURN k;
END
$$;

-- _check_target: may the acting key change this key at all?  Only a key
-- within its own power (_check_grant of the key as it is: a narrower key
-- must not rotate, disable, revoke or delete a broader one), and never by
-- enabling a key an admin disabled (disabled_by_key NULL): a tenant does
-- not undo the platform.  Every my_* change reaches it through _target_row.
CREATE FUNCTION apikeys._check_target(p_acting apikeys.keys, p_target apikeys.keys, p_action text)
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM apikeys._check_grant(p_acting, p_target.client_id, p_target.scopes,
                                 p_target.expires_at, p_target.db_role, p_target.rate_limit,
                                 p_target.rate_window, p_target.allowed_cidrs);
    IF p_action OPERATOR(pg_catalog.=) 'enable' AND p_target.disabled_at IS NOT NULL AND
       p_target.disabled_by_key IS NULL THEN
        RAISE EXCEPTION 'API key "%" cannot enable API key "%"', p_acting.client_id, p_target.client_id
            USING ERRCODE = '42501',
                  DETAIL = 'An administrator disabled that key.',
                  HINT = 'Only an administrator can enable it (apikeys.enable_key()).';
    END IF;
END
$$;

-- _target_row: a key of the acting key's owner, locked for the change and
-- checked by _check_target for p_action; a key of another owner is 42704,
-- exactly as if it did not exist.
CREATE FUNCTION apikeys._target_row(p_acting apikeys.keys, p_client_id text, p_action text)
    RETURNS apikeys.keys
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t apikeys.keys;
BEGIN
    IF p_client_id IS NULL THEN
        RAISE EXCEPTION 'client_id cannot be NULL' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO t FROM apikeys.keys k
     WHERE k.client_id OPERATOR(pg_catalog.=) p_client_id
       AND k.owner OPERATOR(pg_catalog.=) p_acting.owner
     FOR UPDATE;
    IF NOT FOUND THEN
        IF apikeys.token_client_id(p_client_id) IS NOT NULL THEN
            RAISE EXCEPTION 'a token was given where a client ID is expected'
                USING ERRCODE = '22023',
                      HINT = 'Pass the client ID (the token up to the secret), never the token itself.';
        END IF;
        RAISE EXCEPTION 'API key "%" does not exist', p_client_id
            USING ERRCODE = '42704';
    END IF;
    PERFORM apikeys._check_target(p_acting, t, p_action);
    RETURN t;
END
$$;

-- _grant_scopes: the scopes a key gives, validated (_check_settings) and
-- with every '@set' replaced by the set's scopes as they are now.  A set
-- is global and only admins define it: a key made through self-service
-- holds plain scopes, so widening a set later widens only the keys an
-- admin gave it to.  NULL stays NULL (not given).
CREATE FUNCTION apikeys._grant_scopes(p_scopes text[])
    RETURNS apikeys.scope[]
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_scopes apikeys.scope[];
BEGIN
    IF p_scopes IS NULL THEN
        RETURN NULL;
    END IF;
    v_scopes := apikeys._check_settings(p_scopes, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    -- expanded, then validated again: duplicates go, at most 100 scopes
    RETURN apikeys._check_settings(apikeys._expand_scopes(v_scopes)::text[],
                                   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
END
$$;

-- _check_grant: the no-escalation rule, in one place.  A key (p_acting)
-- may give a key (new, or changed, or one it acts on: _check_target) only
-- what it holds itself:
--   scopes       each one covered by the acting key's scopes, both sides
--                with '@set' expanded, matched by the scope type itself
--                (_scopes_cover: so apikeys:* or * only from a key holding
--                it, and a field list only narrower than the acting key's;
--                a field-less scope only from a field-less grant)
--   expiry       not later than the acting key's, to the microsecond
--   db_role      the acting key's own (NULL too: no role switch)
--   rate limit   none only if the acting key has none; else at most the
--                acting key's rate (limit per window length), the windows
--                measured as verification measures them (_interval_us:
--                '1 year -359 days' is one day to both)
--   networks     none only if the acting key has none; else each network
--                inside one of the acting key's, both normalised as
--                verification normalises them (_cidrs_outside:
--                ::ffff:0.0.0.0/96 is IPv4 0.0.0.0/0, outside ::/0)
-- Anything else: 42501.
CREATE FUNCTION apikeys._check_grant(p_acting apikeys.keys, p_client_id text,
                                     p_scopes apikeys.scope[], p_expires_at timestamptz,
                                     p_db_role text, p_rate_limit integer,
                                     p_rate_window interval, p_allowed_cidrs cidr[])
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_held apikeys.scope[] := apikeys._expand_scopes(p_acting.scopes);
    v_what text := CASE WHEN p_client_id IS NULL THEN 'a new API key'
                        ELSE pg_catalog.format('API key "%s"', p_client_id) END;
    s apikeys.scope;
    c cidr;
BEGIN
    FOREACH s IN ARRAY apikeys._expand_scopes(COALESCE(p_scopes, '{}'))
    LOOP
        IF NOT apikeys._scopes_cover(v_held, s) THEN
            RAISE EXCEPTION 'API key "%" cannot give % the scope "%"', p_acting.client_id, v_what, s::text
                USING ERRCODE = '42501',
                      DETAIL = 'A key can only give scopes its own scopes grant.';
        END IF;
    END LOOP;
    IF p_expires_at IS NULL OR p_expires_at OPERATOR(pg_catalog.>) p_acting.expires_at THEN
        RAISE EXCEPTION 'API key "%" cannot give % an expiry later than its own', p_acting.client_id, v_what
            USING ERRCODE = '42501',
                  DETAIL = pg_catalog.format('The acting key expires at %s.', p_acting.expires_at);
    END IF;
    IF p_db_role IS DISTINCT FROM p_acting.db_role THEN
        RAISE EXCEPTION 'API key "%" cannot give % another db_role', p_acting.client_id, v_what
            USING ERRCODE = '42501',
                  DETAIL = 'A key can only give its own db_role.';
    END IF;
    -- a missing window is one minute, as verification reads it (lookup.c)
    IF p_acting.rate_limit IS NOT NULL AND
       (p_rate_limit IS NULL OR
        (p_rate_limit::numeric OPERATOR(pg_catalog.*)
         COALESCE(apikeys._interval_us(p_acting.rate_window), 60000000)::numeric)
          OPERATOR(pg_catalog.>)
        (p_acting.rate_limit::numeric OPERATOR(pg_catalog.*)
         COALESCE(apikeys._interval_us(p_rate_window), 60000000)::numeric)) THEN
        RAISE EXCEPTION 'API key "%" cannot give % a higher rate limit than its own', p_acting.client_id, v_what
            USING ERRCODE = '42501',
                  DETAIL = pg_catalog.format('The acting key allows %s requests per %s.',
                                             p_acting.rate_limit, p_acting.rate_window);
    END IF;
    IF p_acting.allowed_cidrs IS NOT NULL THEN
        IF p_allowed_cidrs IS NULL THEN
            RAISE EXCEPTION 'API key "%" cannot give % a wider network restriction than its own', p_acting.client_id, v_what
                USING ERRCODE = '42501';
        END IF;
        c := apikeys._cidrs_outside(p_allowed_cidrs, p_acting.allowed_cidrs);
        IF c IS NOT NULL THEN
            RAISE EXCEPTION 'API key "%" cannot give % a wider network restriction than its own', p_acting.client_id, v_what
                USING ERRCODE = '42501',
                      DETAIL = pg_catalog.format('The network %s is outside the acting key''s allowed_cidrs.', c);
        END IF;
    END IF;
END
$$;

CREATE FUNCTION apikeys.my_create_key(name text, scopes text[],
                                      expires_at timestamptz DEFAULT NULL,
                                      description text DEFAULT NULL,
                                      contact_email text DEFAULT NULL,
                                      contact_phone text DEFAULT NULL,
                                      allowed_cidrs cidr[] DEFAULT NULL,
                                      metadata jsonb DEFAULT '{}',
                                      handoff boolean DEFAULT false)
    RETURNS apikeys.new_key
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys._acting_row('apikeys:create');
    v_scopes apikeys.scope[];
    v_max_lifetime interval;
    v_expires timestamptz;
    v_cidrs cidr[];
    r apikeys.new_key;
BEGIN
    -- A handoff sends an e-mail and an SMS to addresses the caller chooses;
    -- through self-service that is a paid-message pump (create, delete,
    -- repeat).  Refused: an admin's create_key(handoff => true) does it.
    IF my_create_key.handoff THEN
        RAISE EXCEPTION 'a self-service key cannot start a handoff'
            USING ERRCODE = '0A000',
                  DETAIL = 'A handoff sends an e-mail and an SMS to the addresses given.',
                  HINT = 'Create the key without handoff and pass its secret on yourself, or ask an administrator for apikeys.create_key(..., handoff => true).';
    END IF;
    IF my_create_key.scopes IS NULL THEN
        RAISE EXCEPTION 'scopes cannot be NULL' USING ERRCODE = '22023',
            HINT = 'Give an empty array for a key that may do nothing yet.';
    END IF;
    v_scopes := apikeys._grant_scopes(my_create_key.scopes);
    PERFORM apikeys._check_settings(NULL, NULL, NULL, NULL,
                                    my_create_key.allowed_cidrs, NULL, NULL, NULL, NULL);
    -- defaults inherit from the acting key: never more than it has
    SELECT l.max_lifetime INTO v_max_lifetime FROM apikeys._owner_limits(a.owner) l;
    v_expires := COALESCE(my_create_key.expires_at,
                          LEAST(a.expires_at, pg_catalog.now() OPERATOR(pg_catalog.+) v_max_lifetime));
    v_cidrs := COALESCE(NULLIF(my_create_key.allowed_cidrs, '{}'::cidr[]), a.allowed_cidrs);
    PERFORM apikeys._check_grant(a, NULL, v_scopes, v_expires, a.db_role,
                                 a.rate_limit, a.rate_window, v_cidrs);

    PERFORM apikeys._acting_begin(a.client_id);
    r := apikeys.create_key(a.owner, my_create_key.name, v_scopes::text[], v_expires,
                            my_create_key.description, my_create_key.contact_email,
                            my_create_key.contact_phone, v_cidrs,
                            my_create_key.metadata, a.db_role::name, a.rate_limit,
                            COALESCE(a.rate_window, '1 minute'::interval), false);
    PERFORM apikeys._acting_begin(NULL);
    RETURN r;
END
$$;

CREATE FUNCTION apikeys.my_update_key(client_id text,
                                      name text DEFAULT NULL,
                                      description text DEFAULT NULL,
                                      scopes text[] DEFAULT NULL,
                                      expires_at timestamptz DEFAULT NULL,
                                      contact_email text DEFAULT NULL,
                                      contact_phone text DEFAULT NULL,
                                      allowed_cidrs cidr[] DEFAULT NULL,
                                      metadata jsonb DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys._acting_row('apikeys:update');
    t apikeys.keys := apikeys._target_row(a, my_update_key.client_id, 'update');
    v_scopes apikeys.scope[];
BEGIN
    v_scopes := apikeys._grant_scopes(my_update_key.scopes);
    PERFORM apikeys._check_settings(NULL, NULL, NULL, NULL,
                                    my_update_key.allowed_cidrs, NULL, NULL, NULL, NULL);
    -- the key as it will be afterwards must be within the acting key's power
    PERFORM apikeys._check_grant(a, t.client_id, COALESCE(v_scopes, t.scopes),
        COALESCE(my_update_key.expires_at, t.expires_at), t.db_role,
        t.rate_limit, t.rate_window,
        CASE WHEN my_update_key.allowed_cidrs IS NULL THEN t.allowed_cidrs
             ELSE NULLIF(my_update_key.allowed_cidrs, '{}'::cidr[]) END);

    PERFORM apikeys._acting_begin(a.client_id);
    PERFORM apikeys.update_key(t.client_id, my_update_key.name, my_update_key.description,
                               v_scopes::text[], my_update_key.expires_at,
                               my_update_key.contact_email, my_update_key.contact_phone,
                               my_update_key.allowed_cidrs, my_update_key.metadata);
    PERFORM apikeys._acting_begin(NULL);
END
$$;

CREATE FUNCTION apikeys.my_rotate_key(client_id text, grace interval DEFAULT '0')
    RETURNS apikeys.new_key
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys._acting_row('apikeys:update');
    -- the acting key learns the new secret: _target_row checks the key is
    -- within its power
    t apikeys.keys := apikeys._target_row(a, my_rotate_key.client_id, 'rotate');
    r apikeys.new_key;
BEGIN
    PERFORM apikeys._acting_begin(a.client_id);
    r := apikeys.rotate_key(t.client_id, my_rotate_key.grace);
    PERFORM apikeys._acting_begin(NULL);
    RETURN r;
END
$$;

CREATE FUNCTION apikeys.my_disable_key(client_id text, reason text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys._acting_row('apikeys:update');
    t apikeys.keys := apikeys._target_row(a, my_disable_key.client_id, 'disable');
BEGIN
    PERFORM apikeys._acting_begin(a.client_id);
    PERFORM apikeys.disable_key(t.client_id, my_disable_key.reason);
    PERFORM apikeys._acting_begin(NULL);
END
$$;

CREATE FUNCTION apikeys.my_enable_key(client_id text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys._acting_row('apikeys:update');
    t apikeys.keys := apikeys._target_row(a, my_enable_key.client_id, 'enable');
BEGIN
    PERFORM apikeys._acting_begin(a.client_id);
    PERFORM apikeys.enable_key(t.client_id);
    PERFORM apikeys._acting_begin(NULL);
END
$$;

CREATE FUNCTION apikeys.my_revoke_key(client_id text, reason text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys._acting_row('apikeys:delete');
    t apikeys.keys := apikeys._target_row(a, my_revoke_key.client_id, 'revoke');
BEGIN
    PERFORM apikeys._acting_begin(a.client_id);
    PERFORM apikeys.revoke_key(t.client_id, my_revoke_key.reason);
    PERFORM apikeys._acting_begin(NULL);
END
$$;

CREATE FUNCTION apikeys.my_delete_key(client_id text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys._acting_row('apikeys:delete');
    t apikeys.keys := apikeys._target_row(a, my_delete_key.client_id, 'delete');
BEGIN
    PERFORM apikeys._acting_begin(a.client_id);
    PERFORM apikeys.delete_key(t.client_id);
    PERFORM apikeys._acting_begin(NULL);
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
                          'prev_expires_at', 'last_used_at', 'secret_set_at'];
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

-- Whether the database holds imported keys (src/legacy.c): every backend
-- reads it again when an imported key comes, goes or changes algorithm.
-- (No WHEN clause or column list: those would make hash_alg's type
-- unchangeable; the C function looks at hash_alg itself.)
CREATE TRIGGER keys_legacy_cache
    AFTER INSERT OR UPDATE OR DELETE ON apikeys.keys
    FOR EACH ROW EXECUTE FUNCTION apikeys._keys_legacy_cache_trigger();
ALTER TABLE apikeys.keys ENABLE ALWAYS TRIGGER keys_legacy_cache;

-- An owner-wide rate limit's change reaches every connection's cache of
-- owner limits (a relcache invalidation of owner_policies, sent at commit).
-- ENABLE ALWAYS: also under logical replication apply.
CREATE TRIGGER owner_policies_limit_cache
    AFTER INSERT OR DELETE OR UPDATE OF rate_limit, rate_window ON apikeys.owner_policies
    FOR EACH ROW EXECUTE FUNCTION apikeys._owner_limit_cache_trigger();
ALTER TABLE apikeys.owner_policies ENABLE ALWAYS TRIGGER owner_policies_limit_cache;

-- A scope set's change outdates every cached key of the database at
-- commit (src/cache.c).  ENABLE ALWAYS, like keys_cache.
CREATE TRIGGER scope_sets_cache
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikeys.scope_sets
    FOR EACH STATEMENT EXECUTE FUNCTION apikeys._scope_sets_cache_trigger();
ALTER TABLE apikeys.scope_sets ENABLE ALWAYS TRIGGER scope_sets_cache;

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
    -- only a key with a limit can warn: the others skip a PL/pgSQL call
    -- (half the time of a bulk import_keys)
    FOR EACH ROW WHEN (NEW.rate_limit IS NOT NULL)
    EXECUTE FUNCTION apikeys._rate_limit_warning_trigger();

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
            WHEN k.pending_since IS NOT NULL THEN 'pending'
            ELSE 'active' END AS status,
       k.created_at,
       k.created_by,
       k.expires_at,
       GREATEST(k.last_used_at, apikeys._recent_use(k.client_id),
                (SELECT u.last_used_at FROM apikeys.usage u
                  WHERE u.client_id OPERATOR(pg_catalog.=) k.client_id AND u.last_used_at IS NOT NULL
                  ORDER BY u.hour DESC LIMIT 1)) AS last_used_at,
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

-- The authenticated key's own owner's keys, for tenant self-service
-- (granted to apikeys_verifier): key_list's columns, only while the key
-- authenticated in this transaction is live and holds apikeys:read.
-- _my_keys reads key_list as the extension owner; the view over it is what
-- callers use.
CREATE FUNCTION apikeys._my_keys()
    RETURNS SETOF apikeys.key_list
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys._acting_row('apikeys:read', false);
BEGIN
    IF a.client_id IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT l.* FROM apikeys.key_list l
                  WHERE l.owner OPERATOR(pg_catalog.=) a.owner
                  ORDER BY l.created_at, l.client_id;
END
$$;

CREATE VIEW apikeys.my_keys AS
SELECT * FROM apikeys._my_keys();

-- apikeys.key_hygiene: the keys an administrator should look at, each with
-- its findings, so a periodic review (or an alert) is one SELECT:
--   full_access          holds the lone "*" scope (itself or through a scope set)
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
               GREATEST(k0.last_used_at, apikeys._recent_use(k0.client_id),
                (SELECT u.last_used_at FROM apikeys.usage u
                  WHERE u.client_id OPERATOR(pg_catalog.=) k0.client_id AND u.last_used_at IS NOT NULL
                  ORDER BY u.hour DESC LIMIT 1)) AS last_used_at
          FROM apikeys.keys k0) k,
       LATERAL (SELECT pg_catalog.array_remove(ARRAY[
                    CASE WHEN '*'::text OPERATOR(pg_catalog.=) ANY (apikeys._expand_scopes(k.scopes)::text[])
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

-- The noisiest callers (an IPv4 address, IPv6 /64 or ::1 with the client ID
-- its attempts named) and networks (IPv4 /24, IPv6 /48) in their current
-- failure window: one row per caller or network, never one per attempt.
CREATE VIEW apikeys.failing_addresses AS
SELECT f.address, f.client_id, f.failures, f.window_start, f.window_end, f.blocked,
       f.blocked_attempts
  FROM apikeys._failing_addresses() f
 ORDER BY f.failures DESC, f.address, f.client_id;

-- unblock_address lifts the failure throttle's records of an address (its
-- /32, /64 or ::1, whatever client IDs were named from it) or, given a
-- network, of everything inside it; audited when it removed anything.
CREATE FUNCTION apikeys.unblock_address(address inet)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    IF unblock_address.address IS NULL THEN
        RAISE EXCEPTION 'address cannot be NULL' USING ERRCODE = '22023';
    END IF;
    r := apikeys._unblock_address(unblock_address.address);
    IF r.records_cleared OPERATOR(pg_catalog.>) 0 THEN
        PERFORM apikeys._audit('address_unblocked', NULL, NULL,
            pg_catalog.jsonb_build_object('address', pg_catalog.host(unblock_address.address)
                                              OPERATOR(pg_catalog.||) '/'
                                              OPERATOR(pg_catalog.||) pg_catalog.masklen(unblock_address.address),
                                          'blocks_lifted', r.blocks_lifted,
                                          'records_cleared', r.records_cleared));
    END IF;
    RETURN r.blocks_lifted OPERATOR(pg_catalog.>) 0;
END
$$;

-- The gauges of apikeys.stats that tables and locked-down functions hold:
-- the cache's fill, blocked addresses (a count, never an address) and this
-- database's outbox backlog.  SECURITY DEFINER, so pg_monitor can read the
-- numbers without reading the addresses or the outbox.
CREATE FUNCTION apikeys._stats_gauges(OUT cache_entries bigint, OUT cache_capacity bigint,
                                      OUT cache_invalidations bigint,
                                      OUT addresses_blocked bigint,
                                      OUT outbox_backlog bigint, OUT outbox_failed bigint,
                                      OUT outbox_oldest timestamptz)
    RETURNS record
    LANGUAGE sql VOLATILE PARALLEL RESTRICTED
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
SELECT c.entries, c.capacity, c.invalidations,
       (SELECT pg_catalog.count(*) FROM apikeys._failing_addresses() f WHERE f.blocked),
       (SELECT pg_catalog.count(*) FROM apikeys.outbox o
         WHERE o.delivered_at IS NULL AND o.failed_at IS NULL),
       (SELECT pg_catalog.count(*) FROM apikeys.outbox o WHERE o.failed_at IS NOT NULL),
       (SELECT pg_catalog.min(o.created_at) FROM apikeys.outbox o
         WHERE o.delivered_at IS NULL AND o.failed_at IS NULL)
  FROM apikeys.cache_stats() c
$$;

-- The operator's view: one row, cheap enough to scrape every 15 seconds.
-- Counters (verifications_*, cache_hits/misses/evictions, usage_flushes,
-- policy_*) are server-wide totals since stats_since; the rest are gauges.
CREATE VIEW apikeys.stats AS
SELECT s.stats_since,
       (s.verifications_valid OPERATOR(pg_catalog.+) s.verifications_malformed
        OPERATOR(pg_catalog.+) s.verifications_not_found OPERATOR(pg_catalog.+) s.verifications_expired
        OPERATOR(pg_catalog.+) s.verifications_disabled OPERATOR(pg_catalog.+) s.verifications_revoked
        OPERATOR(pg_catalog.+) s.verifications_insufficient_scope
        OPERATOR(pg_catalog.+) s.verifications_ip_not_allowed
        OPERATOR(pg_catalog.+) s.verifications_rate_limited) AS verifications,
       s.verifications_valid, s.verifications_malformed, s.verifications_not_found,
       s.verifications_expired, s.verifications_disabled, s.verifications_revoked,
       s.verifications_insufficient_scope, s.verifications_ip_not_allowed,
       s.verifications_rate_limited,
       s.cache_hits, s.cache_misses, s.cache_evictions,
       g.cache_entries, g.cache_capacity, g.cache_invalidations,
       s.addresses_failing, g.addresses_blocked, s.addresses_dropped,
       s.usage_keys_pending, s.usage_keys_dropped, s.usage_flushes, s.usage_last_flush,
       pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) s.usage_last_flush)
           AS usage_flush_age_seconds,
       s.policy_runs, s.policy_actions, s.policy_last_run,
       g.outbox_backlog, g.outbox_failed,
       pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) g.outbox_oldest)
           AS outbox_oldest_age_seconds
  FROM apikeys._stats() s, apikeys._stats_gauges() g;

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
    -- the type by its qualified name, which carries no type modifier
    -- (format_type() would say "character", which means char(1))
    SELECT pg_catalog.format('%I.%I', n.nspname, t.typname) INTO v_type
      FROM pg_catalog.pg_attribute a
      JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace
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

    -- A key matches a row only when the row's owner, written back as text,
    -- is exactly the key's owner.  Two conditions:
    --  1. the key's owner cast to the column's type (text, uuid, bigint ...)
    --     equals the column, so an index on the owner column serves the
    --     policy (the type modifier is dropped: a cast to varchar(n) or
    --     char(n) would truncate);
    --  2. the column cast to text equals the key's owner bytewise (COLLATE
    --     "C"), which rejects what the cast and the type's equality blur:
    --     '07', '+7' or ' 7' for integer 7, '7' for numeric 7.0, an
    --     upper-case uuid, a 64-character owner truncated to a 63-character
    --     name, 'acme ' for char(n) 'acme', 'ACME' for 'acme' under a
    --     case-insensitive collation.
    -- char(n)::text drops the padding, so a char(n) owner 'acme' matches
    -- the key owner 'acme', and an owner ending in a blank never matches.
    -- An owner that is not a valid value of the type (a key of owner
    -- 'acme' on a bigint column) makes the cast, and so the query, fail.
    v_own := pg_catalog.format('(%1$I OPERATOR(pg_catalog.=) (apikeys.current_owner())::%2$s AND '
                               '(%1$I)::pg_catalog.text COLLATE pg_catalog."C" OPERATOR(pg_catalog.=) apikeys.current_owner())',
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
    -- as protect(): only the table's owner decides how keys see it
    IF NOT pg_catalog.pg_has_role(CURRENT_USER,
              (SELECT relowner FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) tbl), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', tbl USING ERRCODE = '42501',
            HINT = 'A field view is made by the owner of its table.';
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
-- pre_request, claim_key, the tenant self-service functions (my_*, which
-- act only for the key authenticated in the transaction) and SELECT on
-- my_keys.  apikeys_admin gets those (but claim_key), every key-management
-- function and SELECT on key_list and audit_log.  apikeys_delivery gets
-- SELECT on the outbox and the three outbox functions.  Internal functions
-- (_*) and the other tables belong to the extension owner alone, except the
-- few that views call (views run their functions as the caller:
-- _recent_use, _expand_scopes, _my_keys).
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
    apikeys.create_key(text, text, text[], timestamptz, text, text, text, cidr[], jsonb, name, integer, interval, boolean),
    apikeys.rotate_key(text, interval),
    apikeys.reset_key(text),
    apikeys.apply_policies(),
    apikeys.disable_key(text, text),
    apikeys.enable_key(text),
    apikeys.revoke_key(text, text, boolean),
    apikeys.revoke_all_keys(text, text),
    apikeys.delete_key(text),
    apikeys.update_key(text, text, text, text[], timestamptz, text, text, cidr[], jsonb, name, integer, interval),
    apikeys.set_owner_policy(text, integer, interval, interval, interval, interval, integer, interval),
    apikeys.purge_audit(interval),
    apikeys.import_key(text, text, text[], text, text, text, timestamptz, text, text, text, cidr[], jsonb, name),
    apikeys.import_keys(regclass)
TO apikeys_admin;

-- The integrator claims a handoff key through the application (PostgREST).
GRANT EXECUTE ON FUNCTION apikeys.claim_key(text, text, inet) TO apikeys_verifier;

-- The delivery role reads the outbox and drains it; nothing else.  The
-- outbox holds claim links and codes until delivered, so neither
-- apikeys_admin nor apikeys_verifier may read it.
GRANT SELECT ON apikeys.outbox TO apikeys_delivery;
GRANT EXECUTE ON FUNCTION
    apikeys.outbox_take(integer, interval),
    apikeys.outbox_done(bigint),
    apikeys.outbox_retry(bigint, text)
TO apikeys_delivery;

GRANT SELECT ON apikeys.key_list, apikeys.audit_log TO apikeys_admin;

GRANT EXECUTE ON FUNCTION
    apikeys.define_scope_set(text, text[], text),
    apikeys.drop_scope_set(text),
    apikeys._expand_scopes(apikeys.scope[])
TO apikeys_admin;

-- Tenant self-service: the my_* functions act only for the key
-- authenticated in the transaction, so the verifier (PostgREST) may call
-- them; _my_keys is the my_keys view's body.
GRANT EXECUTE ON FUNCTION
    apikeys.my_create_key(text, text[], timestamptz, text, text, text, cidr[], jsonb, boolean),
    apikeys.my_update_key(text, text, text, text[], timestamptz, text, text, cidr[], jsonb),
    apikeys.my_rotate_key(text, interval),
    apikeys.my_disable_key(text, text),
    apikeys.my_enable_key(text),
    apikeys.my_revoke_key(text, text),
    apikeys.my_delete_key(text),
    apikeys._my_keys()
TO apikeys_verifier, apikeys_admin;
GRANT SELECT ON apikeys.my_keys TO apikeys_verifier, apikeys_admin;

GRANT EXECUTE ON FUNCTION
    apikeys.flush_usage(boolean),
    apikeys._failing_addresses(),
    apikeys.unblock_address(inet),
    apikeys._journal_decode(bytea),
    apikeys._recent_use(text),
    apikeys._usage_health(),
    apikeys.cache_stats(),
    apikeys.usage_stats(),
    apikeys.cache_prewarm()
TO apikeys_admin;

GRANT SELECT ON apikeys.key_usage, apikeys.failing_addresses, apikeys.key_hygiene TO apikeys_admin;

-- apikeys.stats: numbers only, for admins and monitoring (pg_monitor).
GRANT EXECUTE ON FUNCTION apikeys._stats(), apikeys._stats_gauges() TO apikeys_admin, pg_monitor;
GRANT SELECT ON apikeys.stats TO apikeys_admin, pg_monitor;

--------------------------------------------------------------------------------
-- Comments
--------------------------------------------------------------------------------
COMMENT ON SCHEMA apikeys IS 'API keys: issuance, hashed verification, scopes and row-level security';

COMMENT ON TYPE apikeys.scope IS 'A permission: resource:action, resource:action(field, ...), resource:*, * or @set';
COMMENT ON TYPE apikeys.new_key IS 'A newly issued or rotated key; the only place its secret ever appears';
COMMENT ON TYPE apikeys.verification IS 'Outcome of verify/verify_client/authenticate: valid, code, the HTTP status to answer, the key''s identity, name and metadata once its secret matched, and its rate-limit window';

COMMENT ON TABLE apikeys.keys IS 'API keys: one row per key, holding only a hash of the secret (extension owner only)';
COMMENT ON TABLE apikeys.owner_policies IS 'Per-owner key cap and maximum lifetime (extension owner only)';
COMMENT ON TABLE apikeys.scope_sets IS 'Named scope sets: a key holding @name grants the set''s scopes at each verification (extension owner only)';
COMMENT ON FUNCTION apikeys.define_scope_set(text, text[], text) IS 'Creates or redefines a named scope set; keys holding @name see the change when it commits';
COMMENT ON FUNCTION apikeys.drop_scope_set(text) IS 'Drops a named scope set; 2BP01 while a live key holds it';
COMMENT ON FUNCTION apikeys.my_create_key(text, text[], timestamptz, text, text, text, cidr[], jsonb, boolean) IS 'Self-service: the authenticated key (apikeys:create) issues a key for its own owner, never with more than it holds';
COMMENT ON FUNCTION apikeys.my_update_key(text, text, text, text[], timestamptz, text, text, cidr[], jsonb) IS 'Self-service: the authenticated key (apikeys:update) changes a key of its own owner, never beyond what it holds';
COMMENT ON FUNCTION apikeys.my_rotate_key(text, interval) IS 'Self-service: the authenticated key (apikeys:update) rotates a key of its own owner that is within its own power';
COMMENT ON FUNCTION apikeys.my_disable_key(text, text) IS 'Self-service: the authenticated key (apikeys:update) disables a key of its own owner';
COMMENT ON FUNCTION apikeys.my_enable_key(text) IS 'Self-service: the authenticated key (apikeys:update) enables a key of its own owner';
COMMENT ON FUNCTION apikeys.my_revoke_key(text, text) IS 'Self-service: the authenticated key (apikeys:delete) revokes a key of its own owner';
COMMENT ON FUNCTION apikeys.my_delete_key(text) IS 'Self-service: the authenticated key (apikeys:delete) deletes a key of its own owner';
COMMENT ON FUNCTION apikeys._acting_begin(text) IS 'Internal: names the key a self-service change is made for (audit detail.by_key); NULL forgets it';
COMMENT ON FUNCTION apikeys._acting_key() IS 'Internal: the key named by _acting_begin in this transaction, or NULL';
COMMENT ON FUNCTION apikeys._acting_row(text, boolean) IS 'Internal: the authenticated key''s current row if it is live and holds the scope; 42501 (or NULL) otherwise';
COMMENT ON FUNCTION apikeys._target_row(apikeys.keys, text, text) IS 'Internal: a key of the acting key''s owner, locked and checked by _check_target; 42704 for any other';
COMMENT ON FUNCTION apikeys._check_target(apikeys.keys, apikeys.keys, text) IS 'Internal: 42501 unless the acting key may change that key (within its power; an admin''s disable is not lifted)';
COMMENT ON FUNCTION apikeys._grant_scopes(text[]) IS 'Internal: scopes a key gives through self-service, validated, with every @set expanded into plain scopes';
COMMENT ON FUNCTION apikeys._count_tenant_action(text) IS 'Internal: counts a self-service management action of the owner; 54000 above apikeys.max_tenant_actions a minute';
COMMENT ON FUNCTION apikeys._cidrs_outside(cidr[], cidr[]) IS 'Internal: the first network of inner outside outer, normalised as verification normalises addresses';
COMMENT ON FUNCTION apikeys._interval_us(interval) IS 'Internal: a rate window in microseconds, as verification measures it';
COMMENT ON FUNCTION apikeys._check_grant(apikeys.keys, text, apikeys.scope[], timestamptz, text, integer, interval, cidr[]) IS 'Internal: the no-escalation rule of the self-service functions; 42501 when a key would get more than the acting key holds';
COMMENT ON FUNCTION apikeys._scopes_cover(apikeys.scope[], apikeys.scope) IS 'Internal: may a key holding these scopes give that scope (a field-less scope needs a field-less grant)';
COMMENT ON FUNCTION apikeys._expand_scopes(apikeys.scope[]) IS 'Internal: scopes with each @set replaced by the set''s scopes, as verification expands them';
COMMENT ON FUNCTION apikeys._my_keys() IS 'Internal: the rows of my_keys, read as the extension owner';
COMMENT ON FUNCTION apikeys._owner_max_length() IS 'Internal: the longest owner name in characters (the constant the C code uses)';
COMMENT ON FUNCTION apikeys._check_owner(text) IS 'Internal: 22023 unless the owner name is non-empty and at most _owner_max_length() characters';
COMMENT ON FUNCTION apikeys._owner_limit_cache_trigger() IS 'Internal: makes every backend forget its cached owner-wide rate limits when one changes';
COMMENT ON FUNCTION apikeys._scope_sets_cache_trigger() IS 'Internal: outdates every cached key of the database when a scope set changes';
COMMENT ON VIEW apikeys.my_keys IS 'Self-service: key_list for the authenticated key''s owner; empty unless that key is live and holds apikeys:read';
COMMENT ON TABLE apikeys.audit_log IS 'Append-only audit trail of every key change; never holds a secret or hash';
COMMENT ON TABLE apikeys.protected_tables IS 'Tables set up by apikeys.protect(), so unprotect() can undo exactly that';
COMMENT ON VIEW apikeys.key_list IS 'API keys for administrators: metadata and status, never secrets or hashes';

COMMENT ON COLUMN apikeys.audit_log.actor IS 'session_user of the change';
COMMENT ON COLUMN apikeys.audit_log.db_user IS 'current_user as set by the caller (SET ROLE), outside SECURITY DEFINER';
COMMENT ON COLUMN apikeys.audit_log.detail IS 'What changed (old -> new), reasons and counts; never secrets';
COMMENT ON COLUMN apikeys.key_list.status IS 'active, disabled, revoked, expired, or pending (a handoff key not yet claimed)';
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
COMMENT ON FUNCTION apikeys.create_key(text, text, text[], timestamptz, text, text, text, cidr[], jsonb, name, integer, interval, boolean) IS 'Issues a key; returns its secret and token, shown this once, or with handoff sends a claim link and code to its contacts and returns no secret';
COMMENT ON FUNCTION apikeys.rotate_key(text, interval) IS 'Replaces a key''s secret; the old one works until now() + grace (never past expiry)';
COMMENT ON FUNCTION apikeys.disable_key(text, text) IS 'Disables a key until enable_key (reversible)';
COMMENT ON FUNCTION apikeys.enable_key(text) IS 'Re-enables a disabled key';
COMMENT ON FUNCTION apikeys.revoke_key(text, text, boolean) IS 'Revokes a key forever; with_descendants: also every key it created through self-service, and theirs';
COMMENT ON FUNCTION apikeys._revoke_key(text, jsonb, boolean, boolean) IS 'Internal: the one revocation every path calls; also revokes children created while it waited (or all descendants)';
COMMENT ON FUNCTION apikeys.revoke_all_keys(text, text) IS 'Revokes every key of an owner forever; returns how many';
COMMENT ON FUNCTION apikeys.delete_key(text) IS 'Deletes a key; its audit trail stays';
COMMENT ON FUNCTION apikeys.update_key(text, text, text, text[], timestamptz, text, text, cidr[], jsonb, name, integer, interval) IS 'Changes a key''s settings; NULL leaves a setting, '''' (or {} / 0) clears it; expiry can only be shortened';
COMMENT ON FUNCTION apikeys.set_owner_policy(text, integer, interval, interval, interval, interval, integer, interval) IS 'Sets an owner''s key cap, maximum key lifetime, lifecycle policies and owner-wide rate limit; NULL leaves a setting, 0 turns a lifecycle policy or the rate limit off';
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
COMMENT ON VIEW apikeys.failing_addresses IS 'Callers (IPv4 address, IPv6 /64 or ::1, with the client ID they named) and networks (IPv4 /24, IPv6 /48) with failed attempts in their current window, noisiest first';
COMMENT ON COLUMN apikeys.failing_addresses.client_id IS 'The client ID the failing attempts named, as presented (it may not exist); NULL for a network, or for attempts that named none';
COMMENT ON COLUMN apikeys.failing_addresses.blocked IS 'Reached apikeys.max_failures (a caller) or apikeys.max_network_failures (a network): its failing attempts answer RATE_LIMITED until window_end; a correct secret is never refused';
COMMENT ON FUNCTION apikeys.unblock_address(inet) IS 'Lifts the failure throttle''s records of an address (every client ID named from it) or of every caller and network inside a network; true if a block was lifted; audited';
COMMENT ON FUNCTION apikeys._unblock_address(inet) IS 'Internal: removes failure throttle records, for unblock_address';
COMMENT ON FUNCTION apikeys.cache_stats() IS 'Size and use of the shared verification cache and of its arena for keys too large for an entry (NULLs when not preloaded)';
COMMENT ON FUNCTION apikeys.usage_stats() IS 'Size and use of the shared usage, failure and rate-limit tables (NULLs when not preloaded)';
COMMENT ON VIEW apikeys.stats IS 'One row of server-wide counters (since stats_since) and gauges for monitoring: verifications by code, shared cache, address throttle, usage flush, policy runs, outbox backlog of this database (counters NULL when not preloaded)';
COMMENT ON COLUMN apikeys.stats.usage_flush_age_seconds IS 'Seconds since the background worker last committed a usage flush or rollup (NULL: none since stats_since)';
COMMENT ON COLUMN apikeys.stats.outbox_backlog IS 'Undelivered, not failed outbox rows of this database';
COMMENT ON FUNCTION apikeys._stats() IS 'Internal: the shared-memory counters behind apikeys.stats';
COMMENT ON FUNCTION apikeys._stats_gauges() IS 'Internal: the gauges behind apikeys.stats (counts only)';
COMMENT ON FUNCTION apikeys._failing_addresses() IS 'Internal: the address failure table behind apikeys.failing_addresses';
COMMENT ON FUNCTION apikeys.import_key(text, text, text[], text, text, text, timestamptz, text, text, text, cidr[], jsonb, name) IS 'Imports a key issued by another system from the SHA-256 of its token (hex or base64) or the token itself (stored hashed); the legacy token then verifies as it is; returns the client ID assigned';
COMMENT ON FUNCTION apikeys.import_keys(regclass) IS 'Imports every row of a table whose columns are named like import_key''s arguments, in one transaction and one audit row; returns the number of keys';
COMMENT ON FUNCTION apikeys._import_one(text, text, text[], text, text, text, timestamptz, text, text, text, cidr[], jsonb, text) IS 'Internal: validates and inserts one imported key (create_key''s checks and cap), without an audit row';
COMMENT ON FUNCTION apikeys._import_check(text, text, text[], text, text, text, text, text, text, cidr[], jsonb, text) IS 'Internal: validates an imported key''s arguments (create_key''s checks); returns the legacy hash and the scopes';
COMMENT ON FUNCTION apikeys._import_reserve(text, integer) IS 'Internal: takes the owner''s policy row lock and checks its cap for keys being imported; returns its maximum lifetime';
COMMENT ON FUNCTION apikeys._legacy_token_max_length() IS 'Internal: the longest legacy token import_key accepts and verification looks up';
COMMENT ON FUNCTION apikeys._check_key_cap(text, integer, integer) IS 'Internal: 54000 when the owner''s live keys and the ones being added would exceed its maximum';
COMMENT ON FUNCTION apikeys._keys_legacy_cache_trigger() IS 'Internal: makes every backend read again whether the database holds imported keys';
COMMENT ON FUNCTION apikeys._keys_cache_trigger() IS 'Internal: invalidates the shared verification cache entry of a changed or deleted key';
COMMENT ON FUNCTION apikeys._cache_invalidate_all() IS 'Internal: outdates every entry of the shared verification cache when the transaction ends';
COMMENT ON FUNCTION apikeys._in_apply_worker() IS 'Internal: is this session a logical replication apply worker?';
COMMENT ON FUNCTION apikeys._ddl_guard() IS 'Internal: after ALTER TABLE of keys or audit_log, re-enables their ALWAYS triggers and outdates the shared cache';
COMMENT ON EVENT TRIGGER apikeys_ddl_guard IS 'Keeps the ALWAYS triggers of apikeys.keys and apikeys.audit_log ALWAYS, and the shared cache fresh, after ALTER TABLE';
COMMENT ON FUNCTION apikeys._preloaded() IS 'Internal: is apikeys in shared_preload_libraries?';
COMMENT ON FUNCTION apikeys._rate_limit_warning_trigger() IS 'Internal: warns that rate limits are not enforced without shared_preload_libraries';
COMMENT ON VIEW apikeys.key_hygiene IS 'Live keys that need attention, with findings: full_access, expires_soon, never_used, unused_90_days, no_contact, old_secret_in_grace';
COMMENT ON COLUMN apikeys.key_hygiene.findings IS 'Why the key is listed; see the view''s comment';
COMMENT ON FUNCTION apikeys.cache_prewarm() IS 'Fills the shared verification cache with this database''s live keys, most recently used first, up to its capacity; returns keys loaded (0 when not preloaded); on a hot standby the entries are validated against the heap';
COMMENT ON COLUMN apikeys.usage.last_used_at IS 'On the VALID row: the key''s last valid use in that hour (what key_list.last_used_at shows once rolled up)';
COMMENT ON TABLE apikeys.usage_journal IS 'Usage flushed from shared memory and not yet rolled up into apikeys.usage: one packed row per flush (extension owner only)';
COMMENT ON COLUMN apikeys.usage_journal.keys IS 'Keys whose numbers the row holds';
COMMENT ON FUNCTION apikeys._journal_decode(bytea) IS 'Internal: the keys, codes, counts and last-use times of a usage journal row';
COMMENT ON FUNCTION apikeys._usage_unproven(interval) IS 'Internal: why a key without a recorded use in that interval may still have been used (NULL when its non-use is proven)';
COMMENT ON FUNCTION apikeys._usage_health() IS 'What the proof of non-use depends on: the time up to which uses may have been lost, worker visits that could not start, whether the journal''s last uses are all known';
COMMENT ON FUNCTION apikeys._usage_accept_losses() IS 'Internal, extension owner only: forget the possible losses of uses noted so far (revoke_unused_after may then act on them)';
COMMENT ON FUNCTION apikeys._unused_proven(apikeys.keys, interval) IS 'Internal: is the key''s non-use for that long proven (the rule of revoke_unused_after), its last recorded use, and why not';
COMMENT ON FUNCTION apikeys._recent_use(text) IS 'Internal: a key''s last use flushed to the usage journal and not yet rolled up (NULL when none)';
COMMENT ON FUNCTION apikeys.flush_usage(boolean) IS 'Writes this database''s usage now: with rollup (the default) into apikeys.usage (counts and last-use times), returning usage rows written; without, as one journal row like the background worker, returning keys written';
COMMENT ON VIEW apikeys.key_usage IS 'Verification counts per key, per hour, per outcome code (rolled-up hours and the usage journal; flushed every apikeys.flush_interval when preloaded)';
COMMENT ON TABLE apikeys.claims IS 'Handoff claims: hashes of each claim token and code, expiry, failures (extension owner only)';
COMMENT ON TABLE apikeys.outbox IS 'Durable events and deliveries, written with the change they report; drained by apikeys_delivery (holds claim links and codes until delivered)';
COMMENT ON COLUMN apikeys.outbox.channel IS 'email or sms: a delivery to recipient; NULL: an event for applications';
COMMENT ON COLUMN apikeys.outbox.attempts IS 'How many times outbox_take has handed the row out';
COMMENT ON COLUMN apikeys.outbox.leased_until IS 'Until then the row belongs to the taker named in leased_by';
COMMENT ON COLUMN apikeys.outbox.failed_at IS 'Delivery given up (apikeys.outbox_max_attempts, or the claim expired)';
COMMENT ON COLUMN apikeys.outbox.claim_id IS 'The handoff claim whose one-time secrets the payload holds';
COMMENT ON TABLE apikeys.policy_notices IS 'Lifecycle notices already sent, one per key, event and subject (extension owner only)';
COMMENT ON FUNCTION apikeys.claim_key(text, text, inet) IS 'Trades a handoff''s claim token and code for the key''s secret, once; every failure is the same 28000 error; at most five codes are ever compared per claim; client_ip: the caller''s address when a trusted backend claims on its behalf';
COMMENT ON FUNCTION apikeys.reset_key(text) IS 'Stops the key''s secret at once and sends a new handoff (claim link and code)';
COMMENT ON FUNCTION apikeys.outbox_take(integer, interval) IS 'Leases up to max_rows due, undelivered outbox rows, oldest first; concurrent takers never get the same row while its lease runs';
COMMENT ON FUNCTION apikeys.outbox_done(bigint) IS 'Marks an outbox row delivered and erases its one-time secrets (idempotent)';
COMMENT ON FUNCTION apikeys.outbox_retry(bigint, text) IS 'Returns an outbox row to the queue after an exponential backoff; gives up after apikeys.outbox_max_attempts';
COMMENT ON FUNCTION apikeys.apply_policies() IS 'Applies the lifecycle policies (revoke unused keys, expires_soon, rotation_due) and outbox retention; returns the number of actions';
COMMENT ON FUNCTION apikeys._claim_secrets() IS 'Internal: a new claim token and 6-digit code from pg_strong_random()';
COMMENT ON FUNCTION apikeys._hash_equal(bytea, bytea) IS 'Internal: constant-time equality of two hashes';
COMMENT ON FUNCTION apikeys._claim_begin(inet) IS 'Internal: refuses a claim on a standby; the caller''s address (client_ip, else as pre_request chooses it)';
COMMENT ON FUNCTION apikeys._claim_attempt(bigint, integer, timestamptz, bytea, bytea) IS 'Internal: counts one code comparison of a claim before making it (at most five, ever), then compares';
COMMENT ON FUNCTION apikeys._claim_failed(inet) IS 'Internal: counts a failed claim against the caller''s address in the throttle';
COMMENT ON FUNCTION apikeys._claim_attempts() IS 'Internal: this database''s claim attempts counted in shared memory (none without preloading)';
COMMENT ON FUNCTION apikeys._claim_record(bigint, bytea, integer, boolean) IS 'Internal: writes a claim''s attempt count (and its lock) to its row; run by the claim sync worker';
COMMENT ON FUNCTION apikeys._claim_locked(apikeys.claims) IS 'Internal: erases a locked claim''s secrets from the outbox and audits the lock';
COMMENT ON FUNCTION apikeys._claim_count_attempt(bigint, bytea) IS 'Internal: without preloading, counts one comparison in the claim''s row and makes it (run by the claim count worker)';
COMMENT ON FUNCTION apikeys._claim_refuse() IS 'Internal: raises the one error of every failed claim';
COMMENT ON FUNCTION apikeys._setting_interval(text, interval) IS 'Internal: an apikeys.* duration setting as an interval';
COMMENT ON FUNCTION apikeys._setting(text) IS 'Internal: an apikeys.* setting as the library registered it (loads the library first, so no placeholder is read)';
COMMENT ON FUNCTION apikeys._setting_integer(text, integer) IS 'Internal: an apikeys.* integer setting, read through _setting';
COMMENT ON FUNCTION apikeys._deliver(text, text, text, text, text, jsonb, bigint) IS 'Internal: appends an outbox delivery and sends a wake-up NOTIFY';
COMMENT ON FUNCTION apikeys._audit_outbox_trigger() IS 'Internal: copies each audit row of this transaction into the outbox';
COMMENT ON FUNCTION apikeys._keys_secret_set_at_trigger() IS 'Internal: records when a key''s secret was set';
COMMENT ON FUNCTION apikeys._outbox_erase(bigint[]) IS 'Internal: erases claim tokens and codes from the outbox rows of claims';
COMMENT ON FUNCTION apikeys._handoff_start(apikeys.keys) IS 'Internal: opens a claim for a pending key and enqueues its link and code';
COMMENT ON FUNCTION apikeys._outbox_housekeeping() IS 'Internal: erases secrets of expired claims and gives up rows out of attempts';
COMMENT ON FUNCTION apikeys._policy_notice(apikeys.keys, text, timestamptz, jsonb) IS 'Internal: sends a lifecycle notice once per key, event and subject';
