-- sql/upgrade/1.0--1.1.post.sql: the part of the update from 1.0 to 1.1
-- that needs the new functions, written by hand: new triggers, policies,
-- indexes, operators, ALTER ... that refer to new functions, and data
-- migrations that call them.  Every object schema-qualified.

-- derived tokens: the signing secret of this database
INSERT INTO apikeys.derived_signing_key (secret) VALUES (apikeys._new_signing_secret());
