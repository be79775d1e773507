#!/usr/bin/env bash
# test/install-script.sh: the install script of the current version is the
# one sql/install/ generates (make writes it; nobody edits it by hand), and
# no released version's script has changed (sql/released.sha256).  Prints
# what differs; exit 1 if anything does.  make test runs it (one result).
#
# A released script is frozen: users have installed it, and ALTER EXTENSION
# UPDATE starts from it.  A change of the SQL surface goes into a new
# version (default_version in apikeys.control) with an upgrade script
# apikeys--<old>--<new>.sql; sql/upgrade.sql then checks that a database
# updated from the oldest release equals a fresh install.
cd "$(dirname "$0")/.." || exit 1
version=$(sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\(.*\)'/\1/p" apikeys.control)
script=apikeys--$version.sql
status=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

tools/build-install-script.sh "$tmp/$script" $(ls sql/install/*.sql | sort) || exit 1
if ! cmp -s "$tmp/$script" "$script"; then
	echo "$script is not what sql/install/ generates (edit sql/install/, then make):"
	diff -u "$script" "$tmp/$script" | head -40
	status=1
fi

if [ ! -f sql/released.sha256 ]; then
	echo "sql/released.sha256 is missing: no released script is protected"
	status=1
else
	while read -r sum file; do
		if [ ! -f "$file" ]; then
			echo "released script $file is missing"
			status=1
		elif [ "$(sha256sum "$file" | cut -d' ' -f1)" != "$sum" ]; then
			echo "released script $file has changed: put the change into a new version with an upgrade script (see $0)"
			status=1
		fi
	done <sql/released.sha256
fi
[ $status -eq 0 ] && echo "$script is what sql/install/ generates; released scripts unchanged: $(cut -d' ' -f3 sql/released.sha256 | xargs)"
exit $status
