-- ceiling: the token expression only (token construction + round trip), the baseline harness expression
\set id random(1, :nkeys)
SELECT length((('ak_' || substr(md5((:id)::text || '#cid'), 1, 16)) || '.' || (md5((:id)::text || '#s1') || md5((:id)::text || '#s2'))));
