\i test/setup.sql
--
-- verification: the result an app uses as is (http_status, name,
-- metadata, the rate-limit window) from verify, verify_client and
-- authenticate; authenticate()'s machine-readable error detail; and the
-- shared cache holding realistic (seed-shaped) keys.
--
-- Without apikeys preloaded there is no cache and no rate-limit window:
-- expected/verification_1.out.  This line keeps each run to its own file.
SELECT apikeys_internal._preloaded() AS preloaded;
\set VERBOSITY terse

-- A seed-shaped key: a UUID owner, twelve scopes (three with field lists),
-- two networks, a database role, a name and metadata.
SELECT (k).client_id AS cid, (k).client_secret AS secret, (k).token AS tok
  FROM (SELECT apikeys.create_key('0b5e7a52-6f0e-4c43-9a57-2f1f0c6d7e11', 'Spendesk-style integration',
            ARRAY['invoices:read', 'invoices:create', 'payments:read', 'payments:create',
                  'cards:read', 'employees:read(name,start_date,team)', 'teams:read',
                  'budgets:read(amount,currency)', 'suppliers:read', 'receipts:read',
                  'reports:read(period)', 'webhooks:read'],
            allowed_cidrs => ARRAY['10.0.0.0/8', '192.0.2.0/24']::cidr[],
            metadata => '{"plan": "business", "region": "eu-west-1", "customer": 4711}',
            db_role => 'regress_verifier') AS k) s \gset

-- every new field, for every way of presenting the key
SELECT 'verify' AS via, valid, code, http_status, name, metadata, rate_limit, rate_remaining, rate_reset
  FROM apikeys.verify(:'tok', 'employees:read(name)', '10.1.2.3')
UNION ALL
SELECT 'verify_client', valid, code, http_status, name, metadata, rate_limit, rate_remaining, rate_reset
  FROM apikeys.verify_client(:'cid', :'secret', 'employees:read(name)', '10.1.2.3')
UNION ALL
SELECT 'authenticate', valid, code, http_status, name, metadata, rate_limit, rate_remaining, rate_reset
  FROM apikeys.authenticate(:'tok', 'employees:read(name)', '10.1.2.3');

-- http_status for each way a request can fail; name and metadata only once
-- the secret matched
SELECT label, code, http_status, name IS NOT NULL AS has_name, metadata IS NOT NULL AS has_metadata
  FROM (VALUES ('valid', apikeys.verify(:'tok', NULL, '10.1.2.3')),
               ('garbage', apikeys.verify('garbage')),
               ('wrong secret', apikeys.verify_client(:'cid', repeat('x', 43))),
               ('scope missing', apikeys.verify(:'tok', 'invoices:delete', '10.1.2.3')),
               ('field missing', apikeys.verify(:'tok', 'employees:read(salary)', '10.1.2.3')),
               ('address outside', apikeys.verify(:'tok', NULL, '203.0.113.9'))) t(label, v),
       LATERAL (SELECT (v).code, (v).http_status, (v).name, (v).metadata) x
 ORDER BY label;

-- disabled and revoked keys: 401, with the key's name
SELECT (k).client_id AS dcid, (k).token AS dtok
  FROM (SELECT apikeys.create_key('o2', 'to disable', ARRAY['docs:read']) AS k) s \gset
SELECT apikeys.disable_key(:'dcid');
SELECT code, http_status, name FROM apikeys.verify(:'dtok');
SELECT apikeys.revoke_key(:'dcid');
SELECT code, http_status, name FROM apikeys.verify(:'dtok');

-- a rate-limited key: the limit, what is left and when the window ends,
-- as the X-RateLimit-* headers need them
SET client_min_messages = error;	-- not preloaded: "rate limit ... not enforced"
SELECT (k).token AS rtok
  FROM (SELECT apikeys.create_key('rated-owner', 'rated', ARRAY['docs:read'],
            rate_limit => 2, rate_window => '1 hour') AS k) s \gset
RESET client_min_messages;
\set rate_query 'SELECT code, http_status, rate_limit, rate_remaining, rate_reset BETWEEN now() + interval ''59 minutes'' AND now() + interval ''61 minutes'' AS resets_in_an_hour, retry_after BETWEEN 3500 AND 3600 AS retry_after_ok FROM apikeys.verify(:''rtok'', ''docs:read'')'
:rate_query;
:rate_query;
:rate_query;
-- an owner-wide limit: a cached key's outcome is counted as what it was
-- (RATE_LIMITED), not as the VALID the checks before the limit gave
SELECT apikeys.set_owner_policy('limited-owner', rate_limit => 1, rate_window => '1 hour');
SELECT (k).client_id AS ocid, (k).token AS otok
  FROM (SELECT apikeys.create_key('limited-owner', 'owner-limited', ARRAY['docs:read']) AS k) s \gset
