-- sql/upgrade/1.0--1.1.pre.sql: the first part of the update from 1.0 to 1.1,
-- written by hand (tools/build-upgrade-script.py makes apikeys--1.0--1.1.sql
-- from it, the changed functions and views of sql/install/, the .post.sql
-- part and every comment and privilege again).
--
-- Here: what must exist before the new functions are created and what
-- CREATE OR REPLACE cannot do: new tables and types, new columns (with the
-- data they need), DROP FUNCTION for a changed signature or return type,
-- DROP VIEW for a view whose columns change other than at the end, and
-- pg_extension_config_dump for a new table.  Every object schema-qualified.

-- keys.claimed_at: when a handoff key was last claimed (revoke_unused_after
-- counts from there); filled from the claims in the post part
ALTER TABLE apikeys.keys ADD COLUMN claimed_at timestamptz;

-- Prefixes per key (create_key's prefix, apikeys.allowed_prefixes): the
-- prefix a key was issued with is the head of its client ID, so existing
-- rows get the prefix their tokens carry.  The generated column is
-- computed as the table is rewritten.
ALTER TABLE apikeys.keys ADD COLUMN prefix text COLLATE "C"
    GENERATED ALWAYS AS (pg_catalog."left"(client_id, -17)) STORED;
DROP FUNCTION apikeys.create_key(text, text, text[], timestamptz, text, text, text, cidr[],
                                 jsonb, name, integer, interval, boolean);
DROP FUNCTION apikeys._mint(text);
DROP FUNCTION apikeys._check_grant(apikeys.keys, text, apikeys.scope[], timestamptz, text,
                                   integer, interval, cidr[]);
-- derived tokens (10_derived.sql): the two attributes the verification
-- gains (credits_remaining is the credits' own), and the signing secret's
-- table; its row is made in the .post.sql part, by the new function
ALTER TYPE apikeys.verification ADD ATTRIBUTE credits_remaining bigint;
ALTER TYPE apikeys.verification ADD ATTRIBUTE derived boolean;
CREATE TABLE apikeys.derived_signing_key (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    secret  bytea NOT NULL CHECK (pg_catalog.octet_length(secret) OPERATOR(pg_catalog.=) 32)
);
ALTER TABLE apikeys.derived_signing_key ENABLE ROW LEVEL SECURITY;
