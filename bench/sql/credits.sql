-- bench/sql/credits.sql -- keys for the credits variant (apikeys_credits): 1000 keys holding the
-- same two scopes as apikeys_inline's and a balance no run can use up, issued by create_key, their
-- tokens in bench.set_tokens (kind 'credits').  Preloaded, a verification takes its credit in
-- shared memory (src/verify_credits.c) and writes nothing; the worker writes the balances at its flush.
SELECT apikeys.set_owner_policy('bench_credits', max_keys => 10000);
INSERT INTO bench.set_tokens (kind, id, token)
SELECT 'credits', g, (apikeys.create_key('bench_credits', 'credits ' || g,
                        ARRAY['api:read', 'docs:read'], credits => 1000000000000)).token
  FROM generate_series(1, 1000) g;
VACUUM (ANALYZE) bench.set_tokens;
