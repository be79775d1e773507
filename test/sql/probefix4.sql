\i test/setup.sql
--
-- probefix4: the fourth outside probe's findings (/work/probe-out4), each
-- at the rule that owns it:
--   1. only a VALID answer uses anything up (verify.c, JudgeLimits): a
--      request refused for credits (USAGE_EXCEEDED) leaves the owner's
--      window and the key's own window as they were, and one refused by
--      the owner's window leaves the key's;
--   2. a token of apikeys' shape with a configured prefix and a wrong
--      checksum is MALFORMED, imported keys or not (TokenClassify);
--   3. a \u0000 escape in request.headers (which jsonb cannot hold) is an
--      unreadable character, not an error of its own: in a forwarding
--      header it is 400 INVALID_FORWARDED for a presented key.
--
-- Without apikeys preloaded there are no windows: expected/probefix4_1.out.
SELECT apikeys_internal._preloaded() AS preloaded;
SET client_min_messages = warning;

-- 1. Refused requests use up no window ---------------------------------------
-- (a) the probe's break: an owner limited to 5 an hour, a key with no
-- credits left hammered 5 times, then the owner's other key; a key too
-- large for the shared cache (metadata) goes through the table path
SELECT apikeys.set_owner_policy('pf4_o', max_keys => 100, rate_limit => 5, rate_window => '1 hour');
SELECT token AS empty FROM apikeys.create_key('pf4_o', 'exhausted', '{api:read}', credits => 0) \gset
SELECT token AS empty_big FROM apikeys.create_key('pf4_o', 'exhausted, large', '{api:read}', credits => 0,
       metadata => jsonb_build_object('pad', repeat('x', 9000))) \gset
SELECT token AS paid FROM apikeys.create_key('pf4_o', 'paid', '{api:read}') \gset
SET ROLE regress_verifier;
SELECT i, (apikeys.verify(:'empty', 'api:read')).code AS empty,
          (apikeys.verify(:'empty_big', 'api:read')).code AS empty_big
  FROM generate_series(1, 5) i;
-- the owner's window is untouched: 5 VALID, then RATE_LIMITED (before the
-- fix the first was already RATE_LIMITED, retry_after 3600)
SELECT i, (v).code, (v).retry_after > 3500 AS whole_window
  FROM (SELECT i, apikeys.verify(:'paid', 'api:read') v FROM generate_series(1, 6) i OFFSET 0) s;
-- once the owner's window is full, the exhausted key answers RATE_LIMITED:
-- the windows come before credits (the order is unchanged)
SELECT code FROM apikeys.verify(:'empty', 'api:read');
RESET ROLE;
SELECT apikeys.set_owner_policy('pf4_o', rate_limit => 0);

-- (b) the key's own window: 3 an hour and 1 credit.  VALID, then two
-- USAGE_EXCEEDED that leave the window at 2 left; after a top-up the key
-- has its 2 requests (before the fix: RATE_LIMITED at once)
SET client_min_messages = error;   -- the rate-limit warning (random client ID) without preloading
SELECT client_id AS own_cid, token AS own FROM apikeys.create_key('pf4_k', 'own limit', '{api:read}',
       credits => 1, rate_limit => 3, rate_window => '1 hour') \gset
SET client_min_messages = warning;
SET ROLE regress_verifier;
SELECT i, (v).code, (v).rate_remaining, (v).credits_remaining
  FROM (SELECT i, apikeys.verify(:'own', 'api:read') v FROM generate_series(1, 3) i OFFSET 0) s;
RESET ROLE;
SELECT apikeys.add_credits(:'own_cid', 10);
SET ROLE regress_verifier;
SELECT i, (v).code, (v).rate_remaining, (v).credits_remaining
  FROM (SELECT i, apikeys.verify(:'own', 'api:read') v FROM generate_series(1, 3) i OFFSET 0) s;
-- a refusal by the key's own window takes no credits (unchanged)
SELECT code, credits_remaining FROM apikeys.verify(:'own', 'api:read');
RESET ROLE;

-- (c) a refusal by the owner's window gives the key's window back: owner
-- limit 1, key limit 2.  The other key takes the owner's one request; the
-- limited key is refused by the owner and keeps both its own requests
SELECT apikeys.set_owner_policy('pf4_w', rate_limit => 1, rate_window => '1 hour');
SELECT token AS w_other FROM apikeys.create_key('pf4_w', 'other', '{api:read}') \gset
SET client_min_messages = error;
SELECT token AS w_lim FROM apikeys.create_key('pf4_w', 'limited', '{api:read}',
       rate_limit => 2, rate_window => '1 hour') \gset
