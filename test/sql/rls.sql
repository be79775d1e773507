\i test/setup.sql
--
-- rls: apikeys.protect / unprotect and field views on user tables.
--
SELECT current_user AS superuser \gset
CREATE ROLE regress_rls_owner LOGIN;
CREATE COLLATION regress_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE SCHEMA rls AUTHORIZATION regress_rls_owner;
GRANT USAGE ON SCHEMA rls TO PUBLIC;
CREATE SCHEMA rls_api AUTHORIZATION regress_rls_owner;

SET ROLE regress_admin;
SELECT (k).token AS alice FROM (SELECT apikeys.create_key('alice', 'alice rw',
    ARRAY['docs:read', 'docs:create', 'docs:update', 'docs:delete']) AS k) s \gset
SELECT (k).token AS alice_ro FROM (SELECT apikeys.create_key('alice', 'alice ro',
    ARRAY['docs:read']) AS k) s \gset
SELECT (k).token AS alice_other FROM (SELECT apikeys.create_key('alice', 'alice other resource',
    ARRAY['invoices:*']) AS k) s \gset
SELECT (k).token AS bob FROM (SELECT apikeys.create_key('bob', 'bob all', ARRAY['docs:*']) AS k) s \gset
RESET ROLE;

SET ROLE regress_rls_owner;
CREATE TABLE rls.docs (
    id      int PRIMARY KEY,
    owner   text NOT NULL,
    title   text NOT NULL,
    public  boolean NOT NULL DEFAULT false
);
INSERT INTO rls.docs VALUES
    (1, 'alice', 'alice private', false),
    (2, 'alice', 'alice public', true),
    (3, 'bob', 'bob private', false),
    (4, 'bob', 'bob public', true);
GRANT SELECT, INSERT, UPDATE, DELETE ON rls.docs TO regress_verifier;

-- protect: four policies, RLS on, bookkeeping for unprotect
SELECT apikeys.protect('rls.docs', 'owner', public_filter => 'public');
SELECT policyname, cmd, qual, with_check FROM pg_policies
 WHERE schemaname = 'rls' AND tablename = 'docs' ORDER BY policyname;
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'rls.docs'::regclass;
-- idempotent: the same call again changes nothing
SELECT apikeys.protect('rls.docs', 'owner', public_filter => 'public');
SELECT count(*) AS policies FROM pg_policies WHERE schemaname = 'rls' AND tablename = 'docs';
RESET ROLE;
SELECT tbl, owner_column, resource, public_filter, enabled_rls, forced_rls FROM apikeys.protected_tables;

-- Reading.  Anonymous: public rows only.
SET ROLE regress_verifier;
SELECT id, owner, title FROM rls.docs ORDER BY id;
-- alice: her rows and the public ones
BEGIN;
SELECT code FROM apikeys.authenticate(:'alice');
SELECT id, owner, title FROM rls.docs ORDER BY id;
COMMIT;
-- bob: his rows and the public ones; never alice's private row
BEGIN;
SELECT code FROM apikeys.authenticate(:'bob');
SELECT id, owner, title FROM rls.docs ORDER BY id;
SELECT count(*) AS alice_private_visible FROM rls.docs WHERE id = 1;
COMMIT;
-- a key of alice without docs:read sees only public rows
BEGIN;
SELECT code FROM apikeys.authenticate(:'alice_other');
SELECT id, owner, title FROM rls.docs ORDER BY id;
COMMIT;

-- Writing.  WITH CHECK: a key writes rows of its own owner only.
BEGIN;
SELECT code FROM apikeys.authenticate(:'alice');
INSERT INTO rls.docs VALUES (10, 'alice', 'alice new', false);
SELECT err($$INSERT INTO rls.docs VALUES (11, 'bob', 'planted in bob''s account', false)$$) AS insert_for_bob;
SELECT err($$UPDATE rls.docs SET owner = 'bob' WHERE id = 10$$) AS give_row_away;
UPDATE rls.docs SET title = 'alice renamed' WHERE id = 10;
UPDATE rls.docs SET title = 'hijacked' WHERE id IN (3, 4);  -- bob's rows: 0 rows
DELETE FROM rls.docs WHERE id IN (3, 4);                   -- 0 rows
DELETE FROM rls.docs WHERE id = 2;
COMMIT;
-- a read-only key cannot write at all
BEGIN;
SELECT code FROM apikeys.authenticate(:'alice_ro');
SELECT err($$INSERT INTO rls.docs VALUES (12, 'alice', 'ro insert', false)$$) AS insert_without_create;
UPDATE rls.docs SET title = 'ro update' WHERE id = 10;     -- 0 rows
DELETE FROM rls.docs WHERE id = 10;                         -- 0 rows
COMMIT;
-- anonymous cannot write, not even public rows
SELECT err($$INSERT INTO rls.docs VALUES (13, 'alice', 'anon', true)$$) AS anon_insert;
UPDATE rls.docs SET title = 'anon update' WHERE id = 4;    -- 0 rows
RESET ROLE;
SELECT id, owner, title, public FROM rls.docs ORDER BY id;

