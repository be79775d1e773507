-- sql/upgrade/1.0--1.1.post.sql: the part of the update from 1.0 to 1.1
-- that needs the new functions, written by hand: new triggers, policies,
-- indexes, operators, ALTER ... that refer to new functions, and data
-- migrations that call them.  Every object schema-qualified.

-- The 1.0 usage rows, packed per hour and bucket (the last two characters
-- of the client ID, as the rollup packs them: src/journal.c), then the 1.0
-- table dropped.
INSERT INTO apikeys.usage_packed (hour, bucket, keys, data)
SELECT u.hour, pg_catalog.right(u.client_id, 2) COLLATE "C", pg_catalog.count(DISTINCT u.client_id),
       apikeys._usage_pack(pg_catalog.array_agg(u.client_id), pg_catalog.array_agg(u.code),
                           pg_catalog.array_agg(u.count), pg_catalog.array_agg(u.last_used_at))
  FROM apikeys.usage_1_0 u
 GROUP BY 1, 2;
ALTER EXTENSION apikeys DROP TABLE apikeys.usage_1_0;   -- and from pg_dump's configuration
DROP TABLE apikeys.usage_1_0;
