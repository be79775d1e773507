\i test/setup.sql
--
-- credits: a key's balance and refill rule, the cost of a verification,
-- USAGE_EXCEEDED, add_credits and the credit part of the no-escalation
-- rule.  Preloaded the balance lives in shared memory (flushed by
-- _credits_flush / the worker); without preloading each spend is a row
-- update: the answers are the same, but for pre_request, which writes
-- nothing: without preloading a key with credits answers USAGE_EXCEEDED
-- there (expected/credits_1.out).
--
SELECT apikeys_internal._preloaded() AS preloaded;
SET client_min_messages = warning;
SELECT apikeys.set_owner_policy('cr_acme', max_keys => 30);

-- Invalid settings: 22023 with a hint, nothing written ------------------------
SET ROLE regress_admin;
SELECT err($$SELECT apikeys.create_key('cr_acme', 'neg', '{}', credits => -1)$$);
SELECT err($$SELECT apikeys.create_key('cr_acme', 'r0', '{}', credits => 5, refill_amount => 0, refill_every => '1 day')$$);
SELECT err($$SELECT apikeys.create_key('cr_acme', 'ronly', '{}', credits => 5, refill_every => '1 day')$$);
SELECT err($$SELECT apikeys.create_key('cr_acme', 'aonly', '{}', credits => 5, refill_amount => 5)$$);
SELECT err($$SELECT apikeys.create_key('cr_acme', 'fast', '{}', refill_amount => 5, refill_every => '10 ms')$$);
SELECT err($$SELECT apikeys.create_key('cr_acme', 'zero', '{}', refill_amount => 5, refill_every => '0')$$);
SELECT err($$SELECT apikeys.create_key('cr_acme', 'long', '{}', refill_amount => 5, refill_every => '101 years')$$);
RESET ROLE;
SELECT count(*) AS keys_written FROM apikeys.keys WHERE owner = 'cr_acme';
SET ROLE regress_admin;

-- A key with 3 credits: three VALID, then USAGE_EXCEEDED, none taken -----------
SELECT (k).client_id AS cid, (k).token AS tok, (k).client_secret AS secret
  FROM (SELECT apikeys.create_key('cr_acme', 'three', ARRAY['api:read'], credits => 3) k) s \gset
SELECT (k).token AS free_tok
  FROM (SELECT apikeys.create_key('cr_acme', 'unlimited', ARRAY['api:read']) k) s \gset
SELECT valid, code, http_status, credits_remaining, derived FROM apikeys.verify(:'free_tok');
SELECT code, credits_remaining FROM apikeys.verify(:'tok');
-- a refused verification takes nothing but shows the balance
SELECT code, credits_remaining FROM apikeys.verify(:'tok', 'api:write');
SELECT code, credits_remaining FROM apikeys.verify(:'tok', cost => 3);
SELECT code, credits_remaining FROM apikeys.verify(:'tok', cost => 2);
SELECT valid, code, http_status, retry_after, credits_remaining FROM apikeys.verify(:'tok');
SELECT code, credits_remaining FROM apikeys.verify_client(:'cid', :'secret', cost => 1);
-- cost: a positive number of credits, else 22023 (for keys without credits too)
SELECT err($$SELECT apikeys.verify('x', cost => 0)$$);
SELECT err($$SELECT apikeys.verify('x', cost => -5)$$);
SELECT err($$SELECT apikeys.verify('x', cost => NULL)$$);
SELECT err($$SELECT apikeys.verify_client('x', 'y', cost => 0)$$);

-- add_credits: a top-up on what is left; audited, with an outbox event ---------
SELECT err($$SELECT apikeys.add_credits('nosuch_key', 5)$$);
SELECT err(format('SELECT apikeys.add_credits(%L, 0)', :'cid'));
SELECT err(format('SELECT apikeys.add_credits(%L, -3)', :'cid'));
SELECT err(format('SELECT apikeys.add_credits(k.client_id, 3) FROM apikeys.key_list k WHERE k.name = %L', 'unlimited'));
SELECT apikeys.add_credits(:'cid', 5) AS balance;
SELECT code, credits_remaining FROM apikeys.verify(:'tok', cost => 4);
SELECT event, detail - 'by_key' AS detail FROM apikeys.audit_log
 WHERE client_id = :'cid' AND event LIKE 'credits%' ORDER BY at, id;
