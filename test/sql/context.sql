\i test/setup.sql
--
-- context: the identity authenticate() sets lives in backend memory for one
-- transaction, and nothing a client can SET forges it.
--
SELECT current_user AS superuser \gset
SET ROLE regress_admin;
SELECT (k).client_id AS cid, (k).token AS tok
  FROM (SELECT apikeys.create_key('regress_ctx', 'ctx',
                                  ARRAY['notes:read(title,body)', 'notes:create', 'tags:*']) AS k) s \gset
SELECT (k).client_id AS cid2, (k).token AS tok2
  FROM (SELECT apikeys.create_key('regress_ctx2', 'ctx2', ARRAY['*']) AS k) s \gset
RESET ROLE;
GRANT apikeys_verifier TO regress_nobody;
SET ROLE regress_nobody;

-- who(): the whole context on one line (client IDs are random: <cid>)
CREATE TEMP TABLE ids AS SELECT :'cid' AS cid, :'cid2' AS cid2;
CREATE FUNCTION pg_temp.who() RETURNS text LANGUAGE sql AS $$
    SELECT COALESCE(replace(replace(apikeys.current_client_id(),
                                    (SELECT cid FROM ids), '<cid>'),
                            (SELECT cid2 FROM ids), '<cid2>'), 'NULL')
           || ' / ' || COALESCE(apikeys.current_owner(), 'NULL')
           || ' / ' || COALESCE(apikeys.current_scopes()::text, 'NULL')
$$;

-- Anonymous: every context function answers "no".
SELECT pg_temp.who() AS anonymous,
       apikeys.has_scope('notes:read') AS has_scope,
       apikeys.field_allowed('notes', 'title') AS field_allowed;
SELECT err($$SELECT apikeys.require_scope('notes:read')$$) AS require_scope;
-- Invalid input: a malformed scope in a policy is an error, even anonymous.
SELECT err($$SELECT apikeys.has_scope('notes')$$) AS has_scope_bad,
       err($$SELECT apikeys.require_scope('Notes:read')$$) AS require_scope_bad;
SELECT apikeys.has_scope(NULL) IS NULL AS strict_null,
       apikeys.field_allowed(NULL, 'x') IS NULL AS strict_null2;

-- The context functions over one key's scopes.
BEGIN;
SELECT code FROM apikeys.authenticate(:'tok');
SELECT pg_temp.who() AS authenticated;
SELECT s AS scope, apikeys.has_scope(s) AS has_scope
  FROM unnest(ARRAY['notes:read', 'notes:read(title)', 'notes:read(title,body)',
                    'notes:read(owner)', 'notes:create', 'notes:update', 'notes:*',
                    'tags:delete', 'tags:read(anything)', '*']) AS s;
SELECT r AS resource, f AS field, apikeys.field_allowed(r, f) AS allowed
  FROM (VALUES ('notes', 'title'), ('notes', 'body'), ('notes', 'owner'),
               ('tags', 'label'), ('other', 'title')) AS v(r, f);
SELECT err($$SELECT apikeys.require_scope('notes:read(body)')$$) AS require_ok;
SELECT replace(err($$SELECT apikeys.require_scope('notes:delete')$$), :'cid', '<cid>') AS require_missing;
COMMIT;

-- Lifetime: commit, abort, statement boundaries in autocommit.
BEGIN;
SELECT code FROM apikeys.authenticate(:'tok');
COMMIT;
SELECT pg_temp.who() AS after_commit;
BEGIN;
SELECT code FROM apikeys.authenticate(:'tok');
ROLLBACK;
SELECT pg_temp.who() AS after_rollback;
BEGIN;
SELECT code FROM apikeys.authenticate(:'tok');
SELECT 1 / 0;
ROLLBACK;
SELECT pg_temp.who() AS after_error;
SELECT code FROM apikeys.authenticate(:'tok');
SELECT pg_temp.who() AS next_statement;
-- PREPARE TRANSACTION ends the identity too: test/t/004_prepare_and_login.pl
-- (a stock server has max_prepared_transactions = 0).

