-- sql/install/05_handoff_outbox.sql: secret handoff, claims, the outbox
--
-- A section of the install script: make concatenates sql/install/*.sql
-- in name order into apikeys--<version>.sql.  Each object is followed by
-- its comment, privileges and settings.

-- Handoff claims: one row per link and code sent.  Only hashes are kept:
-- of the claim token, and of the token with the code (so the code's small
-- space cannot be searched without the token).  No foreign key to
-- apikeys.keys, so dump/restore needs no table order; claim_key checks
-- that the key still exists.
CREATE TABLE apikeys.claims (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id       text COLLATE "C" NOT NULL,
    token_hash      bytea NOT NULL,
    code_hash       bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at      timestamptz NOT NULL,
    failures        integer NOT NULL DEFAULT 0,
    claimed_at      timestamptz,
    locked_at       timestamptz,
    superseded_at   timestamptz,
    CONSTRAINT claims_token_hash_key UNIQUE (token_hash)
);
COMMENT ON TABLE apikeys.claims IS 'Handoff claims: hashes of each claim token and code, expiry, failures (extension owner only)';
CREATE INDEX claims_client_id_idx ON apikeys.claims (client_id);
SELECT pg_catalog.pg_extension_config_dump('apikeys.claims', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.claims_id_seq', '');
COMMENT ON SEQUENCE apikeys.claims_id_seq IS 'Identity of claims.id';
ALTER TABLE apikeys.claims ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE apikeys.claims FROM PUBLIC;

-- The outbox: durable events and deliveries, written in the transaction of
-- the change they report and drained by apikeys_delivery through
-- outbox_take / outbox_done / outbox_retry (at-least-once, leased).
CREATE TABLE apikeys.outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    event           text NOT NULL,
    client_id       text,
    owner           text,
    channel         text,
    recipient       text,
    payload         jsonb NOT NULL DEFAULT '{}',
    attempts        integer NOT NULL DEFAULT 0,
    available_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    delivered_at    timestamptz,
    leased_until    timestamptz,
    leased_by       text,
    last_error      text,
    failed_at       timestamptz,
    claim_id        bigint,
    CONSTRAINT outbox_channel_check CHECK (channel OPERATOR(pg_catalog.=) ANY (ARRAY['email'::text, 'sms'::text]))
);
COMMENT ON TABLE apikeys.outbox IS 'Durable events and deliveries, written with the change they report; drained by apikeys_delivery (holds claim links and codes until delivered)';
COMMENT ON COLUMN apikeys.outbox.channel IS 'email or sms: a delivery to recipient; NULL: an event for applications';
COMMENT ON COLUMN apikeys.outbox.attempts IS 'How many times outbox_take has handed the row out';
COMMENT ON COLUMN apikeys.outbox.leased_until IS 'Until then the row belongs to the taker named in leased_by';
COMMENT ON COLUMN apikeys.outbox.failed_at IS 'Delivery given up (apikeys.outbox_max_attempts, or the claim expired)';
COMMENT ON COLUMN apikeys.outbox.claim_id IS 'The handoff claim whose one-time secrets the payload holds';
CREATE INDEX outbox_pending_idx ON apikeys.outbox (id)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_claim_idx ON apikeys.outbox (claim_id) WHERE claim_id IS NOT NULL;
SELECT pg_catalog.pg_extension_config_dump('apikeys.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('apikeys.outbox_id_seq', '');
COMMENT ON SEQUENCE apikeys.outbox_id_seq IS 'Identity of outbox.id';
-- the delivery role reads every outbox row (it is granted SELECT below);
-- nobody else has a policy
ALTER TABLE apikeys.outbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY outbox_delivery_read ON apikeys.outbox FOR SELECT TO apikeys_delivery USING (true);
REVOKE ALL ON TABLE apikeys.outbox FROM PUBLIC;
-- The delivery role reads the outbox and drains it; nothing else.  The
-- outbox holds claim links and codes until delivered, so neither
-- apikeys_admin nor apikeys_verifier may read it.
GRANT SELECT ON apikeys.outbox TO apikeys_delivery;

-- Handoff (src/admin_claim.c): claim secrets from pg_strong_random(), constant-
-- time hash comparison, and the claim's use of the address throttle.
CREATE FUNCTION apikeys_internal._claim_secrets(OUT claim_token text, OUT code text)
    RETURNS record
    AS 'MODULE_PATHNAME', 'apikeys_claim_secrets'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._claim_secrets IS 'Internal: a new claim token and 6-digit code from pg_strong_random()';
REVOKE ALL ON FUNCTION apikeys_internal._claim_secrets FROM PUBLIC;

-- Not STRICT, like flush_usage: a STRICT call with NULL constants is
-- folded away before the EXECUTE privilege is checked.
CREATE FUNCTION apikeys_internal._hash_equal(a bytea, b bytea)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_hash_equal'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys_internal._hash_equal IS 'Internal: constant-time equality of two hashes';
REVOKE ALL ON FUNCTION apikeys_internal._hash_equal FROM PUBLIC;

-- Refuses at once on a standby; the caller's address (client_ip, else as
-- pre_request chooses it).  Not STRICT: NULL client_ip is the usual call.
CREATE FUNCTION apikeys_internal._claim_begin(client_ip inet)
    RETURNS inet
    AS 'MODULE_PATHNAME', 'apikeys_claim_begin'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._claim_begin IS 'Internal: refuses a claim on a standby; the caller''s address (client_ip, else as pre_request chooses it)';
REVOKE ALL ON FUNCTION apikeys_internal._claim_begin FROM PUBLIC;

-- Counts one code comparison (before comparing), then compares.
CREATE FUNCTION apikeys_internal._claim_attempt(claim_id bigint, failures integer, expires_at timestamptz,
                                       code_hash bytea, presented bytea)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_claim_attempt'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._claim_attempt IS 'Internal: counts one code comparison of a claim before making it (at most five, ever), then compares';
REVOKE ALL ON FUNCTION apikeys_internal._claim_attempt FROM PUBLIC;

-- Not STRICT: a NULL address (unix socket) is a call like any other.
CREATE FUNCTION apikeys_internal._claim_failed(address inet)
    RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_claim_failed'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._claim_failed IS 'Internal: counts a failed claim against the caller''s address in the throttle';
REVOKE ALL ON FUNCTION apikeys_internal._claim_failed FROM PUBLIC;

CREATE FUNCTION apikeys_internal._claim_attempts(OUT claim_id bigint, OUT tag bytea, OUT attempts integer,
                                        OUT wrong integer, OUT synced integer)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'apikeys_claim_attempts'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikeys_internal._claim_attempts IS 'Internal: this database''s claim attempts counted in shared memory (none without preloading)';
REVOKE ALL ON FUNCTION apikeys_internal._claim_attempts FROM PUBLIC;

-- _setting_interval: an apikeys.* duration setting as an interval (read
-- through _setting), with a fallback when it is unset.
CREATE FUNCTION apikeys_internal._setting_interval(p_name text, p_default interval)
    RETURNS interval
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE(apikeys_internal._setting(p_name)::interval, p_default)
$$;
COMMENT ON FUNCTION apikeys_internal._setting_interval IS 'Internal: an apikeys.* duration setting as an interval';
REVOKE ALL ON FUNCTION apikeys_internal._setting_interval FROM PUBLIC;

-- _deliver appends one outbox row addressed to a person (channel email or
-- sms) or to applications (channel NULL) and sends a wake-up NOTIFY that
-- names only the event and the row.  The one writer of deliveries.
CREATE FUNCTION apikeys_internal._deliver(p_event text, p_client_id text, p_owner text,
                                 p_channel text, p_recipient text, p_payload jsonb,
                                 p_claim_id bigint DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO apikeys.outbox (event, client_id, owner, channel, recipient, payload, claim_id)
    VALUES (p_event, p_client_id, p_owner, p_channel, p_recipient,
            COALESCE(p_payload, '{}'::jsonb), p_claim_id)
    RETURNING id INTO v_id;
    PERFORM pg_catalog.pg_notify('apikeys_events',
        pg_catalog.jsonb_build_object('event', p_event, 'outbox_id', v_id)::text);
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION apikeys_internal._deliver IS 'Internal: appends an outbox delivery and sends a wake-up NOTIFY';
REVOKE ALL ON FUNCTION apikeys_internal._deliver FROM PUBLIC;

-- Every audit row written by this transaction becomes an outbox event
-- (channel NULL).  Rows restored from a dump (COPY) are skipped: they carry
-- the time and txid of the transaction that wrote them, and a restoring
-- transaction never has both (the txid alone can coincide between two
-- young clusters).  So are rows whose event is already in the outbox as a
-- delivery (detail names its outbox_id).
CREATE FUNCTION apikeys_internal._audit_outbox_trigger()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO apikeys.outbox (event, client_id, owner, payload)
    VALUES (NEW.event, NEW.client_id, NEW.owner,
            pg_catalog.jsonb_build_object('audit_id', NEW.id, 'at', NEW.at,
                                          'actor', NEW.actor, 'detail', NEW.detail));
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION apikeys_internal._audit_outbox_trigger IS 'Internal: copies each audit row of this transaction into the outbox';
REVOKE ALL ON FUNCTION apikeys_internal._audit_outbox_trigger FROM PUBLIC;

CREATE TRIGGER audit_log_outbox
    AFTER INSERT ON apikeys.audit_log
    FOR EACH ROW
    WHEN (NEW.at OPERATOR(pg_catalog.=) pg_catalog.now()
          AND NEW.txid OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id()
          AND NOT (NEW.detail OPERATOR(pg_catalog.?) 'outbox_id'))
    EXECUTE FUNCTION apikeys_internal._audit_outbox_trigger();

-- Keeps keys.secret_set_at: when the current secret was set (rotation
-- policy).
CREATE FUNCTION apikeys_internal._keys_secret_set_at_trigger()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.secret_hash IS DISTINCT FROM OLD.secret_hash THEN
        NEW.secret_set_at := pg_catalog.now();
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION apikeys_internal._keys_secret_set_at_trigger IS 'Internal: records when a key''s secret was set';
REVOKE ALL ON FUNCTION apikeys_internal._keys_secret_set_at_trigger FROM PUBLIC;

CREATE TRIGGER keys_secret_set_at
    BEFORE UPDATE OF secret_hash ON apikeys.keys
    FOR EACH ROW EXECUTE FUNCTION apikeys_internal._keys_secret_set_at_trigger();

-- _outbox_erase removes the one-time secrets (claim token, code) from the
-- outbox rows of the given claims.
CREATE FUNCTION apikeys_internal._outbox_erase(p_claim_ids bigint[])
    RETURNS void
    LANGUAGE sql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE apikeys.outbox o
       SET payload = o.payload - ARRAY['claim_token', 'code']::text[]
     WHERE o.claim_id = ANY (p_claim_ids)
       AND o.payload ?| ARRAY['claim_token', 'code']::text[];
$$;
COMMENT ON FUNCTION apikeys_internal._outbox_erase IS 'Internal: erases claim tokens and codes from the outbox rows of claims';
REVOKE ALL ON FUNCTION apikeys_internal._outbox_erase FROM PUBLIC;

-- _handoff_start: a new claim for a pending key (any earlier open claim
-- is superseded and its secrets erased), its two deliveries and the
-- handoff_sent audit row.  Returns when the claim expires.
CREATE FUNCTION apikeys_internal._handoff_start(k apikeys.keys)
    RETURNS timestamptz
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
    v_old bigint[];
    v_claim bigint;
    v_exp timestamptz;
BEGIN
    WITH sup AS (
        UPDATE apikeys.claims c SET superseded_at = pg_catalog.now()
         WHERE c.client_id = k.client_id
           AND c.claimed_at IS NULL AND c.superseded_at IS NULL
        RETURNING c.id)
    SELECT pg_catalog.array_agg(id) INTO v_old FROM sup;
    IF v_old IS NOT NULL THEN
        PERFORM apikeys_internal._outbox_erase(v_old);
    END IF;

    s := apikeys_internal._claim_secrets();
    v_exp := pg_catalog.now() +
             apikeys_internal._setting_interval('apikeys.claim_lifetime', '24 hours');
    INSERT INTO apikeys.claims (client_id, token_hash, code_hash, expires_at)
    VALUES (k.client_id,
            pg_catalog.sha256(pg_catalog.convert_to(s.claim_token, 'UTF8')),
            pg_catalog.sha256(pg_catalog.convert_to(s.claim_token || ':'
                                                    || s.code, 'UTF8')),
            v_exp)
    RETURNING id INTO v_claim;

    PERFORM apikeys_internal._deliver('handoff_link', k.client_id, k.owner, 'email', k.contact_email,
        pg_catalog.jsonb_build_object('claim_token', s.claim_token, 'client_id', k.client_id,
                                      'name', k.name, 'claim_expires_at', v_exp),
        v_claim);
    PERFORM apikeys_internal._deliver('handoff_code', k.client_id, k.owner, 'sms', k.contact_phone,
        pg_catalog.jsonb_build_object('code', s.code, 'client_id', k.client_id,
                                      'claim_expires_at', v_exp),
        v_claim);
    PERFORM apikeys_internal._audit('handoff_sent', k.client_id, k.owner,
        pg_catalog.jsonb_build_object('claim_expires_at', v_exp,
                                      'email', k.contact_email, 'phone', k.contact_phone));
    RETURN v_exp;
END
$$;
COMMENT ON FUNCTION apikeys_internal._handoff_start IS 'Internal: opens a claim for a pending key and enqueues its link and code';
REVOKE ALL ON FUNCTION apikeys_internal._handoff_start FROM PUBLIC;

-- _claim_refuse: the one answer to every failed claim, whatever was wrong.
CREATE FUNCTION apikeys_internal._claim_refuse()
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'could not claim the API key'
        USING ERRCODE = '28000',
              DETAIL = 'The link or the code is wrong, used or expired, or the claim is locked.',
              HINT = 'Ask the administrator of the key for a new link and code.';
END
$$;
COMMENT ON FUNCTION apikeys_internal._claim_refuse IS 'Internal: raises the one error of every failed claim';
REVOKE ALL ON FUNCTION apikeys_internal._claim_refuse FROM PUBLIC;

-- _claim_record writes a claim's attempt count from the shared-memory
-- table (src/admin_claim.c) to its row: failures never goes down, and with
-- p_lock (five wrong codes) the claim is locked, its secrets erased and the
-- lock audited, once.  Run by the claim sync worker in its own
-- transaction.  A row locked by someone else is skipped, never waited for
-- (false: try again later); a claim that is gone counts as written.
CREATE FUNCTION apikeys_internal._claim_record(p_claim_id bigint, p_tag bytea, p_attempts integer,
                                      p_lock boolean)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c apikeys.claims;
    v_locks boolean;
BEGIN
    SELECT * INTO c FROM apikeys.claims cl
     WHERE cl.id = p_claim_id
       AND pg_catalog.substr(cl.code_hash, 1, 8) = p_tag
       FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN NOT EXISTS (SELECT 1 FROM apikeys.claims cl
                            WHERE cl.id = p_claim_id
                              AND pg_catalog.substr(cl.code_hash, 1, 8) = p_tag);
    END IF;
    v_locks := p_lock AND c.locked_at IS NULL AND c.claimed_at IS NULL AND c.superseded_at IS NULL;
    UPDATE apikeys.claims cl SET
        failures = GREATEST(cl.failures, p_attempts),
        locked_at = CASE WHEN v_locks THEN pg_catalog.now() ELSE cl.locked_at END
     WHERE cl.id = c.id
    RETURNING * INTO c;
    IF v_locks THEN
        PERFORM apikeys_internal._claim_locked(c);
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION apikeys_internal._claim_record IS 'Internal: writes a claim''s attempt count (and its lock) to its row; run by the claim sync worker';
REVOKE ALL ON FUNCTION apikeys_internal._claim_record FROM PUBLIC;

-- _claim_locked: what follows the lock of a claim (five wrong codes): its
-- secrets leave the outbox and the lock is audited.
CREATE FUNCTION apikeys_internal._claim_locked(c apikeys.claims)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM apikeys_internal._outbox_erase(ARRAY[c.id]);
    PERFORM apikeys_internal._audit('claim_locked', c.client_id,
        (SELECT k.owner FROM apikeys.keys k WHERE k.client_id = c.client_id),
        pg_catalog.jsonb_build_object('failures', c.failures));
END
$$;
COMMENT ON FUNCTION apikeys_internal._claim_locked IS 'Internal: erases a locked claim''s secrets from the outbox and audits the lock';
REVOKE ALL ON FUNCTION apikeys_internal._claim_locked FROM PUBLIC;

-- _claim_count_attempt: without preloading, one code comparison counted in
-- the claim's row before it is made, and made.  Run by the claim count
-- worker of src/admin_claim.c in its own transaction (so the count survives
-- claim_key's error), under a short lock_timeout.  NULL: the claim allows no
-- more comparisons (or is closed); true: the code is right; false: wrong,
-- and the fifth wrong code locks the claim.  "failures < 5" in the UPDATE
-- makes count-and-check one atomic step under any concurrency.
CREATE FUNCTION apikeys_internal._claim_count_attempt(p_claim_id bigint, p_presented bytea)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c apikeys.claims;
BEGIN
    UPDATE apikeys.claims cl SET failures = cl.failures + 1
     WHERE cl.id = p_claim_id
       AND cl.claimed_at IS NULL AND cl.locked_at IS NULL AND cl.superseded_at IS NULL
       AND cl.expires_at > pg_catalog.now()
       AND cl.failures < 5
    RETURNING * INTO c;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF apikeys_internal._hash_equal(c.code_hash, p_presented) THEN
        RETURN true;
    END IF;
    IF c.failures >= 5 THEN
        UPDATE apikeys.claims cl SET locked_at = pg_catalog.now()
         WHERE cl.id = c.id
        RETURNING * INTO c;
        PERFORM apikeys_internal._claim_locked(c);
    END IF;
    RETURN false;
END
$$;
COMMENT ON FUNCTION apikeys_internal._claim_count_attempt IS 'Internal: without preloading, counts one comparison in the claim''s row and makes it (run by the claim count worker)';
REVOKE ALL ON FUNCTION apikeys_internal._claim_count_attempt FROM PUBLIC;

-- claim_key: the integrator's side of the handoff (apikeys_verifier).
-- Every code comparison is counted before it is made, where the error
-- that ends a failed claim cannot undo it (apikeys_internal._claim_attempt, see
-- src/admin_claim.c): at most five per claim, ever.  A right code then locks the
-- claim and its key without waiting (a concurrent claim holding them
-- wins) and looks again.  The caller's address (client_ip, else as
-- pre_request chooses it) only counts failures in the address throttle:
-- it never refuses a claim, so junk sent through a shared proxy cannot
-- block anyone else's.
CREATE FUNCTION apikeys.claim_key(claim_token text, code text, client_ip inet DEFAULT NULL)
    RETURNS apikeys.new_key
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c apikeys.claims;
    k apikeys.keys;
    m record;
    v_addr inet;
    v_ok boolean := false;
BEGIN
    -- a standby refuses here, at once (25006)
    v_addr := apikeys_internal._claim_begin(claim_key.client_ip);
    -- Every failure ends at the one RAISE below, so not even the error's
    -- CONTEXT line tells which check failed.
    IF claim_key.claim_token IS NOT NULL AND claim_key.code IS NOT NULL AND
       pg_catalog.length(claim_key.claim_token) <= 256 THEN
        SELECT * INTO c FROM apikeys.claims cl
         WHERE cl.token_hash =
               pg_catalog.sha256(pg_catalog.convert_to(claim_key.claim_token, 'UTF8'));
        IF FOUND AND c.claimed_at IS NULL AND c.locked_at IS NULL AND
           c.superseded_at IS NULL AND c.expires_at > pg_catalog.now() AND
           c.failures < 5 AND
           apikeys_internal._claim_attempt(c.id, c.failures, c.expires_at, c.code_hash,
               pg_catalog.sha256(pg_catalog.convert_to(claim_key.claim_token || ':'
                                                       || claim_key.code, 'UTF8'))) THEN
            -- the code is right: lock without waiting, and look again (a
            -- concurrent claim may have won meanwhile)
            BEGIN
                SELECT * INTO c FROM apikeys.claims cl
                 WHERE cl.id = c.id FOR UPDATE NOWAIT;
                SELECT * INTO k FROM apikeys.keys kk
                 WHERE kk.client_id = c.client_id FOR UPDATE NOWAIT;
                v_ok := c.claimed_at IS NULL AND c.locked_at IS NULL AND c.superseded_at IS NULL AND
                        k.client_id IS NOT NULL AND k.revoked_at IS NULL AND
                        k.pending_since IS NOT NULL AND
                        k.expires_at > pg_catalog.now();
            EXCEPTION WHEN lock_not_available THEN
                v_ok := false;
            END;
        END IF;
    END IF;
    IF NOT v_ok THEN
        PERFORM apikeys_internal._claim_failed(v_addr);
        PERFORM apikeys_internal._claim_refuse();
    END IF;

    m := apikeys_internal._mint(k.client_id);
    PERFORM apikeys_internal._op_begin('claimed', pg_catalog.jsonb_build_object('claim_created_at', c.created_at));
    UPDATE apikeys.keys SET
        secret_hash = m.secret_hash,
        hash_alg = m.hash_alg,
        prev_secret_hash = NULL,
        prev_hash_alg = NULL,
        prev_expires_at = NULL,
        secret_by_key = NULL,
        prev_secret_by_key = NULL,
        pending_since = NULL,
        claimed_at = pg_catalog.now()
     WHERE keys.client_id = k.client_id;
    PERFORM apikeys_internal._op_end();
    UPDATE apikeys.claims SET claimed_at = pg_catalog.now() WHERE id = c.id;
    PERFORM apikeys_internal._outbox_erase(ARRAY[c.id]);

    RETURN ROW(m.client_id, m.client_secret, m.token, k.expires_at)::apikeys.new_key;
END
$$;
COMMENT ON FUNCTION apikeys.claim_key IS 'Trades a handoff''s claim token and code for the key''s secret, once; every failure is the same 28000 error; at most five codes are ever compared per claim; client_ip: the caller''s address when a trusted backend claims on its behalf';
REVOKE ALL ON FUNCTION apikeys.claim_key FROM PUBLIC;
-- The integrator claims a handoff key through the application (PostgREST).
GRANT EXECUTE ON FUNCTION apikeys.claim_key TO apikeys_verifier;

-- reset_key: Spektrix's "Reset API key".  The current secret (and any
-- rotation grace) stops at once; the key is pending again and a new link
-- and code go out.
CREATE FUNCTION apikeys.reset_key(client_id text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k apikeys.keys;
    m record;
BEGIN
    k := apikeys_internal._key_row(reset_key.client_id);
    IF k.expires_at <= pg_catalog.now() THEN
        RAISE EXCEPTION 'API key "%" has expired', reset_key.client_id
            USING ERRCODE = '55000',
                  HINT = 'An expired key cannot be reset; issue a new key with apikeys.create_key().';
    END IF;
    IF k.contact_email IS NULL OR k.contact_phone IS NULL THEN
        RAISE EXCEPTION 'API key "%" has no contact email and phone for a handoff', reset_key.client_id
            USING ERRCODE = '22023',
                  HINT = 'Set contact_email and contact_phone with apikeys.update_key() first.';
    END IF;

    m := apikeys_internal._mint(k.client_id);   -- its secret is dropped unseen
    PERFORM apikeys_internal._op_begin('reset', NULL);
    UPDATE apikeys.keys SET
        secret_hash = m.secret_hash,
        hash_alg = m.hash_alg,
        prev_secret_hash = NULL,
        prev_hash_alg = NULL,
        prev_expires_at = NULL,
        secret_by_key = NULL,
        prev_secret_by_key = NULL,
        pending_since = pg_catalog.now()
     WHERE keys.client_id = k.client_id
    RETURNING * INTO k;
    PERFORM apikeys_internal._op_end();
    PERFORM apikeys_internal._handoff_start(k);
END
$$;
COMMENT ON FUNCTION apikeys.reset_key IS 'Stops the key''s secret at once and sends a new handoff (claim link and code)';
REVOKE ALL ON FUNCTION apikeys.reset_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.reset_key TO apikeys_admin;

-- _outbox_housekeeping: rows of claims that expired lose their one-time
-- secrets (and, undelivered, are given up: the link is dead); rows whose
-- last allowed attempt's lease ran out are given up.
CREATE FUNCTION apikeys_internal._outbox_housekeeping()
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_max integer := apikeys_internal._setting_integer('apikeys.outbox_max_attempts', 10);
BEGIN
    UPDATE apikeys.outbox o SET
        payload = o.payload - ARRAY['claim_token', 'code']::text[],
        failed_at = CASE WHEN o.delivered_at IS NULL AND o.failed_at IS NULL
                         THEN pg_catalog.now() ELSE o.failed_at END,
        last_error = CASE WHEN o.delivered_at IS NULL AND o.failed_at IS NULL
                          THEN 'the claim expired before delivery' ELSE o.last_error END,
        leased_until = NULL
      FROM apikeys.claims c
     WHERE o.claim_id = c.id
       AND c.expires_at <= pg_catalog.now()
       AND o.payload ?| ARRAY['claim_token', 'code']::text[];

    UPDATE apikeys.outbox o SET
        failed_at = pg_catalog.now(),
        last_error = COALESCE(o.last_error, 'the lease of the last attempt ran out'),
        leased_until = NULL
     WHERE o.delivered_at IS NULL AND o.failed_at IS NULL
       AND o.attempts >= v_max
       AND o.leased_until <= pg_catalog.clock_timestamp();
END
$$;
COMMENT ON FUNCTION apikeys_internal._outbox_housekeeping IS 'Internal: erases secrets of expired claims and gives up rows out of attempts';
REVOKE ALL ON FUNCTION apikeys_internal._outbox_housekeeping FROM PUBLIC;

-- outbox_take: due, undelivered rows, oldest first, each leased to the
-- caller until now() + lease.  FOR UPDATE SKIP LOCKED: concurrent takers
-- skip each other's rows instead of waiting, and a leased row is not due
-- again until its lease ends (a taker that died leaves it to come back).
CREATE FUNCTION apikeys.outbox_take(max_rows integer DEFAULT 100, lease interval DEFAULT '1 minute')
    RETURNS SETOF apikeys.outbox
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_max integer := apikeys_internal._setting_integer('apikeys.outbox_max_attempts', 10);
BEGIN
    IF max_rows IS NULL OR max_rows < 1 OR max_rows > 10000 THEN
        RAISE EXCEPTION 'max_rows must be between 1 and 10000' USING ERRCODE = '22023';
    END IF;
    IF lease IS NULL OR lease < '1 second'::interval OR
       lease > '1 day'::interval THEN
        RAISE EXCEPTION 'lease must be between 1 second and 1 day' USING ERRCODE = '22023';
    END IF;
    PERFORM apikeys_internal._outbox_housekeeping();
    RETURN QUERY
    WITH due AS (
        SELECT o.id FROM apikeys.outbox o
         WHERE o.delivered_at IS NULL AND o.failed_at IS NULL
           AND o.available_at <= pg_catalog.clock_timestamp()
           AND (o.leased_until IS NULL OR o.leased_until <= pg_catalog.clock_timestamp())
           AND o.attempts < v_max
         ORDER BY o.id
         LIMIT max_rows
         FOR UPDATE SKIP LOCKED),
    taken AS (
        UPDATE apikeys.outbox o SET
            attempts = o.attempts + 1,
            leased_until = pg_catalog.clock_timestamp() + lease,
            leased_by = pg_catalog.format('%s pid %s', apikeys_internal._outer_user(), pg_catalog.pg_backend_pid())
          FROM due
         WHERE o.id = due.id
        RETURNING o.*)
    SELECT * FROM taken ORDER BY taken.id;
END
$$;
COMMENT ON FUNCTION apikeys.outbox_take IS 'Leases up to max_rows due, undelivered outbox rows, oldest first; concurrent takers never get the same row while its lease runs';
REVOKE ALL ON FUNCTION apikeys.outbox_take FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.outbox_take TO apikeys_delivery;

-- outbox_done: the row was delivered.  Its one-time secrets are erased.
-- Idempotent: at-least-once delivery may report a row twice.
CREATE FUNCTION apikeys.outbox_done(id bigint)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE apikeys.outbox o SET
        delivered_at = COALESCE(o.delivered_at, pg_catalog.now()),
        leased_until = NULL,
        payload = o.payload - ARRAY['claim_token', 'code']::text[]
     WHERE o.id = outbox_done.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'outbox row % does not exist', COALESCE(outbox_done.id::text, 'NULL')
            USING ERRCODE = '42704';
    END IF;
END
$$;
COMMENT ON FUNCTION apikeys.outbox_done IS 'Marks an outbox row delivered and erases its one-time secrets (idempotent)';
REVOKE ALL ON FUNCTION apikeys.outbox_done FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.outbox_done TO apikeys_delivery;

-- outbox_retry: delivery failed; the row is due again after a backoff of
-- apikeys.outbox_backoff doubled per attempt (at most
-- apikeys.outbox_max_backoff), and given up after
-- apikeys.outbox_max_attempts attempts.
CREATE FUNCTION apikeys.outbox_retry(id bigint, error text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o apikeys.outbox;
    v_max integer := apikeys_internal._setting_integer('apikeys.outbox_max_attempts', 10);
    v_delay interval;
BEGIN
    SELECT * INTO o FROM apikeys.outbox ob WHERE ob.id = outbox_retry.id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'outbox row % does not exist', COALESCE(outbox_retry.id::text, 'NULL')
            USING ERRCODE = '42704';
    END IF;
    IF o.delivered_at IS NOT NULL THEN
        RAISE EXCEPTION 'outbox row % has already been delivered', o.id
            USING ERRCODE = '55000';
    END IF;
    v_delay := LEAST(apikeys_internal._setting_interval('apikeys.outbox_backoff', '10 seconds')
                     *
                     pg_catalog.power(2::double precision,
                                      (LEAST(GREATEST(o.attempts, 1), 30) - 1)::double precision),
                     apikeys_internal._setting_interval('apikeys.outbox_max_backoff', '1 hour'));
    UPDATE apikeys.outbox ob SET
        leased_until = NULL,
        last_error = pg_catalog."left"(COALESCE(outbox_retry.error, ''), 1000),
        available_at = pg_catalog.now() + v_delay,
        failed_at = CASE WHEN o.attempts >= v_max THEN pg_catalog.now() END
     WHERE ob.id = o.id;
END
$$;
COMMENT ON FUNCTION apikeys.outbox_retry IS 'Returns an outbox row to the queue after an exponential backoff; gives up after apikeys.outbox_max_attempts';
REVOKE ALL ON FUNCTION apikeys.outbox_retry FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.outbox_retry TO apikeys_delivery;
