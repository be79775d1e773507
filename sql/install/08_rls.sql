-- sql/install/08_rls.sql: row-level security for user tables
--
-- A section of the install script: make concatenates sql/install/*.sql
-- in name order into apikeys--<version>.sql.  Each object is followed by
-- its comment, privileges and settings.

-- Tables apikeys.protect() has set up, so unprotect() undoes exactly that.
CREATE TABLE apikeys.protected_tables (
    tbl             regclass PRIMARY KEY,
    owner_column    name NOT NULL,
    resource        text NOT NULL,
    public_filter   text,
    enabled_rls     boolean NOT NULL,
    forced_rls      boolean NOT NULL
);
COMMENT ON TABLE apikeys.protected_tables IS 'Tables set up by apikeys.protect(), so unprotect() can undo exactly that';
SELECT pg_catalog.pg_extension_config_dump('apikeys.protected_tables', '');
ALTER TABLE apikeys.protected_tables ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE apikeys.protected_tables FROM PUBLIC;

-- _protected_table_owned_by: a table protected by apikeys.protect()
-- without FORCE ROW LEVEL SECURITY whose owner the role is, or is a member
-- of; NULL if none.  A table's owner escapes its row-level security unless
-- it is forced, so no key's db_role may be such a role: the one rule (in
-- src/http_postgrest.c), applied here when a key is given the role
-- (_check_settings) and by pre_request at every switch to it.  Not
-- STRICT: a STRICT call with a NULL constant would be folded away before
-- the EXECUTE privilege is checked.
CREATE FUNCTION apikeys_internal._protected_table_owned_by(role oid) RETURNS regclass
    AS 'MODULE_PATHNAME', 'apikeys_protected_table_owned_by'
    LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikeys_internal._protected_table_owned_by IS 'Internal: a table protected without FORCE ROW LEVEL SECURITY whose owner the role is or is a member of (such a role cannot be a key''s db_role)';
REVOKE ALL ON FUNCTION apikeys_internal._protected_table_owned_by FROM PUBLIC;

-- _protected_record / _protected_forget keep protect()'s bookkeeping.  They
-- run as the extension owner (the table is not PUBLIC-writable) and act
-- only for the owner of the table in question.
CREATE FUNCTION apikeys_internal._protected_record(p_tbl regclass, p_owner_column name, p_resource text,
                                          p_public_filter text, p_enabled_rls boolean,
                                          p_forced_rls boolean)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_catalog.pg_has_role(apikeys_internal._outer_user()::name,
              (SELECT relowner FROM pg_catalog.pg_class WHERE oid = p_tbl), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', p_tbl USING ERRCODE = '42501';
    END IF;
    -- A row left by a dropped table whose OID was reused is replaced.
    INSERT INTO apikeys.protected_tables AS t (tbl, owner_column, resource, public_filter, enabled_rls, forced_rls)
    VALUES (p_tbl, p_owner_column, p_resource, p_public_filter, p_enabled_rls, p_forced_rls)
    ON CONFLICT (tbl) DO UPDATE
       SET owner_column = EXCLUDED.owner_column, resource = EXCLUDED.resource,
           public_filter = EXCLUDED.public_filter, enabled_rls = EXCLUDED.enabled_rls,
           forced_rls = EXCLUDED.forced_rls;
    -- Forget tables dropped without unprotect().
    DELETE FROM apikeys.protected_tables t
     WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = t.tbl);
END
$$;
COMMENT ON FUNCTION apikeys_internal._protected_record IS 'Internal: records what protect() did (table owner only)';
REVOKE ALL ON FUNCTION apikeys_internal._protected_record FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys_internal._protected_record TO PUBLIC;

CREATE FUNCTION apikeys_internal._protected_forget(p_tbl regclass)
    RETURNS apikeys.protected_tables
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p apikeys.protected_tables;
BEGIN
    IF NOT pg_catalog.pg_has_role(apikeys_internal._outer_user()::name,
              (SELECT relowner FROM pg_catalog.pg_class WHERE oid = p_tbl), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', p_tbl USING ERRCODE = '42501';
    END IF;
    DELETE FROM apikeys.protected_tables t WHERE t.tbl = p_tbl RETURNING * INTO p;
    RETURN p;
END
$$;
COMMENT ON FUNCTION apikeys_internal._protected_forget IS 'Internal: forgets and returns what protect() did (table owner only)';
REVOKE ALL ON FUNCTION apikeys_internal._protected_forget FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys_internal._protected_forget TO PUBLIC;

-- protect: RLS policies mapping SELECT/INSERT/UPDATE/DELETE to
-- resource:read/create/update/delete for keys of the row's owner.
-- Runs as the caller, who must own tbl.  Returns the four scopes a key
-- needs, so psql shows what to put in create_key's scopes.
CREATE FUNCTION apikeys.protect(tbl regclass, owner_column name,
                                resource text DEFAULT NULL,
                                public_filter text DEFAULT NULL,
                                force boolean DEFAULT false)
    RETURNS text[]
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_res text;
    v_own text;
    v_pub text;
    v_type text;
    c record;
BEGIN
    IF tbl IS NULL OR owner_column IS NULL THEN
        RAISE EXCEPTION 'table and owner column are required' USING ERRCODE = '22023';
    END IF;
    SELECT relname, relrowsecurity, relforcerowsecurity, relkind INTO c
      FROM pg_catalog.pg_class WHERE oid = tbl;
    IF c.relkind <> ALL (ARRAY['r'::"char", 'p'::"char"]) THEN
        RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = '22023';
    END IF;
    IF NOT pg_catalog.pg_has_role(CURRENT_USER,
              (SELECT relowner FROM pg_catalog.pg_class WHERE oid = tbl), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', tbl USING ERRCODE = '42501';
    END IF;
    -- the type by its qualified name, which carries no type modifier
    -- (format_type() would say "character", which means char(1))
    SELECT pg_catalog.format('%I.%I', n.nspname, t.typname) INTO v_type
      FROM pg_catalog.pg_attribute a
      JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
      JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
     WHERE a.attrelid = tbl
       AND a.attname = owner_column
       AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_type IS NULL THEN
        RAISE EXCEPTION 'column "%" of table % does not exist', owner_column, tbl
            USING ERRCODE = '22023';
    END IF;
    v_res := COALESCE(resource, c.relname);
    -- validate resource through the scope grammar (22023 on failure)
    PERFORM (v_res || ':read')::apikeys.scope;

    -- idempotent: undo an earlier protect() first
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_policy
                WHERE polrelid = tbl
                  AND polname = 'apikeys_read') THEN
        PERFORM apikeys.unprotect(tbl);
        SELECT relrowsecurity, relforcerowsecurity INTO c.relrowsecurity, c.relforcerowsecurity
          FROM pg_catalog.pg_class WHERE oid = tbl;
    END IF;

    -- A key matches a row only when the row's owner, written back as text,
    -- is exactly the key's owner.  Two conditions:
    --  1. the key's owner cast to the column's type (text, uuid, bigint ...)
    --     equals the column, so an index on the owner column serves the
    --     policy (the type modifier is dropped: a cast to varchar(n) or
    --     char(n) would truncate);
    --  2. the column cast to text equals the key's owner bytewise (COLLATE
    --     "C"), which rejects what the cast and the type's equality blur:
    --     '07', '+7' or ' 7' for integer 7, '7' for numeric 7.0, an
    --     upper-case uuid, a 64-character owner truncated to a 63-character
    --     name, 'acme ' for char(n) 'acme', 'ACME' for 'acme' under a
    --     case-insensitive collation.
    -- char(n)::text drops the padding, so a char(n) owner 'acme' matches
    -- the key owner 'acme', and an owner ending in a blank never matches.
    -- An owner that is not a valid value of the type (a key of owner
    -- 'acme' on a bigint column) makes the cast, and so the query, fail.
    v_own := pg_catalog.format('(%1$I OPERATOR(pg_catalog.=) (apikeys.current_owner())::%2$s AND '
                               '(%1$I)::pg_catalog.text COLLATE pg_catalog."C" OPERATOR(pg_catalog.=) apikeys.current_owner())',
                               owner_column, v_type);
    v_pub := CASE WHEN public_filter IS NOT NULL AND public_filter <> ''
                  THEN pg_catalog.format(' OR (%s)', public_filter) ELSE '' END;

    EXECUTE pg_catalog.format('CREATE POLICY apikeys_read ON %s FOR SELECT USING ((%s AND apikeys.has_scope(%L))%s)',
                              tbl, v_own, v_res || ':read', v_pub);
    EXECUTE pg_catalog.format('CREATE POLICY apikeys_create ON %s FOR INSERT WITH CHECK (%s AND apikeys.has_scope(%L))',
                              tbl, v_own, v_res || ':create');
    EXECUTE pg_catalog.format('CREATE POLICY apikeys_update ON %s FOR UPDATE USING (%s AND apikeys.has_scope(%L)) WITH CHECK (%s AND apikeys.has_scope(%L))',
                              tbl, v_own, v_res || ':update',
                              v_own, v_res || ':update');
    EXECUTE pg_catalog.format('CREATE POLICY apikeys_delete ON %s FOR DELETE USING (%s AND apikeys.has_scope(%L))',
                              tbl, v_own, v_res || ':delete');
    EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    IF force THEN
        EXECUTE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    END IF;

    PERFORM apikeys_internal._protected_record(tbl, owner_column, v_res, NULLIF(public_filter, ''),
                                      NOT c.relrowsecurity, force AND NOT c.relforcerowsecurity);
    RETURN ARRAY[v_res || ':read', v_res || ':create',
                 v_res || ':update', v_res || ':delete'];
END
$$;
COMMENT ON FUNCTION apikeys.protect IS 'Enables RLS on a table: rows visible/changeable only to keys of the row''s owner with resource:read/create/update/delete; returns those four scopes';
REVOKE ALL ON FUNCTION apikeys.protect FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.protect TO PUBLIC;

-- unprotect removes exactly what protect created: its four policies, and
-- RLS itself only if protect was the one to turn it on.
CREATE FUNCTION apikeys.unprotect(tbl regclass)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p apikeys.protected_tables;
    pol text;
BEGIN
    p := apikeys_internal._protected_forget(tbl);
    IF p.tbl IS NULL THEN
        RAISE EXCEPTION 'table % is not protected by apikeys', tbl
            USING ERRCODE = '55000', HINT = 'Use apikeys.protect() first.';
    END IF;
    FOREACH pol IN ARRAY ARRAY['apikeys_read', 'apikeys_create', 'apikeys_update', 'apikeys_delete'] LOOP
        EXECUTE pg_catalog.format('DROP POLICY IF EXISTS %I ON %s', pol, tbl);
    END LOOP;
    IF p.forced_rls THEN
        EXECUTE pg_catalog.format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', tbl);
    END IF;
    IF p.enabled_rls THEN
        EXECUTE pg_catalog.format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', tbl);
    END IF;
END
$$;
COMMENT ON FUNCTION apikeys.unprotect IS 'Removes exactly what apikeys.protect created';
REVOKE ALL ON FUNCTION apikeys.unprotect FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.unprotect TO PUBLIC;

-- create_field_view: a view of a protected table that shows each column
-- only to keys allowed to read that field (resource:read(field, ...));
-- other columns read as NULL.  The view is security_invoker, so the
-- table's RLS still decides which rows are visible.  An unqualified
-- view_name is created in the table's schema.  Returns the view, by its
-- qualified name.
CREATE FUNCTION apikeys.create_field_view(view_name text, tbl regclass,
                                          resource text DEFAULT NULL,
                                          always_visible name[] DEFAULT '{}')
    RETURNS regclass
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_res text;
    cols text;
    v_name text[];
    v_view text;
BEGIN
    IF view_name IS NULL OR view_name = '' OR tbl IS NULL THEN
        RAISE EXCEPTION 'view name and table are required' USING ERRCODE = '22023';
    END IF;
    -- as protect(): only the table's owner decides how keys see it
    IF NOT pg_catalog.pg_has_role(CURRENT_USER,
              (SELECT relowner FROM pg_catalog.pg_class WHERE oid = tbl), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', tbl USING ERRCODE = '42501',
            HINT = 'A field view is made by the owner of its table.';
    END IF;
    -- This function runs with search_path = pg_catalog, so an unqualified
    -- name would land there: it goes into the table's schema instead.
    v_name := pg_catalog.parse_ident(view_name);
    IF pg_catalog.cardinality(v_name) = 1 THEN
        v_view := pg_catalog.format('%I.%I',
                      (SELECT n.nspname FROM pg_catalog.pg_class c
                         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                        WHERE c.oid = tbl),
                      v_name[1]);
    ELSIF pg_catalog.cardinality(v_name) = 2 THEN
        v_view := pg_catalog.format('%I.%I', v_name[1], v_name[2]);
    ELSE
        RAISE EXCEPTION 'invalid view name "%"', view_name USING ERRCODE = '22023',
            HINT = 'Give a view name, optionally qualified by a schema name.';
    END IF;
    v_res := COALESCE(resource, (SELECT relname FROM pg_catalog.pg_class WHERE oid = tbl));
    PERFORM (v_res || ':read')::apikeys.scope;

    SELECT pg_catalog.string_agg(
               CASE WHEN a.attname = ANY (always_visible)
                    THEN pg_catalog.quote_ident(a.attname)
                    ELSE pg_catalog.format('CASE WHEN apikeys.field_allowed(%L, %L) THEN %I END AS %I',
                                           v_res, a.attname, a.attname, a.attname) END,
               ', ' ORDER BY a.attnum)
      INTO cols
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped;

    EXECUTE pg_catalog.format('CREATE VIEW %s WITH (security_invoker = true, security_barrier = true) AS SELECT %s FROM %s',
                              v_view, cols, tbl);
    RETURN v_view::pg_catalog.regclass;
END
$$;
COMMENT ON FUNCTION apikeys.create_field_view IS 'Creates a view showing each column only to keys allowed to read that field; others read as NULL; returns the view';
REVOKE ALL ON FUNCTION apikeys.create_field_view FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikeys.create_field_view TO PUBLIC;
