#!/usr/bin/env bash
# test/pgbuild.sh MAJOR -- build PostgreSQL MAJOR once per machine from
# Debian's source package, for the version matrix of make test.
#
# Debian 12 packages only PostgreSQL 15; Debian's archive has newer majors
# as source packages (postgresql-18 in sid).  As root this reads a deb-src
# line for sid with apt options of its own (its list and the package lists
# it fetches stay in the cache directory: the machine's apt sources are not
# changed, nothing is installed from sid), installs the
# build dependencies from the machine's own (bookworm) packages, fetches the
# source package with `apt-get source`, and builds the upstream tree it
# carries (the server, the contrib modules the tests use, the isolation
# tester, the TAP modules) into $APIKEYS_PGCACHE/pgMAJOR (default
# /var/cache/apikeys/pg18): about 5 minutes of CPU, about 40 MB installed.
#
# Built once: a later make test finds the installation and reuses it.  A
# build is taken as done only when the stamp file BUILD-COMPLETE is there,
# which is written last, after the staged installation was renamed into
# place; a half-finished build (killed, out of disk) is removed and done
# again.  A lock keeps two checkouts on one machine from building at once.
#
# Prints the installation's pg_config on success.
set -u
major=${1:?usage: test/pgbuild.sh MAJOR}
cache=${APIKEYS_PGCACHE:-/var/cache/apikeys}
prefix=$cache/pg$major
stamp=$prefix/BUILD-COMPLETE
log=$cache/pg$major.build.log

msg() { printf '==> %s\n' "$*" >&2; }
done_already() { [ -f "$stamp" ] && [ -x "$prefix/bin/pg_config" ]; }

if done_already; then echo "$prefix/bin/pg_config"; exit 0; fi
if [ "$(id -u)" != 0 ]; then
	msg "PostgreSQL $major is not built in $prefix, and building it needs root (apt-get)"
	exit 1
fi
mkdir -p "$cache"
exec 9>"$cache/pg$major.lock"
flock 9
# another checkout may have finished it while we waited for the lock
if done_already; then echo "$prefix/bin/pg_config"; exit 0; fi

msg "building PostgreSQL $major from Debian's source package (once per machine; log: $log)"
export DEBIAN_FRONTEND=noninteractive
# build dependencies, from the machine's own packages
deps="bison flex gcc make perl pkg-config libicu-dev libssl-dev zlib1g-dev libreadline-dev dpkg-dev libipc-run-perl"
need=""
for p in $deps; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
	msg "installing build dependencies:$need"
	apt-get -o DPkg::Lock::Timeout=900 update -qq >/dev/null && apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends $need >/dev/null || exit 1
fi

# the source package, through a private apt list and state: deb-src only
src_list=$cache/sid-src.list
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main" >"$src_list"
mkdir -p "$cache/apt-lists/partial"
aptsrc=(-o Dir::Etc::sourcelist="$src_list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$cache/apt-lists")
apt-get "${aptsrc[@]}" update -qq >/dev/null || { msg "apt-get update of $src_list failed"; exit 1; }

rm -rf "$prefix" "$prefix.stage" "$cache/pg$major.src"
mkdir -p "$cache/pg$major.src"
cd "$cache/pg$major.src" || exit 1
apt-get "${aptsrc[@]}" source -qq --download-only "postgresql-$major" >"$log" 2>&1 || {
	cat "$log" >&2; msg "apt-get source postgresql-$major failed"; exit 1; }
orig=$(ls postgresql-"$major"_*.orig.tar.* 2>/dev/null | head -1)
[ -n "$orig" ] || { msg "no upstream tarball in the source package"; exit 1; }
tar -xf "$orig" || exit 1
tree=$(ls -d postgresql-"$major"*/ | head -1)
cd "$tree" || exit 1
msg "$(basename "$orig"): configure and build (nice -n 10)"
{
	./configure --prefix="$prefix" --with-openssl --with-icu --enable-tap-tests \
		--without-llvm --without-systemd --without-gssapi --without-ldap &&
	nice -n 10 make -s -j"$(nproc)" &&
	for d in contrib/pgcrypto contrib/pg_stat_statements contrib/pg_walinspect src/test/isolation; do
		nice -n 10 make -s -C "$d" -j"$(nproc)" || exit 1
	done &&
	make -s install DESTDIR="$prefix.stage" &&
	for d in contrib/pgcrypto contrib/pg_stat_statements contrib/pg_walinspect src/test/isolation; do
		make -s -C "$d" install DESTDIR="$prefix.stage" || exit 1
	done
} >>"$log" 2>&1 || { tail -30 "$log" >&2; msg "building PostgreSQL $major failed (log: $log)"; exit 1; }

# the staged tree becomes the installation in one rename, then the stamp
mv "$prefix.stage$prefix" "$prefix" || exit 1
rm -rf "$prefix.stage"
"$prefix/bin/pg_config" --version >"$stamp.tmp" && echo "from $(basename "$orig")" >>"$stamp.tmp" &&
	mv "$stamp.tmp" "$stamp" || exit 1
cd "$cache" && rm -rf "$cache/pg$major.src"
msg "PostgreSQL $major installed in $prefix"
echo "$prefix/bin/pg_config"
