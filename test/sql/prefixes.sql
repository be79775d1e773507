\i test/setup.sql
--
-- prefixes: apikeys.allowed_prefixes (superuser) lists prefixes besides
-- apikeys.token_prefix that create_key(..., prefix => ...) may give a key;
-- the key keeps it for life (rotation, claim, reset, settings changed
-- later); a token whose prefix is swapped names a client ID no key has;
-- self-service keys make and act on keys of their own prefix only; every
-- allowed prefix matches the secret scanners' regex.
--
SET client_min_messages = warning;
SELECT apikeys.set_owner_policy('px_acme', max_keys => 40);

-- The setting: the token_prefix grammar for each entry -------------------------
SHOW apikeys.allowed_prefixes;
SET apikeys.allowed_prefixes = 'acme_live, acme_test,acme';
SHOW apikeys.allowed_prefixes;
-- Invalid input: uppercase, a dash, a leading or trailing underscore, a
-- leading digit, 21 characters, non-ASCII; the value before stays
SELECT err($$SET apikeys.allowed_prefixes = 'acme_live, Acme'$$);
SELECT err($$SET apikeys.allowed_prefixes = 'acme-live'$$);
SELECT err($$SET apikeys.allowed_prefixes = '_acme'$$);
SELECT err($$SET apikeys.allowed_prefixes = 'acme_'$$);
SELECT err($$SET apikeys.allowed_prefixes = '9acme'$$);
SELECT err(format('SET apikeys.allowed_prefixes = %L', repeat('a', 21)));
SELECT err($$SET apikeys.allowed_prefixes = 'acmé'$$);
SHOW apikeys.allowed_prefixes;
-- 20 characters, and separators alone, are fine
SET apikeys.allowed_prefixes = 'abcdefghij_klmnopq9z';
SET apikeys.allowed_prefixes = ' , ,';
SET apikeys.allowed_prefixes = 'acme_live, acme_test, acme, a, a__b, abcdefghij_klmnopq9z';
-- superuser only (42501, the wording differs across majors)
SET ROLE regress_admin;
\set VERBOSITY sqlstate
SET apikeys.allowed_prefixes = 'evil';
\set VERBOSITY default
SHOW apikeys.allowed_prefixes;

-- create_key's prefix ----------------------------------------------------------
SELECT (k).client_id AS live_cid, (k).token AS live_tok, (k).client_secret AS live_secret
  FROM (SELECT apikeys.create_key('px_acme', 'live', '{orders:read}', prefix => 'acme_live') k) s \gset
SELECT (k).client_id AS test_cid, (k).token AS test_tok
  FROM (SELECT apikeys.create_key('px_acme', 'test', '{orders:read}', prefix => 'acme_test') k) s \gset
SELECT (k).client_id AS short_cid, (k).token AS short_tok
  FROM (SELECT apikeys.create_key('px_acme', 'short', '{orders:read}', prefix => 'acme') k) s \gset
SELECT (k).client_id AS default_cid, (k).token AS default_tok
  FROM (SELECT apikeys.create_key('px_acme', 'default', '{orders:read}') k) s \gset
SELECT (k).token AS null_tok
  FROM (SELECT apikeys.create_key('px_acme', 'null prefix', '{orders:read}', prefix => NULL) k) s \gset
SELECT (k).token AS ak_tok
  FROM (SELECT apikeys.create_key('px_acme', 'explicit default', '{orders:read}', prefix => 'ak') k) s \gset
SELECT :'live_tok' ~ '^acme_live_[A-Za-z0-9]{16}_[A-Za-z0-9]{49}$' AS live_shape,
       :'test_tok' ~ '^acme_test_[A-Za-z0-9]{16}_[A-Za-z0-9]{49}$' AS test_shape,
       :'short_tok' ~ '^acme_[A-Za-z0-9]{16}_[A-Za-z0-9]{49}$' AS short_shape,
       :'default_tok' ~ '^ak_[A-Za-z0-9]{16}_[A-Za-z0-9]{49}$' AS default_shape,
       :'null_tok' ~ '^ak_[A-Za-z0-9]{16}_' AS null_is_default,
       :'ak_tok' ~ '^ak_[A-Za-z0-9]{16}_' AS explicit_default;
-- key_list shows it, as its last column
SELECT name, prefix FROM apikeys.key_list WHERE owner = 'px_acme' ORDER BY created_at, name;
SELECT attname AS key_list_last_column FROM pg_attribute
 WHERE attrelid = 'apikeys.key_list'::regclass ORDER BY attnum DESC LIMIT 1;
