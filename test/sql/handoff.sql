\i test/setup.sql
--
-- handoff: create_key(..., handoff => true), claim_key and reset_key.  The
-- admin never sees the secret: the integrator gets a claim link by email
-- and a code by SMS (both in the outbox) and trades them for it once.
--
DELETE FROM apikeys.outbox;

-- Invalid input: a handoff needs both contacts; nothing is written
SET ROLE regress_admin;
SELECT err($$SELECT apikeys.create_key('spektrix', 'box office', '{events:read}', handoff => true)$$);
SELECT err($$SELECT apikeys.create_key('spektrix', 'box office', '{events:read}',
             contact_email => 'int@example.com', handoff => true)$$);
SELECT err($$SELECT apikeys.create_key('spektrix', 'box office', '{events:read}',
             contact_phone => '+447894123456', handoff => true)$$);
SELECT err($$SELECT apikeys.create_key('spektrix', 'box office', '{events:read}',
             contact_email => '', contact_phone => '+447894123456', handoff => true)$$);
SELECT err($$SELECT apikeys.create_key('spektrix', 'box office', '{events:read}',
             contact_email => 'int@example.com', contact_phone => '+447894123456', handoff => NULL)$$);
RESET ROLE;
SELECT count(*) AS keys FROM apikeys.keys WHERE owner = 'spektrix';
SELECT count(*) AS outbox_rows FROM apikeys.outbox;
SELECT count(*) AS claims FROM apikeys.claims;

-- A handoff key: the result has no secret and no token
SET apikeys.claim_lifetime = '2h';
SET ROLE regress_admin;
SELECT (k).client_id AS cid
  FROM (SELECT apikeys.create_key('spektrix', 'box office', '{events:read}',
          contact_email => 'int@example.com', contact_phone => '+447894123456',
          handoff => true) AS k) s \gset
SELECT client_secret IS NULL AS no_secret, token IS NULL AS no_token
  FROM apikeys.create_key('spektrix', 'second', '{events:read}',
          contact_email => 'int@example.com', contact_phone => '+447894123456', handoff => true);
-- pending in key_list; the admin cannot rotate the secret into view
SELECT name, status FROM apikeys.key_list WHERE owner = 'spektrix' ORDER BY created_at, name;
SELECT err(format('SELECT apikeys.rotate_key(%L)', :'cid'));
-- pending: NOT_FOUND for any secret
SELECT (apikeys.verify_client(:'cid', repeat('A', 43))).code;
RESET ROLE;

-- The outbox holds the link (email) and the code (SMS), and the audit events
SELECT event, channel, recipient,
       CASE WHEN event = 'handoff_link' THEN payload->>'claim_token' ~ '^[A-Za-z0-9]{32}$'
            WHEN event = 'handoff_code' THEN payload->>'code' ~ '^[0-9]{6}$' END AS secret_shape,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(payload) k) AS payload_keys
  FROM apikeys.outbox WHERE client_id = :'cid' ORDER BY id;
SELECT payload->>'claim_token' AS claim FROM apikeys.outbox
 WHERE client_id = :'cid' AND event = 'handoff_link' \gset
SELECT payload->>'code' AS code FROM apikeys.outbox
 WHERE client_id = :'cid' AND event = 'handoff_code' \gset
-- claims keep only hashes; the claim lives apikeys.claim_lifetime
SELECT expires_at - created_at AS lifetime,
       token_hash = sha256(convert_to(:'claim', 'UTF8')) AS token_hashed,
       code_hash = sha256(convert_to(:'claim' || ':' || :'code', 'UTF8')) AS code_hashed,
       strpos(c::text, :'claim') = 0 AS no_clear_token
  FROM apikeys.claims c WHERE client_id = :'cid';
RESET apikeys.claim_lifetime;
-- nobody but the delivery role reads the outbox
SET ROLE regress_admin;
SELECT err('SELECT count(*) FROM apikeys.outbox');
SELECT err('SELECT count(*) FROM apikeys.claims');
SET ROLE regress_verifier;
SELECT err('SELECT count(*) FROM apikeys.outbox');
SET ROLE regress_delivery;
SELECT count(*) > 0 AS delivery_reads FROM apikeys.outbox;
RESET ROLE;

-- Claiming: every failure is the same 28000, whatever was wrong
SET ROLE regress_verifier;
SELECT err(format('SELECT apikeys.claim_key(%L, %L)', :'claim', '000000')) AS wrong_code
 WHERE :'code' <> '000000';
