\i test/setup.sql
--
-- privileges: what each role may do.
--
\set VERBOSITY terse
SELECT apikeys.set_owner_policy('priv', max_keys => 10);
SELECT (k).client_id AS cid, (k).token AS tok
  FROM (SELECT apikeys.create_key('priv', 'p', '{things:read}') AS k) s \gset

-- apikeys_verifier: verify, verify_client, authenticate; nothing else.
SET ROLE regress_verifier;
SELECT (apikeys.verify(:'tok', 'things:read')).code;
SELECT (apikeys.verify_client(:'cid', 'x')).code;
BEGIN; SELECT (apikeys.authenticate(:'tok')).code; ROLLBACK;
SELECT err(q) FROM (VALUES
    ($$SELECT * FROM apikeys.keys$$),
    ($$SELECT secret_hash FROM apikeys.keys$$),
    ($$SELECT * FROM apikeys.key_list$$),
    ($$SELECT * FROM apikeys.audit_log$$),
    ($$SELECT * FROM apikeys.owner_policies$$),
    ($$SELECT apikeys.create_key('priv', 'x', '{}')$$),
    ($$SELECT apikeys.revoke_key('ak_0000000000000000')$$),
    ($$SELECT apikeys.set_owner_policy('priv', 100)$$),
    ($$SELECT apikeys.purge_audit('1 day')$$),
    ($$SELECT apikeys_internal._mint(NULL)$$),
    ($$SELECT apikeys_internal._op_begin('purge', NULL)$$),
    ($$SELECT apikeys_internal._audit('x', NULL, NULL, NULL)$$),
    ($$UPDATE apikeys.keys SET revoked_at = NULL$$),
    ($$INSERT INTO apikeys.audit_log (event) VALUES ('forged')$$)) AS c(q);
RESET ROLE;

-- A role with neither role cannot verify or read anything; it may use the
-- context functions (RLS policies call them) and report a leak.
SET ROLE regress_nobody;
SELECT err(q) FROM (VALUES
    ($$SELECT apikeys.verify('x')$$),
    ($$SELECT apikeys.verify_client('x', 'y')$$),
    ($$SELECT apikeys.authenticate('x')$$),
    ($$SELECT apikeys.pre_request()$$),
    ($$SELECT * FROM apikeys.key_list$$),
    ($$SELECT * FROM apikeys.audit_log$$),
    ($$SELECT * FROM apikeys.keys$$),
    ($$SELECT apikeys.create_key('priv', 'x', '{}')$$)) AS c(q);
SELECT apikeys.current_client_id(), apikeys.current_owner(), apikeys.has_scope('things:read');
RESET ROLE;

-- apikeys_admin: manages keys and reads key_list and audit_log, but never
-- the keys table or a hash.
SET ROLE regress_admin;
SELECT count(*) > 0 AS sees_key_list FROM apikeys.key_list;
SELECT count(*) > 0 AS sees_audit_log FROM apikeys.audit_log;
SELECT err($$SELECT secret_hash FROM apikeys.keys$$);
SELECT err($$SELECT * FROM apikeys.owner_policies$$);
SELECT column_name FROM information_schema.columns
 WHERE table_schema = 'apikeys' AND table_name = 'key_list' AND column_name ~ 'hash|secret';
RESET ROLE;

-- Every SECURITY DEFINER function pins search_path.
SELECT p.proname, p.proconfig
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('apikeys', 'apikeys_internal') AND p.prosecdef
 ORDER BY 1;
SELECT count(*) AS definer_without_search_path
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('apikeys', 'apikeys_internal') AND p.prosecdef
   AND NOT ('search_path=pg_catalog, pg_temp' = ANY (coalesce(p.proconfig, '{}')));
-- Every user-facing function, table, view and type has a comment.
SELECT p.proname AS uncommented_function
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('apikeys', 'apikeys_internal') AND obj_description(p.oid, 'pg_proc') IS NULL;
SELECT c.relname AS uncommented_relation
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'apikeys' AND c.relkind IN ('r', 'v') AND obj_description(c.oid, 'pg_class') IS NULL;

-- Internal functions (_*) belong to the extension owner, with the
-- exceptions README lists: the two _protected_* helpers protect() calls
-- (PUBLIC; they act only for the table's owner) and the three the admin
-- views call.  PostgreSQL checks EXECUTE on a function that a view calls
-- as the user querying the view, not as the view's owner, so
-- apikeys_admin needs them for key_list, key_hygiene, key_usage and
-- failing_addresses.  They show only what those views show.
SELECT p.proname AS internal_function,
       string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, ', '
                  ORDER BY CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END)
         AS grantees
  FROM pg_proc p, aclexplode(p.proacl) a
 WHERE p.pronamespace IN ('apikeys'::regnamespace, 'apikeys_internal'::regnamespace) AND p.proname LIKE '\_%'
   AND a.grantee <> p.proowner
 GROUP BY p.proname ORDER BY 1;
-- without the grant, the view fails for the admin
BEGIN;
REVOKE EXECUTE ON FUNCTION apikeys_internal._recent_use(text) FROM apikeys_admin;
SET ROLE regress_admin;
SELECT err($$SELECT count(*) FROM apikeys.key_list$$) AS key_list_without_recent_use;
ROLLBACK;
BEGIN;
REVOKE EXECUTE ON FUNCTION apikeys_internal._journal_decode(bytea) FROM apikeys_admin;
SET ROLE regress_admin;
SELECT err($$SELECT count(*) FROM apikeys.key_usage$$) AS key_usage_without_journal_decode;
ROLLBACK;
