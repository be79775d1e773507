\i test/setup.sql
--
-- owner_limits: set_owner_policy(owner, rate_limit, rate_window), one window
-- shared by all keys of the owner, checked after each key's own limit
--
-- Without apikeys preloaded the output differs: expected/owner_limits_1.out.
-- This line keeps each run to its own expected file (test/run.sh checks
-- that every file with an alternate prints it).
SELECT apikeys_internal._preloaded() AS preloaded;
SET client_min_messages = warning;

-- Invalid input: the limit and its window (the lifecycle arguments are
-- tested in policies.sql)
SELECT err($$SELECT apikeys.set_owner_policy('ol_acme', rate_limit => -1)$$);
SELECT err($$SELECT apikeys.set_owner_policy('ol_acme', rate_limit => 5, rate_window => '500 milliseconds')$$);
SELECT err($$SELECT apikeys.set_owner_policy('ol_acme', rate_limit => 5, rate_window => '2 days')$$);
SELECT count(*) AS nothing_written FROM apikeys.owner_policies WHERE owner = 'ol_acme';

-- three keys of one owner, one of them with a tight limit of its own;
-- a key of another owner
SELECT apikeys.set_owner_policy('ol_acme', max_keys => 10, rate_limit => 3, rate_window => '1 hour');
SELECT owner, rate_limit, rate_window FROM apikeys.owner_policies WHERE owner = 'ol_acme';
SET client_min_messages = error;   -- the rate-limit warning (random client ID) without preloading
SELECT (k).token AS k1 FROM (SELECT apikeys.create_key('ol_acme', 'own limit 1', '{docs:read}',
                                                       rate_limit => 1, rate_window => '1 hour') k) s \gset
SET client_min_messages = warning;
SELECT (k).token AS k2 FROM (SELECT apikeys.create_key('ol_acme', 'no own limit', '{docs:read}') k) s \gset
SELECT (k).token AS k3 FROM (SELECT apikeys.create_key('ol_acme', 'third', '{docs:read}') k) s \gset
SELECT (k).token AS other FROM (SELECT apikeys.create_key('ol_globex', 'other owner', '{docs:read}') k) s \gset

-- k1 once (owner: 1), k1 again: over its own limit, not counted for the
-- owner; k2 twice (owner: 3); then every key of the owner is limited, the
-- other owner's is not
SELECT (apikeys.verify(:'k1')).code AS k1_first;
SELECT (apikeys.verify(:'k1')).code AS k1_own_limit;
SELECT (apikeys.verify(:'k2')).code AS k2_first, (apikeys.verify(:'k2')).code AS k2_second;
SELECT (apikeys.verify(:'k2')).code AS k2_third, (apikeys.verify(:'k3')).code AS k3_first;
SELECT (apikeys.verify(:'k3')).retry_after BETWEEN 3500 AND 3600 AS retry_after_in_window;
SELECT (apikeys.verify(:'other')).code AS other_owner;
-- failures are not counted: a wrong scope is refused before any rate limit
SELECT (apikeys.verify(:'k3', 'docs:write')).code AS wrong_scope;
-- authenticate raises 54000 like for a key's own limit
SELECT regexp_replace(err(format('SELECT apikeys.authenticate(%L)', :'k2')), '"retry_after": [0-9]+', '"retry_after": <n>') AS authenticate;

-- a higher limit takes effect at once in this session; 0 removes it
SELECT apikeys.set_owner_policy('ol_acme', rate_limit => 5);
SELECT (apikeys.verify(:'k3')).code AS after_raise_1, (apikeys.verify(:'k3')).code AS after_raise_2,
       (apikeys.verify(:'k3')).code AS after_raise_3;
-- NULL leaves the limit as it is
SELECT apikeys.set_owner_policy('ol_acme', max_keys => 11);
SELECT owner, rate_limit, rate_window FROM apikeys.owner_policies WHERE owner = 'ol_acme';
SELECT apikeys.set_owner_policy('ol_acme', rate_limit => 0);
SELECT (apikeys.verify(:'k3')).code AS no_owner_limit;
SELECT owner, rate_limit, rate_window FROM apikeys.owner_policies WHERE owner = 'ol_acme';
-- the audit trail shows each change of the limit
SELECT detail->'rate_limit' AS rate_limit, detail->'rate_window' AS rate_window
  FROM apikeys.audit_log WHERE owner = 'ol_acme' AND event = 'policy_changed'
   AND (detail ? 'rate_limit' OR detail ? 'rate_window') ORDER BY id;

-- clean up
SELECT count(*) > 0 AS deleted FROM apikeys.keys k, LATERAL apikeys.delete_key(k.client_id)
 WHERE k.owner IN ('ol_acme', 'ol_globex');
RESET client_min_messages;
