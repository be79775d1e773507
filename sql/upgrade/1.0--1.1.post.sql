-- sql/upgrade/1.0--1.1.post.sql: the part of the update from 1.0 to 1.1
-- that needs the new functions, written by hand: new triggers, policies,
-- indexes, operators, ALTER ... that refer to new functions, and data
-- migrations that call them.  Every object schema-qualified.

-- derived tokens: the trigger that makes backends read the signing secret
-- again, and the secret of this database
CREATE TRIGGER derived_signing_key_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikeys.derived_signing_key
    FOR EACH STATEMENT EXECUTE FUNCTION apikeys._signing_key_changed();
ALTER TABLE apikeys.derived_signing_key ENABLE ALWAYS TRIGGER derived_signing_key_changed;
INSERT INTO apikeys.derived_signing_key (secret) VALUES (apikeys._new_signing_secret());
