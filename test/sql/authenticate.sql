\i test/setup.sql
--
-- authenticate: verification that raises, and sets the transaction's context
-- only on success.  Failures: 28000 for a credential that is no good, 42501
-- for a good one that may not do this.  Messages never contain the token.
--
-- keys are issued by an admin; random values are kept in psql variables
SET ROLE regress_admin;
SELECT (k).client_id AS cid, (k).token AS tok, (k).client_secret AS sec, (k).expires_at AS exp
  FROM (SELECT apikeys.create_key('regress_auth', 'reader',
                                  ARRAY['docs:read(title,body)', 'docs:create']) AS k) s \gset
SELECT (k).client_id AS cid_net, (k).token AS tok_net
  FROM (SELECT apikeys.create_key('regress_auth', 'office only', ARRAY['docs:read'],
                                  allowed_cidrs => '{192.0.2.0/24}') AS k) s \gset
SELECT (k).client_id AS cid_old, (k).token AS tok_old
  FROM (SELECT apikeys.create_key('regress_auth', 'rotated', ARRAY['docs:read']) AS k) s \gset
SELECT (k).token AS tok_new FROM (SELECT apikeys.rotate_key(:'cid_old') AS k) s \gset
SELECT (k).client_id AS cid_dis, (k).token AS tok_dis
  FROM (SELECT apikeys.create_key('regress_auth', 'disabled', ARRAY['docs:read']) AS k) s \gset
SELECT apikeys.disable_key(:'cid_dis', 'testing');
SELECT (k).client_id AS cid_rev, (k).token AS tok_rev
  FROM (SELECT apikeys.create_key('regress_auth2', 'revoked', ARRAY['docs:read']) AS k) s \gset
SELECT apikeys.revoke_key(:'cid_rev', 'testing');
SELECT (k).client_id AS cid_exp, (k).token AS tok_exp
  FROM (SELECT apikeys.create_key('regress_auth2', 'expired', ARRAY['docs:read']) AS k) s \gset
RESET ROLE;
-- expiry is moved into the past directly (audited as direct_update)
UPDATE apikeys.keys SET expires_at = now() - interval '1 second' WHERE client_id = :'cid_exp';

SET ROLE regress_verifier;

-- Success: returns the verification and sets the context for this transaction.
BEGIN;
SELECT apikeys.current_client_id() IS NULL AS anonymous_before;
SELECT valid, code, client_id = :'cid' AS same_client, owner, scopes,
       expires_at = :'exp' AS same_expiry
  FROM apikeys.authenticate(:'tok');
SELECT apikeys.current_client_id() = :'cid' AS client_id_set,
       apikeys.current_owner() AS owner,
       apikeys.current_scopes() AS scopes;
COMMIT;
SELECT apikeys.current_client_id() IS NULL AS cleared_at_commit;

-- With a required scope, and a client address given explicitly.
BEGIN;
SELECT code FROM apikeys.authenticate(:'tok', 'docs:read');
SELECT code FROM apikeys.authenticate(:'tok', 'docs:read(title)');
SELECT code, client_id = :'cid_net' AS same_client
  FROM apikeys.authenticate(:'tok_net', NULL, '192.0.2.7');
SELECT apikeys.current_client_id() = :'cid_net' AS last_success_wins;
ROLLBACK;

-- Failures.  err() shows SQLSTATE, message, detail and hint; client IDs are
-- replaced by <cid> since they are random.
CREATE TEMP TABLE attempts (label text, token text, scope text, ip inet);
INSERT INTO attempts VALUES
    ('NULL token',          NULL,                                   NULL, NULL),
    ('empty token',         '',                                     NULL, NULL),
    ('garbage',             'not a token',                          NULL, NULL),
    ('checksum wrong',      overlay(:'tok' placing
                                CASE WHEN right(:'tok', 1) = 'A' THEN 'B' ELSE 'A' END
                                from length(:'tok')),               NULL, NULL),
    ('truncated',           left(:'tok', -1),                       NULL, NULL),
    ('token with blank',    ' ' || :'tok',                          NULL, NULL),
    ('rotated away',        :'tok_old',                             NULL, NULL),
    ('disabled',            :'tok_dis',                             NULL, NULL),
    ('revoked',             :'tok_rev',                             NULL, NULL),
    ('expired',             :'tok_exp',                             NULL, NULL),
    ('scope missing',       :'tok',                                 'docs:delete', NULL),
    ('field missing',       :'tok',                                 'docs:read(owner)', NULL),
    ('address outside',     :'tok_net',                             NULL, '198.51.100.1'),
    ('no address (socket)', :'tok_net',                             NULL, NULL);
