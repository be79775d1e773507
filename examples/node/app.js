#!/usr/bin/env node
// examples/node/app.js -- an Express API whose endpoints apikeys protects.
//
//   GET  /notes   public: anyone sees the public notes; a request with a
//                 key (notes:read) also sees its owner's notes
//   POST /notes   scoped: needs a key holding notes:create; the note
//                 belongs to the key's owner
//
// What makes it hard to get wrong, and what to keep if you copy it:
//   - one transaction per request on one pooled connection: BEGIN,
//     apikeys.authenticate(), the queries, COMMIT.  The key's identity
//     lasts until COMMIT and never leaks to the next request on the same
//     connection; authenticate() outside a transaction warns (25P01),
//     because the next statement would run as nobody.
//   - bind parameters ($1, $2 ...) for the token and every value;
//   - the client's address passed as client_ip, so allowed_cidrs and the
//     per-address failure throttle see the caller, not this server (behind
//     a reverse proxy set TRUST_PROXY so req.ip is the client's address);
//   - authenticate()'s SQLSTATEs mapped to HTTP: 28000 -> 401 with
//     WWW-Authenticate, 42501 -> 403, 54000 -> 429 with Retry-After.
//
// Configuration: the PG* environment variables (PGHOST, PGDATABASE,
// PGUSER=notes_app ...), PORT (default 3000), HOST (default 127.0.0.1),
// TRUST_PROXY (Express's "trust proxy" setting, e.g. loopback).
'use strict';

const express = require('express');
const { Pool } = require('pg');

const pool = new Pool({ max: Number(process.env.POOL_SIZE || 10) });
const app = express();
app.use(express.json({ limit: '16kb' }));
if (process.env.TRUST_PROXY) app.set('trust proxy', process.env.TRUST_PROXY);

const REALM = 'ApiKey realm="api"';

// httpAnswer maps an error of apikeys.authenticate() (or of a policy) to
// an HTTP answer; null for any other error (a 500).  authenticate()'s
// errors carry {"code", "http_status", "retry_after"} as a JSON detail;
// an RLS refusal (42501) has none.
function httpAnswer(err) {
  let d = null;
  try { d = JSON.parse(err.detail || ''); } catch (e) { d = null; }
  const status = d && d.http_status ? d.http_status
    : { '28000': 401, '42501': 403, '54000': 429 }[err.code];
  switch (status) {
    case 401: // MALFORMED NOT_FOUND EXPIRED DISABLED REVOKED
      return { status, headers: { 'WWW-Authenticate': `${REALM}, error="invalid_key"` } };
    case 403: // INSUFFICIENT_SCOPE IP_NOT_ALLOWED, or refused by RLS
      return { status, headers: {} };
    case 429: // RATE_LIMITED
      return { status, headers: { 'Retry-After': String((d && d.retry_after) || 1) } };
    default:
      return null;
  }
}

// withKey wraps a handler in a request transaction.  scope is what the
// endpoint needs; keyRequired false lets a request without a key through
// as anonymous (RLS then shows public rows only).  handler(db, req)
// returns { status, body }.
function withKey(scope, keyRequired, handler) {
  return async (req, res, next) => {
    const token = req.get('x-api-key');
    if (!token && keyRequired) {
      res.set('WWW-Authenticate', REALM).status(401).json({ error: 'an API key is required' });
      return;
    }
    let db;
    try {
      db = await pool.connect();
    } catch (err) {
      next(err);
      return;
    }
    let broken = false;
    try {
      await db.query('BEGIN');
      if (token) {
        await db.query('SELECT apikeys.authenticate($1, $2, $3)', [token, scope, req.ip]);
      }
      const out = await handler(db, req);
      await db.query('COMMIT');
      res.status(out.status || 200).json(out.body);
    } catch (err) {
      await db.query('ROLLBACK').catch(() => { broken = true; });
      const answer = httpAnswer(err);
      if (answer) res.set(answer.headers).status(answer.status).json({ error: err.message });
      else next(err);
    } finally {
      db.release(broken);
    }
  };
}

app.get('/notes', withKey('notes:read', false, async (db) => {
  const r = await db.query('SELECT id, owner, title, body, public FROM public.notes ORDER BY id');
  return { body: r.rows };
}));

app.post('/notes', withKey('notes:create', true, async (db, req) => {
  const { title, body = '', public: isPublic = false } = req.body || {};
  if (typeof title !== 'string' || title === '' || typeof body !== 'string' ||
      typeof isPublic !== 'boolean') {
    return { status: 400, body: { error: 'title (a string) is required; body a string, public a boolean' } };
  }
  const r = await db.query(
    'INSERT INTO public.notes (title, body, public) VALUES ($1, $2, $3) RETURNING id, owner, title, body, public',
    [title, body, isPublic]);
  return { status: 201, body: r.rows[0] };
}));

// errors that are not the caller's: logged, answered 500 without details
app.use((err, req, res, next) => { // eslint-disable-line no-unused-vars
  if (err.type === 'entity.parse.failed') {
    res.status(400).json({ error: 'invalid JSON' });
    return;
  }
  console.error(err);
  res.status(500).json({ error: 'internal error' });
});

const port = Number(process.env.PORT || 3000);
const host = process.env.HOST || '127.0.0.1';
const server = app.listen(port, host, () => {
  console.log(`listening on http://${host}:${server.address().port}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => pool.end().then(() => process.exit(0))));
}
