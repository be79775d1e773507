\i test/setup.sql
--
-- upgrade: ALTER EXTENSION apikeys UPDATE from the first released version
-- keeps every key verifying the same and every audit row; and an
-- installation at the default version has exactly the objects (definitions,
-- grants, settings, triggers and their firing modes, constraints, indexes,
-- storage options) of one that was updated to it.
--
-- 1.0 is the only version so far, so the update below is a no-op today and
-- the comparison checks that a walk changes nothing; when 1.1 ships (with
-- apikeys--1.0--1.1.sql), this same file walks 1.0 -> 1.1 unchanged.  Keep
-- :from_version at the oldest version still supported.
--
-- Runs in databases of its own: the test database has the extension at
-- the default version already.
--
SET client_min_messages = warning;
SELECT current_user AS regress_superuser \gset
\set from_version '1.0'

-- the versions and update paths there are: adding a version changes this
SELECT version FROM pg_available_extension_versions WHERE name = 'apikeys' ORDER BY 1;
SELECT source, target, path FROM pg_extension_update_paths('apikeys')
 WHERE path IS NOT NULL ORDER BY 1, 2;

-- objects_sql: a fingerprint of every member of the extension, with what
-- matters for security and behaviour: definition, owner-relative grants,
-- settings, RLS and its policies, columns and their storage, table
-- options, each table's triggers (with their ENABLE mode), constraints and
-- indexes (which are not members themselves), operators, operator classes
-- and casts, comments, and which tables pg_dump dumps.
-- tools/check-install-script.sh compares the install script generated
-- from sql/install/ with this same query: keep it between the markers.
SELECT $fingerprint$
SELECT string_agg(d.member || ' ' || md5(d.def), E'\n' ORDER BY d.member)
  FROM (SELECT pg_describe_object(e.classid, e.objid, e.objsubid) AS member,
               COALESCE(CASE e.classid
               WHEN 'pg_proc'::regclass THEN
                 (SELECT pg_get_functiondef(p.oid) || COALESCE(p.proacl::text, '')
                    FROM pg_proc p WHERE p.oid = e.objid AND p.prokind <> 'a')
               WHEN 'pg_class'::regclass THEN
                 (SELECT c.relkind::text || c.relrowsecurity::text || COALESCE(c.relacl::text, '')
                         || COALESCE(c.reloptions::text, '') || COALESCE(pg_get_viewdef(c.oid), '')
                         || COALESCE((SELECT string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod)
                                                       || a.attnotnull::text || a.attstorage::text
                                                       || COALESCE(pg_get_expr(ad.adbin, ad.adrelid), ''),
                                                       ',' ORDER BY a.attnum)
                                        FROM pg_attribute a
                                        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                                       WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
                         || COALESCE((SELECT string_agg(tg.tgname || tg.tgenabled::text || pg_get_triggerdef(tg.oid),
                                                       ',' ORDER BY tg.tgname)
                                        FROM pg_trigger tg WHERE tg.tgrelid = c.oid AND NOT tg.tgisinternal), '')
                         || COALESCE((SELECT string_agg(co.conname || pg_get_constraintdef(co.oid), ',' ORDER BY co.conname)
                                        FROM pg_constraint co WHERE co.conrelid = c.oid), '')
                         || COALESCE((SELECT string_agg(pg_get_indexdef(i.indexrelid), ',' ORDER BY i.indexrelid::regclass::text)
                                        FROM pg_index i WHERE i.indrelid = c.oid), '')
                         || COALESCE((SELECT string_agg(po.polname || po.polcmd::text || po.polpermissive::text
                                                       || po.polroles::regrole[]::text
                                                       || COALESCE(pg_get_expr(po.polqual, po.polrelid), '')
                                                       || COALESCE(pg_get_expr(po.polwithcheck, po.polrelid), ''),
                                                       ',' ORDER BY po.polname)
                                        FROM pg_policy po WHERE po.polrelid = c.oid), '')
                    FROM pg_class c WHERE c.oid = e.objid)
               WHEN 'pg_type'::regclass THEN
                 (SELECT format_type(t.oid, NULL) || t.typtype::text || COALESCE(t.typacl::text, '')
                    FROM pg_type t WHERE t.oid = e.objid)
               WHEN 'pg_event_trigger'::regclass THEN
                 (SELECT evt.evtevent::text || evt.evtenabled::text || COALESCE(evt.evttags::text, '')
                         || evt.evtfoid::regprocedure::text
                    FROM pg_event_trigger evt WHERE evt.oid = e.objid)
               WHEN 'pg_operator'::regclass THEN
                 (SELECT o.oprcode::regprocedure::text || o.oprleft::regtype::text || o.oprright::regtype::text
                         || o.oprresult::regtype::text || o.oprcom::regoperator::text || o.oprnegate::regoperator::text
                         || o.oprrest::text || o.oprjoin::text || o.oprcanmerge::text || o.oprcanhash::text
                    FROM pg_operator o WHERE o.oid = e.objid)
               WHEN 'pg_opclass'::regclass THEN
                 (SELECT oc.opcdefault::text || oc.opcintype::regtype::text
                         || COALESCE((SELECT string_agg(ao.amopstrategy || ':' || ao.amopopr::regoperator::text,
                                                       ',' ORDER BY ao.amopstrategy)
                                        FROM pg_amop ao WHERE ao.amopfamily = oc.opcfamily), '')
                         || COALESCE((SELECT string_agg(ap.amprocnum || ':' || ap.amproc::regprocedure::text,
                                                       ',' ORDER BY ap.amprocnum)
                                        FROM pg_amproc ap WHERE ap.amprocfamily = oc.opcfamily), '')
                    FROM pg_opclass oc WHERE oc.oid = e.objid)
               WHEN 'pg_cast'::regclass THEN
                 (SELECT ca.castfunc::regprocedure::text || ca.castcontext::text || ca.castmethod::text
                    FROM pg_cast ca WHERE ca.oid = e.objid)
               END, '')
               || COALESCE((SELECT string_agg(ds.objsubid || ':' || ds.description, ',' ORDER BY ds.objsubid)
                              FROM pg_description ds WHERE ds.classoid = e.classid AND ds.objoid = e.objid), '')
               AS def
          FROM pg_depend e
         WHERE e.refclassid = 'pg_extension'::regclass AND e.deptype = 'e'
           AND e.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'apikeys')
        UNION ALL
        SELECT 'extension configuration (pg_dump)',
               COALESCE((SELECT string_agg(u.cfg::regclass::text || ':' || COALESCE(u.cond, ''), ',' ORDER BY u.cfg::regclass::text)
                           FROM pg_extension x, unnest(x.extconfig, x.extcondition) AS u(cfg, cond)
                          WHERE x.extname = 'apikeys'), '')) d
