\i test/setup.sql
--
-- token: the token format, checksum, prefix and hashing.
--
\set VERBOSITY terse
SELECT apikeys.set_owner_policy('acme-token', max_keys => 40);

-- Shape: prefix, client ID, secret, checksum; [A-Za-z0-9_] only.
SELECT (k).client_id AS cid, (k).client_secret AS secret, (k).token AS tok
  FROM (SELECT apikeys.create_key('acme-token', 'shape', '{invoices:read}') AS k) s \gset
SELECT :'tok' ~ '^ak_[A-Za-z0-9]{16}_[A-Za-z0-9]{49}$' AS token_shape,
       length(:'tok') AS token_length,
       :'cid' ~ '^ak_[A-Za-z0-9]{16}$' AS client_id_shape,
       length(:'secret') AS secret_length,
       :'tok' = :'cid' || '_' || :'secret' || right(:'tok', 6) AS token_is_id_secret_checksum,
       apikeys.token_client_id(:'tok') = :'cid' AS client_id_extracted;

-- The checksum is CRC-32C, checked against an independent implementation
-- (public.crc32c in init.sql, PL/pgSQL).  That implementation first meets
-- the standard check values (iSCSI, RFC 3720 B.4), then recomputes the
-- checksum of fresh tokens, so a C checksum that is not CRC-32C, or not
-- over everything before it, or not written most significant digit first,
-- fails here.
SELECT to_hex(crc32c(convert_to('123456789', 'UTF8'))) AS check_123456789,   -- e3069283
       to_hex(crc32c(''::bytea)) AS check_empty,                              -- 0
       to_hex(crc32c(decode(repeat('00', 32), 'hex'))) AS check_32_zeros,      -- 8a9136aa
       to_hex(crc32c(decode(repeat('ff', 32), 'hex'))) AS check_32_ones;       -- 62a8ab43
SELECT right(:'tok', 6) = token_checksum(left(:'tok', -6)) AS checksum_is_crc32c,
       forge_token(:'cid', :'secret') = :'tok' AS token_rebuilt;
SELECT count(*) AS tokens,
       count(*) FILTER (WHERE right((k).token, 6) = token_checksum(left((k).token, -6))) AS checksums_match
  FROM (SELECT apikeys.create_key('acme-token', 'crc ' || i, '{}') AS k FROM generate_series(1, 10) i) s;

-- The database stores only SHA-256 of the secret (pgcrypto as the oracle).
SELECT k.secret_hash = digest(:'secret', 'sha256') AS hash_is_sha256,
       k.hash_alg,
       position(convert_to(:'secret', 'UTF8') IN k.secret_hash::bytea) = 0 AS no_plaintext
  FROM apikeys.keys k WHERE k.client_id = :'cid';
SELECT count(*) AS rows_holding_secret_text
  FROM apikeys.keys k
 WHERE k::text LIKE '%' || :'secret' || '%';

-- Changing any single character of a token makes it MALFORMED: every
-- position, every other character of the alphabet.
WITH alphabet AS (
    SELECT substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_', i, 1) AS c
      FROM generate_series(1, 63) i),
mutants AS (
    SELECT overlay(:'tok' placing a.c from p for 1) AS t
      FROM generate_series(1, length(:'tok')) p, alphabet a
     WHERE substr(:'tok', p, 1) <> a.c)
SELECT count(*) AS mutants,
       count(*) FILTER (WHERE (apikeys.verify(t)).code = 'MALFORMED') AS malformed
  FROM mutants;

-- Truncated, extended, swapped case: MALFORMED too.
SELECT (apikeys.verify(left(:'tok', -1))).code AS truncated,
       (apikeys.verify(:'tok' || 'x')).code AS extended,
       (apikeys.verify(upper(:'tok'))).code AS upper_case,
       (apikeys.verify(' ' || :'tok')).code AS leading_blank;

