\i test/setup.sql
--
-- hygiene: apikeys.key_hygiene lists live keys that need attention, each
-- with its findings, for administrators only
--
SET client_min_messages = warning;
SELECT apikeys.set_owner_policy('regress_hygiene', max_keys => 10);
CREATE TEMP TABLE hk AS
SELECT n, k.client_id
  FROM generate_series(1, 6) n,
       LATERAL apikeys.create_key('regress_hygiene', 'hygiene ' || n,
                                  CASE WHEN n = 1 THEN ARRAY['*'] ELSE ARRAY['docs:read'] END,
                                  expires_at => CASE WHEN n = 2 THEN now() + interval '3 days' END,
                                  contact_email => CASE WHEN n <> 3 THEN 'ops@example.com' END) k;
-- 4: issued a month ago and never used; 5: last used long ago;
-- 6: rotated with a grace that still runs
UPDATE apikeys.keys SET created_at = now() - interval '30 days', last_used_at = NULL
 WHERE client_id = (SELECT client_id FROM hk WHERE n = 4);
UPDATE apikeys.keys SET last_used_at = now() - interval '100 days'
 WHERE client_id = (SELECT client_id FROM hk WHERE n = 5);
SELECT count(*) AS rotated FROM hk, LATERAL apikeys.rotate_key(hk.client_id, '1 hour') WHERE n = 6;
SELECT hk.n, h.status, h.findings
  FROM apikeys.key_hygiene h JOIN hk USING (client_id) ORDER BY hk.n;
-- disabled keys stay listed; revoked and expired ones do not
SELECT apikeys.disable_key(client_id) FROM hk WHERE n = 3;
SELECT apikeys.revoke_key(client_id) FROM hk WHERE n = 1;
UPDATE apikeys.keys SET expires_at = now() - interval '1 second'
 WHERE client_id = (SELECT client_id FROM hk WHERE n = 2);
SELECT hk.n, h.status, h.findings
  FROM apikeys.key_hygiene h JOIN hk USING (client_id) ORDER BY hk.n;

-- Invalid access: admins read it, verifiers and PUBLIC do not
CREATE ROLE regress_hygiene_admin IN ROLE apikeys_admin;
CREATE ROLE regress_hygiene_verifier IN ROLE apikeys_verifier;
SET ROLE regress_hygiene_admin;
SELECT count(*) > 0 AS admin_reads_hygiene FROM apikeys.key_hygiene;
RESET ROLE;
SET ROLE regress_hygiene_verifier;
\set VERBOSITY sqlstate
SELECT * FROM apikeys.key_hygiene;
\set VERBOSITY default
RESET ROLE;
DROP ROLE regress_hygiene_admin, regress_hygiene_verifier;
SELECT apikeys.revoke_all_keys('regress_hygiene') >= 0 AS cleaned;
