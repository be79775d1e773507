// examples/delivery/senders/index.js -- pluggable senders, one per channel.
//
// A sender is an async function (message, row) that throws when delivery
// failed (the row is then retried with backoff).  Channels: email, sms, and
// event (outbox rows with channel NULL, for applications and webhooks).
// Plug a real provider in the same shape, e.g. nodemailer for email or an
// SMS gateway's HTTP API, and select it with DELIVERY_SENDER.
'use strict';

const fileSenders = require('./file');
const consoleSenders = require('./console');

function loadSenders(env) {
  switch (env.DELIVERY_SENDER || 'console') {
    case 'file':
      if (!env.DELIVERY_DIR) throw new Error('DELIVERY_DIR is required for the file sender');
      return fileSenders(env.DELIVERY_DIR);
    case 'console':
      return consoleSenders();
    default:
      throw new Error(`unknown DELIVERY_SENDER "${env.DELIVERY_SENDER}"`);
  }
}

module.exports = { loadSenders };
