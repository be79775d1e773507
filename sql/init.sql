--
-- init: create the extension and the roles the other tests use.
--
SET client_min_messages = warning;
CREATE EXTENSION apikeys;
RESET client_min_messages;

-- test roles: an admin, a verifier, and a role with neither
CREATE ROLE regress_admin LOGIN IN ROLE apikeys_admin;
CREATE ROLE regress_verifier LOGIN IN ROLE apikeys_verifier;
CREATE ROLE regress_nobody LOGIN;

-- err(sql): runs a statement and shows SQLSTATE, message, detail and hint
-- on one line instead of raising, so invalid-input cases read as a table.
CREATE FUNCTION public.err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; m text; d text; h text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT,
                            d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN st || ': ' || m
        || COALESCE(' DETAIL: ' || NULLIF(d, ''), '')
        || COALESCE(' HINT: ' || NULLIF(h, ''), '');
END
$$;
GRANT EXECUTE ON FUNCTION public.err(text) TO PUBLIC;

SELECT extname, extversion, extrelocatable FROM pg_extension WHERE extname = 'apikeys';
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'apikeys%' ORDER BY 1;
