#!/usr/bin/env bash
# test/demo.sh -- build, install privately, start a throwaway cluster and
# show the main job: a key issued, listed, verified, refused, revoked.
# The cluster is stopped and removed on exit, even after a failure.
. "$(dirname "$0")/lib.sh"
pg_setup || exit 1
pg_start "$WORK/demo" || exit 1
msg "demo cluster ready; running test/demo.sql"
as_pg env PGHOST="$PGHOST" PGUSER=postgres PGPORT="$PGPORT" \
	psql -X -v ON_ERROR_STOP=1 -d postgres -f "$ROOT/test/demo.sql"
