-- apikeys.verify on the full token (checksum included) read from bench.tokens
-- (E'api\x3aread' is the scope "api" colon "read": pgbench takes a colon and a name for a variable)
\set id random(1, :nkeys)
SELECT (apikeys.verify(t.token, E'api\x3aread')).valid FROM bench.tokens t WHERE t.id = :id;
