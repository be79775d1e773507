--
-- schema.sql -- the notes API of the app-backend examples (examples/node,
-- and examples/python, whose schema.sql links to this file).  Run as a
-- superuser in the app's database:
--
--     psql -v ON_ERROR_STOP=1 -d mydb -f schema.sql
--
--   notes_app     the role the backend logs in as: it may authenticate keys
--                 (apikeys_verifier) and read/add notes, under RLS
--   public.notes  one row per note, owned by an apikeys owner; visible to
--                 keys of its owner holding notes:read, to everyone when
--                 marked public
--
-- Set the role's password outside this script:
--     ALTER ROLE notes_app PASSWORD '...';
--
CREATE EXTENSION IF NOT EXISTS apikeys CASCADE;

CREATE ROLE notes_app LOGIN IN ROLE apikeys_verifier;

CREATE TABLE public.notes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- the apikeys owner: filled in from the key authenticated in the request
    owner       text NOT NULL DEFAULT apikeys.current_owner(),
    title       text NOT NULL,
    body        text NOT NULL DEFAULT '',
    public      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON public.notes (owner);

-- Rows of the key's owner for notes:read / notes:create / ...; public rows
-- for everyone.  An INSERT for another owner is refused (42501).
SELECT apikeys.protect('public.notes', 'owner', 'notes', public_filter => 'public');

GRANT SELECT, INSERT ON public.notes TO notes_app;

-- Keys are issued by an apikeys_admin, for example:
--   SELECT token FROM apikeys.create_key('acme', 'acme notes',
--            ARRAY['notes:read', 'notes:create']);
