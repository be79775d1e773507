// examples/delivery/messages.js -- what each outbox event says to a person.
//
// The claim link goes by email and the code by SMS, never both in one
// message: the secret is only reachable with both (Spektrix's handoff).
'use strict';

function render(row, opts) {
  const p = row.payload || {};
  const key = p.name ? `"${p.name}" (${p.client_id})` : p.client_id;
  switch (row.event) {
    case 'handoff_link':
      return {
        to: row.recipient,
        subject: `Your API key ${key} is ready`,
        text: `Open ${opts.claimUrl}${encodeURIComponent(p.claim_token)} and enter the code we texted you ` +
              `to see the key. The link works once, until ${p.claim_expires_at}.`,
      };
    case 'handoff_code':
      return { to: row.recipient, text: `Your API key code: ${p.code}` };
    case 'expires_soon':
      return { to: row.recipient, subject: `API key ${key} expires soon`,
               text: `The API key ${key} expires at ${p.expires_at}. Ask for a new key before then.` };
    case 'rotation_due':
      return { to: row.recipient, subject: `API key ${key} is due for rotation`,
               text: `The secret of API key ${key} was set at ${p.secret_set_at}; rotate it.` };
    case 'revoked_unused':
      return { to: row.recipient, subject: `API key ${key} was revoked`,
               text: `The API key ${key} was revoked because it was not used for ${p.unused_after}.` };
    default:
      // an audit event for applications (channel NULL): pass it on as is
      return { to: row.recipient, event: row.event, client_id: row.client_id, payload: p };
  }
}

module.exports = { render };
