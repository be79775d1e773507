-- baseline: PL/pgSQL verify_bcrypt on keys 1..brows, which carry cost-4 bcrypt hashes
\set id random(1, :brows)
SELECT baseline.verify_bcrypt((('ak_' || substr(md5((:id)::text || '#cid'), 1, 16)) || '.' || (md5((:id)::text || '#s1') || md5((:id)::text || '#s2'))), 'read');
