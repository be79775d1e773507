#!/usr/bin/env python3
"""tools/move-internal.py: moves apikeys' internal helpers out of the user's way.

Every function named _* that the extension creates in schema apikeys moves
to schema apikeys_internal, so that \\df apikeys.* lists the public surface
only (issue 21 item 5).  The functions keep their names, bodies, grants and
comments; only the schema they are found in changes.

A tool rather than a hand edit because other branches add apikeys._*
functions while this one is written: run it on the merged tree.  It is
idempotent (a second run changes nothing), and a run on a tree where new
apikeys._* functions appeared moves those too.

What it does:
  1. collects the internal names: every function named _* created in
     schema apikeys (or apikeys_internal) by sql/install/*.sql,
     sql/upgrade/*.sql or the released install scripts (apikeys--X.sql in
     sql/released.sha256), minus EXCEPTIONS below;
  2. rewrites every reference apikeys._name to apikeys_internal._name (also
     "apikeys"."_name", and apikeys\\._name inside regular expressions) in
     the tracked text files: sql/install/, sql/upgrade/, src/, test/,
     examples/, bench/, fuzz/, docs/, README.md, CONTRIBUTING.md.  Not in
     the released scripts, the generated scripts (make and
     tools/build-upgrade-script.py remake them), CHANGELOG.md (history) or
     docs/pending/surface.md (which names the old places);
  3. in test/, widens the schema filters that mean "the extension's
     functions" (pronamespace = 'apikeys'::regnamespace, refobjid =
     'apikeys'::regnamespace, and nspname = 'apikeys' in a statement that
     reads pronamespace) to both schemas, so the privilege, comment,
     search_path and inventory checks keep covering the internal functions
     instead of silently finding none.  A test that means schema apikeys
     alone writes to_regnamespace('apikeys'), which is left alone;
  4. creates schema apikeys_internal in sql/install/00_setup.sql (after
     COMMENT ON SCHEMA apikeys), behind a guard that refuses a schema that
     exists already (anything in it could shadow the extension's
     functions), with USAGE for PUBLIC (see the comment it writes) and a
     comment;
  5. writes, at the top of sql/upgrade/OLD--NEW.pre.sql (NEW from
     apikeys.control, OLD the newest released version below it), one block
     between marker lines: the same guard, CREATE SCHEMA, and ALTER
     FUNCTION apikeys._x(argtypes) SET SCHEMA apikeys_internal for every
     internal function of the OLD script.  At the top, so that everything
     the pre part says after it (DROP FUNCTION for a changed signature, a
     data migration) names the functions where they are by then; the block
     is rewritten whole on every run.

Then: tools/build-upgrade-script.py, make (apikeys--NEW.sql), the tests
with ACCEPT=1 where output lists function names (the schema name, column
widths and row order change), git diff test/expected, make test.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
OLD_SCHEMA = 'apikeys'
NEW = 'apikeys_internal'

# Internal (_*) functions that stay in schema apikeys, with the reason:
# something outside the extension must call them by the old name.  None so
# far: RLS policies made by protect() call current_owner() and has_scope(),
# field views call field_allowed(), PostgREST calls pre_request(), the
# scope type's operators, operator classes and I/O functions are scope_*;
# triggers, event triggers, views and column defaults refer to functions by
# OID, so ALTER FUNCTION ... SET SCHEMA keeps them working.
EXCEPTIONS = {}

REWRITE_PREFIXES = ('sql/install/', 'sql/upgrade/', 'src/', 'test/', 'examples/', 'bench/',
                    'fuzz/', 'docs/')
REWRITE_FILES = ('README.md', 'CONTRIBUTING.md')
NEVER = ('docs/pending/surface.md', 'CHANGELOG.md')

BEGIN = '-- move-internal: begin (written by tools/move-internal.py: edit the tool, not this block)\n'
END = '-- move-internal: end\n'


def read(path):
    with open(os.path.join(ROOT, path), encoding='utf-8') as f:
        return f.read()


def write(path, text):
    with open(os.path.join(ROOT, path), 'w', encoding='utf-8') as f:
        f.write(text)


def tracked():
    out = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.split('\0')
    return [f for f in out if f and os.path.isfile(os.path.join(ROOT, f))]


def vkey(v):
    return tuple(int(p) for p in v.split('.'))


def versions():
    """(released versions, default_version)."""
    new = re.search(r"^default_version\s*=\s*'([^']*)'", read('apikeys.control'), re.M).group(1)
    rel = sorted({m.group(1) for m in re.finditer(r'apikeys--([0-9.]+)\.sql\s*$',
                                                  read('sql/released.sha256'), re.M)}, key=vkey)
    return rel, new


CREATE = re.compile(r'CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(?:' + OLD_SCHEMA + '|' + NEW
                    + r')\.(_[a-z0-9_]+)\s*\(', re.I)


def closing_paren(text, i):
    """Index of the parenthesis closing the one just before text[i]."""
    depth = 1
    while depth:
        c = text[i]
        if c == '(':
            depth += 1
        elif c == ')':
            depth -= 1
        elif c == "'":
            i = text.index("'", i + 1)
        i += 1
    return i - 1


def split_top(args):
    parts, depth, cur, i = [], 0, '', 0
    while i < len(args):
        c = args[i]
        if c == "'":
            j = args.index("'", i + 1)
            cur += args[i:j + 1]
            i = j + 1
            continue
        if c in '([':
            depth += 1
        elif c in ')]':
            depth -= 1
        if c == ',' and depth == 0:
            parts.append(cur)
            cur = ''
        else:
            cur += c
        i += 1
    if cur.strip():
        parts.append(cur)
    return parts


# a parameter without a name whose type is several words
MULTIWORD_TYPES = ('double', 'character', 'char', 'varchar', 'timestamp', 'time', 'bit',
                   'national', 'interval')


def identity_types(args):
    """The argument types ALTER FUNCTION names a function by: IN, INOUT and
    VARIADIC parameters, without names and defaults."""
    types = []
    for p in split_top(args):
        p = re.sub(r'\s+(?:DEFAULT\b|=).*$', '', ' '.join(p.split()), flags=re.I | re.S)
        words = p.split(' ')
        mode = words[0].upper()
        if mode in ('IN', 'OUT', 'INOUT', 'VARIADIC'):
            words = words[1:]
            if mode == 'OUT':
                continue
        if len(words) >= 2 and words[0].lower() not in MULTIWORD_TYPES:
            words = words[1:]           # the parameter's name
        types.append(' '.join(words))
    return ', '.join(types)


def functions_of(text):
    """[(name, argtypes)] of the _* functions a script creates."""
    out = []
    for m in CREATE.finditer(text):
        start = m.end()
        out.append((m.group(1), identity_types(text[start:closing_paren(text, start)])))
    return out


GUARD = '''DO $guard$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace
                WHERE nspname OPERATOR(pg_catalog.=) '%(new)s') THEN
        RAISE EXCEPTION 'schema "%(new)s" already exists'
            USING ERRCODE = '42P06',
                  DETAIL = 'The extension keeps its internal functions in a schema of its own; objects in a schema made before it could shadow them.',
                  HINT = 'Drop or rename schema %(new)s, then %(then)s again.';
    END IF;
END
$guard$;
CREATE SCHEMA %(new)s;
'''

SETUP = '''
-- Schema %(new)s: the internal helpers (functions named _*), out of the
-- user's way, so that \\df apikeys.* lists the public functions only.  Not
-- for direct use: they may change in any release.  CREATE SCHEMA fails on
-- a schema that exists, and the guard says why: a schema made before the
-- extension could hold functions that shadow its own.  USAGE for PUBLIC,
-- as for apikeys: protect() and unprotect() run as the calling table owner
-- (any role) and call _protected_record and _protected_forget; EXECUTE is
-- what guards each function (revoked from PUBLIC, granted per function).
''' + GUARD + '''REVOKE ALL ON SCHEMA %(new)s FROM PUBLIC;
GRANT USAGE ON SCHEMA %(new)s TO PUBLIC;
COMMENT ON SCHEMA %(new)s IS 'Internal helpers of the apikeys extension: not for direct use, they may change in any release';
'''


def pre_block(old, names):
    funcs = functions_of(read('apikeys--%s.sql' % old))
    lines = [BEGIN,
             '-- The internal helpers (functions named _*) move to schema %s, out of\n'
             '-- the user\'s way (\\df apikeys.* lists the public functions only).  First\n'
             '-- in this file, so that what follows names them where they are.\n' % NEW,
             GUARD % {'new': NEW, 'then': 'update the extension'}]
    for name, types in funcs:
        if name in names:
            lines.append('ALTER FUNCTION %s.%s(%s) SET SCHEMA %s;\n' % (OLD_SCHEMA, name, types, NEW))
    lines.append(END)
    return ''.join(lines)


def rewrite_refs(text, names):
    alt = '|'.join(map(re.escape, sorted(names, key=len, reverse=True)))
    text = re.sub(r'(?<![\w.])' + OLD_SCHEMA + r'\.(' + alt + r')\b', NEW + r'.\1', text)
    text = re.sub(r'"' + OLD_SCHEMA + r'"\."(' + alt + r')"', '"' + NEW + r'"."\1"', text)
    text = re.sub(r'(?<![\w.])' + OLD_SCHEMA + r'\\\.(' + alt + r')\b',
                  lambda m: NEW + '\\.' + m.group(1), text)
    return text


def widen(text):
    text = re.sub(r"\b((?:\w+\.)?(?:pronamespace|refobjid))\s*=\s*'" + OLD_SCHEMA + r"'::regnamespace",
                  r"\1 IN ('" + OLD_SCHEMA + "'::regnamespace, '" + NEW + "'::regnamespace)", text)

    def nsp(m):
        stmt_start = text.rfind(';', 0, m.start()) + 1
        if 'pronamespace' not in text[stmt_start:m.start()]:
            return m.group(0)
        return m.group(1) + " IN ('" + OLD_SCHEMA + "', '" + NEW + "')"
    return re.sub(r"\b((?:\w+\.)?nspname)\s*=\s*'" + OLD_SCHEMA + r"'(?!\w)", nsp, text)


def main():
    released, new = versions()
    files = tracked()
    sources = sorted(f for f in files if f.startswith(('sql/install/', 'sql/upgrade/')) and f.endswith('.sql'))
    sources += ['apikeys--%s.sql' % v for v in released if os.path.exists(os.path.join(ROOT, 'apikeys--%s.sql' % v))]
    names = set()
    for f in sources:
        names |= {n for n, _ in functions_of(read(f))}
    moved = sorted(n for n in names if n not in EXCEPTIONS)
    if not moved:
        sys.exit('no internal functions found')
    print('%d internal functions move to %s%s' % (len(moved), NEW,
          (' (%d stay: %s)' % (len(EXCEPTIONS), ', '.join(sorted(EXCEPTIONS)))) if EXCEPTIONS else ''))

    older = [v for v in released if vkey(v) < vkey(new)]
    pre = 'sql/upgrade/%s--%s.pre.sql' % (older[-1], new) if older else None
    generated = {'apikeys--%s.sql' % new} | ({'apikeys--%s--%s.sql' % (older[-1], new)} if older else set())

    changed = {}
    for f in files:
        if f in NEVER or f in generated or f.startswith('tools/') or \
           not (f.startswith(REWRITE_PREFIXES) or f in REWRITE_FILES):
            continue
        if re.fullmatch(r'apikeys--[0-9.]+\.sql', f) or '/node_modules/' in f or f.endswith('package-lock.json'):
            continue
        try:
            t = read(f)
        except UnicodeDecodeError:
            continue                    # binary
        n = t
        block = ''
        if f == pre:
            i = n.find(BEGIN)
            if i >= 0:
                j = n.index(END, i) + len(END)
                n = n[:i] + n[j:].lstrip('\n') if n[j:].strip() else n[:i]
        n = rewrite_refs(n, moved)
        if f.startswith('test/'):
            n = widen(n)
        if f == 'sql/install/00_setup.sql' and 'CREATE SCHEMA ' + NEW not in n:
            m = re.search(r'^COMMENT ON SCHEMA ' + OLD_SCHEMA + r' IS .*\n', n, re.M)
            if not m:
                sys.exit('sql/install/00_setup.sql: no COMMENT ON SCHEMA %s line to add the schema after' % OLD_SCHEMA)
            n = n[:m.end()] + SETUP % {'new': NEW, 'then': 'create the extension'} + n[m.end():]
        if f == pre:
            block = pre_block(older[-1], moved)
            # after the file's opening comment (its first paragraph)
            lines = n.splitlines(keepends=True)
            k = 0
            while k < len(lines) and lines[k].startswith('--'):
                k += 1
            head, rest = ''.join(lines[:k]), ''.join(lines[k:]).lstrip('\n')
            n = head + '\n' + block + ('\n' + rest if rest else '')
        if n != t:
            changed[f] = n
    # every file is written before anything is printed: a closed stdout
    # (tools/move-internal.py | head) must not stop the tool half-way
    for f, n in changed.items():
        write(f, n)
    for f in sorted(changed):
        print('rewrote ' + f)
    if pre is None:
        print('no released version below %s: no upgrade part to write' % new)
    if not changed:
        print('nothing to do: already applied')
        return
    print('\nNext: tools/build-upgrade-script.py; make; the tests with ACCEPT=1 where the output '
          'names functions (review git diff test/expected: schema name, column widths, row order); '
          'make test.')


if __name__ == '__main__':
    main()
