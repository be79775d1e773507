\i test/setup.sql
--
-- surface: schema apikeys holds the public surface only (what \df apikeys.*
-- lists), every object in it is commented; the internal helpers live in
-- apikeys_internal, a schema no one may squat or create in, whose
-- functions other roles cannot call; and the admin functions answer with a
-- value.  (Schema filters here say to_regnamespace('apikeys') on purpose:
-- tools/move-internal.py widens 'apikeys'::regnamespace to both schemas.)
--
\set VERBOSITY terse

-- 1. No internal function in schema apikeys, and nothing but internal
-- functions in apikeys_internal
SELECT p.oid::regprocedure AS internal_function_in_apikeys
  FROM pg_proc p
 WHERE p.pronamespace = to_regnamespace('apikeys') AND p.proname LIKE '\_%'
 ORDER BY 1;
SELECT count(*) > 50 AS many_internal_functions,
       bool_and(p.proname LIKE '\_%') AS all_named_internal
  FROM pg_proc p WHERE p.pronamespace = to_regnamespace('apikeys_internal');
SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS not_a_function_in_apikeys_internal
  FROM pg_depend d
 WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = to_regnamespace('apikeys_internal')
   AND d.classid <> 'pg_proc'::regclass;

-- 2. Every member of the extension has a comment: functions, tables,
-- views, sequences, types, operators, operator classes and families,
-- casts, the event trigger, the schema (row types and array types are
-- made by PostgreSQL and are not members)
SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS uncommented_member
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'apikeys')
   AND NOT EXISTS (SELECT 1 FROM pg_description ds
                    WHERE ds.classoid = d.classid AND ds.objoid = d.objid AND ds.objsubid = 0)
   -- a table's row type and any array type (members from PostgreSQL 17
   -- on) are described by their table and element type
   AND NOT EXISTS (SELECT 1 FROM pg_type t
                    WHERE d.classid = 'pg_type'::regclass AND t.oid = d.objid
                      AND (t.typelem <> 0 OR
                           EXISTS (SELECT 1 FROM pg_class c
                                    WHERE c.oid = t.typrelid AND c.relkind <> 'c')))
 ORDER BY 1;
-- and every object in schema apikeys is a member (so the above covers it)
SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS not_a_member
  FROM pg_depend d
 WHERE d.refclassid = 'pg_namespace'::regclass
   AND d.refobjid IN (to_regnamespace('apikeys'), to_regnamespace('apikeys_internal'))
   AND d.classid <> 'pg_extension'::regclass
   AND NOT EXISTS (SELECT 1 FROM pg_depend e
                    WHERE e.classid = d.classid AND e.objid = d.objid AND e.deptype = 'e');

-- 3. The schema: a member of the extension, owned like apikeys, USAGE for
-- PUBLIC (protect() runs as any table owner and calls two helpers), CREATE
-- for no one
SELECT n.nspname, n.nspowner = a.nspowner AS owned_like_apikeys,
       EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_namespace'::regclass
                  AND e.objid = n.oid AND e.deptype = 'e') AS member,
       (SELECT string_agg(CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE x.grantee::regrole::text END
                          || ':' || x.privilege_type, ', ' ORDER BY 1)
          FROM aclexplode(n.nspacl) x WHERE x.grantee <> n.nspowner) AS grants,
       obj_description(n.oid, 'pg_namespace') IS NOT NULL AS commented
  FROM pg_namespace n, pg_namespace a
 WHERE n.nspname = 'apikeys_internal' AND a.nspname = 'apikeys';

-- 4. Who may execute an internal function, by test role
SELECT r.role, string_agg(p.proname, ' ' ORDER BY p.proname) AS may_execute
  FROM (VALUES ('regress_nobody'), ('regress_verifier'), ('regress_delivery'), ('regress_admin')) r(role),
       pg_proc p
 WHERE p.pronamespace = to_regnamespace('apikeys_internal')
   AND has_function_privilege(r.role, p.oid, 'EXECUTE')
 GROUP BY r.role ORDER BY r.role;
-- ... and calling one answers 42501 for each role, whatever the function
CREATE FUNCTION pg_temp.call_sql(f regprocedure) RETURNS text LANGUAGE sql AS $$
    SELECT format('SELECT %s(%s)', f::regproc,
                  COALESCE((SELECT string_agg('NULL::' || format_type(u.t, NULL), ', ' ORDER BY u.o)
                              FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS u(t, o)), ''))
      FROM pg_proc p WHERE p.oid = f