-- the created audit row (and its outbox event) records it
RESET ROLE;
SELECT a.detail->>'name' AS name, a.detail->>'prefix' AS audited_prefix,
       o.payload->'detail'->>'prefix' AS outbox_prefix
  FROM apikeys.audit_log a
  LEFT JOIN apikeys.outbox o ON o.event = a.event AND o.client_id = a.client_id
 WHERE a.event = 'created' AND a.owner = 'px_acme' ORDER BY a.id;
SET ROLE regress_admin;

-- Invalid input: not allowed (22023, the allowed ones in the hint), not a
-- prefix at all (22023, the value not echoed: it may be a pasted token);
-- nothing is written, not even the policy row of a new owner
RESET ROLE;
SELECT count(*) AS keys_before FROM apikeys.keys \gset
SELECT count(*) AS audit_before FROM apikeys.audit_log \gset
SET ROLE regress_admin;
SELECT err($$SELECT apikeys.create_key('px_new', 'x', '{}', prefix => 'acme_prod')$$);
SELECT err($$SELECT apikeys.create_key('px_new', 'x', '{}', prefix => 'Acme_live')$$);
SELECT err($$SELECT apikeys.create_key('px_new', 'x', '{}', prefix => '')$$);
SELECT err($$SELECT apikeys.create_key('px_new', 'x', '{}', prefix => '_')$$);
SELECT err($$SELECT apikeys.create_key('px_new', 'x', '{}', prefix => 'acme_live_')$$);
SELECT err($$SELECT apikeys.create_key('px_new', 'x', '{}', prefix => 'acme live')$$);
SELECT err($$SELECT apikeys.create_key('px_new', 'x', '{}', prefix => E'acme\nlive')$$);
SELECT err(format('SELECT apikeys.create_key(%L, %L, %L, prefix => %L)', 'px_new', 'x', '{}', repeat('a', 21)));
SELECT err(format('SELECT apikeys.create_key(%L, %L, %L, prefix => %L)', 'px_new', 'x', '{}', :'live_tok'))
       AS pasted_token;
SELECT strpos(err(format('SELECT apikeys.create_key(%L, %L, %L, prefix => %L)', 'px_new', 'x', '{}', :'live_tok')),
              :'live_secret') = 0 AS secret_not_echoed;
RESET ROLE;
SELECT (SELECT count(*) FROM apikeys.keys) - :keys_before AS keys_written,
       (SELECT count(*) FROM apikeys.audit_log) - :audit_before AS audit_written,
       (SELECT count(*) FROM apikeys.owner_policies WHERE owner = 'px_new') AS policy_rows;

-- Verification: any prefix a key was issued with ------------------------------
SELECT (apikeys.verify(:'live_tok')).code AS live, (apikeys.verify(:'test_tok')).code AS test,
       (apikeys.verify(:'short_tok')).code AS short, (apikeys.verify(:'default_tok')).code AS dflt,
       (apikeys.verify_client(:'live_cid', :'live_secret')).code AS live_by_client;
-- A token whose prefix was swapped, with its checksum made right again:
-- it names a client ID no key has (NOT_FOUND); with the old checksum it
-- fails the shape check (MALFORMED, or NOT_FOUND once a database holds
-- imported keys: test/sql/import.sql); the same for a client ID and secret
-- given apart.  acme and acme_live are both allowed: the client ID is read
-- from the right, where every part has a fixed length, so one is never read
-- as the other.
CREATE FUNCTION pg_temp.swap(tok text, p text) RETURNS text LANGUAGE sql AS $$
    SELECT public.forge_token(p || '_' || substr(c, length(c) - 15),
                              substr(tok, length(c) + 2, 43))
      FROM apikeys.token_client_id(tok) c
$$;
SELECT pg_temp.swap(:'live_tok', 'acme_test') AS swapped_tok \gset
SELECT apikeys.token_client_id(:'swapped_tok') ~ '^acme_test_' AS parses_as_acme_test,
       (apikeys.verify(:'swapped_tok')).code AS live_as_test,
       (apikeys.verify(pg_temp.swap(:'live_tok', 'acme'))).code AS live_as_acme,
       (apikeys.verify(pg_temp.swap(:'short_tok', 'acme_live'))).code AS acme_as_live,
       (apikeys.verify(pg_temp.swap(:'test_tok', 'ak'))).code AS test_as_default,
       (apikeys.verify(pg_temp.swap(:'default_tok', 'acme_live'))).code AS default_as_live,
       (apikeys.verify(pg_temp.swap(:'live_tok', 'acme_live'))).code AS unchanged_control;
SELECT apikeys.token_client_id('acme_test' || substr(:'live_tok', 10)) IS NULL AS old_checksum_fails_shape,
       (apikeys.verify('acme_test' || substr(:'live_tok', 10))).valid AS old_checksum_valid,
       (apikeys.verify_client('acme_test' || substr(:'live_cid', 10), :'live_secret')).code AS client_swapped,
       (apikeys.verify_client(substr(:'live_cid', 6), :'live_secret')).code AS prefix_cut;
