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
