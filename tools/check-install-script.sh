#!/usr/bin/env bash
# tools/check-install-script.sh [--freeze] [INPUT]: does the install script
# make generates from sql/install/ create exactly the objects INPUT creates?
#
# INPUT (default: apikeys--<version>.sql as it is before make regenerates
# it, so run this right after tools/split-install-script.py) is installed
# as version "input", the generated script as version "sections", each
# with CREATE EXTENSION into a database of its own on a throwaway server
# (test/lib.sh: private build and installation); then sql/upgrade.sql's
# fingerprint of every member of the extension (definitions, grants,
# comments, settings, triggers, policies, ...) must be the same in both.
# Prints the members that differ and exits 1 if any does.
#
# --freeze: when they are the same, records the generated script's
# checksum in sql/released.sha256: it is released and frozen from then on
# (test/install-script.sh, run by make test, checks it).
set -u
freeze=
[ "${1:-}" = --freeze ] && { freeze=1; shift; }
. "$(dirname "$0")/../test/lib.sh"
version=$(sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\(.*\)'/\1/p" "$ROOT/apikeys.control")
script="apikeys--$version.sql"
input=${1:-$ROOT/$script}
saved=$(mktemp)
cp "$input" "$saved"

pg_setup || exit 1
trap 'rc=$?; rm -f "$saved"; (exit $rc); pg_teardown' EXIT
extdir="$WORK/inst$("$PG_CONFIG" --sharedir)/extension"
cp "$saved" "$extdir/apikeys--input.sql"
cp "$ROOT/$script" "$extdir/apikeys--sections.sql"
chmod 644 "$extdir"/apikeys--*.sql
[ "$(id -u)" = 0 ] && chown -R "$PG_OS_USER" "$WORK"

upgrade=$ROOT/test/sql/upgrade.sql
[ -f "$upgrade" ] || upgrade=$ROOT/sql/upgrade.sql
query=$(sed -n '/^SELECT \$fingerprint\$$/,/^\$fingerprint\$ AS objects_sql/p' "$upgrade" | sed '1d;$d')
[ -n "$query" ] || { echo "no fingerprint query between the markers in $upgrade" >&2; exit 1; }

pg_start "$WORK/server" "shared_preload_libraries = 'apikeys'" || exit 1
for v in input sections; do
	as_pg psql -X -q -d postgres -c "CREATE DATABASE check_$v" || exit 1
	as_pg psql -X -q -v ON_ERROR_STOP=1 -d "check_$v" -c "CREATE EXTENSION apikeys VERSION '$v'" || exit 1
	as_pg psql -X -q -A -t -v ON_ERROR_STOP=1 -d "check_$v" -c "$query" >"$WORK/$v.fp" || exit 1
done
n=$(wc -l <"$WORK/input.fp")
if cmp -s "$WORK/input.fp" "$WORK/sections.fp"; then
	echo "same objects: the $n members of the extension created by $(basename "$input") and by sql/install/ ($script) have the same fingerprint"
	if [ -n "$freeze" ]; then
		grep -v " $script\$" "$ROOT/sql/released.sha256" 2>/dev/null >"$WORK/released" || true
		(cd "$ROOT" && sha256sum "$script") >>"$WORK/released"
		sort -k2 "$WORK/released" >"$ROOT/sql/released.sha256"
		echo "frozen: $script recorded in sql/released.sha256"
	fi
	exit 0
fi
echo "DIFFERENT: members whose fingerprint differs (< $(basename "$input"), > sql/install/):"
diff "$WORK/input.fp" "$WORK/sections.fp" | grep '^[<>]' | cut -c1-2,3- | sed 's/ [0-9a-f]\{32\}$//'
exit 1
