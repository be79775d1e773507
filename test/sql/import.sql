\i test/setup.sql
--
-- import: keys an adopter already issued, imported from the SHA-256 of
-- their token (hex or base64) or from the token itself; the legacy token
-- then verifies as it is through verify, authenticate and pre_request.
--
-- Without apikeys preloaded the output differs: expected/import_1.out.
SELECT apikeys_internal._preloaded() AS preloaded;
\set VERBOSITY terse

-- Before any import: junk is MALFORMED, with no lookup.
SELECT code FROM apikeys.verify('sk_legacy_0001');
SELECT count(*) AS imported FROM apikeys.keys WHERE hash_alg = 'l';

SET ROLE regress_admin;
-- Exactly one of secret_hash and token.
SELECT apikeys.import_key('legacy_co', 'none', '{}');
SELECT apikeys.import_key('legacy_co', 'both', '{}', secret_hash => repeat('0', 64), token => 'x');
-- Bad hashes and formats; none leaves anything behind.
SELECT apikeys.import_key('legacy_co', 'short', '{}', secret_hash => 'abcd');
SELECT apikeys.import_key('legacy_co', 'nothex', '{}', secret_hash => repeat('z', 64));
SELECT apikeys.import_key('legacy_co', 'badb64', '{}', secret_hash => '!!!', hash_format => 'sha256_base64');
SELECT apikeys.import_key('legacy_co', 'fmt', '{}', secret_hash => repeat('0', 64), hash_format => 'md5');
SELECT apikeys.import_key('legacy_co', 'empty', '{}', token => '');
SELECT apikeys.import_key('legacy_co', 'huge', '{}', token => repeat('x', 513));
-- create_key's checks: owner, scopes, expiry, settings, db_role.
SELECT apikeys.import_key('', 'noowner', '{}', token => 'sk_legacy_a');
SELECT apikeys.import_key('legacy_co', 'badscope', '{"Not A Scope"}', token => 'sk_legacy_a');
SELECT apikeys.import_key('legacy_co', 'past', '{}', token => 'sk_legacy_a', expires_at => now() - interval '1 day');
SELECT apikeys.import_key('legacy_co', 'far', '{}', token => 'sk_legacy_a', expires_at => now() + interval '100 years');
SELECT apikeys.import_key('legacy_co', 'mail', '{}', token => 'sk_legacy_a', contact_email => 'nope');
SELECT apikeys.import_key('legacy_co', 'role', '{}', token => 'sk_legacy_a', db_role => 'no_such_role_x');
-- An apikeys token is not a legacy token.
SELECT (apikeys.create_key('legacy_co', 'native', '{}')).token AS native_tok \gset
SELECT apikeys.import_key('legacy_co', 'native', '{}', token => :'native_tok');
-- ... nor a string with apikeys' prefix that is not a valid token (a typo
-- of a native token would become another key): 22023, import its hash if
-- another system really issued it (probe round 2, #02b)
SELECT apikeys.import_key('legacy_co', 'typo', '{}',
                          token => overlay(:'native_tok' placing
                                           CASE WHEN right(:'native_tok', 1) = 'A' THEN 'B' ELSE 'A' END
                                           from length(:'native_tok')));
SELECT apikeys.import_key('legacy_co', 'prefixed', '{}', token => 'ak_live_0123456789');
RESET ROLE;
SET apikeys.token_prefix = 'zq';
SET ROLE regress_admin;
SELECT apikeys.import_key('legacy_co', 'prefixed', '{}', token => 'zq_anything');
RESET ROLE;
RESET apikeys.token_prefix;
SET ROLE regress_admin;
RESET ROLE;
SELECT count(*) AS imported_after_errors FROM apikeys.keys WHERE hash_alg = 'l';
SET ROLE regress_admin;

-- Three ways in: the token, its hex hash, its base64 hash.
SELECT apikeys.import_key('legacy_co', 'from token', '{orders:read}', token => 'sk_live_Tok3nAAA',
                          metadata => '{"plan": "gold"}') AS cid_tok \gset
SELECT apikeys.import_key('legacy_co', 'from hex', '{orders:*}',
                          secret_hash => encode(sha256('sk_live_HexBBB'::bytea), 'hex'),
                          allowed_cidrs => '{192.0.2.0/24}') AS cid_hex \gset
SELECT apikeys.import_key('legacy_co', 'from base64', '{orders:read}',
                          secret_hash => encode(sha256('legacy-CCC.with/odd+chars='::bytea), 'base64'),
                          hash_format => 'sha256_base64') AS cid_b64 \gset
-- the same legacy token twice: refused, without naming the other key
SELECT apikeys.import_key('other_co', 'again', '{}',
                          secret_hash => upper(encode(sha256('sk_live_Tok3nAAA'::bytea), 'hex')));
SELECT apikeys.import_key('other_co', 'again', '{}', token => 'sk_live_Tok3nAAA');
RESET ROLE;

-- The token is stored hashed, never in clear; client IDs are ours.
SELECT name, hash_alg, secret_hash = sha256('sk_live_Tok3nAAA'::bytea) AS hashed,
       apikeys.token_client_id(client_id || '_x') IS NULL AS plain_client_id
  FROM apikeys.keys WHERE client_id = :'cid_tok';
SELECT count(*) AS token_in_clear FROM apikeys.keys k
 WHERE k::text LIKE '%Tok3nAAA%';
SELECT count(*) AS token_in_audit FROM apikeys.audit_log a WHERE a::text LIKE '%Tok3nAAA%';
SELECT event, client_id = :'cid_tok' AS same, owner, detail->>'from' AS "from", detail->'scopes' AS scopes
  FROM apikeys.audit_log WHERE client_id IN (:'cid_tok', :'cid_hex', :'cid_b64') ORDER BY id;

SET ROLE regress_verifier;
-- verify: the legacy tokens as they are, with the imported key's settings.
SELECT valid, code, client_id = :'cid_tok' AS same, owner, scopes, name, metadata
  FROM apikeys.verify('sk_live_Tok3nAAA', 'orders:read');
SELECT code FROM apikeys.verify('sk_live_Tok3nAAA', 'orders:write');
SELECT code, client_id = :'cid_hex' AS same FROM apikeys.verify('sk_live_HexBBB', 'orders:write', '192.0.2.7');
SELECT code FROM apikeys.verify('sk_live_HexBBB', 'orders:write', '198.51.100.1');
SELECT code, client_id = :'cid_b64' AS same FROM apikeys.verify('legacy-CCC.with/odd+chars=');
-- with imported keys, junk is looked up and answers NOT_FOUND; near misses too
SELECT left(t, 20) AS t, length(t), (apikeys.verify(t)).code
  FROM unnest(ARRAY['sk_legacy_0001', 'sk_live_Tok3nAAB', 'sk_live_Tok3nAA', ' sk_live_Tok3nAAA',
                    '', repeat('x', 513)]) t;
SELECT code FROM apikeys.verify(NULL);
-- verify_client has no legacy form: the client ID with the legacy token fails
SELECT code FROM apikeys.verify_client(:'cid_tok', 'sk_live_Tok3nAAA');
-- ... even a legacy token shaped like an apikeys secret (43 base62
-- characters): an imported key's hash matches only a legacy token as a whole
RESET ROLE;
SET ROLE regress_admin;
SELECT apikeys.import_key('legacy_co', 'secret-shaped', '{}', token => repeat('Ab1', 14) || 'Z') AS cid_shaped \gset
RESET ROLE;
SET ROLE regress_verifier;
SELECT code FROM apikeys.verify(repeat('Ab1', 14) || 'Z');
SELECT code FROM apikeys.verify_client(:'cid_shaped', repeat('Ab1', 14) || 'Z');

-- authenticate: the context is the imported key's.
BEGIN;
SELECT code, client_id = :'cid_tok' AS same FROM apikeys.authenticate('sk_live_Tok3nAAA', 'orders:read');
SELECT apikeys.current_client_id() = :'cid_tok' AS ctx, apikeys.current_owner(), apikeys.current_scopes();
COMMIT;
BEGIN;
SELECT apikeys.authenticate('sk_live_Tok3nAAB');
ROLLBACK;

-- pre_request: the legacy token in x-api-key.
BEGIN;
SELECT set_config('request.headers', json_build_object('x-api-key', 'sk_live_Tok3nAAA')::text, true) IS NOT NULL AS headers;
SELECT apikeys.pre_request();
SELECT apikeys.current_client_id() = :'cid_tok' AS ctx, apikeys.current_owner();
COMMIT;
RESET ROLE;

-- Disable, enable, revoke: as for any key, at once.
SET ROLE regress_admin;
SELECT apikeys.disable_key(:'cid_hex', 'testing');
SELECT code FROM apikeys.verify('sk_live_HexBBB', NULL, '192.0.2.7');
SELECT apikeys.enable_key(:'cid_hex');
SELECT code FROM apikeys.verify('sk_live_HexBBB', NULL, '192.0.2.7');
SELECT apikeys.revoke_key(:'cid_hex', 'testing');
SELECT code FROM apikeys.verify('sk_live_HexBBB', NULL, '192.0.2.7');
-- Rotation issues an apikeys token; the legacy token stops at once.
SELECT (apikeys.rotate_key(:'cid_b64')).token AS new_tok \gset
SELECT code FROM apikeys.verify('legacy-CCC.with/odd+chars=');
SELECT code, client_id = :'cid_b64' AS same FROM apikeys.verify(:'new_tok');
RESET ROLE;
-- Expiry (moved into the past directly).
UPDATE apikeys.keys SET expires_at = now() - interval '1 second' WHERE client_id = :'cid_tok';
SELECT code FROM apikeys.verify('sk_live_Tok3nAAA');
SELECT event, detail->>'reason' AS reason FROM apikeys.audit_log
 WHERE client_id IN (:'cid_tok', :'cid_hex', :'cid_b64') ORDER BY id;

-- Once no imported key is left, junk is MALFORMED again (no lookup).
DELETE FROM apikeys.keys WHERE hash_alg = 'l';
SELECT code FROM apikeys.verify('sk_legacy_0001');

-- rotate_key with a grace period on an imported key: the legacy token
-- works until the grace ends, like a native key's previous secret, even
-- when no key holds a legacy hash as its current one (probe round 2, #44)
SET ROLE regress_admin;
SELECT apikeys.import_key('legacy_co', 'graced', '{orders:read}', token => 'sk_grace_0001') AS cid_grace \gset
SELECT (apikeys.rotate_key(:'cid_grace', grace => '1 hour')).token AS grace_new \gset
SELECT (apikeys.create_key('legacy_co', 'graced native', '{orders:read}')).token AS native_old \gset
SELECT (apikeys.rotate_key(apikeys.token_client_id(:'native_old'), grace => '1 hour')).token AS native_new \gset
RESET ROLE;
SELECT count(*) AS current_legacy_hashes FROM apikeys.keys WHERE hash_alg = 'l';
SET ROLE regress_verifier;
SELECT code, client_id = :'cid_grace' AS same FROM apikeys.verify('sk_grace_0001', 'orders:read');
SELECT code, client_id = :'cid_grace' AS same FROM apikeys.verify(:'grace_new', 'orders:read');
SELECT code FROM apikeys.verify('sk_grace_0002');
RESET ROLE;
SET ROLE regress_admin;
SELECT name, old_secret_valid_until > now() AS in_grace FROM apikeys.key_list
 WHERE client_id IN (:'cid_grace', apikeys.token_client_id(:'native_old')) ORDER BY name;
RESET ROLE;
-- the grace over: the old secret answers as a native key's does
UPDATE apikeys.keys SET prev_expires_at = now() - interval '1 second'
 WHERE client_id IN (:'cid_grace', apikeys.token_client_id(:'native_old'));
SET ROLE regress_verifier;
SELECT (apikeys.verify('sk_grace_0001')).code AS legacy_old, (apikeys.verify(:'native_old')).code AS native_old,
       (apikeys.verify(:'grace_new')).code AS legacy_new;
RESET ROLE;
-- rotated again without grace: the legacy hash is gone, junk MALFORMED again
SET ROLE regress_admin;
SELECT apikeys.rotate_key(:'cid_grace') IS NOT NULL AS rotated;
RESET ROLE;
SELECT (apikeys.verify('sk_grace_0001')).code AS legacy_old, (apikeys.verify('sk_legacy_0001')).code AS junk;

-- The cap applies as in create_key.
SELECT apikeys.set_owner_policy('capped_co', max_keys => 1);
SET ROLE regress_admin;
SELECT apikeys.import_key('capped_co', 'one', '{}', token => 'capped-1') IS NOT NULL AS imported;
SELECT apikeys.import_key('capped_co', 'two', '{}', token => 'capped-2');
RESET ROLE;

--
-- Migration from a typical hand-rolled table (docs/pending/credits23.md).
--
CREATE TABLE public.api_keys (
    id          serial PRIMARY KEY,
    customer    text NOT NULL,
    label       text,
    key_sha256  text NOT NULL,            -- hex SHA-256 of the key
    permissions text[] NOT NULL DEFAULT '{}',
    revoked     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO public.api_keys (customer, label, key_sha256, permissions, revoked)
SELECT 'cust' || (i % 3), 'key ' || i, encode(sha256(('oldkey-' || i)::bytea), 'hex'),
       ARRAY['orders:read'], i = 5
  FROM generate_series(1, 6) i;
-- the view maps its columns onto import_key's argument names
CREATE VIEW public.api_keys_import AS
SELECT customer AS owner, coalesce(label, 'imported ' || id) AS name, permissions AS scopes,
       key_sha256 AS secret_hash, jsonb_build_object('legacy_id', id) AS metadata
  FROM public.api_keys WHERE NOT revoked;
GRANT SELECT ON public.api_keys_import TO regress_admin;
SET ROLE regress_admin;
SELECT apikeys.import_keys('public.api_keys_import');
-- a table the caller cannot read, or without the needed columns
SELECT apikeys.import_keys('public.api_keys');
RESET ROLE;
CREATE TABLE public.bad_import (owner text, name text);
GRANT SELECT ON public.bad_import TO regress_admin;
SET ROLE regress_admin;
SELECT apikeys.import_keys('public.bad_import');
RESET ROLE;
-- The source is read with the caller's rights (probe round 2, #13, #30).
-- A view whose column calls the caller's function: the function runs as
-- the caller, so it cannot make the caller a superuser.
SET ROLE regress_admin;
CREATE FUNCTION pg_temp.escalate() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        EXECUTE 'ALTER ROLE regress_admin SUPERUSER';
    EXCEPTION WHEN insufficient_privilege THEN
        NULL;
    END;
    RETURN 'definer-probe-' || current_user;
END $$;
CREATE TEMP VIEW evil_import AS
SELECT 'definer_co'::text AS owner, 'n'::text AS name, '{a:read}'::text[] AS scopes,
       pg_temp.escalate() AS token;
SELECT apikeys.import_keys('evil_import');
RESET ROLE;
SELECT rolsuper AS admin_became_superuser FROM pg_roles WHERE rolname = 'regress_admin';
ALTER ROLE regress_admin NOSUPERUSER;
SELECT (apikeys.verify('definer-probe-regress_admin')).code AS ran_as_caller;
-- Row-level security on the source: only the rows the caller sees.
CREATE TABLE public.rls_keys (owner text, name text, scopes text[], token text, description text,
                              tenant_admin name);
INSERT INTO public.rls_keys VALUES
    ('rls_co', 'visible', '{a:read}', 'rls-visible-0001', 'seen', 'regress_admin'),
    ('rls_co', 'hidden', '{a:read}', 'rls-hidden-0001', 'CONFIDENTIAL', 'someone_else');
ALTER TABLE public.rls_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY mine ON public.rls_keys USING (tenant_admin = current_user);
GRANT SELECT ON public.rls_keys TO regress_admin;
SET ROLE regress_admin;
SELECT count(*) AS caller_sees FROM public.rls_keys;
SELECT apikeys.import_keys('public.rls_keys');
RESET ROLE;
SELECT name, description FROM apikeys.key_list WHERE owner = 'rls_co' ORDER BY name;
SELECT (apikeys.verify('rls-visible-0001')).code AS visible, (apikeys.verify('rls-hidden-0001')).code AS hidden;
-- a column the caller may not read: refused, nothing imported
REVOKE SELECT ON public.rls_keys FROM regress_admin;
GRANT SELECT (owner, name, scopes, description) ON public.rls_keys TO regress_admin;
SET ROLE regress_admin;
SELECT apikeys.import_keys('public.rls_keys');
-- the inner function takes only what import_keys read: admins only
RESET ROLE;
SELECT has_function_privilege('regress_verifier', 'apikeys_internal._import_rows(regclass, apikeys._import_row[])', 'EXECUTE') AS verifier_may,
       has_function_privilege('regress_admin', 'apikeys_internal._import_rows(regclass, apikeys._import_row[])', 'EXECUTE') AS admin_may,
       (SELECT prosecdef FROM pg_proc WHERE oid = 'apikeys.import_keys(regclass)'::regprocedure) AS import_keys_definer;
DROP TABLE public.rls_keys;
SELECT event, client_id, owner, detail FROM apikeys.audit_log
 WHERE event = 'imported' AND client_id IS NULL ORDER BY id;
SELECT owner, name, scopes, metadata FROM apikeys.key_list
 WHERE name LIKE 'key %' ORDER BY name;
SET ROLE regress_verifier;
SELECT t, (apikeys.verify(t, 'orders:read')).code, (apikeys.verify(t)).metadata
  FROM unnest(ARRAY['oldkey-1', 'oldkey-4', 'oldkey-5', 'oldkey-7']) t;
RESET ROLE;
-- Importing the same keys again: refused as a whole.
SET ROLE regress_admin;
SELECT apikeys.import_keys('public.api_keys_import');
RESET ROLE;
-- One bad row rolls the whole import back, good rows before it too.
CREATE TABLE public.more_keys (owner text, name text, scopes text[], secret_hash text, hash_format text);
INSERT INTO public.more_keys VALUES
    ('cust9', 'fine', '{}', encode(sha256('oldkey-9'::bytea), 'base64'), 'sha256_base64'),
    ('cust9', 'broken', '{}', 'not-a-hash', NULL);
GRANT SELECT ON public.more_keys TO regress_admin;
SET ROLE regress_admin;
SELECT apikeys.import_keys('public.more_keys');
RESET ROLE;
SELECT count(*) AS cust9_keys FROM apikeys.keys WHERE owner = 'cust9';
SELECT count(*) AS more_audit FROM apikeys.audit_log WHERE detail->>'source' = 'public.more_keys';
DELETE FROM public.more_keys WHERE name = 'broken';
SET ROLE regress_admin;
SELECT apikeys.import_keys('public.more_keys');
RESET ROLE;
SELECT code, owner FROM apikeys.verify('oldkey-9');
-- a token twice in the source; more keys than the owner's cap leaves
TRUNCATE public.more_keys;
INSERT INTO public.more_keys (owner, name, scopes, secret_hash)
VALUES ('cust8', 'a', '{}', encode(sha256('twice'::bytea), 'hex')),
       ('cust8', 'b', '{}', encode(sha256('twice'::bytea), 'hex'));
SET ROLE regress_admin;
SELECT apikeys.import_keys('public.more_keys');
RESET ROLE;
TRUNCATE public.more_keys;
INSERT INTO public.more_keys (owner, name, scopes, secret_hash)
SELECT 'capped_co', 'bulk ' || i, '{}', encode(sha256(('capped-bulk-' || i)::bytea), 'hex')
  FROM generate_series(1, 2) i;
SET ROLE regress_admin;
SELECT apikeys.import_keys('public.more_keys');
RESET ROLE;
-- an owner with no key yet and a cap of 2: 3 at once are refused, 2 pass
SELECT apikeys.set_owner_policy('capped_bulk', max_keys => 2);
TRUNCATE public.more_keys;
INSERT INTO public.more_keys (owner, name, scopes, secret_hash)
SELECT 'capped_bulk', 'bulk ' || i, '{}', encode(sha256(('capped-bulk2-' || i)::bytea), 'hex')
  FROM generate_series(1, 3) i;
SET ROLE regress_admin;
SELECT apikeys.import_keys('public.more_keys');
RESET ROLE;
DELETE FROM public.more_keys WHERE name = 'bulk 3';
SET ROLE regress_admin;
SELECT apikeys.import_keys('public.more_keys');
RESET ROLE;
SELECT owner, count(*) FROM apikeys.keys WHERE owner IN ('cust8', 'capped_co', 'capped_bulk')
 GROUP BY owner ORDER BY owner;
DROP TABLE public.more_keys;

DROP VIEW public.api_keys_import;
DROP TABLE public.api_keys, public.bad_import;

-- report_leaked takes a legacy token as it takes a native one: anyone
-- holding it revokes the imported key, and learns nothing either way
SET ROLE regress_admin;
SELECT apikeys.import_key('leaky_co', 'leaked', '{}', token => 'sk_leaky_0001') AS cid_leaky \gset
RESET ROLE;
SET ROLE regress_verifier;
SELECT code FROM apikeys.verify('sk_leaky_0001');
SELECT apikeys.report_leaked('sk_leaky_0001');
SELECT apikeys.report_leaked('sk_leaky_unknown');
SELECT code FROM apikeys.verify('sk_leaky_0001');
RESET ROLE;
SELECT status FROM apikeys.key_list WHERE client_id = :'cid_leaky';
SELECT event, detail->>'reason' AS reason FROM apikeys.audit_log
 WHERE client_id = :'cid_leaky' ORDER BY id DESC LIMIT 1;
