#!/usr/bin/env bash
# test/check-memory.sh -- the pg_regress suite under valgrind (make check-memory).
#
# The extension is built and installed privately as for make test.  A
# cluster is initialised normally, then its postmaster runs under valgrind
# memcheck with --trace-children=yes, so every backend the tests use is
# checked, and pg_regress runs the REGRESS suites against it.
#
# What this catches with a stock (non-USE_VALGRIND) PostgreSQL: reads of
# uninitialised memory (palloc'd or not) that reach a branch, a syscall or
# an output; reads and writes outside malloc'd blocks; use of freed malloc
# memory.  What it cannot: overruns inside one palloc block (memory
# contexts carve chunks out of large malloc'd blocks) -- the libFuzzer/ASan
# targets of make fuzz cover the parsers for that.
#
# Suppressions: $VALGRIND_SUPP if set (for example PostgreSQL's
# src/tools/valgrind.supp from a source tree), plus test/valgrind.supp
# (padding bytes PostgreSQL itself writes to disk and sockets).
# The last line says "check-memory: clean" or "check-memory: UNCLEAN";
# the exit status is non-zero when unclean.
. "$(dirname "$0")/lib.sh"

command -v valgrind >/dev/null || {
	if [ "$(id -u)" = 0 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null ||
			{ apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null; }
	fi
	command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 1; }
}

pg_setup || exit 1
make_var() { make -s -C "$ROOT" --no-print-directory "print-$1"; }

supp=(--suppressions="$ROOT/test/valgrind.supp")
[ -n "${VALGRIND_SUPP:-}" ] && supp+=(--suppressions="$VALGRIND_SUPP")

dir=$WORK/mem
as_pg mkdir -p "$dir/vg"
as_pg initdb -D "$dir/data" -A trust -U postgres --no-sync >"$dir.initdb.log" 2>&1 || { cat "$dir.initdb.log"; exit 1; }
cat "$ROOT/test/regress.conf" | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
{
	echo "listen_addresses = ''"
	echo "unix_socket_directories = '$dir'"
	echo "max_connections = 20"
	echo "log_statement = 'none'"
	echo "log_min_duration_statement = -1"
} | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null

msg "starting the postmaster under valgrind"
as_pg valgrind --quiet --tool=memcheck --trace-children=yes --track-origins=yes \
	--read-var-info=no --num-callers=30 --error-limit=no --gen-suppressions=all \
	"${supp[@]}" --log-file="$dir/vg/%p.log" \
	postgres -D "$dir/data" >"$dir/server.log" 2>&1 &
for _ in $(seq 1 180); do
	as_pg pg_isready -q -h "$dir" -p 5432 && break
	sleep 1
done
as_pg pg_isready -q -h "$dir" -p 5432 || { echo "server did not start under valgrind"; cat "$dir/server.log"; exit 1; }

msg "pg_regress under valgrind: $(make_var REGRESS)"
as_pg "$PGXSDIR/src/test/regress/pg_regress" \
	--host="$dir" --port=5432 --user=postgres \
	--inputdir="$ROOT/test" --outputdir="$dir" \
	--dbname=contrib_regression --load-extension=pgcrypto \
	$(make_var REGRESS) >"$dir/regress.log" 2>&1
rrc=$?
cat "$dir/regress.log" | grep -E '^(test|ok|not ok| All|=+)|tests? (failed|passed)'
as_pg pg_ctl -D "$dir/data" -m fast -w -t 300 stop >/dev/null 2>&1
wait

# Every process wrote its own log.  Split them into error reports; a report
# whose stack or origin has a frame in apikeys.so is ours and makes the run unclean.
# Others (PostgreSQL itself, not matched by a suppression because Debian's
# binaries are stripped) are listed but not counted.
nproc=$(ls "$dir"/vg/*.log 2>/dev/null | wc -l)
awk -v ours="$dir/ours.txt" -v theirs="$dir/theirs.txt" '
	function flush() { if (blk != "") { if (blk ~ /apikeys\.so/) { print blk > ours; n_ours++ } else { print blk > theirs; n_theirs++ } } blk = "" }
	/^==[0-9]+== [A-Z]/ && blk == "" { blk = $0; next }
	/^==[0-9]+== *$/ { flush(); next }
	/^\{/ { flush(); skip = 1; next }
	/^\}/ { skip = 0; next }
	skip { next }
	blk != "" { blk = blk "\n" $0 }
	END { flush(); print n_ours + 0, n_theirs + 0 }
' "$dir"/vg/*.log >"$dir/counts.txt" 2>/dev/null
read -r ours theirs <"$dir/counts.txt"
if [ "${theirs:-0}" -gt 0 ]; then
	echo "note: $theirs valgrind report(s) outside apikeys (PostgreSQL itself), first one:"
	head -25 "$dir/theirs.txt"
fi
if [ "${ours:-0}" -gt 0 ]; then
	echo "--- valgrind reports in apikeys code:"
	cat "$dir/ours.txt"
fi
[ $rrc -ne 0 ] && { echo "--- pg_regress failed under valgrind"; head -80 "$dir/regression.diffs" 2>/dev/null; }
if [ "${ours:-0}" -eq 0 ] && [ $rrc -eq 0 ]; then
	echo "check-memory: clean ($nproc processes checked, 0 valgrind errors in apikeys, pg_regress passed)"
	exit 0
fi
echo "check-memory: UNCLEAN (${ours:-0} valgrind errors in apikeys code; pg_regress exit $rrc)"
exit 1
