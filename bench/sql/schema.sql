-- bench/sql/schema.sql -- run once per benchmark database by bench/run.sh.
--
-- 1. The hand-rolled baseline: what people build instead of the extension
--    (a keys table holding a SHA-256 or bcrypt hash of the secret, plus
--    PL/pgSQL verify functions).  Ported unchanged from the baseline
--    harness the project's performance targets were set with (its schema
--    baseline, verify_sha256, verify_sha256_touch, verify_bcrypt), so the
--    figures can be compared with its report; everything needed is here.
-- 2. bench.tokens: the full apikeys token of every key, for the variants
--    that read the token from a table (see bench/run.sh for why).
--
-- Key #id has client ID baseline.client_id_for(id) = 'ak_' + 16 hex
-- characters, which is also a well-formed apikeys client ID.  The baseline
-- secret is 64 hex characters; the apikeys secret of the same key is its
-- first 43 characters (apikeys secrets are exactly 43 base62 characters).

CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA public;
CREATE EXTENSION IF NOT EXISTS apikeys;
CREATE SCHEMA baseline;
CREATE SCHEMA bench;

-- deterministic key material (same expression text as the pgbench scripts)
CREATE FUNCTION baseline.client_id_for(id bigint) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT ('ak_' || substr(md5((id)::text || '#cid'), 1, 16)) $$;
CREATE FUNCTION baseline.secret_for(id bigint) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (md5((id)::text || '#s1') || md5((id)::text || '#s2')) $$;
CREATE FUNCTION baseline.token_for(id bigint) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (('ak_' || substr(md5((id)::text || '#cid'), 1, 16)) || '.' || (md5((id)::text || '#s1') || md5((id)::text || '#s2'))) $$;

-- the apikeys secret of key #id (43 characters)
CREATE FUNCTION bench.secret_for(id bigint) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT substr(md5((id)::text || '#s1') || md5((id)::text || '#s2'), 1, 43) $$;

CREATE TABLE baseline.keys (
  id            bigserial,
  client_id     text NOT NULL,
  prefix        text NOT NULL,          -- display hint (first 6 chars of the secret)
  secret_sha256 bytea NOT NULL,
  secret_bcrypt text,
  owner         text NOT NULL,
  scopes        text[] NOT NULL,
  expires_at    timestamptz,
  revoked_at    timestamptz,
  disabled      bool NOT NULL DEFAULT false,
  last_used_at  timestamptz
);

-- (a) typical hand-rolled verify: split, lookup by client_id, compare sha256, check state+scope
CREATE FUNCTION baseline.verify_sha256(p_token text, p_scope text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_client text := split_part(p_token, '.', 1);
  v_secret text := split_part(p_token, '.', 2);
  r record;
BEGIN
  IF v_client = '' OR v_secret = '' THEN RETURN false; END IF;
  SELECT k.secret_sha256, k.scopes, k.expires_at, k.revoked_at, k.disabled
    INTO r FROM baseline.keys k WHERE k.client_id = v_client;
  IF NOT FOUND THEN RETURN false; END IF;
  IF r.secret_sha256 IS DISTINCT FROM public.digest(v_secret, 'sha256') THEN RETURN false; END IF;
  IF r.disabled OR r.revoked_at IS NOT NULL OR r.expires_at <= now() THEN RETURN false; END IF;
  RETURN coalesce(p_scope = ANY (r.scopes), false);
END
$$;

-- (b) the same, plus the naive "UPDATE last_used_at = now()" on every success
CREATE FUNCTION baseline.verify_sha256_touch(p_token text, p_scope text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_client text := split_part(p_token, '.', 1);
  v_secret text := split_part(p_token, '.', 2);
  r record;
BEGIN
  IF v_client = '' OR v_secret = '' THEN RETURN false; END IF;
  SELECT k.id, k.secret_sha256, k.scopes, k.expires_at, k.revoked_at, k.disabled
    INTO r FROM baseline.keys k WHERE k.client_id = v_client;
  IF NOT FOUND THEN RETURN false; END IF;
  IF r.secret_sha256 IS DISTINCT FROM public.digest(v_secret, 'sha256') THEN RETURN false; END IF;
  IF r.disabled OR r.revoked_at IS NOT NULL OR r.expires_at <= now() THEN RETURN false; END IF;
  IF NOT coalesce(p_scope = ANY (r.scopes), false) THEN RETURN false; END IF;
  UPDATE baseline.keys SET last_used_at = now() WHERE id = r.id;
  RETURN true;
END
$$;

-- (c) bcrypt: lookup by client_id, then crypt(secret, stored_hash) = stored_hash.
CREATE FUNCTION baseline.verify_bcrypt(p_token text, p_scope text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_client text := split_part(p_token, '.', 1);
  v_secret text := split_part(p_token, '.', 2);
  r record;
BEGIN
  IF v_client = '' OR v_secret = '' THEN RETURN false; END IF;
  SELECT k.secret_bcrypt, k.scopes, k.expires_at, k.revoked_at, k.disabled
    INTO r FROM baseline.keys k WHERE k.client_id = v_client;
  IF NOT FOUND OR r.secret_bcrypt IS NULL THEN RETURN false; END IF;
  IF public.crypt(v_secret, r.secret_bcrypt) IS DISTINCT FROM r.secret_bcrypt THEN RETURN false; END IF;
  IF r.disabled OR r.revoked_at IS NOT NULL OR r.expires_at <= now() THEN RETURN false; END IF;
  RETURN coalesce(p_scope = ANY (r.scopes), false);
END
$$;

-- the apikeys token of key #id: client ID, "_", 43-char secret, checksum
CREATE TABLE bench.tokens (
  id    integer NOT NULL,
  token text NOT NULL
);
