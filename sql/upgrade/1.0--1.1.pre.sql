-- sql/upgrade/1.0--1.1.pre.sql: the first part of the update from 1.0 to 1.1,
-- written by hand (tools/build-upgrade-script.py makes apikeys--1.0--1.1.sql
-- from it, the changed functions and views of sql/install/, the .post.sql
-- part and every comment and privilege again).
--
-- Here: what must exist before the new functions are created and what
-- CREATE OR REPLACE cannot do: new tables and types, new columns (with the
-- data they need), DROP FUNCTION for a changed signature or return type,
-- DROP VIEW for a view whose columns change other than at the end, and
-- pg_extension_config_dump for a new table.  Every object schema-qualified.

-- move-internal: begin (written by tools/move-internal.py: edit the tool, not this block)
-- The internal helpers (functions named _*) move to schema apikeys_internal, out of
-- the user's way (\df apikeys.* lists the public functions only).  First
-- in this file, so that what follows names them where they are.
DO $guard$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace
                WHERE nspname OPERATOR(pg_catalog.=) 'apikeys_internal') THEN
        RAISE EXCEPTION 'schema "apikeys_internal" already exists'
            USING ERRCODE = '42P06',
                  DETAIL = 'The extension keeps its internal functions in a schema of its own; objects in a schema made before it could shadow them.',
                  HINT = 'Drop or rename schema apikeys_internal, then update the extension again.';
    END IF;
END
$guard$;
CREATE SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._scopes_cover(apikeys.scope[], apikeys.scope) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._expand_scopes(apikeys.scope[]) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._scope_sets_cache_trigger() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._mint(text) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._op_begin(text, jsonb) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._op_end() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._op_event() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._op_detail() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._outer_user() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._cidrs_outside(cidr[], cidr[]) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._interval_us(interval) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._owner_limit_cache_trigger() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._keys_cache_trigger() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._keys_legacy_cache_trigger() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._cache_invalidate_all() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._in_apply_worker() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._preloaded() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._audit(text, text, text, jsonb) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._key_row(text, boolean) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._owner_limits(text) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._check_text(text, text, integer, boolean) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._owner_max_length() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._check_owner(text) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._check_settings(text[], text, text, text, cidr[], jsonb, text, integer, interval) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._check_expiry(timestamptz, interval) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._check_key_cap(text, integer, integer) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._import_check(text, text, text[], text, text, text, text, text, text, cidr[], jsonb, text) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._import_reserve(text, integer) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._import_one(text, text, text[], text, text, text, timestamptz, text, text, text, cidr[], jsonb, text) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._legacy_token_max_length() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._revoke_key(text, jsonb, boolean, boolean) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._leads_to_keys(text) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._live_secret_key(text) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._setting(text) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._setting_integer(text, integer) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._keys_audit_trigger() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._audit_append_only_trigger() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._keys_no_truncate_trigger() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._ddl_guard() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._rate_limit_warning_trigger() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._acting_begin(text) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._acting_key() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._failing_addresses() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._unblock_address(inet) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._journal_decode(bytea) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._recent_use(text) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._usage_unproven(interval) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._usage_health() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._usage_accept_losses() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._claim_secrets() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._hash_equal(bytea, bytea) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._claim_begin(inet) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._claim_attempt(bigint, integer, timestamptz, bytea, bytea) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._claim_failed(inet) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._claim_attempts() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._setting_interval(text, interval) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._deliver(text, text, text, text, text, jsonb, bigint) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._audit_outbox_trigger() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._keys_secret_set_at_trigger() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._outbox_erase(bigint[]) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._handoff_start(apikeys.keys) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._claim_refuse() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._claim_record(bigint, bytea, integer, boolean) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._claim_locked(apikeys.claims) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._claim_count_attempt(bigint, bytea) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._outbox_housekeeping() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._policy_notice(apikeys.keys, text, timestamptz, jsonb) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._unused_proven(apikeys.keys, interval) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._count_tenant_action(text) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._acting_row(text, boolean) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._check_target(apikeys.keys, apikeys.keys, text) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._target_row(apikeys.keys, text, text) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._grant_scopes(text[]) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._check_grant(apikeys.keys, text, apikeys.scope[], timestamptz, text, integer, interval, cidr[]) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._my_keys() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._protected_table_owned_by(oid) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._protected_record(regclass, name, text, text, boolean, boolean) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._protected_forget(regclass) SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._stats() SET SCHEMA apikeys_internal;
ALTER FUNCTION apikeys._stats_gauges() SET SCHEMA apikeys_internal;
-- move-internal: end

-- The DDL guard (apikeys_ddl_guard) is off while the update runs: its
-- function calls helpers that move below before its own new body is
-- created; the post part switches it back on (ALWAYS) and empties the
-- shared cache once, as the guard would have after each ALTER TABLE.
ALTER EVENT TRIGGER apikeys_ddl_guard DISABLE;

-- keys.claimed_at: when a handoff key was last claimed (revoke_unused_after
-- counts from there); filled from the claims in the post part
ALTER TABLE apikeys.keys ADD COLUMN claimed_at timestamptz;

-- owner_policies.cap_live, cap_issued: the cap count's bound
-- (_check_key_cap); NULL until an owner's next create or import counts.
ALTER TABLE apikeys.owner_policies
    ADD COLUMN cap_live bigint,
    ADD COLUMN cap_issued bigint;

