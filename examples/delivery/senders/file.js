// examples/delivery/senders/file.js -- a sink that writes each message to a
// file named for its channel and outbox id (tests, local development).
// Writing the same id twice overwrites: idempotent, as at-least-once needs.
'use strict';

const fs = require('fs');
const path = require('path');

module.exports = function fileSenders(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const write = (channel) => async (msg, row) => {
    const file = path.join(dir, `${channel}-${row.id}.json`);
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(msg, null, 2), { mode: 0o600 });
    fs.renameSync(`${file}.tmp`, file);
  };
  return { email: write('email'), sms: write('sms'), event: write('event') };
};