$fingerprint$ AS objects_sql \gset

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

-- 2. The first released version, with keys in every state and their audit rows, updated
\c contrib_regression
CREATE DATABASE regress_upgrade_walk;
\c regress_upgrade_walk
SET client_min_messages = warning;
CREATE EXTENSION apikeys VERSION :'from_version';
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
-- a key issued under another prefix (with an underscore), for the prefix
-- column 1.1 adds
SET apikeys.token_prefix = 'acme_live';
CREATE TEMP TABLE prefixed AS
SELECT k.* FROM apikeys.create_key('acme', 'prefixed', ARRAY['docs:read']) k;
RESET apikeys.token_prefix;

-- what every token answers, and the audit trail, before the update
CREATE TEMP TABLE answers_before AS
SELECT t.label, (apikeys.verify(t.token, 'docs:read')).*
  FROM (SELECT 'key ' || n AS label, token FROM issued
        UNION ALL SELECT 'key ' || n || ' rotated', token FROM rotated) t;
SELECT label, valid, code FROM answers_before ORDER BY label;
SELECT count(*) AS audit_rows_before,
       md5(string_agg(a::text, ',' ORDER BY id)) AS audit_before
  FROM apikeys.audit_log a \gset
CREATE TEMP TABLE keys_before AS SELECT * FROM apikeys.keys;
-- rolled-up usage as 1.0 stored it (a row per key, hour and code, the last
-- use on the VALID row) and a journal row: 1.1 packs the rows, the update
-- carries them over
INSERT INTO apikeys.usage (client_id, hour, code, count, last_used_at)
SELECT i.client_id, date_trunc('hour', now()) - h * interval '1 hour', c.code, i.n * 10 + h,
       CASE WHEN c.code = 'VALID' THEN date_trunc('hour', now()) - h * interval '1 hour' + i.n * interval '1 minute' END
  FROM issued i, generate_series(1, 3) h, (VALUES ('VALID'), ('NOT_FOUND')) c(code)
 WHERE i.n <> 5 AND NOT (c.code = 'NOT_FOUND' AND h = 2);
