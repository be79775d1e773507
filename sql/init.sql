--
-- init: create the extension and the roles the other tests use.
--
SET client_min_messages = warning;
CREATE EXTENSION apikeys;
RESET client_min_messages;

-- test roles: an admin, a verifier, a delivery worker, and a role with none
CREATE ROLE regress_admin LOGIN IN ROLE apikeys_admin;
CREATE ROLE regress_verifier LOGIN IN ROLE apikeys_verifier;
CREATE ROLE regress_nobody LOGIN;
CREATE ROLE regress_delivery LOGIN IN ROLE apikeys_delivery;

-- err(sql): runs a statement and shows SQLSTATE, message, detail and hint
-- on one line instead of raising, so invalid-input cases read as a table.
-- Random client IDs and timestamps are masked so expected output is stable.
CREATE FUNCTION public.err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; m text; d text; h text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT,
                            d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN regexp_replace(regexp_replace(
        st || ': ' || m
        || COALESCE(' DETAIL: ' || NULLIF(d, ''), '')
        || COALESCE(' HINT: ' || NULLIF(h, ''), ''),
        '\m[a-z][a-z0-9_]*_[A-Za-z0-9]{16}\M', '<client_id>', 'g'),
        '[A-Z][a-z]{2} [A-Z][a-z]{2} [0-9]{2} [0-9:.]+ [0-9]{4} [A-Z]+', '<timestamp>', 'g');
END
$$;
GRANT EXECUTE ON FUNCTION public.err(text) TO PUBLIC;

SELECT extname, extversion, extrelocatable FROM pg_extension WHERE extname = 'apikeys';
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'apikeys%' ORDER BY 1;