SELECT code, http_status, rate_limit, rate_remaining FROM apikeys.verify(:'otok');
SELECT code, http_status, rate_limit, rate_remaining FROM apikeys.verify(:'otok');
SELECT code, http_status, rate_limit, rate_remaining FROM apikeys.verify(:'otok');
SELECT apikeys.flush_usage() IS NOT NULL AS flushed;
SELECT code, count FROM apikeys.key_usage WHERE client_id = :'ocid' ORDER BY code;

-- a check that fails before the rate limit consults no window
SELECT code, http_status, rate_limit, rate_remaining, rate_reset
  FROM apikeys.verify(:'rtok', 'docs:write');

-- authenticate()'s errors: one JSON object of fixed form in the detail
CREATE FUNCTION pg_temp.auth_error(tok text, scope text, ip inet) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    st text;
    d text;
BEGIN
    PERFORM apikeys.authenticate(tok, scope, ip);
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, d = PG_EXCEPTION_DETAIL;
    RETURN pg_catalog.jsonb_build_object('sqlstate', st) || d::jsonb;
END
$$;
SELECT label, pg_temp.auth_error(t, s, ip) - 'retry_after' AS error,
       pg_temp.auth_error(t, s, ip) -> 'retry_after' IS NOT NULL AS has_retry_key,
       jsonb_typeof(pg_temp.auth_error(t, s, ip) -> 'retry_after') AS retry_after_type
  FROM (VALUES ('garbage', 'garbage', NULL, NULL::inet),
               ('scope missing', :'tok', 'invoices:delete', '10.1.2.3'),
               ('address outside', :'tok', NULL, '203.0.113.9'),
               ('rate limited', :'rtok', 'docs:read', NULL)) v(label, t, s, ip)
 ORDER BY label;

-- the shared cache holds the seed-shaped key: a second verification is a
-- hit (preloaded only; without the cache both counters stay NULL-free 0)
SELECT session_hits AS h0, session_misses AS m0 FROM apikeys.cache_stats() \gset
SELECT code FROM apikeys.verify(:'tok', NULL, '10.1.2.3');
SELECT code FROM apikeys.verify(:'tok', NULL, '10.1.2.3');
SELECT session_hits - :h0 AS hits, session_misses - :m0 AS misses FROM apikeys.cache_stats();

-- and twenty more, each with 8 to 15 scopes, hit the cache the second time
CREATE TEMP TABLE seed AS
SELECT n, (apikeys.create_key(gen_random_uuid()::text, 'seed ' || n,
        (SELECT array_agg(CASE WHEN i % 4 = 0 THEN 'res' || i || ':read(id,name,amount)'
                               ELSE 'res' || i || ':read' END)
           FROM generate_series(1, 8 + n % 8) i),
        allowed_cidrs => ARRAY['10.0.0.0/8']::cidr[],
        db_role => 'regress_verifier')).token
  FROM generate_series(1, 20) n;
SELECT count(*) FILTER (WHERE (apikeys.verify(token, NULL, '10.1.2.3')).valid) AS valid_first FROM seed;
SELECT session_hits AS h0, session_misses AS m0 FROM apikeys.cache_stats() \gset
SELECT count(*) FILTER (WHERE (apikeys.verify(token, NULL, '10.1.2.3')).valid) AS valid_again FROM seed;
SELECT session_hits - :h0 AS hits, session_misses - :m0 AS misses FROM apikeys.cache_stats();

-- a key too large for the cache still answers with every field
SELECT (k).token AS btok
  FROM (SELECT apikeys.create_key('big-owner', 'big metadata', ARRAY['docs:read'],
            metadata => jsonb_build_object('blob', repeat('x', 20000))) AS k) s \gset
SELECT session_hits AS h0, session_misses AS m0 FROM apikeys.cache_stats() \gset
SELECT code, http_status, name, length(metadata ->> 'blob') AS blob_length
  FROM apikeys.verify(:'btok', 'docs:read');
SELECT code, http_status, name, length(metadata ->> 'blob') AS blob_length
  FROM apikeys.verify(:'btok', 'docs:read');
SELECT session_hits - :h0 AS hits FROM apikeys.cache_stats();
