#!/usr/bin/env bash
# bench/usage_wal.sh -- the WAL that usage recording writes, counted deterministically.
#
#   bench/usage_wal.sh [-n KEYS] [--calls-per-flush C] [--flushes F] [--rounds R] [--tps T]
#
# A throwaway preloaded cluster (the worker's flush_interval at its maximum, so that only the
# flushes this script calls happen), KEYS keys loaded as bench/run.sh loads them, then:
#   warm-up   every key verified once, rolled up, CHECKPOINT;
#   rounds    R times: F flushes, each after C verifications of keys drawn uniformly (a fixed
#             pseudo-random sequence, so every run verifies the same keys), counted with
#             pg_current_wal_lsn() before and after (the verifications and the flushes); the
#             round's journal moved into a past hour, CHECKPOINT (so the rollup pays the
#             full-page images it pays after every checkpoint in production), then the rollup
#             (apikeys.flush_usage()), counted alone: bytes per key it rolled up, and the
#             largest record types (pg_waldump).  Each round's hour is later than the last
#             one's, so the last round rolls up into a table already holding R hours.
# The steady-state estimate per verification at T TPS (default 30000; C defaults to T x the
# default flush_interval of 10 s) with every key used each hour: flush WAL per call + rollup
# bytes per key x KEYS / (T x 3600).  Nothing here depends on the machine's load.
. "$(dirname "$0")/../test/lib.sh"
set -o pipefail
export LC_ALL=C
die() { printf 'usage_wal: %s\n' "$*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

NKEYS=100000 TPS=30000 CALLS= FLUSHES=3 ROUNDS=2
while [ $# -gt 0 ]; do
	case "$1" in
		-n|--keys) NKEYS=$2; shift 2 ;;
		--calls-per-flush) CALLS=$2; shift 2 ;;
		--flushes) FLUSHES=$2; shift 2 ;;
		--rounds) ROUNDS=$2; shift 2 ;;
		--tps) TPS=$2; shift 2 ;;
		-h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
		*) die "unknown option: $1 (try --help)" ;;
	esac
done
CALLS=${CALLS:-$(( TPS * 10 ))}
for v in "$NKEYS" "$TPS" "$CALLS" "$FLUSHES" "$ROUNDS"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || die "not a positive integer: $v"
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}

log "building and installing apikeys privately"
pg_setup || die "build failed"
as_pg mkdir -p "$WORK/pg"
pg_start "$WORK/pg" "shared_preload_libraries = 'apikeys'" "shared_buffers = 256MB" \
	"apikeys.flush_interval = 3600" "apikeys.cache_size = $(( NKEYS * 3 / 2 ))" \
	"max_wal_size = 4GB" "autovacuum = off" || die "cannot start the cluster"
PSQL=("$INSTBIN/psql" -X -q -v ON_ERROR_STOP=1)
psqlc() { "${PSQL[@]}" -d bench "$@"; }
psqlv() { "${PSQL[@]}" -d bench -At "$@"; }
lsn() { psqlv -c 'SELECT pg_current_wal_lsn()'; }
since() { psqlv -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$1')"; }
waldump() { # from to: the largest record types
	as_pg "$INSTBIN/pg_waldump" --stats=record -p "$WORK/pg/data/pg_wal" -s "$1" -e "$2" 2>/dev/null | awk '
		$1 != "Total" && $1 != "Type" && $2 ~ /^[0-9]+$/ && $2 > 0 {
			line = $0; gsub(/[][()%]/, " ", line); split(line, f, " ")
			printf "%s\t%s\t%s\n", f[8], f[1], f[2] }' | sort -t$'\t' -k1,1nr | head -n 5 \
		| awk -F'\t' '{ printf "%s%s x%s %s B", (NR > 1 ? ", " : ""), $2, $3, $1 }'
}
verify() { # calls seed: C verifications of keys drawn by a fixed sequence
	psqlv -c "SELECT count(*) FILTER (WHERE (apikeys.verify_client(baseline.client_id_for(s.id),
	                 bench.secret_for(s.id), 'api:read')).valid)
	            FROM (SELECT ((i::bigint * 7919 + $2::bigint * 104729) % $NKEYS) + 1 AS id
	                    FROM generate_series(1, $1) i) s" >/dev/null || die "verification failed"
}

