-- baseline: one prepared SQL statement (app-side query): lookup + pgcrypto digest() + checks
\set id random(1, :nkeys)
SELECT EXISTS (
  SELECT 1
  FROM (SELECT split_part(t, '.', 1) AS cid, split_part(t, '.', 2) AS sec
        FROM (SELECT (('ak_' || substr(md5((:id)::text || '#cid'), 1, 16)) || '.' || (md5((:id)::text || '#s1') || md5((:id)::text || '#s2'))) AS t OFFSET 0) tok) s
  JOIN baseline.keys k ON k.client_id = s.cid
  WHERE k.secret_sha256 = public.digest(s.sec, 'sha256')
    AND NOT k.disabled AND k.revoked_at IS NULL
    AND (k.expires_at IS NULL OR k.expires_at > now())
    AND 'read' = ANY (k.scopes));