SELECT err(format('SELECT apikeys.claim_key(%L, %L)', :'claim', NULL)) AS null_code;
SELECT err(format('SELECT apikeys.claim_key(%L, %L)', 'no-such-claim', :'code')) AS unknown_token;
SELECT err(format('SELECT apikeys.claim_key(%L, %L)', NULL, :'code')) AS null_token;
SELECT err(format('SELECT apikeys.claim_key(%L, %L)', repeat('x', 300), :'code')) AS long_token;
RESET ROLE;
-- wrong codes counted durably against the claim (not unknown tokens, nor a
-- NULL code, which compares nothing)
SELECT failures, locked_at IS NULL AS open FROM apikeys.claims WHERE client_id = :'cid';
SELECT status FROM apikeys.key_list WHERE client_id = :'cid';

-- The right token and code: the secret, once
SET ROLE regress_verifier;
SELECT client_id = :'cid' AS same_key, client_secret ~ '^[A-Za-z0-9]{43}$' AS secret_shape,
       token AS tok, expires_at > now() AS live
  FROM apikeys.claim_key(:'claim', :'code') \gset
SELECT :'same_key', :'secret_shape', :'live';
SELECT (apikeys.verify(:'tok')).code;
-- used: the same 28000
SELECT err(format('SELECT apikeys.claim_key(%L, %L)', :'claim', :'code')) AS used;
RESET ROLE;
SELECT status FROM apikeys.key_list WHERE client_id = :'cid';
-- its one-time secrets are gone from the outbox, and no row anywhere
-- holds the secret or token
SELECT count(*) AS rows_with_secrets FROM apikeys.outbox
 WHERE payload ?| ARRAY['claim_token', 'code'] AND client_id = :'cid';
SELECT count(*) AS leaks FROM apikeys.outbox o
 WHERE strpos(o::text, :'tok') > 0 OR strpos(o::text, split_part(:'tok', '_', 3)) > 0;
SELECT count(*) AS leaks FROM apikeys.audit_log a
 WHERE strpos(a::text, :'tok') > 0 OR strpos(a::text, :'claim') > 0;
SELECT event, detail ? 'changes' AS has_changes,
       detail->'changes'->>'secret' AS secret
  FROM apikeys.audit_log WHERE client_id = :'cid' ORDER BY id;

-- Five wrong codes lock a claim: then even the right code fails
SET ROLE regress_admin;
SELECT (k).client_id AS cid2
  FROM (SELECT apikeys.create_key('spektrix', 'locked out', '{events:read}',
          contact_email => 'int@example.com', contact_phone => '+447894123456',
          handoff => true) AS k) s \gset
RESET ROLE;
SELECT payload->>'claim_token' AS claim2 FROM apikeys.outbox
 WHERE client_id = :'cid2' AND event = 'handoff_link' \gset
SELECT payload->>'code' AS code2 FROM apikeys.outbox
 WHERE client_id = :'cid2' AND event = 'handoff_code' \gset
SET ROLE regress_verifier;
SELECT i, err(format('SELECT apikeys.claim_key(%L, %L)', :'claim2',
                     lpad(((:'code2'::int + i) % 1000000)::text, 6, '0'))) AS wrong
  FROM generate_series(1, 4) i;
RESET ROLE;
SELECT failures, locked_at IS NULL AS open FROM apikeys.claims WHERE client_id = :'cid2';
SET ROLE regress_verifier;
SELECT err(format('SELECT apikeys.claim_key(%L, %L)', :'claim2',
                  lpad(((:'code2'::int + 5) % 1000000)::text, 6, '0'))) AS fifth;
RESET ROLE;
SELECT failures, locked_at IS NOT NULL AS locked FROM apikeys.claims WHERE client_id = :'cid2';
SET ROLE regress_verifier;
SELECT err(format('SELECT apikeys.claim_key(%L, %L)', :'claim2', :'code2')) AS right_code_locked;
RESET ROLE;
SELECT failures FROM apikeys.claims WHERE client_id = :'cid2';
SELECT event, detail->'failures' AS failures FROM apikeys.audit_log WHERE client_id = :'cid2' ORDER BY id;
SELECT event, payload ?| ARRAY['claim_token', 'code'] AS holds_secret
  FROM apikeys.outbox WHERE client_id = :'cid2' AND channel IS NOT NULL ORDER BY id;
SELECT status FROM apikeys.key_list WHERE client_id = :'cid2';

-- An expired claim fails the same way, and its secrets leave the outbox
SET ROLE regress_admin;
SELECT (k).client_id AS cid3
  FROM (SELECT apikeys.create_key('spektrix', 'too late', '{events:read}',
          contact_email => 'int@example.com', contact_phone => '+447894123456',
          handoff => true) AS k) s \gset
RESET ROLE;
SELECT payload->>'claim_token' AS claim3 FROM apikeys.outbox
 WHERE client_id = :'cid3' AND event = 'handoff_link' \gset
SELECT payload->>'code' AS code3 FROM apikeys.outbox
 WHERE client_id = :'cid3' AND event = 'handoff_code' \gset
