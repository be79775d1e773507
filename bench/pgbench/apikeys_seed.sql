-- apikeys.verify on the full token of a seed-shaped key (bench/sql/seed_keys.sql: UUID owner,
-- 8-15 scopes some with field lists, a network, a role, metadata), drawn uniformly from the
-- seed population; the client address is passed, as an app backend does
-- (E'api\x3aread' is the scope "api" colon "read": pgbench takes a colon and a name for a variable)
\set id random(1, :nseed)
SELECT (apikeys.verify(t.token, E'api\x3aread', '10.1.2.3')).valid FROM bench.seed_tokens t WHERE t.id = :id;