SET client_min_messages = warning;
SET ROLE regress_verifier;
SELECT code FROM apikeys.verify(:'w_other', 'api:read');
SELECT i, (v).code, (v).rate_remaining
  FROM (SELECT i, apikeys.verify(:'w_lim', 'api:read') v FROM generate_series(1, 2) i OFFSET 0) s;
RESET ROLE;
-- the owner limit lifted: the key's own 2 requests are all still there
SELECT apikeys.set_owner_policy('pf4_w', rate_limit => 0);
SET ROLE regress_verifier;
SELECT i, (v).code, (v).rate_remaining
  FROM (SELECT i, apikeys.verify(:'w_lim', 'api:read') v FROM generate_series(1, 3) i OFFSET 0) s;
RESET ROLE;

-- (d) the same through pre_request (429, one code path) and authenticate
SELECT apikeys.set_owner_policy('pf4_p', rate_limit => 2, rate_window => '1 hour');
SELECT token AS p_empty FROM apikeys.create_key('pf4_p', 'exhausted', '{api:read}', credits => 0) \gset
SELECT token AS p_paid FROM apikeys.create_key('pf4_p', 'paid', '{api:read}') \gset
CREATE FUNCTION pf4_pre(tok text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    m text; d text;
BEGIN
    PERFORM set_config('request.headers', jsonb_build_object('x-api-key', tok)::text, true);
    PERFORM apikeys.pre_request();
    RETURN 'ok';
EXCEPTION WHEN SQLSTATE 'PGRST' THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL;
    RETURN (d::jsonb ->> 'status') || ' ' || (m::jsonb ->> 'code');
END
$$;
GRANT EXECUTE ON FUNCTION pf4_pre(text) TO regress_verifier;
SET ROLE regress_verifier;
SELECT i, pf4_pre(:'p_empty') AS pre_request,
       err(format('SELECT apikeys.authenticate(%L)', :'p_empty')) AS authenticate
  FROM generate_series(1, 3) i;
SELECT i, pf4_pre(:'p_paid') AS paid FROM generate_series(1, 3) i;
RESET ROLE;

-- 2. A mistyped apikeys token is MALFORMED, imported keys or not ------------------
-- an imported key makes verification look tokens up by their hash
SELECT apikeys.set_owner_policy('pf4_i', max_keys => 100);
SELECT apikeys.import_key('pf4_i', 'legacy', '{api:read}', token => 'sk_pf4_legacy_0123456789') IS NOT NULL AS imported;
SELECT token AS nat FROM apikeys.create_key('pf4_i', 'native', '{api:read}') \gset
-- the last character changed: the checksum fails (before the fix: NOT_FOUND,
-- looked up as a legacy token once any imported key existed)
SELECT left(:'nat', -1) || CASE WHEN right(:'nat', 1) = 'A' THEN 'B' ELSE 'A' END AS typo \gset
-- one secret character changed, the checksum kept
SELECT overlay(:'nat' PLACING CASE WHEN substr(:'nat', 25, 1) = 'A' THEN 'B' ELSE 'A' END
               FROM 25 FOR 1) AS typo_secret \gset
SET ROLE regress_verifier;
SELECT (apikeys.verify(:'nat')).code AS intact,
       (apikeys.verify(:'typo')).code AS typo_checksum,
       (apikeys.verify(:'typo_secret')).code AS typo_secret,
       (apikeys.verify('sk_pf4_legacy_0123456789')).code AS legacy;
SELECT pf4_pre(:'typo') AS pre_request_typo;
RESET ROLE;
-- under a prefix no setting names, the same layout is another system's
-- token: looked up (NOT_FOUND), and importable by its hash
SET apikeys.allowed_prefixes = 'pf4x';
SELECT token AS other_prefix FROM apikeys.create_key('pf4_i', 'prefixed', '{api:read}', prefix => 'pf4x') \gset
RESET apikeys.allowed_prefixes;
SELECT left(:'other_prefix', -1) || CASE WHEN right(:'other_prefix', 1) = 'A' THEN 'B' ELSE 'A' END
       AS other_typo \gset
SELECT apikeys.import_key('pf4_i', 'same layout, other prefix', '{api:read}',
       secret_hash => encode(sha256(convert_to(:'other_typo', 'UTF8')), 'hex')) IS NOT NULL AS imported;
SET ROLE regress_verifier;
SELECT (apikeys.verify(:'other_prefix')).code AS its_key_still,
       (apikeys.verify(:'other_typo')).code AS imported_layout;
RESET ROLE;
-- its prefix configured later: the imported key still verifies (looked up
-- although the layout now reads as a typo), and a typo of it is MALFORMED
SET apikeys.allowed_prefixes = 'pf4x';
SET ROLE regress_verifier;
SELECT (apikeys.verify(:'other_typo')).code AS imported_layout_prefix_added,
       (apikeys.verify(left(:'other_typo', -2) || CASE WHEN right(:'other_typo', 2) = 'zz' THEN 'yy' ELSE 'zz' END)).code
       AS its_typo;
RESET ROLE;
RESET apikeys.allowed_prefixes;
-- the classifier import_key asks: a mistyped token is refused as before,
-- and one given where a client ID belongs is named a token (22023), never quoted
SELECT apikeys_internal._token_kind(:'typo') AS kind_typo,
       apikeys_internal._token_kind(:'other_typo') AS kind_other;
SELECT err(format($$SELECT apikeys.import_key('pf4_i', 'typo', '{}', token => %L)$$, :'typo'));
SELECT err(format($$SELECT apikeys.disable_key(%L)$$, :'typo'));

-- 3. \u0000 in request.headers ----------------------------------------------------
-- request.headers as PostgREST's JSON text (jsonb cannot hold \u0000, so
-- the helpers take text); what pre_request answers, and request.headers after it
CREATE FUNCTION pf4_raw(headers text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    m text; d text; st text;
BEGIN
    PERFORM set_config('request.headers', headers, true);
    PERFORM apikeys.pre_request();
    IF apikeys.current_client_id() IS NULL THEN
        RETURN 'anonymous';
    END IF;
    RETURN apikeys.current_client_id() || ' '
           || (current_setting('request.headers')::jsonb - 'x-forwarded-for')::text;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, st = RETURNED_SQLSTATE;
    RETURN CASE WHEN st = 'PGRST' THEN (d::jsonb ->> 'status') || ' ' || (m::jsonb ->> 'code')
                ELSE st || ' ' || m END;
END
$$;
GRANT EXECUTE ON FUNCTION pf4_raw(text) TO regress_verifier;
SELECT client_id AS n_cid, token AS n_tok FROM apikeys.create_key('pf4_n', 'nul', '{api:read}') \gset
SET apikeys.trust_forwarded_for = on;
SET ROLE regress_verifier;
-- the client's entry holds the escape: unreadable, 400 as for any junk
-- there (before the fix: a plain 22P05 "unsupported Unicode escape sequence")
SELECT pf4_raw(format('{"x-forwarded-for": "203.0.113.5\u0000", "x-api-key": "%s"}', :'n_tok')) AS in_client_entry;
SELECT pf4_raw(format('{"forwarded": "for=\"203.0.113.5\u0000\"", "x-api-key": "%s"}', :'n_tok')) AS in_forwarded;
-- left of the client's entry it is never read (as any junk there)
SELECT replace(pf4_raw(format('{"x-forwarded-for": "8.8.8.8\u0000, 203.0.113.5", "x-api-key": "%s"}', :'n_tok')),
               :'n_cid', '<client_id>') AS left_unread;
-- in another header: not read; the request goes on, and request.headers
-- keeps it as \u001a (an escaped backslash before "u0000" is no escape)
SELECT replace(pf4_raw(format('{"user-agent": "a\u0000b\\u0000", "x-api-key": "%s"}', :'n_tok')),
               :'n_cid', '<client_id>') AS other_header;
-- in the key: no token (401; NOT_FOUND, since imported keys exist here)
SELECT pf4_raw(format('{"x-api-key": "%s\u0000"}', :'n_tok')) AS in_key;
-- no key: anonymous, whatever the forwarding header holds
SELECT pf4_raw('{"x-forwarded-for": "203.0.113.5\u0000"}') AS anonymous;
-- request.headers that is not JSON is still jsonb's error
SELECT pf4_raw('{"x-api-key": "\u00"}') AS not_json;
-- claim_key reads the address the same way: 400, no code compared
SELECT set_config('request.headers', '{"x-forwarded-for": "203.0.113.5\u0000"}', false) IS NOT NULL AS headers_set;
SELECT err($$SELECT apikeys.claim_key('junk', '000000')$$) AS claim;
SELECT set_config('request.headers', '', false) IS NOT NULL AS headers_reset;
RESET ROLE;
RESET apikeys.trust_forwarded_for;

DROP FUNCTION pf4_pre(text);
DROP FUNCTION pf4_raw(text);
