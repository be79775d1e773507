#!/usr/bin/env python3
"""tools/strip-idle-qualifiers.py: remove the OPERATOR(pg_catalog.x) qualifiers
that change nothing, from the sections of the install script (sql/install/).

A function created with SET search_path = pg_catalog, pg_temp resolves an
unqualified operator in pg_catalog only (operators are never looked up in
pg_temp), so inside its body OPERATOR(pg_catalog.=) and = name the same
operator.  They do not always parse the same: OPERATOR(...) has the
precedence of "any other operator", a bare = or + has its own.  A qualifier
is therefore removed only where the parse cannot change: in a run of
expression tokens (between commas, semicolons, brackets, := and => and the
keywords that bind looser than every operator: AND, OR, NOT, IS, THEN, FROM,
...) whose operators are this one alone, or are all of one left-associative
precedence class (+ -, * / %, or "other" operators such as || and ->) and
all qualified ("other" ones may also be bare: they share the qualified
form's precedence).  Everything else keeps its qualifier: views, policies,
constraints and functions without a pinned search_path run under the
caller's path, where the qualifier is what protects them.

Idempotent; rewrites the files in place and prints how many it removed and
kept.  make test's install-script check and the upgrade test cover the
result like any change of a function body.

    tools/strip-idle-qualifiers.py [sql/install/*.sql]
    tools/strip-idle-qualifiers.py --check     exit 1, writing nothing, if any would go
                                               (test/install-script.sh, in make test)
"""
import glob
import re
import sys

QUAL = re.compile(r'OPERATOR\(pg_catalog\.([^)\s]+)\)')
PINNED = re.compile(r'SET\s+search_path\s*(=|TO)\s*pg_catalog\s*,\s*pg_temp\b', re.I)

# keywords that end an operand run: each binds looser than any operator (or
# is a clause or statement word that cannot sit inside an operand)
BOUNDARY = set('''and or not is isnull notnull then else elsif when case end select from
where group by having order limit offset returning into values set update insert delete
on join left right inner outer cross using return returns if loop while for foreach exit
continue as distinct union all except intersect with raise perform execute declare begin
asc desc nulls first last filter over partition window conflict do nothing lateral table
strict found query next elseif'''.split())
# keywords that are operators at a precedence between "other" and the
# comparisons, or above: a run holding one is left alone
OPWORDS = set('between in like ilike similar at collate overlaps escape uescape'.split())

ADDSUB = {'+', '-'}
MULDIV = {'*', '/', '%'}
COMPARE = {'=', '<', '>', '<=', '>=', '<>', '!='}


def op_class(op):
    if op in ADDSUB:
        return 'addsub'
    if op in MULDIV:
        return 'muldiv'
    if op in COMPARE:
        return 'compare'
    if op == '^':
        return 'pow'
    return 'other'


TOKEN = re.compile(r'''
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*)?\$.*?\$(?P=tag)?\$)
  | (?P<estr>[Ee]'(?:[^'\\]|\\.|'')*')
  | (?P<str>'(?:[^']|'')*')
  | (?P<ident>"(?:[^"]|"")*")
  | (?P<qual>OPERATOR\(pg_catalog\.[^)\s]+\))
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<param>\$[0-9]+)
  | (?P<num>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<sep>::|:=|=>|[(),;\[\].:])
  | (?P<op>[+\-*/<>=~!@#%^&|`?]+)
''', re.X | re.S)


def tokens(body):
    pos = 0
    while pos < len(body):
        m = TOKEN.match(body, pos)
        if not m:
            raise SystemExit('cannot read body near: %r' % body[pos:pos + 40])
        yield m.lastgroup if m.lastgroup != 'tag' else 'dollar', m.start(), m.end(), m.group()
        pos = m.end()


