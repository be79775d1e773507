\i test/setup.sql
--
-- security_edges: cases of the security test list not covered elsewhere.
--   1. header names in other cases, and duplicate header keys, through
--      pre_request (PostgREST builds request.headers with lower-case names;
--      jsonb keeps the last of duplicate keys);
--   2. a unique-constraint error never shows another owner's key.
-- (statement_timeout and locks held on apikeys.keys: test/t/067_verify_locks.pl)
--
SET ROLE regress_admin;
SELECT (k).client_id AS e_cid, (k).token AS e_tok
  FROM (SELECT apikeys.create_key('edge-owner', 'edge', ARRAY['docs:read']) AS k) s \gset
SELECT (k).client_id AS o_cid, (k).token AS o_tok
  FROM (SELECT apikeys.create_key('other-owner', 'other', ARRAY['docs:read']) AS k) s \gset
RESET ROLE;

-- pre_request_as(headers): runs pre_request with these request headers and
-- tells who the request became and whether a token is left in
-- request.headers for the rest of the request (NULL when pre_request
-- failed: PostgREST then aborts the request).  Each call is a statement of
-- its own, so each is a transaction of its own, as a PostgREST request is.
CREATE FUNCTION pg_temp.pre_request_as(h text, OUT who text, OUT outcome text, OUT token_left boolean)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('request.headers', h, true);
    BEGIN
        PERFORM apikeys.pre_request();
        who := COALESCE(apikeys.current_owner(), '<anonymous>');
        outcome := 'ok';
        token_left := current_setting('request.headers', true) LIKE '%ak\_%';
    EXCEPTION WHEN OTHERS THEN
        who := '<none>';
        outcome := SQLSTATE || ': ' || SQLERRM;
    END;
END
$$;

-- 1. Header names: PostgREST sends lower-case names only, and only those
-- are read; a name in another case (only a hand-made request.headers can
-- have one) is no key: the request is anonymous.
SELECT 'x-api-key' AS header, * FROM pg_temp.pre_request_as(json_build_object('x-api-key', :'e_tok')::text);
SELECT 'apikey' AS header, * FROM pg_temp.pre_request_as(json_build_object('apikey', :'e_tok')::text);
SELECT 'X-API-KEY' AS header, * FROM pg_temp.pre_request_as(json_build_object('X-API-KEY', :'e_tok')::text);
SELECT 'X-Api-Key' AS header, * FROM pg_temp.pre_request_as(json_build_object('X-Api-Key', :'e_tok')::text);
SELECT 'Apikey' AS header, * FROM pg_temp.pre_request_as(json_build_object('Apikey', :'e_tok')::text);
SELECT 'APIKEY' AS header, * FROM pg_temp.pre_request_as(json_build_object('APIKEY', :'e_tok')::text);

-- Duplicate keys: jsonb keeps the last one; pre_request reads that, and
-- scrubs the header (every copy: the text is re-made from the jsonb).
SELECT 'bogus then valid' AS duplicates, *
  FROM pg_temp.pre_request_as('{"x-api-key": "ak_bogus", "x-api-key": "' || :'e_tok' || '"}');
SELECT 'valid then bogus' AS duplicates, *
  FROM pg_temp.pre_request_as('{"x-api-key": "' || :'e_tok' || '", "x-api-key": "ak_bogus"}');
SELECT 'edge then other' AS duplicates, *
  FROM pg_temp.pre_request_as('{"x-api-key": "' || :'e_tok' || '", "x-api-key": "' || :'o_tok' || '"}');
SELECT 'apikey then x-api-key' AS duplicates, *
  FROM pg_temp.pre_request_as('{"apikey": "' || :'o_tok' || '", "x-api-key": "' || :'e_tok' || '"}');

-- 2. A unique violation names no other owner's key.  Force the collision a
-- random client ID never has: a test trigger gives every new key the client
-- ID of other-owner's key.
CREATE FUNCTION pg_temp.collide() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.client_id := current_setting('test.collide_with');
    RETURN NEW;
END
$$;
SELECT set_config('test.collide_with', :'o_cid', false) IS NOT NULL AS armed;
CREATE TRIGGER zz_collide BEFORE INSERT ON apikeys.keys
    FOR EACH ROW EXECUTE FUNCTION pg_temp.collide();
SET ROLE regress_admin;
SELECT err($$SELECT apikeys.create_key('edge-owner', 'collides', ARRAY['docs:read'])$$) AS create_collision;
SELECT strpos(err($$SELECT apikeys.create_key('edge-owner', 'collides', ARRAY['docs:read'])$$), :'o_cid') AS other_cid_shown;
RESET ROLE;
DROP TRIGGER zz_collide ON apikeys.keys;
SELECT count(*) AS edge_keys, count(*) FILTER (WHERE name = 'collides') AS half_written
  FROM apikeys.keys WHERE owner = 'edge-owner';
-- Invalid input reaching the table's CHECK constraints would print the
-- failing row (hash included) in DETAIL: every such input is refused first.
SET ROLE regress_admin;
SELECT err($$SELECT apikeys.set_owner_policy('edge-owner', 0)$$) AS zero_cap,
       err($$SELECT apikeys.set_owner_policy('edge-owner', NULL, '-1 day')$$) AS negative_lifetime,
       err($$SELECT apikeys.create_key('edge-owner', NULL, ARRAY['docs:read'])$$) AS null_name;
RESET ROLE;
