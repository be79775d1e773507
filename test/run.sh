#!/usr/bin/env bash
# test/run.sh -- run every test suite against real PostgreSQL servers.
#
#   pg_regress     sql/ + expected/           (REGRESS in the Makefile)
#   isolation      test/isolation/specs/       (ISOLATION)
#   TAP            test/t/*.pl                 (PostgreSQL::Test::Cluster)
#
# Environment: ACCEPT=1 copies actual pg_regress/isolation results into the
# expected files (for a new test; review the diff before committing);
# KEEP_WORK=1 keeps the temp directory with logs and clusters; TAP_ONLY=glob
# (say 050_*) runs only those TAP files and no other suite, for development.
#
# One failing suite does not hide the others.  The last line is
# "N passed, N failed" over every test of every suite; the exit status is
# non-zero when anything failed.

. "$(dirname "$0")/lib.sh"

pg_setup || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
failures=()

make_var() { make -s -C "$ROOT" --no-print-directory "print-$1"; }

# count_regress LOG SUITE RC: count "ok"/"FAILED" test lines of pg_regress
# output; a run that failed without naming a test counts as one failure.
count_regress() {
	local ok bad
	ok=$(grep -cE '\.\.\. ok' "$1" || true)
	bad=$(grep -cE '\.\.\. FAILED|\.\.\. failed' "$1" || true)
	if [ "$3" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
	passed=$((passed + ok))
	failed=$((failed + bad))
	[ "$bad" -gt 0 ] && failures+=("$2")
}

if [ -z "${TAP_ONLY:-}" ]; then
# pg_regress
msg "pg_regress: $(make_var REGRESS)"
as_pg mkdir -p "$WORK/regress"
as_pg "$PGXSDIR/src/test/regress/pg_regress" \
	--temp-instance="$WORK/regress/instance" \
	--temp-config="$ROOT/test/regress.conf" \
	--bindir="$INSTBIN" \
	--inputdir="$ROOT" --outputdir="$WORK/regress" \
	--dbname=contrib_regression \
	--load-extension=pgcrypto \
	$(make_var REGRESS) >"$WORK/regress.log" 2>&1
rc=$?
cat "$WORK/regress.log"
count_regress "$WORK/regress.log" pg_regress $rc
[ -f "$WORK/regress/regression.diffs" ] && cat "$WORK/regress/regression.diffs"
# ACCEPT=1 copies actual results over expected ones (review the diff!)
if [ -n "${ACCEPT:-}" ]; then
	cp "$WORK"/regress/results/*.out "$ROOT/expected/" 2>/dev/null
	mkdir -p "$ROOT/test/isolation/expected"
fi

# isolation
if [ -n "$(make_var ISOLATION)" ]; then
msg "isolation: $(make_var ISOLATION)"
as_pg mkdir -p "$WORK/isolation"
as_pg "$PGXSDIR/src/test/isolation/pg_isolation_regress" \
	--temp-instance="$WORK/isolation/instance" \
	--temp-config="$ROOT/test/regress.conf" \
	--bindir="$INSTBIN" \
	--inputdir="$ROOT/test/isolation" --outputdir="$WORK/isolation" \
	--dbname=isolation_regression \
	$(make_var ISOLATION) >"$WORK/isolation.log" 2>&1
rc=$?
cat "$WORK/isolation.log"
count_regress "$WORK/isolation.log" isolation $rc
[ -f "$WORK/isolation/regression.diffs" ] && cat "$WORK/isolation/regression.diffs"
[ -n "${ACCEPT:-}" ] && cp "$WORK"/isolation/results/*.out "$ROOT/test/isolation/expected/" 2>/dev/null
fi
fi

# TAP: one count per assertion, read from each file's own TAP stream
msg "TAP: test/t"
as_pg mkdir -p "$WORK/tap"
for t in "$ROOT"/test/t/${TAP_ONLY:-*}.pl; do
	[ -e "$t" ] || continue
	name=$(basename "$t" .pl)
	as_pg mkdir -p "$WORK/tap/$name"
	( cd "$WORK/tap" && as_pg env TESTDIR="$WORK/tap/$name" PG_REGRESS="$PGXSDIR/src/test/regress/pg_regress" \
		APIKEYS_ROOT="$ROOT" PGXSDIR="$PGXSDIR" \
		perl -I "$PGXSDIR/src/test/perl" -I "$ROOT/test/t" "$t" ) >"$WORK/tap/$name.out" 2>"$WORK/tap/$name.err"
	rc=$?
	ok=$(grep -cE '^ok ' "$WORK/tap/$name.out" || true)
	bad=$(grep -cE '^not ok ' "$WORK/tap/$name.out" || true)
	plan=$(sed -n 's/^1\.\.\([0-9]*\).*/\1/p' "$WORK/tap/$name.out" | head -1)
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
	# a file that asserted nothing (skip_all, or died early) is a failure
	if [ $((ok + bad)) -eq 0 ]; then bad=1; fi
	if [ -n "$plan" ] && [ $((ok + bad)) -lt "$plan" ] && [ "$bad" -eq 0 ]; then bad=1; fi
	passed=$((passed + ok))
	failed=$((failed + bad))
	if [ "$bad" -gt 0 ]; then
		failures+=("tap/$name")
		echo "--- $name: FAILED (exit $rc)"
		grep -E '^not ok|^#' "$WORK/tap/$name.out" | head -60
		tail -40 "$WORK/tap/$name.err"
		find "$WORK/tap/$name" -name '*.log' -newer "$t" 2>/dev/null | head -5 | while read -r f; do
			echo "--- tail of $f"; tail -20 "$f"; done
	else
		echo "ok   $name ($ok assertions)"
	fi
done

[ ${#failures[@]} -gt 0 ] && echo "failed suites: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
