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