RESET ROLE;
SELECT event, payload->'detail'->'amount' AS amount FROM apikeys.outbox
 WHERE client_id = :'cid' AND event = 'credits_added';
SET ROLE regress_admin;
-- spends are not audited
SELECT count(*) AS audit_rows FROM apikeys.audit_log WHERE client_id = :'cid';

-- update_key sets the balance outright (audited as a change) -----------------
SELECT apikeys.update_key(:'cid', credits => 2);
SELECT code, credits_remaining FROM apikeys.verify(:'tok');
SELECT detail->'changes'->'credits'->'new' AS credits_set_to FROM apikeys.audit_log
 WHERE client_id = :'cid' AND event = 'updated' ORDER BY id DESC LIMIT 1;
SELECT err(format('SELECT apikeys.update_key(%L, credits => -1)', :'cid'));
SELECT err(format('SELECT apikeys.update_key(%L, refill_amount => 5)', :'cid'));
SELECT err(format('SELECT apikeys.update_key(%L, refill_every => %L)', :'cid', '1 hour'));
-- authenticate takes one credit, and out of credits raises 54000
BEGIN;
SELECT code, credits_remaining FROM apikeys.authenticate(:'tok');
COMMIT;
SELECT err(format('SELECT apikeys.authenticate(%L)', :'tok'));

-- The balance reaches credit_balances (flushed; without preloading at each spend)
RESET ROLE;
SELECT apikeys_internal._credits_flush() >= 0 AS flushed;
SELECT b.balance, b.credits_seq, b.added_seen, k.credits_seq AS key_seq, k.credits_added AS key_added
  FROM apikeys.credit_balances b JOIN apikeys.keys k USING (client_id) WHERE client_id = :'cid';
SET ROLE regress_admin;

-- Refill: set back to refill_amount once the period is over ------------------
SELECT (k).client_id AS rcid, (k).token AS rtok
  FROM (SELECT apikeys.create_key('cr_acme', 'refill', '{}', refill_amount => 2,
                                  refill_every => '2 seconds') k) s \gset
SELECT code, credits_remaining FROM apikeys.verify(:'rtok');
SELECT code, credits_remaining FROM apikeys.verify(:'rtok');
SELECT code, http_status, retry_after BETWEEN 1 AND 2 AS retry_until_refill, credits_remaining
  FROM apikeys.verify(:'rtok');
SELECT pg_sleep(2.1);
SELECT code, credits_remaining FROM apikeys.verify(:'rtok');
-- a top-up after the refill is kept (the refill applies first)
SELECT apikeys.add_credits(:'rcid', 10) AS balance;

-- Self-service cannot escape credits ------------------------------------------
SELECT (k).client_id AS mcid, (k).token AS mtok
  FROM (SELECT apikeys.create_key('cr_acme', 'manager', ARRAY['apikeys:*', 'api:read'],
                                  credits => 100, refill_amount => 50,
                                  refill_every => '1 day') k) s \gset
SELECT (k).client_id AS ucid
  FROM (SELECT apikeys.create_key('cr_acme', 'free child', ARRAY['api:read'],
                                  expires_at => now() + interval '30 days') k) s \gset
RESET ROLE;
SET ROLE regress_verifier;
BEGIN;
SELECT code, credits_remaining FROM apikeys.authenticate(:'mtok');
-- more than it can hold, unlimited, a refill larger or faster than its own
SELECT err($$SELECT apikeys.my_create_key('c1', ARRAY['api:read'], credits => 1000)$$);
SELECT err($$SELECT apikeys.my_create_key('c2', ARRAY['api:read'], credits => 10, refill_amount => 60, refill_every => '1 day')$$);
SELECT err($$SELECT apikeys.my_create_key('c3', ARRAY['api:read'], credits => 10, refill_amount => 10, refill_every => '1 hour')$$);
-- within its power: allowed; no credit arguments inherit its refill rule
SELECT err($$SELECT apikeys.my_create_key('c4', ARRAY['api:read'], credits => 99, refill_amount => 5, refill_every => '1 week')$$);
SELECT err($$SELECT apikeys.my_create_key('c5', ARRAY['api:read'])$$);
-- a key without credits is beyond its power: no change, no rotation
SELECT err(format('SELECT apikeys.my_update_key(%L, name => %L)', :'ucid', 'renamed'));
SELECT err(format('SELECT apikeys.my_disable_key(%L)', :'ucid'));
-- a child of its own cannot be given more
SELECT err(format('SELECT apikeys.my_update_key(k.client_id, credits => 500) FROM apikeys.my_keys k WHERE k.name = %L', 'c4'));
SELECT err(format('SELECT apikeys.my_update_key(k.client_id, credits => 7) FROM apikeys.my_keys k WHERE k.name = %L', 'c4'));
-- ... but emptied: a balance of 0 never gives back what was spent
SELECT err(format('SELECT apikeys.my_update_key(k.client_id, credits => 0) FROM apikeys.my_keys k WHERE k.name = %L', 'c4'));
COMMIT;
RESET ROLE;
SELECT name, credits, refill_amount, refill_every FROM apikeys.keys
 WHERE owner = 'cr_acme' AND name IN ('c4', 'c5') ORDER BY name;
