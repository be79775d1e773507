# test/lib.sh -- shared by test/run.sh, test/demo.sh and bench/run.sh.
#
# Builds the extension in a private copy of the source tree and installs it
# into a private copy of the PostgreSQL installation under $WORK, so tests
# never touch (or depend on) the system's extension directory, several
# checkouts can test at once, and one checkout can test against several
# PostgreSQL majors (PG_CONFIG) at once: objects built for one major never
# meet another's (PGXS tracks no such dependency).
# PostgreSQL finds its share/ and lib/ directories relative to its own
# binary, so a copied tree is a complete, relocated installation.
#
# As root, servers run as the "postgres" OS user (initdb refuses root).

set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
PG_OS_USER=${PG_OS_USER:-postgres}

msg() { printf '==> %s\n' "$*" >&2; }

# pg_setup: sets WORK, INSTBIN, PGXSDIR; builds and installs privately.
# With UPGRADE_FROM (the pg_config of an older major) it also builds and
# installs apikeys into a private copy of that installation, and sets
# OLDINST to its root (what test/t/040_pg_upgrade.pl upgrades from).
pg_setup() {
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/apikeys.XXXXXX")
	chmod 755 "$WORK"
	trap pg_teardown EXIT
	trap 'exit 130' INT TERM

	PGXSDIR=$(dirname "$(dirname "$(dirname "$("$PG_CONFIG" --pgxs)")")")
	pg_install "$PG_CONFIG" inst || return 1
	INSTBIN="$WORK/inst$("$PG_CONFIG" --bindir)"
	OLDINST=
	if [ -n "${UPGRADE_FROM:-}" ]; then
		pg_install "$UPGRADE_FROM" old || return 1
		OLDINST="$WORK/old$(dirname "$("$UPGRADE_FROM" --bindir)")"
	fi

	if [ "$(id -u)" = 0 ]; then
		chown -R "$PG_OS_USER" "$WORK"
	fi
}

# pg_install PG_CONFIG NAME: a private copy of that PostgreSQL installation
# in $WORK/NAME (PostgreSQL finds its share/ and lib/ relative to its own
# binary, so the copy is complete), with apikeys built (in $WORK/NAME-build)
# and installed into it.
pg_install() {
	local cfg=$1 name=$2 bindir sharedir pgroot
	bindir=$("$cfg" --bindir)
	sharedir=$("$cfg" --sharedir)
	pgroot=$(dirname "$bindir")
	mkdir -p "$WORK/$name$pgroot" "$WORK/$name$sharedir"
	cp -a "$pgroot/." "$WORK/$name$pgroot/"
	cp -a "$sharedir/." "$WORK/$name$sharedir/"

	msg "building apikeys for $("$cfg" --version)"
	copy_tree "$WORK/$name-build"
	make -s -C "$WORK/$name-build" -j2 with_llvm=no PG_CONFIG="$cfg" \
		PG_CFLAGS="${PG_CFLAGS:--Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare}" \
		>"$WORK/$name-build.log" 2>&1 || { cat "$WORK/$name-build.log" >&2; return 1; }
	make -s -C "$WORK/$name-build" with_llvm=no PG_CONFIG="$cfg" install DESTDIR="$WORK/$name" \
		>>"$WORK/$name-build.log" 2>&1 || { cat "$WORK/$name-build.log" >&2; return 1; }
}

# copy_tree DIR: the repository's files as a checkout has them (tracked and
# new files, no build output) into DIR.
copy_tree() {
	mkdir -p "$1"
	if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
		git -C "$ROOT" ls-files -co --exclude-standard -z | (cd "$ROOT" && tar --null -cf - -T -) | tar -xf - -C "$1"
	else
		(cd "$ROOT" && tar --exclude=./results --exclude=./tmp_check --exclude=./output_iso -cf - .) | tar -xf - -C "$1"
	fi
	rm -f "$1"/*.so "$1"/src/*.o "$1"/src/*.bc
}

# pg_major [PG_CONFIG]: the major version number (15, 18) of a pg_config.
pg_major() {
	"${1:-$PG_CONFIG}" --version | sed -n 's/^PostgreSQL \([0-9][0-9]*\).*/\1/p'
}

# as_pg CMD...: run a command as the cluster's OS user with the private
# installation first on PATH.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u "$PG_OS_USER" -- env PATH="$INSTBIN:$PATH" HOME="$WORK" "$@"
	else
		env PATH="$INSTBIN:$PATH" "$@"
	fi
}

# pg_teardown: stop any server still running from $WORK, then remove it.
pg_teardown() {
	local rc=$?
	if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
		for pidfile in $(find "$WORK" -name postmaster.pid 2>/dev/null); do
			as_pg "$INSTBIN/pg_ctl" -D "$(dirname "$pidfile")" -m immediate stop >/dev/null 2>&1 || true
		done
		if [ -z "${KEEP_WORK:-}" ]; then rm -rf "$WORK"; else msg "kept $WORK"; fi
	fi
	exit $rc
}

# pg_start DIR [conf lines...]: initdb + start a cluster on a unix socket in DIR.
pg_start() {
	local dir=$1; shift
	as_pg initdb -D "$dir/data" -A trust -U postgres --no-sync >"$dir.initdb.log" 2>&1 || { cat "$dir.initdb.log" >&2; return 1; }
	{
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$dir'"
		for line in "$@"; do echo "$line"; done
	} >>"$dir/data/postgresql.conf"
	as_pg pg_ctl -D "$dir/data" -l "$dir.log" -w start >/dev/null || { cat "$dir.log" >&2; return 1; }
	export PGHOST=$dir PGUSER=postgres PGPORT=5432
}
