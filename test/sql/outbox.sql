\i test/setup.sql
--
-- outbox: rows written with the change they report, leased by
-- outbox_take, finished by outbox_done, retried with backoff by
-- outbox_retry, given up after apikeys.outbox_max_attempts.
--
DELETE FROM apikeys.outbox;

-- Invalid input
SET ROLE regress_delivery;
SELECT err('SELECT * FROM apikeys.outbox_take(0)');
SELECT err('SELECT * FROM apikeys.outbox_take(10001)');
SELECT err('SELECT * FROM apikeys.outbox_take(NULL)');
SELECT err($$SELECT * FROM apikeys.outbox_take(10, '0.5 seconds')$$);
SELECT err($$SELECT * FROM apikeys.outbox_take(10, '2 days')$$);
SELECT err($$SELECT * FROM apikeys.outbox_take(10, NULL)$$);
SELECT err('SELECT apikeys.outbox_done(-1)');
SELECT err('SELECT apikeys.outbox_done(NULL)');
SELECT err($$SELECT apikeys.outbox_retry(-1, 'x')$$);
RESET ROLE;

-- Written in the transaction of the change: a rolled-back change leaves none
BEGIN;
SET LOCAL ROLE regress_admin;
SELECT (apikeys.create_key('outbox', 'rolled back', '{}')).client_id IS NOT NULL AS created;
ROLLBACK;
SELECT count(*) AS rows_after_rollback FROM apikeys.outbox;

SET ROLE regress_admin;
SELECT (apikeys.create_key('outbox', 'k' || i, '{docs:read}')).client_id IS NOT NULL AS created
  FROM generate_series(1, 3) i;
SELECT (k).client_id AS cid FROM (SELECT apikeys.create_key('outbox', 'k4', '{}') AS k) s \gset
SELECT apikeys.disable_key(:'cid', 'testing');
RESET ROLE;
-- every audit row became one event (channel NULL) naming its audit row
SELECT o.event, o.channel, o.recipient, o.attempts, o.delivered_at, o.owner,
       (o.payload->>'audit_id')::bigint = a.id AS audit_row,
       o.payload->'detail' = a.detail AS same_detail
  FROM apikeys.outbox o
  JOIN apikeys.audit_log a ON a.id = (o.payload->>'audit_id')::bigint
 ORDER BY o.id;
SELECT min(id) AS r1, min(id) + 1 AS r2, min(id) + 2 AS r3, min(id) + 3 AS r4, min(id) + 4 AS r5
  FROM apikeys.outbox \gset

-- outbox_take: oldest first, leased; a second take skips leased rows
SET ROLE regress_delivery;
SELECT id - :r1 AS n, event, attempts, leased_until > now() AS leased, leased_by LIKE 'regress_delivery pid %' AS by_me
  FROM apikeys.outbox_take(2);
SELECT id - :r1 AS n, event, attempts FROM apikeys.outbox_take(10, '1 hour');
SELECT count(*) AS nothing_left FROM apikeys.outbox_take(10);

-- outbox_done: delivered, idempotent; a delivered row cannot be retried
SELECT apikeys.outbox_done(:r1);
SELECT apikeys.outbox_done(:r1);
SELECT regexp_replace(err(format('SELECT apikeys.outbox_retry(%s, %L)', :r1, 'late')), '[0-9]+ has', 'N has') AS late_retry;
SELECT delivered_at IS NOT NULL AS delivered, leased_until FROM apikeys.outbox WHERE id = :r1;

-- outbox_retry: back after apikeys.outbox_backoff, doubled per attempt
BEGIN;
SELECT apikeys.outbox_retry(:r2, 'SMTP 451 try later');
SELECT attempts, available_at - now() AS backoff, last_error, leased_until
  FROM apikeys.outbox WHERE id = :r2;
COMMIT;
SELECT count(*) AS not_due_yet FROM apikeys.outbox_take(10) WHERE id = :r2;
RESET ROLE;
UPDATE apikeys.outbox SET available_at = now() WHERE id = :r2;
SET ROLE regress_delivery;
SELECT id - :r1 AS n, attempts FROM apikeys.outbox_take(10);
BEGIN;
SELECT apikeys.outbox_retry(:r2, repeat('e', 2000));
SELECT attempts, available_at - now() AS backoff, length(last_error) AS error_len
  FROM apikeys.outbox WHERE id = :r2;
COMMIT;
RESET ROLE;

-- apikeys.outbox_max_backoff caps the delay
SET apikeys.outbox_max_backoff = '15s';
UPDATE apikeys.outbox SET available_at = now() WHERE id = :r2;
SET ROLE regress_delivery;
SELECT id - :r1 AS n, attempts FROM apikeys.outbox_take(10);
BEGIN;
SELECT apikeys.outbox_retry(:r2, 'again');
SELECT attempts, available_at - now() AS backoff FROM apikeys.outbox WHERE id = :r2;
COMMIT;
RESET ROLE;
RESET apikeys.outbox_max_backoff;

-- apikeys.outbox_max_attempts: the last failed attempt gives the row up
SET apikeys.outbox_max_attempts = 4;
UPDATE apikeys.outbox SET available_at = now() WHERE id = :r2;
SET ROLE regress_delivery;
SELECT id - :r1 AS n, attempts FROM apikeys.outbox_take(10);
SELECT apikeys.outbox_retry(:r2, 'still down');
SELECT attempts, failed_at IS NOT NULL AS given_up, last_error FROM apikeys.outbox WHERE id = :r2;
RESET ROLE;
UPDATE apikeys.outbox SET available_at = now() WHERE id = :r2;
SET ROLE regress_delivery;
SELECT count(*) AS given_up_rows_taken FROM apikeys.outbox_take(10) WHERE id = :r2;
RESET ROLE;

