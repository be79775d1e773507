#!/usr/bin/env python3
"""tools/split-install-script.py: split a one-file install script into
section files, each object's GRANTs, COMMENTs and ALTERs next to its CREATE.

    tools/split-install-script.py [INPUT] [--outdir sql/install] [--check]

INPUT (default apikeys--1.0.sql) is read statement by statement (a small
SQL lexer: quotes, dollar quotes, comments).  Every statement is either
    - an object: CREATE TYPE/TABLE/VIEW/FUNCTION/OPERATOR/OPERATOR CLASS/
      CAST/TRIGGER/EVENT TRIGGER/SEQUENCE; or
    - attached to one: COMMENT ON, GRANT/REVOKE ON (split per object when
      it names several), ALTER TABLE/EVENT TRIGGER, CREATE INDEX/POLICY,
      pg_extension_config_dump(); or
    - set-up: the psql guard, DO blocks, schema privileges and comment.
The bulk "REVOKE ALL ON ALL FUNCTIONS|TABLES IN SCHEMA apikeys FROM
PUBLIC" becomes one REVOKE per function or table created before it, at the
same place in that object's own statements, so each object's privileges
read in one place and come out the same.  A function whose name is unique
is named without its argument list in its GRANTs, REVOKEs and COMMENT, so
its signature is written once, in its CREATE.  An attached statement keeps its
order relative to the object's other statements.

Each object goes to the section whose name pattern (SECTIONS below)
matches it first; a trigger goes with its trigger function.  An object no
pattern matches, or a statement the tool cannot attach, is an error that
names it (add a pattern): nothing is placed by guess.  Within a section,
objects keep the input's order.  Before writing, the tool checks that every
object a statement needs at creation (types and tables in signatures,
everything in views, tables, operators, casts, triggers and LANGUAGE sql
bodies; not plpgsql bodies, which are only parsed at their first call) is
created earlier in the new order, and fails naming the pair otherwise.

Writes OUTDIR/NN_<section>.sql (removing stale NN_*.sql there) and prints
how many objects each got; `make` concatenates OUTDIR/*.sql into the
versioned script (tools/build-install-script.sh, the Makefile's rule).
--check writes nothing and fails if OUTDIR differs from what it would
write; --list prints each object and its section.  Splitting the generated
script again gives the same files.

That the concatenation creates the same objects as INPUT is checked on a
real server by tools/check-install-script.sh (sql/upgrade.sql's
fingerprint of every member of the extension).  Python 3 standard library
only.
"""
import argparse
import collections
import glob
import os
import re
import sys

