-- sql/install/01_scopes.sql: the apikeys.scope type, its operators, and named scope sets
--
-- A section of the install script: make concatenates sql/install/*.sql
-- in name order into apikeys--<version>.sql.  Each object is followed by
-- its comment, privileges and settings.

-- apikeys.scope: a validated permission string (see src/scope.c)
CREATE TYPE apikeys.scope;

CREATE FUNCTION apikeys.scope_in(cstring) RETURNS apikeys.scope
    AS 'MODULE_PATHNAME', 'apikeys_scope_in'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys.scope_in IS 'Input function of apikeys.scope (validates the grammar, SQLSTATE 22023)';
REVOKE ALL ON FUNCTION apikeys.scope_in FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.scope_in TO PUBLIC;

CREATE FUNCTION apikeys.scope_out(apikeys.scope) RETURNS cstring
    AS 'MODULE_PATHNAME', 'apikeys_scope_out'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys.scope_out IS 'Output function of apikeys.scope';
REVOKE ALL ON FUNCTION apikeys.scope_out FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.scope_out TO PUBLIC;

CREATE TYPE apikeys.scope (
    INPUT = apikeys.scope_in,
    OUTPUT = apikeys.scope_out,
    LIKE = pg_catalog.text,
    CATEGORY = 'S',
    COLLATABLE = false
);
COMMENT ON TYPE apikeys.scope IS 'A permission: resource:action, resource:action(field, ...), resource:*, * or @set';

-- A scope is stored as its canonical text, so text is binary-compatible
-- one way; the other way must pass the grammar.
CREATE CAST (apikeys.scope AS pg_catalog.text) WITHOUT FUNCTION AS IMPLICIT;
COMMENT ON CAST (apikeys.scope AS pg_catalog.text) IS 'A scope reads as its canonical text';

CREATE CAST (pg_catalog.text AS apikeys.scope) WITH INOUT AS ASSIGNMENT;
COMMENT ON CAST (pg_catalog.text AS apikeys.scope) IS 'Text becomes a scope through the grammar (SQLSTATE 22023 when invalid)';

-- Bytewise (scopes are canonical), so no collation is needed: the built-in
-- texteq would fail for lack of one, as the type is not collatable.
CREATE FUNCTION apikeys.scope_eq(apikeys.scope, apikeys.scope) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scope_eq'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys.scope_eq IS 'Equality of canonical scopes';
REVOKE ALL ON FUNCTION apikeys.scope_eq FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.scope_eq TO PUBLIC;

CREATE FUNCTION apikeys.scope_ne(apikeys.scope, apikeys.scope) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scope_ne'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys.scope_ne IS 'Inequality of canonical scopes';
REVOKE ALL ON FUNCTION apikeys.scope_ne FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.scope_ne TO PUBLIC;

CREATE OPERATOR apikeys.= (
    LEFTARG = apikeys.scope, RIGHTARG = apikeys.scope,
    FUNCTION = apikeys.scope_eq,
    COMMUTATOR = OPERATOR(apikeys.=), NEGATOR = OPERATOR(apikeys.<>),
    RESTRICT = eqsel, JOIN = eqjoinsel
);
COMMENT ON OPERATOR apikeys.= (apikeys.scope, apikeys.scope) IS 'Equality of canonical scopes';

CREATE OPERATOR apikeys.<> (
    LEFTARG = apikeys.scope, RIGHTARG = apikeys.scope,
    FUNCTION = apikeys.scope_ne,
    COMMUTATOR = OPERATOR(apikeys.<>), NEGATOR = OPERATOR(apikeys.=),
    RESTRICT = neqsel, JOIN = neqjoinsel
);
COMMENT ON OPERATOR apikeys.<> (apikeys.scope, apikeys.scope) IS 'Inequality of canonical scopes';

-- A total bytewise order and a hash, so scopes and scope[] columns can be
-- sorted, grouped, indexed and ANALYZEd (autovacuum's ANALYZE of
-- apikeys.keys needs them: without an operator class of its own the type
-- would borrow text's, which demands a collation it does not have).
CREATE FUNCTION apikeys.scope_cmp(apikeys.scope, apikeys.scope) RETURNS integer
    AS 'MODULE_PATHNAME', 'apikeys_scope_cmp'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys.scope_cmp IS 'Bytewise order of canonical scopes (btree support)';
REVOKE ALL ON FUNCTION apikeys.scope_cmp FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.scope_cmp TO PUBLIC;

CREATE FUNCTION apikeys.scope_lt(apikeys.scope, apikeys.scope) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scope_lt'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys.scope_lt IS 'Bytewise order of canonical scopes';
REVOKE ALL ON FUNCTION apikeys.scope_lt FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.scope_lt TO PUBLIC;

CREATE FUNCTION apikeys.scope_le(apikeys.scope, apikeys.scope) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scope_le'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys.scope_le IS 'Bytewise order of canonical scopes';
REVOKE ALL ON FUNCTION apikeys.scope_le FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.scope_le TO PUBLIC;

CREATE FUNCTION apikeys.scope_gt(apikeys.scope, apikeys.scope) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scope_gt'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys.scope_gt IS 'Bytewise order of canonical scopes';
REVOKE ALL ON FUNCTION apikeys.scope_gt FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.scope_gt TO PUBLIC;

CREATE FUNCTION apikeys.scope_ge(apikeys.scope, apikeys.scope) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scope_ge'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys.scope_ge IS 'Bytewise order of canonical scopes';
REVOKE ALL ON FUNCTION apikeys.scope_ge FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.scope_ge TO PUBLIC;

CREATE FUNCTION apikeys.scope_hash(apikeys.scope) RETURNS integer
    AS 'MODULE_PATHNAME', 'apikeys_scope_hash'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys.scope_hash IS 'Hash of a canonical scope (hash index and hash join support)';
REVOKE ALL ON FUNCTION apikeys.scope_hash FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.scope_hash TO PUBLIC;

CREATE OPERATOR apikeys.< (
    LEFTARG = apikeys.scope, RIGHTARG = apikeys.scope, FUNCTION = apikeys.scope_lt,
    COMMUTATOR = OPERATOR(apikeys.>), NEGATOR = OPERATOR(apikeys.>=),
    RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
COMMENT ON OPERATOR apikeys.< (apikeys.scope, apikeys.scope) IS 'Bytewise order of canonical scopes';

CREATE OPERATOR apikeys.<= (
    LEFTARG = apikeys.scope, RIGHTARG = apikeys.scope, FUNCTION = apikeys.scope_le,
    COMMUTATOR = OPERATOR(apikeys.>=), NEGATOR = OPERATOR(apikeys.>),
    RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
COMMENT ON OPERATOR apikeys.<= (apikeys.scope, apikeys.scope) IS 'Bytewise order of canonical scopes';

CREATE OPERATOR apikeys.> (
    LEFTARG = apikeys.scope, RIGHTARG = apikeys.scope, FUNCTION = apikeys.scope_gt,
    COMMUTATOR = OPERATOR(apikeys.<), NEGATOR = OPERATOR(apikeys.<=),
    RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
COMMENT ON OPERATOR apikeys.> (apikeys.scope, apikeys.scope) IS 'Bytewise order of canonical scopes';

CREATE OPERATOR apikeys.>= (
    LEFTARG = apikeys.scope, RIGHTARG = apikeys.scope, FUNCTION = apikeys.scope_ge,
    COMMUTATOR = OPERATOR(apikeys.<=), NEGATOR = OPERATOR(apikeys.<),
    RESTRICT = scalargesel, JOIN = scalargejoinsel
);
COMMENT ON OPERATOR apikeys.>= (apikeys.scope, apikeys.scope) IS 'Bytewise order of canonical scopes';

CREATE OPERATOR CLASS apikeys.scope_ops
    DEFAULT FOR TYPE apikeys.scope USING btree AS
        OPERATOR 1 apikeys.<,
        OPERATOR 2 apikeys.<=,
        OPERATOR 3 apikeys.=,
        OPERATOR 4 apikeys.>=,
        OPERATOR 5 apikeys.>,
        FUNCTION 1 apikeys.scope_cmp(apikeys.scope, apikeys.scope);
COMMENT ON OPERATOR CLASS apikeys.scope_ops USING btree IS 'Bytewise order of scopes: sorting, grouping, btree indexes, ANALYZE';
COMMENT ON OPERATOR FAMILY apikeys.scope_ops USING btree IS 'Bytewise order of scopes (the family of operator class scope_ops)';

CREATE OPERATOR CLASS apikeys.scope_hash_ops
    DEFAULT FOR TYPE apikeys.scope USING hash AS
        OPERATOR 1 apikeys.=,
        FUNCTION 1 apikeys.scope_hash(apikeys.scope);
COMMENT ON OPERATOR CLASS apikeys.scope_hash_ops USING hash IS 'Hashing of scopes: hash indexes, hash joins and aggregation';
COMMENT ON OPERATOR FAMILY apikeys.scope_hash_ops USING hash IS 'Hashing of scopes (the family of operator class scope_hash_ops)';

CREATE FUNCTION apikeys.scope_grants(granted apikeys.scope, required apikeys.scope)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scope_grants'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys.scope_grants IS 'Does the granted scope satisfy the required one? (operator @>)';
REVOKE ALL ON FUNCTION apikeys.scope_grants FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.scope_grants TO PUBLIC;

CREATE OPERATOR apikeys.@> (
    LEFTARG = apikeys.scope, RIGHTARG = apikeys.scope,
    FUNCTION = apikeys.scope_grants
);
COMMENT ON OPERATOR apikeys.@> (apikeys.scope, apikeys.scope) IS 'Does the granted scope (left) satisfy the required one (right)?';

CREATE FUNCTION apikeys.scopes_grant(granted apikeys.scope[], required apikeys.scope)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scopes_grant'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys.scopes_grant IS 'Does a set of granted scopes satisfy the required one? (operator @>)';
REVOKE ALL ON FUNCTION apikeys.scopes_grant FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.scopes_grant TO PUBLIC;

CREATE OPERATOR apikeys.@> (
    LEFTARG = apikeys.scope[], RIGHTARG = apikeys.scope,
    FUNCTION = apikeys.scopes_grant
);
COMMENT ON OPERATOR apikeys.@> (apikeys.scope[], apikeys.scope) IS 'Does a set of granted scopes (left) satisfy the required one (right)?';

-- Named scope sets ("roles"): a key holding '@name' grants what the set
-- grants at each verification (src/scopeset.c expands it when the key is
-- loaded).  The column order is part of the C code: add columns at the end.
CREATE TABLE apikeys.scope_sets (
    name            text COLLATE "C" PRIMARY KEY,
    scopes          apikeys.scope[] NOT NULL,
    description     text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT scope_sets_name_check CHECK (name OPERATOR(pg_catalog.~) '^[a-z][a-z0-9_]{0,62}$')
);
COMMENT ON TABLE apikeys.scope_sets IS 'Named scope sets: a key holding @name grants the set''s scopes at each verification (extension owner only)';
SELECT pg_catalog.pg_extension_config_dump('apikeys.scope_sets', '');
ALTER TABLE apikeys.scope_sets ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE apikeys.scope_sets FROM PUBLIC;

-- Internal: may a key holding granted give a key the scope required?  As
-- scopes_grant, except that a field-less scope needs a field-less grant
-- (the no-escalation subset test, src/scope.c ScopeArrayCovers).
-- Not STRICT (NULL in, NULL out, in C): a STRICT call with NULL constants
-- would be folded away before the EXECUTE privilege is checked.
CREATE FUNCTION apikeys_internal._scopes_cover(granted apikeys.scope[], required apikeys.scope) RETURNS boolean
    AS 'MODULE_PATHNAME', 'apikeys_scopes_cover'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys_internal._scopes_cover IS 'Internal: may a key holding these scopes give that scope (a field-less scope needs a field-less grant)';
REVOKE ALL ON FUNCTION apikeys_internal._scopes_cover FROM PUBLIC;

-- Internal: scopes with every '@name' replaced by the set's scopes, read
-- with the latest snapshot: the expansion verification makes (src/scopeset.c).
CREATE FUNCTION apikeys_internal._expand_scopes(scopes apikeys.scope[]) RETURNS apikeys.scope[]
    AS 'MODULE_PATHNAME', 'apikeys_expand_scopes'
    LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION apikeys_internal._expand_scopes IS 'Internal: scopes with each @set replaced by the set''s scopes, as verification expands them';
REVOKE ALL ON FUNCTION apikeys_internal._expand_scopes FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys_internal._expand_scopes TO apikeys_admin;

-- Outdates every cached key of the database when a scope set changes.
CREATE FUNCTION apikeys_internal._scope_sets_cache_trigger()
    RETURNS trigger
    AS 'MODULE_PATHNAME', 'apikeys_scope_sets_cache_trigger'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikeys_internal._scope_sets_cache_trigger IS 'Internal: outdates every cached key of the database when a scope set changes';
REVOKE ALL ON FUNCTION apikeys_internal._scope_sets_cache_trigger FROM PUBLIC;

-- Named scope sets (apikeys_admin)
--
-- A set is a named list of plain scopes; a key's scopes may name it as
-- '@name'.  Verification expands the set when it loads the key, so a
-- redefinition takes effect for every key holding the set when it commits,
-- on every connection: the statement trigger scope_sets_cache outdates
-- every cached key of the database (src/verify_cache.c, "Named scope sets").
-- _scope_set_holders: the number of live keys (not revoked, not expired)
-- whose scopes name the set: what define_scope_set reports and what
-- drop_scope_set refuses to leave without their grants.
CREATE FUNCTION apikeys_internal._scope_set_holders(p_name text)
    RETURNS bigint
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.count(*) FROM apikeys.keys k
     WHERE ('@' || p_name)::apikeys.scope OPERATOR(apikeys.=) ANY (k.scopes)
       AND k.revoked_at IS NULL
       AND k.expires_at > pg_catalog.now()
$$;
COMMENT ON FUNCTION apikeys_internal._scope_set_holders IS 'Internal: the number of live keys whose scopes name the scope set';
REVOKE ALL ON FUNCTION apikeys_internal._scope_set_holders FROM PUBLIC;

-- define_scope_set returns the number of live keys holding the set: the
-- keys whose grants the definition now decides.
CREATE FUNCTION apikeys.define_scope_set(name text, scopes text[], description text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_scopes apikeys.scope[];
    old_s apikeys.scope_sets;
BEGIN
    IF define_scope_set.name IS NULL OR
       define_scope_set.name !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'invalid scope set name "%"', define_scope_set.name
            USING ERRCODE = '22023',
                  DETAIL = 'A scope set name is a lowercase letter followed by up to 62 lowercase letters, digits or underscores.';
    END IF;
    IF define_scope_set.scopes IS NULL THEN
        RAISE EXCEPTION 'scopes cannot be NULL' USING ERRCODE = '22023';
    END IF;
    v_scopes := apikeys_internal._check_settings(define_scope_set.scopes, define_scope_set.description,
                    NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    IF EXISTS (SELECT 1 FROM pg_catalog.unnest(v_scopes) u(s)
                WHERE pg_catalog.left(u.s::text, 1) = '@') THEN
        RAISE EXCEPTION 'a scope set cannot contain another scope set'
            USING ERRCODE = '22023',
                  HINT = 'List the other set''s scopes instead.';
    END IF;

    SELECT * INTO old_s FROM apikeys.scope_sets ss
     WHERE ss.name = define_scope_set.name FOR UPDATE;
    INSERT INTO apikeys.scope_sets AS ss (name, scopes, description)
    VALUES (define_scope_set.name, v_scopes, NULLIF(define_scope_set.description, ''))
    ON CONFLICT ON CONSTRAINT scope_sets_pkey DO UPDATE SET
        scopes = EXCLUDED.scopes,
        description = COALESCE(EXCLUDED.description, ss.description),
        updated_at = pg_catalog.now();
    PERFORM apikeys_internal._audit('scope_set_defined', NULL, NULL,
        pg_catalog.jsonb_build_object('name', define_scope_set.name,
            'scopes', pg_catalog.jsonb_build_object('old', old_s.scopes, 'new', v_scopes)));
    RETURN apikeys_internal._scope_set_holders(define_scope_set.name);
END
$$;
COMMENT ON FUNCTION apikeys.define_scope_set IS 'Creates or redefines a named scope set; keys holding @name see the change when it commits; returns how many live keys hold it';
REVOKE ALL ON FUNCTION apikeys.define_scope_set FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.define_scope_set TO apikeys_admin;

CREATE FUNCTION apikeys.drop_scope_set(name text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    -- the row lock first: a create_key/update_key naming the set holds a
    -- share lock on it until it commits, and the count below (a new
    -- statement) then sees its key
    PERFORM 1 FROM apikeys.scope_sets ss
      WHERE ss.name = drop_scope_set.name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'scope set "%" does not exist', drop_scope_set.name
            USING ERRCODE = '42704';
    END IF;
    n := apikeys_internal._scope_set_holders(drop_scope_set.name);
    IF n > 0 THEN
        RAISE EXCEPTION 'cannot drop scope set "%" because API keys use it', drop_scope_set.name
            USING ERRCODE = '2BP01',
                  DETAIL = pg_catalog.format('Live keys holding "@%s": %s.', drop_scope_set.name, n),
                  HINT = 'Change those keys'' scopes with apikeys.update_key(), or revoke them, first.';
    END IF;
    DELETE FROM apikeys.scope_sets ss WHERE ss.name = drop_scope_set.name;
    PERFORM apikeys_internal._audit('scope_set_dropped', NULL, NULL,
        pg_catalog.jsonb_build_object('name', drop_scope_set.name));
END
$$;
COMMENT ON FUNCTION apikeys.drop_scope_set IS 'Drops a named scope set; 2BP01 while a live key holds it';
REVOKE ALL ON FUNCTION apikeys.drop_scope_set FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.drop_scope_set TO apikeys_admin;

-- A scope set's change outdates every cached key of the database at
-- commit (src/verify_cache.c).  ENABLE ALWAYS, like keys_cache.
CREATE TRIGGER scope_sets_cache
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikeys.scope_sets
    FOR EACH STATEMENT EXECUTE FUNCTION apikeys_internal._scope_sets_cache_trigger();
ALTER TABLE apikeys.scope_sets ENABLE ALWAYS TRIGGER scope_sets_cache;
