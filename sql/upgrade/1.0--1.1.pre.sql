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

-- keys.claimed_at: when a handoff key was last claimed (revoke_unused_after
-- counts from there); filled from the claims in the post part
ALTER TABLE apikeys.keys ADD COLUMN claimed_at timestamptz;

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
