\i test/setup.sql
--
-- policies: set_owner_policy's lifecycle settings and apply_policies():
-- revoke unused keys, warn before expiry, ask for rotation; each action
-- audited and enqueued once; revoked and expired keys left alone; a key
-- is revoked as unused only when its non-use is proven.
--
-- Without apikeys preloaded nothing is revoked as unused (uses in read-only
-- transactions and pre_request are not recorded): expected/policies_1.out.
SELECT apikeys_internal._preloaded() AS preloaded;
-- a fresh server may have lost uses of its last run (none here: accepted)
SELECT apikeys_internal._usage_accept_losses();

-- Invalid input: set_owner_policy
SET ROLE regress_admin;
SELECT err($$SELECT apikeys.set_owner_policy('hygiene', revoke_unused_after => '-1 day')$$);
SELECT err($$SELECT apikeys.set_owner_policy('hygiene', revoke_unused_after => '101 years')$$);
SELECT err($$SELECT apikeys.set_owner_policy('hygiene', warn_before_expiry => '-1 day')$$);
SELECT err($$SELECT apikeys.set_owner_policy('hygiene', rotate_every => '-1 day')$$);
SELECT err($$SELECT apikeys.set_owner_policy('hygiene', rate_limit => -1)$$);
SELECT err($$SELECT apikeys.set_owner_policy('hygiene', rate_limit => 10, rate_window => '0.5 seconds')$$);
SELECT err($$SELECT apikeys.set_owner_policy('hygiene', rate_limit => 10, rate_window => '2 days')$$);
RESET ROLE;
SELECT count(*) AS no_policy_row FROM apikeys.owner_policies WHERE owner = 'hygiene';

-- An owner with keys in every state
SET ROLE regress_admin;
SELECT apikeys.set_owner_policy('hygiene', max_keys => 20);
SELECT (k).client_id AS unused FROM (SELECT apikeys.create_key('hygiene', 'unused', '{}',
        contact_email => 'ops@example.com') AS k) s \gset
SELECT (k).client_id AS never FROM (SELECT apikeys.create_key('hygiene', 'never used', '{}') AS k) s \gset
SELECT (k).client_id AS fresh FROM (SELECT apikeys.create_key('hygiene', 'fresh', '{}') AS k) s \gset
SELECT (k).client_id AS used FROM (SELECT apikeys.create_key('hygiene', 'used', '{}') AS k) s \gset
SELECT (k).client_id AS expiring FROM (SELECT apikeys.create_key('hygiene', 'expiring', '{}',
        expires_at => now() + interval '3 days', contact_email => 'ops@example.com') AS k) s \gset
SELECT (k).client_id AS stale FROM (SELECT apikeys.create_key('hygiene', 'stale secret', '{}') AS k) s \gset
SELECT (k).client_id AS revoked FROM (SELECT apikeys.create_key('hygiene', 'revoked', '{}') AS k) s \gset
SELECT (k).client_id AS expired FROM (SELECT apikeys.create_key('hygiene', 'expired', '{}',
        expires_at => now() + interval '1 day') AS k) s \gset
SELECT apikeys.revoke_key(:'revoked', 'done with it');
RESET ROLE;
-- the past, as the superuser writes it
UPDATE apikeys.keys SET created_at = now() - interval '200 days', secret_set_at = now() - interval '200 days'
 WHERE owner = 'hygiene' AND name <> 'fresh';
UPDATE apikeys.keys SET last_used_at = now() - interval '100 days' WHERE client_id = :'unused';
UPDATE apikeys.keys SET last_used_at = now() - interval '1 day'
 WHERE owner = 'hygiene' AND name NOT IN ('unused', 'never used');
UPDATE apikeys.keys SET secret_set_at = now() - interval '1 day'
 WHERE owner = 'hygiene' AND name <> 'stale secret';
UPDATE apikeys.keys SET expires_at = now() - interval '1 hour' WHERE client_id = :'expired';
-- a rotation records when the secret was set
SET ROLE regress_admin;
SELECT apikeys.rotate_key(:'fresh') IS NOT NULL AS rotated;
RESET ROLE;
SELECT secret_set_at > now() - interval '1 minute' AS just_set FROM apikeys.keys WHERE client_id = :'fresh';
SELECT revoked_at AS revoked_at_before FROM apikeys.keys WHERE client_id = :'revoked' \gset

-- Without a policy only the expiry warning is on
-- (apikeys.default_warn_before_expiry, 14 days): a key never dies
-- unannounced.  With that off too: no action.
SET apikeys.default_warn_before_expiry = 0;
SET ROLE regress_admin;
SELECT apikeys.apply_policies() AS actions;
RESET ROLE;
RESET apikeys.default_warn_before_expiry;
SET ROLE regress_admin;
SELECT apikeys.set_owner_policy('hygiene', revoke_unused_after => '90 days',
        warn_before_expiry => '14 days', rotate_every => '30 days');
