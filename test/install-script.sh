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
# the upgrade script from the newest release is what its sources make
# (tools/build-upgrade-script.py: the hand-written parts of sql/upgrade/
# around the functions and views sql/install/ changed since that release)
if ! python3 tools/build-upgrade-script.py --check; then
	status=1
fi
# no operator qualifier that changes nothing (CONTRIBUTING.md: inside a
# function pinned to pg_catalog, pg_temp an operator comes from pg_catalog)
if ! python3 tools/strip-idle-qualifiers.py --check; then
	status=1
fi
# the release's metadata: META.json names this version (x.y as x.y.0) and
# this script, and the licence a packager needs is there
meta=$(sed -n 's/^   "version": "\(.*\)",$/\1/p' META.json 2>/dev/null)
case $meta in
"$version" | "$version".0) ;;
*) echo "META.json's version \"$meta\" is not default_version '$version' of apikeys.control"; status=1 ;;
esac
grep -q "\"file\": \"$script\"" META.json || { echo "META.json does not name $script"; status=1; }
grep -q '^PostgreSQL License' LICENSE 2>/dev/null || { echo "LICENSE (the PostgreSQL License) is missing"; status=1; }

[ $status -eq 0 ] && echo "$script is what sql/install/ generates, the upgrade script what its sources make; released scripts unchanged: $(cut -d' ' -f3 sql/released.sha256 | xargs)"
exit $status
