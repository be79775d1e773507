/* apikeys--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION apikeys UPDATE TO '1.1'" to load this file. \quit

--------------------------------------------------------------------------------
-- 1.1: apikeys.key_hygiene
--
-- The keys an administrator should look at, each with its findings, so a
-- periodic review (or an alert) is one SELECT:
--   full_access          holds the lone "*" scope
--   expires_soon         expires within 14 days (plan the replacement)
--   never_used           not used in the 7 days since it was issued
--   unused_90_days       last used more than 90 days ago (revoke it?)
--   no_contact           no contact email or phone to warn before expiry
--   old_secret_in_grace  a rotation's previous secret still works
-- Only live keys (active or disabled) appear, and only with a finding.
-- Nothing here touches C or the tables: a view over apikeys.keys, run with
-- the extension owner's rights like key_list, showing no secret or hash.
--------------------------------------------------------------------------------
CREATE VIEW apikeys.key_hygiene AS
SELECT k.client_id,
       k.owner,
       k.name,
       CASE WHEN k.disabled_at IS NOT NULL THEN 'disabled' ELSE 'active' END AS status,
       k.created_at,
       k.expires_at,
       k.last_used_at,
       f.findings
  FROM apikeys.keys k,
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

REVOKE ALL ON apikeys.key_hygiene FROM PUBLIC;
GRANT SELECT ON apikeys.key_hygiene TO apikeys_admin;

COMMENT ON VIEW apikeys.key_hygiene IS 'Live keys that need attention, with findings: full_access, expires_soon, never_used, unused_90_days, no_contact, old_secret_in_grace';
COMMENT ON COLUMN apikeys.key_hygiene.findings IS 'Why the key is listed; see the view''s comment';