RESET ROLE;
SELECT revoke_unused_after, warn_before_expiry, rotate_every FROM apikeys.owner_policies WHERE owner = 'hygiene';
SELECT detail FROM apikeys.audit_log WHERE event = 'policy_changed' AND owner = 'hygiene' ORDER BY id DESC LIMIT 1;
DELETE FROM apikeys.outbox;

-- apply_policies: each action once
SET ROLE regress_admin;
SELECT apikeys.apply_policies() AS actions;
SELECT apikeys.apply_policies() AS actions_second_run;
SELECT name, status FROM apikeys.key_list WHERE owner = 'hygiene' ORDER BY name;
RESET ROLE;
SELECT o.event, o.channel, o.recipient, k.name, o.payload->'detail'->>'reason' AS reason
  FROM apikeys.outbox o JOIN apikeys.keys k USING (client_id)
 ORDER BY k.name, o.id;
SELECT a.event, k.name, a.detail->>'reason' AS reason, a.detail->>'policy' AS policy,
       a.detail ? 'outbox_id' AS links_outbox
  FROM apikeys.audit_log a JOIN apikeys.keys k USING (client_id)
 WHERE a.owner = 'hygiene' AND a.event IN ('revoked', 'expires_soon', 'rotation_due')
 ORDER BY k.name, a.id;
-- nothing happened to the revoked and the expired key
SELECT revoked_at = :'revoked_at_before' AS revoked_untouched FROM apikeys.keys WHERE client_id = :'revoked';
SELECT revoked_at IS NULL AS expired_not_revoked FROM apikeys.keys WHERE client_id = :'expired';
SELECT count(*) AS events_for_dead_keys FROM apikeys.outbox WHERE client_id IN (:'revoked', :'expired');

-- A shortened expiry is a new subject: warned again, once
SET ROLE regress_admin;
SELECT apikeys.update_key(:'expiring', expires_at => now() + interval '2 days');
SELECT apikeys.apply_policies() AS actions;
SELECT apikeys.apply_policies() AS actions_again;
-- a rotation answers rotation_due; a later one is due only after rotate_every
SELECT apikeys.rotate_key(:'stale') IS NOT NULL AS rotated;
SELECT apikeys.apply_policies() AS actions;
RESET ROLE;
SELECT event, count(*) FROM apikeys.outbox WHERE client_id = :'expiring' AND event = 'expires_soon' GROUP BY 1;

-- Owners without a policy of their own follow the apikeys.default_* settings;
-- '0' in an owner's policy turns one off whatever the default
SET ROLE regress_admin;
SELECT (k).client_id AS dflt FROM (SELECT apikeys.create_key('defaults', 'old', '{}') AS k) s \gset
SELECT (k).client_id AS optout FROM (SELECT apikeys.create_key('optout', 'old', '{}') AS k) s \gset
SELECT apikeys.set_owner_policy('optout', revoke_unused_after => '0');
RESET ROLE;
UPDATE apikeys.keys SET created_at = now() - interval '400 days' WHERE owner IN ('defaults', 'optout');
SET apikeys.default_revoke_unused_after = '365d';
SET ROLE regress_admin;
SELECT apikeys.apply_policies() AS actions;
SELECT owner, status FROM apikeys.key_list WHERE owner IN ('defaults', 'optout') ORDER BY owner;
RESET ROLE;
RESET apikeys.default_revoke_unused_after;
SELECT event, channel, recipient FROM apikeys.outbox WHERE client_id = :'dflt' ORDER BY id;
-- the default expiry warning: a key of an owner without a policy, 10 days
-- from its expiry, is warned (to its contact); an owner's '0' turns it off
SET ROLE regress_admin;
SELECT (k).client_id AS dflt_exp FROM (SELECT apikeys.create_key('defaults', 'ending', '{}',
        expires_at => now() + interval '10 days', contact_email => 'dev@example.com') AS k) s \gset
SELECT (k).client_id AS optout_exp FROM (SELECT apikeys.create_key('optout', 'ending', '{}',
        expires_at => now() + interval '10 days', contact_email => 'dev@example.com') AS k) s \gset
SELECT apikeys.set_owner_policy('optout', warn_before_expiry => '0');
SELECT apikeys.apply_policies() AS actions;
RESET ROLE;
SELECT k.owner, o.event, o.channel, o.recipient
  FROM apikeys.outbox o JOIN apikeys.keys k USING (client_id)
 WHERE o.client_id IN (:'dflt_exp', :'optout_exp') AND o.event = 'expires_soon';

