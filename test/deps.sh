#!/usr/bin/env bash
# test/deps.sh -- install what make test / make demo need, when missing.
#
# On Debian 12 as root this installs the PostgreSQL 15 server, its
# development files, contrib (pgcrypto, the tests' independent oracle) and
# IPC::Run (TAP tests).  As another user it only checks and says what is
# missing.
set -u
pkgs="postgresql-15 postgresql-server-dev-15 postgresql-contrib libipc-run-perl make gcc pg-bsd-indent"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing packages:$missing (install them as root: apt-get install$missing)" >&2
	exit 1
fi
echo "==> installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $missing >/dev/null
