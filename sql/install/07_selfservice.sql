-- sql/install/07_selfservice.sql: tenant self-service: the my_* functions
--
-- A section of the install script: make concatenates sql/install/*.sql
-- in name order into apikeys--<version>.sql.  Each object is followed by
-- its comment, privileges and settings.

-- Tenant self-service (apikeys_verifier): keys that manage their owner's keys
--
-- The my_* functions act for the key authenticated in this transaction
-- (authenticate or pre_request).  Each one re-reads that key's row and
-- share-locks it (_acting_row), so a key revoked, disabled, expired (at the
-- time of the call, not of the transaction's start) or stripped of its
-- apikeys:* scope earlier in the same transaction, or by a transaction
-- that committed meanwhile, can do nothing; a revoke racing a my_* call
-- waits for it (or makes it wait and then refuses it).  _acting_row also
-- counts the action against the owner's apikeys.max_tenant_actions per
-- minute.  Three rules, each in one function every my_* path calls:
--   _check_grant   a key never gives more than it holds (new keys, and
--                  a key as it will be after a change);
--   _check_target  a key changes only keys within its own power, and
--                  never lifts an admin's disable (_target_row calls it);
--   _grant_scopes  what a key gives is plain scopes: a '@set' is
--                  expanded when it is given, so a later redefinition of
--                  a set (which only admins make) never widens a key that
--                  a tenant made.
-- The work itself is done by the admin functions, so the owner's cap and
-- policies apply unchanged.

-- _count_tenant_action: one management action of the owner's keys; more
-- than apikeys.max_tenant_actions in a minute is 54000 (audit and outbox
-- floods).  The owner's policy row is locked until commit, so concurrent
-- actions of one owner are counted exactly; a refused or rolled-back
-- action is not counted (it wrote nothing).
CREATE FUNCTION apikeys_internal._count_tenant_action(p_owner text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_max integer := apikeys_internal._setting_integer('apikeys.max_tenant_actions', 60);
    v_now timestamptz := pg_catalog.clock_timestamp();
    v_n integer;
BEGIN
    IF v_max <= 0 OR p_owner IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO apikeys.owner_policies AS p (owner, actions_since, actions)
    VALUES (p_owner, v_now, 1)
    ON CONFLICT ON CONSTRAINT owner_policies_pkey DO UPDATE SET
        actions = CASE WHEN p.actions_since IS NULL OR
                            p.actions_since <= (v_now - '1 minute'::interval)
                       THEN 1 ELSE p.actions + 1 END,
        actions_since = CASE WHEN p.actions_since IS NULL OR
                                  p.actions_since <= (v_now - '1 minute'::interval)
                             THEN v_now ELSE p.actions_since END
    RETURNING p.actions INTO v_n;
    IF v_n > v_max THEN
        RAISE EXCEPTION 'too many key management actions for this owner'
            USING ERRCODE = '54000',
                  DETAIL = pg_catalog.format('The keys of an owner make at most %s management actions a minute.', v_max),
                  HINT = 'Wait a minute and try again; apikeys.max_tenant_actions sets the limit.';
    END IF;
END
$$;
COMMENT ON FUNCTION apikeys_internal._count_tenant_action IS 'Internal: counts a self-service management action of the owner; 54000 above apikeys.max_tenant_actions a minute';
REVOKE ALL ON FUNCTION apikeys_internal._count_tenant_action FROM PUBLIC;

-- _acting_row: the authenticated key's current row, if it is live at the
-- time of the call (clock_timestamp(): a transaction opened before the key
-- expired must not keep managing keys) and its scopes (sets expanded) grant
-- p_scope; else 42501.  The one liveness check of management actions; it
-- counts the action (_count_tenant_action).  With p_raise false (for
-- reading, my_keys): NULL instead of the error, no row lock, not counted.
CREATE FUNCTION apikeys_internal._acting_row(p_scope text, p_raise boolean DEFAULT true)
    RETURNS apikeys.keys
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cid text := apikeys.current_client_id();
    k apikeys.keys;
BEGIN
    IF v_cid IS NULL THEN
        IF NOT p_raise THEN RETURN NULL; END IF;
        RAISE EXCEPTION 'no API key is authenticated'
            USING ERRCODE = '42501',
                  HINT = 'Present a key holding the apikeys:* scopes (apikeys.authenticate() or apikeys.pre_request()).';
    END IF;
    -- a derived token (apikeys.derive_token) never acts on keys
    IF apikeys_internal._current_derived() THEN
        IF NOT p_raise THEN RETURN NULL; END IF;
        RAISE EXCEPTION 'a derived token cannot manage keys'
            USING ERRCODE = '42501',
                  DETAIL = 'Only a key''s own token manages keys.';
    END IF;
    IF p_raise THEN
        -- counted first: the owner's policy row is locked before the key
        -- row, in the order create_key and revoke_all_keys take them
        PERFORM apikeys_internal._count_tenant_action(apikeys.current_owner());
        -- a change follows: serialise with a concurrent revoke of this key
        SELECT * INTO k FROM apikeys.keys a
         WHERE a.client_id = v_cid
         FOR SHARE;
    ELSE
        -- reading only (my_keys): no lock, so it works in READ ONLY
        -- transactions (PostgREST's GET) and on a standby
        SELECT * INTO k FROM apikeys.keys a
         WHERE a.client_id = v_cid;
    END IF;
    IF NOT FOUND OR k.revoked_at IS NOT NULL OR k.disabled_at IS NOT NULL OR
       k.expires_at <= pg_catalog.clock_timestamp() OR
       NOT apikeys.scopes_grant(apikeys_internal._expand_scopes(k.scopes), p_scope::apikeys.scope) THEN
        IF NOT p_raise THEN RETURN NULL; END IF;
        RAISE EXCEPTION 'API key "%" may not manage keys', v_cid
            USING ERRCODE = '42501',
                  DETAIL = pg_catalog.format('This needs a live key holding the scope %s.', p_scope);
    END IF;
    RETURN k;
END
$$;
COMMENT ON FUNCTION apikeys_internal._acting_row IS 'Internal: the authenticated key''s current row if it is live and holds the scope; 42501 (or NULL) otherwise';
REVOKE ALL ON FUNCTION apikeys_internal._acting_row FROM PUBLIC;

-- _check_target: may the acting key change this key at all?  Only a key
-- within its own power (_check_grant of the key as it is: a narrower key
-- must not rotate, disable, revoke or delete a broader one), and never by
-- enabling a key an admin disabled (disabled_by_key NULL): a tenant does
-- not undo the platform.  Every my_* change reaches it through _target_row.
CREATE FUNCTION apikeys_internal._check_target(p_acting apikeys.keys, p_target apikeys.keys, p_action text)
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM apikeys_internal._check_grant(p_acting, p_target.client_id, p_target.scopes,
                                 p_target.expires_at, p_target.db_role, p_target.rate_limit,
                                 p_target.rate_window, p_target.allowed_cidrs, p_target.prefix,
                                 apikeys_internal._credits_balance(p_target.client_id),
                                 p_target.refill_amount, p_target.refill_every);
    IF p_action = 'enable' AND p_target.disabled_at IS NOT NULL AND
       p_target.disabled_by_key IS NULL THEN
        RAISE EXCEPTION 'API key "%" cannot enable API key "%"', p_acting.client_id, p_target.client_id
            USING ERRCODE = '42501',
                  DETAIL = 'An administrator disabled that key.',
                  HINT = 'Only an administrator can enable it (apikeys.enable_key()).';
    END IF;
END
$$;
COMMENT ON FUNCTION apikeys_internal._check_target IS 'Internal: 42501 unless the acting key may change that key (within its power; an admin''s disable is not lifted)';
REVOKE ALL ON FUNCTION apikeys_internal._check_target FROM PUBLIC;

-- _target_row: a key of the acting key's owner, locked for the change and
-- checked by _check_target for p_action; a key of another owner is 42704,
-- exactly as if it did not exist.
CREATE FUNCTION apikeys_internal._target_row(p_acting apikeys.keys, p_client_id text, p_action text)
    RETURNS apikeys.keys
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t apikeys.keys;
BEGIN
    IF p_client_id IS NULL THEN
        RAISE EXCEPTION 'client_id cannot be NULL' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO t FROM apikeys.keys k
     WHERE k.client_id = p_client_id
       AND k.owner = p_acting.owner
     FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM apikeys_internal._no_such_key(p_client_id);
    END IF;
    PERFORM apikeys_internal._check_target(p_acting, t, p_action);
    RETURN t;
END
$$;
COMMENT ON FUNCTION apikeys_internal._target_row IS 'Internal: a key of the acting key''s owner, locked and checked by _check_target; 42704 for any other';
REVOKE ALL ON FUNCTION apikeys_internal._target_row FROM PUBLIC;

-- _grant_scopes: the scopes a key gives, validated (_check_settings) and
-- with every '@set' replaced by the set's scopes as they are now.  A set
-- is global and only admins define it: a key made through self-service
-- holds plain scopes, so widening a set later widens only the keys an
-- admin gave it to.  NULL stays NULL (not given).
CREATE FUNCTION apikeys_internal._grant_scopes(p_scopes text[])
    RETURNS apikeys.scope[]
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_scopes apikeys.scope[];
BEGIN
    IF p_scopes IS NULL THEN
        RETURN NULL;
    END IF;
    v_scopes := apikeys_internal._check_settings(p_scopes, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    -- expanded, then validated again: duplicates go, at most 100 scopes
    RETURN apikeys_internal._check_settings(apikeys_internal._expand_scopes(v_scopes)::text[],
                                   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
END
$$;
COMMENT ON FUNCTION apikeys_internal._grant_scopes IS 'Internal: scopes a key gives through self-service, validated, with every @set expanded into plain scopes';
REVOKE ALL ON FUNCTION apikeys_internal._grant_scopes FROM PUBLIC;

-- _check_grant: the no-escalation rule, in one place.  A key (p_acting)
-- may give a key (new, or changed, or one it acts on: _check_target) only
-- what it holds itself:
--   scopes       each one covered by the acting key's scopes, both sides
--                with '@set' expanded, matched by the scope type itself
--                (_scopes_cover: so apikeys:* or * only from a key holding
--                it, and a field list only narrower than the acting key's;
--                a field-less scope only from a field-less grant)
--   expiry       not later than the acting key's, to the microsecond
--   db_role      the acting key's own (NULL too: no role switch)
--   rate limit   none only if the acting key has none; else at most the
--                acting key's rate (limit per window length), the windows
--                measured as verification measures them (_interval_us:
--                '1 year -359 days' is one day to both)
--   networks     none only if the acting key has none; else each network
--                inside one of the acting key's, both normalised as
--                verification normalises them (_cidrs_outside:
--                ::ffff:0.0.0.0/96 is IPv4 0.0.0.0/0, outside ::/0)
--   prefix       the acting key's own: a key made through self-service
--                carries its manager's prefix, and a key acts only on keys
--                of its own prefix (an acme_test key never learns, by
--                rotating it, or widens an acme_live key's secret)
--   credits      none (unlimited) only if the acting key has none; else a
--                balance no larger than the most the acting key can hold
--                (its balance now, or its refill_amount if that is more),
--                and a refill only if the acting key has one, of at most
--                its amount, at most as often (_interval_us).  A key with
--                credits never mints any (self-service only lowers):
--                a new key starts with at most the acting key's balance
--                now, and a balance set on an existing key (p_sets_balance:
--                my_update_key(credits => n), the acting key itself
--                included) can only be 0.  Any n > 0 would be a mint: the
--                set replaces the live balance at commit, so the credits
--                spent while the change is open (or since the balance was
--                read) come back; a balance is raised only by an
--                administrator (update_key, add_credits)
-- Anything else: 42501.
CREATE FUNCTION apikeys_internal._check_grant(p_acting apikeys.keys, p_client_id text,
                                     p_scopes apikeys.scope[], p_expires_at timestamptz,
                                     p_db_role text, p_rate_limit integer,
                                     p_rate_window interval, p_allowed_cidrs cidr[],
                                     p_prefix text, p_credits bigint, p_refill_amount bigint,
                                     p_refill_every interval, p_sets_balance boolean DEFAULT false)
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_held apikeys.scope[] := apikeys_internal._expand_scopes(p_acting.scopes);
    v_what text := CASE WHEN p_client_id IS NULL THEN 'a new API key'
                        ELSE pg_catalog.format('API key "%s"', p_client_id) END;
    s apikeys.scope;
    c cidr;
    v_most bigint;
    v_balance bigint;
BEGIN
    FOREACH s IN ARRAY apikeys_internal._expand_scopes(COALESCE(p_scopes, '{}'))
    LOOP
        IF NOT apikeys_internal._scopes_cover(v_held, s) THEN
            RAISE EXCEPTION 'API key "%" cannot give % the scope "%"', p_acting.client_id, v_what, s::text
                USING ERRCODE = '42501',
                      DETAIL = 'A key can only give scopes its own scopes grant.';
        END IF;
    END LOOP;
    IF p_expires_at IS NULL OR p_expires_at > p_acting.expires_at THEN
        RAISE EXCEPTION 'API key "%" cannot give % an expiry later than its own', p_acting.client_id, v_what
            USING ERRCODE = '42501',
                  DETAIL = pg_catalog.format('The acting key expires at %s.', p_acting.expires_at);
    END IF;
    IF p_db_role IS DISTINCT FROM p_acting.db_role THEN
        RAISE EXCEPTION 'API key "%" cannot give % another db_role', p_acting.client_id, v_what
            USING ERRCODE = '42501',
                  DETAIL = 'A key can only give its own db_role.';
    END IF;
    IF p_prefix IS DISTINCT FROM p_acting.prefix THEN
        RAISE EXCEPTION 'API key "%" cannot give % another prefix', p_acting.client_id, v_what
            USING ERRCODE = '42501',
                  DETAIL = pg_catalog.format('A key acts only on keys of its own prefix, %s.', p_acting.prefix),
                  HINT = 'An administrator issues keys with other prefixes (apikeys.create_key(..., prefix => ...)).';
    END IF;
    -- a missing window is one minute, as verification reads it (verify_lookup.c)
    IF p_acting.rate_limit IS NOT NULL AND
       (p_rate_limit IS NULL OR
        (p_rate_limit::numeric *
         COALESCE(apikeys_internal._interval_us(p_acting.rate_window), 60000000)::numeric)
          >
        (p_acting.rate_limit::numeric *
         COALESCE(apikeys_internal._interval_us(p_rate_window), 60000000)::numeric)) THEN
        RAISE EXCEPTION 'API key "%" cannot give % a higher rate limit than its own', p_acting.client_id, v_what
            USING ERRCODE = '42501',
                  DETAIL = pg_catalog.format('The acting key allows %s requests per %s.',
                                             p_acting.rate_limit, p_acting.rate_window);
    END IF;
    IF p_acting.allowed_cidrs IS NOT NULL THEN
        IF p_allowed_cidrs IS NULL THEN
            RAISE EXCEPTION 'API key "%" cannot give % a wider network restriction than its own', p_acting.client_id, v_what
                USING ERRCODE = '42501';
        END IF;
        c := apikeys_internal._cidrs_outside(p_allowed_cidrs, p_acting.allowed_cidrs);
        IF c IS NOT NULL THEN
            RAISE EXCEPTION 'API key "%" cannot give % a wider network restriction than its own', p_acting.client_id, v_what
                USING ERRCODE = '42501',
                      DETAIL = pg_catalog.format('The network %s is outside the acting key''s allowed_cidrs.', c);
        END IF;
    END IF;
    IF p_acting.credits IS NOT NULL THEN
        v_balance := apikeys_internal._credits_balance(p_acting.client_id);
        -- within its power: a key it acts on may hold up to a refill
        v_most := GREATEST(v_balance, COALESCE(p_acting.refill_amount, 0));
        IF p_credits IS NULL THEN
            RAISE EXCEPTION 'API key "%" cannot give % unlimited use', p_acting.client_id, v_what
                USING ERRCODE = '42501',
                      DETAIL = 'The acting key has credits, so every key it gives must have credits too.',
                      HINT = pg_catalog.format('Give credits of at most %s.', v_most);
        END IF;
        IF p_credits > v_most THEN
            RAISE EXCEPTION 'API key "%" cannot give % more credits than its own', p_acting.client_id, v_what
                USING ERRCODE = '42501',
                      DETAIL = pg_catalog.format('The acting key can hold at most %s credits.', v_most);
        END IF;
        -- no mint: a new key's balance comes from what the acting key has
        -- left now (a copy, not a transfer: docs/pending/probefix3.md)
        IF p_client_id IS NULL AND p_credits > v_balance THEN
            RAISE EXCEPTION 'API key "%" cannot give % more credits than it has left', p_acting.client_id, v_what
                USING ERRCODE = '42501',
                      DETAIL = pg_catalog.format('The acting key has %s credits left.', v_balance),
                      HINT = pg_catalog.format('Give credits of at most %s.', v_balance);
        END IF;
        -- no mint: a set balance replaces the live one at commit, so only
        -- 0 never gives back credits spent meanwhile
        IF p_client_id IS NOT NULL AND p_sets_balance AND
           p_credits <> 0 THEN
            RAISE EXCEPTION 'API key "%" cannot set the balance of %', p_acting.client_id, v_what
                USING ERRCODE = '42501',
                      DETAIL = 'A key with credits can only set a balance to 0: a balance set replaces the one left at commit, so any other value could give back credits already spent.',
                      HINT = 'Only an administrator raises a balance (apikeys.update_key, apikeys.add_credits).';
        END IF;
        IF p_refill_amount IS NOT NULL AND
           (p_acting.refill_amount IS NULL OR
            p_refill_amount > p_acting.refill_amount OR
            apikeys_internal._interval_us(p_refill_every) <
            apikeys_internal._interval_us(p_acting.refill_every)) THEN
            RAISE EXCEPTION 'API key "%" cannot give % a larger or faster refill than its own', p_acting.client_id, v_what
                USING ERRCODE = '42501',
                      DETAIL = CASE WHEN p_acting.refill_amount IS NULL
                                    THEN 'The acting key''s credits never refill.'
                                    ELSE pg_catalog.format('The acting key gets %s credits every %s.',
                                                           p_acting.refill_amount, p_acting.refill_every) END;
        END IF;
    END IF;
END
$$;
COMMENT ON FUNCTION apikeys_internal._check_grant IS 'Internal: the no-escalation rule of the self-service functions; 42501 when a key would get more than the acting key holds';
REVOKE ALL ON FUNCTION apikeys_internal._check_grant FROM PUBLIC;

CREATE FUNCTION apikeys.my_create_key(name text, scopes text[],
                                      expires_at timestamptz DEFAULT NULL,
                                      description text DEFAULT NULL,
                                      contact_email text DEFAULT NULL,
                                      contact_phone text DEFAULT NULL,
                                      allowed_cidrs cidr[] DEFAULT NULL,
                                      metadata jsonb DEFAULT '{}',
                                      handoff boolean DEFAULT false,
                                      credits bigint DEFAULT NULL,
                                      refill_amount bigint DEFAULT NULL,
                                      refill_every interval DEFAULT NULL)
    RETURNS apikeys.new_key
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys_internal._acting_row('apikeys:create');
    v_scopes apikeys.scope[];
    v_max_lifetime interval;
    v_expires timestamptz;
    v_cidrs cidr[];
    v_credits bigint;
    v_refill_amount bigint;
    v_refill_every interval;
    r apikeys.new_key;
BEGIN
    -- A handoff sends an e-mail and an SMS to addresses the caller chooses;
    -- through self-service that is a paid-message pump (create, delete,
    -- repeat).  Refused: an admin's create_key(handoff => true) does it.
    IF my_create_key.handoff THEN
        RAISE EXCEPTION 'a self-service key cannot start a handoff'
            USING ERRCODE = '0A000',
                  DETAIL = 'A handoff sends an e-mail and an SMS to the addresses given.',
                  HINT = 'Create the key without handoff and pass its secret on yourself, or ask an administrator for apikeys.create_key(..., handoff => true).';
    END IF;
    IF my_create_key.scopes IS NULL THEN
        RAISE EXCEPTION 'scopes cannot be NULL' USING ERRCODE = '22023',
            HINT = 'Give an empty array for a key that may do nothing yet.';
    END IF;
    v_scopes := apikeys_internal._grant_scopes(my_create_key.scopes);
    PERFORM apikeys_internal._check_settings(NULL, NULL, NULL, NULL,
                                    my_create_key.allowed_cidrs, NULL, NULL, NULL, NULL);
    -- defaults inherit from the acting key: never more than it has
    SELECT l.max_lifetime INTO v_max_lifetime FROM apikeys_internal._owner_limits(a.owner) l;
    v_expires := COALESCE(my_create_key.expires_at,
                          LEAST(a.expires_at, pg_catalog.now() + v_max_lifetime));
    v_cidrs := COALESCE(NULLIF(my_create_key.allowed_cidrs, '{}'::cidr[]), a.allowed_cidrs);
    -- credits: none given inherits the acting key's refill rule, and a
    -- balance of its refill_amount, at most what the acting key has left
    -- (or, without a refill, none: a key with credits must then give a
    -- balance, _check_grant says so)
    IF my_create_key.refill_amount IS NULL AND my_create_key.refill_every IS NULL THEN
        v_refill_amount := a.refill_amount;
        v_refill_every := a.refill_every;
    ELSE
        v_refill_amount := my_create_key.refill_amount;
        v_refill_every := my_create_key.refill_every;
    END IF;
    v_credits := COALESCE(my_create_key.credits,
                          CASE WHEN a.credits IS NULL OR v_refill_amount IS NULL
                               THEN v_refill_amount
                               ELSE LEAST(v_refill_amount,
                                          apikeys_internal._credits_balance(a.client_id)) END);
    PERFORM apikeys_internal._check_credits(v_credits, v_refill_amount, v_refill_every);
    PERFORM apikeys_internal._check_grant(a, NULL, v_scopes, v_expires, a.db_role,
                                 a.rate_limit, a.rate_window, v_cidrs, a.prefix,
                                 v_credits, v_refill_amount, v_refill_every);

    PERFORM apikeys_internal._acting_begin(a.client_id);
    r := apikeys.create_key(a.owner, my_create_key.name, v_scopes::text[], v_expires,
                            my_create_key.description, my_create_key.contact_email,
                            my_create_key.contact_phone, v_cidrs,
                            my_create_key.metadata, a.db_role::name, a.rate_limit,
                            COALESCE(a.rate_window, '1 minute'::interval), false,
                            v_credits, v_refill_amount, v_refill_every, a.prefix);
    PERFORM apikeys_internal._acting_begin(NULL);
    RETURN r;
END
$$;
COMMENT ON FUNCTION apikeys.my_create_key IS 'Self-service: the authenticated key (apikeys:create) issues a key for its own owner, never with more than it holds (scopes, expiry, limits, credits)';
REVOKE ALL ON FUNCTION apikeys.my_create_key FROM PUBLIC;
-- Tenant self-service: the my_* functions act only for the key
-- authenticated in the transaction, so the verifier (PostgREST) may call
-- them; _my_keys is the my_keys view's body.
GRANT EXECUTE ON FUNCTION apikeys.my_create_key TO apikeys_verifier, apikeys_admin;

CREATE FUNCTION apikeys.my_update_key(client_id text,
                                      name text DEFAULT NULL,
                                      description text DEFAULT NULL,
                                      scopes text[] DEFAULT NULL,
                                      expires_at timestamptz DEFAULT NULL,
                                      contact_email text DEFAULT NULL,
                                      contact_phone text DEFAULT NULL,
                                      allowed_cidrs cidr[] DEFAULT NULL,
                                      metadata jsonb DEFAULT NULL,
                                      credits bigint DEFAULT NULL,
                                      refill_amount bigint DEFAULT NULL,
                                      refill_every interval DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys_internal._acting_row('apikeys:update');
    t apikeys.keys := apikeys_internal._target_row(a, my_update_key.client_id, 'update');
    v_scopes apikeys.scope[];
BEGIN
    v_scopes := apikeys_internal._grant_scopes(my_update_key.scopes);
    PERFORM apikeys_internal._check_settings(NULL, NULL, NULL, NULL,
                                    my_update_key.allowed_cidrs, NULL, NULL, NULL, NULL);
    -- the key as it will be afterwards must be within the acting key's power
    PERFORM apikeys_internal._check_grant(a, t.client_id, COALESCE(v_scopes, t.scopes),
        COALESCE(my_update_key.expires_at, t.expires_at), t.db_role,
        t.rate_limit, t.rate_window,
        CASE WHEN my_update_key.allowed_cidrs IS NULL THEN t.allowed_cidrs
             ELSE NULLIF(my_update_key.allowed_cidrs, '{}'::cidr[]) END, t.prefix,
        COALESCE(my_update_key.credits, apikeys_internal._credits_balance(t.client_id),
                 my_update_key.refill_amount),
        COALESCE(my_update_key.refill_amount, t.refill_amount),
        COALESCE(my_update_key.refill_every, t.refill_every),
        my_update_key.credits IS NOT NULL);

    PERFORM apikeys_internal._acting_begin(a.client_id);
    PERFORM apikeys.update_key(t.client_id, my_update_key.name, my_update_key.description,
                               v_scopes::text[], my_update_key.expires_at,
                               my_update_key.contact_email, my_update_key.contact_phone,
                               my_update_key.allowed_cidrs, my_update_key.metadata,
                               credits => my_update_key.credits,
                               refill_amount => my_update_key.refill_amount,
                               refill_every => my_update_key.refill_every);
    PERFORM apikeys_internal._acting_begin(NULL);
END
$$;
COMMENT ON FUNCTION apikeys.my_update_key IS 'Self-service: the authenticated key (apikeys:update) changes a key of its own owner, never beyond what it holds';
REVOKE ALL ON FUNCTION apikeys.my_update_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.my_update_key TO apikeys_verifier, apikeys_admin;

-- my_remove_credits: unlimited use is within the power only of a key that
-- has it (_check_grant with no credits): a key with credits can never
-- remove credits, from another key or itself.
CREATE FUNCTION apikeys.my_remove_credits(client_id text)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys_internal._acting_row('apikeys:update');
    t apikeys.keys := apikeys_internal._target_row(a, my_remove_credits.client_id, 'update');
    r boolean;
BEGIN
    -- the key as it will be afterwards must be within the acting key's power
    PERFORM apikeys_internal._check_grant(a, t.client_id, t.scopes, t.expires_at, t.db_role,
        t.rate_limit, t.rate_window, t.allowed_cidrs, t.prefix, NULL, NULL, NULL);
    PERFORM apikeys_internal._acting_begin(a.client_id);
    r := apikeys.remove_credits(t.client_id);
    PERFORM apikeys_internal._acting_begin(NULL);
    RETURN r;
END
$$;
COMMENT ON FUNCTION apikeys.my_remove_credits IS 'Self-service: the authenticated key (apikeys:update), itself without credits, removes the credits of a key of its own owner';
REVOKE ALL ON FUNCTION apikeys.my_remove_credits FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.my_remove_credits TO apikeys_verifier, apikeys_admin;

CREATE FUNCTION apikeys.my_rotate_key(client_id text, grace interval DEFAULT '0')
    RETURNS apikeys.new_key
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys_internal._acting_row('apikeys:update');
    -- the acting key learns the new secret: _target_row checks the key is
    -- within its power
    t apikeys.keys := apikeys_internal._target_row(a, my_rotate_key.client_id, 'rotate');
    r apikeys.new_key;
BEGIN
    PERFORM apikeys_internal._acting_begin(a.client_id);
    r := apikeys.rotate_key(t.client_id, my_rotate_key.grace);
    PERFORM apikeys_internal._acting_begin(NULL);
    RETURN r;
END
$$;
COMMENT ON FUNCTION apikeys.my_rotate_key IS 'Self-service: the authenticated key (apikeys:update) rotates a key of its own owner that is within its own power';
REVOKE ALL ON FUNCTION apikeys.my_rotate_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.my_rotate_key TO apikeys_verifier, apikeys_admin;

CREATE FUNCTION apikeys.my_disable_key(client_id text, reason text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys_internal._acting_row('apikeys:update');
    t apikeys.keys := apikeys_internal._target_row(a, my_disable_key.client_id, 'disable');
BEGIN
    PERFORM apikeys_internal._acting_begin(a.client_id);
    PERFORM apikeys.disable_key(t.client_id, my_disable_key.reason);
    PERFORM apikeys_internal._acting_begin(NULL);
END
$$;
COMMENT ON FUNCTION apikeys.my_disable_key IS 'Self-service: the authenticated key (apikeys:update) disables a key of its own owner';
REVOKE ALL ON FUNCTION apikeys.my_disable_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.my_disable_key TO apikeys_verifier, apikeys_admin;

CREATE FUNCTION apikeys.my_enable_key(client_id text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys_internal._acting_row('apikeys:update');
    t apikeys.keys := apikeys_internal._target_row(a, my_enable_key.client_id, 'enable');
BEGIN
    PERFORM apikeys_internal._acting_begin(a.client_id);
    PERFORM apikeys.enable_key(t.client_id);
    PERFORM apikeys_internal._acting_begin(NULL);
END
$$;
COMMENT ON FUNCTION apikeys.my_enable_key IS 'Self-service: the authenticated key (apikeys:update) enables a key of its own owner';
REVOKE ALL ON FUNCTION apikeys.my_enable_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.my_enable_key TO apikeys_verifier, apikeys_admin;

CREATE FUNCTION apikeys.my_revoke_key(client_id text, reason text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys_internal._acting_row('apikeys:delete');
    t apikeys.keys := apikeys_internal._target_row(a, my_revoke_key.client_id, 'revoke');
BEGIN
    PERFORM apikeys_internal._acting_begin(a.client_id);
    PERFORM apikeys.revoke_key(t.client_id, my_revoke_key.reason);
    PERFORM apikeys_internal._acting_begin(NULL);
END
$$;
COMMENT ON FUNCTION apikeys.my_revoke_key IS 'Self-service: the authenticated key (apikeys:delete) revokes a key of its own owner';
REVOKE ALL ON FUNCTION apikeys.my_revoke_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.my_revoke_key TO apikeys_verifier, apikeys_admin;

CREATE FUNCTION apikeys.my_delete_key(client_id text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys_internal._acting_row('apikeys:delete');
    t apikeys.keys := apikeys_internal._target_row(a, my_delete_key.client_id, 'delete');
BEGIN
    PERFORM apikeys_internal._acting_begin(a.client_id);
    PERFORM apikeys.delete_key(t.client_id);
    PERFORM apikeys_internal._acting_begin(NULL);
END
$$;
COMMENT ON FUNCTION apikeys.my_delete_key IS 'Self-service: the authenticated key (apikeys:delete) deletes a key of its own owner';
REVOKE ALL ON FUNCTION apikeys.my_delete_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.my_delete_key TO apikeys_verifier, apikeys_admin;

-- The authenticated key's own owner's keys, for tenant self-service
-- (granted to apikeys_verifier): key_list's columns, only while the key
-- authenticated in this transaction is live and holds apikeys:read.
-- _my_keys reads key_list as the extension owner; the view over it is what
-- callers use.
CREATE FUNCTION apikeys_internal._my_keys()
    RETURNS SETOF apikeys.key_list
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys_internal._acting_row('apikeys:read', false);
BEGIN
    IF a.client_id IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT l.* FROM apikeys.key_list l
                  WHERE l.owner = a.owner
                  ORDER BY l.created_at, l.client_id;
END
$$;
COMMENT ON FUNCTION apikeys_internal._my_keys IS 'Internal: the rows of my_keys, read as the extension owner';
REVOKE ALL ON FUNCTION apikeys_internal._my_keys FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys_internal._my_keys TO apikeys_verifier, apikeys_admin;

CREATE VIEW apikeys.my_keys AS
SELECT * FROM apikeys_internal._my_keys();
COMMENT ON VIEW apikeys.my_keys IS 'Self-service: key_list for the authenticated key''s owner; empty unless that key is live and holds apikeys:read';
REVOKE ALL ON TABLE apikeys.my_keys FROM PUBLIC;
GRANT SELECT ON apikeys.my_keys TO apikeys_verifier, apikeys_admin;
