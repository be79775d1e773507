\i test/setup.sql
--
-- security: attacks on the extension's boundary, each shown harmless.
--
--   1. search_path hijack of every SECURITY DEFINER function (and the C
--      functions, which run with the caller's search_path)
--   2. reading secrets or hashes through views, functions, errors, audit rows
--   3. SQL injection through every text argument and request.headers
--   4. privilege escalation from apikeys_verifier (and PUBLIC) to admin
--   5. CREATE EXTENSION into a pre-created schema apikeys
--
-- Context forgery has its own test (context).  Server log, pg_dump and
-- pg_stat_statements are covered by test/t/010_secret_leaks.pl.
--
\set VERBOSITY default
SET client_min_messages = warning;

CREATE ROLE regress_mallory LOGIN;
GRANT CREATE ON SCHEMA public TO regress_mallory, regress_admin;

-- Every planted object calls public.hijacked(), which records who ran what.
CREATE TABLE public.hijack_log (run_as text, what text);
GRANT INSERT, SELECT ON public.hijack_log TO PUBLIC;
CREATE FUNCTION public.hijacked(what text) RETURNS void
    LANGUAGE sql AS $$ INSERT INTO public.hijack_log VALUES (current_user, what) $$;
GRANT EXECUTE ON FUNCTION public.hijacked(text) TO PUBLIC;

--------------------------------------------------------------------------------
-- 1. search_path hijack
--
-- regress_mallory plants, in public, functions, operators and tables with
-- the names the extension uses; each logs and returns a wrong answer.  The
-- caller (regress_admin, who would love to run code as the extension
-- owner) adds pg_temp versions and puts pg_temp and public before
-- pg_catalog in its search_path.
--------------------------------------------------------------------------------
SET ROLE regress_mallory;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.now()'); RETURN '2000-01-01'; END $$;
CREATE FUNCTION public.length(text) RETURNS integer LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.length(text)'); RETURN 0; END $$;
CREATE FUNCTION public.btrim(text) RETURNS text LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.btrim(text)'); RETURN 'x'; END $$;
CREATE FUNCTION public.octet_length(bytea) RETURNS integer LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.octet_length(bytea)'); RETURN 32; END $$;
CREATE FUNCTION public.current_setting(text, boolean) RETURNS text LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.current_setting(text,boolean)'); RETURN '1000'; END $$;
CREATE FUNCTION public.current_setting(text) RETURNS text LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.current_setting(text)'); RETURN '1000'; END $$;
CREATE FUNCTION public.pg_notify(text, text) RETURNS void LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.pg_notify: ' || $2); END $$;
CREATE FUNCTION public.inet_client_addr() RETURNS inet LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.inet_client_addr()'); RETURN '6.6.6.6'; END $$;
CREATE FUNCTION public.jsonb_build_object(text, text, text, jsonb) RETURNS jsonb LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.jsonb_build_object'); RETURN '{}'; END $$;
CREATE FUNCTION public.format(text, VARIADIC text[]) RETURNS text LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.format'); RETURN $1; END $$;
CREATE FUNCTION public.array_position(text[], text) RETURNS integer LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.array_position'); RETURN NULL; END $$;
-- the extension's own names, unqualified
CREATE FUNCTION public._audit(text, text, text, jsonb) RETURNS void LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public._audit'); END $$;
CREATE FUNCTION public._key_row(text, boolean) RETURNS void LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public._key_row'); END $$;
CREATE FUNCTION public._mint(text) RETURNS text LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public._mint'); RETURN 'x'; END $$;
CREATE FUNCTION public.verify(text, text, inet) RETURNS text LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.verify'); RETURN 'VALID'; END $$;
-- operators: "=" that is always true, comparisons that are always false
CREATE FUNCTION public.evil_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.=(text,text)'); RETURN true; END $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_eq);
CREATE FUNCTION public.evil_ne(text, text) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.<>(text,text)'); RETURN false; END $$;
CREATE OPERATOR public.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_ne);
CREATE FUNCTION public.evil_gt(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.>(timestamptz,timestamptz)'); RETURN false; END $$;
CREATE OPERATOR public.> (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = public.evil_gt);
CREATE FUNCTION public.evil_le(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.<=(timestamptz,timestamptz)'); RETURN false; END $$;
CREATE OPERATOR public.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = public.evil_le);
CREATE FUNCTION public.evil_cat(jsonb, jsonb) RETURNS jsonb LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.||(jsonb,jsonb)'); RETURN $1; END $$;
CREATE OPERATOR public.|| (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = public.evil_cat);
CREATE FUNCTION public.evil_plus(timestamptz, interval) RETURNS timestamptz LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('public.+(timestamptz,interval)'); RETURN 'infinity'; END $$;
CREATE OPERATOR public.+ (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = public.evil_plus);
-- tables with the extension's table names
CREATE TABLE public.keys (client_id text, owner text, secret_hash bytea);
CREATE TABLE public.audit_log (event text, client_id text);
CREATE TABLE public.owner_policies (owner text, max_keys integer);
GRANT ALL ON public.keys, public.audit_log, public.owner_policies TO PUBLIC;
RESET ROLE;

-- the caller's own trap, in pg_temp
SET ROLE regress_admin;
CREATE FUNCTION pg_temp.now() RETURNS timestamptz LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('pg_temp.now()'); RETURN '2000-01-01'; END $$;
CREATE FUNCTION pg_temp._audit(text, text, text, jsonb) RETURNS void LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('pg_temp._audit'); END $$;
CREATE FUNCTION pg_temp.evil_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN PERFORM public.hijacked('pg_temp.=(text,text)'); RETURN true; END $$;
CREATE OPERATOR pg_temp.= (LEFTARG = text, RIGHTARG = text, FUNCTION = pg_temp.evil_eq);
CREATE TEMP TABLE keys (client_id text, owner text, secret_hash bytea);
CREATE TEMP TABLE audit_log (event text, client_id text);
CREATE TEMP TABLE owner_policies (owner text, max_keys integer);
CREATE TEMP TABLE protected_tables (tbl regclass);
RESET ROLE;

-- Control: the trap works.  A SECURITY DEFINER function without a pinned
-- search_path, called under the attacker's path, runs public.now().
CREATE FUNCTION public.naive_definer() RETURNS timestamptz
    LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN RETURN now(); END $$;
GRANT EXECUTE ON FUNCTION public.naive_definer() TO regress_admin;
SET ROLE regress_admin;
SET search_path = pg_temp, public, pg_catalog;
SELECT public.naive_definer() = '2000-01-01' AS control_hijacked;
RESET search_path;
RESET ROLE;
SELECT run_as, what FROM public.hijack_log;
TRUNCATE public.hijack_log;

-- The attack: every SECURITY DEFINER function (and every C function an
-- admin or verifier calls) under the attacker's search_path.
SELECT COALESCE(max(id), 0) AS audit_start FROM apikeys.audit_log \gset
SET ROLE regress_admin;
SET search_path = pg_temp, public, pg_catalog;
SELECT client_id AS h1_cid, token AS h1_tok, expires_at AS h1_exp
  FROM apikeys.create_key('regress_hijack', 'first', ARRAY['docs:read'],
                          description => 'd', metadata => '{"a": "b"}') \gset
SELECT client_id AS h2_cid, token AS h2_tok
  FROM apikeys.create_key('regress_hijack', 'second', ARRAY['docs:*']) \gset
SELECT client_id AS h3_cid, token AS h3_tok
  FROM apikeys.create_key('regress_hijack2', 'third', ARRAY['*']) \gset
SELECT apikeys.update_key(:'h1_cid', name => 'first renamed', scopes => ARRAY['docs:read', 'docs:update']);
SELECT token AS h1_tok2 FROM apikeys.rotate_key(:'h1_cid', '1 hour') \gset
SELECT apikeys.disable_key(:'h2_cid', 'hijack test');
SELECT apikeys.enable_key(:'h2_cid');
SELECT apikeys.set_owner_policy('regress_hijack', 3, '30 days');
SELECT (apikeys.verify(:'h1_tok2', 'docs:update')).code AS verify_new,
       (apikeys.verify(:'h1_tok', 'docs:read')).code AS verify_old_in_grace,
       (apikeys.verify(:'h2_tok', 'other:read')).code AS verify_wrong_scope,
       (apikeys.verify_client(:'h2_cid', 'x')).code AS verify_client_junk;
SELECT apikeys.revoke_key(:'h2_cid', 'hijack test');
SELECT apikeys.revoke_all_keys('regress_hijack2', 'hijack test');
SELECT apikeys.purge_audit('100 years');
SELECT apikeys.delete_key(:'h2_cid');
RESET search_path;
RESET ROLE;

SET ROLE regress_verifier;
SET search_path = pg_temp, public, pg_catalog;
BEGIN;
SELECT (apikeys.authenticate(:'h1_tok2', 'docs:read')).code AS authenticate;
SELECT apikeys.current_client_id() OPERATOR(pg_catalog.=) :'h1_cid' AS ctx_client,
       apikeys.current_owner() AS ctx_owner,
       apikeys.has_scope('docs:update') AS ctx_update,
       apikeys.has_scope('docs:delete') AS ctx_delete;
COMMIT;
RESET search_path;
RESET ROLE;

-- report_leaked is PUBLIC and SECURITY DEFINER: a role with nothing
SET ROLE regress_nobody;
SET search_path = pg_temp, public, pg_catalog;
SELECT apikeys.report_leaked(:'h1_tok2');
RESET search_path;
RESET ROLE;

-- Results are right: real now(), real operators, real tables.
SELECT :'h1_exp'::timestamptz > now() + interval '300 days' AS expiry_uses_real_now;
SELECT client_id = :'h1_cid' AS h1, name, scopes, status, description, metadata,
       old_secret_valid_until > now() AS in_grace
  FROM apikeys.key_list WHERE owner = 'regress_hijack' ORDER BY created_at;
SELECT owner, status, count(*) FROM apikeys.key_list
 WHERE owner LIKE 'regress_hijack%' GROUP BY 1, 2 ORDER BY 1, 2;
SELECT owner, max_keys, max_lifetime FROM apikeys.owner_policies WHERE owner LIKE 'regress_hijack%' ORDER BY 1;
SELECT event, client_id = :'h1_cid' AS h1, client_id = :'h2_cid' AS h2, owner,
       detail ? 'changes' AS has_changes, actor = session_user AS actor_ok, db_user, client_addr
  FROM apikeys.audit_log
 WHERE id > :audit_start AND (owner LIKE 'regress_hijack%' OR event = 'audit_purged')
 ORDER BY id;
-- ... and nothing of the attacker's ran, nor was written to
SELECT run_as, what FROM public.hijack_log;
SELECT (SELECT count(*) FROM public.keys) AS public_keys,
       (SELECT count(*) FROM public.audit_log) AS public_audit_log,
       (SELECT count(*) FROM public.owner_policies) AS public_owner_policies;

-- protect()/unprotect() run as the caller, with a pinned search_path too
CREATE TABLE public.docs (id int, owner text);
ALTER TABLE public.docs OWNER TO regress_admin;
SET ROLE regress_admin;
SET search_path = pg_temp, public, pg_catalog;
SELECT apikeys.protect('public.docs', 'owner');
SELECT apikeys.protect('public.docs', 'owner');
RESET search_path;
SELECT polname, pg_get_expr(polqual, polrelid) AS using_expr
  FROM pg_policy WHERE polrelid = 'public.docs'::regclass ORDER BY 1;
SET search_path = pg_temp, public, pg_catalog;
SELECT apikeys.unprotect('public.docs');
RESET search_path;
RESET ROLE;
SELECT count(*) AS policies_left FROM pg_policy WHERE polrelid = 'public.docs'::regclass;
SELECT run_as, what FROM public.hijack_log;
SELECT (SELECT count(*) FROM pg_temp.keys) AS temp_keys,
       (SELECT count(*) FROM pg_temp.audit_log) AS temp_audit_log,
       (SELECT count(*) FROM pg_temp.owner_policies) AS temp_owner_policies,
       (SELECT count(*) FROM pg_temp.protected_tables) AS temp_protected_tables;
-- The planted objects go now: the rest of this file writes ordinary,
-- unqualified SQL (which a planted public.format() would capture).
DROP OWNED BY regress_mallory;

--------------------------------------------------------------------------------
-- 2. Secrets and hashes are readable nowhere but by the extension owner
--------------------------------------------------------------------------------
SET ROLE regress_admin;
SELECT client_id AS s_cid, client_secret AS s_secret, token AS s_tok
  FROM apikeys.create_key('regress_leak', 'leak', ARRAY['docs:read'],
                          description => 'leak test', contact_email => 'a@example.com') \gset
RESET ROLE;
SELECT encode(secret_hash, 'hex') AS s_hash_hex, encode(secret_hash, 'base64') AS s_hash_b64,
       encode(secret_hash, 'escape') AS s_hash_esc
  FROM apikeys.keys WHERE client_id = :'s_cid' \gset
-- the token's secret part really is the secret; the token carries the client ID
SELECT strpos(:'s_tok', :'s_secret') > 0 AS token_has_secret,
       starts_with(:'s_tok', :'s_cid' || '_') AS token_starts_with_cid,
       apikeys.token_client_id(:'s_tok') = :'s_cid' AS token_client_id;

-- leak_check(text) says whether a text holds the secret, the token or the hash
CREATE FUNCTION pg_temp.leaks(t text) RETURNS boolean LANGUAGE sql AS $$
    SELECT strpos(t, current_setting('regress.secret')) > 0
        OR strpos(t, current_setting('regress.hash_hex')) > 0
        OR strpos(t, current_setting('regress.hash_b64')) > 0
$$;
SELECT set_config('regress.secret', :'s_secret', false),
       set_config('regress.hash_hex', :'s_hash_hex', false),
       set_config('regress.hash_b64', :'s_hash_b64', false) \gset
SET ROLE regress_admin;
SELECT apikeys.rotate_key(:'s_cid', '1 hour') IS NOT NULL AS rotated;
SELECT apikeys.update_key(:'s_cid', description => 'changed');
SELECT apikeys.disable_key(:'s_cid', 'leak test');
SELECT apikeys.enable_key(:'s_cid');
-- every view and table an admin can read, whole rows as text
SELECT count(*) FILTER (WHERE pg_temp.leaks(l::text)) AS key_list_rows_leaking,
       count(*) FILTER (WHERE l.client_id = :'s_cid') AS key_list_rows_of_key
  FROM apikeys.key_list l;
SELECT count(*) FILTER (WHERE pg_temp.leaks(a::text)) AS audit_rows_leaking,
       count(*) FILTER (WHERE a.client_id = :'s_cid') AS audit_rows_of_key
  FROM apikeys.audit_log a;
-- the audit detail, with timestamps blanked
SELECT event, regexp_replace(detail::text, '"\d{4}-[^"]*"', '"<time>"', 'g') AS detail
  FROM apikeys.audit_log WHERE client_id = :'s_cid' ORDER BY id;
RESET ROLE;
-- superuser view of everything but apikeys.keys itself: no table anywhere
-- else holds the secret (the keys table holds only the hash)
SELECT count(*) AS keys_rows_holding_secret FROM apikeys.keys k WHERE pg_temp.leaks(
       (to_jsonb(k) - 'secret_hash' - 'prev_secret_hash')::text);
SELECT count(*) AS keys_rows_holding_hash_elsewhere FROM apikeys.keys k
 WHERE strpos((to_jsonb(k) - 'secret_hash' - 'prev_secret_hash')::text, :'s_hash_hex') > 0;

-- Direct reads of hashes: 42501 for the admin, the verifier and PUBLIC
SET ROLE regress_admin;
SELECT err('SELECT secret_hash FROM apikeys.keys') AS admin_keys;
SELECT err('SELECT * FROM apikeys.keys') AS admin_keys_star;
SELECT err($$SELECT apikeys_internal._key_row('$$ || :'s_cid' || $$')$$) AS admin_key_row;
SELECT err('SELECT * FROM apikeys_internal._mint(NULL)') AS admin_mint;
SELECT err('SELECT secret_hash FROM apikeys.key_list') AS admin_key_list_hash;
RESET ROLE;
SET ROLE regress_verifier;
SELECT err('SELECT secret_hash FROM apikeys.keys') AS verifier_keys;
SELECT err('SELECT * FROM apikeys.key_list') AS verifier_key_list;
SELECT err('SELECT * FROM apikeys.audit_log') AS verifier_audit_log;
RESET ROLE;
-- verification results never carry a secret or hash
SET ROLE regress_verifier;
SELECT pg_temp.leaks(v::text) AS verify_result_leaks, v.code
  FROM apikeys.verify(:'s_tok') v;
SELECT pg_temp.leaks(v::text) AS verify_client_result_leaks, v.code
  FROM apikeys.verify_client(:'s_cid', :'s_secret') v;
RESET ROLE;

-- Error messages, details, hints and contexts never hold a secret.
-- errtext(sql) runs a statement and returns everything the error said.
CREATE FUNCTION pg_temp.errtext(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; m text; d text; h text; c text;
BEGIN
    EXECUTE q;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL,
                            h = PG_EXCEPTION_HINT, c = PG_EXCEPTION_CONTEXT;
    -- the context quotes the caller's own statement: that is not apikeys talking
    RETURN st || ' ' || m || ' ' || d || ' ' || h || ' ' || replace(c, q, '<caller statement>');
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.errtext(text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION pg_temp.leaks(text) TO PUBLIC;
SET ROLE regress_admin;
SELECT client_id AS e_cid, client_secret AS e_secret, token AS e_tok
  FROM apikeys.create_key('regress_leak', 'errors', ARRAY['docs:read'],
                          allowed_cidrs => ARRAY['10.0.0.0/8']::cidr[]) \gset
RESET ROLE;
SELECT set_config('regress.secret', :'e_secret', false) \gset
SELECT encode(secret_hash, 'hex') AS e_hash_hex, encode(secret_hash, 'base64') AS e_hash_b64
  FROM apikeys.keys WHERE client_id = :'e_cid' \gset
SELECT set_config('regress.hash_hex', :'e_hash_hex', false),
       set_config('regress.hash_b64', :'e_hash_b64', false) \gset
SET ROLE regress_verifier;
SELECT q.label, left(e, 5) AS sqlstate, pg_temp.leaks(e) AS leaks
  FROM (VALUES
    ('authenticate: address', format('SELECT apikeys.authenticate(%L, NULL, %L)', :'e_tok', '192.0.2.1')),
    ('authenticate: scope', format('SELECT apikeys.authenticate(%L, %L, %L)', :'e_tok', 'docs:delete', '10.1.2.3')),
    ('authenticate: wrong secret', format('SELECT apikeys.authenticate(%L)', forge_token(:'e_cid', repeat('A', 43)))),
    ('authenticate: bad checksum', format('SELECT apikeys.authenticate(%L)',
        left(:'e_tok', -1) || CASE WHEN right(:'e_tok', 1) = 'A' THEN 'B' ELSE 'A' END)),
    ('authenticate: bad scope', format('SELECT apikeys.authenticate(%L, %L, %L)', :'e_tok', 'Bad Scope', '10.1.2.3')),
    ('require_scope', format('SELECT apikeys.require_scope(%L)', 'docs:read'))
  ) AS q(label, sql), pg_temp.errtext(q.sql) AS e
 ORDER BY 1;
-- The wrong-secret token above carries a valid checksum (forge_token, from
-- init.sql), so it gets as far as the secret comparison: NOT_FOUND, not
-- MALFORMED; and the error never repeats the secret that was sent either.
SELECT (apikeys.verify(forge_token(:'e_cid', repeat('A', 43)))).code AS wrong_secret_code,
       strpos(pg_temp.errtext(format('SELECT apikeys.authenticate(%L)', forge_token(:'e_cid', repeat('A', 43)))),
              repeat('A', 43)) = 0 AS sent_secret_not_echoed;
RESET ROLE;
SET ROLE regress_admin;
SELECT apikeys.disable_key(:'e_cid');
RESET ROLE;
SET ROLE regress_verifier;
SELECT left(e, 5) AS sqlstate, pg_temp.leaks(e) AS leaks
  FROM pg_temp.errtext(format('SELECT apikeys.authenticate(%L, NULL, %L)', :'e_tok', '10.1.2.3')) AS e;
RESET ROLE;
SET ROLE regress_admin;
SELECT apikeys.revoke_key(:'e_cid', 'errors test');
SELECT q.label, left(e, 5) AS sqlstate, pg_temp.leaks(e) AS leaks
  FROM (VALUES
    ('rotate revoked', format('SELECT apikeys.rotate_key(%L)', :'e_cid')),
    ('update revoked', format('SELECT apikeys.update_key(%L, name => %L)', :'e_cid', 'x')),
    ('authenticate revoked', format('SELECT apikeys.authenticate(%L, NULL, %L)', :'e_tok', '10.1.2.3')),
    ('expiry extension', format('SELECT apikeys.update_key(%L, expires_at => %L)', :'s_cid', '2999-01-01'))
  ) AS q(label, sql), pg_temp.errtext(q.sql) AS e
 ORDER BY 1;
RESET ROLE;
-- A token passed where a client ID belongs is not echoed back.
SET ROLE regress_admin;
SELECT set_config('regress.secret', :'s_secret', false) \gset
SELECT q.label, split_part(e, ' PL/pgSQL', 1) AS error, pg_temp.leaks(e) AS leaks
  FROM (VALUES
    ('revoke_key(token)', format('SELECT apikeys.revoke_key(%L)', :'s_tok')),
    ('disable_key(token)', format('SELECT apikeys.disable_key(%L)', :'s_tok')),
    ('rotate_key(token)', format('SELECT apikeys.rotate_key(%L)', :'s_tok')),
    ('update_key(token)', format('SELECT apikeys.update_key(%L, name => %L)', :'s_tok', 'x')),
    ('delete_key(token)', format('SELECT apikeys.delete_key(%L)', :'s_tok'))
  ) AS q(label, sql), LATERAL (SELECT replace(pg_temp.errtext(q.sql), :'s_cid', '<client_id>')) AS r(e)
 ORDER BY 1;
RESET ROLE;

--------------------------------------------------------------------------------
-- 3. SQL injection through every text argument: stored verbatim, nothing runs
--------------------------------------------------------------------------------
CREATE TABLE public.canary (x int);
INSERT INTO public.canary VALUES (1);
GRANT SELECT ON public.canary TO PUBLIC;
-- payloads in the styles that break format('%s'), EXECUTE, quote_literal
-- misuse, dollar quoting and JSON building
CREATE TABLE public.payloads (n int, p text);
INSERT INTO public.payloads VALUES
  (1, $p$x'); DROP TABLE public.canary; --$p$),
  (2, $p$x"; DROP TABLE public.canary; --$p$),
  (3, $p$$$; DROP TABLE public.canary; $$$p$),
  (4, $p$%s %I %L %1$s \'; SELECT pg_sleep(5); --$p$),
  (5, $p$'||(SELECT public.hijacked('injected'))||'$p$),
  (6, $p$x", "admin": true, "y": "$p$),
  (7, E'line1\nline2\ttab \\ backslash \u00e9\u2028');
GRANT SELECT ON public.payloads TO PUBLIC;

SET ROLE regress_admin;
-- owner, name, description, metadata (keys and values) through create_key
CREATE TEMP TABLE inj AS
SELECT p.n, k.client_id, p.p
  FROM public.payloads p,
       LATERAL apikeys.create_key('regress_inj ' || p.p, p.p, ARRAY['docs:read'],
                                  description => p.p,
                                  metadata => jsonb_build_object(p.p, p.p)) k;
SELECT l.owner = 'regress_inj ' || i.p AS owner_verbatim, l.name = i.p AS name_verbatim,
       l.description = i.p AS description_verbatim,
       l.metadata = jsonb_build_object(i.p, i.p) AS metadata_verbatim, i.n
  FROM inj i JOIN apikeys.key_list l USING (client_id) ORDER BY i.n;
-- the audit row carries the same values verbatim
SELECT i.n, a.owner = 'regress_inj ' || i.p AS audit_owner, a.detail->>'name' = i.p AS audit_name
  FROM inj i JOIN apikeys.audit_log a USING (client_id) WHERE a.event = 'created' ORDER BY i.n;
-- update_key, disable/revoke reasons, set_owner_policy, revoke_all_keys
SELECT apikeys.update_key(i.client_id, name => i.p || ' 2', description => i.p || ' 2',
                          metadata => jsonb_build_object('k', i.p)) FROM inj i;
SELECT apikeys.disable_key(i.client_id, i.p) FROM inj i;
SELECT apikeys.set_owner_policy('regress_inj ' || p.p, 7) FROM public.payloads p;
SELECT i.n, l.name = i.p || ' 2' AS name_verbatim, l.description = i.p || ' 2' AS description_verbatim,
       l.metadata->>'k' = i.p AS metadata_verbatim, l.status
  FROM inj i JOIN apikeys.key_list l USING (client_id) ORDER BY i.n;
SELECT i.n, (a.detail->>'reason') = i.p AS reason_verbatim
  FROM inj i JOIN apikeys.audit_log a USING (client_id) WHERE a.event = 'disabled' ORDER BY i.n;
SELECT sum(apikeys.revoke_all_keys('regress_inj ' || p.p, p.p)) AS revoked FROM public.payloads p;
-- client IDs, scopes, emails, phones and roles: rejected by validation
-- (the message quotes the value as data)
SELECT p.n, left(err(format('SELECT apikeys.revoke_key(%L)', p.p)), 5) AS revoke_key,
       left(err(format('SELECT apikeys.create_key(%L, %L, ARRAY[%L])', 'regress_inj', 'n', p.p)), 5) AS scope,
       left(err(format('SELECT apikeys.create_key(%L, %L, %L, contact_email => %L)', 'regress_inj', 'n', '{}', p.p)), 5) AS email,
       left(err(format('SELECT apikeys.create_key(%L, %L, %L, contact_phone => %L)', 'regress_inj', 'n', '{}', p.p)), 5) AS phone,
       left(err(format('SELECT apikeys.create_key(%L, %L, %L, db_role => %L)', 'regress_inj', 'n', '{}', p.p)), 5) AS db_role
  FROM public.payloads p ORDER BY p.n;
SELECT err(format('SELECT apikeys.create_key(%L, %L, ARRAY[%L])', 'regress_inj', 'n', p.p)) AS scope_message
  FROM public.payloads p WHERE p.n = 1;
RESET ROLE;
-- verify, verify_client, authenticate and report_leaked: junk answers a code
SET ROLE regress_verifier;
SELECT p.n, (apikeys.verify(p.p)).code AS verify,
       left(err(format('SELECT apikeys.verify(%L, %L)', :'h1_tok2', p.p)), 5) AS verify_scope,
       (apikeys.verify_client(p.p, p.p)).code AS verify_client,
       left(err(format('SELECT apikeys.authenticate(%L)', p.p)), 5) AS authenticate
  FROM public.payloads p ORDER BY p.n;
RESET ROLE;
SET ROLE regress_nobody;
SELECT apikeys.report_leaked(p.p) FROM public.payloads p;
RESET ROLE;
-- request.headers (PostgREST): every header a payload, and the header JSON
-- itself broken; pre_request answers 401 / anonymous, nothing runs
SET ROLE regress_verifier;
SELECT p.n, left(err(format($q$SELECT set_config('request.headers', %L, true), apikeys.pre_request()$q$,
                           jsonb_build_object('x-api-key', p.p)::text)), 5) AS x_api_key,
       left(err(format($q$SELECT set_config('request.headers', %L, true), apikeys.pre_request()$q$,
                           jsonb_build_object('authorization', 'Basic ' || encode(convert_to(p.p || ':' || p.p, 'UTF8'), 'base64'))::text)), 5) AS basic,
       left(err(format($q$SELECT set_config('request.headers', %L, true), apikeys.pre_request()$q$,
                           jsonb_build_object('x-forwarded-for', p.p, 'apikey', p.p)::text)), 5) AS xff
  FROM public.payloads p ORDER BY p.n;
SELECT err($q$SELECT set_config('request.headers', '{"x-api-key": "a"}''); DROP TABLE public.canary; --', true), apikeys.pre_request()$q$) AS broken_json;
RESET ROLE;
-- protect(): identifiers are quoted, the resource must pass the scope grammar
CREATE TABLE public."we""ird; DROP TABLE public.canary; --" (id int, "own""er; --" text);
ALTER TABLE public."we""ird; DROP TABLE public.canary; --" OWNER TO regress_admin;
SET ROLE regress_admin;
SELECT apikeys.protect('public."we""ird; DROP TABLE public.canary; --"', 'own"er; --', 'weird');
SELECT polname, pg_get_expr(polqual, polrelid) AS using_expr
  FROM pg_policy WHERE polrelid = 'public."we""ird; DROP TABLE public.canary; --"'::regclass ORDER BY 1;
SELECT err($q$SELECT apikeys.protect('public."we""ird; DROP TABLE public.canary; --"', 'own"er; --', $r$x:read'); DROP TABLE public.canary; --$r$)$q$) AS bad_resource;
SELECT apikeys.unprotect('public."we""ird; DROP TABLE public.canary; --"');
-- create_field_view: the view name is an identifier, not SQL
SELECT err($q$SELECT apikeys.create_field_view('v AS SELECT 1; DROP TABLE public.canary; --', 'public.docs')$q$) AS field_view_name;
RESET ROLE;
SELECT count(*) AS canary_rows FROM public.canary;
SELECT run_as, what FROM public.hijack_log;

--------------------------------------------------------------------------------
-- 4. Privilege escalation: the verifier and PUBLIC cannot do admin things
--------------------------------------------------------------------------------
-- call_with_nulls(f) calls any function with typed NULL arguments
CREATE FUNCTION pg_temp.call_sql(f regprocedure) RETURNS text LANGUAGE sql AS $$
    SELECT format('SELECT %s(%s)', p.oid::regproc,
                  COALESCE((SELECT string_agg(format('NULL::%s', t::regtype), ', ' ORDER BY o)
                              FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS u(t, o)), ''))
      FROM pg_proc p WHERE p.oid = f
$$;
GRANT EXECUTE ON FUNCTION pg_temp.call_sql(regprocedure) TO PUBLIC;
-- Every function in schema apikeys the verifier may not execute answers
-- 42501, whatever it is (a new function is covered automatically).
SET ROLE regress_verifier;
SELECT p.oid::regprocedure AS function, left(err(pg_temp.call_sql(p.oid)), 5) AS sqlstate
  FROM pg_proc p
 WHERE p.pronamespace IN ('apikeys'::regnamespace, 'apikeys_internal'::regnamespace)
   AND NOT has_function_privilege('regress_verifier', p.oid, 'EXECUTE')
 ORDER BY p.oid::regprocedure::text;
-- ... and every table, view and sequence, for every privilege
SELECT c.oid::regclass AS relation, m.priv,
       left(err(CASE m.priv
                  WHEN 'SELECT' THEN format('SELECT * FROM %s', c.oid::regclass)
                  WHEN 'INSERT' THEN format('INSERT INTO %s DEFAULT VALUES', c.oid::regclass)
                  WHEN 'UPDATE' THEN format('UPDATE %s SET %I = NULL', c.oid::regclass,
                                            (SELECT attname FROM pg_attribute
                                              WHERE attrelid = c.oid AND attnum > 0 AND attidentity = ''
                                              ORDER BY attnum LIMIT 1))
                  WHEN 'DELETE' THEN format('DELETE FROM %s', c.oid::regclass)
                  WHEN 'TRUNCATE' THEN format('TRUNCATE %s', c.oid::regclass)
                END), 5) AS sqlstate
  FROM pg_class c, (VALUES ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE')) m(priv)
 WHERE c.relnamespace = 'apikeys'::regnamespace AND c.relkind IN ('r', 'v', 'p')
 ORDER BY c.oid::regclass::text, m.priv;
-- (a view answers INSERT/UPDATE/DELETE with 55000 and TRUNCATE with 42809
-- before any privilege check, so the statements above cannot show a
-- privilege the verifier should not have on a view: ask the catalog.)
-- Every privilege the verifier, PUBLIC and the admin hold on every
-- relation of the schema, through any role membership; views included.
SELECT c.oid::regclass AS relation, c.relkind,
       COALESCE(string_agg(p.priv, ',' ORDER BY p.priv) FILTER (WHERE has_table_privilege('regress_verifier', c.oid, p.priv)), '-') AS verifier,
       COALESCE(string_agg(p.priv, ',' ORDER BY p.priv) FILTER (WHERE has_table_privilege('regress_nobody', c.oid, p.priv)), '-') AS nobody,
       COALESCE(string_agg(p.priv, ',' ORDER BY p.priv) FILTER (WHERE has_table_privilege('regress_admin', c.oid, p.priv)), '-') AS admin
  FROM pg_class c,
       (VALUES ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('REFERENCES'), ('TRIGGER')) p(priv)
 WHERE c.relnamespace = 'apikeys'::regnamespace AND c.relkind IN ('r', 'v', 'p', 'm', 'f')
 GROUP BY c.oid, c.relkind
 ORDER BY c.oid::regclass::text;
SELECT err('SELECT nextval(''apikeys.audit_log_id_seq'')') AS sequence;
SELECT err('CREATE FUNCTION apikeys.evil() RETURNS int LANGUAGE sql AS ''SELECT 1''') AS create_in_schema;
SELECT err('ALTER TABLE apikeys.keys DISABLE ROW LEVEL SECURITY') AS alter_table;
SELECT err('ALTER FUNCTION apikeys.verify(text, text, inet) SECURITY DEFINER') AS alter_function;
SELECT err('SET apikeys.pepper = ''x''') AS set_pepper;
RESET ROLE;
-- PUBLIC (a role with nothing) likewise
SET ROLE regress_nobody;
SELECT count(*) FILTER (WHERE left(err(pg_temp.call_sql(p.oid)), 5) = '42501') AS denied,
       count(*) AS not_granted
  FROM pg_proc p
 WHERE p.pronamespace IN ('apikeys'::regnamespace, 'apikeys_internal'::regnamespace)
   AND NOT has_function_privilege('regress_nobody', p.oid, 'EXECUTE');
RESET ROLE;
-- Role switches are checked against the session user, so make the
-- verifier the session user of a fresh session (SET ROLE from a superuser
-- session would not show it; SET SESSION AUTHORIZATION rather than a login,
-- so that installcheck passes under peer authentication too).
SET ROLE regress_admin;
SELECT token AS r_tok FROM apikeys.create_key('regress_role', 'role', ARRAY['docs:read'],
                                              db_role => 'pg_execute_server_program') \gset
RESET ROLE;
\c -
SET SESSION AUTHORIZATION regress_verifier;
SELECT session_user, current_user;
SELECT err('SET ROLE apikeys_admin') AS set_role_admin;
SELECT err('SET ROLE regress_admin') AS set_role_regress_admin;
-- A key whose db_role is a role the authenticator is not a member of
-- cannot be used to switch to that role via pre_request.
BEGIN;
SELECT err(format($q$SELECT set_config('request.headers', %L, true), apikeys.pre_request()$q$,
                  jsonb_build_object('x-api-key', :'r_tok')::text)) AS pre_request_foreign_role;
SELECT current_user, apikeys.current_client_id() IS NULL AS anonymous;
COMMIT;
\c -

--------------------------------------------------------------------------------
-- 5. CREATE EXTENSION into a pre-created schema apikeys
--
-- (another database: this one has the extension).  The owner of a
-- pre-created schema could rename it after the install and plant
-- apikeys.* functions that the SECURITY DEFINER functions would run as
-- the extension owner; anything already in it could shadow our objects.
--------------------------------------------------------------------------------
CREATE DATABASE regress_apikeys_schema;
GRANT CREATE ON DATABASE regress_apikeys_schema TO regress_mallory;
\c regress_apikeys_schema
SET client_min_messages = warning;
\set VERBOSITY default
-- message, detail and hint; not the CONTEXT, whose text differs by major
-- (18 adds the statement of the extension script and its position)
\set SHOW_CONTEXT never
-- a schema owned by a non-superuser
SET ROLE regress_mallory;
CREATE SCHEMA apikeys;
CREATE FUNCTION apikeys.evil() RETURNS int LANGUAGE sql AS 'SELECT 1';
RESET ROLE;
CREATE EXTENSION apikeys;
-- even empty
DROP FUNCTION apikeys.evil();
CREATE EXTENSION apikeys;
-- a superuser's schema that someone else may create in
ALTER SCHEMA apikeys OWNER TO CURRENT_USER;
GRANT CREATE ON SCHEMA apikeys TO regress_mallory;
CREATE EXTENSION apikeys;
REVOKE CREATE ON SCHEMA apikeys FROM regress_mallory;
-- a superuser's schema with objects in it (a table, a type, an operator)
CREATE TABLE apikeys.keys (client_id text);
CREATE EXTENSION apikeys;
DROP TABLE apikeys.keys;
CREATE TYPE apikeys.verification AS (valid boolean);
CREATE EXTENSION apikeys;
DROP TYPE apikeys.verification;
CREATE OPERATOR apikeys.= (LEFTARG = text, RIGHTARG = text, FUNCTION = texteq);
CREATE EXTENSION apikeys;
DROP OPERATOR apikeys.= (text, text);
-- an empty schema owned by a superuser is fine, and so is no schema
CREATE EXTENSION apikeys;
SELECT extversion IS NOT NULL AS installed FROM pg_extension WHERE extname = 'apikeys';
DROP EXTENSION apikeys;
DROP SCHEMA apikeys;
CREATE EXTENSION apikeys;
SELECT pg_get_userbyid(nspowner) = current_user AS schema_owned_by_installer
  FROM pg_namespace WHERE nspname = 'apikeys';
\c contrib_regression
\set SHOW_CONTEXT errors
DROP DATABASE regress_apikeys_schema;

--------------------------------------------------------------------------------
-- Clean up
--------------------------------------------------------------------------------
SET client_min_messages = warning;
SELECT apikeys.delete_key(client_id) FROM apikeys.key_list
 WHERE owner LIKE 'regress_hijack%' OR owner LIKE 'regress_inj%' OR owner LIKE 'regress_leak%'
    OR owner = 'regress_role';
DELETE FROM apikeys.owner_policies
 WHERE owner LIKE 'regress_hijack%' OR owner LIKE 'regress_inj%' OR owner LIKE 'regress_leak%'
    OR owner = 'regress_role';
DROP TABLE public.docs, public."we""ird; DROP TABLE public.canary; --", public.canary, public.payloads;
DROP FUNCTION public.naive_definer();
DROP OWNED BY regress_mallory;
REVOKE CREATE ON SCHEMA public FROM regress_mallory, regress_admin;
DROP ROLE regress_mallory;
DROP TABLE public.hijack_log;
DROP FUNCTION public.hijacked(text);
