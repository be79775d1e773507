// examples/delivery/senders/console.js -- prints where a message would go,
// never its text (which may hold a claim link or code).
'use strict';

module.exports = function consoleSenders() {
  const log = (channel) => async (msg, row) => {
    console.log(`${channel} #${row.id} ${row.event} to ${msg.to || '(applications)'}`);
  };
  return { email: log('email'), sms: log('sms'), event: log('event') };
};
