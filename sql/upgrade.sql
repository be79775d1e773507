--
-- upgrade: ALTER EXTENSION apikeys UPDATE from every released version keeps
-- every key verifying the same and every audit row; and an installation at
-- the default version has exactly the objects (definitions, grants,
-- settings) of one that was updated to it.
--
-- Runs in databases of its own: the test database has the extension at
-- the default version already.
--
SET client_min_messages = warning;
SELECT current_user AS regress_superuser \gset

-- objects(): a fingerprint of every member of the extension, with what
-- matters for security and behaviour (definition, owner-relative grants,
-- settings, RLS, columns)
\set objects_sql 'SELECT string_agg(d.member || '' '' || md5(d.def), E''\\n'' ORDER BY d.member) FROM (SELECT pg_describe_object(e.classid, e.objid, e.objsubid) AS member, COALESCE(CASE e.classid WHEN ''pg_proc''::regclass THEN (SELECT pg_get_functiondef(p.oid) || COALESCE(p.proacl::text, '''') FROM pg_proc p WHERE p.oid = e.objid AND p.prokind <> ''a'') WHEN ''pg_class''::regclass THEN (SELECT c.relkind::text || c.relrowsecurity::text || COALESCE(c.relacl::text, '''') || COALESCE(pg_get_viewdef(c.oid), '''') || (SELECT string_agg(a.attname || '':'' || format_type(a.atttypid, a.atttypmod) || a.attnotnull::text || COALESCE(pg_get_expr(ad.adbin, ad.adrelid), ''''), '','' ORDER BY a.attnum) FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) FROM pg_class c WHERE c.oid = e.objid) WHEN ''pg_type''::regclass THEN (SELECT format_type(t.oid, NULL) || t.typtype::text || COALESCE(t.typacl::text, '''') FROM pg_type t WHERE t.oid = e.objid) END, '''') AS def FROM pg_depend e WHERE e.refclassid = ''pg_extension''::regclass AND e.deptype = ''e'' AND e.refobjid = (SELECT oid FROM pg_extension WHERE extname = ''apikeys'')) d'

-- 1. The default version, installed directly
CREATE DATABASE regress_upgrade_direct;
\c regress_upgrade_direct
SET client_min_messages = warning;
CREATE EXTENSION apikeys;
SELECT extversion AS direct_version FROM pg_extension WHERE extname = 'apikeys' \gset
:objects_sql \gset direct_
SELECT count(*) > 0 AS direct_has_members FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'apikeys');

-- 2. Version 1.0, with keys in every state and their audit rows, updated
\c contrib_regression
CREATE DATABASE regress_upgrade_walk;
\c regress_upgrade_walk
SET client_min_messages = warning;
CREATE EXTENSION apikeys VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'apikeys';
CREATE TABLE public.docs (id int, owner text);
SELECT apikeys.protect('public.docs', 'owner');
SELECT apikeys.set_owner_policy('acme', 20, '180 days');
CREATE TEMP TABLE issued AS
SELECT n, k.*
  FROM generate_series(1, 8) n,
       LATERAL apikeys.create_key(CASE WHEN n % 2 = 0 THEN 'acme' ELSE 'globex' END,
                                  'key ' || n, ARRAY['docs:read', 'docs:update(title)'],
                                  contact_email => CASE WHEN n < 4 THEN 'ops@example.com' END) k;
-- every state: rotated with grace, rotated without, disabled, revoked,
-- deleted, updated, short-lived
CREATE TEMP TABLE rotated AS
SELECT i.n, r.token FROM issued i, LATERAL apikeys.rotate_key(i.client_id, CASE WHEN i.n = 1 THEN interval '1 hour' ELSE interval '0' END) r
 WHERE i.n IN (1, 2);
SELECT apikeys.disable_key(client_id, 'upgrade test') FROM issued WHERE n = 3;
SELECT apikeys.revoke_key(client_id, 'upgrade test') FROM issued WHERE n = 4;
SELECT apikeys.delete_key(client_id) FROM issued WHERE n = 5;
SELECT apikeys.update_key(client_id, name => 'renamed', scopes => ARRAY['*'],
                          expires_at => now() + interval '3 days') FROM issued WHERE n = 6;
SELECT apikeys.report_leaked(token) FROM issued WHERE n = 7;

