#!/usr/bin/env node
// examples/delivery/worker.js -- a small delivery worker for the apikeys outbox.
//
// It connects as a member of apikeys_delivery (PG* environment variables,
// as psql), takes leased rows with apikeys.outbox_take(), hands each to the
// sender for its channel, and reports apikeys.outbox_done() or
// apikeys.outbox_retry().  Delivery is at-least-once: a worker that dies
// after sending and before outbox_done sends that row again once its lease
// ends, so senders should be idempotent (the outbox id is a good key).
//
//   node worker.js            run: drain, then wait for NOTIFY apikeys_events
//   node worker.js --once     drain what is due and exit (tests, cron)
//
// Environment:
//   DELIVERY_SENDER   file (default: console); see senders/index.js
//   DELIVERY_DIR      the file sender's directory
//   CLAIM_URL         the integrator's claim page; the claim token is appended
//   DELIVERY_LEASE    lease per batch (default '1 minute'); keep it above the
//                     time a batch takes to send
'use strict';

const { Client } = require('pg');
const { loadSenders } = require('./senders');
const { render } = require('./messages');

const BATCH = 50;
const POLL_MS = 30000;          // also wake without a NOTIFY, for retries

async function drain(client, senders, opts) {
  let total = 0;
  for (;;) {
    const { rows } = await client.query(
      'SELECT * FROM apikeys.outbox_take($1, $2::interval)', [BATCH, opts.lease]);
    if (rows.length === 0) return total;
    for (const row of rows) {
      try {
        const sender = senders[row.channel || 'event'];
        if (sender) await sender(render(row, opts), row);
        await client.query('SELECT apikeys.outbox_done($1)', [row.id]);
        total++;
      } catch (err) {
        // the error text is stored in the outbox: keep secrets out of it
        await client.query('SELECT apikeys.outbox_retry($1, $2)',
                           [row.id, String(err && err.message || err).slice(0, 500)]);
      }
    }
  }
}

async function main() {
  const once = process.argv.includes('--once');
  const opts = {
    lease: process.env.DELIVERY_LEASE || '1 minute',
    claimUrl: process.env.CLAIM_URL || 'https://example.com/claim?token=',
  };
  const senders = loadSenders(process.env);
  const client = new Client({ application_name: 'apikeys delivery' });
  await client.connect();

  if (once) {
    const n = await drain(client, senders, opts);
    console.log(`delivered ${n}`);
    await client.end();
    return;
  }

  let wake = null;
  client.on('notification', () => { if (wake) wake(); });
  await client.query('LISTEN apikeys_events');
  let stopping = false;
  const stop = () => { stopping = true; if (wake) wake(); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  while (!stopping) {
    await drain(client, senders, opts);
    await new Promise((resolve) => {
      const t = setTimeout(resolve, POLL_MS);
      wake = () => { clearTimeout(t); wake = null; resolve(); };
    });
  }
  await client.end();
}

main().catch((err) => {
  console.error(`apikeys delivery: ${err.message}`);
  process.exit(1);
});
