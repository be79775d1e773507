#!/usr/bin/env bash
# test/alone.sh -- run each pg_regress file of REGRESS alone, on a fresh
# temporary instance, to check that none depends on another's leftovers
# (each starts from \i test/setup.sql after CREATE EXTENSION).  Not part of
# make test (a fresh instance per file: about 3 minutes per mode).
#
#   test/alone.sh                      every file, apikeys preloaded
#   MODE=not_preloaded test/alone.sh   without preloading
#   TESTS="verify usage" test/alone.sh some files
#
# Prints one line per file; exits non-zero when any failed, leaving its
# regression.diffs under $WORK (KEEP_WORK=1 keeps it).
. "$(dirname "$0")/lib.sh"
cd "$ROOT" || exit 1
pg_setup || exit 1
MODE=${MODE:-preloaded}
conf=$ROOT/test/regress.conf
[ "$MODE" = not_preloaded ] && conf=$ROOT/test/regress-not-preloaded.conf
failed=0
for t in ${TESTS:-$(make -s --no-print-directory print-REGRESS)}; do
	out="$WORK/alone-$t"
	as_pg mkdir -p "$out"
	as_pg "$PGXSDIR/src/test/regress/pg_regress" --temp-instance="$out/instance" \
		--temp-config="$conf" --bindir="$INSTBIN" --inputdir="$ROOT/test" \
		--outputdir="$out" --dbname=contrib_regression --load-extension=pgcrypto \
		"$t" >"$out.log" 2>&1
	if [ -f "$out/regression.diffs" ] || ! grep -q 'passed' "$out.log"; then
		echo "alone ($MODE) $t ... FAILED"; cat "$out/regression.diffs" 2>/dev/null | head -40
		failed=$((failed + 1))
	else
		echo "alone ($MODE) $t ... ok"
	fi
done
[ "$failed" -eq 0 ]
