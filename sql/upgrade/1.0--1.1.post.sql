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

-- an imported key rotated with a grace period: its legacy token works
-- until prev_expires_at, found by the previous hash (src/legacy.c)
CREATE INDEX keys_legacy_prev_hash_idx ON apikeys.keys (prev_secret_hash)
    WHERE prev_hash_alg OPERATOR(pg_catalog.=) 'l'::"char";
