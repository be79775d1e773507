-- apikeys demo: issue, list, verify, and the failures users see.
\pset pager off
\set ECHO queries
CREATE EXTENSION apikeys;

-- Issue a key for an integration.  The secret is shown this once.
SELECT * FROM apikeys.create_key(
    owner         => 'acme-corp',
    name          => 'Accounting sync',
    scopes        => ARRAY['invoices:read', 'invoices:create', 'employees:read(name,start_date)'],
    description   => 'Nightly export to the ledger',
    contact_email => 'it@acme.example',
    contact_phone => '+447894123456') \gset
-- (captured with \gset; here is what it returned)
SELECT :'client_id' AS client_id, :'client_secret' AS client_secret,
       :'token' AS token, :'expires_at' AS expires_at \gx

-- List the owner's keys: no secret, no hash.
SELECT client_id, name, scopes, status, created_at::date, expires_at::date, last_used_at
  FROM apikeys.key_list WHERE owner = 'acme-corp';

-- Verify: VALID
SELECT * FROM apikeys.verify(:'token', 'invoices:read');

-- Verify with a scope the key does not have: INSUFFICIENT_SCOPE
SELECT * FROM apikeys.verify(:'token', 'invoices:delete');

-- A tampered token (one character changed): MALFORMED, no table touched
SELECT * FROM apikeys.verify(overlay(:'token' placing 'x' from 30 for 1), 'invoices:read');

-- Revoke it: REVOKED from the next statement on, in every session
SELECT apikeys.revoke_key(:'client_id', 'demo over');
SELECT valid, code FROM apikeys.verify(:'token', 'invoices:read');

-- The audit trail
SELECT at::time(0), actor, event, client_id, detail FROM apikeys.audit_log ORDER BY id;