def strip_body(body):
    """The body with its removable qualifiers removed; (body, removed, kept)."""
    removals = []          # (start, end, op) of qualifiers to remove
    kept = 0
    stack = [[]]           # per bracket level: the current run's operators

    def close_run(run):
        nonlocal kept
        quals = [o for o in run if o[0] == 'qual']
        if not quals:
            return
        classes = {op_class(o[3]) for o in run}
        ok = False
        if any(o[0] == 'word' for o in run):
            ok = False      # BETWEEN, IN, LIKE, AT, COLLATE ... in the run
        elif len(run) == 1:
            ok = True
        elif len(classes) == 1 and classes <= {'addsub', 'muldiv'}:
            ok = all(o[0] == 'qual' for o in run)
        elif classes == {'other'}:
            ok = True
        if ok:
            removals.extend((o[1], o[2], o[3]) for o in quals)
        else:
            kept += len(quals)

    toks = [t for t in tokens(body)
            if t[0] not in ('ws', 'comment', 'dollar', 'estr', 'str', 'ident', 'param', 'num')]
    # assign[level]: the run follows SET or USING (UPDATE ... SET col = ...,
    # RAISE ... USING DETAIL = ...), where a leading bare = assigns
    assign = [False]
    for i, (kind, start, end, text) in enumerate(toks):
        if kind == 'qual':
            stack[-1].append(('qual', start, end, QUAL.match(text).group(1)))
        elif kind == 'op':
            if text == '=' and assign[-1] and not stack[-1]:
                continue            # an assignment, not an operator
            stack[-1].append(('op', start, end, text))
        elif kind == 'word':
            w = text.lower()
            nxt = toks[i + 1][3].lower() if i + 1 < len(toks) else ''
            if w in BOUNDARY:
                close_run(stack[-1])
                stack[-1] = []
                assign[-1] = w in ('set', 'using')
            elif w in OPWORDS and (w != 'at' or nxt in ('time', 'local')):
                stack[-1].append(('word', start, end, w))
        elif text in ('(', '['):
            stack.append([])
            assign.append(False)
        elif text in (')', ']'):
            close_run(stack.pop())
            assign.pop()
            if not stack:
                raise SystemExit('unbalanced brackets in a function body')
        elif text in (',', ';', ':=', '=>'):
            close_run(stack[-1])
            stack[-1] = []
            if text != ',':
                assign[-1] = False
        # '::', '.', ':' belong to an operand
    for run in stack:
        close_run(run)

    out = []
    last = 0
    for start, end, op in sorted(removals):
        before = body[start - 1] if start else ' '
        after = body[end] if end < len(body) else ' '
        rep = op
        if before in '+-*/<>=~!@#%^&|`?':
            rep = ' ' + rep
        if after in '+-*/<>=~!@#%^&|`?':
            rep = rep + ' '
        out.append(body[last:start])
        out.append(rep)
        last = end
    out.append(body[last:])
    return ''.join(out), len(removals), kept


STMT_DOLLAR = re.compile(r'\bAS\s+(\$(?P<tag>[A-Za-z_]*)\$)(?P<body>.*?)\1', re.S | re.I)


def process(text):
    """Rewrite every CREATE FUNCTION/PROCEDURE with a pinned search_path."""
    removed = kept = 0
    out = []
    pos = 0
    for m in re.finditer(r'^CREATE (?:OR REPLACE )?(?:FUNCTION|PROCEDURE)\b', text, re.M):
        if m.start() < pos:
            continue
        b = STMT_DOLLAR.search(text, m.end())
        if not b or ';' in text[m.end():b.start()]:
            continue        # no body of its own (LANGUAGE C): the next statement's
        semi = text.find(';', b.end())
        header = text[m.start():b.start()] + text[b.end():semi]
        if not PINNED.search(header):
            continue
        body, r, k = strip_body(b.group('body'))
        removed += r
        kept += k
        out.append(text[pos:b.start('body')])
        out.append(body)
        pos = b.end('body')
    out.append(text[pos:])
    return ''.join(out), removed, kept


def main():
    args = sys.argv[1:]
    check = '--check' in args
    files = [a for a in args if a != '--check'] or sorted(glob.glob('sql/install/*.sql'))
    total_r = total_k = 0
    for f in files:
        text = open(f).read()
        new, r, k = process(text)
        total_r += r
        total_k += k
        if new != text and not check:
            open(f, 'w').write(new)
        if new != text and check:
            print('%s: %d OPERATOR(pg_catalog.x) qualifiers that change nothing '
                  '(tools/strip-idle-qualifiers.py removes them)' % (f, r))
    if check:
        sys.exit(1 if total_r else 0)
    left = sum(len(QUAL.findall(open(f).read())) for f in files)
    print('removed %d qualifiers; kept %d in pinned functions (precedence could change); '
          '%d remain in all' % (total_r, total_k, left))


if __name__ == '__main__':
    main()
