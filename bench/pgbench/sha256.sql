-- baseline: PL/pgSQL baseline.verify_sha256
\set id random(1, :nkeys)
SELECT baseline.verify_sha256((('ak_' || substr(md5((:id)::text || '#cid'), 1, 16)) || '.' || (md5((:id)::text || '#s1') || md5((:id)::text || '#s2'))), 'read');
