#!/usr/bin/env bash
# test/deps.sh -- install what make test / make demo need, when missing.
#
# On Debian 12 as root this installs the PostgreSQL 15 server, its
# development files, contrib (pgcrypto, the tests' independent oracle),
# pg_cron (the policy-scheduling TAP test), IPC::Run (TAP tests), and
# Node.js with npm when no node is on PATH (the delivery and express
# examples' tests), Debian's psycopg 3, FastAPI and uvicorn (the python
# example's test); then the Node examples' npm packages (npm ci, from
# package-lock.json).  As another user it only checks and says what is
# missing.
#
# The version matrix (test/run.sh) also runs on PostgreSQL 18: where no
# pg_config of 18 is installed (PGDG's postgresql-server-dev-18 would do),
# test/pgbuild.sh builds it once per machine from Debian's source package
# into /var/cache/apikeys/pg18 (about 5 minutes, the first time only).
# Not when PG or PG_CONFIG picks another single version.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
pkgs="postgresql-15 postgresql-server-dev-15 postgresql-contrib postgresql-15-cron libipc-run-perl make gcc pg-bsd-indent python3-psycopg python3-psycopg-pool python3-fastapi python3-uvicorn"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# a node from elsewhere (e.g. NodeSource, which bundles npm) will do
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages:$missing (install them as root: apt-get install$missing)" >&2
		exit 1
	fi
	echo "==> installing:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $missing >/dev/null || exit 1
fi

# the Node examples' packages, when missing or older than the lock file
for name in delivery node; do
	ex="$ROOT/examples/$name"
	if [ ! -d "$ex/node_modules/pg" ] || [ "$ex/package-lock.json" -nt "$ex/node_modules/.package-lock.json" ]; then
		echo "==> npm ci in examples/$name" >&2
		(cd "$ex" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || exit 1
	fi
done

# PostgreSQL 18, for the matrix
if [ -z "${PG_CONFIG:-}" ] && { [ -z "${PG:-}" ] || [ "$PG" = 18 ]; }; then
	if [ ! -x /usr/lib/postgresql/18/bin/pg_config ]; then
		# as another user it only says so; the matrix then fails 18 as missing
		"$ROOT/test/pgbuild.sh" 18 >/dev/null || [ "$(id -u)" != 0 ] || exit 1
	fi
fi
exit 0