SELECT apikeys.token_client_id(:'short_tok') = :'short_cid' AS short_parses_to_its_key,
       apikeys.token_client_id(:'live_tok') = :'live_cid' AS live_parses_to_its_key;

-- Existing keys keep verifying when the settings change -----------------------
RESET ROLE;
SET apikeys.allowed_prefixes = '';
SET apikeys.token_prefix = 'zz';
SELECT (apikeys.verify(:'live_tok')).code AS live, (apikeys.verify(:'test_tok')).code AS test,
       (apikeys.verify(:'default_tok')).code AS old_default;
-- ... but a prefix no longer allowed is not given to new keys
SET ROLE regress_admin;
SELECT err($$SELECT apikeys.create_key('px_acme', 'x', '{}', prefix => 'acme_live')$$);
SELECT err($$SELECT apikeys.create_key('px_acme', 'x', '{}', prefix => 'ak')$$);
-- rotate_key keeps the key's prefix whatever the settings say now
SELECT (r).token AS rot_tok FROM (SELECT apikeys.rotate_key(:'live_cid') r) s \gset
SELECT :'rot_tok' ~ ('^' || :'live_cid' || '_') AS rotated_keeps_prefix,
       (apikeys.verify(:'rot_tok')).code AS rotated;
-- a handoff key keeps its prefix through claim_key and reset_key
RESET ROLE;
SET apikeys.allowed_prefixes = 'acme_live, acme_test';
SET ROLE regress_admin;
SELECT (k).client_id AS ho_cid
  FROM (SELECT apikeys.create_key('px_acme', 'handoff', '{orders:read}', prefix => 'acme_test',
          contact_email => 'int@example.com', contact_phone => '+447894123456',
          handoff => true) k) s \gset
RESET ROLE;
SET apikeys.allowed_prefixes = '';
SELECT payload->>'claim_token' AS claim FROM apikeys.outbox
 WHERE client_id = :'ho_cid' AND event = 'handoff_link' \gset
SELECT payload->>'code' AS code FROM apikeys.outbox
 WHERE client_id = :'ho_cid' AND event = 'handoff_code' \gset
SET ROLE regress_verifier;
SELECT token AS ho_tok FROM apikeys.claim_key(:'claim', :'code') \gset
RESET ROLE;
SELECT :'ho_cid' ~ '^acme_test_' AS issued_with_prefix,
       :'ho_tok' ~ ('^' || :'ho_cid' || '_') AS claimed_keeps_prefix,
       (apikeys.verify(:'ho_tok')).code AS claimed;
SELECT apikeys.reset_key(:'ho_cid');
SELECT prefix AS after_reset FROM apikeys.key_list WHERE client_id = :'ho_cid';
RESET apikeys.token_prefix;

-- The secret scanners' regex matches every prefix the rule allows ------------
-- README's regex, \b[a-z][a-z0-9_]*_[A-Za-z0-9]{16}_[A-Za-z0-9]{49}\b, with
-- PostgreSQL's word boundary \y for \b.  It holds for every prefix of the
-- form [a-z][a-z0-9_]*, which TokenPrefixIsValid requires of token_prefix
-- and of each allowed prefix: one character (a), double underscores (a__b),
-- 20 characters, a prefix that is another's head (acme, acme_live).  The
-- match is the whole token, in text and in JSON.
SET apikeys.allowed_prefixes = 'acme_live, acme, a, a__b, x1_2, abcdefghij_klmnopq9z';
CREATE TEMP TABLE scanned AS
SELECT p, (apikeys.create_key('px_acme', 'scan ' || p, '{}', prefix => p)).token AS tok
  FROM unnest(ARRAY['acme_live', 'acme', 'a', 'a__b', 'x1_2', 'abcdefghij_klmnopq9z', 'ak']) p;
SELECT p,
       (regexp_match('Authorization: Bearer ' || tok || E'\r\n',
                     '\y[a-z][a-z0-9_]*_[A-Za-z0-9]{16}_[A-Za-z0-9]{49}\y'))[1] = tok AS found_in_header,
       (regexp_match('{"key":"' || tok || '"}',
                     '\y[a-z][a-z0-9_]*_[A-Za-z0-9]{16}_[A-Za-z0-9]{49}\y'))[1] = tok AS found_in_json,
       (apikeys.verify(tok)).code
  FROM scanned ORDER BY p;
