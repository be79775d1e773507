#!/usr/bin/env python3
"""tools/build-upgrade-script.py [--check]: writes apikeys--OLD--NEW.sql.

NEW is default_version in apikeys.control; OLD is the newest released
version below it (sql/released.sha256).  The upgrade script is made of:

  1. sql/upgrade/OLD--NEW.pre.sql, written by hand: what CREATE OR REPLACE
     cannot do before the functions change (CREATE TABLE/TYPE, ALTER TABLE
     ADD COLUMN, DROP FUNCTION for a new signature or return type, DROP
     VIEW, pg_extension_config_dump for a new table);
  2. every CREATE FUNCTION and CREATE VIEW of sql/install/ whose text is
     not in apikeys--OLD.sql, in install order, as CREATE OR REPLACE;
  3. sql/upgrade/OLD--NEW.post.sql, written by hand: what needs the new
     functions (triggers, policies, indexes, operators, data migration);
  4. every COMMENT ON, GRANT and REVOKE of sql/install/ again, in install
     order (each is idempotent), so a new object gets its comment and
     privileges and an old one keeps them.

test/sql/upgrade.sql (make test) checks that OLD updated with the result
equals a fresh NEW, object by object: whatever part 1 or 3 forgets shows
there.  --check: exit 1 (and say so) when the committed file differs from
what the sources make (test/install-script.sh runs it).
"""
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))


def statements(text):
    """Split SQL text into statements at top-level semicolons, each with the
    comments that precede it; quotes, dollar quotes and comments are
    respected.  Returns (leading_comments, statement) pairs."""
    out = []
    i, n, start = 0, len(text), 0
    while i < n:
        c = text[i]
        if text.startswith('--', i):
            j = text.find('\n', i)
            i = n if j < 0 else j + 1
        elif text.startswith('/*', i):
            j = text.find('*/', i + 2)
            i = n if j < 0 else j + 2
        elif c == "'":
            escaped = i > 0 and text[i - 1] in 'eE' and not (text[i - 2:i - 1].isalnum() if i > 1 else False)
            i += 1
            while i < n:
                if escaped and text[i] == '\\':
                    i += 2
                    continue
                if text[i] == "'":
                    if text.startswith("''", i):
                        i += 2
                        continue
                    break
                i += 1
            i += 1
        elif c == '"':
            j = text.find('"', i + 1)
            i = n if j < 0 else j + 1
        elif c == '$':
            m = re.match(r'\$([A-Za-z_][A-Za-z_0-9]*)?\$', text[i:])
            if m and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] == '_')):
                tag = m.group(0)
                j = text.find(tag, i + len(tag))
                i = n if j < 0 else j + len(tag)
            else:
                i += 1
        elif c == ';':
            out.append(text[start:i + 1])
            i += 1
            start = i
        else:
            i += 1
    rest = text[start:]
    if rest.strip():
        out.append(rest)
    pairs = []
    for s in out:
        lead, body = [], s.lstrip('\n')
        while True:
            body = body.lstrip()
            if body.startswith('--'):
                j = body.find('\n')
                lead.append(body if j < 0 else body[:j])
                body = '' if j < 0 else body[j + 1:]
            elif body.startswith('\\'):
                # a psql meta-command line (the \echo guard) is no statement
                j = body.find('\n')
                body = '' if j < 0 else body[j + 1:]
            else:
                break
        if body.strip():
            pairs.append(('\n'.join(lead), body.rstrip()))
    return pairs


def kind(stmt):
    head = ' '.join(stmt.split()[:5]).upper()
    if re.match(r'CREATE (OR REPLACE )?FUNCTION\b', head):
        return 'function'
    if re.match(r'CREATE (OR REPLACE )?VIEW\b', head):
        return 'view'
    if re.match(r'(COMMENT ON|GRANT|REVOKE)\b', head):
        return 'privilege-or-comment'
    return None


def or_replace(stmt):
    return re.sub(r'^CREATE\s+(?!OR\s+REPLACE)(FUNCTION|VIEW)\b', r'CREATE OR REPLACE \1', stmt, count=1)


def read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def control_version():
    m = re.search(r"^default_version\s*=\s*'([^']*)'", read(os.path.join(ROOT, 'apikeys.control')), re.M)
    return m.group(1)


def vkey(v):
    return tuple(int(p) for p in v.split('.'))


def released_versions():
    vs = []
    for line in read(os.path.join(ROOT, 'sql', 'released.sha256')).splitlines():
        m = re.search(r'apikeys--([0-9.]+)\.sql$', line)
        if m:
            vs.append(m.group(1))
    return sorted(vs, key=vkey)


def build(old, new):
    sections = sorted(os.path.join(ROOT, 'sql', 'install', f)
                      for f in os.listdir(os.path.join(ROOT, 'sql', 'install')) if f.endswith('.sql'))
    old_stmts = {or_replace(s) for _, s in statements(read(os.path.join(ROOT, 'apikeys--%s.sql' % old)))}
    changed, replayed = [], []
    for path in sections:
        for lead, s in statements(read(path)):
            k = kind(s)
            if k in ('function', 'view') and or_replace(s) not in old_stmts:
                changed.append((lead, or_replace(s)))
            elif k == 'privilege-or-comment':
                replayed.append(s)
    pre = os.path.join(ROOT, 'sql', 'upgrade', '%s--%s.pre.sql' % (old, new))
    post = os.path.join(ROOT, 'sql', 'upgrade', '%s--%s.post.sql' % (old, new))
    parts = [
        '-- apikeys--%s--%s.sql: generated by tools/build-upgrade-script.py from\n'
        '-- sql/upgrade/%s--%s.pre.sql, sql/install/ and sql/upgrade/%s--%s.post.sql\n'
        '-- (edit those, not this file; the tool says how it is made)\n\n'
        '-- complain if script is sourced in psql, rather than via ALTER EXTENSION\n'
        '\\echo Use "ALTER EXTENSION apikeys UPDATE TO \'%s\'" to load this file. \\quit\n'
        % (old, new, old, new, old, new, new),
        '\n-- Part 1: sql/upgrade/%s--%s.pre.sql\n\n' % (old, new) + read(pre).rstrip() + '\n',
        '\n-- Part 2: the %d functions and views of sql/install/ that are new or changed since %s\n'
        % (len(changed), old),
    ]
    for lead, s in changed:
        parts.append('\n' + (lead + '\n' if lead else '') + s + '\n')
    parts.append('\n-- Part 3: sql/upgrade/%s--%s.post.sql\n\n' % (old, new) + read(post).rstrip() + '\n')
    parts.append('\n-- Part 4: every comment and privilege of sql/install/ again (each is idempotent)\n\n')
    parts.append('\n'.join(replayed) + '\n')
    return 'apikeys--%s--%s.sql' % (old, new), ''.join(parts)


def main():
    check = '--check' in sys.argv[1:]
    new = control_version()
    older = [v for v in released_versions() if vkey(v) < vkey(new)]
    if not older:
        print('no released version below %s: no upgrade script to make' % new)
        return 0
    name, text = build(older[-1], new)
    path = os.path.join(ROOT, name)
    current = read(path) if os.path.exists(path) else None
    if check:
        if current != text:
            print('%s is not what tools/build-upgrade-script.py makes from its sources: run it and commit the result' % name)
            return 1
        return 0
    if current != text:
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        print('wrote %s' % name)
    return 0


if __name__ == '__main__':
    sys.exit(main())
