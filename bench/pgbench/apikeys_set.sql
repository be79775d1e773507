-- apikeys.verify of a key holding the named scope set @bench_reader (bench/sql/scope_sets.sql)
-- (E'api\x3aread' is the scope "api" colon "read": pgbench takes a colon and a name for a variable)
\set id random(1, 1000)
SELECT (apikeys.verify(t.token, E'api\x3aread')).valid FROM bench.set_tokens t WHERE t.kind = 'set' AND t.id = :id;
