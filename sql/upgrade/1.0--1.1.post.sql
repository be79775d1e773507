-- sql/upgrade/1.0--1.1.post.sql: the part of the update from 1.0 to 1.1
-- that needs the new functions, written by hand: new triggers, policies,
-- indexes, operators, ALTER ... that refer to new functions, and data
-- migrations that call them.  Every object schema-qualified.

-- keys.claimed_at from the claims still kept (the audit trigger of 1.1
-- ignores the column, so this writes no audit rows)
UPDATE apikeys.keys k SET claimed_at = c.claimed_at
  FROM (SELECT cl.client_id, pg_catalog.max(cl.claimed_at) AS claimed_at
          FROM apikeys.claims cl WHERE cl.claimed_at IS NOT NULL GROUP BY cl.client_id) c
 WHERE k.client_id OPERATOR(pg_catalog.=) c.client_id;

-- key_list gained a last column (prefix); my_keys, whose text is unchanged,
-- picks it up when its SELECT * is expanded again.
CREATE OR REPLACE VIEW apikeys.my_keys AS
SELECT * FROM apikeys_internal._my_keys();
-- derived tokens: the trigger that makes backends read the signing secret
-- again, and the secret of this database
CREATE TRIGGER derived_signing_key_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikeys.derived_signing_key
    FOR EACH STATEMENT EXECUTE FUNCTION apikeys_internal._signing_key_changed();
ALTER TABLE apikeys.derived_signing_key ENABLE ALWAYS TRIGGER derived_signing_key_changed;
INSERT INTO apikeys.derived_signing_key (secret) VALUES (apikeys_internal._new_signing_secret());

-- The 1.0 usage rows, packed per hour and bucket (the last two characters
-- of the client ID, as the rollup packs them: src/usage_journal.c), then the 1.0
-- table dropped.
INSERT INTO apikeys.usage_packed (hour, bucket, keys, data)
SELECT u.hour, pg_catalog.right(u.client_id, 2) COLLATE "C", pg_catalog.count(DISTINCT u.client_id),
       apikeys_internal._usage_pack(pg_catalog.array_agg(u.client_id), pg_catalog.array_agg(u.code),
                           pg_catalog.array_agg(u.count), pg_catalog.array_agg(u.last_used_at))
  FROM apikeys.usage_1_0 u
 GROUP BY 1, 2;
ALTER EXTENSION apikeys DROP TABLE apikeys.usage_1_0;   -- and from pg_dump's configuration
DROP TABLE apikeys.usage_1_0;
-- an imported key rotated with a grace period: its legacy token works
-- until prev_expires_at, found by the previous hash (src/verify_legacy.c)
CREATE INDEX keys_legacy_prev_hash_idx ON apikeys.keys (prev_secret_hash)
    WHERE prev_hash_alg OPERATOR(pg_catalog.=) 'l'::"char";

-- the DDL guard back on (the pre part switched it off), and the shared
-- cache emptied once for the tables the update altered
ALTER EVENT TRIGGER apikeys_ddl_guard ENABLE ALWAYS;
SELECT apikeys_internal._cache_invalidate_all();
