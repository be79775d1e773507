\i test/setup.sql
--
-- scopes: the apikeys.scope type -- grammar, canonical form, equality and
-- the "grants" test (scope_grants, scopes_grant and their @> operators).
--
-- The operators live in schema apikeys; put it on the search_path or write
-- OPERATOR(apikeys.@>).
SET search_path = apikeys, public;

-- Valid input, and its canonical output: no blanks, fields sorted, no
-- duplicate fields.
SELECT s AS input, s::scope AS canonical
  FROM unnest(ARRAY[
    '*',
    'expenses:*',
    'expenses:read',
    'expenses:download',
    'expenses:approve',                    -- any lowercase word is an action
    'expenses:read_all',
    'expenses:read(amount)',
    'expenses:read(amount,spent_on)',
    'expenses:read( spent_on , amount )',  -- blanks around fields are dropped
    'expenses:read(b,a,b,a)',              -- a field list is a set
    'expenses:read(_x,a1,a_1)',
    'a-b.c/d_e0:read',                     -- resource characters
    '0:read',
    'res:a'
  ]) AS s;

-- lengths: 256 characters is the limit
SELECT length((repeat('r', 251) || ':read')::scope::text) AS at_limit;
-- 64 fields is the limit
SELECT length(('r:read(' || string_agg(chr(97 + i / 26) || chr(97 + i % 26), ',') || ')')::scope::text)
  FROM generate_series(0, 63) AS i;

-- Invalid input: every grammar rule; SQLSTATE 22023 naming the scope
SELECT s AS input, err(format('SELECT %L::apikeys.scope', s)) AS error
  FROM unnest(ARRAY[
    '',                        -- empty
    ' ',
    '**',
    '*:read',                  -- a resource is not a wildcard
    'expenses',                -- no action
    'expenses:',
    ':read',                   -- no resource
    'Expenses:read',           -- uppercase resource
    'expenses:Read',           -- uppercase action
    'expenses:read(Amount)',   -- uppercase field
    'expenses :read',          -- blanks outside a field list
    ' expenses:read',
    'expenses:read ',
    'expenses: read',
    'expenses:re-ad',          -- action is [a-z][a-z_]*
    'expenses:9read',
    'expenses:_read',
    'expenses:read:all',
    'exp*:read',
    'expenses:*:*',
    'expenses:*(amount)',      -- no field list after *
    'expenses:read()',         -- empty field list
    'expenses:read(amount,)',
    'expenses:read(,amount)',
    'expenses:read(amount,,owner)',
    'expenses:read(amount owner)',
    'expenses:read(1amount)',  -- field is [a-z_][a-z0-9_]*
    'expenses:read(amount-x)',
    'expenses:read(amount',
    'expenses:read(amount)x',
    'expenses:read(amount)(owner)',
    'expenses:read(*)',
    'dépenses:read',           -- ASCII only
    E'expenses:read\n',
    E'expenses:read\t'
  ]) AS s;
-- too long (the message quotes at most 200 characters of it)
SELECT err(format('SELECT %L::apikeys.scope', repeat('r', 252) || ':read')) AS too_long;
SELECT err(format('SELECT %L::apikeys.scope',
               'r:read(' || string_agg(chr(97 + i / 26) || chr(97 + i % 26), ',') || ')')) AS too_many_fields
  FROM generate_series(0, 64) AS i;

-- The cast from text checks the grammar; the cast to text is free.
SELECT 'expenses:read( a )'::text::scope AS from_text,
       pg_typeof('expenses:read'::scope::text) AS to_text;
SELECT err($$SELECT 'nope'::text::apikeys.scope$$) AS bad_text_cast;
SELECT err($$SELECT ARRAY['expenses:read', 'bad scope']::apikeys.scope[]$$) AS bad_array_element;
-- A table column of type scope refuses bad values on INSERT.
CREATE TEMP TABLE t_scopes (s apikeys.scope);
INSERT INTO t_scopes VALUES ('expenses:read(b, a)');
SELECT err($$INSERT INTO t_scopes VALUES ('expenses read')$$) AS bad_insert;
SELECT * FROM t_scopes;
DROP TABLE t_scopes;

-- Equality compares canonical forms.
SELECT 'expenses:read(a, b)'::scope = 'expenses:read(b,a)' AS eq_reordered,
       'expenses:read(a,a)'::scope = 'expenses:read(a)' AS eq_dup,
       'expenses:read'::scope = 'expenses:read(a)' AS eq_fields,
       'expenses:read'::scope <> 'expenses:*' AS ne,
       'expenses:read(b)'::scope <> 'expenses:read( b )' AS ne_blanks;
SELECT err($$SELECT 'expenses:read'::apikeys.scope OPERATOR(apikeys.=) ' expenses:read'$$) AS eq_bad_literal;
SELECT NULL::scope = 'expenses:read' AS null_eq;

