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
