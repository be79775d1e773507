\set ECHO none
-- test/setup.sql: what every pg_regress file of test/sql/ starts from, so
-- that each runs alone (pg_regress ... NAME) or in any order: the
-- extension, the test roles and the helper functions, each created only
-- when missing.  Each file's first line includes it, as
--     \i test/setup.sql
-- (a path from the top directory, where make test and make installcheck
-- run pg_regress); nothing of it is echoed into the expected output but
-- that line and the next.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS apikeys;

-- test roles: an admin, a verifier, a delivery worker, and a role with none
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'regress_admin') THEN
        CREATE ROLE regress_admin LOGIN IN ROLE apikeys_admin;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'regress_verifier') THEN
        CREATE ROLE regress_verifier LOGIN IN ROLE apikeys_verifier;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'regress_nobody') THEN
        CREATE ROLE regress_nobody LOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'regress_delivery') THEN
        CREATE ROLE regress_delivery LOGIN IN ROLE apikeys_delivery;
    END IF;
END
$roles$;

-- err(sql): runs a statement and shows SQLSTATE, message, detail and hint
-- on one line instead of raising, so invalid-input cases read as a table.
-- Random client IDs and timestamps are masked so expected output is stable.
CREATE OR REPLACE FUNCTION public.err(q text) RETURNS text LANGUAGE plpgsql AS $$
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

-- An independent CRC-32C (Castagnoli, reflected polynomial 0x82F63B78),
-- written here in PL/pgSQL so that the C code's checksum is checked against
-- something that does not share its code, and so that tests can build
-- well-formed tokens around a secret of their choice (forge_token).
CREATE OR REPLACE FUNCTION public.crc32c(data bytea) RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    crc bigint := 4294967295;
BEGIN
    FOR i IN 0 .. length(data) - 1 LOOP
        crc := crc # get_byte(data, i);
        FOR b IN 1 .. 8 LOOP
            IF crc & 1 = 1 THEN
                crc := (crc >> 1) # 2197175160;   -- 0x82F63B78
            ELSE
                crc := crc >> 1;
            END IF;
        END LOOP;
    END LOOP;
    RETURN crc # 4294967295;
END
$$;
-- token_checksum(text): the CRC-32C of the text as 6 base62 digits, most
-- significant first, as the token format documents it.
CREATE OR REPLACE FUNCTION public.token_checksum(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    v bigint := public.crc32c(convert_to(t, 'UTF8'));
    s text := '';
BEGIN
    FOR i IN 1 .. 6 LOOP
        s := substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', (v % 62)::int + 1, 1) || s;
        v := v / 62;
    END LOOP;
    RETURN s;
END
$$;
-- forge_token(client_id, secret): a token that passes the format and the
-- checksum, so that verification gets as far as comparing the secret.
CREATE OR REPLACE FUNCTION public.forge_token(client_id text, secret text) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT client_id || '_' || secret || public.token_checksum(client_id || '_' || secret)
$$;
GRANT EXECUTE ON FUNCTION public.crc32c(bytea), public.token_checksum(text),
                          public.forge_token(text, text) TO PUBLIC;
RESET client_min_messages;
\set ECHO all
