-- sql/install/04_usage.sql: usage counting, the journal, the shared cache and address throttle
--
-- A section of the install script: make concatenates sql/install/*.sql
-- in name order into apikeys--<version>.sql.  Each object is followed by
-- its comment, privileges and settings.

-- Verification counts per key, per hour, per outcome code, written by the
-- hourly rollup: per hour, one row per bucket of client IDs (their last two
-- characters) used in it, packed as a journal row is (src/usage_journal.c),
-- never one row per key or per request; the view apikeys.usage unpacks
-- them.  Each key's entry also holds its last use in that hour: key_list's
-- last_used_at reads it (apikeys_internal._usage_last_use; the rollup never updates
-- apikeys.keys, whose last_used_at is written only without preloading).
CREATE TABLE apikeys.usage_packed (
    hour        timestamptz NOT NULL,
    bucket      text COLLATE "C" NOT NULL,
    keys        integer NOT NULL,
    data        bytea NOT NULL,
    CONSTRAINT usage_packed_keys_check CHECK (keys OPERATOR(pg_catalog.>) 0)
);
COMMENT ON TABLE apikeys.usage_packed IS 'Rolled-up verification counts and last uses: per hour, one packed row per bucket of client IDs used (read through apikeys.usage; extension owner only)';
COMMENT ON COLUMN apikeys.usage_packed.bucket IS 'The last two characters of the client IDs in the row';
COMMENT ON COLUMN apikeys.usage_packed.keys IS 'Keys whose numbers the row holds';
-- client IDs are random: compression would cost time and save nothing
ALTER TABLE apikeys.usage_packed ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX usage_packed_bucket_hour_idx ON apikeys.usage_packed (bucket, hour);
CREATE INDEX usage_packed_hour_idx ON apikeys.usage_packed (hour);   -- the newest hours, for cache_prewarm()
SELECT pg_catalog.pg_extension_config_dump('apikeys.usage_packed', '');
ALTER TABLE apikeys.usage_packed ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE apikeys.usage_packed FROM PUBLIC;

-- One row per flush: the numbers of every key used in the interval, packed
-- (format in src/usage_journal.c; decode with apikeys_internal._journal_decode()).
-- UNLOGGED: a flush every flush_interval writes no WAL (at a million keys in
-- use, ~28 bytes per key and interval were most of the WAL the cluster
-- wrote).  A clean shutdown keeps it; a crash empties it, losing the uses
-- journaled since the last rollup (at most about an hour), which the proof
-- of non-use counts as lost (the server start is noted, _usage_unproven),
-- and a standby never sees it (key_usage there shows the rolled-up hours).
CREATE UNLOGGED TABLE apikeys.usage_journal (
    flushed_at  timestamptz NOT NULL,
    keys        integer NOT NULL,
    data        bytea NOT NULL,
    CONSTRAINT usage_journal_keys_check CHECK (keys OPERATOR(pg_catalog.>) 0)
);
COMMENT ON TABLE apikeys.usage_journal IS 'Usage flushed from shared memory and not yet rolled up into apikeys.usage: one packed row per flush; unlogged: a crash empties it (extension owner only)';
COMMENT ON COLUMN apikeys.usage_journal.keys IS 'Keys whose numbers the row holds';
-- client IDs are random: compression would cost time and save nothing
ALTER TABLE apikeys.usage_journal ALTER COLUMN data SET STORAGE EXTERNAL;
SELECT pg_catalog.pg_extension_config_dump('apikeys.usage_journal', '');
ALTER TABLE apikeys.usage_journal ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE apikeys.usage_journal FROM PUBLIC;

-- Without an argument (or NULL) a rollup; with false, the worker's flush.
-- Not STRICT: a STRICT call with NULL constants is folded away before the
-- EXECUTE privilege is checked.
CREATE FUNCTION apikeys.flush_usage(rollup boolean DEFAULT true)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'apikeys_flush_usage'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys.flush_usage IS 'Writes this database''s usage now: with rollup (the default) into apikeys.usage (counts and last-use times), returning usage rows written; without, as one journal row like the background worker, returning keys written';
REVOKE ALL ON FUNCTION apikeys.flush_usage FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.flush_usage TO apikeys_admin;

CREATE FUNCTION apikeys_internal._failing_addresses(OUT address inet, OUT client_id text,
                                           OUT failures integer,
                                           OUT window_start timestamptz,
                                           OUT window_end timestamptz,
                                           OUT blocked boolean,
                                           OUT blocked_attempts bigint)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'apikeys_failing_addresses'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikeys_internal._failing_addresses IS 'Internal: the address failure table behind apikeys.failing_addresses';
REVOKE ALL ON FUNCTION apikeys_internal._failing_addresses FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys_internal._failing_addresses TO apikeys_admin;

-- Removes the failure records of an address or network (for
-- apikeys.unblock_address, which audits it).
CREATE FUNCTION apikeys_internal._unblock_address(address inet, OUT blocks_lifted integer,
                                         OUT records_cleared integer)
    RETURNS record
    AS 'MODULE_PATHNAME', 'apikeys_unblock'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._unblock_address IS 'Internal: removes failure throttle records, for unblock_address';
REVOKE ALL ON FUNCTION apikeys_internal._unblock_address FROM PUBLIC;

CREATE FUNCTION apikeys.cache_stats(OUT shared boolean, OUT capacity bigint,
                                    OUT entries bigint, OUT entry_bytes integer,
                                    OUT shared_bytes bigint, OUT invalidations bigint,
                                    OUT session_hits bigint, OUT session_misses bigint,
                                    OUT arena_bytes bigint, OUT arena_used_bytes bigint,
                                    OUT arena_evictions bigint)
    RETURNS record
    AS 'MODULE_PATHNAME', 'apikeys_cache_stats'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikeys.cache_stats IS 'Size and use of the shared verification cache and of its arena for keys too large for an entry (NULLs when not preloaded)';
REVOKE ALL ON FUNCTION apikeys.cache_stats FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.cache_stats TO apikeys_admin;

CREATE FUNCTION apikeys.usage_stats(OUT shared boolean, OUT tracked_keys bigint,
                                    OUT key_capacity bigint, OUT tracked_addresses bigint,
                                    OUT address_capacity bigint, OUT dropped_keys bigint,
                                    OUT dropped_addresses bigint, OUT shared_bytes bigint)
    RETURNS record
    AS 'MODULE_PATHNAME', 'apikeys_usage_stats'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikeys.usage_stats IS 'Size and use of the shared usage, failure and rate-limit tables (NULLs when not preloaded)';
REVOKE ALL ON FUNCTION apikeys.usage_stats FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.usage_stats TO apikeys_admin;

-- The packed journal row (format in src/usage_codec.c) and the last-use
-- times awaiting the rollup, for the views below.
CREATE FUNCTION apikeys_internal._journal_decode(data bytea,
                                        OUT client_id text, OUT code text,
                                        OUT count bigint, OUT last_used timestamptz)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'apikeys_journal_decode'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    ROWS 1000;
COMMENT ON FUNCTION apikeys_internal._journal_decode IS 'Internal: the keys, codes, counts and last-use times of a usage journal row';
REVOKE ALL ON FUNCTION apikeys_internal._journal_decode FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys_internal._journal_decode TO apikeys_admin;

-- The rolled-up usage, one row per key, hour and code used; the VALID row
-- also holds the key's last use in that hour.
CREATE VIEW apikeys.usage AS
SELECT d.client_id COLLATE "C" AS client_id,
       p.hour,
       COALESCE(d.code, 'VALID') AS code,
       pg_catalog.sum(COALESCE(d.count, 0))::bigint AS count,
       pg_catalog.max(d.last_used) FILTER (WHERE COALESCE(d.code, 'VALID') OPERATOR(pg_catalog.=) 'VALID') AS last_used_at
  FROM apikeys.usage_packed p,
       LATERAL apikeys_internal._journal_decode(p.data) d
 GROUP BY 1, 2, 3;
COMMENT ON VIEW apikeys.usage IS 'Verification counts per key, per hour, per outcome code, rolled up from the usage journal (extension owner only)';
COMMENT ON COLUMN apikeys.usage.last_used_at IS 'On the VALID row: the key''s last valid use in that hour (what key_list.last_used_at shows once rolled up)';
REVOKE ALL ON TABLE apikeys.usage FROM PUBLIC;

CREATE FUNCTION apikeys_internal._usage_find(data bytea, client_id text)
    RETURNS timestamptz
    AS 'MODULE_PATHNAME', 'apikeys_usage_find'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys_internal._usage_find IS 'Internal: a key''s last use in a packed usage row (NULL when none)';
REVOKE ALL ON FUNCTION apikeys_internal._usage_find FROM PUBLIC;

-- Neither is STRICT: a STRICT call with NULL constants is folded away
-- before the EXECUTE privilege is checked.
-- For the update from 1.0: rows of one hour and bucket as apikeys.usage
-- shows them, packed as apikeys.usage_packed holds them.
CREATE FUNCTION apikeys_internal._usage_pack(client_ids text[], codes text[], counts bigint[],
                                    last_used timestamptz[])
    RETURNS bytea
    AS 'MODULE_PATHNAME', 'apikeys_usage_pack'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys_internal._usage_pack IS 'Internal: usage rows of one hour and bucket (key, code, count, last use) packed as a row of apikeys.usage_packed';
REVOKE ALL ON FUNCTION apikeys_internal._usage_pack FROM PUBLIC;

-- A key's last use rolled up into apikeys.usage_packed: the latest of its
-- newest hour (the row's bucket: src/usage_journal.c, UsageBucket), NULL when
-- none.  One index scan of its bucket, newest hour first.
CREATE FUNCTION apikeys_internal._usage_last_use(client_id text)
    RETURNS timestamptz
    LANGUAGE plpgsql STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    found_hour timestamptz;
    best timestamptz;
BEGIN
    FOR r IN SELECT p.hour, apikeys_internal._usage_find(p.data, _usage_last_use.client_id) AS t
               FROM apikeys.usage_packed p
              WHERE p.bucket = (pg_catalog.right(_usage_last_use.client_id, 2) COLLATE "C")
              ORDER BY p.hour DESC
    LOOP
        EXIT WHEN found_hour IS NOT NULL AND r.hour < found_hour;
        IF r.t IS NOT NULL THEN
            found_hour := r.hour;
            best := GREATEST(best, r.t);
        END IF;
    END LOOP;
    RETURN best;
END
$$;
COMMENT ON FUNCTION apikeys_internal._usage_last_use IS 'Internal: a key''s last use rolled up into apikeys.usage (NULL when none)';
REVOKE ALL ON FUNCTION apikeys_internal._usage_last_use FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys_internal._usage_last_use TO apikeys_admin;

CREATE FUNCTION apikeys_internal._recent_use(client_id text)
    RETURNS timestamptz
    AS 'MODULE_PATHNAME', 'apikeys_recent_use'
    LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION apikeys_internal._recent_use IS 'Internal: a key''s last use flushed to the usage journal and not yet rolled up (NULL when none)';
REVOKE ALL ON FUNCTION apikeys_internal._recent_use FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys_internal._recent_use TO apikeys_admin;

-- Proof of non-use, for revoke_unused_after (src/usage_journal.c): why this
-- database cannot prove that a key without a recorded use in the last
-- unused_after was unused (NULL: it can); what that depends on; and the
-- superuser's way to accept the possible losses noted so far.
CREATE FUNCTION apikeys_internal._usage_unproven(unused_after interval)
    RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_usage_unproven'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._usage_unproven IS 'Internal: why a key without a recorded use in that interval may still have been used (NULL when its non-use is proven)';
REVOKE ALL ON FUNCTION apikeys_internal._usage_unproven FROM PUBLIC;

CREATE FUNCTION apikeys_internal._usage_health(OUT lost_until timestamptz, OUT visits_not_started bigint,
                                      OUT journal_in_recent boolean)
    RETURNS record
    AS 'MODULE_PATHNAME', 'apikeys_usage_health'
    LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikeys_internal._usage_health IS 'What the proof of non-use depends on: the time up to which uses may have been lost, worker visits that could not start, whether the journal''s last uses are all known';
REVOKE ALL ON FUNCTION apikeys_internal._usage_health FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys_internal._usage_health TO apikeys_admin;

CREATE FUNCTION apikeys_internal._usage_accept_losses()
    RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_usage_accept_losses'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._usage_accept_losses IS 'Internal, extension owner only: forget the possible losses of uses noted so far (revoke_unused_after may then act on them)';
REVOKE ALL ON FUNCTION apikeys_internal._usage_accept_losses FROM PUBLIC;

-- After a restart the shared cache is empty, and every key's first
-- verification is a miss; this fills it at once, as pg_prewarm does for
-- buffers.  It reads apikeys.keys as the extension owner.
CREATE FUNCTION apikeys.cache_prewarm()
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'apikeys_cache_prewarm'
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION apikeys.cache_prewarm IS 'Fills the shared verification cache with this database''s live keys, most recently used first, up to its capacity; returns keys loaded (0 when not preloaded); on a hot standby the entries are validated against the heap';
REVOKE ALL ON FUNCTION apikeys.cache_prewarm FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.cache_prewarm TO apikeys_admin;

-- Last use: the stored time, or a later one still in the journal.
CREATE VIEW apikeys.key_list AS
SELECT k.client_id,
       k.owner,
       k.name,
       k.description,
       k.scopes,
       CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'
            WHEN k.disabled_at IS NOT NULL THEN 'disabled'
            WHEN k.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now() THEN 'expired'
            WHEN k.pending_since IS NOT NULL THEN 'pending'
            ELSE 'active' END AS status,
       k.created_at,
       k.created_by,
       k.expires_at,
       GREATEST(k.last_used_at, apikeys_internal._recent_use(k.client_id),
                apikeys_internal._usage_last_use(k.client_id)) AS last_used_at,
       k.contact_email,
       k.contact_phone,
       k.allowed_cidrs,
       COALESCE(k.metadata, '{}'::jsonb) AS metadata,
       k.db_role,
       k.rate_limit,
       k.rate_window,
       k.disabled_at,
       k.revoked_at,
       k.prev_expires_at AS old_secret_valid_until,
       k.prefix,
       CASE WHEN k.credits IS NOT NULL
            THEN apikeys_internal._credits_balance(k.client_id) END AS credits_remaining
  FROM apikeys.keys k;
COMMENT ON VIEW apikeys.key_list IS 'API keys for administrators: metadata and status, never secrets or hashes';
COMMENT ON COLUMN apikeys.key_list.status IS 'active, disabled, revoked, expired, or pending (a handoff key not yet claimed)';
COMMENT ON COLUMN apikeys.key_list.old_secret_valid_until IS 'After a rotation with grace: when the previous secret stops working';
COMMENT ON COLUMN apikeys.key_list.prefix IS 'The token prefix the key was issued with (apikeys.token_prefix or one of apikeys.allowed_prefixes at the time)';
COMMENT ON COLUMN apikeys.key_list.credits_remaining IS 'The key''s live balance of credits (what its next verification would find, refill applied; NULL: no credits, unlimited use)';
REVOKE ALL ON TABLE apikeys.key_list FROM PUBLIC;
GRANT SELECT ON apikeys.key_list TO apikeys_admin;

-- The journal's counts, for key_usage: nothing on a standby, where the
-- unlogged journal cannot be read (and is empty).  PL/pgSQL plans the
-- query only when it runs it.
CREATE FUNCTION apikeys_internal._journal_usage(OUT client_id text, OUT hour timestamptz,
                                       OUT code text, OUT count bigint)
    RETURNS SETOF record
    LANGUAGE plpgsql STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.pg_is_in_recovery() THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT d.client_id COLLATE "C", pg_catalog.date_trunc('hour', j.flushed_at), d.code, d.count
          FROM apikeys.usage_journal j,
               LATERAL apikeys_internal._journal_decode(j.data) d
         WHERE d.code IS NOT NULL;
END
$$;
COMMENT ON FUNCTION apikeys_internal._journal_usage IS 'Internal: the counts of the usage journal, one row per key, hour and code (none on a standby)';
REVOKE ALL ON FUNCTION apikeys_internal._journal_usage FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys_internal._journal_usage TO apikeys_admin;

-- Usage: the rolled-up hours plus what the journal holds.
CREATE VIEW apikeys.key_usage AS
SELECT s.client_id, s.hour, s.code, pg_catalog.sum(s.count)::bigint AS count
  FROM (SELECT u.client_id, u.hour, u.code, u.count
          FROM apikeys.usage u
        UNION ALL
        SELECT j.client_id COLLATE "C", j.hour, j.code, j.count
          FROM apikeys_internal._journal_usage() j) s
 GROUP BY s.client_id, s.hour, s.code;
COMMENT ON VIEW apikeys.key_usage IS 'Verification counts per key, per hour, per outcome code (rolled-up hours and the usage journal; flushed every apikeys.flush_interval when preloaded)';
REVOKE ALL ON TABLE apikeys.key_usage FROM PUBLIC;
GRANT SELECT ON apikeys.key_usage TO apikeys_admin;

-- The noisiest callers (an IPv4 address, IPv6 /64 or ::1 with the client ID
-- its attempts named) and networks (IPv4 /24, IPv6 /48) in their current
-- failure window: one row per caller or network, never one per attempt.
CREATE VIEW apikeys.failing_addresses AS
SELECT f.address, f.client_id, f.failures, f.window_start, f.window_end, f.blocked,
       f.blocked_attempts
  FROM apikeys_internal._failing_addresses() f
 ORDER BY f.failures DESC, f.address, f.client_id;
COMMENT ON VIEW apikeys.failing_addresses IS 'Callers (IPv4 address, IPv6 /64 or ::1, with the client ID they named) and networks (IPv4 /24, IPv6 /48) with failed attempts in their current window, noisiest first';
COMMENT ON COLUMN apikeys.failing_addresses.client_id IS 'The client ID the failing attempts named, as presented (it may not exist); NULL for a network, or for attempts that named none';
COMMENT ON COLUMN apikeys.failing_addresses.blocked IS 'Reached apikeys.max_failures (a caller) or apikeys.max_network_failures (a network): its failing attempts answer RATE_LIMITED until window_end; a correct secret is never refused';
REVOKE ALL ON TABLE apikeys.failing_addresses FROM PUBLIC;
GRANT SELECT ON apikeys.failing_addresses TO apikeys_admin;

-- unblock_address lifts the failure throttle's records of an address (its
-- /32, /64 or ::1, whatever client IDs were named from it) or, given a
-- network, of everything inside it; audited when it removed anything.
CREATE FUNCTION apikeys.unblock_address(address inet)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    IF unblock_address.address IS NULL THEN
        RAISE EXCEPTION 'address cannot be NULL' USING ERRCODE = '22023';
    END IF;
    r := apikeys_internal._unblock_address(unblock_address.address);
    IF r.records_cleared > 0 THEN
        PERFORM apikeys_internal._audit('address_unblocked', NULL, NULL,
            pg_catalog.jsonb_build_object('address', pg_catalog.host(unblock_address.address)
                                              || '/'
                                              || pg_catalog.masklen(unblock_address.address),
                                          'blocks_lifted', r.blocks_lifted,
                                          'records_cleared', r.records_cleared));
    END IF;
    RETURN r.blocks_lifted > 0;
END
$$;
COMMENT ON FUNCTION apikeys.unblock_address IS 'Lifts the failure throttle''s records of an address (every client ID named from it) or of every caller and network inside a network; true if a block was lifted; audited';
REVOKE ALL ON FUNCTION apikeys.unblock_address FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.unblock_address TO apikeys_admin;
