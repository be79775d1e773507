#!/usr/bin/env bash
# test/devcluster.sh -- build, install privately and start a cluster you can
# psql into; prints the environment to use.  Stop with: kill the printed pid
# or remove the printed directory after pg_ctl stop.
. "$(dirname "$0")/lib.sh"
pg_setup || exit 1
trap - EXIT
pg_start "$WORK/dev" "$@" || exit 1
echo "export PATH=$INSTBIN:\$PATH PGHOST=$WORK/dev PGUSER=postgres PGPORT=5432 WORK=$WORK"