-- Matching, one granted scope: granted @> required.  This is the table
-- "Scope matching" of the README, row by row.
SELECT g AS granted, r AS required, g::scope @> r::scope AS grants,
       scope_grants(g::scope, r::scope) AS via_function
  FROM (VALUES
    ('*',                              '*'),
    ('*',                              'expenses:delete'),
    ('*',                              'expenses:read(amount)'),
    ('expenses:*',                     'expenses:delete'),
    ('expenses:*',                     'expenses:read(amount)'),
    ('expenses:*',                     'expenses:*'),
    ('expenses:*',                     '*'),
    ('expenses:*',                     'invoices:read'),
    ('expenses:read',                  'expenses:read'),
    ('expenses:read',                  'expenses:read(amount,owner)'),
    ('expenses:read',                  'expenses:update'),
    ('expenses:read',                  'expenses:*'),
    ('expenses:read(amount,spent_on)', 'expenses:read'),
    ('expenses:read(amount,spent_on)', 'expenses:read(amount)'),
    ('expenses:read(amount,spent_on)', 'expenses:read(spent_on,amount)'),
    ('expenses:read(amount,spent_on)', 'expenses:read(amount,description)'),
    ('expenses:read(amount,spent_on)', 'expenses:update(amount)'),
    ('expenses:read',                  'expenses/2024:read'),
    ('expenses/2024:read',             'expenses:read')
  ) AS v(g, r);

-- Matching, a key's set of scopes: scope[] @> required.  Fields add up
-- across scopes, and a field-less grant of the action wins.
SELECT g AS granted, r AS required, g::scope[] @> r::scope AS grants,
       scopes_grant(g::scope[], r::scope) AS via_function
  FROM (VALUES
    ('{}',                                                'expenses:read'),
    ('{expenses:read(amount),expenses:read(owner)}',      'expenses:read(amount,owner)'),
    ('{expenses:read(amount),expenses:read(owner)}',      'expenses:read(amount,description)'),
    ('{expenses:read(amount),expenses:read}',             'expenses:read(description)'),
    ('{expenses:read(amount),invoices:*}',                'expenses:read(description)'),
    ('{expenses:update,expenses:read(amount)}',           'expenses:read(amount)'),
    ('{expenses:update,invoices:read}',                   'expenses:read'),
    ('{invoices:*,*}',                                    'expenses:delete')
  ) AS v(g, r);

-- Invalid input to the matchers: 22023, never a quiet false.
SELECT err($$SELECT apikeys.scope_grants('*', 'expenses')$$) AS bad_required,
       err($$SELECT apikeys.scopes_grant('{Expenses:read}', 'expenses:read')$$) AS bad_granted;
-- NULL in, NULL out (STRICT)
SELECT scope_grants(NULL, 'expenses:read') IS NULL AS null_granted,
       scopes_grant(ARRAY[NULL]::scope[], 'expenses:read') AS null_element;

-- PUBLIC may use the type and the matchers.
SET ROLE regress_nobody;
SELECT 'expenses:read(b,a)'::apikeys.scope OPERATOR(apikeys.@>) 'expenses:read(a)'::apikeys.scope AS as_nobody;
RESET ROLE;
RESET search_path;

-- Scopes sort, group and hash without a collation, so scope[] columns can
-- be ANALYZEd (autovacuum analyzes apikeys.keys) and indexed.
SELECT s FROM unnest('{b:read, a:write, a:read, *, a:read}'::apikeys.scope[]) s
 ORDER BY s USING OPERATOR(apikeys.<);
SELECT s, count(*) FROM unnest('{b:read, a:read, "a:read(y, x)", "a:read(x,y)"}'::apikeys.scope[]) s
 GROUP BY s ORDER BY s USING OPERATOR(apikeys.<);
CREATE TEMP TABLE scope_stats (s apikeys.scope, ss apikeys.scope[]);
INSERT INTO scope_stats SELECT ('r' || i % 7 || ':read')::apikeys.scope,
                               ARRAY[('r' || i % 5 || ':read')::apikeys.scope] FROM generate_series(1, 500) i;
ANALYZE scope_stats;
SELECT attname, n_distinct FROM pg_stats WHERE tablename = 'scope_stats' ORDER BY attname;
CREATE INDEX ON scope_stats (s);
CREATE INDEX ON scope_stats USING hash (s);
SELECT count(*) FROM scope_stats WHERE s OPERATOR(apikeys.=) 'r3:read';
-- (a key, when the file runs alone after CREATE EXTENSION and there is none)
SELECT CASE WHEN EXISTS (SELECT 1 FROM apikeys.keys) THEN true
            ELSE (SELECT true FROM apikeys.create_key('regress-scopes', 'analyzed', ARRAY['docs:read'])) END
       AS has_a_key;
ANALYZE apikeys.keys;
SELECT count(*) > 0 AS keys_analyzed FROM pg_stats WHERE schemaname = 'apikeys' AND tablename = 'keys';