-- Prefixes per key (create_key's prefix, apikeys.allowed_prefixes): the
-- prefix a key was issued with is the head of its client ID, so existing
-- rows get the prefix their tokens carry.  The generated column is
-- computed as the table is rewritten.
ALTER TABLE apikeys.keys ADD COLUMN prefix text COLLATE "C"
    GENERATED ALWAYS AS (pg_catalog."left"(client_id, -17)) STORED;
DROP FUNCTION apikeys.create_key(text, text, text[], timestamptz, text, text, text, cidr[],
                                 jsonb, name, integer, interval, boolean);
DROP FUNCTION apikeys_internal._mint(text);
DROP FUNCTION apikeys_internal._check_grant(apikeys.keys, text, apikeys.scope[], timestamptz, text,
                                   integer, interval, cidr[]);
-- derived tokens (10_derived.sql): the two attributes the verification
-- gains (credits_remaining is the credits' own), and the signing secret's
-- table; its row is made in the .post.sql part, by the new function
ALTER TYPE apikeys.verification ADD ATTRIBUTE credits_remaining bigint;
ALTER TYPE apikeys.verification ADD ATTRIBUTE derived boolean;
CREATE TABLE apikeys.derived_signing_key (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    secret  bytea NOT NULL CHECK (pg_catalog.octet_length(secret) OPERATOR(pg_catalog.=) 32)
);
ALTER TABLE apikeys.derived_signing_key ENABLE ROW LEVEL SECURITY;

-- Credits (issue 23): the balance and refill rule of a key, the verification
-- row's credits_remaining (and derived, shared with derived tokens), the
-- cost argument of verify / verify_client, the credit arguments of
-- create_key / update_key / my_create_key / my_update_key, the credit part
-- of the no-escalation rule (_check_grant) and the new code's counter in
-- _stats (in code order, so the view goes too).
ALTER TABLE apikeys.keys
    ADD COLUMN credits bigint CHECK (credits OPERATOR(pg_catalog.>=) 0),
    ADD COLUMN refill_amount bigint CHECK (refill_amount OPERATOR(pg_catalog.>) 0),
    ADD COLUMN refill_every interval,
    ADD COLUMN credits_refilled_at timestamptz,
    ADD COLUMN credits_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN credits_added bigint NOT NULL DEFAULT 0;
DROP FUNCTION apikeys.verify(text, text, inet);
DROP FUNCTION apikeys.verify_client(text, text, text, inet);
DROP FUNCTION apikeys.update_key(text, text, text, text[], timestamptz, text, text, cidr[],
                                 jsonb, name, integer, interval);
DROP FUNCTION apikeys.my_create_key(text, text[], timestamptz, text, text, text, cidr[],
                                    jsonb, boolean);
DROP FUNCTION apikeys.my_update_key(text, text, text, text[], timestamptz, text, text,
                                    cidr[], jsonb);
DROP VIEW apikeys.stats;
DROP FUNCTION apikeys_internal._stats();
CREATE TABLE apikeys.credit_balances (
    client_id           text COLLATE "C" PRIMARY KEY,
    credits_seq         bigint NOT NULL,
    added_seen          bigint NOT NULL,
    balance             bigint NOT NULL,
    refilled_at         timestamptz,
    written_at          timestamptz NOT NULL DEFAULT pg_catalog.now()
);
SELECT pg_catalog.pg_extension_config_dump('apikeys.credit_balances', '');
ALTER TABLE apikeys.credit_balances ENABLE ROW LEVEL SECURITY;

-- The usage journal is unlogged: a flush writes no WAL (a crash empties it;
-- the proof of non-use counts the loss, see sql/install/04_usage.sql).
ALTER TABLE apikeys.usage_journal SET UNLOGGED;

-- The rolled-up usage is packed per hour and bucket of client IDs
-- (apikeys.usage_packed); apikeys.usage becomes the view that unpacks it.
-- The 1.0 table moves aside until post.sql has packed its rows.
ALTER TABLE apikeys.usage RENAME TO usage_1_0;
CREATE TABLE apikeys.usage_packed (
    hour        timestamptz NOT NULL,
    bucket      text COLLATE "C" NOT NULL,
    keys        integer NOT NULL,
    data        bytea NOT NULL,
    CONSTRAINT usage_packed_keys_check CHECK (keys OPERATOR(pg_catalog.>) 0)
);
ALTER TABLE apikeys.usage_packed ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX usage_packed_bucket_hour_idx ON apikeys.usage_packed (bucket, hour);
CREATE INDEX usage_packed_hour_idx ON apikeys.usage_packed (hour);   -- the newest hours, for cache_prewarm()
SELECT pg_catalog.pg_extension_config_dump('apikeys.usage_packed', '');
ALTER TABLE apikeys.usage_packed ENABLE ROW LEVEL SECURITY;
-- import_keys reads its source as the caller and hands the rows to
-- _import_rows as an array of this type
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

-- Admin functions that returned void now return what psql should show
-- (docs/reference.md): a new return type needs the old function dropped.
-- IF EXISTS: another change of the same function may have dropped it first.
DROP FUNCTION IF EXISTS apikeys.disable_key(text, text);
DROP FUNCTION IF EXISTS apikeys.enable_key(text);
DROP FUNCTION IF EXISTS apikeys.revoke_key(text, text, boolean);
DROP FUNCTION IF EXISTS apikeys.delete_key(text);
DROP FUNCTION IF EXISTS apikeys.set_owner_policy(text, integer, interval, interval, interval, interval, integer, interval);
DROP FUNCTION IF EXISTS apikeys.define_scope_set(text, text[], text);
DROP FUNCTION IF EXISTS apikeys.protect(regclass, name, text, text, boolean);
DROP FUNCTION IF EXISTS apikeys.create_field_view(text, regclass, text, name[]);
