-- baseline: PL/pgSQL verify_sha256_touch (UPDATE last_used_at = now() on success)
\set id random(1, :nkeys)
SELECT baseline.verify_sha256_touch((('ak_' || substr(md5((:id)::text || '#cid'), 1, 16)) || '.' || (md5((:id)::text || '#s1') || md5((:id)::text || '#s2'))), 'read');
