#!/usr/bin/env bash
# fuzz/run.sh -- build and run the libFuzzer targets (make fuzz).
#
#   token_fuzz   src/token.c: TokenParse, ClientIdIsWellFormed, ...
#   scope_fuzz   src/scope.c: ScopeParse, ScopeGrants
#   usage_codec_fuzz   src/usage_codec.c: the usage journal row format
#
# Each target is built with clang -fsanitize=fuzzer,address,undefined,
# outside the server: the parsers are linked with PostgreSQL's static
# frontend libraries (libpgcommon, libpgport) and fuzz/shims.c.  Each runs
# for FUZZ_SECONDS (default 60) from the seed corpus in fuzz/corpus/<name>;
# new inputs go to fuzz/build/corpus-<name>, crashes to fuzz/build/.
# Exit status non-zero when a target crashed or an invariant failed.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/fuzz/build
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
PG_CONFIG=${PG_CONFIG:-pg_config}

need=""
command -v clang >/dev/null || need="$need clang"
clang -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null | grep -q / &&
	[ -f "$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null)" ] || need="$need libclang-rt-14-dev"
[ -e /usr/lib/x86_64-linux-gnu/libcrypto.so ] || need="$need libssl-dev"
if [ -n "$need" ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "==> installing:$need" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null ||
			{ apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null; } ||
			{ echo "cannot install$need" >&2; exit 1; }
	else
		echo "missing:$need (apt-get install$need)" >&2
		exit 1
	fi
fi

INC=$("$PG_CONFIG" --includedir-server)
LIB=$("$PG_CONFIG" --libdir)
# libpgcommon/libpgport live in pkglibdir on Debian
PKGLIB=$("$PG_CONFIG" --pkglibdir)
[ -f "$LIB/libpgcommon.a" ] || LIB=$PKGLIB
[ -f "$LIB/libpgcommon.a" ] || { echo "libpgcommon.a not found (install postgresql-server-dev-15)" >&2; exit 1; }

mkdir -p "$OUT"
CFLAGS="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I$INC -I$ROOT/src"
LIBS="-L$LIB -lpgcommon -lpgport -lcrypto"

status=0
total_runs=0
for t in token scope usage_codec; do
	echo "==> building ${t}_fuzz" >&2
	clang $CFLAGS -o "$OUT/${t}_fuzz" "$ROOT/fuzz/${t}_fuzz.c" "$ROOT/src/$t.c" "$ROOT/fuzz/shims.c" $LIBS \
		>"$OUT/${t}_build.log" 2>&1 || { cat "$OUT/${t}_build.log" >&2; exit 1; }
	mkdir -p "$OUT/corpus-$t"
	echo "==> running ${t}_fuzz for ${SECONDS_PER_TARGET}s" >&2
	( cd "$OUT" && "./${t}_fuzz" -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 \
		-print_final_stats=1 -artifact_prefix="$OUT/${t}-" \
		"$OUT/corpus-$t" "$ROOT/fuzz/corpus/$t" ) >"$OUT/${t}_run.log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/${t}_run.log")
	cov=$(grep -o 'cov: [0-9]*' "$OUT/${t}_run.log" | tail -1)
	if [ $rc -eq 0 ]; then
		echo "ok   ${t}_fuzz: ${runs:-?} inputs in ${SECONDS_PER_TARGET}s, $cov, no crash"
	else
		echo "FAIL ${t}_fuzz (exit $rc): see $OUT/${t}_run.log"
		grep -E 'ERROR|invariant|SUMMARY|artifact' "$OUT/${t}_run.log" | head -20
		status=1
	fi
	total_runs=$((total_runs + ${runs:-0}))
done
[ $status -eq 0 ] && echo "fuzz: clean ($total_runs inputs)" || echo "fuzz: FAILED"
exit $status
