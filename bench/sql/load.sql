-- bench/sql/load.sql -- one loader session's share of the keys (ids with id % :jobs = :job).
-- psql variables: n (keys), job, jobs, brows (keys 1..brows get a cost-4 bcrypt hash),
-- placeholder (one shared cost-4 hash for the other keys: same storage, never verifies).
--
-- The same deterministic keys go into apikeys.keys (bulk INSERT as superuser: secret_hash is
-- SHA-256 of the 43-character secret, hash_alg 's', one scope, api:read) and into the baseline table
-- (loaded as the baseline harness it was ported from loads it, minus its cost-10 bcrypt keys).
-- Both: id % 1000 = 7 revoked, 8 expired, 9 disabled (0.3 % of keys fail verification), and
-- every key has been used in the last day (last_used_at set, as a used key is the common case).
SET synchronous_commit = off;  -- loader only; the benchmark runs with the default (on)
-- loader only: no row triggers (an AFTER INSERT trigger would queue a million events for
-- nothing; no key is changed or deleted here, which is what the audit and cache triggers watch)
SET session_replication_role = replica;

INSERT INTO apikeys.keys (client_id, owner, name, scopes, secret_hash, hash_alg, expires_at,
                          revoked_at, disabled_at, last_used_at)
SELECT baseline.client_id_for(g),
       'org_' || (g % 10000),
       'bench',
       '{api:read}'::apikeys.scope[],
       public.digest(bench.secret_for(g), 'sha256'),
       's',
       CASE WHEN g % 1000 = 8 THEN now() - interval '1 day' ELSE now() + interval '365 days' END,
       CASE WHEN g % 1000 = 7 THEN now() - interval '1 hour' END,
       CASE WHEN g % 1000 = 9 THEN now() - interval '1 hour' END,
       now() - (g % 86400) * interval '1 second'
FROM generate_series(1, :n) g
WHERE g % :jobs = :job;

INSERT INTO baseline.keys (id, client_id, prefix, secret_sha256, secret_bcrypt, owner, scopes,
                           expires_at, revoked_at, disabled, last_used_at)
SELECT g,
       baseline.client_id_for(g),
       left(s.secret, 6),
       public.digest(s.secret, 'sha256'),
       CASE WHEN g <= :brows THEN public.crypt(s.secret, public.gen_salt('bf', 4)) ELSE :'placeholder' END,
       'org_' || (g % 10000),
       CASE WHEN g % 10 = 0 THEN ARRAY['read'] ELSE ARRAY['read', 'write'] END,
       CASE WHEN g % 1000 = 8 THEN now() - interval '1 day'
            WHEN g % 2 = 0 THEN now() + interval '365 days' END,
       CASE WHEN g % 1000 = 7 THEN now() - interval '1 hour' END,
       g % 1000 = 9,
       now() - (g % 86400) * interval '1 second'
FROM (SELECT g, baseline.secret_for(g) AS secret
      FROM generate_series(1, :n) g WHERE g % :jobs = :job OFFSET 0) s;
