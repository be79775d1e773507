-- sql/install/02_keys.sql: the key table, the audit trail, issuing and managing keys
--
-- A section of the install script: make concatenates sql/install/*.sql
-- in name order into apikeys--<version>.sql.  Each object is followed by
-- its comment, privileges and settings.

-- What create_key and rotate_key return: the only time the secret is seen.
CREATE TYPE apikeys.new_key AS (
    client_id       text,
    client_secret   text,
    token           text,
    expires_at      timestamptz
);
COMMENT ON TYPE apikeys.new_key IS 'A newly issued or rotated key; the only place its secret ever appears';

-- Tables and indexes
--
-- Nobody but the extension owner can read these tables.  Admins work
-- through the functions and views below; verification reads apikeys.keys
-- through its primary-key index from C (src/verify_lookup.c).  No column stores an
-- OID, so dump/restore and pg_upgrade carry everything over.

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
    -- self-service: the key that issued the current secret (my_rotate_key;
    -- NULL: an admin, create_key or a claim) and the previous one, so that
    -- revoke_key(with_descendants) also ends a secret a leaked manager
    -- handed out by rotating a key it did not create
    secret_by_key       text,
    prev_secret_by_key  text,
    -- handoff: when the key was last claimed; it could not be used before,
    -- so revoke_unused_after counts from here (apikeys_internal._unused_proven)
    claimed_at          timestamptz,
    -- the prefix the key was issued with: the head of its client ID, so it
    -- cannot disagree with the tokens (create_key's prefix argument)
    prefix              text COLLATE "C"
                        GENERATED ALWAYS AS (pg_catalog."left"(client_id, -17)) STORED,
    -- credits (NULL: unlimited): the balance if nothing was spent since an
    -- admin set it (create_key, update_key, plus add_credits), its refill
    -- rule and the start of its refill period then; credits_seq counts the
    -- times an admin set the balance outright, credits_added the credits
    -- add_credits ever gave, so that the live balance (shared memory,
    -- apikeys.credit_balances: src/verify_credits.c) tells a new balance from a
    -- top-up it must add to what is left
    credits             bigint CHECK (credits OPERATOR(pg_catalog.>=) 0),
    refill_amount       bigint CHECK (refill_amount OPERATOR(pg_catalog.>) 0),
    refill_every        interval,
    credits_refilled_at timestamptz,
    credits_seq         bigint NOT NULL DEFAULT 0,
    credits_added       bigint NOT NULL DEFAULT 0,
    CONSTRAINT keys_hash_alg_check CHECK (hash_alg OPERATOR(pg_catalog.=) ANY (ARRAY['s'::"char", 'h'::"char", 'l'::"char"])),
    CONSTRAINT keys_secret_hash_check CHECK (pg_catalog.octet_length(secret_hash) OPERATOR(pg_catalog.=) 32)
);
COMMENT ON TABLE apikeys.keys IS 'API keys: one row per key, holding only a hash of the secret (extension owner only)';
COMMENT ON COLUMN apikeys.keys.prefix IS 'The token prefix the key was issued with (its client ID without the last 17 characters); kept for life';
CREATE INDEX keys_owner_idx ON apikeys.keys (owner);
-- an owner's live keys, for create_key's cap count
CREATE INDEX keys_owner_live_idx ON apikeys.keys (owner, expires_at)
    WHERE revoked_at IS NULL;
CREATE INDEX keys_created_by_key_idx ON apikeys.keys (created_by_key)
    WHERE created_by_key IS NOT NULL;
-- imported keys (hash_alg 'l': SHA-256 of the whole legacy token), found
-- by that hash when a token is not in apikeys' format (src/verify_legacy.c)
CREATE UNIQUE INDEX keys_legacy_hash_idx ON apikeys.keys (secret_hash)
    WHERE hash_alg OPERATOR(pg_catalog.=) 'l'::"char";
-- an imported key rotated with a grace period: its legacy token works
-- until prev_expires_at, found by the previous hash (src/verify_legacy.c)
CREATE INDEX keys_legacy_prev_hash_idx ON apikeys.keys (prev_secret_hash)
    WHERE prev_hash_alg OPERATOR(pg_catalog.=) 'l'::"char";
-- Room on each page, so the rollup's last_used_at updates are HOT (that
-- column is in no index): no index writes, far less WAL and bloat.
ALTER TABLE apikeys.keys SET (fillfactor = 90);
SELECT pg_catalog.pg_extension_config_dump('apikeys.keys', '');
-- Row-level security on our own tables: no policies, so only the owner
-- (and superusers) see rows even if a privilege is granted by mistake.
ALTER TABLE apikeys.keys ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE apikeys.keys FROM PUBLIC;

-- Balances spent in shared memory, as the credit flush last wrote them
-- (src/verify_credits.c), apart from apikeys.keys so that a flush neither fires
-- the keys' triggers nor outdates the shared verification cache.  A key's
-- live balance is this row's balance plus the top-ups (keys.credits_added)
-- it has not counted, while credits_seq is still the key's; otherwise the
-- key's own credits (an admin set a new balance since).  Without
-- shared_preload_libraries each spend writes it.  (No foreign key: it would
-- turn keys_no_truncate's refusal into another error; delete_key removes a
-- key's row, and _credits_write writes none for a key that is gone.)
CREATE TABLE apikeys.credit_balances (
    client_id           text COLLATE "C" PRIMARY KEY,
    credits_seq         bigint NOT NULL,
    added_seen          bigint NOT NULL,
    balance             bigint NOT NULL,
    refilled_at         timestamptz,
    written_at          timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE apikeys.credit_balances IS 'The balances of keys with credits as last written from shared memory (extension owner only)';
SELECT pg_catalog.pg_extension_config_dump('apikeys.credit_balances', '');
ALTER TABLE apikeys.credit_balances ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE apikeys.credit_balances FROM PUBLIC;

-- The lineage of deleted keys: a key deleted while keys it created (or a
-- deleted key's) remain keeps its place in the tree here, so that
-- revoke_key(with_descendants) walks through it (delete_key writes it and
-- drops links that no longer lead to any key).
CREATE TABLE apikeys.deleted_keys (
    client_id           text COLLATE "C" PRIMARY KEY,
    owner               text NOT NULL,
    created_by_key      text,
    deleted_at          timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE apikeys.deleted_keys IS 'The creation links of deleted keys that still lead to keys, so that revoke_key with_descendants walks through them';
CREATE INDEX deleted_keys_created_by_key_idx ON apikeys.deleted_keys (created_by_key)
    WHERE created_by_key IS NOT NULL;
SELECT pg_catalog.pg_extension_config_dump('apikeys.deleted_keys', '');
REVOKE ALL ON TABLE apikeys.deleted_keys FROM PUBLIC;

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
    -- the cap count's bound (_check_key_cap): at most cap_live live keys
    -- once keys_issued was cap_issued; every key added since is in
    -- keys_issued (create_key and the imports count there before the cap
    -- check), so cap_live + keys_issued - cap_issued bounds the live keys
    -- without reading them.  NULL: not counted yet.
    cap_live            bigint,
    cap_issued          bigint,
    CONSTRAINT owner_policies_max_keys_check CHECK (max_keys OPERATOR(pg_catalog.>) 0),
    CONSTRAINT owner_policies_max_lifetime_check CHECK (max_lifetime OPERATOR(pg_catalog.>) '0'::interval)
);
COMMENT ON TABLE apikeys.owner_policies IS 'Per-owner key cap and maximum lifetime (extension owner only)';
-- the owners with a rate limit (usually none): verification reads it once
-- after each change of this table to learn whether any owner has one
-- (src/verify_ownerlimit.c); without it every verification looks its owner up
CREATE INDEX owner_policies_rate_limited_idx ON apikeys.owner_policies (owner)
    WHERE rate_limit IS NOT NULL;
SELECT pg_catalog.pg_extension_config_dump('apikeys.owner_policies', '');
ALTER TABLE apikeys.owner_policies ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE apikeys.owner_policies FROM PUBLIC;

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
COMMENT ON TABLE apikeys.audit_log IS 'Append-only audit trail of every key change; never holds a secret or hash';
COMMENT ON COLUMN apikeys.audit_log.actor IS 'session_user of the change';
COMMENT ON COLUMN apikeys.audit_log.db_user IS 'current_user as set by the caller (SET ROLE), outside SECURITY DEFINER';
COMMENT ON COLUMN apikeys.audit_log.detail IS 'What changed (old -> new), reasons and counts; never secrets';
CREATE INDEX audit_log_client_id_idx ON apikeys.audit_log (client_id);
CREATE INDEX audit_log_at_idx ON apikeys.audit_log (at);
SELECT pg_catalog.pg_extension_config_dump('apikeys.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.audit_log_id_seq', '');
COMMENT ON SEQUENCE apikeys.audit_log_id_seq IS 'Identity of audit_log.id';
REVOKE ALL ON TABLE apikeys.audit_log FROM PUBLIC;
GRANT SELECT ON apikeys.audit_log TO apikeys_admin;

-- Internal: new client ID (under the given prefix, NULL: token_prefix) or
-- the given one, + secret + token + hash.
CREATE FUNCTION apikeys_internal._mint(client_id text, prefix text DEFAULT NULL,
                              OUT client_id text, OUT client_secret text, OUT token text,
                              OUT secret_hash bytea, OUT hash_alg "char")
    RETURNS record
    AS 'MODULE_PATHNAME', 'apikeys_mint'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._mint IS 'Internal: draws a client ID and secret, builds the token, hashes the secret';
REVOKE ALL ON FUNCTION apikeys_internal._mint FROM PUBLIC;

-- Internal: the prefix a new key carries: NULL is apikeys.token_prefix,
-- anything else must be it or one of apikeys.allowed_prefixes (22023 with
-- the allowed ones in the hint).  The same C check _mint makes.
CREATE FUNCTION apikeys_internal._check_prefix(prefix text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_check_prefix'
    LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys_internal._check_prefix IS 'Internal: the prefix a new key gets (NULL: apikeys.token_prefix); 22023 unless it is token_prefix or in apikeys.allowed_prefixes';
REVOKE ALL ON FUNCTION apikeys_internal._check_prefix FROM PUBLIC;

-- Internal: the event label the audit trigger reads (src/admin_audit.c).
CREATE FUNCTION apikeys_internal._op_begin(event text, detail jsonb) RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_op_begin'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._op_begin IS 'Internal: labels the audit rows of the change that follows';
REVOKE ALL ON FUNCTION apikeys_internal._op_begin FROM PUBLIC;

CREATE FUNCTION apikeys_internal._op_end() RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_op_end'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._op_end IS 'Internal: clears the audit label';
REVOKE ALL ON FUNCTION apikeys_internal._op_end FROM PUBLIC;

CREATE FUNCTION apikeys_internal._op_event() RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_op_event'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._op_event IS 'Internal: the current audit label';
REVOKE ALL ON FUNCTION apikeys_internal._op_event FROM PUBLIC;

CREATE FUNCTION apikeys_internal._op_detail() RETURNS jsonb
    AS 'MODULE_PATHNAME', 'apikeys_op_detail'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._op_detail IS 'Internal: the current audit detail';
REVOKE ALL ON FUNCTION apikeys_internal._op_detail FROM PUBLIC;

CREATE FUNCTION apikeys_internal._outer_user() RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_outer_user'
    LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION apikeys_internal._outer_user IS 'Internal: current_user as the caller set it, outside SECURITY DEFINER';
REVOKE ALL ON FUNCTION apikeys_internal._outer_user FROM PUBLIC;

-- Internal: the first network of inner outside every network of outer,
-- both normalised as verification normalises them (src/admin_grant.c); NULL
-- when all are inside.
CREATE FUNCTION apikeys_internal._cidrs_outside(inner cidr[], outer cidr[]) RETURNS cidr
    AS 'MODULE_PATHNAME', 'apikeys_cidrs_outside'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys_internal._cidrs_outside IS 'Internal: the first network of inner outside outer, normalised as verification normalises addresses';
REVOKE ALL ON FUNCTION apikeys_internal._cidrs_outside FROM PUBLIC;

-- Internal: an interval's length in microseconds as verification measures
-- a rate window (a month is 30 days; src/admin_grant.c).
CREATE FUNCTION apikeys_internal._interval_us(w interval) RETURNS bigint
    AS 'MODULE_PATHNAME', 'apikeys_interval_us'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys_internal._interval_us IS 'Internal: a rate window in microseconds, as verification measures it';
REVOKE ALL ON FUNCTION apikeys_internal._interval_us FROM PUBLIC;

-- Usage, the shared cache and the background worker (src/usage.c,
-- src/usage_counters.c, src/verify_cache.c, src/usage_journal.c, src/worker.c, src/usage_lastused.c).  With apikeys in
-- shared_preload_libraries, verification counts usage, failures per client
-- address and rate-limit windows in shared memory and writes nothing; the
-- worker writes each apikeys.flush_interval's usage as one row of
-- apikeys.usage_journal, and a rollup about once an hour folds the journal
-- into apikeys.usage (counts and last-use times).  Without preloading,
-- last_used_at is written at most once per key per
-- apikeys.last_used_granularity and nothing else is kept.

-- Tells every backend to forget its cached owner-wide rate limits when an
-- owner's limit changes (src/verify_ownerlimit.c).
CREATE FUNCTION apikeys_internal._owner_limit_cache_trigger()
    RETURNS trigger
    AS 'MODULE_PATHNAME', 'apikeys_owner_limit_cache_trigger'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._owner_limit_cache_trigger IS 'Internal: makes every backend forget its cached owner-wide rate limits when one changes';
REVOKE ALL ON FUNCTION apikeys_internal._owner_limit_cache_trigger FROM PUBLIC;

CREATE FUNCTION apikeys_internal._keys_cache_trigger()
    RETURNS trigger
    AS 'MODULE_PATHNAME', 'apikeys_keys_cache_trigger'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._keys_cache_trigger IS 'Internal: invalidates the shared verification cache entry of a changed or deleted key';
REVOKE ALL ON FUNCTION apikeys_internal._keys_cache_trigger FROM PUBLIC;

-- Makes every backend read again whether the database holds imported keys.
CREATE FUNCTION apikeys_internal._keys_legacy_cache_trigger()
    RETURNS trigger
    AS 'MODULE_PATHNAME', 'apikeys_keys_legacy_cache_trigger'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._keys_legacy_cache_trigger IS 'Internal: makes every backend read again whether the database holds imported keys';
REVOKE ALL ON FUNCTION apikeys_internal._keys_legacy_cache_trigger FROM PUBLIC;

CREATE FUNCTION apikeys_internal._cache_invalidate_all()
    RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_cache_invalidate_all'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._cache_invalidate_all IS 'Internal: outdates every entry of the shared verification cache when the transaction ends';
REVOKE ALL ON FUNCTION apikeys_internal._cache_invalidate_all FROM PUBLIC;

-- Is this session a logical replication apply worker?  Not settable from
-- SQL: it is the process's kind, fixed when the server started it.
CREATE FUNCTION apikeys_internal._in_apply_worker()
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_in_apply_worker'
    LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikeys_internal._in_apply_worker IS 'Internal: is this session a logical replication apply worker?';
REVOKE ALL ON FUNCTION apikeys_internal._in_apply_worker FROM PUBLIC;

CREATE FUNCTION apikeys_internal._preloaded()
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_preloaded_fn'
    LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION apikeys_internal._preloaded IS 'Internal: is apikeys in shared_preload_libraries?';
REVOKE ALL ON FUNCTION apikeys_internal._preloaded FROM PUBLIC;

-- _audit appends one audit row and wakes listeners (NOTIFY apikeys_events
-- with the event and the client ID only).
-- It is the only writer of audit_log, so every row has the same shape.
CREATE FUNCTION apikeys_internal._audit(p_event text, p_client_id text, p_owner text, p_detail jsonb)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO apikeys.audit_log (event, client_id, owner, detail, db_user, application_name)
    VALUES (p_event, p_client_id, p_owner,
            COALESCE(p_detail, '{}'::jsonb) ||
                CASE WHEN apikeys_internal._acting_key() IS NULL THEN '{}'::jsonb
                     ELSE pg_catalog.jsonb_build_object('by_key', apikeys_internal._acting_key()) END,
            apikeys_internal._outer_user(),
            pg_catalog.current_setting('application_name', true));
    -- Any role may LISTEN on any channel, so the payload holds only what
    -- is public: the event and the client ID.  Owners, names, reasons and
    -- the rest are in audit_log, which only apikeys_admin reads.
    PERFORM pg_catalog.pg_notify('apikeys_events',
        pg_catalog.jsonb_build_object('event', p_event, 'client_id', p_client_id)::text);
END
$$;
COMMENT ON FUNCTION apikeys_internal._audit IS 'Internal: appends an audit row and sends NOTIFY apikeys_events';
REVOKE ALL ON FUNCTION apikeys_internal._audit FROM PUBLIC;

-- _no_such_key raises the error for a client ID no key has, quoting the
-- value only when it is shaped like a client ID (prefix, '_', 16 base62
-- characters): a whole token (native, derived or mistyped: 22023) or anything else
-- (a legacy token, a hex key) given where a client ID belongs never
-- reaches an error message or the server log.
CREATE FUNCTION apikeys_internal._no_such_key(p_client_id text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF apikeys_internal._token_kind(p_client_id) = ANY (ARRAY['native', 'derived', 'mistyped']) THEN
        RAISE EXCEPTION 'a token was given where a client ID is expected'
            USING ERRCODE = '22023',
                  HINT = 'Pass the client ID (the token up to the secret), never the token itself.';
    END IF;
    IF p_client_id ~ '^[a-z][a-z0-9_]{0,19}_[A-Za-z0-9]{16}$' THEN
        RAISE EXCEPTION 'API key "%" does not exist', p_client_id
            USING ERRCODE = '42704';
    END IF;
    RAISE EXCEPTION 'API key does not exist'
        USING ERRCODE = '42704',
              DETAIL = 'The value given is not shaped like a client ID (a prefix, "_" and 16 letters or digits), so it is not shown: it could be a credential.';
END
$$;
COMMENT ON FUNCTION apikeys_internal._no_such_key IS 'Internal: 42704 for a missing key, quoting the client ID only when it is shaped like one (22023 for a whole token)';
REVOKE ALL ON FUNCTION apikeys_internal._no_such_key FROM PUBLIC;

-- _key_row finds a key for a change and locks it; 42704 when missing,
-- 55000 when revoked (unless p_allow_revoked).
CREATE FUNCTION apikeys_internal._key_row(p_client_id text, p_allow_revoked boolean DEFAULT false)
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
     WHERE client_id = p_client_id
     FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM apikeys_internal._no_such_key(p_client_id);
    END IF;
    IF k.revoked_at IS NOT NULL AND NOT p_allow_revoked THEN
        RAISE EXCEPTION 'API key "%" has been revoked', p_client_id
            USING ERRCODE = '55000',
                  HINT = 'A revoked key cannot be changed; issue a new key with apikeys.create_key().';
    END IF;
    RETURN k;
END
$$;
COMMENT ON FUNCTION apikeys_internal._key_row IS 'Internal: finds and locks a key for a change';
REVOKE ALL ON FUNCTION apikeys_internal._key_row FROM PUBLIC;

-- _owner_limits returns the effective (max_keys, max_lifetime) of an owner.
CREATE FUNCTION apikeys_internal._owner_limits(p_owner text, OUT max_keys integer, OUT max_lifetime interval)
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
    PERFORM apikeys_internal._preloaded();
    SELECT p.max_keys, p.max_lifetime INTO max_keys, max_lifetime
      FROM apikeys.owner_policies p WHERE p.owner = p_owner;
    max_keys := COALESCE(max_keys,
        pg_catalog.current_setting('apikeys.default_max_keys')::integer);
    max_lifetime := COALESCE(max_lifetime,
        pg_catalog.current_setting('apikeys.default_max_lifetime')::interval);
END
$$;
COMMENT ON FUNCTION apikeys_internal._owner_limits IS 'Internal: an owner''s effective key cap and maximum lifetime';
REVOKE ALL ON FUNCTION apikeys_internal._owner_limits FROM PUBLIC;

-- _check_text: non-empty (when required) and not too long; 22023 otherwise.
CREATE FUNCTION apikeys_internal._check_text(p_field text, p_value text, p_max integer, p_required boolean)
    RETURNS void
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL OR pg_catalog.btrim(p_value) = '' THEN
        IF p_required THEN
            RAISE EXCEPTION '% cannot be empty', p_field USING ERRCODE = '22023';
        END IF;
        RETURN;
    END IF;
    IF pg_catalog.length(p_value) > p_max THEN
        RAISE EXCEPTION '% is too long', p_field
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('The %s is at most %s characters.', p_field, p_max);
    END IF;
END
$$;
COMMENT ON FUNCTION apikeys_internal._check_text IS 'Internal: validates a text argument';
REVOKE ALL ON FUNCTION apikeys_internal._check_text FROM PUBLIC;

-- The longest owner name, in characters (length(), as every _check_text
-- measures), from the one constant the C code uses too (verify_ownerlimit.h).
CREATE FUNCTION apikeys_internal._owner_max_length() RETURNS integer
    AS 'MODULE_PATHNAME', 'apikeys_owner_max_length'
    LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION apikeys_internal._owner_max_length IS 'Internal: the longest owner name in characters (the constant the C code uses)';
REVOKE ALL ON FUNCTION apikeys_internal._owner_max_length FROM PUBLIC;

-- _check_owner: an owner name is non-empty and at most _owner_max_length()
-- characters; every function taking an owner checks it here.
CREATE FUNCTION apikeys_internal._check_owner(p_owner text)
    RETURNS void
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM apikeys_internal._check_text('owner', p_owner, apikeys_internal._owner_max_length(), true);
END
$$;
COMMENT ON FUNCTION apikeys_internal._check_owner IS 'Internal: 22023 unless the owner name is non-empty and at most _owner_max_length() characters';
REVOKE ALL ON FUNCTION apikeys_internal._check_owner FROM PUBLIC;

-- _check_settings validates every optional setting of a key; 22023 naming
-- the field on the first bad one.  NULL means "not given".
CREATE FUNCTION apikeys_internal._check_settings(p_scopes text[], p_description text,
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
    v_tbl regclass;
BEGIN
    IF p_scopes IS NOT NULL THEN
        IF pg_catalog.array_position(p_scopes, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'scopes cannot contain NULL' USING ERRCODE = '22023';
        END IF;
        IF pg_catalog.cardinality(p_scopes) > 100 THEN
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
                  WHERE pg_catalog.left(u.s::text, 1) = '@' LOOP
            PERFORM 1 FROM apikeys.scope_sets ss
              WHERE ss.name = r.name FOR KEY SHARE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'scope set "%" does not exist', r.name
                    USING ERRCODE = '22023',
                          HINT = 'Define it first with apikeys.define_scope_set().';
            END IF;
        END LOOP;
    END IF;

    PERFORM apikeys_internal._check_text('description', p_description, 1024, false);

    IF p_contact_email IS NOT NULL AND p_contact_email <> '' AND
       (pg_catalog.length(p_contact_email) > 254 OR
        p_contact_email !~ '^[A-Za-z0-9.!#$%&''*+/=?^_`{|}~-]+@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$') THEN
        RAISE EXCEPTION 'invalid contact email "%"', p_contact_email
            USING ERRCODE = '22023',
                  HINT = 'Give an address such as api-owner@example.com.';
    END IF;

    IF p_contact_phone IS NOT NULL AND p_contact_phone <> '' AND
       p_contact_phone !~ '^\+[1-9][0-9]{6,14}$' THEN
        RAISE EXCEPTION 'invalid contact phone "%"', p_contact_phone
            USING ERRCODE = '22023',
                  DETAIL = 'A phone number is in E.164 form: a plus sign and 7 to 15 digits.',
                  HINT = 'For example +447894123456.';
    END IF;

    IF p_allowed_cidrs IS NOT NULL THEN
        IF pg_catalog.array_position(p_allowed_cidrs, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'allowed_cidrs cannot contain NULL' USING ERRCODE = '22023';
        END IF;
        IF pg_catalog.cardinality(p_allowed_cidrs) > 100 THEN
            RAISE EXCEPTION 'too many allowed_cidrs entries'
                USING ERRCODE = '22023', DETAIL = 'A key allows at most 100 networks.';
        END IF;
    END IF;

    IF p_metadata IS NOT NULL THEN
        IF pg_catalog.jsonb_typeof(p_metadata) <> 'object' THEN
            RAISE EXCEPTION 'metadata must be a JSON object' USING ERRCODE = '22023';
        END IF;
        IF pg_catalog.octet_length(p_metadata::text) > 65536 THEN
            RAISE EXCEPTION 'metadata is too large'
                USING ERRCODE = '22023', DETAIL = 'Metadata is at most 64 kB as JSON text.';
        END IF;
    END IF;

    IF p_db_role IS NOT NULL AND p_db_role <> '' THEN
        SELECT oid, rolsuper, rolbypassrls INTO r
          FROM pg_catalog.pg_roles WHERE rolname = p_db_role;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'role "%" does not exist', p_db_role USING ERRCODE = '22023';
        END IF;
        IF r.rolsuper OR r.rolbypassrls THEN
            RAISE EXCEPTION 'role "%" cannot be used for API keys', p_db_role
                USING ERRCODE = '22023',
                      DETAIL = 'Superuser and BYPASSRLS roles would escape row-level security.';
        END IF;
        v_tbl := apikeys_internal._protected_table_owned_by(r.oid);
        IF v_tbl IS NOT NULL THEN
            RAISE EXCEPTION 'role "%" cannot be used for API keys', p_db_role
                USING ERRCODE = '22023',
                      DETAIL = pg_catalog.format('The role is, or is a member of, the owner of table %s, which is protected without FORCE ROW LEVEL SECURITY: a table''s owner escapes its row-level security.', v_tbl),
                      HINT = 'Revoke the table owner''s role from the key''s role, or protect the table with apikeys.protect(..., force => true).';
        END IF;
    END IF;

    IF p_rate_limit IS NOT NULL AND p_rate_limit < 0 THEN
        RAISE EXCEPTION 'rate_limit must be positive' USING ERRCODE = '22023',
            HINT = 'Use NULL at creation, or 0 in update_key, for no limit.';
    END IF;
    IF p_rate_window IS NOT NULL AND
       (p_rate_window < '1 second'::interval OR
        p_rate_window > '1 day'::interval) THEN
        RAISE EXCEPTION 'rate_window must be between 1 second and 1 day' USING ERRCODE = '22023';
    END IF;

    RETURN v_scopes;
END
$$;
COMMENT ON FUNCTION apikeys_internal._check_settings IS 'Internal: validates a key''s settings';
REVOKE ALL ON FUNCTION apikeys_internal._check_settings FROM PUBLIC;

-- _check_expiry: in the future and within the owner's max lifetime.
CREATE FUNCTION apikeys_internal._check_expiry(p_expires_at timestamptz, p_max_lifetime interval)
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_expires_at <= pg_catalog.now() THEN
        RAISE EXCEPTION 'expiry must be in the future' USING ERRCODE = '22023';
    END IF;
    IF p_expires_at > (pg_catalog.now() + p_max_lifetime) THEN
        RAISE EXCEPTION 'expiry is beyond the maximum key lifetime'
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('Keys of this owner live at most %s.', p_max_lifetime),
                  HINT = 'Choose an earlier expiry, or change the owner''s max_lifetime with apikeys.set_owner_policy().';
    END IF;
END
$$;
COMMENT ON FUNCTION apikeys_internal._check_expiry IS 'Internal: validates an expiry against the maximum lifetime';
REVOKE ALL ON FUNCTION apikeys_internal._check_expiry FROM PUBLIC;

-- _check_key_cap: 54000 when the owner's live keys and p_adding new ones
-- would be more than max_keys (create_key, import_key, import_keys).  The
-- caller holds the owner's policy row lock and has already added p_adding to
-- its keys_issued: every path that adds a live key does (a key never comes
-- back to life: no un-revoke, an expiry is only brought forward, the owner
-- never changes), so keys_issued only grows by keys that may be live.
CREATE FUNCTION apikeys_internal._check_key_cap(p_owner text, p_max_keys integer,
                                       p_adding integer DEFAULT 1)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_live bigint;
    v_max_keys integer := p_max_keys;
    v_issued bigint;
    v_cap_live bigint;
    v_cap_issued bigint;
BEGIN
    -- The bound first: the live keys at the last count, plus every key
    -- issued since (this call's p_adding included).  Below the cap, nothing
    -- is read but the locked policy row, however many keys the owner holds.
    SELECT p.keys_issued, p.cap_live, p.cap_issued INTO v_issued, v_cap_live, v_cap_issued
      FROM apikeys.owner_policies p WHERE p.owner = p_owner;
    IF v_cap_live IS NOT NULL AND v_issued >= v_cap_issued AND
       (v_cap_live + (v_issued - v_cap_issued))
           <= v_max_keys THEN
        RETURN;
    END IF;
    -- At the bound (revoked or expired keys since the last count): count.
    -- The count reads the owner's live keys only (keys_owner_live_idx) and
    -- stops at the cap; the exact number is counted only for the error.
    SELECT pg_catalog.count(*) INTO v_live
      FROM (SELECT 1 FROM apikeys.keys k
             WHERE k.owner = p_owner
               AND k.revoked_at IS NULL
               AND k.expires_at > pg_catalog.now()
             LIMIT v_max_keys) live;
    IF (v_live + p_adding) > v_max_keys THEN
        SELECT pg_catalog.count(*) INTO v_live FROM apikeys.keys k
         WHERE k.owner = p_owner
           AND k.revoked_at IS NULL
           AND k.expires_at > pg_catalog.now();
        RAISE EXCEPTION 'owner "%" already has the maximum number of API keys', p_owner
            USING ERRCODE = '54000',
                  DETAIL = CASE WHEN p_adding = 1
                                THEN pg_catalog.format('The owner has %s live keys; the limit is %s.', v_live, v_max_keys)
                                ELSE pg_catalog.format('The owner has %s live keys and %s more would be imported; the limit is %s.', v_live, p_adding, v_max_keys) END,
                  -- a tenant (self-service) cannot call set_owner_policy: tell it what it can do
                  HINT = CASE WHEN apikeys.current_client_id() IS NULL
                              THEN 'Revoke a key the owner no longer needs (expired keys do not count), or raise max_keys with apikeys.set_owner_policy().'
                              ELSE 'Revoke a key you no longer need with apikeys.my_revoke_key() (expired keys do not count), then try again; only an administrator can raise the limit.' END;
    END IF;
    -- the new bound: the keys counted and the ones being added
    UPDATE apikeys.owner_policies p
       SET cap_live = v_live + p_adding, cap_issued = v_issued
     WHERE p.owner = p_owner;
END
$$;
COMMENT ON FUNCTION apikeys_internal._check_key_cap IS 'Internal: 54000 when the owner''s live keys and the ones being added would exceed its maximum';
REVOKE ALL ON FUNCTION apikeys_internal._check_key_cap FROM PUBLIC;

-- _check_credits validates a key's credit settings as they will be (the
-- merged result for update_key): a balance of zero or more, a refill of a
-- positive amount every 1 second to 100 years (measured as verification
-- measures it: _interval_us), given both or neither.  22023 otherwise.
CREATE FUNCTION apikeys_internal._check_credits(p_credits bigint, p_refill_amount bigint,
                                       p_refill_every interval)
    RETURNS void
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_credits < 0 THEN
        RAISE EXCEPTION 'credits must be zero or more' USING ERRCODE = '22023',
            HINT = 'Leave credits NULL for a key without a balance (unlimited use).';
    END IF;
    IF p_refill_amount <= 0 THEN
        RAISE EXCEPTION 'refill_amount must be positive' USING ERRCODE = '22023',
            HINT = 'Leave refill_amount and refill_every NULL for credits that never refill.';
    END IF;
    IF p_refill_every IS NOT NULL AND
       (apikeys_internal._interval_us(p_refill_every) < 1000000 OR
        p_refill_every > '100 years'::interval) THEN
        RAISE EXCEPTION 'refill_every must be between 1 second and 100 years' USING ERRCODE = '22023';
    END IF;
    IF (p_refill_amount IS NULL) <> (p_refill_every IS NULL) THEN
        RAISE EXCEPTION 'refill_amount and refill_every go together' USING ERRCODE = '22023',
            DETAIL = 'A refill sets the balance back to refill_amount every refill_every.',
            HINT = 'Give both, or neither for credits that never refill.';
    END IF;
END
$$;
COMMENT ON FUNCTION apikeys_internal._check_credits IS 'Internal: 22023 unless a key''s credits, refill_amount and refill_every are valid together';
REVOKE ALL ON FUNCTION apikeys_internal._check_credits FROM PUBLIC;

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
                                   handoff boolean DEFAULT false,
                                   credits bigint DEFAULT NULL,
                                   refill_amount bigint DEFAULT NULL,
                                   refill_every interval DEFAULT NULL,
                                   prefix text DEFAULT NULL)
    RETURNS apikeys.new_key
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_scopes apikeys.scope[];
    -- a refill without a starting balance starts full
    v_credits bigint := COALESCE(create_key.credits, create_key.refill_amount);
    v_max_keys integer;
    v_max_lifetime interval;
    v_live bigint;
    v_expires timestamptz;
    v_prefix text;
    m record;
    v_key apikeys.keys;
BEGIN
    PERFORM apikeys_internal._check_owner(create_key.owner);
    PERFORM apikeys_internal._check_text('name', create_key.name, 128, true);
    IF create_key.scopes IS NULL THEN
        RAISE EXCEPTION 'scopes cannot be NULL' USING ERRCODE = '22023',
            HINT = 'Give an empty array for a key that may do nothing yet.';
    END IF;
    IF create_key.rate_limit IS NOT NULL AND create_key.rate_limit = 0 THEN
        RAISE EXCEPTION 'rate_limit must be positive' USING ERRCODE = '22023',
            HINT = 'Use NULL for no limit.';
    END IF;
    v_scopes := apikeys_internal._check_settings(create_key.scopes, create_key.description,
                    create_key.contact_email, create_key.contact_phone,
                    create_key.allowed_cidrs, create_key.metadata,
                    create_key.db_role::text, create_key.rate_limit,
                    CASE WHEN create_key.rate_limit IS NOT NULL THEN create_key.rate_window END);
    IF create_key.handoff IS NULL THEN
        RAISE EXCEPTION 'handoff cannot be NULL' USING ERRCODE = '22023';
    END IF;
    PERFORM apikeys_internal._check_credits(v_credits, create_key.refill_amount, create_key.refill_every);
    IF create_key.handoff AND
       (NULLIF(create_key.contact_email, '') IS NULL OR NULLIF(create_key.contact_phone, '') IS NULL) THEN
        RAISE EXCEPTION 'a handoff needs a contact email and a contact phone'
            USING ERRCODE = '22023',
                  DETAIL = 'The claim link goes to the email address and the code to the phone.',
                  HINT = 'Give contact_email and contact_phone.';
    END IF;
    v_prefix := apikeys_internal._check_prefix(create_key.prefix);

    -- Serialise creates for this owner: the upsert row-locks the owner's
    -- policy row, and a REPEATABLE READ transaction racing another create
    -- fails with a serialization error instead of overshooting the cap.
    INSERT INTO apikeys.owner_policies AS p (owner, keys_issued)
    VALUES (create_key.owner, 1)
    ON CONFLICT ON CONSTRAINT owner_policies_pkey
    DO UPDATE SET keys_issued = p.keys_issued + 1;

    SELECT l.max_keys, l.max_lifetime INTO v_max_keys, v_max_lifetime
      FROM apikeys_internal._owner_limits(create_key.owner) l;

    v_expires := COALESCE(create_key.expires_at,
                          pg_catalog.now() + v_max_lifetime);
    PERFORM apikeys_internal._check_expiry(v_expires, v_max_lifetime);

    PERFORM apikeys_internal._check_key_cap(create_key.owner, v_max_keys);

    -- With handoff, the secret minted here is dropped unseen: the stored
    -- hash matches nothing anybody has, so the key answers NOT_FOUND until
    -- claim_key mints the real one.
    --
    -- A client ID that already exists (96 random bits: never in practice)
    -- must not surface as a unique violation whose DETAIL names another
    -- owner's key: ON CONFLICT DO NOTHING, draw again, and after three
    -- misses fail with a message of our own.
    FOR attempt IN 1..3 LOOP
        m := apikeys_internal._mint(NULL, v_prefix);

        INSERT INTO apikeys.keys (client_id, owner, name, scopes, secret_hash, hash_alg,
                                  expires_at, created_by, description, contact_email,
                                  contact_phone, allowed_cidrs, metadata, db_role,
                                  rate_limit, rate_window, pending_since, created_by_key,
                                  credits, refill_amount, refill_every, credits_refilled_at)
        VALUES (m.client_id, create_key.owner, create_key.name, v_scopes, m.secret_hash,
                m.hash_alg, v_expires, apikeys_internal._outer_user(),
                NULLIF(create_key.description, ''), NULLIF(create_key.contact_email, ''),
                NULLIF(create_key.contact_phone, ''), create_key.allowed_cidrs,
                NULLIF(create_key.metadata, '{}'::jsonb), NULLIF(create_key.db_role::text, ''),
                create_key.rate_limit,
                CASE WHEN create_key.rate_limit IS NOT NULL THEN create_key.rate_window END,
                CASE WHEN create_key.handoff THEN pg_catalog.now() END,
                apikeys_internal._acting_key(),
                v_credits, create_key.refill_amount, create_key.refill_every,
                CASE WHEN v_credits IS NOT NULL THEN pg_catalog.now() END)
        ON CONFLICT (client_id) DO NOTHING
        RETURNING * INTO v_key;
        EXIT WHEN v_key.client_id IS NOT NULL;
    END LOOP;
    IF v_key.client_id IS NULL THEN
        RAISE EXCEPTION 'could not issue a unique client ID'
            USING ERRCODE = '23505',
                  HINT = 'Try again.';
    END IF;

    PERFORM apikeys_internal._audit('created', m.client_id, create_key.owner,
        pg_catalog.jsonb_build_object('name', create_key.name, 'scopes', v_scopes,
                                      'expires_at', v_expires, 'prefix', v_key.prefix)
        || CASE WHEN v_credits IS NULL THEN '{}'::jsonb
                                     ELSE pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                                         'credits', v_credits,
                                         'refill_amount', create_key.refill_amount,
                                         'refill_every', create_key.refill_every)) END
        || CASE WHEN create_key.handoff
                                     THEN '{"handoff": true}'::jsonb ELSE '{}'::jsonb END);

    IF create_key.handoff THEN
        PERFORM apikeys_internal._handoff_start(v_key);
        RETURN ROW(m.client_id, NULL, NULL, v_expires)::apikeys.new_key;
    END IF;
    RETURN ROW(m.client_id, m.client_secret, m.token, v_expires)::apikeys.new_key;
END
$$;
COMMENT ON FUNCTION apikeys.create_key IS 'Issues a key; returns its secret and token, shown this once, or with handoff sends a claim link and code to its contacts and returns no secret';
REVOKE ALL ON FUNCTION apikeys.create_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.create_key TO apikeys_admin;

-- Importing keys an adopter already issued (import_key, import_keys).  The
-- key gets a client ID of ours; its hash is SHA-256 of the whole legacy
-- token (hash_alg 'l'), which verification looks up by that hash
-- (src/verify_legacy.c).  Both paths check a key's arguments in _import_check
-- (create_key's checks), take the owner's lock and check its cap in
-- _import_reserve (create_key's _check_key_cap) and its expiry with
-- create_key's _check_expiry; import_key inserts one key (_import_one),
-- import_keys all of a table in one statement.
CREATE FUNCTION apikeys_internal._import_check(p_owner text, p_name text, p_scopes text[],
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
    PERFORM apikeys_internal._check_owner(p_owner);
    PERFORM apikeys_internal._check_text('name', p_name, 128, true);
    IF p_scopes IS NULL THEN
        RAISE EXCEPTION 'scopes cannot be NULL' USING ERRCODE = '22023',
            HINT = 'Give an empty array for a key that may do nothing yet.';
    END IF;
    IF (p_secret_hash IS NULL) = (p_token IS NULL) THEN
        RAISE EXCEPTION 'give exactly one of secret_hash and token' USING ERRCODE = '22023',
            HINT = 'Prefer secret_hash: the SHA-256 of the whole legacy token, so the token itself never travels.';
    END IF;
    IF p_token IS NOT NULL THEN
        IF p_token = '' OR
           pg_catalog.octet_length(p_token) > apikeys_internal._legacy_token_max_length() THEN
            RAISE EXCEPTION 'a legacy token must be 1 to % bytes long', apikeys_internal._legacy_token_max_length()
                USING ERRCODE = '22023';
        END IF;
        -- verification's own classifier (TokenClassify): only what it
        -- looks up as legacy can be imported, or the key never verifies
        IF apikeys_internal._token_kind(p_token) = 'native' THEN
            RAISE EXCEPTION 'the token is already an apikeys token' USING ERRCODE = '22023',
                HINT = 'Only tokens issued by another system can be imported.';
        END IF;
        -- (a mistyped apikeys token, 'mistyped', is refused just below)
        IF apikeys_internal._token_kind(p_token) NOT IN ('legacy', 'mistyped') THEN
            RAISE EXCEPTION 'the token has the shape of an apikeys derived token' USING ERRCODE = '22023',
                DETAIL = 'Verification reads such a token as a derived token, so the imported key would never verify.',
                HINT = 'A token of this shape cannot be imported: issue its holder a new key with apikeys.create_key().';
        END IF;
        -- a native prefix but not a valid native token: most likely a
        -- mistyped apikeys token, which would become a different key
        -- (one expression, no query: this runs for every row of a bulk
        -- import; prefixes are [a-z0-9_], so they are safe in a regex)
        IF pg_catalog.starts_with(p_token, pg_catalog.current_setting('apikeys.token_prefix', true)
                                           || '_') OR
           p_token ~ ('^(' || pg_catalog.regexp_replace(
               pg_catalog.btrim(COALESCE(pg_catalog.current_setting('apikeys.allowed_prefixes', true), ''), E' \t\n,'),
               E'[\\s,]+', '|', 'g') || ')_') AND
           pg_catalog.btrim(COALESCE(pg_catalog.current_setting('apikeys.allowed_prefixes', true), ''), E' \t\n,')
               <> '' THEN
            RAISE EXCEPTION 'the token has the prefix of an apikeys token but is not a valid one'
                USING ERRCODE = '22023',
                      HINT = 'Check it for a typo. A token another system issued with this prefix can be imported by its hash (secret_hash).';
        END IF;
        hash := pg_catalog.sha256(pg_catalog.convert_to(p_token, 'UTF8'));
    ELSE
        IF p_hash_format IS NULL OR
           p_hash_format <> ALL (ARRAY['sha256_hex', 'sha256_base64']) THEN
            RAISE EXCEPTION 'hash_format must be sha256_hex or sha256_base64' USING ERRCODE = '22023';
        END IF;
        -- checked before decode(), so no error (or subtransaction) is
        -- needed; ltrim with a character set is cheaper than a regex
        IF p_hash_format = 'sha256_hex' AND
           pg_catalog.octet_length(p_secret_hash) = 64 AND
           pg_catalog.ltrim(p_secret_hash, '0123456789abcdefABCDEF') = '' THEN
            hash := pg_catalog.decode(p_secret_hash, 'hex');
        ELSIF p_hash_format = 'sha256_base64' AND
              pg_catalog.octet_length(p_secret_hash) = 44 AND
              pg_catalog.ltrim(p_secret_hash, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/')
                  = '=' THEN
            hash := pg_catalog.decode(p_secret_hash, 'base64');
        ELSE
            RAISE EXCEPTION 'secret_hash is not a SHA-256 hash in %', p_hash_format
                USING ERRCODE = '22023',
                      DETAIL = 'A SHA-256 hash is 32 bytes: 64 hexadecimal digits or 44 base64 characters.';
        END IF;
    END IF;
    scopes := apikeys_internal._check_settings(p_scopes, p_description, p_contact_email,
                    p_contact_phone, p_allowed_cidrs, p_metadata, p_db_role, NULL, NULL);
END
$$;
COMMENT ON FUNCTION apikeys_internal._import_check IS 'Internal: validates an imported key''s arguments (create_key''s checks); returns the legacy hash and the scopes';
REVOKE ALL ON FUNCTION apikeys_internal._import_check FROM PUBLIC;

-- _import_reserve: create_key's lock on the owner's policy row, and its
-- cap for p_adding more keys; returns the owner's maximum lifetime.
CREATE FUNCTION apikeys_internal._import_reserve(p_owner text, p_adding integer)
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
    DO UPDATE SET keys_issued = p.keys_issued + p_adding;
    SELECT l.max_keys, l.max_lifetime INTO v_max_keys, v_max_lifetime
      FROM apikeys_internal._owner_limits(p_owner) l;
    PERFORM apikeys_internal._check_key_cap(p_owner, v_max_keys, p_adding);
    RETURN v_max_lifetime;
END
$$;
COMMENT ON FUNCTION apikeys_internal._import_reserve IS 'Internal: takes the owner''s policy row lock and checks its cap for keys being imported; returns its maximum lifetime';
REVOKE ALL ON FUNCTION apikeys_internal._import_reserve FROM PUBLIC;

CREATE FUNCTION apikeys_internal._import_one(p_owner text, p_name text, p_scopes text[],
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
    c := apikeys_internal._import_check(p_owner, p_name, p_scopes, p_secret_hash, p_hash_format,
                               p_token, p_description, p_contact_email, p_contact_phone,
                               p_allowed_cidrs, p_metadata, p_db_role);
    scopes := c.scopes;
    v_max_lifetime := apikeys_internal._import_reserve(p_owner, 1);
    expires_at := COALESCE(p_expires_at, pg_catalog.now() + v_max_lifetime);
    PERFORM apikeys_internal._check_expiry(expires_at, v_max_lifetime);

    FOR attempt IN 1..3 LOOP
        m := apikeys_internal._mint(NULL);
        INSERT INTO apikeys.keys (client_id, owner, name, scopes, secret_hash, hash_alg,
                                  expires_at, created_by, description, contact_email,
                                  contact_phone, allowed_cidrs, metadata, db_role)
        VALUES (m.client_id, p_owner, p_name, c.scopes, c.hash, 'l', expires_at,
                apikeys_internal._outer_user(), NULLIF(p_description, ''), NULLIF(p_contact_email, ''),
                NULLIF(p_contact_phone, ''), p_allowed_cidrs,
                NULLIF(p_metadata, '{}'::jsonb), NULLIF(p_db_role, ''))
        ON CONFLICT DO NOTHING
        RETURNING apikeys.keys.client_id INTO client_id;
        EXIT WHEN client_id IS NOT NULL;
        -- the same legacy token imported twice: the hash's index, not the client ID
        IF EXISTS (SELECT 1 FROM apikeys.keys k
                    WHERE k.secret_hash = c.hash
                      AND k.hash_alg = 'l'::"char") THEN
            RAISE EXCEPTION 'this legacy token has already been imported' USING ERRCODE = '23505';
        END IF;
    END LOOP;
    IF client_id IS NULL THEN
        RAISE EXCEPTION 'could not issue a unique client ID' USING ERRCODE = '23505',
            HINT = 'Try again.';
    END IF;
END
$$;
COMMENT ON FUNCTION apikeys_internal._import_one IS 'Internal: validates and inserts one imported key (create_key''s checks and cap), without an audit row';
REVOKE ALL ON FUNCTION apikeys_internal._import_one FROM PUBLIC;

CREATE FUNCTION apikeys_internal._token_kind(token text) RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_token_kind'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys_internal._token_kind IS 'Internal: what verification reads a presented token as: derived, native, legacy, mistyped or junk';
REVOKE ALL ON FUNCTION apikeys_internal._token_kind FROM PUBLIC;

CREATE FUNCTION apikeys_internal._legacy_token_max_length() RETURNS integer
    AS 'MODULE_PATHNAME', 'apikeys_legacy_token_max_length'
    LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION apikeys_internal._legacy_token_max_length IS 'Internal: the longest legacy token import_key accepts and verification looks up';
REVOKE ALL ON FUNCTION apikeys_internal._legacy_token_max_length FROM PUBLIC;

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
    r := apikeys_internal._import_one(import_key.owner, import_key.name, import_key.scopes,
                             import_key.secret_hash, import_key.hash_format, import_key.token,
                             import_key.expires_at, import_key.description,
                             import_key.contact_email, import_key.contact_phone,
                             import_key.allowed_cidrs, import_key.metadata,
                             import_key.db_role::text);
    PERFORM apikeys_internal._audit('imported', r.client_id, import_key.owner,
        pg_catalog.jsonb_build_object('name', import_key.name, 'scopes', r.scopes,
                                      'expires_at', r.expires_at,
                                      'from', CASE WHEN import_key.token IS NULL
                                                   THEN import_key.hash_format ELSE 'token' END));
    RETURN r.client_id;
END
$$;
COMMENT ON FUNCTION apikeys.import_key IS 'Imports a key issued by another system from the SHA-256 of its token (hex or base64) or the token itself (stored hashed); the legacy token then verifies as it is; returns the client ID assigned';
REVOKE ALL ON FUNCTION apikeys.import_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.import_key TO apikeys_admin;

-- One row of an import_keys source, read by the caller (import_keys) and
-- handed to _import_rows: import_key's arguments by name and type.
CREATE TYPE apikeys._import_row AS (
    owner           text,
    name            text,
    scopes          text[],
    secret_hash     text,
    hash_format     text,
    token           text,
    expires_at      timestamptz,
    description     text,
    contact_email   text,
    contact_phone   text,
    allowed_cidrs   cidr[],
    metadata        jsonb,
    db_role         text
);
COMMENT ON TYPE apikeys._import_row IS 'Internal: one key of a bulk import, as import_keys read it from its source with the caller''s privileges';

-- _import_rows: the privileged half of import_keys, given the rows as a
-- value (it never reads the caller's table, view or functions).  One
-- statement: every row checked (_import_check), every owner locked and
-- capped once for all its new keys (_import_reserve, in owner order so
-- that two imports cannot deadlock), every expiry checked, then one
-- INSERT.  Any error rolls back the whole import.  One audit row.
CREATE FUNCTION apikeys_internal._import_rows(p_source regclass, p_rows apikeys._import_row[])
    RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rows bigint;
    v_n bigint;
BEGIN
    WITH src AS MATERIALIZED (
        SELECT s.* FROM pg_catalog.unnest(p_rows) s),
    checked AS MATERIALIZED (
        SELECT s.*, c.hash, c.scopes AS checked_scopes
          FROM src s,
               LATERAL apikeys_internal._import_check(s.owner, s.name, s.scopes, s.secret_hash,
                           COALESCE(s.hash_format, 'sha256_hex'), s.token, s.description,
                           s.contact_email, s.contact_phone, s.allowed_cidrs,
                           COALESCE(s.metadata, '{}'::jsonb), s.db_role) c),
    owners AS MATERIALIZED (
        SELECT o.owner, apikeys_internal._import_reserve(o.owner, o.n::integer) AS max_lifetime
          FROM (SELECT ch.owner, pg_catalog.count(*) AS n FROM checked ch
                 GROUP BY ch.owner ORDER BY ch.owner) o),
    ready AS MATERIALIZED (
        SELECT ch.*, x.expires, apikeys_internal._check_expiry(x.expires, o.max_lifetime)::text AS ok
          FROM checked ch
          JOIN owners o ON o.owner = ch.owner,
               LATERAL (SELECT COALESCE(ch.expires_at,
                               pg_catalog.now() + o.max_lifetime) AS expires) x),
    ins AS (
        INSERT INTO apikeys.keys (client_id, owner, name, scopes, secret_hash, hash_alg,
                                  expires_at, created_by, description, contact_email,
                                  contact_phone, allowed_cidrs, metadata, db_role)
        SELECT (apikeys_internal._mint(NULL)).client_id, r.owner, r.name, r.checked_scopes, r.hash,
               'l', r.expires, apikeys_internal._outer_user(), NULLIF(r.description, ''),
               NULLIF(r.contact_email, ''), NULLIF(r.contact_phone, ''), r.allowed_cidrs,
               NULLIF(r.metadata, '{}'::jsonb), NULLIF(r.db_role, '')
          FROM ready r
        ON CONFLICT DO NOTHING
        RETURNING 1)
    SELECT (SELECT pg_catalog.count(*) FROM ready), (SELECT pg_catalog.count(*) FROM ins)
      INTO v_rows, v_n;

    -- A row left out: its legacy hash was imported before, or is in the
    -- source twice (a client ID drawn twice does not happen at 95 bits).
    IF v_n <> v_rows THEN
        RAISE EXCEPTION 'this legacy token has already been imported' USING ERRCODE = '23505',
            DETAIL = pg_catalog.format('%s of the %s keys in %s were imported before or appear twice in it; nothing was imported.',
                                       v_rows - v_n, v_rows, p_source);
    END IF;

    PERFORM apikeys_internal._audit('imported', NULL, NULL,
        pg_catalog.jsonb_build_object('source', p_source::text, 'keys', v_n));
    RETURN v_n;
END
$$;
COMMENT ON FUNCTION apikeys_internal._import_rows IS 'Internal: validates and inserts the keys import_keys read, in one statement, with one audit row';
REVOKE ALL ON FUNCTION apikeys_internal._import_rows FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys_internal._import_rows TO apikeys_admin;

-- import_keys reads its source as the caller (SECURITY INVOKER): the
-- caller's privileges, row-level security and column grants decide what
-- is read, and any function a view calls runs as the caller, never as the
-- extension owner.  The rows go to _import_rows as a value.
CREATE FUNCTION apikeys.import_keys(source regclass)
    RETURNS bigint
    LANGUAGE plpgsql
    SECURITY INVOKER
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
    v_rows apikeys._import_row[];
BEGIN
    IF import_keys.source IS NULL THEN
        RAISE EXCEPTION 'source cannot be NULL' USING ERRCODE = '22023';
    END IF;
    -- a table the caller cannot read at all fails here (42501)
    EXECUTE pg_catalog.format('SELECT FROM %s LIMIT 0', import_keys.source);
    SELECT pg_catalog.array_agg(a.attname::text) INTO v_cols
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = import_keys.source
       AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT v_cols @> ARRAY['owner', 'name', 'scopes'] THEN
        RAISE EXCEPTION 'table % needs the columns owner, name and scopes', import_keys.source
            USING ERRCODE = '22023',
                  HINT = 'Name the columns like the arguments of apikeys.import_key(), for example in a view.';
    END IF;
    IF NOT v_cols && ARRAY['secret_hash', 'token'] THEN
        RAISE EXCEPTION 'table % needs a column secret_hash or token', import_keys.source
            USING ERRCODE = '22023';
    END IF;
    -- the source's columns by import_key's names and types; absent ones NULL
    SELECT pg_catalog.string_agg(
               CASE WHEN u.c = ANY (v_cols)
                    THEN pg_catalog.format('s.%I::%s', u.c, u.t)
                    ELSE pg_catalog.format('NULL::%s', u.t) END, ', ')
      INTO v_select
      FROM ROWS FROM (pg_catalog.unnest(v_known), pg_catalog.unnest(v_types)) AS u(c, t);

    -- read with the caller's rights (this function is not SECURITY DEFINER)
    EXECUTE pg_catalog.format(
        'SELECT pg_catalog.array_agg(ROW(%s)::apikeys._import_row) FROM %s s',
        v_select, import_keys.source)
    INTO v_rows;
    RETURN apikeys_internal._import_rows(import_keys.source,
                                COALESCE(v_rows, '{}'::apikeys._import_row[]));
END
$$;
COMMENT ON FUNCTION apikeys.import_keys IS 'Imports every row of a table whose columns are named like import_key''s arguments, read with the caller''s privileges, in one transaction and one audit row; returns the number of keys';
REVOKE ALL ON FUNCTION apikeys.import_keys FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.import_keys TO apikeys_admin;

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
    IF grace IS NULL OR grace < '0'::interval THEN
        RAISE EXCEPTION 'grace must be zero or a positive interval' USING ERRCODE = '22023';
    END IF;
    k := apikeys_internal._key_row(rotate_key.client_id);
    IF k.expires_at <= pg_catalog.now() THEN
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

    m := apikeys_internal._mint(k.client_id);
    -- the old secret lives on for the grace period, never past the key's expiry
    v_prev_until := LEAST(pg_catalog.now() + grace, k.expires_at);

    PERFORM apikeys_internal._op_begin('rotated', pg_catalog.jsonb_build_object(
        'grace', grace, 'old_secret_valid_until',
        CASE WHEN grace > '0'::interval THEN v_prev_until END));
    UPDATE apikeys.keys SET
        prev_secret_hash = CASE WHEN grace > '0'::interval THEN secret_hash END,
        prev_hash_alg    = CASE WHEN grace > '0'::interval THEN hash_alg END,
        prev_expires_at  = CASE WHEN grace > '0'::interval THEN v_prev_until END,
        prev_secret_by_key = CASE WHEN grace > '0'::interval THEN secret_by_key END,
        secret_hash      = m.secret_hash,
        hash_alg         = m.hash_alg,
        secret_by_key    = apikeys_internal._acting_key()
     WHERE keys.client_id = k.client_id;
    PERFORM apikeys_internal._op_end();

    RETURN ROW(m.client_id, m.client_secret, m.token, k.expires_at)::apikeys.new_key;
END
$$;
COMMENT ON FUNCTION apikeys.rotate_key IS 'Replaces a key''s secret; the old one works until now() + grace (never past expiry)';
REVOKE ALL ON FUNCTION apikeys.rotate_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.rotate_key TO apikeys_admin;

-- disable_key returns whether this call disabled the key: false when it
-- was disabled already (psql then shows that nothing changed).
CREATE FUNCTION apikeys.disable_key(client_id text, reason text DEFAULT NULL)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k apikeys.keys;
BEGIN
    PERFORM apikeys_internal._check_text('reason', reason, 1024, false);
    k := apikeys_internal._key_row(disable_key.client_id);
    PERFORM apikeys_internal._op_begin('disabled', pg_catalog.jsonb_build_object('reason', reason));
    -- who disabled it: a key (self-service) or an admin (NULL).  An admin's
    -- disable of a key a key disabled makes it the admin's, so that no key
    -- can lift it (_check_target).
    UPDATE apikeys.keys SET disabled_at = COALESCE(disabled_at, pg_catalog.now()),
                            disabled_by_key = apikeys_internal._acting_key()
     WHERE keys.client_id = disable_key.client_id
       AND (disabled_at IS NULL OR
            (disabled_by_key IS NOT NULL AND apikeys_internal._acting_key() IS NULL));
    PERFORM apikeys_internal._op_end();
    RETURN k.disabled_at IS NULL;
END
$$;
COMMENT ON FUNCTION apikeys.disable_key IS 'Disables a key until enable_key (reversible); true if it was not disabled before';
REVOKE ALL ON FUNCTION apikeys.disable_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.disable_key TO apikeys_admin;

-- enable_key returns whether this call enabled the key: false when it was
-- not disabled.
CREATE FUNCTION apikeys.enable_key(client_id text)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k apikeys.keys;
BEGIN
    k := apikeys_internal._key_row(enable_key.client_id);
    PERFORM apikeys_internal._op_begin('enabled', NULL);
    UPDATE apikeys.keys SET disabled_at = NULL, disabled_by_key = NULL
     WHERE keys.client_id = enable_key.client_id
       AND disabled_at IS NOT NULL;
    PERFORM apikeys_internal._op_end();
    RETURN k.disabled_at IS NOT NULL;
END
$$;
COMMENT ON FUNCTION apikeys.enable_key IS 'Re-enables a disabled key; true if it was disabled';
REVOKE ALL ON FUNCTION apikeys.enable_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.enable_key TO apikeys_admin;

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
--   - with p_with_descendants (a leaked manager key), every key the
--     thief could hold through it, that is not revoked yet: every key it
--     created, every key whose current secret (or previous one, within its
--     grace) it issued by rotation (secret_by_key), and the same again for
--     each of those, recursively.  The walk goes through revoked, expired
--     and deleted keys (deleted_keys keeps a deleted key's link, so
--     deleting the middle key, or the manager itself, hides nothing) and
--     is a query, not a recursion, so no chain of keys is too deep for it.
--     A key revoked or deleted already (p_client_id only in deleted_keys)
--     is accepted here, with a NOTICE: its live descendants are revoked.
-- p_strict: a missing or revoked key raises (42704, 55000, as _key_row);
-- otherwise it is skipped.  Returns the number of keys revoked.
CREATE FUNCTION apikeys_internal._revoke_key(p_client_id text, p_detail jsonb,
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
    v_deleted boolean := false;
    v_was_revoked boolean := false;
    v_why text;
BEGIN
    IF p_with_descendants IS NULL THEN
        RAISE EXCEPTION 'with_descendants cannot be NULL' USING ERRCODE = '22023';
    END IF;
    v_before := ARRAY(SELECT k2.client_id FROM apikeys.keys k2
                       WHERE k2.created_by_key = p_client_id);
    IF p_with_descendants AND p_client_id IS NOT NULL AND
       NOT EXISTS (SELECT 1 FROM apikeys.keys k2
                    WHERE k2.client_id = p_client_id) THEN
        -- a deleted key: lock its link so that a concurrent delete_key
        -- cannot drop it under us
        PERFORM 1 FROM apikeys.deleted_keys d
          WHERE d.client_id = p_client_id FOR UPDATE;
        v_deleted := FOUND;
    END IF;
    IF v_deleted THEN
        NULL;
    ELSIF p_strict THEN
        -- with descendants, a key revoked already is accepted: its tree
        -- may still be live
        k := apikeys_internal._key_row(p_client_id, p_with_descendants);
        v_was_revoked := k.revoked_at IS NOT NULL;
    ELSE
        SELECT * INTO k FROM apikeys.keys k2
         WHERE k2.client_id = p_client_id
         FOR UPDATE;
        IF NOT FOUND OR k.revoked_at IS NOT NULL THEN
            RETURN 0;
        END IF;
    END IF;
    IF NOT v_deleted THEN
        PERFORM apikeys_internal._op_begin('revoked', p_detail);
        UPDATE apikeys.keys SET revoked_at = pg_catalog.now()
         WHERE keys.client_id = k.client_id
           AND revoked_at IS NULL;
        IF FOUND THEN
            n := 1;
        END IF;
        PERFORM apikeys_internal._op_end();

        FOR c IN SELECT k2.client_id FROM apikeys.keys k2
                  WHERE k2.created_by_key = k.client_id
                    AND k2.revoked_at IS NULL
                    AND k2.client_id <> ALL (v_before)
                  ORDER BY k2.client_id
        LOOP
            n := n + apikeys_internal._revoke_key(c,
                pg_catalog.jsonb_build_object('reason', pg_catalog.format(
                    'created by %s while it was being revoked', k.client_id)), false, false);
        END LOOP;
    END IF;

    IF p_with_descendants THEN
        -- d: the key and every key reached from it by creation (through
        -- live and deleted keys) or by a rotation that issued a secret
        -- still live (current, or previous within its grace)
        FOR c, v_why IN WITH RECURSIVE e(client_id, created_by_key, secret_by_key, prev_secret_by_key) AS (
                     SELECT k2.client_id, k2.created_by_key, k2.secret_by_key,
                            CASE WHEN k2.prev_expires_at > pg_catalog.now()
                                 THEN k2.prev_secret_by_key END
                       FROM apikeys.keys k2
                     UNION ALL
                     SELECT dk.client_id, dk.created_by_key, NULL, NULL
                       FROM apikeys.deleted_keys dk),
                 d(client_id) AS (
                     SELECT p_client_id COLLATE "C"
                     UNION
                     SELECT e.client_id FROM e, d
                      WHERE e.created_by_key = d.client_id
                         OR e.secret_by_key = d.client_id
                         OR e.prev_secret_by_key = d.client_id)
                 SELECT d.client_id,
                        CASE WHEN EXISTS (SELECT 1 FROM d d2
                                           WHERE d2.client_id = k4.created_by_key)
                             THEN 'created by %s or its descendants, revoked with it'
                             ELSE 'holding a secret issued by %s or its descendants, revoked with it' END
                   FROM d, apikeys.keys k4
                  WHERE k4.client_id = d.client_id
                    AND k4.client_id <> p_client_id
                    AND k4.revoked_at IS NULL
                  ORDER BY d.client_id
        LOOP
            n := n + apikeys_internal._revoke_key(c,
                pg_catalog.jsonb_build_object('reason', pg_catalog.format(v_why, p_client_id)),
                false, false);
        END LOOP;
    END IF;
    IF v_deleted OR v_was_revoked THEN
        RAISE NOTICE 'API key "%" was % already: % key(s) it led to revoked', p_client_id,
                     CASE WHEN v_deleted THEN 'deleted' ELSE 'revoked' END, n
            USING DETAIL = 'The keys it created, and theirs, and keys holding a secret they issued.';
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION apikeys_internal._revoke_key IS 'Internal: the one revocation every path calls; also revokes children created while it waited (or all descendants)';
REVOKE ALL ON FUNCTION apikeys_internal._revoke_key FROM PUBLIC;

-- revoke_key returns the number of keys it revoked, as revoke_all_keys
-- does: 1, and with with_descendants the descendants too (a key revoked
-- already raises 55000 unless with_descendants is given).
CREATE FUNCTION apikeys.revoke_key(client_id text, reason text DEFAULT NULL,
                                   with_descendants boolean DEFAULT false)
    RETURNS integer
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM apikeys_internal._check_text('reason', reason, 1024, false);
    RETURN apikeys_internal._revoke_key(revoke_key.client_id,
        pg_catalog.jsonb_build_object('reason', reason)
        || CASE WHEN revoke_key.with_descendants
                                     THEN '{"with_descendants": true}'::jsonb
                                     ELSE '{}'::jsonb END,
        revoke_key.with_descendants, true);
END
$$;
COMMENT ON FUNCTION apikeys.revoke_key IS 'Revokes a key forever; with_descendants: also every key it created through self-service, and theirs, and every key holding a secret they issued by rotation (also for a deleted key); returns how many keys it revoked';
REVOKE ALL ON FUNCTION apikeys.revoke_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.revoke_key TO apikeys_admin;

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
    PERFORM apikeys_internal._check_owner(revoke_all_keys.owner);
    PERFORM apikeys_internal._check_text('reason', reason, 1024, false);

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
              WHERE k.owner = revoke_all_keys.owner
                AND k.revoked_at IS NULL
              ORDER BY k.client_id
    LOOP
        n := n + apikeys_internal._revoke_key(c,
            pg_catalog.jsonb_build_object('reason', reason, 'all', true), false, false);
    END LOOP;
    PERFORM apikeys_internal._audit('revoked_all', NULL, revoke_all_keys.owner,
        pg_catalog.jsonb_build_object('reason', reason, 'count', n));
    RETURN n;
END
$$;
COMMENT ON FUNCTION apikeys.revoke_all_keys IS 'Revokes every key of an owner forever; returns how many';
REVOKE ALL ON FUNCTION apikeys.revoke_all_keys FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.revoke_all_keys TO apikeys_admin;

-- delete_key returns true: the key is gone (an unknown key raises 42704),
-- so psql shows the deletion as it shows DELETE 1.
CREATE FUNCTION apikeys.delete_key(client_id text)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k apikeys.keys := apikeys_internal._key_row(delete_key.client_id, true);
    v_up text;
BEGIN
    PERFORM apikeys_internal._op_begin('deleted', NULL);
    DELETE FROM apikeys.keys WHERE keys.client_id = k.client_id;
    DELETE FROM apikeys.credit_balances b WHERE b.client_id = k.client_id;
    PERFORM apikeys_internal._op_end();
    -- The tree revoke_key(with_descendants) walks must survive the
    -- deletion: a key that leads to other keys leaves its link behind
    -- (deleted_keys); one that leads nowhere leaves none, and a deleted
    -- ancestor it was the last link of is dropped, up the tree.
    IF apikeys_internal._leads_to_keys(k.client_id) THEN
        INSERT INTO apikeys.deleted_keys (client_id, owner, created_by_key)
        VALUES (k.client_id, k.owner, k.created_by_key);
    ELSE
        v_up := k.created_by_key;
        WHILE v_up IS NOT NULL AND NOT apikeys_internal._leads_to_keys(v_up) LOOP
            DELETE FROM apikeys.deleted_keys d
             WHERE d.client_id = v_up
            RETURNING d.created_by_key INTO v_up;
        END LOOP;
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION apikeys.delete_key IS 'Deletes a key; its audit trail stays; returns true';
REVOKE ALL ON FUNCTION apikeys.delete_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.delete_key TO apikeys_admin;

-- _leads_to_keys: does a key (or deleted key) have children, live or
-- deleted ones that lead further?
CREATE FUNCTION apikeys_internal._leads_to_keys(p_client_id text)
    RETURNS boolean
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM apikeys.keys k
                    WHERE k.created_by_key = p_client_id)
        OR EXISTS (SELECT 1 FROM apikeys.deleted_keys d
                    WHERE d.created_by_key = p_client_id)
$$;
COMMENT ON FUNCTION apikeys_internal._leads_to_keys IS 'Internal: whether a key or deleted key has children (live keys, or deleted keys that keep a link)';
REVOKE ALL ON FUNCTION apikeys_internal._leads_to_keys FROM PUBLIC;

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
                                   rate_window interval DEFAULT NULL,
                                   credits bigint DEFAULT NULL,
                                   refill_amount bigint DEFAULT NULL,
                                   refill_every interval DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k apikeys.keys;
    v_scopes apikeys.scope[];
    v_max_lifetime interval;
    v_credits bigint;
BEGIN
    IF update_key.name IS NOT NULL THEN
        PERFORM apikeys_internal._check_text('name', update_key.name, 128, true);
    END IF;
    v_scopes := apikeys_internal._check_settings(update_key.scopes, update_key.description,
                    update_key.contact_email, update_key.contact_phone,
                    update_key.allowed_cidrs, update_key.metadata,
                    update_key.db_role::text, update_key.rate_limit, update_key.rate_window);
    k := apikeys_internal._key_row(update_key.client_id);
    -- the credit settings as they will be: a refill given to a key without
    -- credits starts it full
    v_credits := COALESCE(update_key.credits, k.credits,
                          CASE WHEN update_key.refill_amount IS NOT NULL AND k.refill_amount IS NULL
                               THEN update_key.refill_amount END);
    PERFORM apikeys_internal._check_credits(v_credits,
                                   COALESCE(update_key.refill_amount, k.refill_amount),
                                   COALESCE(update_key.refill_every, k.refill_every));

    IF update_key.expires_at IS NOT NULL THEN
        IF update_key.expires_at > k.expires_at THEN
            RAISE EXCEPTION 'cannot extend the expiry of API key "%"', k.client_id
                USING ERRCODE = '22023',
                      DETAIL = pg_catalog.format('The key expires at %s; an expiry can only be brought forward.', k.expires_at),
                      HINT = 'Issue a new key for a longer lifetime.';
        END IF;
        SELECT l.max_lifetime INTO v_max_lifetime FROM apikeys_internal._owner_limits(k.owner) l;
        PERFORM apikeys_internal._check_expiry(update_key.expires_at, v_max_lifetime);
    END IF;

    -- a balance set is audited even when it equals keys.credits (the last
    -- balance set): the trigger records the live balance it replaces
    PERFORM apikeys_internal._op_begin('updated',
        CASE WHEN update_key.credits IS NOT NULL AND k.credits IS NOT NULL
             THEN pg_catalog.jsonb_build_object('balance_before',
                      apikeys_internal._credits_balance(k.client_id)) END);
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
        rate_window   = CASE WHEN update_key.rate_limit = 0 THEN NULL
                             ELSE COALESCE(update_key.rate_window, keys.rate_window,
                                           CASE WHEN update_key.rate_limit IS NOT NULL
                                                THEN '1 minute'::interval END) END,
        -- a balance given (or a first one) replaces what shared memory
        -- holds (credits_seq) and starts a new refill period; a refill rule
        -- alone changes the rule, not the balance or the period
        credits       = v_credits,
        credits_seq   = CASE WHEN v_credits IS DISTINCT FROM keys.credits OR
                                  update_key.credits IS NOT NULL
                             THEN keys.credits_seq + 1
                             ELSE keys.credits_seq END,
        credits_refilled_at = CASE WHEN update_key.credits IS NOT NULL OR keys.credits IS NULL
                                   THEN CASE WHEN v_credits IS NOT NULL THEN pg_catalog.now() END
                                   ELSE keys.credits_refilled_at END,
        refill_amount = COALESCE(update_key.refill_amount, keys.refill_amount),
        refill_every  = COALESCE(update_key.refill_every, keys.refill_every)
     WHERE keys.client_id = k.client_id;
    PERFORM apikeys_internal._op_end();
END
$$;
COMMENT ON FUNCTION apikeys.update_key IS 'Changes a key''s settings; NULL leaves a setting, '''' (or {} / 0) clears it; expiry can only be shortened; credits sets the balance outright';
REVOKE ALL ON FUNCTION apikeys.update_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.update_key TO apikeys_admin;

-- Credits (src/verify_credits.c).  With shared_preload_libraries a key's balance
-- lives in shared memory while the server runs, and apikeys.credit_balances
-- holds it as last flushed; reading the balance asks shared memory first.
-- key_list shows it (credits_remaining), and views run their functions as
-- the caller: so it reads the tables as the extension owner, and
-- apikeys_admin may run it.
CREATE FUNCTION apikeys_internal._credits_balance(client_id text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'apikeys_credits_balance'
    LANGUAGE C VOLATILE PARALLEL RESTRICTED
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION apikeys_internal._credits_balance IS 'Internal: a key''s balance now (shared memory first, refill applied), NULL for a key without credits';
REVOKE ALL ON FUNCTION apikeys_internal._credits_balance FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys_internal._credits_balance TO apikeys_admin;

-- Writes the balances spent in shared memory to apikeys.credit_balances
-- now (the background worker does it every apikeys.flush_interval); the
-- number of keys written.
CREATE FUNCTION apikeys_internal._credits_flush() RETURNS bigint
    AS 'MODULE_PATHNAME', 'apikeys_credits_flush'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._credits_flush IS 'Internal: writes the balances held in shared memory to apikeys.credit_balances (the worker does so every apikeys.flush_interval)';
REVOKE ALL ON FUNCTION apikeys_internal._credits_flush FROM PUBLIC;

-- One key's balance written (the flush, or a spend without preloading):
-- never over a balance loaded from a newer credits_seq; nothing for a key
-- deleted meanwhile.
CREATE FUNCTION apikeys_internal._credits_write(p_client_id text, p_seq bigint, p_added_seen bigint,
                                       p_balance bigint, p_refilled_at timestamptz)
    RETURNS void
    LANGUAGE sql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO apikeys.credit_balances AS b
           (client_id, credits_seq, added_seen, balance, refilled_at)
    SELECT k.client_id, p_seq, p_added_seen, p_balance, p_refilled_at
      FROM apikeys.keys k WHERE k.client_id = p_client_id
    ON CONFLICT (client_id) DO UPDATE SET
        credits_seq = EXCLUDED.credits_seq, added_seen = EXCLUDED.added_seen,
        balance = EXCLUDED.balance, refilled_at = EXCLUDED.refilled_at,
        written_at = pg_catalog.now()
     WHERE b.credits_seq <= EXCLUDED.credits_seq;
$$;
COMMENT ON FUNCTION apikeys_internal._credits_write IS 'Internal: writes one key''s live balance to apikeys.credit_balances';
REVOKE ALL ON FUNCTION apikeys_internal._credits_write FROM PUBLIC;

CREATE FUNCTION apikeys.add_credits(client_id text, amount bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k apikeys.keys;
    v_balance bigint;
BEGIN
    IF add_credits.amount IS NULL OR add_credits.amount <= 0 THEN
        RAISE EXCEPTION 'amount must be positive' USING ERRCODE = '22023',
            HINT = 'To lower a balance, set it with apikeys.update_key(client_id, credits => ...).';
    END IF;
    k := apikeys_internal._key_row(add_credits.client_id);
    IF k.credits IS NULL THEN
        RAISE EXCEPTION 'API key "%" has no credits', k.client_id USING ERRCODE = '22023',
            DETAIL = 'A key without credits has unlimited use.',
            HINT = 'Give it a balance first with apikeys.update_key(client_id, credits => ...).';
    END IF;
    -- every counter the top-up adds to (keys.credits, credits_added, the
    -- live balance after a refill) must stay a bigint: 22023, nothing written
    v_balance := apikeys_internal._credits_balance(k.client_id);
    IF add_credits.amount >
       (9223372036854775807::bigint -
        GREATEST(k.credits, k.credits_added, v_balance, k.refill_amount, 0)) THEN
        RAISE EXCEPTION 'amount is too large for the balance of API key "%"', k.client_id
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('The balance would exceed %s.', 9223372036854775807::bigint),
                  HINT = 'Give a smaller amount.';
    END IF;
    -- a top-up: the live balance (shared memory, credit_balances) gains
    -- the difference of credits_added it has not counted yet, after any
    -- refill that is due; keys.credits, the balance if nothing was spent
    -- since it was set, gains it too
    PERFORM apikeys_internal._op_begin('credits_added', NULL);
    UPDATE apikeys.keys SET
        credits = keys.credits + add_credits.amount,
        credits_added = keys.credits_added + add_credits.amount
     WHERE keys.client_id = k.client_id;
    PERFORM apikeys_internal._op_end();
    v_balance := apikeys_internal._credits_balance(k.client_id);
    PERFORM apikeys_internal._audit('credits_added', k.client_id, k.owner,
        pg_catalog.jsonb_build_object('amount', add_credits.amount, 'balance', v_balance));
    RETURN v_balance;
END
$$;
COMMENT ON FUNCTION apikeys.add_credits IS 'Adds credits to a key''s balance (after any refill due); returns the new balance';
REVOKE ALL ON FUNCTION apikeys.add_credits FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.add_credits TO apikeys_admin;

-- remove_credits gives a key unlimited use again: its balance and refill
-- rule go (update_key cannot: NULL there leaves a setting, and 0 is a
-- balance).  credits_seq moves on, so a balance still in shared memory or
-- credit_balances is never taken for the key's again (a balance given
-- later starts afresh); the stored one is deleted.  Audited as
-- credits_removed, with the balance the key had.  True when the key had
-- credits; false (nothing written) for a key without.
CREATE FUNCTION apikeys.remove_credits(client_id text)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k apikeys.keys := apikeys_internal._key_row(remove_credits.client_id);
BEGIN
    IF k.credits IS NULL THEN
        RETURN false;
    END IF;
    PERFORM apikeys_internal._op_begin('credits_removed', pg_catalog.jsonb_build_object(
        'balance', apikeys_internal._credits_balance(k.client_id)));
    UPDATE apikeys.keys SET
        credits = NULL, refill_amount = NULL, refill_every = NULL, credits_refilled_at = NULL,
        credits_seq = keys.credits_seq + 1
     WHERE keys.client_id = k.client_id;
    PERFORM apikeys_internal._op_end();
    DELETE FROM apikeys.credit_balances b WHERE b.client_id = k.client_id;
    RETURN true;
END
$$;
COMMENT ON FUNCTION apikeys.remove_credits IS 'Removes a key''s credits and refill rule (unlimited use again); audited; true if the key had credits';
REVOKE ALL ON FUNCTION apikeys.remove_credits FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.remove_credits TO apikeys_admin;

-- set_owner_policy returns what it changed: {"setting": {"old": ...,
-- "new": ...}, ...} (null: the default), '{}' when nothing changed.
CREATE FUNCTION apikeys.set_owner_policy(owner text, max_keys integer DEFAULT NULL,
                                         max_lifetime interval DEFAULT NULL,
                                         revoke_unused_after interval DEFAULT NULL,
                                         warn_before_expiry interval DEFAULT NULL,
                                         rotate_every interval DEFAULT NULL,
                                         rate_limit integer DEFAULT NULL,
                                         rate_window interval DEFAULT NULL)
    RETURNS jsonb
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
    PERFORM apikeys_internal._check_owner(set_owner_policy.owner);
    IF set_owner_policy.max_keys IS NOT NULL AND
       (set_owner_policy.max_keys < 1 OR
        set_owner_policy.max_keys > 1000000) THEN
        RAISE EXCEPTION 'max_keys must be between 1 and 1000000' USING ERRCODE = '22023';
    END IF;
    IF set_owner_policy.max_lifetime IS NOT NULL AND
       (set_owner_policy.max_lifetime < '1 minute'::interval OR
        set_owner_policy.max_lifetime > '100 years'::interval) THEN
        RAISE EXCEPTION 'max_lifetime must be between 1 minute and 100 years' USING ERRCODE = '22023';
    END IF;
    -- the lifecycle intervals: '0' turns a policy off for this owner
    IF set_owner_policy.revoke_unused_after < '0'::interval OR
       set_owner_policy.revoke_unused_after > '100 years'::interval THEN
        RAISE EXCEPTION 'revoke_unused_after must be between 0 and 100 years' USING ERRCODE = '22023',
            HINT = 'Use 0 to turn the policy off for this owner.';
    END IF;
    IF set_owner_policy.warn_before_expiry < '0'::interval OR
       set_owner_policy.warn_before_expiry > '100 years'::interval THEN
        RAISE EXCEPTION 'warn_before_expiry must be between 0 and 100 years' USING ERRCODE = '22023',
            HINT = 'Use 0 to turn the policy off for this owner.';
    END IF;
    IF set_owner_policy.rotate_every < '0'::interval OR
       set_owner_policy.rotate_every > '100 years'::interval THEN
        RAISE EXCEPTION 'rotate_every must be between 0 and 100 years' USING ERRCODE = '22023',
            HINT = 'Use 0 to turn the policy off for this owner.';
    END IF;
    IF set_owner_policy.rate_limit < 0 THEN
        RAISE EXCEPTION 'rate_limit must be positive' USING ERRCODE = '22023',
            HINT = 'Use 0 for no owner-wide limit.';
    END IF;
    IF set_owner_policy.rate_window IS NOT NULL AND
       (set_owner_policy.rate_window < '1 second'::interval OR
        set_owner_policy.rate_window > '1 day'::interval) THEN
        RAISE EXCEPTION 'rate_window must be between 1 second and 1 day' USING ERRCODE = '22023';
    END IF;

    SELECT * INTO old_p FROM apikeys.owner_policies p
     WHERE p.owner = set_owner_policy.owner FOR UPDATE;

    PERFORM apikeys_internal._op_begin('policy_changed', NULL);
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
        rate_window = CASE WHEN set_owner_policy.rate_limit = 0 THEN NULL
                           WHEN set_owner_policy.rate_limit IS NULL AND p.rate_limit IS NULL THEN NULL
                           ELSE COALESCE(set_owner_policy.rate_window, p.rate_window,
                                         EXCLUDED.rate_window) END,
        updated_at = pg_catalog.now()
    RETURNING * INTO new_p;
    PERFORM apikeys_internal._op_end();

    -- old -> new of every setting that changed
    FOREACH col IN ARRAY ARRAY['max_keys', 'max_lifetime', 'revoke_unused_after',
                               'warn_before_expiry', 'rotate_every', 'rate_limit',
                               'rate_window'] LOOP
        IF (pg_catalog.to_jsonb(old_p) -> col) IS DISTINCT FROM
           (pg_catalog.to_jsonb(new_p) -> col) OR
           col = ANY (ARRAY['max_keys', 'max_lifetime']) THEN
            det := det || pg_catalog.jsonb_build_object(col,
                pg_catalog.jsonb_build_object(
                    'old', pg_catalog.to_jsonb(old_p) -> col,
                    'new', pg_catalog.to_jsonb(new_p) -> col));
        END IF;
    END LOOP;
    PERFORM apikeys_internal._audit('policy_changed', NULL, set_owner_policy.owner, det);
    -- what changed (the audit row also names max_keys and max_lifetime
    -- when they did not)
    RETURN (SELECT COALESCE(pg_catalog.jsonb_object_agg(d.key, d.value), '{}'::jsonb)
              FROM pg_catalog.jsonb_each(det) d
             WHERE (d.value -> 'old') IS DISTINCT FROM
                   (d.value -> 'new'));
END
$$;
COMMENT ON FUNCTION apikeys.set_owner_policy IS 'Sets an owner''s key cap, maximum key lifetime, lifecycle policies and owner-wide rate limit; NULL leaves a setting, 0 turns a lifecycle policy or the rate limit off; returns the settings it changed, old and new';
REVOKE ALL ON FUNCTION apikeys.set_owner_policy FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.set_owner_policy TO apikeys_admin;

CREATE FUNCTION apikeys.purge_audit(older_than interval)
    RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    IF older_than IS NULL OR older_than < '0'::interval THEN
        RAISE EXCEPTION 'older_than must be zero or a positive interval' USING ERRCODE = '22023';
    END IF;
    PERFORM apikeys_internal._op_begin('purge', NULL);
    DELETE FROM apikeys.audit_log
     WHERE at < (pg_catalog.now() - older_than);
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM apikeys_internal._op_end();
    PERFORM apikeys_internal._audit('audit_purged', NULL, NULL,
        pg_catalog.jsonb_build_object('older_than', older_than, 'rows', n));
    RETURN n;
END
$$;
COMMENT ON FUNCTION apikeys.purge_audit IS 'Deletes audit rows older than the interval; leaves its own audit row';
REVOKE ALL ON FUNCTION apikeys.purge_audit FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.purge_audit TO apikeys_admin;

-- The client ID of the key whose live secret a token holds (current, or
-- previous within its grace: the rule verification applies), else NULL;
-- verifies as apikeys.verify(token) does.  For report_leaked.
CREATE FUNCTION apikeys_internal._live_secret_key(token text) RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_live_secret_key'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._live_secret_key IS 'Internal: the client ID of the key whose live secret (current, or previous within its grace) a token holds; for report_leaked';
REVOKE ALL ON FUNCTION apikeys_internal._live_secret_key FROM PUBLIC;

-- Anyone who finds a leaked token can kill it (GitHub's credential
-- revocation API).  It says nothing either way, so it is no oracle: it
-- revokes only a key whose live secret the token holds (a secret rotated
-- away past its grace is no longer the key's, and revokes nothing), and
-- where it could not write (a hot standby, a read-only transaction) it
-- refuses before looking at the token, the same for every input.
CREATE FUNCTION apikeys.report_leaked(token text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_client_id text;
BEGIN
    IF pg_catalog.current_setting('transaction_read_only')::boolean THEN
        RAISE EXCEPTION 'cannot report a leaked token in a read-only transaction'
            USING ERRCODE = '25006',
                  HINT = 'Call apikeys.report_leaked() on the primary, outside a read-only transaction.';
    END IF;
    v_client_id := apikeys_internal._live_secret_key(token);
    IF v_client_id IS NULL THEN
        RETURN;
    END IF;
    -- a revoked key is skipped (not strict)
    PERFORM apikeys_internal._revoke_key(v_client_id, pg_catalog.jsonb_build_object(
        'reason', 'leaked', 'reported_by', SESSION_USER), false, false);
END
$$;
COMMENT ON FUNCTION apikeys.report_leaked IS 'Anyone may report a leaked token: a valid one is revoked; says nothing either way';
REVOKE ALL ON FUNCTION apikeys.report_leaked FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.report_leaked TO PUBLIC;

-- Handoff, outbox and lifecycle policies
--
-- A handoff key is created pending, with a hash of a secret nobody has, so
-- it answers NOT_FOUND.  _handoff_start puts a claim token (by email) and a
-- 6-digit code (by SMS) in the outbox; claim_key trades the two for the real
-- secret, once.  Every audited change also lands in the outbox (trigger on
-- audit_log), and deliveries to people go through _deliver.  apikeys_delivery
-- drains the outbox with outbox_take / outbox_done / outbox_retry.

-- _setting: an apikeys.* setting as the library registered it.  Before the
-- library is loaded in a session, any role may SET apikeys.anything and
-- create a placeholder that current_setting() would return; loading the
-- library (calling one of its C functions) replaces every placeholder by
-- the registered setting, and drops a value that the role who set it was
-- not allowed to set (they are superuser-only).  So: load, then read.
CREATE FUNCTION apikeys_internal._setting(p_name text)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM apikeys_internal._preloaded();
    RETURN NULLIF(pg_catalog.current_setting(p_name, true), '');
END
$$;
COMMENT ON FUNCTION apikeys_internal._setting IS 'Internal: an apikeys.* setting as the library registered it (loads the library first, so no placeholder is read)';
REVOKE ALL ON FUNCTION apikeys_internal._setting FROM PUBLIC;

-- _setting_integer: the same for an integer setting.
CREATE FUNCTION apikeys_internal._setting_integer(p_name text, p_default integer)
    RETURNS integer
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE(apikeys_internal._setting(p_name)::integer, p_default)
$$;
COMMENT ON FUNCTION apikeys_internal._setting_integer IS 'Internal: an apikeys.* integer setting, read through _setting';
REVOKE ALL ON FUNCTION apikeys_internal._setting_integer FROM PUBLIC;

-- Audits UPDATE and DELETE on apikeys.keys, labelled by the extension
-- function that made the change or, for a direct change, direct_update /
-- direct_delete.  Hashes never reach the audit row: a new secret shows as
-- "secret": "replaced".  Inserts are audited by create_key itself, so a
-- restore (COPY into the table) does not add rows to the trail.
CREATE FUNCTION apikeys_internal._keys_audit_trigger()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ev text := apikeys_internal._op_event();
    det jsonb := COALESCE(apikeys_internal._op_detail(), '{}'::jsonb);
    o jsonb;
    n jsonb;
    changes jsonb := '{}'::jsonb;
    col text;
    hidden text[] := ARRAY['secret_hash', 'hash_alg', 'prev_secret_hash', 'prev_hash_alg',
                          'prev_expires_at', 'last_used_at', 'secret_set_at', 'claimed_at',
                          'credits_refilled_at', 'credits_seq', 'credits_added'];
BEGIN
    -- add_credits writes its own audit row (amount and balance)
    IF ev = 'credits_added' AND TG_OP = 'UPDATE' THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM apikeys_internal._audit(COALESCE(ev, 'direct_delete'), OLD.client_id, OLD.owner,
            det || pg_catalog.jsonb_build_object('name', OLD.name));
        RETURN OLD;
    END IF;

    o := pg_catalog.to_jsonb(OLD) - hidden;
    n := pg_catalog.to_jsonb(NEW) - hidden;
    -- a balance set (credits_seq moves) replaces the live balance: its old
    -- value is that balance (update_key passes it), not keys.credits, and
    -- it is a change even when keys.credits stays the same
    IF OLD.credits_seq IS DISTINCT FROM NEW.credits_seq AND
       det ? 'balance_before' THEN
        o := o || pg_catalog.jsonb_build_object('credits',
                 det -> 'balance_before');
    END IF;
    det := det - 'balance_before';
    FOR col IN SELECT pg_catalog.jsonb_object_keys(n) LOOP
        IF (o -> col) IS DISTINCT FROM (n -> col) OR
           (col = 'credits' AND
            OLD.credits_seq IS DISTINCT FROM NEW.credits_seq) THEN
            changes := changes || pg_catalog.jsonb_build_object(col,
                pg_catalog.jsonb_build_object('old', o -> col,
                                              'new', n -> col));
        END IF;
    END LOOP;
    IF OLD.secret_hash IS DISTINCT FROM NEW.secret_hash THEN
        changes := changes || '{"secret": "replaced"}'::jsonb;
    END IF;
    IF changes = '{}'::jsonb THEN
        RETURN NEW;
    END IF;
    PERFORM apikeys_internal._audit(COALESCE(ev, 'direct_update'), NEW.client_id, NEW.owner,
        det || pg_catalog.jsonb_build_object('changes', changes));
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION apikeys_internal._keys_audit_trigger IS 'Internal: audits every UPDATE and DELETE of apikeys.keys';
REVOKE ALL ON FUNCTION apikeys_internal._keys_audit_trigger FROM PUBLIC;

CREATE TRIGGER keys_audit
    AFTER UPDATE OR DELETE ON apikeys.keys
    FOR EACH ROW EXECUTE FUNCTION apikeys_internal._keys_audit_trigger();

-- Refuses UPDATE, DELETE and TRUNCATE of audit rows, except inside
-- apikeys.purge_audit, which audits itself, and except a DELETE applied by
-- a logical replication apply worker: that is the publisher's purge_audit
-- (whose own audit row replicates as an INSERT), and the publisher's copy
-- of this trigger let nothing else through.
CREATE FUNCTION apikeys_internal._audit_append_only_trigger()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND
       (apikeys_internal._op_event() IS NOT DISTINCT FROM 'purge' OR apikeys_internal._in_apply_worker()) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the API key audit log is append-only'
        USING ERRCODE = '42501',
              HINT = 'Use apikeys.purge_audit(older_than) to apply a retention period.';
END
$$;
COMMENT ON FUNCTION apikeys_internal._audit_append_only_trigger IS 'Internal: keeps apikeys.audit_log append-only';
REVOKE ALL ON FUNCTION apikeys_internal._audit_append_only_trigger FROM PUBLIC;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON apikeys.audit_log
    FOR EACH ROW EXECUTE FUNCTION apikeys_internal._audit_append_only_trigger();
-- ENABLE ALWAYS: a session with session_replication_role = replica (a
-- superuser's, a restore's, a logical replication apply worker's) must not
-- get around append-only either.  Apply workers may still apply the
-- publisher's purge (see the function above).
ALTER TABLE apikeys.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON apikeys.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION apikeys_internal._audit_append_only_trigger();
ALTER TABLE apikeys.audit_log ENABLE ALWAYS TRIGGER audit_log_no_truncate;

-- A TRUNCATE of the keys would bypass the row trigger: refuse it.
CREATE FUNCTION apikeys_internal._keys_no_truncate_trigger()
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
COMMENT ON FUNCTION apikeys_internal._keys_no_truncate_trigger IS 'Internal: refuses TRUNCATE of apikeys.keys';
REVOKE ALL ON FUNCTION apikeys_internal._keys_no_truncate_trigger FROM PUBLIC;

CREATE TRIGGER keys_no_truncate
    BEFORE TRUNCATE ON apikeys.keys
    FOR EACH STATEMENT EXECUTE FUNCTION apikeys_internal._keys_no_truncate_trigger();
-- ALWAYS as well: a replica-mode TRUNCATE would empty the table behind the
-- cache's back.  Replica-mode INSERT, UPDATE and DELETE (restore, logical
-- replication apply) stay allowed: keys_cache sees them.
ALTER TABLE apikeys.keys ENABLE ALWAYS TRIGGER keys_no_truncate;

-- Invalidates the shared verification cache when a key changes.  ENABLE
-- ALWAYS: it must also fire under session_replication_role = replica
-- (logical replication apply).
CREATE TRIGGER keys_cache
    AFTER UPDATE OR DELETE ON apikeys.keys
    FOR EACH ROW EXECUTE FUNCTION apikeys_internal._keys_cache_trigger();
ALTER TABLE apikeys.keys ENABLE ALWAYS TRIGGER keys_cache;

-- Whether the database holds imported keys (src/verify_legacy.c): every backend
-- reads it again when an imported key comes, goes or changes algorithm.
-- (No WHEN clause or column list: those would make hash_alg's type
-- unchangeable; the C function looks at hash_alg itself.)
CREATE TRIGGER keys_legacy_cache
    AFTER INSERT OR UPDATE OR DELETE ON apikeys.keys
    FOR EACH ROW EXECUTE FUNCTION apikeys_internal._keys_legacy_cache_trigger();
ALTER TABLE apikeys.keys ENABLE ALWAYS TRIGGER keys_legacy_cache;

-- An owner-wide rate limit's change reaches every connection's cache of
-- owner limits (a relcache invalidation of owner_policies, sent at commit).
-- ENABLE ALWAYS: also under logical replication apply.
CREATE TRIGGER owner_policies_limit_cache
    AFTER INSERT OR DELETE OR UPDATE OF rate_limit, rate_window ON apikeys.owner_policies
    FOR EACH ROW EXECUTE FUNCTION apikeys_internal._owner_limit_cache_trigger();
ALTER TABLE apikeys.owner_policies ENABLE ALWAYS TRIGGER owner_policies_limit_cache;

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
CREATE FUNCTION apikeys_internal._ddl_guard()
    RETURNS event_trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger_ddl_commands() c
                    WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND (c.objid = 'apikeys.keys'::pg_catalog.regclass
                           OR c.objid = 'apikeys.audit_log'::pg_catalog.regclass)) THEN
        RETURN;
    END IF;
    FOR t IN SELECT tg.tgrelid::pg_catalog.regclass AS rel, tg.tgname
               FROM pg_catalog.pg_trigger tg
              WHERE ((tg.tgrelid = 'apikeys.keys'::pg_catalog.regclass
                      AND (tg.tgname = 'keys_cache'
                           OR tg.tgname = 'keys_no_truncate'))
                  OR (tg.tgrelid = 'apikeys.audit_log'::pg_catalog.regclass
                      AND (tg.tgname = 'audit_log_append_only'
                           OR tg.tgname = 'audit_log_no_truncate')))
                AND tg.tgenabled <> 'A'
    LOOP
        -- nested ALTER TABLE: fires this again, which then finds nothing to do
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', t.rel, t.tgname);
    END LOOP;
    PERFORM apikeys_internal._cache_invalidate_all();
END
$$;
COMMENT ON FUNCTION apikeys_internal._ddl_guard IS 'Internal: after ALTER TABLE of keys or audit_log, re-enables their ALWAYS triggers and outdates the shared cache';
REVOKE ALL ON FUNCTION apikeys_internal._ddl_guard FROM PUBLIC;

CREATE EVENT TRIGGER apikeys_ddl_guard
    ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION apikeys_internal._ddl_guard();
COMMENT ON EVENT TRIGGER apikeys_ddl_guard IS 'Keeps the ALWAYS triggers of apikeys.keys and apikeys.audit_log ALWAYS, and the shared cache fresh, after ALTER TABLE';
-- event triggers, too, follow session_replication_role unless ALWAYS
ALTER EVENT TRIGGER apikeys_ddl_guard ENABLE ALWAYS;

-- Rate limits need shared memory: say so when one is set without it.
CREATE FUNCTION apikeys_internal._rate_limit_warning_trigger()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.rate_limit IS NOT NULL AND NOT apikeys_internal._preloaded() THEN
        RAISE WARNING 'rate limit of API key "%" is not enforced', NEW.client_id
            USING DETAIL = 'Rate limits are kept in shared memory.',
                  HINT = 'Add apikeys to "shared_preload_libraries" and restart the server.';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION apikeys_internal._rate_limit_warning_trigger IS 'Internal: warns that rate limits are not enforced without shared_preload_libraries';
REVOKE ALL ON FUNCTION apikeys_internal._rate_limit_warning_trigger FROM PUBLIC;

CREATE TRIGGER keys_rate_limit_warning
    AFTER INSERT OR UPDATE OF rate_limit ON apikeys.keys
    -- only a key with a limit can warn: the others skip a PL/pgSQL call
    -- (half the time of a bulk import_keys)
    FOR EACH ROW WHEN (NEW.rate_limit IS NOT NULL)
    EXECUTE FUNCTION apikeys_internal._rate_limit_warning_trigger();