UPDATE apikeys.claims SET expires_at = now() - interval '1 second' WHERE client_id = :'cid3';
SET ROLE regress_verifier;
SELECT err(format('SELECT apikeys.claim_key(%L, %L)', :'claim3', :'code3')) AS expired;
SET ROLE regress_delivery;
SELECT count(*) AS taken_expired FROM apikeys.outbox_take(100) WHERE client_id = :'cid3' AND channel IS NOT NULL;
SELECT event, payload ?| ARRAY['claim_token', 'code'] AS holds_secret, failed_at IS NOT NULL AS given_up,
       last_error
  FROM apikeys.outbox WHERE client_id = :'cid3' AND channel IS NOT NULL ORDER BY id;
RESET ROLE;

-- reset_key: the current secret stops at once (a rotation's grace too),
-- the key is pending again, and a new link and code go out
SET ROLE regress_admin;
SELECT token AS old_tok FROM apikeys.rotate_key(:'cid', '1 hour') \gset
SELECT (apikeys.verify(:'tok')).code AS grace_secret, (apikeys.verify(:'old_tok')).code AS new_secret;
SELECT apikeys.reset_key(:'cid');
SELECT (apikeys.verify(:'tok')).code AS grace_secret, (apikeys.verify(:'old_tok')).code AS new_secret;
SELECT status, old_secret_valid_until FROM apikeys.key_list WHERE client_id = :'cid';
RESET ROLE;
SELECT event, channel FROM apikeys.outbox WHERE client_id = :'cid' ORDER BY id DESC LIMIT 4;
SELECT event, detail->'changes'->>'secret' AS secret FROM apikeys.audit_log
 WHERE client_id = :'cid' ORDER BY id DESC LIMIT 3;
SELECT claimed_at IS NOT NULL AS claimed, superseded_at IS NOT NULL AS superseded
  FROM apikeys.claims WHERE client_id = :'cid' ORDER BY id;
SELECT payload->>'claim_token' AS claim4 FROM apikeys.outbox
 WHERE client_id = :'cid' AND event = 'handoff_link' ORDER BY id DESC LIMIT 1 \gset
SELECT payload->>'code' AS code4 FROM apikeys.outbox
 WHERE client_id = :'cid' AND event = 'handoff_code' ORDER BY id DESC LIMIT 1 \gset
-- the old claim stays used; the new one works once
SET ROLE regress_verifier;
SELECT err(format('SELECT apikeys.claim_key(%L, %L)', :'claim', :'code')) AS old_claim;
SELECT token AS tok4 FROM apikeys.claim_key(:'claim4', :'code4') \gset
SELECT (apikeys.verify(:'tok4')).code AS claimed, (apikeys.verify(:'tok')).code AS before_reset;
RESET ROLE;
-- resetting a locked key's handoff supersedes the locked claim
SET ROLE regress_admin;
SELECT apikeys.reset_key(:'cid2');
RESET ROLE;
SELECT failures, locked_at IS NOT NULL AS locked, superseded_at IS NOT NULL AS superseded
  FROM apikeys.claims WHERE client_id = :'cid2' ORDER BY id;

-- Invalid input: reset_key
SET ROLE regress_admin;
SELECT err($$SELECT apikeys.reset_key('ak_nosuchkey000000000')$$);
SELECT err($$SELECT apikeys.reset_key(NULL)$$);
SELECT (k).client_id AS cid5
  FROM (SELECT apikeys.create_key('spektrix', 'no contacts', '{events:read}') AS k) s \gset
SELECT err(format('SELECT apikeys.reset_key(%L)', :'cid5'));
SELECT apikeys.revoke_key(:'cid5');
SELECT err(format('SELECT apikeys.reset_key(%L)', :'cid5'));
-- a revoked pending key cannot be claimed
SELECT apikeys.revoke_key(:'cid2');
RESET ROLE;
SELECT payload->>'claim_token' AS claim6 FROM apikeys.outbox
 WHERE client_id = :'cid2' AND event = 'handoff_link' ORDER BY id DESC LIMIT 1 \gset
SELECT payload->>'code' AS code6 FROM apikeys.outbox
 WHERE client_id = :'cid2' AND event = 'handoff_code' ORDER BY id DESC LIMIT 1 \gset
SET ROLE regress_verifier;
SELECT err(format('SELECT apikeys.claim_key(%L, %L)', :'claim6', :'code6')) AS revoked;

-- Privileges: reset_key is the admin's, claim_key the verifier's
SELECT err(format('SELECT apikeys.reset_key(%L)', :'cid'));
SET ROLE regress_nobody;
SELECT err(format('SELECT apikeys.claim_key(%L, %L)', :'claim4', :'code4'));
SET ROLE regress_admin;
SELECT err(format('SELECT apikeys.claim_key(%L, %L)', :'claim4', :'code4'));
RESET ROLE;

-- search_path hijack: the new SECURITY DEFINER functions under an
-- attacker's search_path (planted public functions, pg_temp operators and
-- tables) run none of it and write only their own tables
SET client_min_messages = warning;
CREATE TABLE public.handoff_hijack_log (run_as text, what text);
GRANT INSERT, SELECT ON public.handoff_hijack_log TO PUBLIC;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO public.handoff_hijack_log VALUES (current_user, 'now'); RETURN '2000-01-01'; END $$;
CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO public.handoff_hijack_log VALUES (current_user, 'clock_timestamp'); RETURN '2000-01-01'; END $$;
CREATE FUNCTION public.sha256(bytea) RETURNS bytea LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO public.handoff_hijack_log VALUES (current_user, 'sha256'); RETURN '\x00'; END $$;
CREATE FUNCTION public.convert_to(text, name) RETURNS bytea LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO public.handoff_hijack_log VALUES (current_user, 'convert_to'); RETURN '\x00'; END $$;
CREATE FUNCTION public.current_setting(text, boolean) RETURNS text LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO public.handoff_hijack_log VALUES (current_user, 'current_setting'); RETURN '1'; END $$;
CREATE FUNCTION public.pg_notify(text, text) RETURNS void LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO public.handoff_hijack_log VALUES (current_user, 'pg_notify'); END $$;
CREATE FUNCTION pg_temp.evil_eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO public.handoff_hijack_log VALUES (current_user, '='); RETURN true; END $$;
CREATE OPERATOR pg_temp.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = pg_temp.evil_eq);
CREATE TEMP TABLE outbox (id bigint, payload jsonb);
CREATE TEMP TABLE claims (id bigint, token_hash bytea);
GRANT ALL ON pg_temp.outbox, pg_temp.claims TO PUBLIC;
RESET client_min_messages;
DELETE FROM apikeys.outbox;
SET ROLE regress_admin;
SET search_path = pg_temp, public, pg_catalog;
-- control: the trap catches an unpinned caller
SELECT now() = '2000-01-01' AS control_trapped;
SELECT client_id AS hj FROM apikeys.create_key('spektrix', 'hijack', '{events:read}',
        contact_email => 'int@example.com', contact_phone => '+447894123456', handoff => true) \gset
