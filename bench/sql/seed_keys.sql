-- bench/sql/seed_keys.sql -- the seed-shaped population (apikeys_seed): :nseed keys shaped like
-- the keys real products issue, with ids :first + 1 .. :first + :nseed (so their client IDs and
-- secrets come from the same functions as the default population's, and never collide with
-- them).  Each key has a UUID owner, 8 to 15 scopes of which every fourth carries a field list
-- (api:read always among them), one allowed network (10.0.0.0/8, so the variant passes
-- client_ip), a database role and a little metadata: about 500 bytes of variable data, where a
-- default-population key has about 60.  Loaded in bulk like load.sql (superuser, no row
-- triggers); their tokens go into bench.seed_tokens (id 1 .. :nseed) by bench/run.sh.
SET synchronous_commit = off;
SET session_replication_role = replica;
DO $$ BEGIN CREATE ROLE bench_app NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
INSERT INTO apikeys.keys (client_id, owner, name, scopes, secret_hash, hash_alg, expires_at,
                          allowed_cidrs, metadata, db_role, last_used_at)
SELECT baseline.client_id_for(:first + g),
       md5(g::text || '#owner')::uuid::text,
       'seed integration ' || g,
       (SELECT array_agg(CASE WHEN i = 1 THEN 'api:read'
                              WHEN i % 4 = 0 THEN (ARRAY['invoices', 'payments', 'cards', 'employees', 'teams',
                                                         'budgets', 'suppliers', 'receipts'])[1 + (g + i) % 8]
                                                  || ':read(id,name,amount,currency)'
                              ELSE (ARRAY['invoices', 'payments', 'cards', 'employees', 'teams', 'budgets',
                                          'suppliers', 'receipts', 'reports', 'webhooks', 'cost_centers',
                                          'expenses', 'transfers', 'accounts', 'users'])[1 + (g + i) % 15]
                                   || ':' || (ARRAY['read', 'create', 'update'])[1 + i % 3] END
                         ORDER BY i)
          FROM generate_series(1, 8 + g % 8) i)::apikeys.scope[],
       public.digest(bench.secret_for(:first + g), 'sha256'),
       's',
       now() + interval '365 days',
       ARRAY['10.0.0.0/8']::cidr[],
       jsonb_build_object('customer_id', g, 'plan', 'business', 'region', 'eu-west-1'),
       'bench_app',
       now() - (g % 86400) * interval '1 second'
FROM generate_series(1, :nseed) g;
CREATE TABLE bench.seed_tokens (id integer PRIMARY KEY, token text NOT NULL);
