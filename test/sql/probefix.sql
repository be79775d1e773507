\i test/setup.sql
--
-- probefix: the outside probe's breaks of issue 18 (items 2, 6, 9, 10),
-- each at the rule that owns it:
--   1. revoke_key(with_descendants) walks through deleted keys (the middle
--      key, or the manager itself) - _revoke_key, delete_key, deleted_keys;
--   2. report_leaked revokes only for a live secret (current, or previous
--      within its grace) - the rule verification applies (secret_live);
--   3. report_leaked where it cannot write (read-only, a standby) answers
--      the same for every token;
--   4. a manager's rotation of a key it did not create: the secret it
--      issued goes with the manager's tree (secret_by_key);
--   5. a db_role that is (a member of) the owner of a table protected
--      without FORCE ROW LEVEL SECURITY is refused.
--
SELECT apikeys.set_owner_policy('pf_t', max_keys => 100);

CREATE FUNCTION pf_status(cid text) RETURNS text
LANGUAGE sql AS $$ SELECT status FROM apikeys.key_list WHERE client_id = cid $$;

-- 1. Deleted keys keep their place in the tree ------------------------------
SELECT client_id AS m_cid, token AS m_tok
  FROM apikeys.create_key('pf_t', 'manager', ARRAY['apikeys:*', 'orders:read']) \gset
BEGIN;
SELECT valid FROM apikeys.authenticate(:'m_tok');
SELECT client_id AS b_cid, token AS b_tok
  FROM apikeys.my_create_key('middle', ARRAY['apikeys:*', 'orders:read']) \gset
COMMIT;
BEGIN;
SELECT valid FROM apikeys.authenticate(:'b_tok');
SELECT client_id AS c_cid, token AS c_tok
  FROM apikeys.my_create_key('grandchild', ARRAY['orders:read']) \gset
COMMIT;
-- the manager deletes the middle key: its link stays behind
BEGIN;
SELECT valid FROM apikeys.authenticate(:'m_tok');
SELECT apikeys.my_delete_key(:'b_cid');
COMMIT;
SELECT client_id = :'b_cid' AS middle_link_kept, created_by_key = :'m_cid' AS to_manager
  FROM apikeys.deleted_keys;
SELECT apikeys.revoke_key(:'m_cid', 'leaked', with_descendants => true);
SELECT (apikeys.verify(:'c_tok')).code AS grandchild_through_deleted_middle;

-- the manager deletes itself after minting: revoke_key of the deleted key
-- with descendants still revokes them (and says so); without, 42704
SELECT client_id AS m2_cid, token AS m2_tok
  FROM apikeys.create_key('pf_t', 'manager 2', ARRAY['apikeys:*', 'orders:read']) \gset
BEGIN;
SELECT valid FROM apikeys.authenticate(:'m2_tok');
SELECT client_id AS d_cid, token AS d_tok
  FROM apikeys.my_create_key('child of the self-deleted', ARRAY['orders:read']) \gset
SELECT apikeys.my_delete_key(:'m2_cid');
COMMIT;
SELECT err(format('SELECT apikeys.revoke_key(%L, %L)', :'m2_cid', 'leaked')) AS deleted_without_descendants;
SELECT (apikeys.verify(:'d_tok')).code AS before;
-- (its NOTICE names the random client ID: the audit shows the same)
SET client_min_messages = warning;
SELECT apikeys.revoke_key(:'m2_cid', 'leaked', with_descendants => true);
RESET client_min_messages;
SELECT (apikeys.verify(:'d_tok')).code AS child_of_self_deleted_manager;
SELECT replace(detail->>'reason', :'m2_cid', '<manager 2>') AS reason FROM apikeys.audit_log
 WHERE client_id = :'d_cid' AND event = 'revoked';
-- a manager revoked without its tree first: with descendants later, the
-- tree still goes (no 55000 for the revoked key)
SELECT client_id AS m4_cid, token AS m4_tok
  FROM apikeys.create_key('pf_t', 'manager 4', ARRAY['apikeys:*', 'orders:read']) \gset