-- resource defaults to the table name; a different one can be given
SET ROLE regress_rls_owner;
SELECT apikeys.protect('rls.docs', 'owner', 'documents');
SELECT policyname, qual FROM pg_policies WHERE schemaname = 'rls' AND tablename = 'docs'
 AND policyname = 'apikeys_read';
RESET ROLE;
SET ROLE regress_verifier;
BEGIN;
SELECT code FROM apikeys.authenticate(:'alice');
SELECT count(*) AS docs_key_on_documents FROM rls.docs;
COMMIT;
RESET ROLE;

-- unprotect removes exactly what protect created
SET ROLE regress_rls_owner;
CREATE POLICY mine ON rls.docs FOR SELECT USING (title LIKE 'alice%');
SELECT apikeys.unprotect('rls.docs');
SELECT policyname FROM pg_policies WHERE schemaname = 'rls' AND tablename = 'docs';
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'rls.docs'::regclass;
-- RLS that was on before protect stays on; FORCE set by protect goes
ALTER TABLE rls.docs ENABLE ROW LEVEL SECURITY;
SELECT apikeys.protect('rls.docs', 'owner', force => true);
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'rls.docs'::regclass;
-- with FORCE the table owner is bound too
SELECT count(*) AS owner_sees FROM rls.docs;
SELECT apikeys.unprotect('rls.docs');
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'rls.docs'::regclass;
SELECT policyname FROM pg_policies WHERE schemaname = 'rls' AND tablename = 'docs';
DROP POLICY mine ON rls.docs;
ALTER TABLE rls.docs DISABLE ROW LEVEL SECURITY;
RESET ROLE;
SELECT count(*) AS bookkeeping_left FROM apikeys.protected_tables;

-- Invalid input
SET ROLE regress_rls_owner;
CREATE VIEW rls.docs_view AS SELECT * FROM rls.docs;
SELECT err($$SELECT apikeys.protect('rls.docs_view', 'owner')$$) AS not_a_table;
SELECT err($$SELECT apikeys.protect('rls.docs', 'no_such_column')$$) AS no_column;
SELECT err($$SELECT apikeys.protect('rls.docs', 'owner', 'Docs')$$) AS bad_resource;
SELECT err($$SELECT apikeys.protect('rls.docs', 'owner', 'docs:read')$$) AS resource_with_action;
SELECT err($$SELECT apikeys.protect(NULL, 'owner')$$) AS null_table;
SELECT err($$SELECT apikeys.protect('rls.docs', NULL)$$) AS null_column;
SELECT err($$SELECT apikeys.protect('rls.docs', 'owner', public_filter => 'no_such_column')$$) AS bad_filter;
SELECT err($$SELECT apikeys.unprotect('rls.docs')$$) AS not_protected;
SELECT count(*) AS policies_after_errors FROM pg_policies WHERE schemaname = 'rls';
DROP VIEW rls.docs_view;
RESET ROLE;
-- only the table's owner may protect or unprotect it
SET ROLE regress_nobody;
SELECT err($$SELECT apikeys.protect('rls.docs', 'owner')$$) AS protect_not_owner;
RESET ROLE;
SET ROLE regress_rls_owner;
SELECT apikeys.protect('rls.docs', 'owner');
RESET ROLE;
SET ROLE regress_nobody;
SELECT err($$SELECT apikeys.unprotect('rls.docs')$$) AS unprotect_not_owner;
SELECT err($$SELECT apikeys_internal._protected_forget('rls.docs')$$) AS internal_helper;
RESET ROLE;

