#!/usr/bin/env bash
# test/run.sh -- run every test suite against real PostgreSQL servers.
#
#   pg_regress     test/sql/ + test/expected/           (REGRESS in the Makefile)
#   isolation      test/isolation/specs/       (ISOLATION)
#   TAP            test/t/*.pl                 (PostgreSQL::Test::Cluster)
#   installcheck   test/installcheck.sh        (make install && make installcheck
#                                               as a PGXS user runs them, both modes)
#
# pg_regress and isolation run twice: on a server with apikeys in
# shared_preload_libraries (test/regress.conf), then on one without
# (test/regress-not-preloaded.conf, as make installcheck meets a stock
# server).  A test whose output differs without preloading has an alternate
# expected file NAME_1.out, and prints apikeys_internal._preloaded() near its top, so
# a run in one mode can never pass by matching the other mode's file; a
# NAME_1.out whose guard does not read "t" in NAME.out and "f" in NAME_1.out
# is a failure.
#
# Environment: ACCEPT=1 copies actual pg_regress/isolation results into the
# expected files (for a new test; review the diff before committing): it
# first lists which expected files change, and copies nothing when no test
# ran; the preloaded run writes NAME.out, the other NAME_1.out (only when it
# differs from NAME.out, and only for a test that prints the guard; an
# alternate no longer needed is removed); KEEP_WORK=1 keeps the temp
# directory with logs and clusters; TAP_ONLY=glob (say 050_*) runs only those
# TAP files and no other suite, for development; SKIP_TAP=1 skips the TAP
# files, SKIP_INSTALLCHECK=1 the installcheck suite, SKIP_ASSERTS=1 the
# pg_regress run of the -DUSE_ASSERT_CHECKING build, all for development;
# TEST_TIMEOUT (seconds, default 600) bounds
# each TAP file and SUITE_TIMEOUT (default 1200) each pg_regress/isolation
# run and the installcheck suite.
#
# Nothing passes that did not run: a test listed in the Makefile (REGRESS,
# ISOLATION) with no result line is a failure, and so is a run whose number
# of results differs from the number of tests listed, a TAP_ONLY glob that
# matches no file, a TAP file that skips anything (skip_all, "ok ... # SKIP",
# a "# skip" comment), a TAP file with fewer results than its plan, an
# installcheck mode without its result line, and a suite or file that
# outlives its timeout.  A path out of the repository in bench/ is a failure
# too, and so is a file of src/ that make indent would change.
#
# One failing suite does not hide the others.  The last line is
# "N passed, N failed" over every test of every suite; the exit status is
# non-zero when anything failed.
#
# The version matrix: every suite runs once per PostgreSQL major, each run
# with that major's pg_config.  The majors are those of APIKEYS_MATRIX
# (default "15 18", the project's own matrix: a major of it with no
# pg_config is a failure) and every other major installed here: Debian's
# and PGDG's /usr/lib/postgresql/N/bin/pg_config, pg_config on PATH, and the
# builds of test/pgbuild.sh (which make test's deps step runs for 18).  Each
# major prints its own suites, then a summary gives one line per major and
# the last line sums them.  PG=N (make test PG=15) runs one major;
# PG_CONFIG=/path/to/pg_config runs that installation alone.  A test that
# needs what a major lacks here (pg_cron has no package for 18) skips it in
# the TAP way, and this script counts it as "not run" (a summary line),
# never as passed, and only where it finds that major really lacks it;
# every other skip is a failure.  The run of each major above the oldest
# one here also gets a private install of the oldest (UPGRADE_FROM, its
# pg_config), which test/t/040_pg_upgrade.pl upgrades from.

PG_CONFIG_GIVEN=${PG_CONFIG:+1}
. "$(dirname "$0")/lib.sh"

