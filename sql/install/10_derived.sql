-- sql/install/10_derived.sql: derived tokens (src/verify_derived.c, src/admin_derive.c)
--
-- A section of the install script: make concatenates sql/install/*.sql
-- in name order into apikeys--<version>.sql.  Each object is followed by
-- its comment, privileges and settings.

-- The secret behind the signing key of derived tokens: one row of 32
-- random bytes, made here.  It replicates (standbys check and derive
-- tokens); nobody but the extension's owner reads it (no grant, RLS on; C
-- reads it without SQL).  Not in pg_extension_config_dump on purpose: a
-- restore makes a new secret, so a dump, which holds the keys' hashes,
-- never holds what signs tokens for them (derived tokens live an hour at
-- most; none survives a restore).
CREATE TABLE apikeys.derived_signing_key (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    secret  bytea NOT NULL CHECK (pg_catalog.octet_length(secret) OPERATOR(pg_catalog.=) 32)
);
COMMENT ON TABLE apikeys.derived_signing_key IS 'The secret the signing key of derived tokens is made from (with apikeys.pepper); read by the extension''s owner only, not dumped';
REVOKE ALL ON TABLE apikeys.derived_signing_key FROM PUBLIC;
ALTER TABLE apikeys.derived_signing_key ENABLE ROW LEVEL SECURITY;

CREATE FUNCTION apikeys_internal._new_signing_secret() RETURNS bytea
    AS 'MODULE_PATHNAME', 'apikeys_new_signing_secret'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._new_signing_secret IS 'Internal: 32 bytes from pg_strong_random(), the secret of apikeys.derived_signing_key';
REVOKE ALL ON FUNCTION apikeys_internal._new_signing_secret FROM PUBLIC;

-- Each backend keeps the signing key it made: any change of the row (or
-- TRUNCATE) sends a relcache invalidation that makes every backend, on
-- standbys too, read it again.  ENABLE ALWAYS: also under replication apply.
CREATE FUNCTION apikeys_internal._signing_key_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'apikeys_signing_key_changed'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._signing_key_changed IS 'Internal: makes every backend read the signing secret of derived tokens again';
REVOKE ALL ON FUNCTION apikeys_internal._signing_key_changed FROM PUBLIC;
CREATE TRIGGER derived_signing_key_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikeys.derived_signing_key
    FOR EACH STATEMENT EXECUTE FUNCTION apikeys_internal._signing_key_changed();
ALTER TABLE apikeys.derived_signing_key ENABLE ALWAYS TRIGGER derived_signing_key_changed;

INSERT INTO apikeys.derived_signing_key (secret) VALUES (apikeys_internal._new_signing_secret());

CREATE FUNCTION apikeys.derive_token(scopes text[] DEFAULT NULL,
                                     ttl interval DEFAULT '15 minutes')
    RETURNS text
    AS 'MODULE_PATHNAME', 'apikeys_derive_token'
    LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys.derive_token IS 'For the key authenticated in this transaction: a token that verifies until min(now + ttl, the key''s expiry) with those of its scopes (NULL: all), dies with its key, and is stored nowhere; ttl at most apikeys.max_derived_ttl';
REVOKE ALL ON FUNCTION apikeys.derive_token FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.derive_token TO apikeys_verifier, apikeys_admin;

CREATE FUNCTION apikeys_internal._current_derived() RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_current_derived'
    LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikeys_internal._current_derived IS 'Internal: did a derived token authenticate this transaction (NULL: nothing did)?';
REVOKE ALL ON FUNCTION apikeys_internal._current_derived FROM PUBLIC;
