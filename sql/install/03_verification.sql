-- sql/install/03_verification.sql: verify, authenticate, the transaction context and PostgREST
--
-- A section of the install script: make concatenates sql/install/*.sql
-- in name order into apikeys--<version>.sql.  Each object is followed by
-- its comment, privileges and settings.

-- What verify, verify_client and authenticate return.
CREATE TYPE apikeys.verification AS (
    valid           boolean,
    code            text,
    client_id       text,
    owner           text,
    scopes          text[],
    expires_at      timestamptz,
    retry_after     integer,
    http_status     integer,        -- what an HTTP API should answer: 200, 401, 403 or 429
    name            text,           -- the key's name and metadata, once its secret matched
    metadata        jsonb,
    rate_limit      integer,        -- the key's own rate limit (NULL: none) ...
    rate_remaining  integer,        -- ... requests left in its window after this one ...
    rate_reset      timestamptz,    -- ... and when the window ends (NULL unless consulted)
    credits_remaining bigint,       -- the key's balance after this verification (NULL: no credits)
    derived         boolean         -- the token was derived from a key (derive_token)
);
COMMENT ON TYPE apikeys.verification IS 'Outcome of verify/verify_client/authenticate: valid, code, the HTTP status to answer, the key''s identity, name and metadata once its secret matched, its rate-limit window and its credits';

-- Internal: the key a self-service function (my_*) acts for, named in the
-- audit rows of its changes (detail.by_key); cleared at transaction end.
CREATE FUNCTION apikeys_internal._acting_begin(client_id text) RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_acting_begin'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._acting_begin IS 'Internal: names the key a self-service change is made for (audit detail.by_key); NULL forgets it';
REVOKE ALL ON FUNCTION apikeys_internal._acting_begin FROM PUBLIC;

CREATE FUNCTION apikeys_internal._acting_key() RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_acting_key'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._acting_key IS 'Internal: the key named by _acting_begin in this transaction, or NULL';
REVOKE ALL ON FUNCTION apikeys_internal._acting_key FROM PUBLIC;

CREATE FUNCTION apikeys.token_client_id(token text) RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_token_client_id'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys.token_client_id IS 'The client ID inside a well-formed token (checksum checked), or NULL';
REVOKE ALL ON FUNCTION apikeys.token_client_id FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.token_client_id TO PUBLIC;

CREATE FUNCTION apikeys.verify(token text, required_scope text DEFAULT NULL,
                               client_ip inet DEFAULT NULL, cost integer DEFAULT 1)
    RETURNS apikeys.verification
    AS 'MODULE_PATHNAME', 'apikeys_verify'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikeys.verify IS 'Checks a token (and optionally a scope and client address) and takes cost credits from a key that has credits; answers a code, never raises for a bad token';
REVOKE ALL ON FUNCTION apikeys.verify FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.verify TO apikeys_verifier, apikeys_admin;

CREATE FUNCTION apikeys.verify_client(client_id text, client_secret text,
                                      required_scope text DEFAULT NULL,
                                      client_ip inet DEFAULT NULL,
                                      cost integer DEFAULT 1)
    RETURNS apikeys.verification
    AS 'MODULE_PATHNAME', 'apikeys_verify_client'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikeys.verify_client IS 'Like verify, for a client ID and client secret presented separately';
REVOKE ALL ON FUNCTION apikeys.verify_client FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.verify_client TO apikeys_verifier, apikeys_admin;

CREATE FUNCTION apikeys.authenticate(token text, required_scope text DEFAULT NULL,
                                     client_ip inet DEFAULT NULL)
    RETURNS apikeys.verification
    AS 'MODULE_PATHNAME', 'apikeys_authenticate'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys.authenticate IS 'Verifies a token and makes it this transaction''s identity; raises 28000/42501/54000 on failure';
REVOKE ALL ON FUNCTION apikeys.authenticate FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.authenticate TO apikeys_verifier, apikeys_admin;

CREATE FUNCTION apikeys.current_client_id() RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_current_client_id'
    LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikeys.current_client_id IS 'Client ID authenticated in this transaction, or NULL';
REVOKE ALL ON FUNCTION apikeys.current_client_id FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.current_client_id TO PUBLIC;

CREATE FUNCTION apikeys.current_owner() RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_current_owner'
    LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikeys.current_owner IS 'Owner of the key authenticated in this transaction, or NULL';
REVOKE ALL ON FUNCTION apikeys.current_owner FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.current_owner TO PUBLIC;

CREATE FUNCTION apikeys.current_scopes() RETURNS text[]
    AS 'MODULE_PATHNAME', 'apikeys_current_scopes'
    LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikeys.current_scopes IS 'Scopes of the key authenticated in this transaction, or NULL';
REVOKE ALL ON FUNCTION apikeys.current_scopes FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.current_scopes TO PUBLIC;

CREATE FUNCTION apikeys.has_scope(scope text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_has_scope'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikeys.has_scope IS 'Does the key authenticated in this transaction hold this scope?';
REVOKE ALL ON FUNCTION apikeys.has_scope FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.has_scope TO PUBLIC;

CREATE FUNCTION apikeys.require_scope(scope text) RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_require_scope'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikeys.require_scope IS 'Raises 42501 unless the key authenticated in this transaction holds this scope';
REVOKE ALL ON FUNCTION apikeys.require_scope FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.require_scope TO PUBLIC;

CREATE FUNCTION apikeys.field_allowed(resource text, field text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_field_allowed'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikeys.field_allowed IS 'May the key authenticated in this transaction read this field of this resource?';
REVOKE ALL ON FUNCTION apikeys.field_allowed FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.field_allowed TO PUBLIC;

-- SECURITY INVOKER on purpose: it switches to the key's db_role.
CREATE FUNCTION apikeys.pre_request() RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_pre_request'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys.pre_request() IS 'PostgREST db-pre-request: authenticates x-api-key / apikey / Basic, raises PGRST with the HTTP status on failure';
REVOKE ALL ON FUNCTION apikeys.pre_request() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.pre_request() TO apikeys_verifier, apikeys_admin;

-- The same, also requiring a scope of a presented key (403 without it).
CREATE FUNCTION apikeys.pre_request(required_scope text) RETURNS void
    AS 'MODULE_PATHNAME', 'apikeys_pre_request'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys.pre_request(text) IS 'Like pre_request(), and a presented key must also hold required_scope (else PGRST 403); for a db-pre-request wrapper that maps method and path to a scope';
REVOKE ALL ON FUNCTION apikeys.pre_request(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.pre_request(text) TO apikeys_verifier, apikeys_admin;
