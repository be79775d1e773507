\i test/setup.sql
--
-- cleanup: drop the extension and the test roles.
--
DROP EXTENSION apikeys;
SELECT count(*) AS leftover_objects FROM pg_namespace WHERE nspname = 'apikeys';
DROP ROLE regress_admin;
DROP ROLE regress_verifier;
DROP ROLE regress_nobody;
DROP ROLE regress_delivery;
DROP SCHEMA apikeys;
