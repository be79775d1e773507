-- apikeys.verify of a key with credits (bench/sql/credits.sql): one credit taken per call
-- (E'api\x3aread' is the scope "api" colon "read": pgbench takes a colon and a name for a variable)
\set id random(1, 1000)
SELECT (apikeys.verify(t.token, E'api\x3aread')).valid FROM bench.set_tokens t WHERE t.kind = 'credits' AND t.id = :id;
