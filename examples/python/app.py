#!/usr/bin/python3
"""examples/python/app.py -- a FastAPI service whose endpoints apikeys protects.

  GET  /notes   public: anyone sees the public notes; a request with a key
                (notes:read) also sees its owner's notes
  POST /notes   scoped: needs a key holding notes:create; the note belongs
                to the key's owner

What makes it hard to get wrong, and what to keep if you copy it:
  - one transaction per request on one pooled connection: BEGIN,
    apikeys.authenticate(), the queries, COMMIT.  The key's identity lasts
    until COMMIT and never leaks to the next request on the connection;
    authenticate() outside a transaction warns (25P01), because the next
    statement would run as nobody.
  - bind parameters (%s, sent separately by psycopg 3) for the token and
    every value;
  - the client's address passed as client_ip, so allowed_cidrs and the
    per-address failure throttle see the caller, not this server (behind a
    reverse proxy run uvicorn with --proxy-headers --forwarded-allow-ips so
    request.client.host is the client's address);
  - authenticate()'s SQLSTATEs mapped to HTTP: 28000 -> 401 with
    WWW-Authenticate, 42501 -> 403, 54000 -> 429 with Retry-After.

Debian 12: apt-get install python3-psycopg python3-psycopg-pool
python3-fastapi python3-uvicorn.  Configuration: the PG* environment
variables (PGHOST, PGDATABASE, PGUSER=notes_app ...), PORT (default 8000),
HOST (default 127.0.0.1).  Run: python3 app.py
"""
import json
import os
from contextlib import contextmanager
from typing import Optional

import psycopg
import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

REALM = 'ApiKey realm="api"'

# conninfo "": libpq's PG* environment variables say where and who
pool = ConnectionPool("", min_size=1, max_size=int(os.environ.get("POOL_SIZE", "10")),
                      kwargs={"row_factory": dict_row}, open=False)
app = FastAPI(title="notes")


@app.on_event("startup")
def open_pool():
    pool.open(wait=True)


@app.on_event("shutdown")
def close_pool():
    pool.close()


def http_answer(err: psycopg.Error):
    """The HTTP status and headers for an error of apikeys.authenticate()
    (or of a policy); None for any other error (a 500).  authenticate()'s
    errors carry {"code", "http_status", "retry_after"} as a JSON detail;
    an RLS refusal (42501) has none."""
    try:
        d = json.loads(err.diag.message_detail or "")
    except ValueError:
        d = None
    if isinstance(d, dict) and d.get("http_status"):
        status = d["http_status"]
    else:
        d = None
        status = {"28000": 401, "42501": 403, "54000": 429}.get(err.sqlstate)
    if status == 401:  # MALFORMED NOT_FOUND EXPIRED DISABLED REVOKED
        return 401, {"WWW-Authenticate": REALM + ', error="invalid_key"'}
    if status == 403:  # INSUFFICIENT_SCOPE IP_NOT_ALLOWED, or refused by RLS
        return 403, {}
    if status == 429:  # RATE_LIMITED
        return 429, {"Retry-After": str((d or {}).get("retry_after") or 1)}
    return None


@app.exception_handler(psycopg.Error)
def database_error(request: Request, err: psycopg.Error):
    answer = http_answer(err)
    if answer is None:
        raise err  # logged by uvicorn, answered 500
    status, headers = answer
    return JSONResponse({"detail": err.diag.message_primary}, status_code=status, headers=headers)


@contextmanager
def request_transaction(request: Request, token: Optional[str], scope: str):
    """One transaction on one pooled connection for the whole request: the
    key's context lasts until it commits (or rolls back on an error)."""
    with pool.connection() as conn:
        with conn.transaction():
            if token:
                conn.execute("SELECT apikeys.authenticate(%s, %s, %s)",
                             (token, scope, request.client.host))
            yield conn


@app.get("/notes")
def list_notes(request: Request, x_api_key: Optional[str] = Header(None)):
    with request_transaction(request, x_api_key, "notes:read") as db:
        return db.execute("SELECT id, owner, title, body, public FROM public.notes ORDER BY id").fetchall()


class NewNote(BaseModel):
    title: str
    body: str = ""
    public: bool = False


@app.post("/notes", status_code=201)
def create_note(note: NewNote, request: Request, x_api_key: Optional[str] = Header(None)):
    if not x_api_key:
        raise HTTPException(401, "an API key is required", headers={"WWW-Authenticate": REALM})
    with request_transaction(request, x_api_key, "notes:create") as db:
        return db.execute("INSERT INTO public.notes (title, body, public) VALUES (%s, %s, %s) "
                          "RETURNING id, owner, title, body, public",
                          (note.title, note.body, note.public)).fetchone()


if __name__ == "__main__":
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
