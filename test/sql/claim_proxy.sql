\i test/setup.sql
--
-- claim_proxy: claim_key behind a proxy (issue 18 item 4).  The caller's
-- address is client_ip when a trusted backend passes it, else the one
-- pre_request would use (X-Forwarded-For / Forwarded under
-- apikeys.trust_forwarded_for), else the connection's.  Failed claims count
-- against that address in the throttle, but a claim with the right link and
-- code is never refused because other callers failed from the same address.
-- The address throttle lives in shared memory: without preloading nothing
-- is counted (claim_proxy_1.out), and the claims succeed all the same.
--
SELECT apikeys_internal._preloaded() AS preloaded;
DELETE FROM apikeys.outbox;
SET apikeys.max_failures = 3;

SET ROLE regress_admin;
SELECT client_id AS p1 FROM apikeys.create_key('proxied', 'one', '{docs:read}',
        contact_email => 'int@example.com', contact_phone => '+447894123456', handoff => true) \gset
SELECT client_id AS p2 FROM apikeys.create_key('proxied', 'two', '{docs:read}',
        contact_email => 'int@example.com', contact_phone => '+447894123456', handoff => true) \gset
SELECT client_id AS p3 FROM apikeys.create_key('proxied', 'three', '{docs:read}',
        contact_email => 'int@example.com', contact_phone => '+447894123456', handoff => true) \gset
RESET ROLE;
SELECT payload->>'claim_token' AS c1 FROM apikeys.outbox WHERE client_id = :'p1' AND event = 'handoff_link' \gset
SELECT payload->>'code' AS d1 FROM apikeys.outbox WHERE client_id = :'p1' AND event = 'handoff_code' \gset
SELECT payload->>'claim_token' AS c2 FROM apikeys.outbox WHERE client_id = :'p2' AND event = 'handoff_link' \gset
SELECT payload->>'code' AS d2 FROM apikeys.outbox WHERE client_id = :'p2' AND event = 'handoff_code' \gset
SELECT payload->>'claim_token' AS c3 FROM apikeys.outbox WHERE client_id = :'p3' AND event = 'handoff_link' \gset
SELECT payload->>'code' AS d3 FROM apikeys.outbox WHERE client_id = :'p3' AND event = 'handoff_code' \gset

-- client_ip: 100 junk claims (no credential) from the backend's client
-- 192.0.2.77 block that address ...
SET ROLE regress_verifier;
SELECT count(*) FILTER (WHERE e LIKE '28000:%') AS refused
  FROM (SELECT err(format('SELECT apikeys.claim_key(%L, %L, %L)', 'junk' || i, '000000', '192.0.2.77')) e
          FROM generate_series(1, 100) i) s;
RESET ROLE;
SELECT failures >= 3 AS counted, blocked FROM apikeys.failing_addresses WHERE address = '192.0.2.77';
-- ... and still, the integrator behind the same address claims with the
-- right link and code (the old claim_key refused every claim of a blocked
-- address)
SET ROLE regress_verifier;
SELECT client_id = :'p1' AS claimed_through_blocked_address
  FROM apikeys.claim_key(:'c1', :'d1', '192.0.2.77');
RESET ROLE;

-- Forwarded headers, exactly where pre_request reads them: a PostgREST
-- request whose proxy appended the client's address
SET apikeys.trust_forwarded_for = on;
SET ROLE regress_verifier;
SELECT set_config('request.headers', '{"x-forwarded-for": "203.0.113.9, 198.51.100.23"}', false) IS NOT NULL AS headers_set;
SELECT count(*) FILTER (WHERE e LIKE '28000:%') AS refused
  FROM (SELECT err(format('SELECT apikeys.claim_key(%L, %L)', 'junk' || i, '000000')) e
          FROM generate_series(1, 5) i) s;
RESET ROLE;
-- counted against the rightmost entry (the address the proxy saw), not
-- the client-written one on its left
SELECT address, failures FROM apikeys.failing_addresses
 WHERE address IN ('203.0.113.9', '198.51.100.23') ORDER BY address;
SET ROLE regress_verifier;
SELECT client_id = :'p2' AS claimed_through_forwarded_address
  FROM apikeys.claim_key(:'c2', :'d2');
-- a forwarding header with no readable client: INVALID_FORWARDED, as
-- pre_request answers a presented key, and no code is compared
SELECT set_config('request.headers', '{"x-forwarded-for": "not-an-address"}', false) IS NOT NULL AS headers_set;
SELECT err(format('SELECT apikeys.claim_key(%L, %L)', :'c3', '000000')) AS unreadable_forwarded;
RESET ROLE;
SELECT failures FROM apikeys.claims WHERE client_id = :'p3';
-- explicit client_ip wins over the headers
SET ROLE regress_verifier;
SELECT err(format('SELECT apikeys.claim_key(%L, %L, %L)', 'junk', '000000', '192.0.2.78')) LIKE '28000:%' AS refused;
RESET ROLE;
SELECT address, failures FROM apikeys.failing_addresses WHERE address = '192.0.2.78';
-- not trusted: the headers are ignored (no address over this socket)
RESET apikeys.trust_forwarded_for;
SET ROLE regress_verifier;
SELECT set_config('request.headers', '{"x-forwarded-for": "198.51.100.99"}', false) IS NOT NULL AS headers_set;
SELECT err(format('SELECT apikeys.claim_key(%L, %L)', 'junk', '000000')) LIKE '28000:%' AS refused;
RESET ROLE;
SELECT count(*) AS counted_untrusted FROM apikeys.failing_addresses WHERE address = '198.51.100.99';
SELECT set_config('request.headers', '', false) IS NOT NULL AS headers_cleared;
-- the two-argument call of old still works, and the third claim is open
SET ROLE regress_verifier;
SELECT client_id = :'p3' AS claimed_two_arguments FROM apikeys.claim_key(:'c3', :'d3');
RESET ROLE;
SELECT count(*) AS claimed FROM apikeys.key_list WHERE owner = 'proxied' AND status = 'active';
RESET apikeys.max_failures;