# Sections, in install order, and the patterns (on the object's bare name;
# a trigger uses its function's section) that place objects in them.  The
# first match wins.  Order matters: a section may use only what earlier
# sections (or earlier statements of its own) create.
SECTIONS = [
    ('setup', 'the schema guard, roles and schema privileges', []),
    ('scopes', 'the apikeys.scope type, its operators, and named scope sets', [
        r'^scope$', r'^scope_', r'^scopes_', r'^_scopes_', r'^_expand_scopes$',
        r'^scope_sets$', r'^_scope_sets_', r'^(define|drop)_scope_set$',
    ]),
    ('keys', 'the key table, the audit trail, issuing and managing keys', [
        r'^new_key$', r'^keys$', r'^owner_policies$', r'^audit_log$',
        r'^_mint$', r'^_op_', r'^_outer_user$', r'^_audit$', r'^_key_row$',
        r'^_owner_limit', r'^_check_(text|settings|expiry)$',
        r'^(create|rotate|disable|enable|revoke|revoke_all|delete|update)_keys?$',
        r'^set_owner_policy$', r'^purge_audit$', r'^report_leaked$',
        r'^_keys_audit_trigger$', r'^_audit_append_only_trigger$',
        r'^_keys_no_truncate_trigger$', r'^_keys_cache_trigger$',
        r'^_cache_invalidate_all$', r'^_in_apply_worker$', r'^_ddl_guard$',
        r'^apikeys_ddl_guard$', r'^_rate_limit_warning_trigger$',
        r'^_preloaded$', r'^deleted_keys$', r'^_revoke_key$', r'^_check_owner$',
        r'^_setting(_integer)?$', r'^_interval_us$', r'^_owner_max_length$',
        r'^_cidrs_outside$', r'^_live_secret_key$', r'^_leads_to_keys$',
        r'^_check_key_cap$', r'^_import_', r'^import_keys?$', r'^_keys_legacy_cache_trigger$',
        r'^_legacy_token_max_length$',
    ]),
    ('verification', 'verify, authenticate, the transaction context and PostgREST', [
        r'^verification$', r'^token_client_id$', r'^verify', r'^authenticate$',
        r'^current_', r'^has_scope$', r'^require_scope$', r'^field_allowed$',
        r'^pre_request$', r'^_acting_(begin|key)$',
    ]),
    ('usage', 'usage counting, the journal, the shared cache and address throttle', [
        r'^usage', r'^_journal_', r'^_recent_use$', r'^flush_usage$',
        r'^cache_', r'^_failing_addresses$', r'^failing_addresses$',
        r'^key_usage$', r'^key_list$', r'^_usage_', r'^_?unblock_address$',
    ]),
    ('handoff_outbox', 'secret handoff, claims, the outbox', [
        r'^claims$', r'^outbox', r'^_outbox', r'^_claim', r'^_hash_equal$',
        r'^claim_key$', r'^reset_key$', r'^_handoff_', r'^_deliver$',
        r'^_audit_outbox_trigger$', r'^_keys_secret_set_at_trigger$',
        r'^_setting_interval$',
    ]),
    ('policies', 'lifecycle policies and hygiene', [
        r'^policy_notices$', r'^_policy_', r'^apply_policies$', r'^key_hygiene$',
        r'^_unused_proven$',
    ]),
    ('selfservice', 'tenant self-service: the my_* functions', [
        r'^my_', r'^_my_', r'^_acting_row$', r'^_target_row$', r'^_check_grant$',
        r'^_check_target$', r'^_grant_scopes$', r'^_count_tenant_action$',
    ]),
    ('rls', 'row-level security for user tables', [
        r'^protected_tables$', r'^_protected_', r'^protect$', r'^unprotect$',
        r'^create_field_view$',
    ]),
    ('stats', 'the operator\'s view: server-wide statistics', [
        r'^_stats', r'^stats$',
    ]),
]

SCHEMA = 'apikeys'


class SplitError(Exception):
    pass


# ---------------------------------------------------------------------------
# Lexing: statements with their exact text
# ---------------------------------------------------------------------------

def statements(text):
    """Yield (gap, stmt, lineno): the text before each statement (comments
    and blank lines) and the statement itself (through its ';').  A psql
    backslash line is a statement of its own."""
    i, n, line = 0, len(text), 1
    while i < n:
        # the gap: whitespace and comments
        start = i
        while i < n:
            if text[i] in ' \t\r\n':
                i += 1
            elif text.startswith('--', i):
                j = text.find('\n', i)
                i = n if j < 0 else j + 1
            elif text.startswith('/*', i):
                j = text.find('*/', i)
                if j < 0:
                    raise SplitError('unterminated /* comment')
                i = j + 2
            else:
                break
        gap = text[start:i]
        if i >= n:
            if gap.strip():
                yield gap, '', None
            return
        sline = text.count('\n', 0, i) + 1
        if text[i] == '\\':
            j = text.find('\n', i)
            j = n if j < 0 else j
            yield gap, text[i:j], sline
            i = j
            continue
        s = i
        while i < n:
            c = text[i]
            if c == ';':
                i += 1
                break
            if c == "'":
                i += 1
                while i < n:
                    if text[i] == "'" and text.startswith("''", i):
                        i += 2
                    elif text[i] == "'":
                        i += 1
                        break
                    elif text[i] == '\\' and text[s:i].rstrip().endswith(('E', 'e')):
                        i += 2
                    else:
                        i += 1
            elif c == '"':
                j = text.find('"', i + 1)
                i = j + 1
            elif c == '$':
                m = re.match(r'\$([A-Za-z_][A-Za-z_0-9]*)?\$', text[i:])
                if m:
                    tag = m.group(0)
                    j = text.find(tag, i + len(tag))
                    if j < 0:
                        raise SplitError(f'line {sline}: unterminated {tag}')
                    i = j + len(tag)
                else:
                    i += 1
            elif text.startswith('--', i):
                j = text.find('\n', i)
                i = n if j < 0 else j
            elif text.startswith('/*', i):
                i = text.find('*/', i) + 2
            else:
                i += 1
        else:
            raise SplitError(f'line {sline}: statement without a closing ";"')
        yield gap, text[s:i], sline


