#!/usr/bin/env bash
# test/installcheck.sh -- what a PGXS user does, on a server of their own:
#
#   make && make install          (against a private copy of PostgreSQL)
#   initdb; start                 (initdb's defaults: max_prepared_transactions = 0,
#                                  no log_statement; a private socket directory)
#   make installcheck             (REGRESS, then ISOLATION, then TAP by prove_installcheck)
#   shared_preload_libraries = 'apikeys'; restart
#   make installcheck             (again)
#
# in a copy of the repository (installcheck writes results/, output_iso/ and
# tmp_check/ into the source tree).  It prints one result line per mode,
# "installcheck MODE ... ok" or "... FAILED", which test/run.sh counts: a mode
# passes only when make installcheck exits 0 and reports every test listed
# in REGRESS and ISOLATION as passed and prove reports "Result: PASS".
#
# The TAP part runs INSTALLCHECK_TAP (default: test/t/004_prepare_and_login.pl
# test/t/052_not_preloaded.pl, the two written for this, and
# test/t/064_handoff_delivery.pl, which needs the repository and the
# example's npm packages and must find them without make test's
# environment: test/run.sh runs every TAP file once already, and all of them
# twice more would double make test); a TAP file skipped whole fails;
# INSTALLCHECK_TAP=all runs every file (about 2 minutes per mode on an idle
# 2-core machine).
#
# Run by test/run.sh (which exports WORK, INSTBIN, PGXSDIR from its own
# pg_setup), or alone: test/installcheck.sh.

. "$(dirname "$0")/lib.sh"

if [ -z "${WORK:-}" ] || [ -z "${INSTBIN:-}" ]; then
	pg_setup || { echo "installcheck setup ... FAILED"; exit 1; }
fi

IC=$WORK/installcheck

# the private copy lacks the server headers (lib.sh copies what runs, not
# what builds): copy them where its relocated pg_config looks for them
inc=$("$PG_CONFIG" --includedir-server)
if [ ! -d "$WORK/inst$inc" ]; then
	mkdir -p "$WORK/inst$inc" && cp -a "$inc/." "$WORK/inst$inc/"
	[ "$(id -u)" = 0 ] && chown -R "$PG_OS_USER" "$WORK/inst$(dirname "$inc")"
fi
[ "$("$INSTBIN/pg_config" --includedir-server)" -ef "$WORK/inst$inc" ] || { echo "installcheck setup ... FAILED (the private pg_config does not point into $WORK/inst)"; exit 1; }
TAP_LIST=${INSTALLCHECK_TAP:-test/t/004_prepare_and_login.pl test/t/052_not_preloaded.pl test/t/064_handoff_delivery.pl}
[ "$TAP_LIST" = all ] && TAP_LIST=

# the repository's files as a user's checkout has them (no build output)
copy_tree "$IC/src"
# and what test/deps.sh installs in a checkout: the example's npm packages
[ -d "$ROOT/examples/delivery/node_modules" ] && cp -a "$ROOT/examples/delivery/node_modules" "$IC/src/examples/delivery/"
[ "$(id -u)" = 0 ] && chown -R "$PG_OS_USER" "$IC"

make_ic() { # make TARGET... in the copy, as the cluster's user, with the private pg_config
	as_pg make -C "$IC/src" --no-print-directory PG_CONFIG="$INSTBIN/pg_config" with_llvm=no "$@"
}

rc=0
msg "installcheck: make && make install (private copy of PostgreSQL)"
if ! { make_ic -s && make_ic -s install; } >"$IC/build.log" 2>&1; then
	cat "$IC/build.log"
	echo "installcheck build ... FAILED"
	exit 1
fi

dir=$IC/server
as_pg mkdir -p "$dir"
as_pg initdb -D "$dir/data" --no-sync >"$dir.initdb.log" 2>&1 || { cat "$dir.initdb.log"; echo "installcheck initdb ... FAILED"; exit 1; }
{
	echo "listen_addresses = ''"
	echo "unix_socket_directories = '$dir'"
} | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
nregress=$(make -s -C "$ROOT" --no-print-directory print-REGRESS | wc -w)
niso=$(make -s -C "$ROOT" --no-print-directory print-ISOLATION | wc -w)

for mode in not_preloaded preloaded; do
	if [ "$mode" = preloaded ]; then
		echo "shared_preload_libraries = 'apikeys'" | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
	fi
	as_pg pg_ctl -D "$dir/data" -l "$dir.log" -w start >/dev/null || { tail -20 "$dir.log"; echo "installcheck $mode ... FAILED"; rc=1; continue; }
	msg "installcheck: $mode (shared_preload_libraries = '$(as_pg psql -h "$dir" -d postgres -Atc 'SHOW shared_preload_libraries')')"
	log=$IC/$mode.log
	make_ic installcheck PGHOST="$dir" PGPORT=5432 ${TAP_LIST:+PROVE_TESTS="$TAP_LIST"} >"$log" 2>&1
	mrc=$?
	why=()
	[ "$mrc" -ne 0 ] && why+=("exit status $mrc")
	# each suite's own summary, read from its own part of the log (16+
	# prints it as a TAP comment: "# +++ regress install-check ...",
	# "# All 27 tests passed.")
	section() { awk -v s="$1" '/^(# )?\+\+\+ [a-z]+ install-check/ { on = ($0 ~ ("\\+\\+\\+ " s " ")) } on' "$log"; }
	section regress | grep -qE "^(# )? *All $nregress tests passed" || why+=("pg_regress did not pass all $nregress tests (or did not run)")
	[ "$niso" -gt 0 ] && { section isolation | grep -qE "^(# )? *All $niso tests passed" || why+=("isolation did not pass all $niso tests (or did not run: make stops at the first failing suite)"); }
	grep -q '^Result: PASS' "$log" || why+=("prove did not PASS (or did not run)")
	grep -qE '\.\.+ skipped:' "$log" && why+=("a TAP file was skipped whole")
	if [ ${#why[@]} -eq 0 ]; then
		echo "installcheck $mode ... ok"
		# what ran, as prove reported it
		grep -E '^(# )?All [0-9]+ tests passed|^test/t/[^ ]+ \.\.|^Files=' "$log" | sed 's/^/    /'
	else
		echo "installcheck $mode ... FAILED (${why[*]})"
		tail -60 "$log"
		for d in "$IC/src/regression.diffs" "$IC/src/output_iso/regression.diffs"; do
			[ -f "$d" ] && { echo "--- $d"; head -100 "$d"; }
		done
		rc=1
	fi
	as_pg pg_ctl -D "$dir/data" -m fast -w stop >/dev/null
done
exit $rc