-- Privileges
SET ROLE regress_verifier;
SELECT err('SELECT apikeys.apply_policies()');
SELECT err($$SELECT apikeys.set_owner_policy('x', rotate_every => '1 day')$$);
RESET ROLE;

-- Only a proven non-use revokes.  A key verified, its use flushed to the
-- journal and not rolled up, is not unused (apply_policies reads the last
-- uses awaiting the rollup); an idle key beside it is revoked (preloaded).
SET ROLE regress_admin;
SELECT (k).client_id AS jused, (k).token AS jtok
  FROM (SELECT apikeys.create_key('journaled', 'used lately', '{}') AS k) s \gset
SELECT (k).client_id AS jidle FROM (SELECT apikeys.create_key('journaled', 'idle', '{}') AS k) s \gset
SELECT (k).client_id AS jrb, (k).token AS jrbtok
  FROM (SELECT apikeys.create_key('journaled', 'flush rolled back', '{}') AS k) s \gset
SELECT apikeys.set_owner_policy('journaled', revoke_unused_after => '30 days');
RESET ROLE;
UPDATE apikeys.keys SET created_at = now() - interval '100 days' WHERE owner = 'journaled';
SELECT apikeys.flush_usage() >= 0 AS rolled_up_before;
SELECT (apikeys.verify(:'jtok')).code;
SELECT apikeys.flush_usage(false) >= 0 AS journaled;
SELECT count(*) AS rolled_up_rows FROM apikeys.usage WHERE client_id = :'jused';
-- a flush whose transaction rolls back gives the counts it took back
SELECT (apikeys.verify(:'jrbtok')).code;
BEGIN;
SELECT apikeys.flush_usage(false) >= 0 AS journaled_then_rolled_back;
ROLLBACK;
SELECT journal_in_recent FROM apikeys_internal._usage_health();
SET ROLE regress_admin;
SELECT apikeys.apply_policies() AS actions;
SELECT name, status FROM apikeys.key_list WHERE owner = 'journaled' ORDER BY name;
RESET ROLE;
SELECT detail->>'reason' AS reason, detail->'keys' AS keys, detail->'client_ids' ? :'jidle' AS names_idle
  FROM apikeys.audit_log WHERE event = 'unused_not_revoked' ORDER BY id DESC LIMIT 1;
SELECT count(*) AS rolled_up_rows_after FROM apikeys.usage WHERE client_id = :'jused';
-- the rolled-back flush's count is not lost (counted once preloaded; nothing without)
SELECT code, count FROM apikeys.key_usage WHERE client_id = :'jrb' ORDER BY code;


-- A handoff key cannot be used before it is claimed: its quiet time counts
-- from the claim, not from its creation.  Both keys below were created 100
-- days ago and never used; the one claimed now stays, the one claimed 100
-- days ago is revoked (preloaded; without preloading nothing is revoked).
SET ROLE regress_admin;
SELECT apikeys.set_owner_policy('handed', revoke_unused_after => '30 days');
SELECT (k).client_id AS hnew FROM (SELECT apikeys.create_key('handed', 'claimed now', '{}',
        contact_email => 'int@example.com', contact_phone => '+447894123456', handoff => true) AS k) s \gset
SELECT (k).client_id AS hold FROM (SELECT apikeys.create_key('handed', 'claimed long ago', '{}',
        contact_email => 'int@example.com', contact_phone => '+447894123456', handoff => true) AS k) s \gset
RESET ROLE;
UPDATE apikeys.keys SET created_at = now() - interval '100 days' WHERE owner = 'handed';
SELECT payload->>'claim_token' AS ct_new FROM apikeys.outbox WHERE client_id = :'hnew' AND event = 'handoff_link' \gset
SELECT payload->>'code' AS code_new FROM apikeys.outbox WHERE client_id = :'hnew' AND event = 'handoff_code' \gset
SELECT payload->>'claim_token' AS ct_old FROM apikeys.outbox WHERE client_id = :'hold' AND event = 'handoff_link' \gset
SELECT payload->>'code' AS code_old FROM apikeys.outbox WHERE client_id = :'hold' AND event = 'handoff_code' \gset
SET ROLE regress_verifier;
SELECT (apikeys.claim_key(:'ct_new', :'code_new')).client_id = :'hnew' AS claimed_new;
SELECT (apikeys.claim_key(:'ct_old', :'code_old')).client_id = :'hold' AS claimed_old;
RESET ROLE;
SELECT claimed_at > now() - interval '1 minute' AS claim_recorded FROM apikeys.keys WHERE client_id = :'hnew';
UPDATE apikeys.keys SET claimed_at = now() - interval '100 days' WHERE client_id = :'hold';
SET ROLE regress_admin;
SELECT apikeys.apply_policies() >= 0 AS applied;
SELECT name, status FROM apikeys.key_list WHERE owner = 'handed' ORDER BY name;
RESET ROLE;