--
-- Field views: the HR example.  A calendar integration holding
-- employees:read(name,start_date,end_date) sees names and dates only.
--
SET ROLE regress_rls_owner;
CREATE TABLE rls.employees (
    id          int PRIMARY KEY,
    company     text NOT NULL,
    name        text NOT NULL,
    start_date  date NOT NULL,
    end_date    date,
    salary      numeric(10,2),
    ssn         text
);
INSERT INTO rls.employees VALUES
    (1, 'hooli',  'Ada',   '2020-01-06', NULL,         85000, '078-05-1120'),
    (2, 'hooli',  'Brian', '2021-03-01', '2023-06-30', 72000, '219-09-9999'),
    (3, 'initech', 'Chen',  '2019-09-15', NULL,         99000, '457-55-5462');
SELECT apikeys.protect('rls.employees', 'company');
SELECT apikeys.create_field_view('employee_directory', 'rls.employees', always_visible => '{id}');
GRANT SELECT ON rls.employees, rls.employee_directory TO regress_verifier;
RESET ROLE;
\d rls.employee_directory
-- (16 stopped qualifying the columns of a one-table view: shown as 16 does)
SELECT regexp_replace(pg_get_viewdef('rls.employee_directory'::regclass, true),
                      '\memployees\.', '', 'g') AS definition;

SET ROLE regress_admin;
SELECT (k).token AS calendar FROM (SELECT apikeys.create_key('hooli', 'calendar sync',
    ARRAY['employees:read(name,start_date,end_date)']) AS k) s \gset
SELECT (k).token AS hr FROM (SELECT apikeys.create_key('hooli', 'hr system',
    ARRAY['employees:read']) AS k) s \gset
SELECT (k).token AS payroll FROM (SELECT apikeys.create_key('hooli', 'payroll',
    ARRAY['employees:read(name)', 'employees:read(salary)']) AS k) s \gset
RESET ROLE;

SET ROLE regress_verifier;
-- the calendar key: names and dates, nothing else; initech's row not at all
BEGIN;
SELECT code FROM apikeys.authenticate(:'calendar');
SELECT * FROM rls.employee_directory ORDER BY id;
-- a hidden column cannot be used to probe values either: filters see NULL
SELECT count(*) AS rows_with_salary_over_0 FROM rls.employee_directory WHERE salary > 0;
SELECT count(*) AS rows_by_ssn FROM rls.employee_directory WHERE ssn = '078-05-1120';
COMMIT;
-- the HR key (no field list): every field
BEGIN;
SELECT code FROM apikeys.authenticate(:'hr');
SELECT * FROM rls.employee_directory ORDER BY id;
SELECT count(*) AS rows_with_salary_over_0 FROM rls.employee_directory WHERE salary > 0;
COMMIT;
-- fields add up across a key's scopes
BEGIN;
SELECT code FROM apikeys.authenticate(:'payroll');
SELECT * FROM rls.employee_directory ORDER BY id;
COMMIT;
-- no key: no rows (employees has no public filter)
SELECT count(*) AS anonymous_rows FROM rls.employee_directory;
-- The field limit is enforced by the view, not by the table: a role that
-- may read rls.employees itself sees every column of the rows the key may
-- read.  Expose only the view (for PostgREST: the table in a schema that is
-- not in db-schemas).
BEGIN;
SELECT code FROM apikeys.authenticate(:'calendar');
SELECT id, name, salary IS NOT NULL AS salary_visible_in_base_table FROM rls.employees ORDER BY id;
COMMIT;
RESET ROLE;

-- the view name may be schema-qualified; unqualified, it goes next to the table
SET ROLE regress_rls_owner;
SELECT apikeys.create_field_view('rls_api.staff', 'rls.employees', 'employees');
SELECT n.nspname, c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname IN ('staff', 'employee_directory') ORDER BY 1;
-- Invalid input
SELECT err($$SELECT apikeys.create_field_view('', 'rls.employees')$$) AS empty_name;
SELECT err($$SELECT apikeys.create_field_view('a.b.c', 'rls.employees')$$) AS three_part_name;
SELECT err($$SELECT apikeys.create_field_view('bad name', 'rls.employees')$$) AS bad_name;
SELECT err($$SELECT apikeys.create_field_view('v', 'rls.employees', 'Employees')$$) AS bad_resource;
SELECT err($$SELECT apikeys.create_field_view('employee_directory', 'rls.employees')$$) AS exists_already;
RESET ROLE;
-- only the table's owner may make a field view of it, even into a schema
-- the caller may create in
CREATE SCHEMA rls_nobody AUTHORIZATION regress_nobody;
SET ROLE regress_nobody;
SELECT err($$SELECT apikeys.create_field_view('rls_nobody.peek', 'rls.employees', 'employees')$$) AS field_view_not_owner;
RESET ROLE;
SELECT count(*) AS views_in_rls_nobody FROM pg_class WHERE relnamespace = 'rls_nobody'::regnamespace;
DROP SCHEMA rls_nobody CASCADE;

