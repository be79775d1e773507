-- baseline: verify_sha256_touch, every client presents the same key
\set id :hot
SELECT baseline.verify_sha256_touch((('ak_' || substr(md5((:id)::text || '#cid'), 1, 16)) || '.' || (md5((:id)::text || '#s1') || md5((:id)::text || '#s2'))), 'read');