SELECT label,
       replace(replace(replace(replace(replace(
           err(format('SELECT apikeys.authenticate(%L, %L, %L)', token, scope, ip)),
           :'cid', '<cid>'), :'cid_net', '<cid>'), :'cid_dis', '<cid>'),
           :'cid_rev', '<cid>'), :'cid_exp', '<cid>') AS error
  FROM attempts ORDER BY label COLLATE "C";

-- The token and the secret never appear in a message, detail or hint.
SELECT count(*) AS messages,
       count(*) FILTER (WHERE position(:'tok' IN e) > 0 OR position(:'sec' IN e) > 0
                           OR position(:'tok_net' IN e) > 0 OR position(:'tok_dis' IN e) > 0
                           OR position(:'tok_rev' IN e) > 0 OR position(:'tok_exp' IN e) > 0
                           OR position(:'tok_old' IN e) > 0) AS leaking
  FROM (SELECT err(format('SELECT apikeys.authenticate(%L, %L, %L)', token, scope, ip)) AS e
          FROM attempts) s;

-- A failed authenticate sets nothing, and also ends an earlier success,
-- even when its error is caught (err() catches it in an exception block,
-- a subtransaction): the transaction goes on anonymous, never as the
-- earlier key.
BEGIN;
SELECT err(format('SELECT apikeys.authenticate(%L)', :'tok_dis')) <> 'ok' AS failed;
SELECT apikeys.current_client_id() IS NULL AS still_anonymous;
SELECT code FROM apikeys.authenticate(:'tok');
SELECT err(format('SELECT apikeys.authenticate(%L)', :'tok_rev')) <> 'ok' AS failed;
SELECT apikeys.current_client_id() IS NULL AS earlier_identity_cleared,
       apikeys.current_owner() IS NULL AS no_owner, apikeys.has_scope('docs:read') AS has_scope;
-- the same with a key that is good but lacks the scope, and with junk
SELECT code FROM apikeys.authenticate(:'tok');
SELECT err(format('SELECT apikeys.authenticate(%L, %L)', :'tok', 'other:read')) <> 'ok' AS failed;
SELECT apikeys.current_client_id() IS NULL AS cleared_by_insufficient_scope;
SELECT code FROM apikeys.authenticate(:'tok');
SAVEPOINT s;
SELECT apikeys.authenticate('not a token');
ROLLBACK TO SAVEPOINT s;
SELECT apikeys.current_client_id() IS NULL AS cleared_after_savepoint_rollback;
COMMIT;
-- A failure outside a savepoint aborts the transaction, and the context too.
BEGIN;
SELECT code FROM apikeys.authenticate(:'tok');
SELECT apikeys.authenticate('not a token');
ROLLBACK;
SELECT apikeys.current_client_id() IS NULL AS cleared_at_abort;

-- Invalid input: a malformed required scope is the caller's bug (22023).
SELECT err(format('SELECT apikeys.authenticate(%L, %L)', :'tok', 'docs')) AS bad_scope;
RESET ROLE;

-- Privileges: only apikeys_verifier and apikeys_admin may authenticate.
SET ROLE regress_nobody;
SELECT err(format('SELECT apikeys.authenticate(%L)', :'tok')) AS nobody;
RESET ROLE;
SET ROLE regress_admin;
SELECT code FROM apikeys.authenticate(:'tok');
RESET ROLE;

-- authenticate writes nothing it would need a read-write transaction for.
BEGIN READ ONLY;
SET LOCAL ROLE regress_verifier;
SELECT code FROM apikeys.authenticate(:'tok');
COMMIT;

-- Outside a transaction block the context ends with authenticate()'s own
-- statement, so an app that authenticates and then queries in a second
-- statement would query as nobody (under RLS: no rows and no error).
-- authenticate() warns then, with SET LOCAL's SQLSTATE 25P01.
SET ROLE regress_verifier;
\set VERBOSITY sqlstate
SELECT code FROM apikeys.authenticate(:'tok');
\set VERBOSITY default
SELECT apikeys.current_client_id() IS NULL AS next_statement_is_anonymous;
-- In one statement the context is there, and the warning says it is only there.
SELECT (apikeys.authenticate(:'tok')).code, apikeys.current_client_id() = :'cid' AS same_statement;
-- No warning inside BEGIN ... COMMIT, in a savepoint, or in a query string
-- of several statements (an implicit transaction block, as for SET LOCAL).
BEGIN;
SELECT code FROM apikeys.authenticate(:'tok');
SELECT apikeys.current_client_id() = :'cid' AS in_block;
SAVEPOINT s;
SELECT code FROM apikeys.authenticate(:'tok');
RELEASE SAVEPOINT s;
COMMIT;
SELECT code FROM apikeys.authenticate(:'tok') \; SELECT apikeys.current_client_id() = :'cid' AS same_query_string;
-- A failure raises its error, never the warning.
SELECT err(format('SELECT apikeys.authenticate(%L)', 'not a token')) AS outside_block_failure;
RESET ROLE;
