-- as apikeys_set.sql, for a key holding the same three scopes written inline
-- (E'api\x3aread' is the scope "api" colon "read": pgbench takes a colon and a name for a variable)
\set id random(1, 1000)
SELECT (apikeys.verify(t.token, E'api\x3aread')).valid FROM bench.set_tokens t WHERE t.kind = 'inline' AND t.id = :id;
