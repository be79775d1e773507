-- sql/upgrade/1.0--1.1.post.sql: the part of the update from 1.0 to 1.1
-- that needs the new functions, written by hand: new triggers, policies,
-- indexes, operators, ALTER ... that refer to new functions, and data
-- migrations that call them.  Every object schema-qualified.

-- key_list gained a last column (prefix); my_keys, whose text is unchanged,
-- picks it up when its SELECT * is expanded again.
CREATE OR REPLACE VIEW apikeys.my_keys AS
SELECT * FROM apikeys._my_keys();
