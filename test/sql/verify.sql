\i test/setup.sql
--
-- verify / verify_client: every result code of the contract.
--
\set VERBOSITY terse
SELECT apikeys.set_owner_policy('umbrella', max_keys => 50);

SELECT (k).client_id AS cid, (k).client_secret AS secret, (k).token AS tok
  FROM (SELECT apikeys.create_key('umbrella', 'main',
            '{invoices:read, invoices:create, "employees:read(name,start_date)", reports:*}') AS k) s \gset

-- VALID, with and without a required scope; the result carries the key.
SELECT valid, code, client_id = :'cid' AS same_key, owner, scopes, expires_at IS NOT NULL AS has_expiry, retry_after
  FROM apikeys.verify(:'tok');
SELECT required, (apikeys.verify(:'tok', required)).code
  FROM unnest(ARRAY['invoices:read', 'invoices:create', 'invoices:delete', 'invoices:*',
                    'reports:download', 'reports:*', 'employees:read', 'employees:read(name)',
                    'employees:read(salary)', 'payroll:read', '*']) required;

-- verify_client: the same key as an OAuth-style pair.
SELECT code, client_id = :'cid' AS same_key FROM apikeys.verify_client(:'cid', :'secret', 'invoices:read');
SELECT (apikeys.verify_client(:'cid', :'secret', 'invoices:delete')).code;

-- NOT_FOUND: a wrong secret and an unknown client ID look the same, and
-- neither reveals the owner.
SELECT (k).token AS other_tok, (k).client_secret AS other_secret
  FROM (SELECT apikeys.create_key('umbrella', 'other', '{}') AS k) s \gset
SELECT valid, code, client_id, owner, scopes FROM apikeys.verify_client(:'cid', :'other_secret');
SELECT valid, code, client_id, owner, scopes FROM apikeys.verify_client('ak_0000000000000000', :'secret');
-- (a token with another client ID spliced in fails its checksum first)
SELECT code, client_id, owner FROM apikeys.verify('ak_0000000000000000_' || substr(:'tok', 21));

-- MALFORMED for verify_client: ids and secrets of the wrong shape.
SELECT (apikeys.verify_client(NULL, :'secret')).code AS null_id,
       (apikeys.verify_client(:'cid', NULL)).code AS null_secret,
       (apikeys.verify_client('', '')).code AS empty,
       (apikeys.verify_client(:'cid', left(:'secret', 42))).code AS short_secret,
       (apikeys.verify_client(:'cid' || 'x', :'secret')).code AS long_id,
       (apikeys.verify_client(:'tok', :'secret')).code AS token_as_id;

-- IP_NOT_ALLOWED: allowed_cidrs against client_ip (or the connection).
SELECT (k).token AS ip_tok, (k).client_id AS ip_cid FROM (SELECT apikeys.create_key('umbrella', 'office only', '{invoices:read}',
        allowed_cidrs => '{192.0.2.0/24, 2001:db8::/32}') AS k) s \gset
SELECT ip, (apikeys.verify(:'ip_tok', 'invoices:read', ip::inet)).code
  FROM unnest(ARRAY['192.0.2.7', '198.51.100.1', '2001:db8::1', '::1']) ip;
-- no address known (this session is on a unix socket): fail closed
SELECT inet_client_addr() IS NULL AS unix_socket, (apikeys.verify(:'ip_tok')).code;
-- keys without allowed_cidrs do not care
SELECT (apikeys.verify(:'tok', NULL, '203.0.113.9')).code;
-- the secret is checked first: a wrong secret from anywhere is NOT_FOUND
SELECT (apikeys.verify_client(:'ip_cid', :'other_secret', NULL, '192.0.2.7')).code,
       (apikeys.verify_client(:'ip_cid', :'other_secret', NULL, '198.51.100.1')).code;

-- EXPIRED
SELECT (k).token AS exp_tok, (k).client_id AS exp_cid
  FROM (SELECT apikeys.create_key('umbrella', 'short lived', '{invoices:read}',
        expires_at => now() + interval '1 hour') AS k) s \gset
UPDATE apikeys.keys SET expires_at = now() - interval '1 second' WHERE client_id = :'exp_cid';
SELECT valid, code, client_id = :'exp_cid' AS same_key FROM apikeys.verify(:'exp_tok', 'invoices:read');

