--
-- init: the extension and the roles the other tests use (test/setup.sql,
-- which every file includes first, creates them).
--
\i test/setup.sql
SELECT extname, extversion, extrelocatable FROM pg_extension WHERE extname = 'apikeys';
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'apikeys%' ORDER BY 1;