-- Hostile input never raises: NULL, empty, 1 MB, non-ASCII, SQL-looking.
SELECT (apikeys.verify(NULL)).code AS null_token,
       (apikeys.verify('')).code AS empty,
       (apikeys.verify(repeat('a', 1024 * 1024))).code AS one_mb,
       (apikeys.verify(repeat(:'tok', 1000))).code AS repeated,
       (apikeys.verify('ak_' || repeat('é', 66))).code AS non_ascii,
       (apikeys.verify($$'; DROP TABLE apikeys.keys; --$$)).code AS sql_looking,
       (apikeys.verify(E'ak_\\x00')).code AS escape_chars;
SELECT apikeys.token_client_id('nonsense') IS NULL AS junk_has_no_client_id;

-- The prefix is configurable (superuser); older tokens keep verifying.
SET apikeys.token_prefix = 'acme_live';
SELECT (k).token AS tok2 FROM (SELECT apikeys.create_key('acme-token', 'live', '{}') AS k) s \gset
RESET apikeys.token_prefix;
SELECT :'tok2' ~ '^acme_live_[A-Za-z0-9]{16}_[A-Za-z0-9]{49}$' AS prefixed,
       (apikeys.verify(:'tok2')).code AS prefixed_verifies,
       (apikeys.verify(:'tok')).code AS old_verifies;

-- Invalid input: prefixes a token could not carry.
SET apikeys.token_prefix = 'Bad';
SET apikeys.token_prefix = 'ends_';
SET apikeys.token_prefix = '';
SET apikeys.token_prefix = 'waytoolongprefixforatoken';

-- A pepper turns the stored hash into HMAC-SHA-256(pepper, secret).
SET apikeys.pepper = 'pepper-for-tests';
SELECT (k).client_id AS pcid, (k).client_secret AS psecret, (k).token AS ptok
  FROM (SELECT apikeys.create_key('acme-token', 'peppered', '{}') AS k) s \gset
SELECT k.hash_alg, k.secret_hash = hmac(:'psecret', 'pepper-for-tests', 'sha256') AS hash_is_hmac
  FROM apikeys.keys k WHERE k.client_id = :'pcid';
SELECT (apikeys.verify(:'ptok')).code AS with_pepper,
       (apikeys.verify(:'tok')).code AS unpeppered_key_still_valid;
SET apikeys.pepper = 'another-pepper';
SELECT (apikeys.verify(:'ptok')).code AS wrong_pepper;
RESET apikeys.pepper;
SELECT (apikeys.verify(:'ptok')).code AS no_pepper;

-- Only superusers may see or set the pepper (the SQLSTATE: the message's
-- wording changed in 16).
SET ROLE regress_admin;
\set VERBOSITY sqlstate
SHOW apikeys.pepper;
\set VERBOSITY default
SET apikeys.pepper = 'x';
SET apikeys.token_prefix = 'x';
RESET ROLE;

-- Nobody reads the pepper through SQL, superusers included: the setting
-- holds a mask, the key is kept apart (src/guc.c); test/t/062 covers
-- pg_monitor members, pg_settings and reloads.
SET apikeys.pepper = 'pepper-for-tests';
SHOW apikeys.pepper;
SELECT current_setting('apikeys.pepper') AS shown,
       (apikeys.verify(:'ptok')).code AS still_verifies;
RESET apikeys.pepper;
SELECT current_setting('apikeys.pepper') = '' AS empty_when_unset;
-- Invalid input: the mask itself, and settings stored in readable catalogs.
SET apikeys.pepper = '********';
ALTER ROLE regress_admin SET apikeys.pepper = 'x';

-- 10,000 keys issued in one transaction are all distinct and all verify.
BEGIN;
CREATE TEMP TABLE bulk AS
SELECT k.* FROM generate_series(1, 2000) o, generate_series(1, 5) i,
       LATERAL apikeys.create_key('bulk-' || o, 'key ' || i, '{reports:read}') k;
SELECT count(*) AS issued,
       count(DISTINCT client_id) AS distinct_ids,
       count(DISTINCT client_secret) AS distinct_secrets,
       count(DISTINCT token) AS distinct_tokens
  FROM bulk;
SELECT count(*) FILTER (WHERE (apikeys.verify(token, 'reports:read')).code = 'VALID') AS valid
  FROM bulk;
ROLLBACK;