-- the regex's own prefix part and the setting's rule agree on the invalid
-- ones: each is refused by the setting
SELECT v, v ~ '^[a-z][a-z0-9_]*$' AS regex_prefix_part, err(format('SET apikeys.allowed_prefixes = %L', v)) AS setting
  FROM unnest(ARRAY['Acme', '9a', '_a', 'a-b']) v;
RESET apikeys.allowed_prefixes;

-- Self-service: a key makes keys of its own prefix and acts on those only ---
SET apikeys.allowed_prefixes = 'acme_live, acme_test';
SET ROLE regress_admin;
SELECT (k).client_id AS mgr_live_cid, (k).token AS mgr_live
  FROM (SELECT apikeys.create_key('px_acme', 'live manager', '{apikeys:*, orders:read}',
          prefix => 'acme_live', expires_at => now() + interval '30 days') k) s \gset
SELECT (k).client_id AS mgr_test_cid, (k).token AS mgr_test
  FROM (SELECT apikeys.create_key('px_acme', 'test manager', '{apikeys:*, orders:read}',
          prefix => 'acme_test', expires_at => now() + interval '30 days') k) s \gset
SELECT (k).client_id AS sib_live_cid
  FROM (SELECT apikeys.create_key('px_acme', 'live sibling', '{orders:read}',
          prefix => 'acme_live', expires_at => now() + interval '10 days') k) s \gset
SELECT (k).client_id AS sib_test_cid
  FROM (SELECT apikeys.create_key('px_acme', 'test sibling', '{orders:read}',
          prefix => 'acme_test', expires_at => now() + interval '10 days') k) s \gset
RESET ROLE;
-- the server default is neither: a child still gets its manager's prefix
SET apikeys.token_prefix = 'zz';
SET ROLE regress_verifier;
BEGIN;
SELECT code FROM apikeys.authenticate(:'mgr_test');
SELECT (k).client_id AS child_cid, (k).token AS child_tok
  FROM (SELECT apikeys.my_create_key('child', '{orders:read}') k) s \gset
SELECT prefix AS child_prefix FROM apikeys.my_keys WHERE client_id = :'child_cid';
SELECT attname AS my_keys_last_column FROM pg_attribute
 WHERE attrelid = 'apikeys.my_keys'::regclass ORDER BY attnum DESC LIMIT 1;
-- its own prefix's keys: within its power
SELECT apikeys.my_update_key(:'sib_test_cid', name => 'test sibling renamed');
SELECT (apikeys.my_rotate_key(:'sib_test_cid')).token ~ '^acme_test_' AS rotated_own_prefix;
-- another prefix's keys, with the same scopes and an earlier expiry: 42501
-- (a test key would learn a live secret by rotating it)
SELECT err(format('SELECT apikeys.my_rotate_key(%L)', :'sib_live_cid'));
SELECT err(format('SELECT apikeys.my_update_key(%L, name => %L)', :'sib_live_cid', 'x'));
SELECT err(format('SELECT apikeys.my_disable_key(%L)', :'sib_live_cid'));
SELECT err(format('SELECT apikeys.my_revoke_key(%L)', :'sib_live_cid'));
SELECT err(format('SELECT apikeys.my_delete_key(%L)', :'sib_live_cid'));
COMMIT;
SELECT :'child_tok' ~ '^acme_test_' AS child_has_managers_prefix,
       (apikeys.verify(:'child_tok')).code AS child;
RESET ROLE;
SELECT a.detail->>'prefix' AS audited_prefix, a.detail->>'by_key' = :'mgr_test_cid' AS by_manager
  FROM apikeys.audit_log a WHERE a.event = 'created' AND a.client_id = :'child_cid';
SELECT name, status FROM apikeys.key_list WHERE client_id IN (:'sib_live_cid', :'sib_test_cid') ORDER BY name;
-- the live manager acts on the live sibling
SET ROLE regress_verifier;
BEGIN;
SELECT code FROM apikeys.authenticate(:'mgr_live');
SELECT apikeys.my_disable_key(:'sib_live_cid');
SELECT (k).token ~ '^acme_live_' AS live_child FROM (SELECT apikeys.my_create_key('live child', '{orders:read}') k) s;
ROLLBACK;
-- a manager whose prefix is no longer allowed makes no more keys (22023,
-- as create_key); its existing keys keep working and it still manages them
RESET ROLE;
SET apikeys.allowed_prefixes = 'acme_live';
SET ROLE regress_verifier;
BEGIN;
SELECT code FROM apikeys.authenticate(:'mgr_test');
SELECT err($$SELECT apikeys.my_create_key('child 2', '{orders:read}')$$);
SELECT apikeys.my_disable_key(:'child_cid');
ROLLBACK;
RESET ROLE;
RESET apikeys.token_prefix;
RESET apikeys.allowed_prefixes;
