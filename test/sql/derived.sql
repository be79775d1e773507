\i test/setup.sql
--
-- derived: short-lived tokens derived from the authenticated key
-- (apikeys.derive_token): verified by verify, authenticate and pre_request
-- until min(now + ttl, the key's expiry), with a subset of the key's
-- scopes, dying with the key; hostile cases: altered, swapped, truncated,
-- re-signed, re-derived, replayed, presented as a client secret.
\set VERBOSITY terse

SET ROLE regress_admin;
SELECT token AS tok, client_id AS cid FROM apikeys.create_key('derived_co', 'parent',
    '{orders:read,orders:write,"customers:read(id,name)",apikeys:read}',
    expires_at => now() + interval '30 days') \gset
SELECT token AS tok2, client_id AS cid2 FROM apikeys.create_key('derived_co', 'other',
    '{orders:read}', expires_at => now() + interval '10 minutes') \gset
RESET ROLE;
SELECT count(*) AS audit_before FROM apikeys.audit_log \gset

SET ROLE regress_verifier;
-- Invalid input: nothing authenticated
SELECT apikeys.derive_token();

BEGIN;
SELECT valid FROM apikeys.authenticate(:'tok');
SELECT apikeys.derive_token() AS dall \gset
SELECT apikeys.derive_token('{orders:read,"customers:read(name,id,name)"}', '5 minutes') AS dnarrow \gset
SELECT apikeys.derive_token('{}', '1 second') AS dshort \gset
-- Invalid input: ttl zero, negative, NULL, above apikeys.max_derived_ttl (1 hour)
SAVEPOINT s;
SELECT apikeys.derive_token(ttl => '0');
ROLLBACK TO s;
SELECT apikeys.derive_token(ttl => '-1 minute');
ROLLBACK TO s;
SELECT apikeys.derive_token(ttl => NULL);
ROLLBACK TO s;
SELECT apikeys.derive_token(ttl => '1 hour 1 second');
ROLLBACK TO s;
SELECT apikeys.derive_token(ttl => '1 mon');
ROLLBACK TO s;
-- Invalid input: scopes the key lacks (a field-less scope from a field list
-- too: the no-escalation rule), a set, NULL, junk (the messages name the
-- client ID: SQLSTATE only)
\set VERBOSITY sqlstate
SELECT apikeys.derive_token('{orders:delete}');
ROLLBACK TO s;
SELECT apikeys.derive_token('{customers:read}');
ROLLBACK TO s;
SELECT apikeys.derive_token('{"customers:read(id,email)"}');
ROLLBACK TO s;
SELECT apikeys.derive_token('{*}');
ROLLBACK TO s;
\set VERBOSITY terse
SELECT apikeys.derive_token('{@readers}');
ROLLBACK TO s;
SELECT apikeys.derive_token('{orders:read,NULL}');
ROLLBACK TO s;
SELECT apikeys.derive_token('{"Not A Scope"}');
ROLLBACK TO s;
SELECT apikeys.derive_token('{{orders:read}}');
ROLLBACK TO s;
SELECT apikeys.derive_token('{orders:read}', '1 hour') IS NOT NULL AS at_the_maximum;
COMMIT;
RESET ROLE;
SELECT count(*) - :audit_before AS audited_by_deriving FROM apikeys.audit_log;
SET ROLE regress_verifier;

-- The shape: the parent's client ID, ".dt1.", payload, 43-char signature;
-- the scanner regex of derived tokens matches it, the native one does not
SELECT :'dall' ~ '^[a-z][a-z0-9_]*_[A-Za-z0-9]{16}\.dt1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$' AS shaped,
       split_part(:'dall', '.', 1) = :'cid' AS parent_id_first,
       :'dall' !~ '\m[a-z][a-z0-9_]*_[A-Za-z0-9]{16}_[A-Za-z0-9]{49}\M' AS not_native,
       apikeys.token_client_id(:'dall') IS NULL AS no_native_client_id;

-- Verified: the parent's client ID, the narrowed scopes, the derived expiry
SELECT valid, code, client_id = :'cid' AS parent, owner, scopes,
       expires_at > now() + interval '14 minutes' AND expires_at <= now() + interval '15 minutes' AS fifteen_minutes,
       derived, credits_remaining, name
  FROM apikeys.verify(:'dall');
SELECT valid, code, scopes,
       expires_at <= now() + interval '5 minutes' AS five_minutes, derived
  FROM apikeys.verify(:'dnarrow');
SELECT valid, scopes, derived FROM apikeys.verify(:'dshort');
SELECT derived FROM apikeys.verify(:'tok');
SELECT code FROM apikeys.verify(:'dnarrow', 'orders:read');
SELECT code FROM apikeys.verify(:'dnarrow', 'customers:read(id,name)');
SELECT code FROM apikeys.verify(:'dnarrow', 'orders:write');
SELECT code FROM apikeys.verify(:'dnarrow', 'customers:read(email)');
SELECT code FROM apikeys.verify(:'dshort', 'orders:read');
SELECT code FROM apikeys.verify(:'dall', 'orders:write');

-- Authenticated by a derived token: the parent's identity, the narrowed
-- scopes; it derives nothing and manages no key (my_*)
BEGIN;
SELECT derived, scopes FROM apikeys.authenticate(:'dnarrow');
SELECT apikeys.current_client_id() = :'cid' AS parent, apikeys.current_scopes(),
       apikeys.has_scope('orders:write') AS may_write,
       apikeys.field_allowed('customers', 'name') AS name_ok,
       apikeys.field_allowed('customers', 'email') AS email_ok;
SAVEPOINT s;
SELECT apikeys.derive_token('{orders:read}', '30 minutes');
ROLLBACK TO s;
SELECT apikeys.derive_token();
ROLLBACK;
BEGIN;
SELECT derived FROM apikeys.authenticate(:'dall');
SELECT count(*) AS my_keys_seen FROM apikeys.my_keys;
ROLLBACK;
BEGIN;
SELECT derived FROM apikeys.authenticate(:'tok');
SELECT count(*) > 0 AS my_keys_seen_by_the_key FROM apikeys.my_keys;
ROLLBACK;

-- Hostile: an altered payload, a signature swapped in from another token,
-- a token re-pointed at another key, truncations, the wrong marker
SELECT split_part(:'dall', '.', 3) AS pall, split_part(:'dall', '.', 4) AS sall,
       split_part(:'dnarrow', '.', 3) AS pnarrow, split_part(:'dnarrow', '.', 4) AS snarrow \gset
SELECT code FROM apikeys.verify(:'cid' || '.dt1.' ||
       overlay(:'pnarrow' placing (CASE WHEN substr(:'pnarrow', 3, 1) = 'A' THEN 'B' ELSE 'A' END) from 3 for 1) ||
       '.' || :'snarrow') AS altered_expiry;
SELECT code FROM apikeys.verify(:'cid' || '.dt1.' || :'pall' || '.' || :'snarrow') AS widened_with_narrow_signature;
SELECT code FROM apikeys.verify(:'cid' || '.dt1.' || :'pnarrow' || '.' ||
       overlay(:'snarrow' placing (CASE WHEN substr(:'snarrow', 10, 1) = 'A' THEN 'B' ELSE 'A' END) from 10 for 1)) AS altered_signature;
SELECT code FROM apikeys.verify(:'cid2' || '.dt1.' || :'pall' || '.' || :'sall') AS other_key;
SELECT code FROM apikeys.verify(left(:'dall', -1)) AS truncated_by_one;
SELECT code FROM apikeys.verify(left(:'dall', length(:'cid') + 5)) AS truncated_to_marker;
SELECT code FROM apikeys.verify(:'cid' || '.dt1.' || :'pall') AS no_signature;
SELECT valid, client_id FROM apikeys.verify(:'cid' || '.dt2.' || :'pall' || '.' || :'sall') AS other_version;
SELECT code FROM apikeys.verify(:'dall' || 'A') AS appended;
-- a payload of our own making: all scopes, a far expiry, any signature
SELECT code FROM apikeys.verify(:'cid' || '.dt1.' ||
       rtrim(translate(encode('\x01ffffffffffffff00'::bytea, 'base64'), '+/', '-_'), '=') ||
       '.' || :'sall') AS forged_payload;
-- a derived token is no client secret
SELECT code FROM apikeys.verify_client(:'cid', :'dall');
SELECT valid, client_id FROM apikeys.verify_client(:'cid', :'sall');
RESET ROLE;

-- The ttl maximum is a superuser's setting
SET ROLE regress_verifier;
SET apikeys.max_derived_ttl = '1 day';
RESET ROLE;
SET apikeys.max_derived_ttl = '1 min';
BEGIN;
SELECT valid FROM apikeys.authenticate(:'tok');
SELECT apikeys.derive_token(ttl => '61 seconds');
ROLLBACK;
RESET apikeys.max_derived_ttl;

-- Never past the key's expiry
SET ROLE regress_verifier;
BEGIN;
SELECT valid FROM apikeys.authenticate(:'tok2');
SELECT apikeys.derive_token(ttl => '1 hour') AS d2 \gset
COMMIT;
RESET ROLE;
SELECT v.expires_at = k.expires_at AS key_expiry, v.derived
  FROM apikeys.verify(:'d2') v, apikeys.keys k WHERE k.client_id = :'cid2';
-- ... which the token itself says (its payload: flags, then the end in
-- microseconds since 2000-01-01, big-endian)
SELECT ('x' || encode(substring(decode(rpad(translate(split_part(:'d2', '.', 3), '-_', '+/'),
                                            (length(split_part(:'d2', '.', 3)) + 3) / 4 * 4, '='),
                                       'base64') from 2 for 8), 'hex'))::bit(64)::bigint
       = (extract(epoch FROM k.expires_at - timestamptz '2000-01-01 00:00:00+00') * 1000000)::bigint
       AS token_ends_with_key
  FROM apikeys.keys k WHERE k.client_id = :'cid2';

-- It ends on its own
SELECT pg_sleep(1.1);
SET ROLE regress_verifier;
SELECT code, derived FROM apikeys.verify(:'dshort');
RESET ROLE;

-- It dies with its key: a lost scope at once, a disable, a rotation (its
-- signature is bound to the key's current secret), a revoke
SET ROLE regress_admin;
SELECT apikeys.update_key(:'cid', scopes => '{orders:write,"customers:read(id)"}');
SET ROLE regress_verifier;
SELECT code, scopes FROM apikeys.verify(:'dnarrow');
SELECT code FROM apikeys.verify(:'dnarrow', 'orders:read');
SELECT code FROM apikeys.verify(:'dnarrow', 'customers:read(name)');
SELECT scopes FROM apikeys.verify(:'dall');
SET ROLE regress_admin;
SELECT apikeys.disable_key(:'cid');
SET ROLE regress_verifier;
SELECT code, derived FROM apikeys.verify(:'dall');
SET ROLE regress_admin;
SELECT apikeys.enable_key(:'cid');
SET ROLE regress_verifier;
SELECT code FROM apikeys.verify(:'dall');
SET ROLE regress_admin;
SELECT token AS tok FROM apikeys.rotate_key(:'cid', grace => '1 hour') \gset
SET ROLE regress_verifier;
SELECT code FROM apikeys.verify(:'dall') AS after_rotation;
BEGIN;
SELECT valid FROM apikeys.authenticate(:'tok');
SELECT apikeys.derive_token() AS dall \gset
COMMIT;
SELECT code FROM apikeys.verify(:'dall') AS derived_after_rotation;
-- reported as leaked, a derived token is no key's secret: the key stays
-- (else any holder of a derived token could revoke its key)
SELECT apikeys.report_leaked(:'dall');
SELECT (apikeys.verify(:'tok')).code AS key_after_report, (apikeys.verify(:'dall')).code AS derived_after_report;
-- through PostgREST's pre_request (x-api-key)
BEGIN;
SELECT set_config('request.headers', json_build_object('x-api-key', :'dall')::text, true) IS NOT NULL AS headers;
SELECT apikeys.pre_request();
SELECT apikeys.current_client_id() = :'cid' AS parent, apikeys.current_scopes();
ROLLBACK;
SET ROLE regress_admin;
SELECT apikeys.revoke_key(:'cid');
SET ROLE regress_verifier;
SELECT code, derived FROM apikeys.verify(:'dall') AS replay_after_revoke;
\set VERBOSITY sqlstate
BEGIN;
SELECT apikeys.authenticate(:'dall');
ROLLBACK;
BEGIN;
SELECT set_config('request.headers', json_build_object('x-api-key', :'dall')::text, true) IS NOT NULL AS headers;
SELECT apikeys.pre_request();
ROLLBACK;
\set VERBOSITY terse
RESET ROLE;

-- A new signing secret ends every derived token: each session makes its
-- signing key again (the table's trigger), this one too
SELECT code FROM apikeys.verify(:'d2') AS before_new_secret;
UPDATE apikeys.derived_signing_key SET secret = apikeys_internal._new_signing_secret();
SELECT code FROM apikeys.verify(:'d2') AS after_new_secret;
-- ... and so does a change of the pepper (mixed into the signing key)
SET ROLE regress_verifier;
BEGIN;
SELECT valid FROM apikeys.authenticate(:'tok2');
SELECT apikeys.derive_token() AS d3 \gset
COMMIT;
RESET ROLE;
SELECT code FROM apikeys.verify(:'d3') AS before_pepper;
SET apikeys.pepper = 'a-pepper-for-the-derived-test-0123456789';
SELECT (apikeys.verify(:'d3')).code AS with_pepper, (apikeys.verify(:'tok2')).code AS key_itself;
RESET apikeys.pepper;
SELECT code FROM apikeys.verify(:'d3') AS pepper_back;

-- The signing secret: one row, read by nobody but its owner
SELECT count(*) AS rows, min(octet_length(secret)) AS bytes FROM apikeys.derived_signing_key;
SET ROLE regress_admin;
SELECT count(*) FROM apikeys.derived_signing_key;
SET ROLE regress_verifier;
SELECT count(*) FROM apikeys.derived_signing_key;
RESET ROLE;
SELECT pg_catalog.pg_get_userbyid(relowner) = (SELECT pg_catalog.pg_get_userbyid(extowner) FROM pg_extension WHERE extname = 'apikeys') AS owned,
       relrowsecurity, relacl IS NULL OR NOT relacl::text LIKE '%apikeys%' AS no_grant,
       c.oid::regclass::text = ANY (SELECT unnest(extconfig)::regclass::text FROM pg_extension WHERE extname = 'apikeys') AS dumped
  FROM pg_class c WHERE c.oid = 'apikeys.derived_signing_key'::regclass;
