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
-- Derived tokens (apikeys_derived): one per inline key, holding api:read, for a day (the
-- maximum raised for this transaction only, so a long run does not outlive them); verified
-- through their key's cache entry, as the key's own token is.
BEGIN;
SET LOCAL apikeys.max_derived_ttl = '1d';
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT id, token FROM bench.set_tokens WHERE kind = 'inline' ORDER BY id LOOP
        PERFORM apikeys.authenticate(r.token);
        INSERT INTO bench.set_tokens (kind, id, token)
        VALUES ('derived', r.id, apikeys.derive_token(ARRAY['api:read'], '1 day'));
    END LOOP;
END
$$;
COMMIT;
VACUUM (ANALYZE) bench.set_tokens;