-- Lifetime: subtransactions.
BEGIN;
SAVEPOINT s1;
SELECT code FROM apikeys.authenticate(:'tok');
ROLLBACK TO SAVEPOINT s1;
SELECT pg_temp.who() AS rolled_back_with_its_savepoint;
SAVEPOINT s2;
SELECT code FROM apikeys.authenticate(:'tok');
RELEASE SAVEPOINT s2;
SELECT pg_temp.who() AS passed_to_parent_on_release;
SAVEPOINT s3;
SELECT 1 / 0;
ROLLBACK TO SAVEPOINT s3;
SELECT pg_temp.who() AS kept_when_a_later_savepoint_fails;
COMMIT;
SELECT pg_temp.who() AS after_commit;
-- nested: released into s1, then s1 rolls back
BEGIN;
SAVEPOINT s1;
SAVEPOINT s2;
SELECT code FROM apikeys.authenticate(:'tok');
RELEASE SAVEPOINT s2;
SELECT pg_temp.who() AS in_s1;
ROLLBACK TO SAVEPOINT s1;
SELECT pg_temp.who() AS s1_rolled_back;
COMMIT;
-- a second key replaces the first; if its savepoint fails, nobody is left
-- (failing closed rather than falling back to the first key)
BEGIN;
SELECT code FROM apikeys.authenticate(:'tok');
SAVEPOINT s1;
SELECT code FROM apikeys.authenticate(:'tok2');
SELECT pg_temp.who() AS second_key;
ROLLBACK TO SAVEPOINT s1;
SELECT pg_temp.who() AS after_second_rolled_back;
COMMIT;
-- PL/pgSQL exception blocks are subtransactions too
SELECT set_config('regress.tok', :'tok', false) IS NOT NULL AS tok_set \gset
DO $$
BEGIN
    BEGIN
        PERFORM apikeys.authenticate(current_setting('regress.tok'));
        RAISE EXCEPTION 'boom';
    EXCEPTION WHEN raise_exception THEN
        RAISE NOTICE 'after the block: %', COALESCE(apikeys.current_owner(), 'NULL');
    END;
    BEGIN
        PERFORM apikeys.authenticate(current_setting('regress.tok'));
    EXCEPTION WHEN OTHERS THEN
        NULL;
    END;
    RAISE NOTICE 'after a block that succeeded: %', COALESCE(apikeys.current_owner(), 'NULL');
END
$$;
RESET regress.tok;
SELECT pg_temp.who() AS after_do;

-- Forgery: nothing a client can set reaches the context.
-- apikeys.* is a reserved prefix: no placeholder can be created.
SELECT err($$SET apikeys.client_id = 'forged'$$) AS set_apikeys;
SELECT err($$SELECT set_config('apikeys.current_owner', 'regress_ctx', false)$$) AS set_config_apikeys;
SELECT err($$SELECT set_config('apikeys.owner', 'regress_ctx', true)$$) AS set_config_local;
SELECT err($$SET apikeys.trust_forwarded_for = on$$) AS set_suset;
-- request.* settings (what PostgREST sets) are free to set, and ignored.
BEGIN;
SELECT set_config('request.jwt.claims',
                  '{"role":"regress_nobody","sub":"regress_ctx","owner":"regress_ctx","client_id":"forged"}', true) IS NOT NULL AS claims;
SELECT set_config('request.jwt.claim.sub', 'regress_ctx', true) IS NOT NULL AS claim_sub;
SELECT set_config('request.headers', format('{"x-api-key":"%s"}', :'tok'), true) IS NOT NULL AS headers;
SET LOCAL request.apikeys.owner = 'regress_ctx';
SET LOCAL role = regress_nobody;
SELECT pg_temp.who() AS forged_settings, apikeys.has_scope('notes:read') AS has_scope;
COMMIT;
-- a SECURITY DEFINER function of the user's own sees the same nothing
CREATE FUNCTION pg_temp.forge() RETURNS text LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    PERFORM set_config('request.jwt.claims', '{"sub":"regress_ctx","role":"regress_nobody"}', true);
    PERFORM set_config('request.jwt.claim.sub', 'regress_ctx', true);
    PERFORM set_config('request.headers', '{"x-api-key":"forged"}', true);
    RETURN COALESCE(apikeys.current_owner(), 'NULL') || ' / '
        || apikeys.has_scope('notes:read')::text;
END
$$;
SELECT pg_temp.forge() AS security_definer;
SELECT pg_temp.who() AS after_security_definer;
RESET ROLE;
-- per-role defaults (ALTER ROLE ... SET) of apikeys.* do not exist; those of
-- request.* apply at login and forge nothing either: a login as another
-- role, so that case is in test/t/004_prepare_and_login.pl (installcheck
-- may run under peer authentication)
SELECT err($$ALTER ROLE regress_nobody SET apikeys.client_id = 'forged'$$) AS alter_role_apikeys;
REVOKE apikeys_verifier FROM regress_nobody;