SELECT apikeys.flush_usage(false) >= 0 AS journaled;
SELECT count(*) AS usage_rows_before, md5(string_agg(u::text, ',' ORDER BY client_id, hour, code)) AS usage_before
  FROM apikeys.usage u \gset
SELECT md5(string_agg(client_id || ':' || coalesce(last_used_at::text, '-'), ',' ORDER BY client_id)) AS listed_before
  FROM apikeys.key_list \gset
SELECT count(*) AS journal_rows_before FROM apikeys.usage_journal \gset

ALTER EXTENSION apikeys UPDATE;
SELECT extversion = :'direct_version' AS updated_to_default FROM pg_extension WHERE extname = 'apikeys';
-- the usage rows, the last uses key_list shows and the journal are carried
-- over (checked before anything verifies again: the worker may flush new
-- uses at any moment)
SELECT count(*) = :usage_rows_before AS usage_rows_kept,
       md5(string_agg(u::text, ',' ORDER BY client_id, hour, code)) = :'usage_before' AS usage_rows_identical
  FROM apikeys.usage u;
SELECT sum(keys) AS packed_keys_and_hours FROM apikeys.usage_packed;
SELECT md5(string_agg(client_id || ':' || coalesce(last_used_at::text, '-'), ',' ORDER BY client_id)) = :'listed_before'
       AS last_uses_identical
  FROM apikeys.key_list;
SELECT (SELECT count(*) FROM apikeys.usage_journal) = :journal_rows_before AS journal_kept,
       (SELECT relpersistence FROM pg_class WHERE oid = 'apikeys.usage_journal'::regclass) AS journal_persistence;

-- every token answers exactly as before; every audit row and key row is there
-- (last_used_at aside, which verification itself may write); a column or
-- result attribute the new version adds is not compared
SELECT b.label, b.code AS before, a.code AS after,
       (SELECT bool_and(to_jsonb(a) -> e.key IS NOT DISTINCT FROM e.value)
          FROM jsonb_each(to_jsonb(b)) e) AS same
  FROM answers_before b
  JOIN LATERAL (SELECT b.label, v.* FROM apikeys.verify(
          (SELECT token FROM issued WHERE 'key ' || n = b.label
           UNION ALL SELECT token FROM rotated WHERE 'key ' || n || ' rotated' = b.label),
          'docs:read') v) a ON true
 ORDER BY b.label;
SELECT count(*) = :audit_rows_before AS audit_rows_kept,
       md5(string_agg(a::text, ',' ORDER BY id)) = :'audit_before' AS audit_rows_identical
  FROM apikeys.audit_log a;
SELECT count(*) = (SELECT count(*) FROM apikeys.keys) AS key_rows_kept,
       bool_and((SELECT bool_and(to_jsonb(k) -> e.key IS NOT DISTINCT FROM e.value)
                   FROM jsonb_each(to_jsonb(b) - 'last_used_at') e)) AS key_rows_identical
  FROM keys_before b JOIN apikeys.keys k USING (client_id);