-- what every token answers, and the audit trail, before the update
CREATE TEMP TABLE answers_before AS
SELECT t.label, (apikeys.verify(t.token, 'docs:read')).*
  FROM (SELECT 'key ' || n AS label, token FROM issued
        UNION ALL SELECT 'key ' || n || ' rotated', token FROM rotated) t;
SELECT label, valid, code FROM answers_before ORDER BY label;
SELECT count(*) AS audit_rows_before,
       md5(string_agg(a::text, ',' ORDER BY id)) AS audit_before
  FROM apikeys.audit_log a \gset
SELECT md5(string_agg((to_jsonb(k) - 'last_used_at')::text, ',' ORDER BY client_id)) AS keys_before FROM apikeys.keys k \gset

-- the current library under the 1.0 schema (no usage journal) writes usage
-- straight into apikeys.usage, as 1.0 did
SELECT apikeys.flush_usage() >= 0 AS flushed_under_1_0;
SELECT count(*) > 0 AS usage_rows_under_1_0 FROM apikeys.usage;

ALTER EXTENSION apikeys UPDATE;
SELECT extversion = :'direct_version' AS updated_to_default FROM pg_extension WHERE extname = 'apikeys';

-- every token answers exactly as before; every audit row and key row is there
-- (last_used_at aside, which verification itself may write)
SELECT b.label, b.code AS before, a.code AS after,
       (b.*) IS NOT DISTINCT FROM (a.*) AS same
  FROM answers_before b
  JOIN LATERAL (SELECT b.label, v.* FROM apikeys.verify(
          (SELECT token FROM issued WHERE 'key ' || n = b.label
           UNION ALL SELECT token FROM rotated WHERE 'key ' || n || ' rotated' = b.label),
          'docs:read') v) a ON true
 ORDER BY b.label;
SELECT count(*) = :audit_rows_before AS audit_rows_kept,
       md5(string_agg(a::text, ',' ORDER BY id)) = :'audit_before' AS audit_rows_identical
  FROM apikeys.audit_log a;
SELECT md5(string_agg((to_jsonb(k) - 'last_used_at')::text, ',' ORDER BY client_id)) = :'keys_before' AS key_rows_identical
  FROM apikeys.keys k;
-- issuing and RLS still work
SELECT (apikeys.verify(k.token)).code AS new_key
  FROM apikeys.create_key('acme', 'after update', ARRAY['docs:read']) k;
SELECT polname FROM pg_policy WHERE polrelid = 'public.docs'::regclass ORDER BY 1;

-- 3. Same objects, grants and definitions either way
:objects_sql \gset walk_
SELECT :'walk_string_agg' = :'direct_string_agg' AS same_objects_as_direct_install;
-- (on a difference, this lists it)
SELECT m AS only_in_updated FROM unnest(string_to_array(:'walk_string_agg', E'\n')) m
EXCEPT SELECT unnest(string_to_array(:'direct_string_agg', E'\n'));
SELECT m AS only_in_direct FROM unnest(string_to_array(:'direct_string_agg', E'\n')) m
EXCEPT SELECT unnest(string_to_array(:'walk_string_agg', E'\n'));

-- 4. What 1.1 adds: apikeys.key_hygiene, for admins only
-- (age two keys: 8 issued a month ago and never used, 2 last used long ago)
UPDATE apikeys.keys SET created_at = now() - interval '30 days', last_used_at = NULL
 WHERE client_id = (SELECT client_id FROM issued WHERE n = 8);
UPDATE apikeys.keys SET last_used_at = now() - interval '100 days'
 WHERE client_id = (SELECT client_id FROM issued WHERE n = 2);
SELECT i.n, h.status, h.findings
  FROM apikeys.key_hygiene h JOIN issued i USING (client_id) ORDER BY i.n;
CREATE ROLE regress_upgrade_admin IN ROLE apikeys_admin;
CREATE ROLE regress_upgrade_verifier IN ROLE apikeys_verifier;
SET ROLE regress_upgrade_admin;
SELECT count(*) > 0 AS admin_reads_hygiene FROM apikeys.key_hygiene;
RESET ROLE;
SET ROLE regress_upgrade_verifier;
SELECT * FROM apikeys.key_hygiene;
RESET ROLE;
DROP ROLE regress_upgrade_admin, regress_upgrade_verifier;

\c contrib_regression
DROP DATABASE regress_upgrade_direct;
DROP DATABASE regress_upgrade_walk;
