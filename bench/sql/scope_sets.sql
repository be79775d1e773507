-- bench/sql/scope_sets.sql -- keys for the scope-set comparison (apikeys_set, apikeys_inline):
-- 1000 keys holding the named set @bench_reader and 1000 holding the same two scopes written
-- inline, issued by create_key like any key, their tokens in bench.set_tokens.  Verification
-- expands a set when it loads the key (src/scopeset.c), so the cached key of either kind holds
-- the same plain scopes and the two variants should cost the same.
SELECT apikeys.define_scope_set('bench_reader', ARRAY['api:read', 'docs:read']);
SELECT apikeys.set_owner_policy('bench_sets', max_keys => 10000);
CREATE TABLE bench.set_tokens (kind text, id integer, token text NOT NULL, PRIMARY KEY (kind, id));
INSERT INTO bench.set_tokens (kind, id, token)
SELECT kind, g, (apikeys.create_key('bench_sets', kind || ' ' || g,
                   CASE kind WHEN 'set' THEN ARRAY['@bench_reader']
                             ELSE ARRAY['api:read', 'docs:read'] END)).token
  FROM unnest(ARRAY['set', 'inline']) kind, generate_series(1, 1000) g;
VACUUM (ANALYZE) bench.set_tokens;
