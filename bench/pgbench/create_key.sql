-- one key per transaction; each pgbench client issues keys for its own owner
-- (E'api\x3aread' is the scope "api" colon "read": pgbench takes a colon and a name for a variable)
SELECT (apikeys.create_key('bench_create_' || (:client_id)::text, 'bench key', ARRAY[E'api\x3aread'])).client_id;