def strip_code(stmt):
    """The statement with comments and string/dollar-quoted bodies blanked,
    for matching keywords."""
    out, i, n = [], 0, len(stmt)
    while i < n:
        c = stmt[i]
        if stmt.startswith('--', i):
            j = stmt.find('\n', i)
            i = n if j < 0 else j
        elif stmt.startswith('/*', i):
            i = stmt.find('*/', i) + 2
        elif c == "'":
            j = i + 1
            while j < n:
                if stmt.startswith("''", j):
                    j += 2
                elif stmt[j] == "'":
                    break
                else:
                    j += 1
            out.append("''")
            i = j + 1
        elif c == '$' and re.match(r'\$([A-Za-z_][A-Za-z_0-9]*)?\$', stmt[i:]):
            tag = re.match(r'\$([A-Za-z_][A-Za-z_0-9]*)?\$', stmt[i:]).group(0)
            j = stmt.find(tag, i + len(tag))
            out.append('$$ $$')
            i = j + len(tag)
        else:
            out.append(c)
            i += 1
    return re.sub(r'\s+', ' ', ''.join(out)).strip()


# ---------------------------------------------------------------------------
# What each statement is
# ---------------------------------------------------------------------------

def split_top(s, sep=','):
    """Split s at sep outside parentheses."""
    parts, depth, cur = [], 0, []
    for c in s:
        if c == '(':
            depth += 1
        elif c == ')':
            depth -= 1
        if c == sep and depth == 0:
            parts.append(''.join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append(''.join(cur))
    return [p.strip() for p in parts if p.strip()]


def in_arity(args):
    """Number of input arguments of a CREATE FUNCTION argument list, or of a
    GRANT/COMMENT signature."""
    n = 0
    for a in split_top(args):
        if re.match(r'(?i)^OUT\s', a):
            continue
        n += 1
    return n


def bare(name):
    name = name.strip().strip('"')
    if name.lower().startswith(SCHEMA + '.'):
        name = name[len(SCHEMA) + 1:]
    return name.strip('"')


def match_paren(s, i):
    depth = 0
    for j in range(i, len(s)):
        if s[j] == '(':
            depth += 1
        elif s[j] == ')':
            depth -= 1
            if depth == 0:
                return j
    raise SplitError(f'unbalanced parentheses in {s[:80]!r}')


def func_targets(code):
    """[(name, arity)] of a comma-separated list of function signatures."""
    out = []
    for sig in split_top(code):
        m = re.match(r'([\w."]+)\s*\((.*)\)\s*$', sig, re.S)
        if m:
            out.append((bare(m.group(1)), in_arity(m.group(2))))
        elif re.match(r'[\w."]+$', sig.strip()):
            out.append((bare(sig), None))        # a unique name needs no argument list
        else:
            raise SplitError(f'cannot read the function signature {sig!r}')
    return out


def drop_unique_signature(stmt, unique):
    """GRANT, REVOKE or COMMENT ON one function whose name is unique: the
    same statement without the argument list (PostgreSQL finds a function
    by a unique name alone), so each signature is written once, in its
    CREATE.  The privileges and comment it sets are the same."""
    m = re.match(r'(?is)((?:GRANT|REVOKE)\s.*?\sON\s+FUNCTION\s+|COMMENT\s+ON\s+FUNCTION\s+)'
                 r'(apikeys\.(\w+))\s*\(', stmt)
    if not m or m.group(3) not in unique:
        return stmt
    i = stmt.index('(', m.end(2))
    j = match_paren(stmt, i)
    if re.match(r'\s*,', stmt[j + 1:]):
        return stmt                              # a list of functions: left alone
    return stmt[:m.end(2)] + stmt[j + 1:]


class Obj:
    def __init__(self, kind, name, arity=None, stmt=None, line=None):
        self.kind = kind            # function, table, view, type, trigger, ...
        self.name = name            # bare name
        self.arity = arity          # functions: number of input arguments
        self.parts = []             # [(gap, text)] in output order
        self.line = line
        self.on = None              # triggers: (table, function)
        self.section = None
        self.create = stmt

    def key(self):
        return (self.kind, self.name, self.arity)

    def label(self):
        if self.kind == 'function':
            return f'function {SCHEMA}.{self.name} ({self.arity} input arguments)'
        return f'{self.kind} {self.name}'


def classify(code):
    """('object', kind, name, arity, extra) / ('attach', [(kind, name,
    arity, text-or-None)]) / ('setup',) / ('bulk_revoke', kinds)."""
    u = code.upper()
    if code.startswith('\\') or u.startswith('DO '):
        return ('setup',)
    m = re.match(r'(?i)^CREATE (?:OR REPLACE )?FUNCTION ([\w."]+)\s*\(', code)
    if m:
        i = code.index('(', m.start(1))
        j = match_paren(code, i)
        return ('object', 'function', bare(m.group(1)), in_arity(code[i + 1:j]), None)
    m = re.match(r'(?i)^CREATE TYPE ([\w."]+)\s*;?$', code)
    if m:
        return ('object', 'shell type', bare(m.group(1)), None, None)
    m = re.match(r'(?i)^CREATE TYPE ([\w."]+)', code)
    if m:
        return ('object', 'type', bare(m.group(1)), None, None)
    m = re.match(r'(?i)^CREATE (?:UNLOGGED )?TABLE ([\w."]+)', code)
    if m:
        return ('object', 'table', bare(m.group(1)), None, None)
    m = re.match(r'(?i)^CREATE (?:OR REPLACE )?VIEW ([\w."]+)', code)
    if m:
        return ('object', 'table', bare(m.group(1)), None, None)   # views share tables' namespace
    m = re.match(r'(?i)^CREATE SEQUENCE ([\w."]+)', code)
    if m:
        return ('object', 'table', bare(m.group(1)), None, None)
    m = re.match(r'(?i)^CREATE EVENT TRIGGER ([\w"]+) .*EXECUTE (?:FUNCTION|PROCEDURE) ([\w."]+)\s*\(', code)
    if m:
        return ('object', 'event trigger', bare(m.group(1)), None, (None, bare(m.group(2))))
    m = re.match(r'(?i)^CREATE (?:CONSTRAINT )?TRIGGER ([\w"]+) .* ON ([\w."]+) .*EXECUTE (?:FUNCTION|PROCEDURE) ([\w."]+)\s*\(', code)
    if m:
        return ('object', 'trigger', bare(m.group(1)), None, (bare(m.group(2)), bare(m.group(3))))
    m = re.match(r'(?i)^CREATE OPERATOR CLASS ([\w."]+)', code)
    if m:
        return ('object', 'operator class', bare(m.group(1)), None, None)
    m = re.match(r'(?i)^CREATE OPERATOR ([\w."]+\.)?(\S+)\s*\((.*)\)', code, re.S)
    if m:
        # named by the function it runs
        f = re.search(r'(?i)FUNCTION\s*=\s*([\w."]+)', m.group(3))
        return ('object', 'operator', m.group(2) + ':' + (bare(f.group(1)) if f else '?'), None, None)
    m = re.match(r'(?i)^CREATE CAST \((.*?) AS (.*?)\)', code)
    if m:
        return ('object', 'cast', bare(m.group(1)) + '->' + bare(m.group(2)), None, None)
    m = re.match(r'(?i)^CREATE (?:UNIQUE )?INDEX (?:CONCURRENTLY )?[\w"]* ?ON (?:ONLY )?([\w."]+)', code)
    if m:
        return ('attach', [('table', bare(m.group(1)), None)])
    m = re.match(r'(?i)^CREATE POLICY [\w"]+ ON ([\w."]+)', code)
    if m:
        return ('attach', [('table', bare(m.group(1)), None)])
    m = re.match(r'(?i)^ALTER TABLE (?:ONLY )?([\w."]+) ENABLE (?:ALWAYS |REPLICA )?TRIGGER ([\w"]+)', code)
    if m:
        return ('attach', [('trigger', bare(m.group(2)), None)])
    m = re.match(r'(?i)^ALTER TABLE (?:ONLY )?([\w."]+)', code)
    if m:
        return ('attach', [('table', bare(m.group(1)), None)])
    m = re.match(r'(?i)^ALTER EVENT TRIGGER ([\w"]+)', code)
    if m:
        return ('attach', [('event trigger', bare(m.group(1)), None)])
    m = re.match(r"(?i)^SELECT pg_catalog\.pg_extension_config_dump\(\s*''", code)
    if m:
        return ('config_dump',)
    m = re.match(r'(?i)^COMMENT ON (FUNCTION|TABLE|VIEW|TYPE|COLUMN|EVENT TRIGGER|TRIGGER|SCHEMA|SEQUENCE) (.*?) IS ', code)
    if m:
        kind, target = m.group(1).upper(), m.group(2)
        if kind == 'SCHEMA':
            return ('setup',)
        if kind == 'FUNCTION':
            return ('attach', [('function',) + t for t in func_targets(target)])
        if kind == 'COLUMN':
            return ('attach', [('table', bare(target.rsplit('.', 1)[0]), None)])
        if kind == 'TRIGGER':
            return ('attach', [('trigger', bare(target.split(' ON ')[0]), None)])
        if kind == 'EVENT TRIGGER':
            return ('attach', [('event trigger', bare(target), None)])
        if kind == 'TYPE':
            return ('attach', [('type', bare(target), None)])
        return ('attach', [('table', bare(target), None)])
    m = re.match(r'(?i)^(?:GRANT|REVOKE) .*? ON SCHEMA ', code)
    if m:
        return ('setup',)
    m = re.match(r'(?i)^REVOKE ALL ON ALL (FUNCTIONS|TABLES) IN SCHEMA (\w+) FROM PUBLIC$', code.rstrip(';').strip())
    if m:
        if m.group(2) != SCHEMA:
            raise SplitError(f'bulk REVOKE on schema {m.group(2)}')
        return ('bulk_revoke', 'function' if m.group(1).upper() == 'FUNCTIONS' else 'table')
    m = re.match(r'(?i)^(GRANT|REVOKE) (.*?) ON (FUNCTION|TABLE|SEQUENCE|TYPE)? ?(.*) (TO|FROM) (.*?);?$', code)
    if m:
        return ('grant', m.group(1).upper(), m.group(2), (m.group(3) or 'TABLE').upper(),
                m.group(4), m.group(5).upper(), m.group(6))
    return None


def section_of(name):
    for sec, _, pats in SECTIONS:
        for p in pats:
            if re.search(p, name):
                return sec
    return None


# ---------------------------------------------------------------------------
# Splitting
# ---------------------------------------------------------------------------

def is_banner(par):
    return par.lstrip().startswith('-----')


def banner_body(par):
    """A banner's comment lines without its rules; None for a title only."""
    lines = [ln for ln in par.strip('\n').split('\n') if not re.match(r'^\s*-{5,}\s*$', ln)]
    if len(lines) <= 1:
        return None
    return '\n'.join(lines) + '\n'


def leading(gap):
    """The comment text before a statement, banners reduced to their body."""
    pars = re.split(r'\n\s*\n', gap.strip('\n'))
    out = []
    for p in pars:
        if not p.strip():
            continue
        # headers this tool and make write (so a generated script splits the same)
        if p.lstrip().startswith(('-- sql/install/', '/* apikeys--', '-- apikeys--')):
            continue
        if is_banner(p):
            b = banner_body(p)
            if b:
                out.append(b)
        else:
            out.append(p.strip('\n') + '\n')
    return '\n'.join(out)


def split(text):
    objs = collections.OrderedDict()    # key -> Obj
    by_name = collections.defaultdict(list)
    setup = []                          # [(gap, text)]

    def lookup(kind, name, arity, where):
        if kind == 'table':
            cands = [o for o in by_name[name] if o.kind == 'table']
        elif kind == 'function':
            cands = [o for o in by_name[name] if o.kind == 'function' and
                     (arity is None or o.arity == arity)]
        else:
            cands = [o for o in by_name[name] if o.kind == kind]
        if len(cands) != 1:
            raise SplitError(f'{where}: {len(cands)} objects match {kind} {name}'
                             f'{"" if arity is None else f" with {arity} input arguments"}'
                             ' (not created in this file before it, or ambiguous)')
        return cands[0]

    for gap, stmt, line in statements(text):
        if not stmt:
            # trailing comments: keep them with the last section
            setup.append((gap, ''))
            continue
        code = strip_code(stmt)
        c = classify(code)
        where = f'line {line}: {code[:70]}'
        lead = leading(gap)
        if c is None:
            raise SplitError(f'{where}: a statement the tool cannot place; teach classify() about it')
        if c[0] == 'setup':
            setup.append((gap, stmt))
        elif c[0] == 'object':
            _, kind, name, arity, extra = c
            o = Obj(kind, name, arity, stmt, line)
            if o.key() in objs:
                raise SplitError(f'{where}: {o.label()} created twice')
            o.on = extra
            o.parts.append((lead, stmt))
            objs[o.key()] = o
            by_name[name].append(o)
        elif c[0] == 'attach':
            for kind, name, arity in c[1]:
                lookup(kind, name, arity, where).parts.append((lead, stmt))
        elif c[0] == 'config_dump':
            m = re.search(r"pg_extension_config_dump\(\s*'([\w.]+)'", stmt)
            rel = bare(m.group(1))
            tabs = [o for o in objs.values() if o.kind == 'table' and
                    (o.name == rel or rel.startswith(o.name + '_') and rel.endswith('_seq'))]
            tabs.sort(key=lambda o: -len(o.name))
            if not tabs:
                raise SplitError(f'{where}: no table for {rel}')
            tabs[0].parts.append((lead, stmt))
        elif c[0] == 'bulk_revoke':
            kind = c[1]
            what = 'FUNCTION' if kind == 'function' else 'TABLE'
            if lead:
                setup.append((gap, ''))
            for o in objs.values():
                if o.kind != kind:
                    continue
                sig = signature_text(o) if kind == 'function' else f'{SCHEMA}.{o.name}'
                o.parts.append(('', f'REVOKE ALL ON {what} {sig} FROM PUBLIC;'))
        elif c[0] == 'grant':
            kind = c[3]
            # the target list, from the statement text itself (to keep its spelling)
            raw = re.match(r'(?is)^\s*(GRANT|REVOKE)\s+(.*?)\s+ON\s+(FUNCTION|TABLE|SEQUENCE|TYPE)?\s*(.*)\s+(TO|FROM)\s+(.*?);\s*$',
                           strip_comments(stmt))
            if raw is None:
                raise SplitError(f'{where}: cannot read the GRANT')
            tlist = split_top(raw.group(4))
            head_comment = lead
            for t in tlist:
                if kind == 'FUNCTION':
                    (fname, ar), = func_targets(t)
                    o = lookup('function', fname, ar, where)
                else:
                    o = lookup('table', bare(t), None, where)
                on_kind = (raw.group(3).upper() + ' ') if raw.group(3) else ''
                one = '%s %s ON %s%s %s %s;' % (raw.group(1).upper(), raw.group(2), on_kind,
                                                 ws(t), raw.group(5).upper(), ws(raw.group(6)))
                o.parts.append((head_comment, one))
                head_comment = ''       # the statement's comment goes with its first object only
        else:
            raise SplitError(f'{where}: unexpected {c!r}')

    # triggers go with their function; everything else by name
    for o in objs.values():
        if o.kind in ('trigger', 'event trigger'):
            fn = o.on[1]
            fs = [f for f in by_name[fn] if f.kind == 'function']
            o.section = section_of(fs[0].name) if fs else None
            if o.section is None:
                o.section = section_of(o.name)
        elif o.kind == 'operator':
            o.section = section_of(o.name.split(':', 1)[1])
        elif o.kind == 'cast':
            o.section = section_of(o.name.split('->')[0]) or section_of(o.name.split('->')[1])
        else:
            o.section = section_of(o.name)
        if o.section is None:
            raise SplitError(f'line {o.line}: no section for {o.label()}; add a pattern to SECTIONS '
                             f'in {__file__}')
    return setup, list(objs.values())


def ws(s):
    """s with each run of white space made one space."""
    return re.sub(r'\s+', ' ', s).strip()


def strip_comments(stmt):
    return re.sub(r'--[^\n]*', '', stmt)


def signature_text(o):
    """A function's signature as GRANT and COMMENT write it: the input
    arguments' types, from the CREATE statement."""
    code = o.create
    i = code.index('(', re.search(r'(?i)FUNCTION\s+[\w."]+\s*', code).end() - 1)
    j = match_paren(code, i)
    types = []
    for a in split_top(strip_comments(code[i + 1:j])):
        a = re.sub(r'(?is)\s+(DEFAULT\s.*|=.*)$', '', a.strip())
        if re.match(r'(?i)^OUT\s', a):
            continue
        a = re.sub(r'(?i)^(IN|INOUT|VARIADIC)\s+', lambda m: 'VARIADIC ' if m.group(1).upper() == 'VARIADIC' else '', a)
        words = a.split()
        # "name type..." or just "type": a first word that is a known type
        # name alone is the type
        if len(words) > 1 and not re.match(r'(?i)^(double|character|bit|time|timestamp|interval)$', words[0]) \
                and '.' not in words[0] and '(' not in words[0]:
            words = words[1:]
        types.append(' '.join(words))
    return f'{SCHEMA}.{o.name}({", ".join(types)})'


# ---------------------------------------------------------------------------
# Dependencies: what a statement needs at creation
# ---------------------------------------------------------------------------

def eager_refs(stmt):
    """Names of apikeys.* objects a statement uses at creation."""
    body_lang = re.search(r'(?i)LANGUAGE\s+(\w+)', strip_code(stmt))
    text = stmt
    if body_lang and body_lang.group(1).lower() not in ('sql',):
        # plpgsql (or C) bodies are not resolved at CREATE: only the signature counts
        text = re.sub(r'(?s)\$(\w*)\$.*?\$\1\$', '', stmt)
        text = re.sub(r"(?s)AS\s+'.*?'", '', text)
    text = strip_comments(text)
    if re.match(r'(?i)\s*COMMENT\s', text):
        text = re.sub(r"(?s)'(?:[^']|'')*'", "''", text)    # a comment's text names no dependency
    return set(m.group(1) for m in re.finditer(r'(?i)\bapikeys\.("?)(\w+)\1', text)) | \
        set(m.group(2) for m in re.finditer(r'(?i)\bapikeys\.("?)(\w+)\1', text))


def check_order(order, objs):
    created = {}
    for pos, o in enumerate(order):
        created.setdefault(o.name, pos)
    problems = []
    for pos, o in enumerate(order):
        for lead, stmt in o.parts:
            for r in eager_refs(stmt):
                if r in created and created[r] > pos and r != o.name:
                    later = order[created[r]]
                    problems.append(f'{o.label()} ({o.section}) needs {later.label()}, '
                                    f'created later ({later.section})')
        if o.on and o.on[0] and o.on[0] in created and created[o.on[0]] > pos:
            problems.append(f'{o.label()} ({o.section}) is on table {o.on[0]}, created later')
    if problems:
        raise SplitError('the sections would create objects before what they need:\n  ' +
                         '\n  '.join(sorted(set(problems))) +
                         '\n(move a pattern to another section, or reorder SECTIONS)')


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

def render(setup, objs, input_name):
    files = collections.OrderedDict()
    names = collections.Counter(o.name for o in objs if o.kind == 'function')
    unique = {n for n, c in names.items() if c == 1}
    for idx, (sec, title, _) in enumerate(SECTIONS):
        fname = f'{idx:02d}_{sec}.sql'
        head = (f'-- sql/install/{fname}: {title}\n'
                f'--\n'
                f'-- A section of the install script: make concatenates sql/install/*.sql\n'
                f'-- in name order into apikeys--<version>.sql.  Each object is followed by\n'
                f'-- its comment, privileges and settings.\n')
        body = []
        if sec == 'setup':
            held = ''       # comments whose statement went elsewhere: before the next one
            for gap, stmt in setup:
                if not stmt:
                    held += '\n\n' + gap
                    continue
                lead = leading(held + '\n\n' + gap)
                held = ''
                if stmt.startswith('\\'):
                    body.append(('-- complain if script is sourced in psql, rather than via CREATE EXTENSION\n', stmt))
                else:
                    body.append((lead, stmt))
            if leading(held):
                body.append((leading(held), ''))
        for o in objs:
            if o.section != sec:
                continue
            chunk = []
            # the CREATE, its COMMENTs, then the rest in their order (only
            # privileges depend on their order, and comments touch none)
            parts = o.parts[:1] + [p for p in o.parts[1:] if re.match(r'(?i)\s*COMMENT\s', p[1])] + \
                [p for p in o.parts[1:] if not re.match(r'(?i)\s*COMMENT\s', p[1])]
            for lead, stmt in parts:
                if stmt is not o.create:
                    stmt = drop_unique_signature(stmt, unique)
                if lead:
                    chunk.append(lead.rstrip('\n') + '\n' + stmt)
                else:
                    chunk.append(stmt)
            body.append(('', '\n'.join(chunk)))
        out = [head]
        for lead, stmt in body:
            piece = (lead.rstrip('\n') + '\n' if lead else '') + stmt
            out.append(piece.rstrip('\n') + '\n')
        files[fname] = '\n'.join(out)
    return files


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('input', nargs='?', default='apikeys--1.0.sql')
    ap.add_argument('--outdir', default='sql/install')
    ap.add_argument('--check', action='store_true',
                    help='write nothing; fail if OUTDIR differs from what would be written')
    ap.add_argument('--list', action='store_true', help='print each object and its section')
    args = ap.parse_args()
    text = open(args.input, encoding='utf-8').read()
    try:
        setup, objs = split(text)
        order = [o for sec, _, _ in SECTIONS for o in objs if o.section == sec]
        check_order(order, objs)
        files = render(setup, objs, args.input)
    except SplitError as e:
        print(f'{args.input}: {e}', file=sys.stderr)
        return 1
    if args.list:
        for o in order:
            print(f'{o.section:16} {o.label()}')
    counts = collections.Counter(o.section for o in objs)
    if args.check:
        bad = []
        for f, content in files.items():
            p = os.path.join(args.outdir, f)
            if not os.path.exists(p) or open(p, encoding='utf-8').read() != content:
                bad.append(p)
        extra = set(glob.glob(os.path.join(args.outdir, '[0-9][0-9]_*.sql'))) - \
            {os.path.join(args.outdir, f) for f in files}
        if bad or extra:
            print('differs: ' + ' '.join(sorted(bad + list(extra))), file=sys.stderr)
            return 1
        return 0
    os.makedirs(args.outdir, exist_ok=True)
    for p in glob.glob(os.path.join(args.outdir, '[0-9][0-9]_*.sql')):
        if os.path.basename(p) not in files:
            os.remove(p)
    for f, content in files.items():
        with open(os.path.join(args.outdir, f), 'w', encoding='utf-8') as fh:
            fh.write(content)
    for sec, _, _ in SECTIONS:
        print(f'{sec:16} {counts.get(sec, 0):4} objects', file=sys.stderr)
    print(f'{len(objs)} objects from {args.input} into {len(files)} files in {args.outdir}/', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