$$;
GRANT EXECUTE ON FUNCTION pg_temp.call_sql(regprocedure) TO PUBLIC;
SET ROLE regress_nobody;
SELECT count(*) FILTER (WHERE left(err(pg_temp.call_sql(p.oid)), 5) = '42501') = count(*)
           AS nobody_denied_all_not_granted,
       count(*) > 40 AS nobody_many_not_granted
  FROM pg_proc p
 WHERE p.pronamespace = to_regnamespace('apikeys_internal')
   AND NOT has_function_privilege('regress_nobody', p.oid, 'EXECUTE');
RESET ROLE;
SET ROLE regress_verifier;
SELECT count(*) FILTER (WHERE left(err(pg_temp.call_sql(p.oid)), 5) = '42501') = count(*)
           AS verifier_denied_all_not_granted,
       count(*) > 40 AS verifier_many_not_granted
  FROM pg_proc p
 WHERE p.pronamespace = to_regnamespace('apikeys_internal')
   AND NOT has_function_privilege('regress_verifier', p.oid, 'EXECUTE');
SELECT err($$SELECT apikeys_internal._mint(NULL)$$) AS verifier_mints;
RESET ROLE;
SET ROLE regress_admin;
SELECT count(*) FILTER (WHERE left(err(pg_temp.call_sql(p.oid)), 5) = '42501') = count(*)
           AS admin_denied_all_not_granted,
       count(*) > 40 AS admin_many_not_granted
  FROM pg_proc p
 WHERE p.pronamespace = to_regnamespace('apikeys_internal')
   AND NOT has_function_privilege('regress_admin', p.oid, 'EXECUTE');
SELECT err($$SELECT apikeys_internal._revoke_key('ak_0000000000000000', NULL)$$) AS admin_bypasses_revoke_key;
SELECT err($$CREATE FUNCTION apikeys_internal._evil() RETURNS int LANGUAGE sql AS 'SELECT 1'$$) AS create_in_internal;
RESET ROLE;

-- 5. Admin functions answer with a value
SELECT apikeys.set_owner_policy('surface', max_keys => 10);
SELECT apikeys.set_owner_policy('surface', max_keys => 10) AS unchanged_policy;
SELECT apikeys.set_owner_policy('surface', max_keys => 12, rotate_every => '30 days');
SELECT (k).client_id AS cid FROM (SELECT apikeys.create_key('surface', 's', '{docs:read}') AS k) s \gset
SELECT apikeys.disable_key(:'cid') AS disabled, apikeys.disable_key(:'cid') AS disabled_again;
SELECT apikeys.enable_key(:'cid') AS enabled, apikeys.enable_key(:'cid') AS enabled_again;
SELECT apikeys.define_scope_set('surface_set', '{docs:read}') AS holders_before;
SELECT apikeys.update_key(:'cid', scopes => '{@surface_set}');
SELECT apikeys.define_scope_set('surface_set', '{docs:read,docs:update}') AS holders_after;
SELECT apikeys.revoke_key(:'cid', 'surface test') AS revoked;
SELECT apikeys.delete_key(:'cid') AS deleted;
SELECT apikeys.drop_scope_set('surface_set');

-- 6. A squatted schema: CREATE EXTENSION and the update to 1.1 refuse it
CREATE DATABASE regress_surface;
\c regress_surface
SET client_min_messages = warning;
CREATE SCHEMA apikeys_internal;
-- message, detail and hint; not the CONTEXT, whose text differs by major
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION apikeys;
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'apikeys';
CREATE EXTENSION apikeys VERSION '1.0';
ALTER EXTENSION apikeys UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'apikeys';
\set VERBOSITY terse
\set SHOW_CONTEXT errors
DROP SCHEMA apikeys_internal;
ALTER EXTENSION apikeys UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'apikeys';
-- the schema's privileges after the update, as in a fresh install (3.)
SELECT n.nspname,
       (SELECT string_agg(CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE x.grantee::regrole::text END
                          || ':' || x.privilege_type, ', ' ORDER BY 1)
          FROM aclexplode(n.nspacl) x WHERE x.grantee <> n.nspowner) AS grants,
       obj_description(n.oid, 'pg_namespace') IS NOT NULL AS commented
  FROM pg_namespace n WHERE n.nspname = 'apikeys_internal';
-- the walked update, like a fresh install, lists no internal function in apikeys
SELECT count(*) AS internal_functions_in_apikeys_after_update
  FROM pg_proc p WHERE p.pronamespace = to_regnamespace('apikeys') AND p.proname LIKE '\_%';
DROP EXTENSION apikeys;
SELECT count(*) AS schemas_left FROM pg_namespace WHERE nspname IN ('apikeys_internal');
\c contrib_regression
DROP DATABASE regress_surface;
