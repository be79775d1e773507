#!/usr/bin/env python3
"""tools/move_internal.py -- move apikeys' internal helpers out of the user's way.

Every function of the install script whose name starts with "_" moves from
schema apikeys to schema apikeys_internal, so that \\df apikeys.* lists the
public surface only (issue 21 item 5).  Behaviour does not change: the
functions keep their names, bodies, grants and comments; only the schema
they are found in changes.

Written as a tool rather than applied by hand because every branch edits
the install script: run it once on the merged tree, before 1.0 is tagged.

What it does (idempotent: a second run changes nothing):
  1. finds the install-script sources (tracked *.sql outside the test and
     example directories that create apikeys._* functions; the single
     apikeys--1.0.sql or its section files) and the internal names there;
  2. creates schema apikeys_internal right after schema apikeys' grants
     (USAGE for PUBLIC as for apikeys: callers of protect() and the views
     resolve internal names; EXECUTE stays granted per function), revokes
     EXECUTE on all its functions from PUBLIC beside the same line for
     apikeys, and comments it;
  3. rewrites every reference apikeys._name -> apikeys_internal._name in
     every tracked text file (install script, C strings, tests, harness,
     bench, docs), also "apikeys"."_name" and apikeys\._name in patterns;
  4. in tests, widens schema filters (x = 'apikeys'::regnamespace,
     nspname = 'apikeys') to both schemas, so the privilege, comment,
     search_path and inventory checks keep covering the internal functions
     instead of silently finding none.

Then (printed at the end): regenerate the expected files with
  ACCEPT=1 SKIP_TAP=1 SKIP_INSTALLCHECK=1 make test
review that git diff expected/ shows only the schema name (and the column
widths and row order that follow from it), and run make test.

It refuses to run when an upgrade script (apikeys--A--B.sql) exists: once a
version is tagged, moving functions is an upgrade script's job.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEW = 'apikeys_internal'
TEST_DIRS = ('sql/', 'expected/', 'test/', 'examples/', 'bench/', 'fuzz/', 'docs/pending/')
SKIP = ('tools/move_internal.py', 'CHANGELOG.md')


def tracked():
    out = subprocess.run(['git', 'ls-files'], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.split('\n')
    for f in out:
        if not f or f in SKIP or '/node_modules/' in f or f.endswith('package-lock.json'):
            continue
        p = os.path.join(ROOT, f)
        if not os.path.isfile(p):
            continue
        try:
            with open(p, encoding='utf-8') as fh:
                yield f, fh.read()
        except UnicodeDecodeError:
            continue            # binary


def main():
    files = dict(tracked())
    if any(re.fullmatch(r'apikeys--[^-]+--[^-]+\.sql', os.path.basename(f)) for f in files):
        sys.exit('an upgrade script exists: move the functions in an upgrade script instead')

    create = re.compile(r'CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(?:apikeys|' + NEW + r')\.(_[a-z0-9_]+)')
    sources = [f for f, t in files.items()
               if f.endswith('.sql') and not f.startswith(TEST_DIRS) and create.search(t)]
    if not sources:
        sys.exit('no install-script source creates apikeys._* functions')
    names = sorted({m.group(1) for f in sources for m in create.finditer(files[f])})
    print('install-script sources: ' + ', '.join(sources))
    print('%d internal functions: %s' % (len(names), ' '.join(names)))

    ref = re.compile(r'\bapikeys\.(' + '|'.join(map(re.escape, names)) + r')\b')
    quoted = re.compile(r'"apikeys"\."(' + '|'.join(map(re.escape, names)) + r')"')
    # the same name inside a regular expression (awk, grep, Perl): apikeys\._name
    escaped = re.compile(r'\bapikeys\\\.(' + '|'.join(map(re.escape, names)) + r')\b')
    changed = {}
    for f, t in files.items():
        n = ref.sub(NEW + r'.\1', t)
        n = quoted.sub('"' + NEW + r'"."\1"', n)
        n = escaped.sub(lambda m: NEW + '\\.' + m.group(1), n)
        if f.startswith(('sql/', 'test/')):
            n = re.sub(r"\b((?:\w+\.)?(?:pronamespace|relnamespace|typnamespace|refobjid))\s*=\s*'apikeys'::regnamespace",
                       r"\1 IN ('apikeys'::regnamespace, '" + NEW + r"'::regnamespace)", n)
            n = re.sub(r"\b((?:\w+\.)?nspname)\s*=\s*'apikeys'(?!_)",
                       r"\1 IN ('apikeys', '" + NEW + r"')", n)
        if n != t:
            changed[f] = n

    # the schema itself, in the source that sets up schema apikeys
    setup = [f for f in sources if 'GRANT USAGE ON SCHEMA apikeys TO PUBLIC;' in changed.get(f, files[f])]
    if len(setup) != 1:
        sys.exit('expected one source with "GRANT USAGE ON SCHEMA apikeys TO PUBLIC;", found %d' % len(setup))
    t = changed.get(setup[0], files[setup[0]])
    if 'CREATE SCHEMA ' + NEW not in t:
        t = t.replace('GRANT USAGE ON SCHEMA apikeys TO PUBLIC;\n',
                      'GRANT USAGE ON SCHEMA apikeys TO PUBLIC;\n\n'
                      '-- Internal helpers live in their own schema, out of the user\'s way:\n'
                      '-- \\df apikeys.* lists the public functions only.  USAGE for everyone,\n'
                      '-- as for apikeys (protect() and the views name them); EXECUTE is\n'
                      '-- granted per function, below.  CREATE SCHEMA fails if the schema\n'
                      '-- exists: nobody can have planted functions in it beforehand.\n'
                      'CREATE SCHEMA ' + NEW + ';\n'
                      'REVOKE ALL ON SCHEMA ' + NEW + ' FROM PUBLIC;\n'
                      'GRANT USAGE ON SCHEMA ' + NEW + ' TO PUBLIC;\n', 1)
        changed[setup[0]] = t
    for f in sources:
        t = changed.get(f, files[f])
        line = 'REVOKE ALL ON ALL FUNCTIONS IN SCHEMA apikeys FROM PUBLIC;\n'
        if line in t and 'REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ' + NEW not in t:
            t = t.replace(line, line + 'REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ' + NEW + ' FROM PUBLIC;\n', 1)
        m = re.search(r"^COMMENT ON SCHEMA apikeys IS .*\n", t, re.M)
        if m and 'COMMENT ON SCHEMA ' + NEW not in t:
            t = t[:m.end()] + ("COMMENT ON SCHEMA " + NEW + " IS 'Internal helpers of the apikeys "
                               "extension: not for direct use, may change in any release';\n") + t[m.end():]
        if t != files[f]:
            changed[f] = t

    for f, t in sorted(changed.items()):
        with open(os.path.join(ROOT, f), 'w', encoding='utf-8') as fh:
            fh.write(t)
        print('rewrote ' + f)
    if not changed:
        print('nothing to do: already applied')
        return
    print('\nNext: ACCEPT=1 SKIP_TAP=1 SKIP_INSTALLCHECK=1 make test; review git diff expected/ '
          '(schema name, column widths, row order only); then make test.')


if __name__ == '__main__':
    main()