BEGIN;
SELECT valid FROM apikeys.authenticate(:'m4_tok');
SELECT token AS e_tok FROM apikeys.my_create_key('child of the revoked', ARRAY['orders:read']) \gset
COMMIT;
SELECT apikeys.revoke_key(:'m4_cid', 'lost');
SET client_min_messages = warning;
SELECT err(format('SELECT apikeys.revoke_key(%L, %L, true)', :'m4_cid', 'leaked')) AS revoked_with_descendants;
RESET client_min_messages;
SELECT (apikeys.verify(:'e_tok')).code AS child_of_revoked_manager;
SELECT err(format('SELECT apikeys.revoke_key(%L, %L)', :'m4_cid', 'again')) AS revoked_again_alone;
-- links that lead nowhere go: deleting the last key below a deleted key
-- drops its link too, up the tree
SELECT count(*) AS links_before FROM apikeys.deleted_keys;
SELECT apikeys.delete_key(:'c_cid');
SELECT apikeys.delete_key(:'d_cid');
SELECT count(*) AS links_after FROM apikeys.deleted_keys;
-- an unknown key stays unknown
SELECT err($$SELECT apikeys.revoke_key('ak_pfNoSuchKey00000', NULL, true)$$) AS unknown;

-- 2. report_leaked: the live-secret rule -----------------------------------
SELECT client_id AS r_cid, token AS r_old
  FROM apikeys.create_key('pf_t', 'rotated', ARRAY['orders:read']) \gset
SELECT token AS r_new FROM apikeys.rotate_key(:'r_cid', '1 hour') \gset
-- the grace is over (set directly, as time would)
UPDATE apikeys.keys SET prev_expires_at = now() - interval '1 second'
 WHERE client_id = :'r_cid';
SELECT (apikeys.verify(:'r_old')).code AS old_secret, (apikeys.verify(:'r_new')).code AS new_secret;
SET ROLE regress_nobody;
SELECT apikeys.report_leaked(:'r_old');
RESET ROLE;
SELECT pf_status(:'r_cid') AS old_secret_past_grace_reported, (apikeys.verify(:'r_new')).code AS new_secret;
-- also when the key is disabled (verify answers DISABLED before it looks
-- at the grace)
SELECT apikeys.disable_key(:'r_cid');
SET ROLE regress_nobody;
SELECT apikeys.report_leaked(:'r_old');
RESET ROLE;
SELECT pf_status(:'r_cid') AS disabled_old_secret_reported;
SELECT apikeys.enable_key(:'r_cid');
-- within the grace the old secret is the key's: reported, revoked
SELECT client_id AS g_cid, token AS g_old
  FROM apikeys.create_key('pf_t', 'in grace', ARRAY['orders:read']) \gset
SELECT token AS g_new FROM apikeys.rotate_key(:'g_cid', '1 hour') \gset
SET ROLE regress_nobody;
SELECT apikeys.report_leaked(:'g_old');
RESET ROLE;
SELECT pf_status(:'g_cid') AS old_secret_in_grace_reported;

-- 3. report_leaked where it cannot write: one answer for every token ------
SELECT token AS live_tok FROM apikeys.create_key('pf_t', 'live', ARRAY['orders:read']) \gset
SET ROLE regress_nobody;
BEGIN READ ONLY;
SELECT err(format('SELECT apikeys.report_leaked(%L)', :'live_tok')) AS live;
SELECT err($$SELECT apikeys.report_leaked('ak_junk')$$) AS junk;
SELECT err(format('SELECT apikeys.report_leaked(%L)', :'r_old')) AS past_grace;
ROLLBACK;
RESET ROLE;
SELECT (apikeys.verify(:'live_tok')).code AS live_after;

-- 4. A manager rotates a key it did not create ------------------------------
SELECT client_id AS m3_cid, token AS m3_tok
  FROM apikeys.create_key('pf_t', 'manager 3', ARRAY['apikeys:*', 'orders:read']) \gset
SELECT client_id AS k_cid, token AS k_legit
  FROM apikeys.create_key('pf_t', 'sibling', ARRAY['orders:read'],
                            expires_at => now() + '100 days') \gset
SELECT client_id AS k2_cid, token AS k2_legit
  FROM apikeys.create_key('pf_t', 'sibling rotated back in grace', ARRAY['orders:read'],
                            expires_at => now() + '100 days') \gset
SELECT client_id AS k3_cid, token AS k3_legit
  FROM apikeys.create_key('pf_t', 'sibling rotated back', ARRAY['orders:read'],
                            expires_at => now() + '100 days') \gset
BEGIN;
SELECT valid FROM apikeys.authenticate(:'m3_tok');
SELECT token AS k_thief FROM apikeys.my_rotate_key(:'k_cid', '90 days') \gset
SELECT token AS k2_thief FROM apikeys.my_rotate_key(:'k2_cid', '90 days') \gset
SELECT token AS k3_thief FROM apikeys.my_rotate_key(:'k3_cid', '90 days') \gset
COMMIT;
-- the admin rotates two of them back: k2 keeping the thief's secret for a
-- grace, k3 without a grace
SELECT token AS k2_admin FROM apikeys.rotate_key(:'k2_cid', '1 day') \gset
SELECT token AS k3_admin FROM apikeys.rotate_key(:'k3_cid') \gset
SELECT secret_by_key = :'m3_cid' AS k_secret_by_manager FROM apikeys.keys WHERE client_id = :'k_cid';
SELECT apikeys.revoke_key(:'m3_cid', 'leaked', with_descendants => true);
SELECT (apikeys.verify(:'k_thief')).code AS thief_secret,
       (apikeys.verify(:'k2_thief')).code AS thief_secret_in_grace,
       (apikeys.verify(:'k3_admin')).code AS admin_rotated_back;
