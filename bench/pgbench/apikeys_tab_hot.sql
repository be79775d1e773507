-- as apikeys_tab.sql, every client presents the same key
-- (E'api\x3aread' is the scope "api" colon "read": pgbench takes a colon and a name for a variable)
\set id :hot
SELECT (apikeys.verify(t.token, E'api\x3aread')).valid FROM bench.tokens t WHERE t.id = :id;
