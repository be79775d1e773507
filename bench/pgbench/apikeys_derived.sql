-- apikeys.verify of a derived token (apikeys.derive_token) of one of the inline keys (bench/sql/scope_sets.sql)
-- (E'api\x3aread' is the scope "api" colon "read": pgbench takes a colon and a name for a variable)
\set id random(1, 1000)
SELECT (apikeys.verify(t.token, E'api\x3aread')).valid FROM bench.set_tokens t WHERE t.kind = 'derived' AND t.id = :id;
