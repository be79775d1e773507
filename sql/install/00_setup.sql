-- sql/install/00_setup.sql: the schema guard, roles and schema privileges
--
-- A section of the install script: make concatenates sql/install/*.sql
-- in name order into apikeys--<version>.sql.  Each object is followed by
-- its comment, privileges and settings.

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION apikeys" to load this file. \quit

-- Schema guard
--
-- CREATE EXTENSION reuses an existing schema "apikeys".  Whoever owns that
-- schema can later rename it and put their own apikeys.* functions in its
-- place, which the SECURITY DEFINER functions below would then run as the
-- extension owner; anything already in it could shadow our objects.  So
-- refuse a schema that a non-superuser owns, that someone else may create
-- objects in, or that is not empty.  (The schema CREATE EXTENSION makes
-- itself is owned by the installing superuser and empty.)
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

-- Roles
--
-- apikeys_admin     issues and manages keys, reads key_list and audit_log.
-- apikeys_verifier  verifies keys and uses the context functions; nothing else.
-- apikeys_delivery  drains the outbox (reads it, takes, marks done or retry).
-- Both are NOLOGIN: grant them to login roles.  Created only when missing, so
-- re-creating the extension keeps existing grants.
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

-- Schema privileges
--
-- PUBLIC may look into the schema (RLS policies on user tables call the
-- context functions) but may execute nothing it is not granted below.
REVOKE ALL ON SCHEMA apikeys FROM PUBLIC;

GRANT USAGE ON SCHEMA apikeys TO PUBLIC;

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
-- _recent_use, _expand_scopes, _my_keys, _credits_balance).
COMMENT ON SCHEMA apikeys IS 'API keys: issuance, hashed verification, scopes and row-level security';

-- Schema apikeys_internal: the internal helpers (functions named _*), out of the
-- user's way, so that \df apikeys.* lists the public functions only.  Not
-- for direct use: they may change in any release.  CREATE SCHEMA fails on
-- a schema that exists, and the guard says why: a schema made before the
-- extension could hold functions that shadow its own.  USAGE for PUBLIC,
-- as for apikeys: protect() and unprotect() run as the calling table owner
-- (any role) and call _protected_record and _protected_forget; EXECUTE is
-- what guards each function (revoked from PUBLIC, granted per function).
DO $guard$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace
                WHERE nspname OPERATOR(pg_catalog.=) 'apikeys_internal') THEN
        RAISE EXCEPTION 'schema "apikeys_internal" already exists'
            USING ERRCODE = '42P06',
                  DETAIL = 'The extension keeps its internal functions in a schema of its own; objects in a schema made before it could shadow them.',
                  HINT = 'Drop or rename schema apikeys_internal, then create the extension again.';
    END IF;
END
$guard$;
CREATE SCHEMA apikeys_internal;
REVOKE ALL ON SCHEMA apikeys_internal FROM PUBLIC;
GRANT USAGE ON SCHEMA apikeys_internal TO PUBLIC;
COMMENT ON SCHEMA apikeys_internal IS 'Internal helpers of the apikeys extension: not for direct use, they may change in any release';