SELECT apikeys.reset_key(:'hj');
SELECT apikeys.set_owner_policy('spektrix', rotate_every => '1 day');
SELECT apikeys.apply_policies() >= 0 AS applied;
RESET search_path;
RESET ROLE;
SELECT payload->>'claim_token' AS hjc FROM apikeys.outbox
 WHERE client_id = :'hj' AND event = 'handoff_link' ORDER BY id DESC LIMIT 1 \gset
SELECT payload->>'code' AS hjd FROM apikeys.outbox
 WHERE client_id = :'hj' AND event = 'handoff_code' ORDER BY id DESC LIMIT 1 \gset
-- reset_key superseded the first claim while it was open: its link and
-- code left the outbox, only the new claim's two rows hold secrets
SELECT count(*) AS rows_with_secrets, count(DISTINCT claim_id) AS claims FROM apikeys.outbox
 WHERE client_id = :'hj' AND payload ?| ARRAY['claim_token', 'code'];
SET ROLE regress_verifier;
SET search_path = pg_temp, public, pg_catalog;
SELECT err(format('SELECT apikeys.claim_key(%L, %L)', :'hjc', '000000')) LIKE '28000:%' AS wrong_refused
 WHERE :'hjd' <> '000000';
SELECT (apikeys.claim_key(:'hjc', :'hjd')).token IS NOT NULL AS claimed;
RESET search_path;
SET ROLE regress_delivery;
SET search_path = pg_temp, public, pg_catalog;
SELECT count(*) > 0 AS taken FROM apikeys.outbox_take(100, '1 minute');
SELECT apikeys.outbox_done(min(id)) FROM apikeys.outbox;
SELECT apikeys.outbox_retry(max(id), 'x') FROM apikeys.outbox;
RESET search_path;
RESET ROLE;
SELECT run_as, what FROM public.handoff_hijack_log;
SELECT (SELECT count(*) FROM pg_temp.outbox) AS temp_outbox, (SELECT count(*) FROM pg_temp.claims) AS temp_claims;
SELECT status FROM apikeys.key_list WHERE client_id = :'hj';
SELECT claimed_at IS NOT NULL AS claimed FROM apikeys.claims WHERE client_id = :'hj' ORDER BY id;
DROP FUNCTION public.now(), public.clock_timestamp(), public.sha256(bytea), public.convert_to(text, name),
     public.current_setting(text, boolean), public.pg_notify(text, text);
DROP OPERATOR pg_temp.= (bigint, bigint);
DROP FUNCTION pg_temp.evil_eq(bigint, bigint);
DROP TABLE public.handoff_hijack_log, pg_temp.outbox, pg_temp.claims;