-- every key got the prefix its tokens carry (1.1's prefix column)
SELECT t.label, k.prefix, starts_with(t.token, k.prefix || '_') AS token_carries_it
  FROM (SELECT 'key ' || n AS label, client_id, token FROM issued
        UNION ALL SELECT 'prefixed', client_id, token FROM prefixed) t
  JOIN apikeys.keys k USING (client_id)
 ORDER BY t.label;
SELECT (apikeys.verify(token)).code AS prefixed_key FROM prefixed;
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

-- 4. The fingerprint sees what a walk could get wrong: each change below,
-- rolled back, must alter it (a fingerprint blind to one of them would let
-- an upgrade script forget it unnoticed)
CREATE TEMP TABLE fingerprint_changes (change text, stmt text);
INSERT INTO fingerprint_changes VALUES
    -- (the event trigger apikeys_ddl_guard undoes these two: switch it off first)
    ('trigger demoted from ALWAYS', 'ALTER EVENT TRIGGER apikeys_ddl_guard DISABLE; ALTER TABLE apikeys.keys ENABLE TRIGGER keys_cache'),
    ('trigger disabled', 'ALTER EVENT TRIGGER apikeys_ddl_guard DISABLE; ALTER TABLE apikeys.audit_log DISABLE TRIGGER audit_log_append_only'),
    ('event trigger demoted from ALWAYS', 'ALTER EVENT TRIGGER apikeys_ddl_guard ENABLE'),
    ('constraint dropped', 'ALTER TABLE apikeys.keys DROP CONSTRAINT keys_secret_hash_check'),
    ('index dropped', 'DROP INDEX apikeys.keys_owner_idx'),
    ('index redefined', 'DROP INDEX apikeys.audit_log_at_idx; CREATE INDEX audit_log_at_idx ON apikeys.audit_log (at DESC)'),
    ('storage option', 'ALTER TABLE apikeys.keys SET (fillfactor = 100)'),
    ('column storage', 'ALTER TABLE apikeys.usage_journal ALTER COLUMN data SET STORAGE EXTENDED'),
    ('view redefined', 'CREATE OR REPLACE VIEW apikeys.failing_addresses AS SELECT f.address, f.client_id, f.failures, f.window_start, f.window_end, f.blocked, f.blocked_attempts FROM apikeys_internal._failing_addresses() f'),
    ('function grant', 'GRANT EXECUTE ON FUNCTION apikeys.delete_key(text) TO apikeys_verifier'),
    ('comment changed', 'COMMENT ON FUNCTION apikeys.delete_key(text) IS ''changed'''),
    ('column comment dropped', 'COMMENT ON COLUMN apikeys.outbox.claim_id IS NULL'),
    ('policy changed', 'ALTER POLICY outbox_delivery_read ON apikeys.outbox USING (false)'),
    ('operator changed', 'ALTER OPERATOR apikeys.= (apikeys.scope, apikeys.scope) SET (RESTRICT = scalarltsel)'),
    ('table no longer dumped', 'UPDATE pg_catalog.pg_extension SET extconfig = extconfig[2:], extcondition = extcondition[2:] WHERE extname = ''apikeys''');
CREATE FUNCTION pg_temp.objects() RETURNS text LANGUAGE sql AS :'objects_sql';
CREATE FUNCTION pg_temp.fingerprint_after(stmt text) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
    fp text;
BEGIN
    BEGIN
        EXECUTE stmt;
        fp := pg_temp.objects();
        RAISE EXCEPTION 'undo';
    EXCEPTION WHEN raise_exception THEN
        NULL;           -- the change is rolled back, fp is kept
    END;
    RETURN fp;
END
$fn$;
SELECT change, pg_temp.fingerprint_after(stmt) IS DISTINCT FROM :'walk_string_agg' AS fingerprint_changed
  FROM fingerprint_changes ORDER BY change;
SELECT pg_temp.objects() = :'walk_string_agg' AS changes_rolled_back;

\c contrib_regression
DROP DATABASE regress_upgrade_direct;
DROP DATABASE regress_upgrade_walk;