SELECT k.name, replace(a.detail->>'reason', :'m3_cid', '<manager 3>') AS reason
  FROM apikeys.audit_log a JOIN apikeys.keys k USING (client_id)
 WHERE a.event = 'revoked' AND k.owner = 'pf_t' AND k.name LIKE 'sibling%'
 ORDER BY k.name;

-- 5. A db_role that owns a protected table ---------------------------------
CREATE ROLE pf_tblowner NOLOGIN;
CREATE ROLE pf_api NOLOGIN;
CREATE ROLE pf_member NOLOGIN IN ROLE pf_tblowner;
GRANT pf_api, pf_member TO regress_verifier;
CREATE TABLE public.pf_docs (owner text, body text);
ALTER TABLE public.pf_docs OWNER TO pf_tblowner;
INSERT INTO public.pf_docs VALUES ('pf_t', 'mine'), ('pf_other', 'THEIRS');
GRANT SELECT ON public.pf_docs TO pf_api, pf_member;
SET ROLE pf_tblowner;
SELECT apikeys.protect('public.pf_docs', 'owner', 'docs');
RESET ROLE;
-- at issue: refused
SELECT err($$SELECT apikeys.create_key('pf_t', 'x', ARRAY['docs:read'], db_role => 'pf_member')$$) AS create_member;
SELECT err($$SELECT apikeys.create_key('pf_t', 'x', ARRAY['docs:read'], db_role => 'pf_tblowner')$$) AS create_owner;
-- at use: the role became a member of the owner since
SELECT client_id AS rk_cid, token AS rk_tok
  FROM apikeys.create_key('pf_t', 'rls key', ARRAY['docs:read'], db_role => 'pf_api') \gset
CREATE FUNCTION public.pf_req(tok text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    PERFORM set_config('request.headers', json_build_object('x-api-key', tok)::text, true);
    BEGIN
        PERFORM apikeys.pre_request();
    EXCEPTION WHEN OTHERS THEN
        RETURN SQLSTATE || ' ' || regexp_replace(SQLERRM, 'ak_[A-Za-z0-9]+', '<client_id>')
               || ' | role ' || current_user;
    END;
    SELECT string_agg(body, ',' ORDER BY body) INTO r FROM public.pf_docs;
    RETURN 'role ' || current_user || ' rows ' || coalesce(r, '');
END $$;
GRANT EXECUTE ON FUNCTION public.pf_req(text) TO regress_verifier;
SET ROLE regress_verifier;
BEGIN; SELECT public.pf_req(:'rk_tok') AS baseline; ROLLBACK;
RESET ROLE;
GRANT pf_tblowner TO pf_api;
SET ROLE regress_verifier;
BEGIN; SELECT public.pf_req(:'rk_tok') AS member_of_owner; ROLLBACK;
RESET ROLE;
SELECT err(format('SELECT apikeys.update_key(%L, db_role => %L)', :'rk_cid', 'pf_member')) AS update_member;
-- with FORCE ROW LEVEL SECURITY the owner is bound by the policies too
SET ROLE pf_tblowner;
SELECT apikeys.protect('public.pf_docs', 'owner', 'docs', force => true);
RESET ROLE;
SET ROLE regress_verifier;
BEGIN; SELECT public.pf_req(:'rk_tok') AS member_of_owner_forced; ROLLBACK;
RESET ROLE;
SELECT err($$SELECT apikeys.update_key(client_id, db_role => 'pf_member') FROM apikeys.key_list WHERE name = 'live' AND owner = 'pf_t'$$) AS update_member_forced;

-- clean up
SELECT apikeys.unprotect('public.pf_docs');
DROP FUNCTION public.pf_req(text);
DROP TABLE public.pf_docs;
SELECT apikeys.revoke_all_keys('pf_t');
DO $$BEGIN
    PERFORM apikeys.delete_key(client_id) FROM apikeys.key_list WHERE owner = 'pf_t';
END$$;
SELECT count(*) AS links_left FROM apikeys.deleted_keys;
DROP ROLE pf_member, pf_api, pf_tblowner;
DROP FUNCTION pf_status(text);
