-- sql/install/09_stats.sql: the operator's view: server-wide statistics
--
-- A section of the install script: make concatenates sql/install/*.sql
-- in name order into apikeys--<version>.sql.  Each object is followed by
-- its comment, privileges and settings.

-- The server-wide counters behind apikeys.stats (src/stats.c): totals
-- since stats_since, NULL without shared_preload_libraries.
CREATE FUNCTION apikeys_internal._stats(OUT stats_since timestamptz,
                               OUT verifications_valid bigint,
                               OUT verifications_malformed bigint,
                               OUT verifications_not_found bigint,
                               OUT verifications_expired bigint,
                               OUT verifications_disabled bigint,
                               OUT verifications_revoked bigint,
                               OUT verifications_insufficient_scope bigint,
                               OUT verifications_ip_not_allowed bigint,
                               OUT verifications_rate_limited bigint,
                               OUT verifications_usage_exceeded bigint,
                               OUT cache_hits bigint, OUT cache_misses bigint,
                               OUT cache_evictions bigint,
                               OUT usage_keys_pending bigint, OUT usage_keys_dropped bigint,
                               OUT usage_flushes bigint, OUT usage_last_flush timestamptz,
                               OUT policy_runs bigint, OUT policy_actions bigint,
                               OUT policy_last_run timestamptz,
                               OUT addresses_failing bigint, OUT addresses_dropped bigint)
    RETURNS record
    AS 'MODULE_PATHNAME', 'apikeys_stats'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikeys_internal._stats IS 'Internal: the shared-memory counters behind apikeys.stats';
REVOKE ALL ON FUNCTION apikeys_internal._stats FROM PUBLIC;
-- apikeys.stats: numbers only, for admins and monitoring (pg_monitor).
GRANT EXECUTE ON FUNCTION apikeys_internal._stats TO apikeys_admin, pg_monitor;

-- The gauges of apikeys.stats that tables and locked-down functions hold:
-- the cache's fill, blocked addresses (a count, never an address) and this
-- database's outbox backlog.  SECURITY DEFINER, so pg_monitor can read the
-- numbers without reading the addresses or the outbox.
CREATE FUNCTION apikeys_internal._stats_gauges(OUT cache_entries bigint, OUT cache_capacity bigint,
                                      OUT cache_invalidations bigint,
                                      OUT addresses_blocked bigint,
                                      OUT outbox_backlog bigint, OUT outbox_failed bigint,
                                      OUT outbox_oldest timestamptz)
    RETURNS record
    LANGUAGE sql VOLATILE PARALLEL RESTRICTED
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
SELECT c.entries, c.capacity, c.invalidations,
       (SELECT pg_catalog.count(*) FROM apikeys_internal._failing_addresses() f WHERE f.blocked),
       (SELECT pg_catalog.count(*) FROM apikeys.outbox o
         WHERE o.delivered_at IS NULL AND o.failed_at IS NULL),
       (SELECT pg_catalog.count(*) FROM apikeys.outbox o WHERE o.failed_at IS NOT NULL),
       (SELECT pg_catalog.min(o.created_at) FROM apikeys.outbox o
         WHERE o.delivered_at IS NULL AND o.failed_at IS NULL)
  FROM apikeys.cache_stats() c
$$;
COMMENT ON FUNCTION apikeys_internal._stats_gauges IS 'Internal: the gauges behind apikeys.stats (counts only)';
REVOKE ALL ON FUNCTION apikeys_internal._stats_gauges FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys_internal._stats_gauges TO apikeys_admin, pg_monitor;

-- The operator's view: one row, cheap enough to scrape every 15 seconds.
-- Counters (verifications_*, cache_hits/misses/evictions, usage_flushes,
-- policy_*) are server-wide totals since stats_since; the rest are gauges.
CREATE VIEW apikeys.stats AS
SELECT s.stats_since,
       (s.verifications_valid OPERATOR(pg_catalog.+) s.verifications_malformed
        OPERATOR(pg_catalog.+) s.verifications_not_found OPERATOR(pg_catalog.+) s.verifications_expired
        OPERATOR(pg_catalog.+) s.verifications_disabled OPERATOR(pg_catalog.+) s.verifications_revoked
        OPERATOR(pg_catalog.+) s.verifications_insufficient_scope
        OPERATOR(pg_catalog.+) s.verifications_ip_not_allowed
        OPERATOR(pg_catalog.+) s.verifications_rate_limited
        OPERATOR(pg_catalog.+) s.verifications_usage_exceeded) AS verifications,
       s.verifications_valid, s.verifications_malformed, s.verifications_not_found,
       s.verifications_expired, s.verifications_disabled, s.verifications_revoked,
       s.verifications_insufficient_scope, s.verifications_ip_not_allowed,
       s.verifications_rate_limited,
       s.cache_hits, s.cache_misses, s.cache_evictions,
       g.cache_entries, g.cache_capacity, g.cache_invalidations,
       s.addresses_failing, g.addresses_blocked, s.addresses_dropped,
       s.usage_keys_pending, s.usage_keys_dropped, s.usage_flushes, s.usage_last_flush,
       pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) s.usage_last_flush)
           AS usage_flush_age_seconds,
       s.policy_runs, s.policy_actions, s.policy_last_run,
       g.outbox_backlog, g.outbox_failed,
       pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) g.outbox_oldest)
           AS outbox_oldest_age_seconds,
       s.verifications_usage_exceeded
  FROM apikeys_internal._stats() s, apikeys_internal._stats_gauges() g;
COMMENT ON VIEW apikeys.stats IS 'One row of server-wide counters (since stats_since) and gauges for monitoring: verifications by code, shared cache, address throttle, usage flush, policy runs, outbox backlog of this database (counters NULL when not preloaded)';
COMMENT ON COLUMN apikeys.stats.usage_flush_age_seconds IS 'Seconds since the background worker last committed a usage flush or rollup (NULL: none since stats_since)';
COMMENT ON COLUMN apikeys.stats.outbox_backlog IS 'Undelivered, not failed outbox rows of this database';
REVOKE ALL ON TABLE apikeys.stats FROM PUBLIC;
GRANT SELECT ON apikeys.stats TO apikeys_admin, pg_monitor;
