-- sql/install/07_selfservice.sql: tenant self-service: the my_* functions
--
-- A section of the install script: make concatenates sql/install/*.sql
-- in name order into apikeys--<version>.sql.  Each object is followed by
-- its comment, privileges and settings.

-- Tenant self-service (apikeys_verifier): keys that manage their owner's keys
--
-- The my_* functions act for the key authenticated in this transaction
-- (authenticate or pre_request).  Each one re-reads that key's row and
-- share-locks it (_acting_row), so a key revoked, disabled or stripped of
-- its apikeys:* scope earlier in the same transaction, or by a transaction
-- that committed meanwhile, can do nothing; a revoke racing a my_* call
-- waits for it (or makes it wait and then refuses it).  The rule that a
-- key never grants more than it holds is checked in one place,
-- _check_grant, and the work itself is done by the admin functions, so
-- the owner's cap and policies apply unchanged.

-- _acting_row: the authenticated key's current row, if it is live and its
-- scopes (sets expanded) grant p_scope; else 42501.  With p_raise false
-- (for reading, my_keys): NULL instead of the error, and no row lock.
CREATE FUNCTION apikeys._acting_row(p_scope text, p_raise boolean DEFAULT true)
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
    IF p_raise THEN
        -- a change follows: serialise with a concurrent revoke of this key
        SELECT * INTO k FROM apikeys.keys a
         WHERE a.client_id OPERATOR(pg_catalog.=) v_cid
         FOR SHARE;
    ELSE
        -- reading only (my_keys): no lock, so it works in READ ONLY
        -- transactions (PostgREST's GET) and on a standby
        SELECT * INTO k FROM apikeys.keys a
         WHERE a.client_id OPERATOR(pg_catalog.=) v_cid;
    END IF;
    IF NOT FOUND OR k.revoked_at IS NOT NULL OR k.disabled_at IS NOT NULL OR
       k.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now() OR
       NOT apikeys.scopes_grant(apikeys._expand_scopes(k.scopes), p_scope::apikeys.scope) THEN
        IF NOT p_raise THEN RETURN NULL; END IF;
        RAISE EXCEPTION 'API key "%" may not manage keys', v_cid
            USING ERRCODE = '42501',
                  DETAIL = pg_catalog.format('This needs a live key holding the scope %s.', p_scope);
    END IF;
    RETURN k;
END
$$;
COMMENT ON FUNCTION apikeys._acting_row IS 'Internal: the authenticated key''s current row if it is live and holds the scope; 42501 (or NULL) otherwise';
REVOKE ALL ON FUNCTION apikeys._acting_row FROM PUBLIC;

-- _target_row: a key of the acting key's owner, locked for the change; a
-- key of another owner is 42704, exactly as if it did not exist.
CREATE FUNCTION apikeys._target_row(p_acting apikeys.keys, p_client_id text)
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
     WHERE k.client_id OPERATOR(pg_catalog.=) p_client_id
       AND k.owner OPERATOR(pg_catalog.=) p_acting.owner
     FOR UPDATE;
    IF NOT FOUND THEN
        IF apikeys.token_client_id(p_client_id) IS NOT NULL THEN
            RAISE EXCEPTION 'a token was given where a client ID is expected'
                USING ERRCODE = '22023',
                      HINT = 'Pass the client ID (the token up to the secret), never the token itself.';
        END IF;
        RAISE EXCEPTION 'API key "%" does not exist', p_client_id
            USING ERRCODE = '42704';
    END IF;
    RETURN t;
END
$$;
COMMENT ON FUNCTION apikeys._target_row IS 'Internal: a key of the acting key''s owner, locked; 42704 for any other';
REVOKE ALL ON FUNCTION apikeys._target_row FROM PUBLIC;

-- _check_grant: the no-escalation rule, in one place.  A key (p_acting)
-- may give a key (new, or changed, or rotated so that it learns the
-- secret) only what it holds itself:
--   scopes       each one covered by the acting key's scopes, both sides
--                with '@set' expanded, matched by the scope type itself
--                (_scopes_cover: so apikeys:* or * only from a key holding
--                it, and a field list only narrower than the acting key's;
--                a field-less scope only from a field-less grant)
--   expiry       not later than the acting key's
--   db_role      the acting key's own (NULL too: no role switch)
--   rate limit   none only if the acting key has none; else at most the
--                acting key's rate (limit per window length)
--   networks     none only if the acting key has none; else each network
--                inside one of the acting key's
-- Anything else: 42501.
CREATE FUNCTION apikeys._check_grant(p_acting apikeys.keys, p_client_id text,
                                     p_scopes apikeys.scope[], p_expires_at timestamptz,
                                     p_db_role text, p_rate_limit integer,
                                     p_rate_window interval, p_allowed_cidrs cidr[])
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_held apikeys.scope[] := apikeys._expand_scopes(p_acting.scopes);
    v_what text := CASE WHEN p_client_id IS NULL THEN 'a new API key'
                        ELSE pg_catalog.format('API key "%s"', p_client_id) END;
    s apikeys.scope;
    c cidr;
BEGIN
    FOREACH s IN ARRAY apikeys._expand_scopes(COALESCE(p_scopes, '{}'))
    LOOP
        IF NOT apikeys._scopes_cover(v_held, s) THEN
            RAISE EXCEPTION 'API key "%" cannot give % the scope "%"', p_acting.client_id, v_what, s::text
                USING ERRCODE = '42501',
                      DETAIL = 'A key can only give scopes its own scopes grant.';
        END IF;
    END LOOP;
    IF p_expires_at OPERATOR(pg_catalog.>) p_acting.expires_at THEN
        RAISE EXCEPTION 'API key "%" cannot give % an expiry later than its own', p_acting.client_id, v_what
            USING ERRCODE = '42501',
                  DETAIL = pg_catalog.format('The acting key expires at %s.', p_acting.expires_at);
    END IF;
    IF p_db_role IS DISTINCT FROM p_acting.db_role THEN
        RAISE EXCEPTION 'API key "%" cannot give % another db_role', p_acting.client_id, v_what
            USING ERRCODE = '42501',
                  DETAIL = 'A key can only give its own db_role.';
    END IF;
    IF p_acting.rate_limit IS NOT NULL AND
       (p_rate_limit IS NULL OR
        (p_rate_limit::numeric OPERATOR(pg_catalog.*) pg_catalog.date_part('epoch', p_acting.rate_window)::numeric)
          OPERATOR(pg_catalog.>)
        (p_acting.rate_limit::numeric OPERATOR(pg_catalog.*) pg_catalog.date_part('epoch', p_rate_window)::numeric)) THEN
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
        FOREACH c IN ARRAY p_allowed_cidrs
        LOOP
            IF NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(p_acting.allowed_cidrs) a(n)
                            WHERE c OPERATOR(pg_catalog.<<=) a.n) THEN
                RAISE EXCEPTION 'API key "%" cannot give % a wider network restriction than its own', p_acting.client_id, v_what
                    USING ERRCODE = '42501',
                          DETAIL = pg_catalog.format('The network %s is outside the acting key''s allowed_cidrs.', c);
            END IF;
        END LOOP;
    END IF;
END
$$;
COMMENT ON FUNCTION apikeys._check_grant IS 'Internal: the no-escalation rule of the self-service functions; 42501 when a key would get more than the acting key holds';
REVOKE ALL ON FUNCTION apikeys._check_grant FROM PUBLIC;

CREATE FUNCTION apikeys.my_create_key(name text, scopes text[],
                                      expires_at timestamptz DEFAULT NULL,
                                      description text DEFAULT NULL,
                                      contact_email text DEFAULT NULL,
                                      contact_phone text DEFAULT NULL,
                                      allowed_cidrs cidr[] DEFAULT NULL,
                                      metadata jsonb DEFAULT '{}',
                                      handoff boolean DEFAULT false)
    RETURNS apikeys.new_key
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys._acting_row('apikeys:create');
    v_scopes apikeys.scope[];
    v_max_lifetime interval;
    v_expires timestamptz;
    v_cidrs cidr[];
    r apikeys.new_key;
BEGIN
    IF my_create_key.scopes IS NULL THEN
        RAISE EXCEPTION 'scopes cannot be NULL' USING ERRCODE = '22023',
            HINT = 'Give an empty array for a key that may do nothing yet.';
    END IF;
    v_scopes := apikeys._check_settings(my_create_key.scopes, NULL, NULL, NULL,
                    my_create_key.allowed_cidrs, NULL, NULL, NULL, NULL);
    -- defaults inherit from the acting key: never more than it has
    SELECT l.max_lifetime INTO v_max_lifetime FROM apikeys._owner_limits(a.owner) l;
    v_expires := COALESCE(my_create_key.expires_at,
                          LEAST(a.expires_at, pg_catalog.now() OPERATOR(pg_catalog.+) v_max_lifetime));
    v_cidrs := COALESCE(NULLIF(my_create_key.allowed_cidrs, '{}'::cidr[]), a.allowed_cidrs);
    PERFORM apikeys._check_grant(a, NULL, v_scopes, v_expires, a.db_role,
                                 a.rate_limit, a.rate_window, v_cidrs);

    PERFORM apikeys._acting_begin(a.client_id);
    r := apikeys.create_key(a.owner, my_create_key.name, my_create_key.scopes, v_expires,
                            my_create_key.description, my_create_key.contact_email,
                            my_create_key.contact_phone, v_cidrs,
                            my_create_key.metadata, a.db_role::name, a.rate_limit,
                            COALESCE(a.rate_window, '1 minute'::interval),
                            COALESCE(my_create_key.handoff, false));
    PERFORM apikeys._acting_begin(NULL);
    RETURN r;
END
$$;
COMMENT ON FUNCTION apikeys.my_create_key IS 'Self-service: the authenticated key (apikeys:create) issues a key for its own owner, never with more than it holds';
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
                                      metadata jsonb DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys._acting_row('apikeys:update');
    t apikeys.keys := apikeys._target_row(a, my_update_key.client_id);
    v_scopes apikeys.scope[];
BEGIN
    v_scopes := apikeys._check_settings(my_update_key.scopes, NULL, NULL, NULL,
                    my_update_key.allowed_cidrs, NULL, NULL, NULL, NULL);
    -- the key as it will be afterwards must be within the acting key's power
    PERFORM apikeys._check_grant(a, t.client_id, COALESCE(v_scopes, t.scopes),
        COALESCE(my_update_key.expires_at, t.expires_at), t.db_role,
        t.rate_limit, t.rate_window,
        CASE WHEN my_update_key.allowed_cidrs IS NULL THEN t.allowed_cidrs
             ELSE NULLIF(my_update_key.allowed_cidrs, '{}'::cidr[]) END);

    PERFORM apikeys._acting_begin(a.client_id);
    PERFORM apikeys.update_key(t.client_id, my_update_key.name, my_update_key.description,
                               my_update_key.scopes, my_update_key.expires_at,
                               my_update_key.contact_email, my_update_key.contact_phone,
                               my_update_key.allowed_cidrs, my_update_key.metadata);
    PERFORM apikeys._acting_begin(NULL);
END
$$;
COMMENT ON FUNCTION apikeys.my_update_key IS 'Self-service: the authenticated key (apikeys:update) changes a key of its own owner, never beyond what it holds';
REVOKE ALL ON FUNCTION apikeys.my_update_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.my_update_key TO apikeys_verifier, apikeys_admin;

CREATE FUNCTION apikeys.my_rotate_key(client_id text, grace interval DEFAULT '0')
    RETURNS apikeys.new_key
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys._acting_row('apikeys:update');
    t apikeys.keys := apikeys._target_row(a, my_rotate_key.client_id);
    r apikeys.new_key;
BEGIN
    -- the acting key learns the new secret: the key must be within its power
    PERFORM apikeys._check_grant(a, t.client_id, t.scopes, t.expires_at, t.db_role,
                                 t.rate_limit, t.rate_window, t.allowed_cidrs);
    PERFORM apikeys._acting_begin(a.client_id);
    r := apikeys.rotate_key(t.client_id, my_rotate_key.grace);
    PERFORM apikeys._acting_begin(NULL);
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
    a apikeys.keys := apikeys._acting_row('apikeys:update');
    t apikeys.keys := apikeys._target_row(a, my_disable_key.client_id);
BEGIN
    PERFORM apikeys._acting_begin(a.client_id);
    PERFORM apikeys.disable_key(t.client_id, my_disable_key.reason);
    PERFORM apikeys._acting_begin(NULL);
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
    a apikeys.keys := apikeys._acting_row('apikeys:update');
    t apikeys.keys := apikeys._target_row(a, my_enable_key.client_id);
BEGIN
    PERFORM apikeys._acting_begin(a.client_id);
    PERFORM apikeys.enable_key(t.client_id);
    PERFORM apikeys._acting_begin(NULL);
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
    a apikeys.keys := apikeys._acting_row('apikeys:delete');
    t apikeys.keys := apikeys._target_row(a, my_revoke_key.client_id);
BEGIN
    PERFORM apikeys._acting_begin(a.client_id);
    PERFORM apikeys.revoke_key(t.client_id, my_revoke_key.reason);
    PERFORM apikeys._acting_begin(NULL);
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
    a apikeys.keys := apikeys._acting_row('apikeys:delete');
    t apikeys.keys := apikeys._target_row(a, my_delete_key.client_id);
BEGIN
    PERFORM apikeys._acting_begin(a.client_id);
    PERFORM apikeys.delete_key(t.client_id);
    PERFORM apikeys._acting_begin(NULL);
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
CREATE FUNCTION apikeys._my_keys()
    RETURNS SETOF apikeys.key_list
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a apikeys.keys := apikeys._acting_row('apikeys:read', false);
BEGIN
    IF a.client_id IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT l.* FROM apikeys.key_list l
                  WHERE l.owner OPERATOR(pg_catalog.=) a.owner
                  ORDER BY l.created_at, l.client_id;
END
$$;
COMMENT ON FUNCTION apikeys._my_keys IS 'Internal: the rows of my_keys, read as the extension owner';
REVOKE ALL ON FUNCTION apikeys._my_keys FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys._my_keys TO apikeys_verifier, apikeys_admin;

CREATE VIEW apikeys.my_keys AS
SELECT * FROM apikeys._my_keys();
COMMENT ON VIEW apikeys.my_keys IS 'Self-service: key_list for the authenticated key''s owner; empty unless that key is live and holds apikeys:read';
REVOKE ALL ON TABLE apikeys.my_keys FROM PUBLIC;
GRANT SELECT ON apikeys.my_keys TO apikeys_verifier, apikeys_admin;
