-- create_key's same-run ceiling: one INSERT of an equivalent row per transaction (a text
-- primary key, the owner, name, scopes and a SHA-256 of random bytes; an owner index), no
-- checks, no audit.  E'api\x3aread' as in create_key.sql.
INSERT INTO bench.create_ceiling (client_id, owner, name, scopes, secret_hash)
VALUES ('ak_' || md5(random()::text), 'bench_create_' || (:client_id)::text, 'bench key',
        ARRAY[E'api\x3aread'], sha256(random()::text::bytea))
RETURNING client_id;
