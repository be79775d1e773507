#!/usr/bin/env bash
# test/indent.sh -- PostgreSQL's C layout for src/, with Debian's pg_bsd_indent.
#
#   test/indent.sh          rewrite src/*.c src/*.h in place (make indent)
#   test/indent.sh --check  change nothing; list the files that would change
#                           and exit 1 if any would (make test runs this)
#
# The options are the ones PostgreSQL's src/tools/pgindent passes to
# pg_bsd_indent 2.1.x.  The typedef names pg_bsd_indent needs are ours
# (typedefs.list, which must name every typedef in src/) plus those of the
# server headers we build against, read from the headers here, and of the
# few system headers we use.  pgindent's own pre- and post-processing
# handles constructs we do not use (// comments, extern "C" blocks), with
# one exception done here as well: a single space before '*' in a function
# definition's return type on its own line.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
INDENT=${PG_BSD_INDENT:-pg_bsd_indent}
OPTS="-bad -bap -bbb -bc -bl -cli1 -cp33 -cdb -nce -d0 -di12 -nfc1 -i4 -l79 -lp -lpl -nip -npro -sac -tpg -ts4"
check=
[ "${1:-}" = --check ] && check=1

command -v "$INDENT" >/dev/null || { echo "indent: $INDENT not found (apt-get install pg-bsd-indent)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# every typedef of src/ must be in typedefs.list, or indent mangles its uses
grep -hoE '^\}[[:space:]]*[A-Za-z_][A-Za-z0-9_]*;' "$ROOT"/src/*.[ch] | sed -E 's/^\}[[:space:]]*//; s/;$//' >"$tmp/ours"
grep -hoE '^typedef[^;(]*[^A-Za-z0-9_][A-Za-z_][A-Za-z0-9_]*;' "$ROOT"/src/*.[ch] | sed -E 's/.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*);$/\1/' >>"$tmp/ours"
grep -hoE '^typedef[^;]*\(\*[A-Za-z_][A-Za-z0-9_]*\)' "$ROOT"/src/*.[ch] | sed -E 's/.*\(\*([A-Za-z_][A-Za-z0-9_]*)\)$/\1/' >>"$tmp/ours"
missing=$(sort -u "$tmp/ours" | comm -23 - <(sort -u "$ROOT/typedefs.list"))
if [ -n "$missing" ]; then
	echo "indent: typedefs.list lacks: $(echo $missing)" >&2
	exit 1
fi

inc=$(${PG_CONFIG:-pg_config} --includedir-server)
{
	cat "$ROOT/typedefs.list"
	grep -rhoE '^\}[[:space:]]*[A-Za-z_][A-Za-z0-9_]*[[:space:]]*;' "$inc" | sed -E 's/^\}[[:space:]]*//; s/[[:space:]]*;$//'
	grep -rhoE '^typedef[^;(]*[^A-Za-z0-9_][A-Za-z_][A-Za-z0-9_]*[[:space:]]*;' "$inc" | sed -E 's/.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*;$/\1/'
	grep -rhoE '^typedef[^;]*\(\*[[:space:]]*[A-Za-z_][A-Za-z0-9_]*\)' "$inc" | sed -E 's/.*\(\*[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)\)$/\1/'
	printf '%s\n' bool FILE size_t ssize_t uint8_t uint16_t uint32_t uint64_t int32_t int64_t EVP_MD_CTX
} | sort -u >"$tmp/typedefs"

changed=0
for f in "$ROOT"/src/*.c "$ROOT"/src/*.h; do
	# input and output named: pg_bsd_indent then leaves no .BAK file behind
	"$INDENT" $OPTS -U"$tmp/typedefs" "$f" "$tmp/src.c" 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
	[ -s "$tmp/err" ] && { echo "indent: $f: $(cat "$tmp/err")" >&2; exit 1; }
	sed -i -E 's/^([A-Za-z_][^[:space:]]*)[[:space:]]+\*$/\1 */' "$tmp/src.c"
	if ! cmp -s "$f" "$tmp/src.c"; then
		changed=1
		if [ -n "$check" ]; then
			echo "indent: ${f#$ROOT/} is not laid out as pgindent would (run make indent)"
			diff -u "$f" "$tmp/src.c" | head -20
		else
			cp "$tmp/src.c" "$f"
			echo "indented ${f#$ROOT/}"
		fi
	fi
done
[ -n "$check" ] && [ "$changed" = 1 ] && exit 1
exit 0
