#!/usr/bin/env bash
# bench/standby_warmup.sh -- issue 13 items 3 and 4, measured outside `make bench`:
#   1. verification on a hot standby vs the ceiling, on the same standby, for a
#      build without the standby cache (A) and this build (B), interleaved A B A B;
#   2. verification TPS per second for 20 s after a restart of the primary, A vs B.
# Usage: bench/standby_warmup.sh OLD_SOURCE_DIR [NKEYS]  (OLD_SOURCE_DIR: e.g. a checkout of main)
# Runs as root (servers run as $PG_OS_USER); 2 clients, pgbench -M prepared, keys drawn uniformly.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OLD=$1
N=${2:-1000000}
T=${T:-10}
PG_OS_USER=${PG_OS_USER:-postgres}
PG_CONFIG=${PG_CONFIG:-pg_config}
W=$(mktemp -d /tmp/apikeys-sbw.XXXXXX); chmod 755 "$W"
bindir=$($PG_CONFIG --bindir); sharedir=$($PG_CONFIG --sharedir); pgroot=$(dirname "$bindir")
inst() { # name srcdir
	mkdir -p "$W/$1$pgroot" "$W/$1$sharedir"
	cp -a "$pgroot/." "$W/$1$pgroot/"; cp -a "$sharedir/." "$W/$1$sharedir/"
	rm -rf "$W/src-$1"; mkdir "$W/src-$1"
	(cd "$2" && git archive HEAD) | tar -x -C "$W/src-$1"
	make -s -C "$W/src-$1" with_llvm=no >/dev/null 2>&1
	make -s -C "$W/src-$1" with_llvm=no install DESTDIR="$W/$1" >/dev/null 2>&1
}
inst A "$OLD"; inst B "$ROOT"
chown -R "$PG_OS_USER" "$W"
as() { runuser -u "$PG_OS_USER" -- "$@"; }
ctl() { as "$W/$1$bindir/pg_ctl" -D "$W/$2" -l "$W/$2.log" -w "${@:3}" >/dev/null; }
trap 'for d in primary standby; do [ -f $W/$d/postmaster.pid ] && as $W/B$bindir/pg_ctl -D $W/$d -m immediate stop >/dev/null 2>&1; done; rm -rf $W' EXIT
B=$W/B$bindir
as "$B/initdb" -D "$W/primary" -A trust >/dev/null
cat >>"$W/primary/postgresql.conf" <<CONF
port = 55432
unix_socket_directories = '$W'
shared_preload_libraries = 'apikeys'
shared_buffers = 1GB
apikeys.cache_size = $((N + N / 10))
apikeys.prewarm = on    # B reloads at start (off by default); A warns and ignores it
max_connections = 20
CONF
ctl B primary start
psql() { as "$B/psql" -X -q -h "$W" -p "$1" -d postgres -v ON_ERROR_STOP=1 "${@:2}"; }
psql 55432 -c "CREATE EXTENSION apikeys" -c "SET session_replication_role = replica" -c "
INSERT INTO apikeys.keys (client_id, owner, name, scopes, secret_hash, hash_alg, expires_at, last_used_at)
SELECT 'ak_' || substr(md5(g::text || '#cid'), 1, 16), 'org_' || (g % 10000), 'bench', '{api:read}',
       sha256(convert_to(substr(md5(g::text || '#s1') || md5(g::text || '#s2'), 1, 43), 'UTF8')), 's',
       now() + interval '365 days', now() - (g % 86400) * interval '1 second'
  FROM generate_series(1, $N) g" -c "VACUUM ANALYZE apikeys.keys" -c CHECKPOINT
as "$B/pg_basebackup" -h "$W" -p 55432 -D "$W/standby" -R -X stream >/dev/null
sed -i 's/^port = 55432/port = 55433/' "$W/standby/postgresql.conf"
bench() { # port script seconds [extra]
	as "$B/pgbench" -n -M prepared -c 2 -j 2 -T "$3" -D nkeys="$N" -h "$W" -p "$1" "${@:4}" \
		-f "$ROOT/bench/pgbench/$2.sql" postgres 2>&1
}
tps() { grep -o 'tps = [0-9.]*' | head -1 | cut -d' ' -f3; }
wait_prewarm() { # log file, lines before the start: wait for the reload line (B only)
	for _ in $(seq 1 1200); do tail -n +"$(($2 + 1))" "$1" | grep -q 'prewarm loaded' && return; sleep 0.5; done
}
echo "# $(date -u +%FT%TZ) N=$N, uptime: $(uptime)"
echo "# 1. hot standby, 2 clients, ${T} s each, uniform over $N keys: build ceiling verify ratio"
for build in A B A B; do
	lines=$( (cat "$W/standby.log" 2>/dev/null || true) | wc -l)
	ctl $build standby start
	[ $build = B ] && wait_prewarm "$W/standby.log" "$lines"
	# A has no standby cache: a short warm-up run either way, then the measured pair
	bench 55433 apikeys 3 >/dev/null
	c=$(bench 55433 ceiling "$T" | tps); v=$(bench 55433 apikeys "$T" | tps)
	echo "$build $c $v $(awk -v c="$c" -v v="$v" 'BEGIN { printf "%.2f", v / c }')  (uptime: $(uptime | sed 's/.*average: //'))"
	ctl $build standby stop
done
echo "# 2. primary restart, then per-second TPS of verify for 20 s (2 clients); ceiling before it"
for build in A B; do
	c=$(bench 55432 ceiling "$T" | tps)
	ctl B primary stop; ctl $build primary start
	echo "$build ceiling $c; per second: $(bench 55432 apikeys 20 -P 1 | grep -o '^progress: [0-9.]* s, [0-9.]* tps' | awk '{ printf "%s ", $4 }')"
	grep 'prewarm loaded' "$W/primary.log" | tail -1 | sed 's/^.*LOG: */   /' || true
done