-- Order of checks: a revoked key says REVOKED even when also disabled and
-- expired; a disabled one DISABLED before EXPIRED; scope after address.
SELECT apikeys.disable_key(:'exp_cid');
SELECT (apikeys.verify(:'exp_tok')).code AS disabled_and_expired;
SELECT apikeys.revoke_key(:'exp_cid');
SELECT (apikeys.verify(:'exp_tok')).code AS revoked_disabled_expired;
SELECT (apikeys.verify(:'ip_tok', 'payroll:read', '198.51.100.1')).code AS address_before_scope;

-- A key's status is told only to a holder of its secret: against revoked,
-- disabled, expired, IP-limited and rate-limited keys, the right secret
-- hears the status and a wrong one (in a token with a valid checksum, and
-- as a pair) hears NOT_FOUND with nothing about the key.
SELECT (k).client_id AS st_rev_cid, (k).token AS st_rev_tok
  FROM (SELECT apikeys.create_key('umbrella', 'st revoked', '{docs:read}') AS k) s \gset
SELECT (k).client_id AS st_dis_cid, (k).token AS st_dis_tok
  FROM (SELECT apikeys.create_key('umbrella', 'st disabled', '{docs:read}') AS k) s \gset
SELECT (k).client_id AS st_exp_cid, (k).token AS st_exp_tok
  FROM (SELECT apikeys.create_key('umbrella', 'st expired', '{docs:read}') AS k) s \gset
-- (without preloading, a rate limit draws a warning that names the random
-- client ID: test/t/052_not_preloaded.pl checks it)
SET client_min_messages = error;
SELECT (k).client_id AS st_rl_cid, (k).token AS st_rl_tok
  FROM (SELECT apikeys.create_key('umbrella', 'st limited', '{docs:read}', rate_limit => 1, rate_window => '1 hour') AS k) s \gset
RESET client_min_messages;
SELECT apikeys.revoke_key(:'st_rev_cid'), apikeys.disable_key(:'st_dis_cid');
UPDATE apikeys.keys SET expires_at = now() - interval '1 second' WHERE client_id = :'st_exp_cid';
SELECT (apikeys.verify(:'st_rl_tok')).code AS uses_the_one_request;
SELECT label,
       -- (the rate-limited key's second request: RATE_LIMITED, or VALID where rate
       -- limits are not kept, without preloading: shown as whether it is so)
       CASE WHEN label = 'rate limited'
            THEN ((apikeys.verify(tok, NULL, '198.51.100.1')).code
                  = CASE WHEN apikeys_internal._preloaded() THEN 'RATE_LIMITED' ELSE 'VALID' END)::text
            ELSE (apikeys.verify(tok, NULL, '198.51.100.1')).code END AS right_secret,
       v.code AS wrong_secret, v.valid, v.client_id, v.owner, v.scopes, v.expires_at, v.retry_after,
       (apikeys.verify_client(cid, repeat('x', 43), NULL, '198.51.100.1')).code AS wrong_pair,
       (apikeys.verify_client(cid, repeat('x', 43), NULL, '198.51.100.1')).owner AS wrong_pair_owner
  FROM (VALUES ('revoked', :'st_rev_cid', :'st_rev_tok'),
               ('disabled', :'st_dis_cid', :'st_dis_tok'),
               ('expired', :'st_exp_cid', :'st_exp_tok'),
               ('ip limited', :'ip_cid', :'ip_tok'),
               ('rate limited', :'st_rl_cid', :'st_rl_tok')) AS k(label, cid, tok),
       apikeys.verify(forge_token(cid, repeat('x', 43)), NULL, '198.51.100.1') AS v
 ORDER BY 1;

-- Invalid input: a malformed required scope is the caller's bug (22023).
SELECT err($$SELECT apikeys.verify('x', 'not a scope')$$);
SELECT err($$SELECT apikeys.verify_client('x', 'y', 'Read')$$);

-- Verification works inside a READ ONLY transaction and writes nothing.
BEGIN TRANSACTION READ ONLY;
SELECT (apikeys.verify(:'tok', 'invoices:read')).code;
SELECT (apikeys.verify_client(:'cid', :'secret')).code;
COMMIT;
