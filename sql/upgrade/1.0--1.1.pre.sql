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