-- a manager without credits may give credits freely
SET ROLE regress_admin;
SELECT (k).token AS ftok
  FROM (SELECT apikeys.create_key('cr_acme', 'free manager', ARRAY['apikeys:*', 'api:read']) k) s \gset
RESET ROLE;
SET ROLE regress_verifier;
BEGIN;
SELECT code, credits_remaining FROM apikeys.authenticate(:'ftok');
SELECT err($$SELECT apikeys.my_create_key('c6', ARRAY['api:read'], credits => 1000000)$$);
COMMIT;
RESET ROLE;

-- pre_request takes one credit (preloaded: in shared memory, nothing written);
-- out of credits it answers 429, with Retry-After only when a refill comes
SET ROLE regress_admin;
SELECT (k).client_id AS pcid, (k).token AS ptok
  FROM (SELECT apikeys.create_key('cr_acme', 'postgrest', '{}', credits => 1) k) s \gset
SELECT (k).token AS prtok
  FROM (SELECT apikeys.create_key('cr_acme', 'postgrest refill', '{}', credits => 0,
                                  refill_amount => 5, refill_every => '1 hour') k) s \gset
RESET ROLE;
SET ROLE regress_verifier;
BEGIN;
SELECT set_config('request.headers', json_build_object('x-api-key', :'ptok')::text, true) IS NOT NULL AS headers_set;
SELECT err('SELECT apikeys.pre_request()');
SELECT apikeys.current_client_id() = :'pcid' AS authenticated;
COMMIT;
BEGIN;
SELECT set_config('request.headers', json_build_object('x-api-key', :'ptok')::text, true) IS NOT NULL AS headers_set;
SELECT err('SELECT apikeys.pre_request()');
COMMIT;
BEGIN;
SELECT set_config('request.headers', json_build_object('x-api-key', :'prtok')::text, true) IS NOT NULL AS headers_set;
SELECT regexp_replace(err('SELECT apikeys.pre_request()'), '"Retry-After":"[0-9]+"', '"Retry-After":"<n>"') AS answer;
COMMIT;
RESET ROLE;

-- The verification row ends with the two new attributes
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'apikeys.verification'::regclass AND attnum > 13 ORDER BY attnum;

-- key_list and my_keys end with credits_remaining: the live balance (what the
-- next verification finds, not the stored one), NULL for a key without credits
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.oid IN ('apikeys.key_list'::regclass, 'apikeys.my_keys'::regclass)
   AND a.attnum = (SELECT max(attnum) FROM pg_attribute WHERE attrelid = c.oid)
 ORDER BY 1;
SET ROLE regress_admin;
SELECT (k).client_id AS lcid, (k).token AS ltok
  FROM (SELECT apikeys.create_key('cr_acme', 'listed', ARRAY['api:read'], credits => 10) k) s \gset
SELECT code, credits_remaining FROM apikeys.verify(:'ltok', cost => 3);
SELECT name, credits_remaining FROM apikeys.key_list
 WHERE owner = 'cr_acme' AND name IN ('listed', 'unlimited') ORDER BY name;
RESET ROLE;
SET ROLE regress_verifier;
BEGIN;
SELECT code FROM apikeys.authenticate(:'ftok');
SELECT name, credits_remaining FROM apikeys.my_keys WHERE name IN ('listed', 'unlimited') ORDER BY name;
COMMIT;
RESET ROLE;

