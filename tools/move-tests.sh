#!/usr/bin/env bash
# tools/move-tests.sh: the pg_regress suite where PGXS users look for it
# (as pgvector keeps it): test/sql/NAME.sql and test/expected/NAME.out,
# each file starting from test/setup.sql so it runs alone.  Re-runnable:
# on a tree where some or all files are already moved it moves the rest
# and changes nothing twice.
#
#   1. git mv sql/*.sql -> test/sql/, expected/*.out -> test/expected/
#      (sql/install/ and sql/released.sha256 stay: sql/ is the install
#      script's source from then on);
#   2. every test/sql/NAME.sql without the line "\i test/setup.sql" gets
#      it as its first line, and each of its expected files
#      (NAME.out, NAME_N.out) the two lines psql echoes for it;
#   3. points the Makefile (REGRESS_OPTS --inputdir), test/run.sh and
#      test/check-memory.sh at test/ (exact-string edits, each done once).
# Then: make test (ACCEPT=1 for a test whose setup was its own, and review
# the diff).
set -eu
cd "$(dirname "$0")/.."
mkdir -p test/sql test/expected
moved=0
for f in sql/*.sql; do
	[ -e "$f" ] || continue
	git mv "$f" test/sql/ && moved=$((moved + 1))
done
for f in expected/*.out; do
	[ -e "$f" ] || continue
	git mv "$f" test/expected/ && moved=$((moved + 1))
done
rmdir expected 2>/dev/null || true
echo "moved $moved files"

included=0
for f in test/sql/*.sql; do
	name=$(basename "$f" .sql)
	grep -qx '\\i test/setup.sql' "$f" && continue
	{ echo '\i test/setup.sql'; cat "$f"; } >"$f.new" && mv "$f.new" "$f"
	for e in test/expected/"$name".out test/expected/"$name"_[0-9].out; do
		[ -e "$e" ] || continue
		{ echo '\i test/setup.sql'; echo '\set ECHO none'; cat "$e"; } >"$e.new" && mv "$e.new" "$e"
	done
	included=$((included + 1))
done
echo "test/setup.sql included by $included more files"

# replace FILE OLD NEW: OLD -> NEW once, if OLD is there
replace() {
	python3 - "$@" <<'PY'
import sys
path, old, new = sys.argv[1:4]
s = open(path).read()
if old in s:
    open(path, 'w').write(s.replace(old, new))
    print(f'{path}: {old!r} -> {new!r}')
PY
}
replace Makefile 'REGRESS_OPTS   = --inputdir=. ' 'REGRESS_OPTS   = --inputdir=test '
replace test/run.sh 'inputdir=$ROOT; expdir=$ROOT/expected' 'inputdir=$ROOT/test; expdir=$ROOT/test/expected'
replace test/run.sh 'check_alternates "$ROOT/expected"' 'check_alternates "$ROOT/test/expected"'
replace test/run.sh '#   pg_regress     sql/ + expected/ ' '#   pg_regress     test/sql/ + test/expected/ '
replace test/check-memory.sh '--inputdir="$ROOT" ' '--inputdir="$ROOT/test" '
left=$(grep -nE 'inputdir=\.( |$)|inputdir="?\$ROOT"?( |;|$)|\$ROOT/expected' Makefile test/*.sh 2>/dev/null | grep -v isolation || true)
[ -z "$left" ] || { echo "still pointing at the old places:"; echo "$left"; exit 1; }
