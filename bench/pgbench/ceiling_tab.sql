-- ceiling for the token-table variants: read the token of the key from bench.tokens
\set id random(1, :nkeys)
SELECT length(t.token) FROM bench.tokens t WHERE t.id = :id;