log "loading $NKEYS keys"
"${PSQL[@]}" -d postgres -c 'CREATE DATABASE bench' >/dev/null
psqlc -f "$ROOT/bench/sql/schema.sql" >/dev/null || die "schema failed"
psqlc -v n="$NKEYS" -v job=0 -v jobs=1 -v brows=0 -v placeholder=none -f "$ROOT/bench/sql/load.sql" >/dev/null \
	|| die "load failed"
psqlc -c 'VACUUM ANALYZE apikeys.keys' >/dev/null

# the table the rollup writes: apikeys.usage_packed, or apikeys.usage before 1.1
USAGE_TABLE=$(psqlv -c "SELECT coalesce(to_regclass('apikeys.usage_packed'), 'apikeys.usage'::regclass)")
log "warm-up: every key once, rolled up"
psqlv -c "SELECT count(*) FROM generate_series(1, $NKEYS) g,
          apikeys.verify_client(baseline.client_id_for(g), bench.secret_for(g), 'api:read') v" >/dev/null
psqlc -c 'SELECT apikeys.flush_usage(false)' \
	-c "UPDATE apikeys.usage_journal SET flushed_at = flushed_at - interval '$(( ROUNDS + 1 )) hours'" \
	-c 'SELECT apikeys.flush_usage()' -c "VACUUM $USAGE_TABLE" -c CHECKPOINT >/dev/null || die "warm-up failed"

printf '| round | calls | flushes | flush WAL, B | per call | keys rolled up | rollup WAL, B | per key | per call at %s TPS, all %s keys used hourly | rollup record types |\n' "$TPS" "$NKEYS"
printf '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n'
seed=1
for r in $(seq 1 "$ROUNDS"); do
	l0=$(lsn)
	for f in $(seq 1 "$FLUSHES"); do
		verify "$CALLS" "$seed"; seed=$(( seed + 1 ))
		psqlc -c 'SELECT apikeys.flush_usage(false)' >/dev/null || die "flush failed"
	done
	jw=$(since "$l0")
	keys=$(psqlv -c "SELECT count(DISTINCT d.client_id) FROM apikeys.usage_journal j, LATERAL apikeys_internal._journal_decode(j.data) d")
	psqlc -c "UPDATE apikeys.usage_journal SET flushed_at = flushed_at - interval '$(( ROUNDS + 1 - r )) hours'" \
		-c CHECKPOINT >/dev/null
	l1=$(lsn)
	psqlc -c 'SELECT apikeys.flush_usage()' >/dev/null || die "rollup failed"
	rw=$(since "$l1")
	what=$(waldump "$l1" "$(lsn)")
	awk -v r="$r" -v c="$(( CALLS * FLUSHES ))" -v f="$FLUSHES" -v jw="$jw" -v k="$keys" -v rw="$rw" \
		-v n="$NKEYS" -v t="$TPS" -v w="$what" 'BEGIN {
		printf "| %d | %d | %d | %d | %.3f | %d | %d | %.1f | **%.3f** | %s |\n",
			r, c, f, jw, jw / c, k, rw, rw / k, jw / c + (rw / k) * n / (t * 3600), w }'
	psqlc -c "VACUUM $USAGE_TABLE" -c 'VACUUM apikeys.usage_journal' >/dev/null
done
printf '\nStorage after %s rounds: %s %s B, %s rows in apikeys.usage\n' "$ROUNDS" "$USAGE_TABLE" \
	"$(psqlv -c "SELECT pg_total_relation_size('$USAGE_TABLE')")" "$(psqlv -c 'SELECT count(*) FROM apikeys.usage')"
