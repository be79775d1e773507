\i test/setup.sql
--
-- security_inventory: every object of the extension with who may use it.
--
-- This file is a review gate: a new function, table, view or sequence, a
-- changed grant, a SECURITY DEFINER without a pinned search_path, or an
-- object in schema apikeys that is not part of the extension changes the
-- expected output.  Update expected/security_inventory.out only after
-- reviewing the grants (see the grants section of apikeys--*.sql).
--
-- Without apikeys preloaded the output differs: expected/security_inventory_1.out.
-- This line keeps each run to its own expected file (test/run.sh checks
-- that every file with an alternate prints it).
SELECT apikeys_internal._preloaded() AS preloaded;

-- grantees(acl, owner, privilege): who besides the owner holds a privilege
CREATE FUNCTION pg_temp.grantees(acl aclitem[], owner oid, priv text, kind "char")
    RETURNS text LANGUAGE sql STABLE AS $$
    SELECT COALESCE(string_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                              ELSE a.grantee::regrole::text END, ', '), '-')
      FROM aclexplode(COALESCE(acl, acldefault(kind, owner))) a
     WHERE a.privilege_type = priv AND a.grantee <> owner
$$;

-- Functions: EXECUTE grantees, SECURITY DEFINER, settings
SELECT p.oid::regprocedure AS function,
       pg_temp.grantees(p.proacl, p.proowner, 'EXECUTE', 'f') AS execute,
       CASE WHEN p.prosecdef THEN 'definer' ELSE 'invoker' END AS security,
       COALESCE(array_to_string(p.proconfig, ' '), '') AS config
  FROM pg_proc p
 WHERE p.pronamespace IN ('apikeys'::regnamespace, 'apikeys_internal'::regnamespace)
 ORDER BY p.oid::regprocedure::text;

-- Tables, views and sequences: privileges per grantee, RLS
SELECT c.oid::regclass AS relation, c.relkind AS kind,
       c.relrowsecurity AS rls, c.relforcerowsecurity AS force_rls,
       (SELECT COALESCE(string_agg(g.who || ':' || g.privs, '; ' ORDER BY g.who), '-')
          FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS who,
                       string_agg(a.privilege_type, ',' ORDER BY a.privilege_type) AS privs
                  FROM aclexplode(COALESCE(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) a
                 WHERE a.grantee <> c.relowner
                 GROUP BY 1) g) AS grants,
       (SELECT count(*) FROM pg_policy pol WHERE pol.polrelid = c.oid) AS policies
  FROM pg_class c
 WHERE c.relnamespace = 'apikeys'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
 ORDER BY c.oid::regclass::text;

-- Column privileges (none expected: grants are per table or view)
SELECT a.attrelid::regclass AS relation, a.attname, a.attacl
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relnamespace = 'apikeys'::regnamespace AND a.attacl IS NOT NULL
 ORDER BY 1, 2;

-- The schema
SELECT n.nspname, pg_temp.grantees(n.nspacl, n.nspowner, 'USAGE', 'n') AS usage,
       pg_temp.grantees(n.nspacl, n.nspowner, 'CREATE', 'n') AS "create"
  FROM pg_namespace n WHERE n.nspname = 'apikeys';

-- Types (USAGE is PUBLIC by default, as for any type)
SELECT t.oid::regtype AS type, t.typtype,
       pg_temp.grantees(t.typacl, t.typowner, 'USAGE', 'T') AS usage
  FROM pg_type t
 WHERE t.typnamespace = 'apikeys'::regnamespace AND t.typelem = 0 OR
       t.typnamespace = 'apikeys'::regnamespace AND t.typtype = 'd'
 ORDER BY t.oid::regtype::text;

-- Rules that must always hold (each query must return no rows):
-- a SECURITY DEFINER function without search_path = pg_catalog, pg_temp
SELECT p.oid::regprocedure AS definer_without_pinned_search_path
  FROM pg_proc p
 WHERE p.pronamespace IN ('apikeys'::regnamespace, 'apikeys_internal'::regnamespace) AND p.prosecdef
   AND NOT COALESCE(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false);
-- a plpgsql or SQL function without a pinned search_path
SELECT p.oid::regprocedure AS sql_function_without_pinned_search_path
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace IN ('apikeys'::regnamespace, 'apikeys_internal'::regnamespace) AND l.lanname IN ('plpgsql', 'sql')
   AND NOT COALESCE(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false);
-- a function PUBLIC may execute that is SECURITY DEFINER, other than the
-- ones reviewed here: report_leaked (anyone may kill a leaked token) and
-- protect()'s bookkeeping (checks table ownership itself)
SELECT p.oid::regprocedure AS public_definer_not_reviewed
  FROM pg_proc p
 WHERE p.pronamespace IN ('apikeys'::regnamespace, 'apikeys_internal'::regnamespace) AND p.prosecdef
   AND has_function_privilege('public', p.oid, 'EXECUTE')
   AND p.oid NOT IN ('apikeys.report_leaked(text)'::regprocedure,
                     'apikeys_internal._protected_record(regclass, name, text, text, boolean, boolean)'::regprocedure,
                     'apikeys_internal._protected_forget(regclass)'::regprocedure);
-- an object in schema apikeys that does not belong to the extension
SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS not_an_extension_member
  FROM pg_depend d
 WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid IN ('apikeys'::regnamespace, 'apikeys_internal'::regnamespace)
   AND d.classid <> 'pg_extension'::regclass
   AND NOT EXISTS (SELECT 1 FROM pg_depend e
                    WHERE e.classid = d.classid AND e.objid = d.objid AND e.deptype = 'e'
                      AND e.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'apikeys'));
-- a column that stores an OID other than regclass (pg_upgrade keeps
-- regclass by name; any other reg* type or oid would dangle)
SELECT a.attrelid::regclass AS relation, a.attname, a.atttypid::regtype AS oid_typed_column
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relnamespace = 'apikeys'::regnamespace AND c.relkind IN ('r', 'p') AND a.attnum > 0
   AND a.atttypid IN ('oid'::regtype, 'regproc'::regtype, 'regprocedure'::regtype,
                      'regoper'::regtype, 'regoperator'::regtype, 'regtype'::regtype,
                      'regconfig'::regtype, 'regdictionary'::regtype, 'regnamespace'::regtype,
                      'regrole'::regtype, 'regcollation'::regtype, 'xid'::regtype, 'cid'::regtype);

-- Settings: who may change each (user, superuser, sighup, postmaster)
SELECT apikeys.token_client_id('x') IS NULL AS library_loaded;
SELECT name, context FROM pg_settings WHERE name LIKE 'apikeys.%' ORDER BY 1;

-- Every member of the extension, for the upgrade comparison too.  Since 17
-- PostgreSQL also records a relation's row type and every array type as
-- members of their own; they come and go with their relation or element
-- type, which stand for them here, so the list is the same on every major.
SELECT pg_describe_object(classid, objid, objsubid) AS member
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'apikeys')
   AND NOT (classid = 'pg_type'::regclass AND objid IN (
            SELECT t.oid FROM pg_type t
             WHERE EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)
                OR EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')))
 ORDER BY 1;
