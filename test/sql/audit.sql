\i test/setup.sql
--
-- audit: one row per change, never a secret, append-only.
--
\set VERBOSITY terse
CREATE TEMP TABLE secrets (s text);
SELECT apikeys.set_owner_policy('tyrell', max_keys => 10);
SELECT min(id) AS first_id FROM (SELECT max(id) + 1 AS id FROM apikeys.audit_log) s \gset

SET ROLE regress_admin;
SELECT (k).client_id AS cid, (k).token AS tok, (k).client_secret AS sec
  FROM (SELECT apikeys.create_key('tyrell', 'replicant', '{memories:read}') AS k) s \gset
RESET ROLE;
INSERT INTO secrets VALUES (:'tok'), (:'sec');
SET ROLE regress_admin;
SELECT apikeys.update_key(:'cid', name => 'nexus-6', scopes => '{memories:read, memories:update}');
SELECT (k).token AS tok2, (k).client_secret AS sec2 FROM (SELECT apikeys.rotate_key(:'cid', '5 minutes') AS k) s \gset
SELECT apikeys.disable_key(:'cid', 'retirement pending');
SELECT apikeys.enable_key(:'cid');
SELECT apikeys.revoke_key(:'cid', 'retired');
SELECT apikeys.delete_key(:'cid');
SELECT apikeys.set_owner_policy('tyrell', max_keys => 4);
SELECT count(*) FROM (SELECT apikeys.create_key('tyrell', 'b' || i, '{}') FROM generate_series(1, 2) i) s;
SELECT apikeys.revoke_all_keys('tyrell', 'company closed');
RESET ROLE;
INSERT INTO secrets VALUES (:'tok2'), (:'sec2');

-- One row per change, in order, with who did it and from where.
SELECT event, client_id = :'cid' AS this_key, owner, actor, db_user, application_name,
       client_addr, txid IS NOT NULL AS has_txid,
       regexp_replace((detail - 'expires_at' - 'old_secret_valid_until')::text,
                      '"20[0-9-]+T[0-9:.+-]+"', '"<timestamp>"', 'g') AS detail
  FROM apikeys.audit_log WHERE id >= :first_id AND event <> 'revoked' OR (id >= :first_id AND client_id = :'cid')
 ORDER BY id;
SELECT count(*) AS revoked_rows_from_revoke_all
  FROM apikeys.audit_log WHERE id >= :first_id AND event = 'revoked' AND detail->>'all' = 'true';

-- No secret, token or hash ever reaches the audit log.
SELECT count(*) AS audit_rows_with_secrets
  FROM apikeys.audit_log a, secrets s
 WHERE a::text LIKE '%' || s.s || '%';
SELECT count(*) AS audit_rows_with_hashes
  FROM apikeys.audit_log a WHERE a.detail::text ~ 'secret_hash|\\x[0-9a-f]{64}';

-- A DBA's direct change to the table is audited too.
SELECT (k).client_id AS dcid FROM (SELECT apikeys.create_key('tyrell', 'direct', '{}') AS k) s \gset
UPDATE apikeys.keys SET name = 'changed in psql', secret_hash = sha256('x') WHERE client_id = :'dcid';
DELETE FROM apikeys.keys WHERE client_id = :'dcid';
SELECT event, detail FROM apikeys.audit_log WHERE client_id = :'dcid' AND event LIKE 'direct%' ORDER BY id;
-- last-used writes are not changes worth auditing
SELECT (k).client_id AS lcid FROM (SELECT apikeys.create_key('tyrell', 'lastused', '{}') AS k) s \gset
UPDATE apikeys.keys SET last_used_at = now() WHERE client_id = :'lcid';
SELECT count(*) AS audit_rows FROM apikeys.audit_log WHERE client_id = :'lcid';

-- Append-only: UPDATE, DELETE and TRUNCATE fail, even for a superuser.
SELECT err($$UPDATE apikeys.audit_log SET event = 'nothing happened'$$);
SELECT err($$DELETE FROM apikeys.audit_log$$);
SELECT err($$TRUNCATE apikeys.audit_log$$);
SELECT err($$TRUNCATE apikeys.keys$$);
SET ROLE regress_admin;
SELECT err($$UPDATE apikeys.audit_log SET event = 'x'$$);
SELECT err($$DELETE FROM apikeys.audit_log$$);
RESET ROLE;

-- Retention: purge_audit deletes old rows and leaves its own row.
SELECT count(*) AS total_before FROM apikeys.audit_log \gset
SELECT err($$SELECT apikeys.purge_audit('-1 day')$$);
SELECT err($$SELECT apikeys.purge_audit(NULL)$$);
SET ROLE regress_admin;
SELECT apikeys.purge_audit('1 day') AS purged_recent;
RESET ROLE;
SELECT count(*) - :total_before AS added FROM apikeys.audit_log;
SELECT event, detail FROM apikeys.audit_log ORDER BY id DESC LIMIT 1;
-- Back-dated rows (inserted with an old "at", as a restore would bring them)
-- are what a purge is for: exactly the rows older than the cut go, the
-- count returned says so, and the purge's own row records it.
INSERT INTO apikeys.audit_log (at, event, client_id, owner, detail)
SELECT now() - interval '1 day' * d, 'regress_old', 'ak_backdated' || d, 'regress_purge', '{}'
  FROM (VALUES (40), (35), (31), (29), (2)) v(d);
SELECT count(*) AS total_before FROM apikeys.audit_log \gset
SELECT count(*) AS older_than_30_days FROM apikeys.audit_log WHERE at < now() - interval '30 days';
SET ROLE regress_admin;
SELECT apikeys.purge_audit('30 days') AS purged;
RESET ROLE;
SELECT count(*) - :total_before AS rows_changed FROM apikeys.audit_log;
SELECT client_id FROM apikeys.audit_log WHERE event = 'regress_old' ORDER BY id;
SELECT event, actor, db_user, detail FROM apikeys.audit_log ORDER BY id DESC LIMIT 1;
SELECT count(*) AS older_than_30_days FROM apikeys.audit_log WHERE at < now() - interval '30 days';
-- after purging, the append-only rule holds again in the same transaction
BEGIN;
SELECT apikeys.purge_audit('100 years');
SELECT err($$DELETE FROM apikeys.audit_log$$);
ROLLBACK;
