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
exit 0
