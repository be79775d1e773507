/* apikeys--1.1--1.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION apikeys UPDATE TO '1.2'" to load this file. \quit

--------------------------------------------------------------------------------
-- 1.2: the usage journal, and apikeys.cache_prewarm()
--
-- Until 1.1 the background worker upserted one apikeys.usage row and
-- updated one apikeys.keys row per key used, every apikeys.flush_interval:
-- two row versions, their WAL and two index probes per key every ten
-- seconds, more work than verification itself at a million keys.  Now each
-- flush writes the interval's numbers as one compact row of
-- apikeys.usage_journal, and a rollup about once an hour (at start, and
-- on apikeys.flush_usage()) folds the journal into apikeys.usage and
-- apikeys.keys.last_used_at and deletes what it folded (src/journal.c).
-- A crash still loses at most one interval: the journal is an ordinary,
-- WAL-logged table.  Readers see flushed numbers at once: key_usage adds
-- the journal to apikeys.usage, and key_list shows the journal's last-use
-- times, which shared memory remembers until the rollup.
--------------------------------------------------------------------------------

-- One row per flush: the numbers of every key used in the interval, packed
-- (format in src/journal.c; decode with apikeys._journal_decode()).
CREATE TABLE apikeys.usage_journal (
    flushed_at  timestamptz NOT NULL,
    keys        integer NOT NULL,
    data        bytea NOT NULL,
    CONSTRAINT usage_journal_keys_check CHECK (keys OPERATOR(pg_catalog.>) 0)
);
-- client IDs are random: compression would cost time and save nothing
ALTER TABLE apikeys.usage_journal ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE apikeys.usage_journal ENABLE ROW LEVEL SECURITY;
SELECT pg_catalog.pg_extension_config_dump('apikeys.usage_journal', '');
REVOKE ALL ON apikeys.usage_journal FROM PUBLIC;

CREATE FUNCTION apikeys._journal_decode(data bytea,
                                        OUT client_id text, OUT code text,
                                        OUT count bigint, OUT last_used timestamptz)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'apikeys_journal_decode'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    ROWS 1000;

CREATE FUNCTION apikeys._recent_use(client_id text)
    RETURNS timestamptz
    AS 'MODULE_PATHNAME', 'apikeys_recent_use'
    LANGUAGE C VOLATILE PARALLEL SAFE;

-- flush_usage() gains the choice between the worker's flush and a rollup
-- (NULL: a rollup).  Neither function is STRICT: a STRICT call with NULL
-- constants is folded away before the EXECUTE privilege is checked.
DROP FUNCTION apikeys.flush_usage();
CREATE FUNCTION apikeys.flush_usage(rollup boolean DEFAULT true)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'apikeys_flush_usage'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION
    apikeys._journal_decode(bytea),
    apikeys._recent_use(text),
    apikeys.flush_usage(boolean)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    apikeys._journal_decode(bytea),
    apikeys._recent_use(text),
    apikeys.flush_usage(boolean)
TO apikeys_admin;

-- After a restart the shared cache is empty, and every key's first
-- verification is a miss; this fills it at once, as pg_prewarm does for
-- buffers.  It reads apikeys.keys as the extension owner.
CREATE FUNCTION apikeys.cache_prewarm()
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'apikeys_cache_prewarm'
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;

REVOKE ALL ON FUNCTION apikeys.cache_prewarm() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.cache_prewarm() TO apikeys_admin;
COMMENT ON FUNCTION apikeys.cache_prewarm() IS 'Fills the shared verification cache with this database''s live keys, most recently used first, up to its capacity; returns keys loaded (0 when not preloaded or on a standby)';

-- Last use: the stored time, or a later one still in the journal.
CREATE OR REPLACE VIEW apikeys.key_list AS
SELECT k.client_id,
       k.owner,
       k.name,
       k.description,
       k.scopes,
       CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'
            WHEN k.disabled_at IS NOT NULL THEN 'disabled'
            WHEN k.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now() THEN 'expired'
            ELSE 'active' END AS status,
       k.created_at,
       k.created_by,
       k.expires_at,
       GREATEST(k.last_used_at, apikeys._recent_use(k.client_id)) AS last_used_at,
       k.contact_email,
       k.contact_phone,
       k.allowed_cidrs,
       COALESCE(k.metadata, '{}'::jsonb) AS metadata,
       k.db_role,
       k.rate_limit,
       k.rate_window,
       k.disabled_at,
       k.revoked_at,
       k.prev_expires_at AS old_secret_valid_until
  FROM apikeys.keys k;

CREATE OR REPLACE VIEW apikeys.key_hygiene AS
SELECT k.client_id,
       k.owner,
       k.name,
       CASE WHEN k.disabled_at IS NOT NULL THEN 'disabled' ELSE 'active' END AS status,
       k.created_at,
       k.expires_at,
       k.last_used_at,
       f.findings
  FROM (SELECT k0.client_id, k0.owner, k0.name, k0.disabled_at, k0.revoked_at,
               k0.created_at, k0.expires_at, k0.scopes, k0.contact_email,
               k0.contact_phone, k0.prev_secret_hash, k0.prev_expires_at,
               GREATEST(k0.last_used_at, apikeys._recent_use(k0.client_id)) AS last_used_at
          FROM apikeys.keys k0) k,
       LATERAL (SELECT pg_catalog.array_remove(ARRAY[
                    CASE WHEN '*'::text OPERATOR(pg_catalog.=) ANY (k.scopes::text[])
                         THEN 'full_access' END,
                    CASE WHEN k.expires_at OPERATOR(pg_catalog.<)
                              (pg_catalog.now() OPERATOR(pg_catalog.+) '14 days'::interval)
                         THEN 'expires_soon' END,
                    CASE WHEN k.last_used_at IS NULL
                          AND k.created_at OPERATOR(pg_catalog.<)
                              (pg_catalog.now() OPERATOR(pg_catalog.-) '7 days'::interval)
                         THEN 'never_used' END,
                    CASE WHEN k.last_used_at OPERATOR(pg_catalog.<)
                              (pg_catalog.now() OPERATOR(pg_catalog.-) '90 days'::interval)
                         THEN 'unused_90_days' END,
                    CASE WHEN k.contact_email IS NULL AND k.contact_phone IS NULL
                         THEN 'no_contact' END,
                    CASE WHEN k.prev_secret_hash IS NOT NULL
                          AND k.prev_expires_at OPERATOR(pg_catalog.>) pg_catalog.now()
                         THEN 'old_secret_in_grace' END
                ]::text[], NULL) AS findings) f
 WHERE k.revoked_at IS NULL
   AND k.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()
   AND pg_catalog.cardinality(f.findings) OPERATOR(pg_catalog.>) 0;

-- Usage: the rolled-up hours plus what the journal holds.
CREATE OR REPLACE VIEW apikeys.key_usage AS
SELECT s.client_id, s.hour, s.code, pg_catalog.sum(s.count)::bigint AS count
  FROM (SELECT u.client_id, u.hour, u.code, u.count
          FROM apikeys.usage u
        UNION ALL
        SELECT d.client_id COLLATE "C", pg_catalog.date_trunc('hour', j.flushed_at), d.code, d.count
          FROM apikeys.usage_journal j,
               LATERAL apikeys._journal_decode(j.data) d
         WHERE d.code IS NOT NULL) s
 GROUP BY s.client_id, s.hour, s.code;

COMMENT ON TABLE apikeys.usage_journal IS 'Usage flushed from shared memory and not yet rolled up into apikeys.usage: one packed row per flush (extension owner only)';
COMMENT ON COLUMN apikeys.usage_journal.keys IS 'Keys whose numbers the row holds';
COMMENT ON FUNCTION apikeys._journal_decode(bytea) IS 'Internal: the keys, codes, counts and last-use times of a usage journal row';
COMMENT ON FUNCTION apikeys._recent_use(text) IS 'Internal: a key''s last use flushed to the usage journal and not yet rolled up (NULL when none)';
COMMENT ON FUNCTION apikeys.flush_usage(boolean) IS 'Writes this database''s usage now: with rollup (the default) into apikeys.usage and last_used_at, returning usage rows written; without, as one journal row like the background worker, returning keys written';
COMMENT ON VIEW apikeys.key_usage IS 'Verification counts per key, per hour, per outcome code (rolled-up hours and the usage journal; flushed every apikeys.flush_interval when preloaded)';
