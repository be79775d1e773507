-- sql/install/06_policies.sql: lifecycle policies and hygiene
--
-- A section of the install script: make concatenates sql/install/*.sql
-- in name order into apikeys--<version>.sql.  Each object is followed by
-- its comment, privileges and settings.

-- What apply_policies has already sent, so each notice goes out once: the
-- subject is the key's expires_at (expires_soon) or secret_set_at
-- (rotation_due), so a changed expiry or a new secret starts afresh.
CREATE TABLE apikeys.policy_notices (
    client_id       text COLLATE "C" NOT NULL,
    event           text NOT NULL,
    subject         timestamptz NOT NULL,
    sent_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT policy_notices_pkey PRIMARY KEY (client_id, event, subject)
);
COMMENT ON TABLE apikeys.policy_notices IS 'Lifecycle notices already sent, one per key, event and subject (extension owner only)';
SELECT pg_catalog.pg_extension_config_dump('apikeys.policy_notices', '');
ALTER TABLE apikeys.policy_notices ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE apikeys.policy_notices FROM PUBLIC;

-- _policy_notice: one expires_soon / rotation_due notice for a key, unless
-- already sent for this subject; audited, delivered to the key's contact
-- email (or to applications when it has none).  True when sent.
CREATE FUNCTION apikeys_internal._policy_notice(k apikeys.keys, p_event text, p_subject timestamptz,
                                       p_payload jsonb)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO apikeys.policy_notices (client_id, event, subject)
    VALUES (k.client_id, p_event, p_subject)
    ON CONFLICT ON CONSTRAINT policy_notices_pkey DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    v_id := apikeys_internal._deliver(p_event, k.client_id, k.owner,
                             CASE WHEN k.contact_email IS NOT NULL THEN 'email' END,
                             k.contact_email,
                             p_payload ||
                             pg_catalog.jsonb_build_object('client_id', k.client_id, 'name', k.name));
    PERFORM apikeys_internal._audit(p_event, k.client_id, k.owner,
        p_payload || pg_catalog.jsonb_build_object('outbox_id', v_id));
    RETURN true;
END
$$;
COMMENT ON FUNCTION apikeys_internal._policy_notice IS 'Internal: sends a lifecycle notice once per key, event and subject';
REVOKE ALL ON FUNCTION apikeys_internal._policy_notice FROM PUBLIC;

-- apply_policies: one pass of the lifecycle policies over live keys, plus
-- outbox housekeeping and retention.  Returns the number of actions
-- (revocations and notices).  Safe to run twice or concurrently: a revoke
-- re-checks revoked_at under the row lock, a notice is sent once per
-- (key, event, subject).
CREATE FUNCTION apikeys.apply_policies()
    RETURNS integer
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer := 0;
    r record;
    k apikeys.keys;
    v_retention interval := apikeys_internal._setting_interval('apikeys.outbox_retention', '7 days');
    v_last timestamptz;
    v_proof record;
    v_skipped integer := 0;
    v_skip_reason text;
    v_skip_ids text[] := '{}';
BEGIN
    PERFORM apikeys_internal._outbox_housekeeping();
    IF v_retention > '0'::interval THEN
        DELETE FROM apikeys.outbox o
         WHERE o.delivered_at < (pg_catalog.now() - v_retention)
            OR o.failed_at < (pg_catalog.now() - v_retention);
        DELETE FROM apikeys.claims c
         WHERE c.expires_at < (pg_catalog.now() - v_retention);
    END IF;

    FOR r IN
        SELECT kk.client_id, kk.expires_at,
               COALESCE(p.revoke_unused_after,
                        apikeys_internal._setting_interval('apikeys.default_revoke_unused_after', '0')) AS unused_after,
               COALESCE(p.warn_before_expiry,
                        apikeys_internal._setting_interval('apikeys.default_warn_before_expiry', '14 days')) AS warn_before,
               COALESCE(p.rotate_every,
                        apikeys_internal._setting_interval('apikeys.default_rotate_every', '0')) AS rotate_every
          FROM apikeys.keys kk
          LEFT JOIN apikeys.owner_policies p ON p.owner = kk.owner
         WHERE kk.revoked_at IS NULL
           AND kk.expires_at > pg_catalog.now()
         ORDER BY kk.client_id
    LOOP
        -- nothing to do for this key: skip the row fetch (with the default
        -- expiry warning on, most keys are far from their expiry)
        IF r.unused_after <= '0'::interval AND
           (r.warn_before <= '0'::interval OR
            r.expires_at > (pg_catalog.now() + r.warn_before)) AND
           r.rotate_every <= '0'::interval THEN
            CONTINUE;
        END IF;
        SELECT * INTO k FROM apikeys.keys kk WHERE kk.client_id = r.client_id;
        IF NOT FOUND THEN
            CONTINUE;
        END IF;

        -- revoke_unused_after: never used counts from creation; only a
        -- proven non-use revokes (apikeys_internal._unused_proven)
        IF r.unused_after > '0'::interval THEN
            SELECT * INTO v_proof FROM apikeys_internal._unused_proven(k, r.unused_after);
            v_last := v_proof.last_used_at;
            IF NOT v_proof.proven AND v_proof.reason IS NOT NULL THEN
                v_skipped := v_skipped + 1;
                v_skip_reason := COALESCE(v_skip_reason, v_proof.reason);
                IF v_skipped <= 100 THEN
                    v_skip_ids := v_skip_ids || k.client_id;
                END IF;
            END IF;
            IF v_proof.proven THEN
                IF apikeys_internal._revoke_key(k.client_id, pg_catalog.jsonb_build_object(
                       'reason', 'unused', 'policy', 'revoke_unused_after',
                       'unused_after', r.unused_after, 'last_used_at', v_last),
                       false, false) > 0 THEN
                    PERFORM apikeys_internal._deliver('revoked_unused', k.client_id, k.owner,
                        CASE WHEN k.contact_email IS NOT NULL THEN 'email' END, k.contact_email,
                        pg_catalog.jsonb_build_object('client_id', k.client_id, 'name', k.name,
                                                      'last_used_at', v_last,
                                                      'unused_after', r.unused_after));
                    n := n + 1;
                    CONTINUE;
                END IF;
            END IF;
        END IF;

        IF r.warn_before > '0'::interval AND
           k.expires_at <= (pg_catalog.now() + r.warn_before) THEN
            IF apikeys_internal._policy_notice(k, 'expires_soon', k.expires_at,
                   pg_catalog.jsonb_build_object('expires_at', k.expires_at)) THEN
                n := n + 1;
            END IF;
        END IF;

        IF r.rotate_every > '0'::interval AND k.pending_since IS NULL AND
           k.secret_set_at < (pg_catalog.now() - r.rotate_every) THEN
            IF apikeys_internal._policy_notice(k, 'rotation_due', k.secret_set_at,
                   pg_catalog.jsonb_build_object('secret_set_at', k.secret_set_at,
                                                 'rotate_every', r.rotate_every)) THEN
                n := n + 1;
            END IF;
        END IF;
    END LOOP;
    IF v_skipped > 0 THEN
        -- said loudly, once per run: the log (the worker's run too) and the audit trail
        RAISE WARNING 'apikeys.apply_policies did not revoke % keys without a recorded use', v_skipped
            USING DETAIL = 'Their non-use is not proven: ' || v_skip_reason || '.',
                  HINT = 'See "Lifecycle policies" in the apikeys documentation.';
        PERFORM apikeys_internal._audit('unused_not_revoked', NULL, NULL, pg_catalog.jsonb_build_object(
            'policy', 'revoke_unused_after', 'reason', v_skip_reason,
            'keys', v_skipped, 'client_ids', pg_catalog.to_jsonb(v_skip_ids)));
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION apikeys.apply_policies IS 'Applies the lifecycle policies (revoke unused keys, expires_soon, rotation_due) and outbox retention; returns the number of actions';
REVOKE ALL ON FUNCTION apikeys.apply_policies FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.apply_policies TO apikeys_admin;

-- _unused_proven: the one rule of revoke_unused_after.  A key is revoked as
-- unused only when its last recorded use (or, never used, its creation or
-- its last claim: a handoff key cannot be used before it is claimed) is
-- older than unused_after AND every use in that time would have been
-- recorded (apikeys_internal._usage_unproven: preloaded, no standby that may verify,
-- no use lost in that time, the journal's last uses all known).  proven
-- false with a reason: it looks unused but that is not proven; without a
-- reason: it was used.  The recorded last use is the latest of
-- keys.last_used_at (written without preloading), the last use awaiting the
-- rollup (flushed to the journal: _recent_use) and the rolled-up usage rows.
CREATE FUNCTION apikeys_internal._unused_proven(p_key apikeys.keys, p_unused_after interval,
                                       OUT proven boolean, OUT last_used_at timestamptz,
                                       OUT reason text)
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- first: the uses still in shared memory reach the journal, and no
    -- rollup moves them while this transaction reads them
    reason := apikeys_internal._usage_unproven(p_unused_after);
    last_used_at := GREATEST(p_key.last_used_at, apikeys_internal._recent_use(p_key.client_id),
        apikeys_internal._usage_last_use(p_key.client_id));
    IF GREATEST(last_used_at, p_key.created_at, p_key.claimed_at) >=
       (pg_catalog.now() - p_unused_after) THEN
        proven := false;
        reason := NULL;
    ELSE
        proven := reason IS NULL;
    END IF;
END
$$;
COMMENT ON FUNCTION apikeys_internal._unused_proven IS 'Internal: is the key''s non-use for that long proven (the rule of revoke_unused_after), its last recorded use, and why not';
REVOKE ALL ON FUNCTION apikeys_internal._unused_proven FROM PUBLIC;

-- apikeys.key_hygiene: the keys an administrator should look at, each with
-- its findings, so a periodic review (or an alert) is one SELECT:
--   full_access          holds the lone "*" scope (itself or through a scope set)
--   expires_soon         expires within 14 days (plan the replacement)
--   never_used           not used in the 7 days since it was issued
--   unused_90_days       last used more than 90 days ago (revoke it?)
--   no_contact           no contact email or phone to warn before expiry
--   old_secret_in_grace  a rotation's previous secret still works
-- Only live keys (active or disabled) appear, and only with a finding.
-- A view over apikeys.keys, run with the extension owner's rights like
-- key_list, showing no secret or hash.
CREATE VIEW apikeys.key_hygiene AS
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
               GREATEST(k0.last_used_at, apikeys_internal._recent_use(k0.client_id),
                apikeys_internal._usage_last_use(k0.client_id)) AS last_used_at
          FROM apikeys.keys k0) k,
       LATERAL (SELECT pg_catalog.array_remove(ARRAY[
                    CASE WHEN '*'::text OPERATOR(pg_catalog.=) ANY (apikeys_internal._expand_scopes(k.scopes)::text[])
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
COMMENT ON VIEW apikeys.key_hygiene IS 'Live keys that need attention, with findings: full_access, expires_soon, never_used, unused_90_days, no_contact, old_secret_in_grace';
COMMENT ON COLUMN apikeys.key_hygiene.findings IS 'Why the key is listed; see the view''s comment';
REVOKE ALL ON TABLE apikeys.key_hygiene FROM PUBLIC;
GRANT SELECT ON apikeys.key_hygiene TO apikeys_admin;
