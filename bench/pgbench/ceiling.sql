-- ceiling: the token expression only (token construction + round trip), as in the baseline harness (bench/sql/schema.sql)
\set id random(1, :nkeys)
SELECT length((('ak_' || substr(md5((:id)::text || '#cid'), 1, 16)) || '.' || (md5((:id)::text || '#s1') || md5((:id)::text || '#s2'))));