-- remove_credits: back to unlimited use (update_key cannot: NULL leaves a
-- setting, 0 is a balance); audited with the balance it had; a key without
-- credits: false, nothing written; a balance given again starts afresh
SET ROLE regress_admin;
SELECT apikeys.remove_credits(:'lcid') AS removed;
SELECT valid, code, credits_remaining FROM apikeys.verify(:'ltok', cost => 50);
SELECT name, credits_remaining FROM apikeys.key_list WHERE client_id = :'lcid';
SELECT event, detail - 'by_key' AS detail FROM apikeys.audit_log
 WHERE client_id = :'lcid' AND event = 'credits_removed';
SELECT apikeys.remove_credits(:'lcid') AS removed_again;
SELECT count(*) AS audit_rows FROM apikeys.audit_log WHERE client_id = :'lcid' AND event = 'credits_removed';
SELECT err($$SELECT apikeys.remove_credits('nosuch_key')$$);
SELECT apikeys.update_key(:'lcid', credits => 4);
SELECT code, credits_remaining FROM apikeys.verify(:'ltok');
RESET ROLE;
SELECT event FROM apikeys.outbox WHERE client_id = :'lcid' AND event = 'credits_removed';
-- self-service: only a key without credits may remove credits (unlimited use
-- is beyond the power of a key with credits, even for its own child)
SET ROLE regress_verifier;
BEGIN;
SELECT code FROM apikeys.authenticate(:'mtok');
SELECT err(format('SELECT apikeys.my_remove_credits(k.client_id) FROM apikeys.my_keys k WHERE k.name = %L', 'c4'));
SELECT err(format('SELECT apikeys.my_remove_credits(%L)', :'mcid'));
COMMIT;
BEGIN;
SELECT code FROM apikeys.authenticate(:'ftok');
SELECT err(format('SELECT apikeys.my_remove_credits(k.client_id) FROM apikeys.my_keys k WHERE k.name = %L', 'c6'));
COMMIT;
RESET ROLE;
SELECT name, credits, refill_amount, refill_every FROM apikeys.keys
 WHERE owner = 'cr_acme' AND name IN ('c4', 'c6', 'manager') ORDER BY name;
SELECT event, detail->>'by_key' IS NOT NULL AS by_key FROM apikeys.audit_log
 WHERE event = 'credits_removed' AND client_id = (SELECT client_id FROM apikeys.keys WHERE name = 'c6');

-- Imported keys take credits after the import (import_key has no credit
-- arguments): update_key gives a balance, add_credits tops it up
SET ROLE regress_admin;
SELECT apikeys.import_key('cr_acme', 'imported', ARRAY['api:read'], token => 'sk_legacy_credits_0123456789') AS icid \gset
SELECT code, credits_remaining FROM apikeys.verify('sk_legacy_credits_0123456789');
SELECT apikeys.update_key(:'icid', credits => 1);
SELECT code, credits_remaining FROM apikeys.verify('sk_legacy_credits_0123456789');
SELECT code, credits_remaining FROM apikeys.verify('sk_legacy_credits_0123456789');
SELECT apikeys.add_credits(:'icid', 2) AS balance;
SELECT code, credits_remaining FROM apikeys.verify('sk_legacy_credits_0123456789', cost => 2);
RESET ROLE;

-- report_leaked takes no credit and works on a key with none left
SET ROLE regress_admin;
SELECT (k).client_id AS k5cid, (k).token AS k5tok
  FROM (SELECT apikeys.create_key('cr_acme', 'leaked five', '{}', credits => 5) k) s \gset
SELECT (k).client_id AS k0cid, (k).token AS k0tok
  FROM (SELECT apikeys.create_key('cr_acme', 'leaked none', '{}', credits => 0) k) s \gset
SELECT code, credits_remaining FROM apikeys.verify(:'k5tok');
RESET ROLE;
SET ROLE regress_nobody;
SELECT apikeys.report_leaked(:'k5tok');
SELECT apikeys.report_leaked(:'k0tok');
RESET ROLE;
SET ROLE regress_admin;
SELECT name, status, credits_remaining FROM apikeys.key_list
 WHERE client_id IN (:'k5cid', :'k0cid') ORDER BY name;
RESET ROLE;
