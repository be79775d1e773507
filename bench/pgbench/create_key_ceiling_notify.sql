-- create_key_ceiling plus a NOTIFY in the same transaction: create_key audits, and every
-- audited change sends NOTIFY apikeys_events; PostgreSQL holds a cluster-wide lock from a
-- notifying transaction's pre-commit to the end of its commit (WAL flush included), so
-- the commits of notifying transactions never overlap (no group commit).
BEGIN;
INSERT INTO bench.create_ceiling (client_id, owner, name, scopes, secret_hash)
VALUES ('ak_' || md5(random()::text), 'bench_create_' || (:client_id)::text, 'bench key',
        ARRAY[E'api\x3aread'], sha256(random()::text::bytea))
RETURNING client_id;
SELECT pg_notify('bench_create', 'x');
COMMIT;
