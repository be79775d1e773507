-- apikeys.verify_client with the client ID and secret built in SQL from the key id; returns the valid flag
-- (E'api\x3aread' is the scope "api" colon "read": pgbench takes a colon and a name for a variable)
\set id random(1, :nkeys)
SELECT (apikeys.verify_client(('ak_' || substr(md5((:id)::text || '#cid'), 1, 16)), substr(md5((:id)::text || '#s1') || md5((:id)::text || '#s2'), 1, 43), E'api\x3aread')).valid;