-- Owner columns of other types: the key's owner is cast to the column's
-- type (so an owner index serves the policy), without a type modifier, so
-- that a long owner name is never truncated into someone else's.
SET ROLE regress_rls_owner;
CREATE TABLE rls.tenant_notes (id int, tenant uuid NOT NULL, note text);
INSERT INTO rls.tenant_notes VALUES
    (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'tenant a'),
    (2, 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', 'tenant b');
SELECT apikeys.protect('rls.tenant_notes', 'tenant', 'notes');
CREATE TABLE rls.short_owner (id int, owner varchar(5) NOT NULL);
INSERT INTO rls.short_owner VALUES (1, 'alice');
SELECT apikeys.protect('rls.short_owner', 'owner', 'short');
SELECT tablename, qual FROM pg_policies
 WHERE schemaname = 'rls' AND policyname = 'apikeys_read' ORDER BY 1;
GRANT SELECT ON rls.tenant_notes, rls.short_owner TO regress_verifier;
RESET ROLE;
SET ROLE regress_admin;
SELECT (k).token AS tenant_a FROM (SELECT apikeys.create_key('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    'tenant a', ARRAY['notes:read']) AS k) s \gset
SELECT (k).token AS alice_long FROM (SELECT apikeys.create_key('alicex', 'not alice',
    ARRAY['short:read']) AS k) s \gset
RESET ROLE;
SET ROLE regress_verifier;
BEGIN;
SELECT code FROM apikeys.authenticate(:'tenant_a');
SELECT id, note FROM rls.tenant_notes ORDER BY id;
COMMIT;
BEGIN;
SELECT code FROM apikeys.authenticate(:'alice_long');
SELECT count(*) AS alicex_sees_alice FROM rls.short_owner;
COMMIT;
-- a key whose owner is not a uuid cannot own uuid rows: its queries fail
BEGIN;
SELECT code FROM apikeys.authenticate(:'alice_long');
SELECT err($$SELECT count(*) FROM rls.tenant_notes$$) AS owner_not_a_uuid;
COMMIT;
RESET ROLE;

-- An index on the owner column serves the policy: with sequential scans
-- priced out, the plan still has to be able to use the index, for a text
-- and for a uuid owner column (a policy that cast the column, or a
-- volatile current_owner(), could not use it and would scan).
SET ROLE regress_rls_owner;
CREATE TABLE rls.many (id int, owner text NOT NULL, tenant uuid NOT NULL, note text);
INSERT INTO rls.many
SELECT i, 'owner' || (i % 200), ('00000000-0000-0000-0000-' || lpad((i % 200)::text, 12, '0'))::uuid, 'n'
  FROM generate_series(1, 20000) i;
CREATE INDEX many_owner_idx ON rls.many (owner);
CREATE INDEX many_tenant_idx ON rls.many (tenant);
ANALYZE rls.many;
SELECT apikeys.protect('rls.many', 'owner', 'many');
CREATE TABLE rls.many_uuid AS SELECT * FROM rls.many;
CREATE INDEX many_uuid_tenant_idx ON rls.many_uuid (tenant);
ANALYZE rls.many_uuid;
SELECT apikeys.protect('rls.many_uuid', 'tenant', 'many');
GRANT SELECT ON rls.many, rls.many_uuid TO regress_verifier;
RESET ROLE;
SET ROLE regress_admin;
SELECT (k).token AS many_tok FROM (SELECT apikeys.create_key('owner7', 'many', ARRAY['many:read']) AS k) s \gset
SELECT (k).token AS many_uuid_tok FROM (SELECT apikeys.create_key('00000000-0000-0000-0000-000000000007', 'many uuid', ARRAY['many:read']) AS k) s \gset
RESET ROLE;
SET ROLE regress_verifier;
BEGIN;
SET LOCAL enable_seqscan = off;
SELECT code FROM apikeys.authenticate(:'many_tok');
EXPLAIN (COSTS OFF) SELECT * FROM rls.many;
SELECT count(*) AS rows_seen FROM rls.many;
COMMIT;
BEGIN;
SET LOCAL enable_seqscan = off;
SELECT code FROM apikeys.authenticate(:'many_uuid_tok');
EXPLAIN (COSTS OFF) SELECT * FROM rls.many_uuid;
SELECT count(*) AS rows_seen FROM rls.many_uuid;
COMMIT;
RESET ROLE;
SET ROLE regress_rls_owner;
SELECT apikeys.unprotect('rls.many'), apikeys.unprotect('rls.many_uuid');
DROP TABLE rls.many, rls.many_uuid;
RESET ROLE;

-- Owner columns of every common type.  A key matches a row only when the
-- row's owner, written back as text, is exactly the key's owner: a cast
-- alone would let '07', '+7' and ' 7' read owner 7's rows of an integer
-- column, '7' read the 7.0 rows of a numeric one, an upper-case uuid read
-- the lower-case one's, a 64-character owner read the 63-character one's
-- in a name column (truncated to 63), 'vandelay ' read 'vandelay' in char(n)
-- (padding is not significant there), and 'VANDELAY' read 'vandelay' in a column
-- with a case-insensitive collation.  char(n): the stored padding is not
-- part of the owner (char(n)::text drops it), so 'vandelay' matches a
-- char(8) 'vandelay' and an owner ending in a blank matches no char(n) row.
SET ROLE regress_rls_owner;
CREATE TABLE rls.t_text (id int, o text NOT NULL);
CREATE TABLE rls.t_varchar (id int, o varchar(10) NOT NULL);
CREATE TABLE rls.t_char (id int, o char(8) NOT NULL);
CREATE TABLE rls.t_name (id int, o name NOT NULL);
CREATE TABLE rls.t_ci (id int, o text COLLATE regress_ci NOT NULL);
CREATE TABLE rls.t_uuid (id int, o uuid NOT NULL);
CREATE TABLE rls.t_int (id int, o integer NOT NULL);
CREATE TABLE rls.t_bigint (id int, o bigint NOT NULL);
CREATE TABLE rls.t_numeric (id int, o numeric NOT NULL);
INSERT INTO rls.t_text VALUES (1, 'vandelay'), (2, 'vandelay '), (3, 'VANDELAY');
INSERT INTO rls.t_varchar VALUES (1, 'vandelay'), (2, 'vandelay '), (3, 'VANDELAY');
INSERT INTO rls.t_char VALUES (1, 'vandelay'), (3, 'VANDELAY'), (5, 'a'), (6, 'v');
INSERT INTO rls.t_name VALUES (1, 'vandelay'), (4, repeat('x', 63));
INSERT INTO rls.t_ci VALUES (1, 'vandelay');
INSERT INTO rls.t_uuid VALUES (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
INSERT INTO rls.t_int VALUES (1, 7), (2, 70);
INSERT INTO rls.t_bigint VALUES (1, 7), (2, 70);
INSERT INTO rls.t_numeric VALUES (1, 7), (2, 7.0), (3, 7.00);
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['t_text', 't_varchar', 't_char', 't_name', 't_ci', 't_uuid',
                             't_int', 't_bigint', 't_numeric'] LOOP
        EXECUTE format('CREATE INDEX ON rls.%I (o)', t);
        EXECUTE format('GRANT SELECT, INSERT ON rls.%I TO regress_verifier', t);
        PERFORM apikeys.protect(format('rls.%I', t)::regclass, 'o', 'typed');
    END LOOP;
END
$$;
-- the policy compares in the column's type (index) and rechecks as text
SELECT tablename, qual FROM pg_policies
 WHERE schemaname = 'rls' AND policyname = 'apikeys_read' AND tablename IN ('t_char', 't_bigint')
 ORDER BY 1;
RESET ROLE;
SET ROLE regress_admin;
CREATE TEMP TABLE typed_keys (owner text, token text);
GRANT SELECT ON typed_keys TO regress_verifier;
INSERT INTO typed_keys
SELECT o, (apikeys.create_key(o, 'typed', ARRAY['typed:read', 'typed:create'])).token
  FROM unnest(ARRAY['vandelay', 'vandelay ', 'VANDELAY', repeat('x', 63), repeat('x', 64),
                    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
                    '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', 'a0eebc999c0b4ef8bb6d6bb9bd380a11',
                    '7', '07', '+7', ' 7', '7 ', '7.0', '7.00', '7e0']) o;
RESET ROLE;
-- rows(tbl): the ids a table shows to the current key, or the error
CREATE FUNCTION rls.rows(tbl text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE format('SELECT coalesce(string_agg(id::text, '','' ORDER BY id), ''-'') FROM rls.%I', tbl) INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE;
END
$$;
-- visible(token): one line per key, one column per table
CREATE FUNCTION rls.visible(tok text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text := '';
        t text;
BEGIN
    PERFORM apikeys.authenticate(tok);
    FOREACH t IN ARRAY ARRAY['t_text', 't_varchar', 't_char', 't_name', 't_ci', 't_uuid',
                             't_int', 't_bigint', 't_numeric'] LOOP
        r := r || substr(t, 3) || '=' || rls.rows(t) || ' ';
    END LOOP;
    RETURN r;
END
$$;
GRANT EXECUTE ON FUNCTION rls.rows(text), rls.visible(text) TO regress_verifier;
SET ROLE regress_verifier;
SELECT CASE WHEN length(owner) > 20 THEN left(owner, 3) || '…(' || length(owner) || ')' ELSE quote_literal(owner) END AS key_owner,
       rls.visible(token) AS visible
  FROM typed_keys ORDER BY owner COLLATE "C";
-- writing: WITH CHECK applies the same exact match
BEGIN;
SELECT code FROM apikeys.authenticate((SELECT token FROM typed_keys WHERE owner = '07'));
SELECT err($$INSERT INTO rls.t_bigint VALUES (9, 7)$$) AS insert_as_07_for_7;
ROLLBACK;
BEGIN;
SELECT code FROM apikeys.authenticate((SELECT token FROM typed_keys WHERE owner = '7'));
INSERT INTO rls.t_bigint VALUES (9, 7);
INSERT INTO rls.t_numeric VALUES (9, 7);
SELECT err($$INSERT INTO rls.t_numeric VALUES (10, 7.0)$$) AS insert_as_7_for_7_0;
ROLLBACK;
-- the owner index still serves the policy: an index condition in the
-- column's type, the exact text comparison as a filter
BEGIN;
SELECT code FROM apikeys.authenticate((SELECT token FROM typed_keys WHERE owner = '7'));
SET LOCAL enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM rls.t_bigint;
EXPLAIN (COSTS OFF) SELECT id FROM rls.t_int;
EXPLAIN (COSTS OFF) SELECT id FROM rls.t_numeric;
ROLLBACK;
BEGIN;
SELECT code FROM apikeys.authenticate((SELECT token FROM typed_keys WHERE owner = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'));
SET LOCAL enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM rls.t_uuid;
ROLLBACK;
BEGIN;
SELECT code FROM apikeys.authenticate((SELECT token FROM typed_keys WHERE owner = 'vandelay'));
SET LOCAL enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM rls.t_char;
EXPLAIN (COSTS OFF) SELECT id FROM rls.t_name;
EXPLAIN (COSTS OFF) SELECT id FROM rls.t_text;
EXPLAIN (COSTS OFF) SELECT id FROM rls.t_varchar;
ROLLBACK;
RESET ROLE;
SET ROLE regress_admin;
SELECT sum(apikeys.revoke_all_keys(owner)) AS typed_keys_revoked FROM (SELECT DISTINCT owner FROM typed_keys) o;
RESET ROLE;
SET ROLE regress_rls_owner;
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['t_text', 't_varchar', 't_char', 't_name', 't_ci', 't_uuid',
                             't_int', 't_bigint', 't_numeric'] LOOP
        PERFORM apikeys.unprotect(format('rls.%I', t)::regclass);
        EXECUTE format('DROP TABLE rls.%I', t);
    END LOOP;
END
$$;
RESET ROLE;
DROP FUNCTION rls.visible(text), rls.rows(text);

-- A table dropped without unprotect() leaves a bookkeeping row until the
-- next protect(), which forgets rows of tables that no longer exist.
SET ROLE regress_rls_owner;
DROP TABLE rls.short_owner;
RESET ROLE;
SELECT count(*) AS rows_before FROM apikeys.protected_tables;
SET ROLE regress_rls_owner;
SELECT apikeys.protect('rls.tenant_notes', 'tenant', 'notes');
RESET ROLE;
SELECT tbl, resource FROM apikeys.protected_tables ORDER BY 1::text;

-- clean up: unprotect before dropping, or protect()'s bookkeeping row stays
SET ROLE regress_rls_owner;
SELECT apikeys.unprotect('rls.docs'), apikeys.unprotect('rls.employees'),
       apikeys.unprotect('rls.tenant_notes');
RESET ROLE;
SELECT count(*) AS bookkeeping_left FROM apikeys.protected_tables;
DROP SCHEMA rls_api CASCADE;
DROP SCHEMA rls CASCADE;
DROP ROLE regress_rls_owner;
DROP COLLATION regress_ci;