# pg_configs: one "MAJOR PATH" line per PostgreSQL major installed here
pg_configs() {
	local c m seen=" " cache=${APIKEYS_PGCACHE:-/var/cache/apikeys}
	for c in /usr/lib/postgresql/*/bin/pg_config "$(command -v pg_config)" "$cache"/pg*/bin/pg_config; do
		[ -x "$c" ] || continue
		# a build of test/pgbuild.sh counts once it is complete
		case $c in "$cache"/*) [ -f "$(dirname "$(dirname "$c")")/BUILD-COMPLETE" ] || continue ;; esac
		m=$(pg_major "$c")
		[ -n "$m" ] || continue
		case $seen in *" $m "*) continue ;; esac
		seen="$seen$m "
		echo "$m $c"
	done | sort -n
}

if [ -z "${APIKEYS_ONE_MAJOR:-}" ] && [ -z "$PG_CONFIG_GIVEN" ]; then
	found=$(pg_configs)
	if [ -n "${PG:-}" ]; then
		majors=$PG
	else
		majors=$(printf '%s\n' ${APIKEYS_MATRIX:-15 18} $(echo "$found" | cut -d' ' -f1) | sort -nu)
	fi
	logs=$(mktemp -d "${TMPDIR:-/tmp}/apikeys-matrix.XXXXXX")
	trap 'rm -rf "$logs"' EXIT
	tp=0; tf=0; tn=0; summary=(); notrun=()
	for m in $majors; do
		cfg=$(echo "$found" | awk -v m="$m" '$1 == m { print $2 }')
		if [ -z "$cfg" ]; then
			echo "FAILED PostgreSQL $m: no pg_config for it here (make deps builds 18; for another major install its server development package, or give PG_CONFIG=)"
			summary+=("PostgreSQL $m: not installed: 0 passed, 1 failed")
			tf=$((tf + 1))
			continue
		fi
		# the pg_upgrade test of a major goes from the oldest one here
		read -r om ocfg <<<"$(echo "$found" | head -1)"
		from=
		[ "$om" -lt "$m" ] && from=$ocfg
		msg "PostgreSQL $m: $cfg${from:+ (pg_upgrade from $om)}"
		t0=$(date +%s)
		APIKEYS_ONE_MAJOR=$m PG_CONFIG=$cfg UPGRADE_FROM=$from "$0" | tee "$logs/$m.log"
		t1=$(date +%s)
		last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$logs/$m.log" | tail -1)
		if [ -z "$last" ]; then
			p=0; f=1
			echo "FAILED PostgreSQL $m: the run printed no \"N passed, N failed\" line"
		else
			p=${last%% passed*}; f=${last#*passed, }; f=${f%% failed*}
		fi
		n=$(sed -n 's/^not run: [^:]*: \([0-9][0-9]*\) assertions .*/\1/p' "$logs/$m.log" | awk '{ s += $1 } END { print s + 0 }')
		while IFS= read -r line; do notrun+=("PostgreSQL $m: ${line#not run: }"); done < <(grep '^not run: ' "$logs/$m.log")
		summary+=("PostgreSQL $m ($("$cfg" --version)): $p passed, $f failed$([ "$n" -gt 0 ] && echo ", $n not run"), $((t1 - t0)) s")
		tp=$((tp + p)); tf=$((tf + f)); tn=$((tn + n))
	done
	echo
	echo "=== per PostgreSQL major"
	printf '%s\n' "${summary[@]}"
	[ ${#notrun[@]} -gt 0 ] && printf 'not run (what this machine lacks for that major): %s\n' "${notrun[@]}"
	echo "$tp passed, $tf failed"
	[ "$tf" -eq 0 ]
	exit
fi

pg_setup || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
failures=()

make_var() { make -s -C "$ROOT" --no-print-directory "print-$1"; }

TEST_TIMEOUT=${TEST_TIMEOUT:-600}
SUITE_TIMEOUT=${SUITE_TIMEOUT:-1200}

# fail_with SUITE REASON: one failure that no test line reported.
fail_with() {
	echo "FAILED $1: $2"
	failed=$((failed + 1))
	failures+=("$1")
}

# A pg_regress/isolation result line, in the format before 16 ("test NAME
# ... ok", "     NAME ... FAILED") and in 16's TAP ("ok 1 - NAME  12 ms",
# "not ok 2 + NAME  30 ms"): RESULT_RE matches any, OK_RE a passed one;
# both take the test name (a regular expression) as %s.
RESULT_RE='^((test| ) +%s +\.\.\. +(ok|FAILED|failed)|(not )?ok +[0-9]+ +[-+] +%s( |$))'
OK_RE='^((test| ) +%s +\.\.\. +ok|ok +[0-9]+ +[-+] +%s( |$))'
# shellcheck disable=SC2059
result_re() { printf "$1" "$2" "$2"; }

# count_regress LOG SUITE RC TESTS...: count the result line of each listed
# test in pg_regress output (either format, see RESULT_RE).  A listed
# test without exactly one result line, a result line for a test not
# listed, and a run that failed without naming a test each count as one
# failure.
count_regress() {
	local log=$1 suite=$2 rc=$3 ok=0 bad=0 t n lines
	shift 3
	for t in "$@"; do
		n=$(grep -cE "$(result_re "$RESULT_RE" "$t")" "$log" || true)
		if [ "$n" -ne 1 ]; then
			fail_with "$suite/$t" "listed in the Makefile, $n result lines (test did not run?)"
		elif grep -qE "$(result_re "$OK_RE" "$t")" "$log"; then
			ok=$((ok + 1))
		else
			bad=$((bad + 1)); failures+=("$suite/$t")
		fi
	done
	lines=$(grep -cE "$(result_re "$RESULT_RE" '[^ ]+')" "$log" || true)
	if [ "$lines" -ne $# ]; then
		fail_with "$suite" "$lines results for $# tests listed in the Makefile"
	fi
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$bad" -eq 0 ]; then
		fail_with "$suite" "exit status $rc with no failing test named"
	fi
	passed=$((passed + ok))
	failed=$((failed + bad))
}

# tap_counts FILE: prints "ok not_ok top": the assertions that passed and
# failed, subtests' own summary lines left out, and the number of
# top-level results (what a plan counts).
tap_counts() {
	perl -ne '
		if (/^\s*# Subtest: (.*?)\s*$/) { $sub{$1}++; next; }
		next unless /^(\s*)(not )?ok \d+(?: - (.*?))?(?:\s+#.*)?\s*$/;
		$top++ if $1 eq "";
		my $n = defined $3 ? $3 : "";
		if ($sub{$n}) { $sub{$n}--; next; }
		if ($2) { $bad++ } else { $ok++ }
		END { printf "%d %d %d\n", $ok, $bad, $top }' "$1"
}

# accept RESULTS_DIR EXPECTED_DIR: ACCEPT=1 copies results over expected
# files, after listing those that change; refuses when nothing ran.
accept() {
	local res=$1 exp=$2 f base
	ls "$res"/*.out >/dev/null 2>&1 || { fail_with accept "no results in $res: nothing to accept"; return; }
	mkdir -p "$exp"
	for f in "$res"/*.out; do
		base=$(basename "$f")
		if ! cmp -s "$f" "$exp/$base"; then
			if [ -e "$exp/$base" ]; then echo "ACCEPT: changes $exp/$base"; else echo "ACCEPT: creates $exp/$base"; fi
			diff -u "$exp/$base" "$f" 2>/dev/null | head -40 || true
			cp "$f" "$exp/$base"
		fi
	done
}

# check_alternates DIR: an alternate expected file (NAME_1.out, the output
# without apikeys preloaded) is honest only when its test prints
# apikeys_internal._preloaded(): "t" in NAME.out, "f" in NAME_1.out, so a preloaded
# run can never pass by matching the other file.  One failure per file that
# does not.
check_alternates() {
	local dir=$1 f base main
	for f in "$dir"/*_1.out; do
		[ -e "$f" ] || continue
		base=$(basename "$f" _1.out); main="$dir/$base.out"
		if [ "$(guard_value "$main")" != t ] || [ "$(guard_value "$f")" != f ]; then
			fail_with "alternates/$base" "$base.out must print apikeys_internal._preloaded() as t and ${base}_1.out as f"
		fi
	done
}

# guard_value FILE: the value printed under "SELECT apikeys_internal._preloaded() AS
# preloaded;" (or under the permutation step that runs it, in isolation
# output), or nothing.
guard_value() {
	[ -f "$1" ] || return 0
	awk '/apikeys_internal\._preloaded\(\) AS preloaded/ { on = 1; next }
	     on && /^ *[tf] *$/ { gsub(/ /, ""); print; exit }' "$1"
}

# accept_mode RESULTS_DIR EXPECTED_DIR MODE: ACCEPT=1 for one mode.
# preloaded: results go to NAME.out.  not_preloaded: a result equal to
# NAME.out needs no alternate (an alternate left over is removed); any
# other goes to NAME_1.out, and only for a test that prints the guard.
accept_mode() {
	local res=$1 exp=$2 mode=$3 f base
	if [ "$mode" = preloaded ]; then accept "$res" "$exp"; return; fi
	ls "$res"/*.out >/dev/null 2>&1 || { fail_with accept "no results in $res: nothing to accept"; return; }
	for f in "$res"/*.out; do
		base=$(basename "$f" .out)
		if cmp -s "$f" "$exp/$base.out"; then
			[ -e "$exp/${base}_1.out" ] && { echo "ACCEPT: removes $exp/${base}_1.out (no longer needed)"; rm -f "$exp/${base}_1.out"; }
		elif [ "$(guard_value "$f")" != f ]; then
			fail_with "accept/$base" "differs without preloading, but does not print apikeys_internal._preloaded() near its top: add the guard, then accept"
		elif ! cmp -s "$f" "$exp/${base}_1.out"; then
			if [ -e "$exp/${base}_1.out" ]; then echo "ACCEPT: changes $exp/${base}_1.out"; else echo "ACCEPT: creates $exp/${base}_1.out"; fi
			diff -u "$exp/${base}_1.out" "$f" 2>/dev/null | head -40 || true
			cp "$f" "$exp/${base}_1.out"
		fi
	done
}

# run_suite KIND MODE: one pg_regress (KIND regress) or isolation run on a
# temporary instance with apikeys preloaded (MODE preloaded:
# test/regress.conf) or not (not_preloaded: test/regress-not-preloaded.conf,
# as `make installcheck` against a stock server sees it).
run_suite() {
	local kind=$1 mode=$2 suite prog inputdir expdir db tests conf
	case $kind in
	regress)   prog="$PGXSDIR/src/test/regress/pg_regress"; inputdir=$ROOT/test; expdir=$ROOT/test/expected
	           db=contrib_regression; tests=$(make_var REGRESS); suite=pg_regress ;;
	isolation) prog="$PGXSDIR/src/test/isolation/pg_isolation_regress"; inputdir=$ROOT/test/isolation
	           expdir=$ROOT/test/isolation/expected; db=isolation_regression; tests=$(make_var ISOLATION); suite=isolation ;;
	esac
	case $mode in
	preloaded) conf=$ROOT/test/regress.conf ;;
	asserts) conf=$ROOT/test/regress.conf; suite="$suite($mode)" ;;
	*) conf=$ROOT/test/regress-not-preloaded.conf; suite="$suite($mode)" ;;
	esac
	local out="$WORK/$kind-$mode"
	msg "$suite: $tests"
	as_pg mkdir -p "$out"
	as_pg timeout -k 20 "$SUITE_TIMEOUT" "$prog" \
		--temp-instance="$out/instance" \
		--temp-config="$conf" \
		--bindir="$INSTBIN" \
		--inputdir="$inputdir" --outputdir="$out" \
		--dbname=$db \
		$([ "$kind" = regress ] && echo --load-extension=pgcrypto) \
		$tests >"$out.log" 2>&1
	local rc=$?
	cat "$out.log"
	[ "$rc" -eq 124 ] && fail_with "$suite" "timed out after ${SUITE_TIMEOUT}s"
	count_regress "$out.log" "$suite" $rc $tests
	[ -f "$out/regression.diffs" ] && cat "$out/regression.diffs"
	# ACCEPT=1 copies actual results over expected ones (review the diff!)
	[ -n "${ACCEPT:-}" ] && [ "$mode" != asserts ] && accept_mode "$out/results" "$expdir" "$mode"
}

# bench/ is self-contained: a path out of the repository (../shared, the
# developers' /work, a home directory) is one failure per line naming it.
check_bench_self_contained() {
	local hits
	hits=$(grep -rnE '\.\./(shared|\.\.)|/work/|\$HOME|~/' "$ROOT/bench" --include='*.sh' --include='*.sql' --include='*.c' || true)
	[ -z "$hits" ] && return
	while IFS= read -r line; do
		fail_with bench "refers outside the repository: ${line#"$ROOT/"}"
	done <<<"$hits"
}
check_bench_self_contained

# The layout of src/: every file as make indent (pgindent's pg_bsd_indent
# options) would write it, and every typedef of src/ in typedefs.list; one
# result.  Compiler warnings already fail the build (-Werror, test/lib.sh).
check_indent() {
	if "$ROOT/test/indent.sh" --check >"$WORK/indent.log" 2>&1; then
		echo "indent ... ok"
		passed=$((passed + 1))
	else
		cat "$WORK/indent.log"
		fail_with indent "src/ is not laid out as make indent would lay it out (run make indent)"
	fi
}
[ -z "${TAP_ONLY:-}" ] && check_indent

# Dependencies between the files of src/ run one way: no cycle of includes
# or calls (test/callgraph.sh, from the objects just built), and the
# Architecture table names exactly the files of src/; one result.
check_callgraph() {
	# the build copy holds the objects (and the same files as the checkout)
	if "$WORK/inst-build/test/callgraph.sh" >"$WORK/callgraph.log" 2>&1; then
		echo "callgraph ... ok"
		passed=$((passed + 1))
	else
		cat "$WORK/callgraph.log"
		fail_with callgraph "a cycle of includes or calls between files of src/, or the Architecture table and src/ differ"
	fi
}
[ -z "${TAP_ONLY:-}" ] && check_callgraph

# The install script is what sql/install/ generates, and no released
# version's script has changed (test/install-script.sh); one result.
check_install_script() {
	if "$ROOT/test/install-script.sh" >"$WORK/install-script.log" 2>&1; then
		echo "install script ... ok"
		passed=$((passed + 1))
	else
		cat "$WORK/install-script.log"
		fail_with install-script "the install script differs from sql/install/, or a released script changed"
	fi
}
[ -z "${TAP_ONLY:-}" ] && check_install_script

if [ -z "${TAP_ONLY:-}" ]; then
# pg_regress, then isolation: each with apikeys preloaded, then without,
# so both variants of the expected files are checked on every run
check_alternates "$ROOT/test/expected"
check_alternates "$ROOT/test/isolation/expected"
run_suite regress preloaded
run_suite regress not_preloaded
if [ -n "$(make_var ISOLATION)" ]; then
	run_suite isolation preloaded
	run_suite isolation not_preloaded
fi
elif [ -n "${ACCEPT:-}" ]; then
	fail_with accept "ACCEPT=1 with TAP_ONLY runs no pg_regress/isolation test: nothing to accept"
fi

if [ -n "${SKIP_TAP:-}" ]; then
	msg "TAP: skipped (SKIP_TAP=1, for development)"
else
# TAP: one count per assertion, read from each file's own TAP stream
msg "TAP: test/t"
# what this major lacks here, that a TAP file may skip for (see the header)
LACKS=
[ -f "$("$PG_CONFIG" --pkglibdir)/pg_cron.so" ] || LACKS="$LACKS pg_cron"
# the old major's minor release stores "pg_attver" column options (Debian's
# 15.20 does) that this major's pg_dump does not know (18.6): pg_upgrade
# between the two cannot work (test/t/040_pg_upgrade.pl)
attver_h() { grep -qs '"pg_attver"' "$("$1" --includedir-server)/catalog/pg_attribute.h"; }
if [ -n "${UPGRADE_FROM:-}" ] && attver_h "$UPGRADE_FROM" && ! attver_h "$PG_CONFIG"; then
	LACKS="$LACKS pg_upgrade-attver"
fi
as_pg mkdir -p "$WORK/tap"
ntap=0
for t in "$ROOT"/test/t/${TAP_ONLY:-*}.pl; do
	[ -e "$t" ] || continue
	ntap=$((ntap + 1))
	name=$(basename "$t" .pl)
	as_pg mkdir -p "$WORK/tap/$name"
	# TESTDIR up to 15; TESTDATADIR and TESTLOGDIR from 16 on
	( cd "$WORK/tap" && as_pg timeout -k 20 "$TEST_TIMEOUT" env TESTDIR="$WORK/tap/$name" \
		TESTDATADIR="$WORK/tap/$name/tmp_check" TESTLOGDIR="$WORK/tap/$name/tmp_check/log" \
		PG_REGRESS="$PGXSDIR/src/test/regress/pg_regress" \
		APIKEYS_ROOT="$ROOT" PGXSDIR="$PGXSDIR" ${OLDINST:+APIKEYS_UPGRADE_FROM="$OLDINST"} \
		perl -I "$PGXSDIR/src/test/perl" -I "$ROOT/test/t" "$t" ) >"$WORK/tap/$name.out" 2>"$WORK/tap/$name.err"
	rc=$?
	why=()
	[ -f "$WORK/tap/$name.out" ] || { why+=("no TAP output"); : >"$WORK/tap/$name.out"; }
	# counts: assertions (a subtest's own summary line is not one), and
	# top-level results against the plan
	read -r ok bad top < <(tap_counts "$WORK/tap/$name.out")
	plan=$(sed -n 's/^1\.\.\([0-9]*\).*/\1/p' "$WORK/tap/$name.out" | head -1)
	[ "$rc" -eq 124 ] && why+=("timed out after ${TEST_TIMEOUT}s")
	[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$bad" -eq 0 ] && why+=("exit status $rc")
	# a file that asserted nothing (skip_all, or died early) is a failure
	[ $((ok + bad)) -eq 0 ] && why+=("no assertion ran")
	[ -n "$plan" ] && [ "$top" -ne "$plan" ] && why+=("$top results for a plan of $plan")
	# a skip is a test that did not run: skip_all, "ok N # SKIP", "# skip"
	skips=$(grep -ciE '^ *1\.\.0( |$)|^ *ok .*# *skip|^ *# *skip' "$WORK/tap/$name.out" || true); skips=${skips:-0}
	# except "ok N # skip needs DEP", where this major really lacks DEP:
	# not run, said in a counted line (the summary of the matrix sums them)
	lacked=0
	for dep in $LACKS; do
		n=$(grep -ciE "^ *ok [0-9]+ *# *skip needs $dep[ ,:]" "$WORK/tap/$name.out" || true)
		[ "${n:-0}" -gt 0 ] || continue
		echo "not run: $name: $n assertions need $dep, which $("$PG_CONFIG" --version) lacks here"
		lacked=$((lacked + n))
	done
	skips=$((skips - lacked))
	[ "$skips" -gt 0 ] && why+=("$skips skipped")
	passed=$((passed + ok - lacked - (skips < ok ? skips : ok)))
	[ ${#why[@]} -gt 0 ] && [ "$bad" -eq 0 ] && bad=1
	failed=$((failed + bad))
	if [ "$bad" -gt 0 ]; then
		failures+=("tap/$name")
		echo "--- $name: FAILED (${why[*]:-exit $rc})"
		grep -iE '^ *not ok|^ *ok .*# *skip|^1\.\.' "$WORK/tap/$name.out" | head -60
		tail -40 "$WORK/tap/$name.err"
		find "$WORK/tap/$name" -name '*.log' -newer "$t" 2>/dev/null | head -5 | while read -r f; do
			echo "--- tail of $f"; tail -20 "$f"; done
	else
		echo "ok   $name ($((ok - lacked)) assertions)"
	fi
done
[ "$ntap" -eq 0 ] && fail_with tap "no TAP file matches test/t/${TAP_ONLY:-*}.pl"
fi

# make install && make installcheck as a PGXS user runs them, against a
# stock server without and with preloading (test/installcheck.sh): one
# result per mode, and a mode without its result line is a failure.
if [ -z "${TAP_ONLY:-}" ] && [ -z "${SKIP_INSTALLCHECK:-}" ]; then
	msg "installcheck: test/installcheck.sh"
	export WORK INSTBIN PGXSDIR
	timeout -k 20 "$SUITE_TIMEOUT" "$ROOT/test/installcheck.sh" >"$WORK/installcheck.log" 2>&1
	rc=$?
	cat "$WORK/installcheck.log"
	[ "$rc" -eq 124 ] && fail_with installcheck "timed out after ${SUITE_TIMEOUT}s"
	icbad=0
	for mode in not_preloaded preloaded; do
		n=$(grep -cE "^installcheck $mode \.\.\. " "$WORK/installcheck.log" || true)
		if [ "$n" -ne 1 ]; then
			fail_with "installcheck/$mode" "$n result lines (did not run?)"; icbad=1
		elif grep -qE "^installcheck $mode \.\.\. ok$" "$WORK/installcheck.log"; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1)); failures+=("installcheck/$mode"); icbad=1
		fi
	done
	[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$icbad" -eq 0 ] && fail_with installcheck "exit status $rc with no failing mode named"
fi

# Assertions that run: the extension built once more with
# -DUSE_ASSERT_CHECKING (in a copy of the tree, so the objects of src/ stay
# as a user's build makes them), installed over the private installation,
# and the pg_regress suite run again with apikeys preloaded, so every
# Assert() of src/ (lock order, shared-memory set-up, ...) is evaluated.
# A failed Assert aborts the backend: the suite fails.  SKIP_ASSERTS=1
# skips it, for development.
run_assert_suite() {
	local src=$WORK/assert-src
	msg "pg_regress(asserts): build with -DUSE_ASSERT_CHECKING"
	# the checkout's files (also from a tree that is not a git checkout, as
	# make dist's tarball), without build output: test/lib.sh's copy_tree
	copy_tree "$src"
	if ! make -s -C "$src" with_llvm=no PG_CONFIG="$PG_CONFIG" \
		PG_CFLAGS="-DUSE_ASSERT_CHECKING ${PG_CFLAGS:--Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare}" \
		>"$WORK/assert-build.log" 2>&1 ||
		! make -s -C "$src" with_llvm=no PG_CONFIG="$PG_CONFIG" install DESTDIR="$WORK/inst" >>"$WORK/assert-build.log" 2>&1; then
		cat "$WORK/assert-build.log"
		fail_with "pg_regress(asserts)" "the build with -DUSE_ASSERT_CHECKING failed"
		return
	fi
	[ "$(id -u)" = 0 ] && chown -R "$PG_OS_USER" "$WORK"
	run_suite regress asserts
}
if [ -z "${TAP_ONLY:-}" ] && [ -z "${SKIP_ASSERTS:-}" ]; then
	run_assert_suite
fi

[ $((passed + failed)) -eq 0 ] && fail_with run "no test ran"
[ ${#failures[@]} -gt 0 ] && echo "failed suites: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