-- A taker that dies between outbox_take and outbox_done: the row comes
-- back when its lease ends (attempts counts the lost one)
SET ROLE regress_admin;
SELECT apikeys.enable_key(:'cid');
RESET ROLE;
SELECT max(id) AS r6 FROM apikeys.outbox \gset
SET ROLE regress_delivery;
SELECT id - :r1 AS n, event, attempts FROM apikeys.outbox_take(1, '1 second');
SELECT count(*) AS while_leased FROM apikeys.outbox_take(10) WHERE id = :r6;
SELECT pg_sleep(1.2);
SELECT id - :r1 AS n, event, attempts FROM apikeys.outbox_take(10, '1 hour') WHERE id = :r6;
-- a lease that runs out on the last allowed attempt gives the row up
RESET ROLE;
UPDATE apikeys.outbox SET attempts = 3, leased_until = now() - interval '1 second' WHERE id = :r5;
SET ROLE regress_delivery;
SELECT id - :r1 AS n, attempts FROM apikeys.outbox_take(10) WHERE id = :r5;
RESET ROLE;
UPDATE apikeys.outbox SET leased_until = now() - interval '1 second' WHERE id = :r5;
SET ROLE regress_delivery;
SELECT count(*) AS taken FROM apikeys.outbox_take(10) WHERE id = :r5;
SELECT attempts, failed_at IS NOT NULL AS given_up, last_error FROM apikeys.outbox WHERE id = :r5;
RESET ROLE;
RESET apikeys.outbox_max_attempts;

-- Retention: apply_policies deletes delivered and given-up rows older
-- than apikeys.outbox_retention (0 keeps them)
UPDATE apikeys.outbox SET delivered_at = now() - interval '8 days' WHERE id = :r1;
SET apikeys.outbox_retention = 0;
SET ROLE regress_admin;
SELECT apikeys.apply_policies();
RESET ROLE;
SELECT count(*) AS kept FROM apikeys.outbox WHERE id = :r1;
RESET apikeys.outbox_retention;
SET ROLE regress_admin;
SELECT apikeys.apply_policies();
RESET ROLE;
SELECT count(*) AS purged FROM apikeys.outbox WHERE id = :r1;
SELECT count(*) AS recent_kept FROM apikeys.outbox WHERE id IN (:r2, :r5);

-- One-time secrets leave a delivery row when it is done (issue 18 item
-- 11; before, only a TAP file read the payload after outbox_done): a
-- retried row keeps them (it must still be delivered), outbox_done erases
-- the claim token from the link row and the code from the code row, each
-- on its own, and keeps the rest of the payload
SET ROLE regress_admin;
SELECT client_id AS hcid FROM apikeys.create_key('outbox', 'handed off', '{docs:read}',
        contact_email => 'int@example.com', contact_phone => '+447894123456', handoff => true) \gset
RESET ROLE;
SELECT id AS link_row FROM apikeys.outbox WHERE client_id = :'hcid' AND event = 'handoff_link' \gset
SELECT id AS code_row FROM apikeys.outbox WHERE client_id = :'hcid' AND event = 'handoff_code' \gset
SET ROLE regress_delivery;
SELECT count(*) AS taken FROM apikeys.outbox_take(100) WHERE client_id = :'hcid' AND channel IS NOT NULL;
SELECT apikeys.outbox_retry(:link_row, 'SMTP 451 try later');
SELECT event, payload ? 'claim_token' AS has_token, payload ? 'code' AS has_code
  FROM apikeys.outbox WHERE id IN (:link_row, :code_row) ORDER BY id;
SELECT apikeys.outbox_done(:code_row);
SELECT event, payload ? 'claim_token' AS has_token, payload ? 'code' AS has_code,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(payload) k) AS payload_keys
  FROM apikeys.outbox WHERE id IN (:link_row, :code_row) ORDER BY id;
RESET ROLE;
UPDATE apikeys.outbox SET available_at = now() WHERE id = :link_row;
SET ROLE regress_delivery;
SELECT count(*) AS retaken FROM apikeys.outbox_take(100) WHERE id = :link_row;
SELECT apikeys.outbox_done(:link_row);
-- and a second outbox_done (at-least-once delivery) changes nothing
SELECT apikeys.outbox_done(:link_row);
SELECT event, payload ? 'claim_token' AS has_token, payload ? 'code' AS has_code,
       delivered_at IS NOT NULL AS delivered,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(payload) k) AS payload_keys
  FROM apikeys.outbox WHERE id IN (:link_row, :code_row) ORDER BY id;
RESET ROLE;
SELECT count(*) AS rows_with_secrets FROM apikeys.outbox
 WHERE client_id = :'hcid' AND payload ?| ARRAY['claim_token', 'code'];


-- Privileges: the delivery role reads the outbox and calls the three
-- functions; nothing else
SET ROLE regress_delivery;
SELECT err('SELECT count(*) FROM apikeys.keys');
SELECT err('SELECT count(*) FROM apikeys.key_list');
SELECT err('SELECT count(*) FROM apikeys.audit_log');
SELECT err('DELETE FROM apikeys.outbox');
SELECT err('UPDATE apikeys.outbox SET attempts = 0');
SELECT err($$SELECT apikeys.create_key('x', 'y', '{}')$$);
SELECT err('SELECT apikeys.apply_policies()');
SELECT err($$SELECT apikeys_internal._deliver('x', NULL, NULL, NULL, NULL, '{}')$$);
SET ROLE regress_admin;
SELECT err('SELECT * FROM apikeys.outbox_take()');
SELECT err('SELECT apikeys.outbox_done(1)');
SET ROLE regress_verifier;
SELECT err('SELECT * FROM apikeys.outbox_take()');
RESET ROLE;
