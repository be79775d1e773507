#!/usr/bin/env bash
# test/callgraph.sh: the dependencies between the files of src/, from their
# #include lines and their object files (make first), and the check that
# they run one way.
#
# A unit is a .c file and the .h of the same name (verify_cache.c + verify_cache.h is
# "cache"); a header without a .c (usage_item.h) is a unit of its own, and
# so is apikeys.h, the project's common header (constants, types, GUC
# variables, the outcome table's type, the prototypes of the initialisers
# _PG_init calls), which includes nothing of ours and which every file may
# include.  An edge "a -> b" means that
#   include  a.c or a.h has #include "b.h", or
#   call     a.c calls a function defined in b.c (nm: a's undefined
#            symbols that b.o defines as text).
# Reads of another file's variables (GUCs, the outcome table, the
# readiness flag of shmem.c) are data, not calls, and are not edges.
#
# Fails (exit 1) if the edges form a cycle (tsort finds it; the edges of
# the loop are printed with their kind), or if the Architecture table
# (docs/architecture.md, or README.md's "## Architecture" section) does not
# name exactly the files of src/.
#
#   test/callgraph.sh            edges, one per line ("a -> b call"), and the checks
#   test/callgraph.sh --dot      the graph in Graphviz form (calls solid, includes dashed)
set -e
cd "$(dirname "$0")/../src"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ls *.o >/dev/null 2>&1 || { echo "no object files in src/: run make first" >&2; exit 1; }

# unit FILE: the unit a file of src/ belongs to
unit() {
	case $1 in
	apikeys.h) echo apikeys.h ;;
	*.h) if [ -e "${1%.h}.c" ]; then echo "${1%.h}"; else echo "$1"; fi ;;
	*.c | *.o) echo "${1%.*}" ;;
	esac
}

# calls: from the object files
for o in *.o; do
	nm --defined-only -g "$o" | awk -v f="${o%.o}" '$2 == "T" { print $3, f }'
done | sort >"$tmp/defs"
for o in *.o; do
	nm -u "$o" | awk -v f="${o%.o}" '{ print $2, f }'
done | sort >"$tmp/uses"
join "$tmp/uses" "$tmp/defs" | awk '$2 != $3 { print $2, $3, "call" }' | sort -u >"$tmp/edges"

# includes: #include "x.h" of a header of src/ (system headers use <> or
# name PostgreSQL's, which are not in src/)
for f in *.c *.h; do
	from=$(unit "$f")
	sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" | while read -r h; do
		if [ -e "$h" ] && [ "$(unit "$h")" != "$from" ]; then
			echo "$from $(unit "$h") include"
		fi
	done
done | sort -u >>"$tmp/edges"
sort -u -o "$tmp/edges" "$tmp/edges"

if [ "${1:-}" = "--dot" ]; then
	echo "digraph apikeys {"
	awk '{ printf "\t\"%s\" -> \"%s\"%s;\n", $1, $2, ($3 == "include" ? " [style=dashed]" : "") }' "$tmp/edges"
	echo "}"
	exit 0
fi
awk '{ print $1 " -> " $2 " " $3 }' "$tmp/edges"
status=0

# the Architecture table names exactly the files of src/
{
	[ -f ../docs/architecture.md ] && cat ../docs/architecture.md
	sed -n '/^## Architecture/,/^## /p' ../README.md
} | grep '^| `' | cut -d'|' -f2 | grep -oE '`[a-z_]+\.[ch]`' | tr -d '`' | sort -u >"$tmp/listed"
ls *.c *.h | sort >"$tmp/present"
if ! cmp -s "$tmp/listed" "$tmp/present"; then
	echo "the Architecture table (docs/architecture.md or README.md) and src/ differ (< table, > src/):" >&2
	diff "$tmp/listed" "$tmp/present" >&2 || true
	status=1
fi

# one way: no cycle among units, whatever the kind of edge
if awk '{ print $1, $2 }' "$tmp/edges" | tsort >/dev/null 2>"$tmp/loop"; then
	echo "no cycle of includes or calls between files"
	exit $status
fi
cat "$tmp/loop" >&2
# the edges between members of the loop(s) tsort named
sed -n 's/^tsort: //p' "$tmp/loop" | grep -v ':' | sort -u >"$tmp/members"
echo "edges among them:" >&2
awk 'NR == FNR { m[$1] = 1; next } ($1 in m) && ($2 in m) { print "  " $1 " -> " $2 " " $3 }' \
	"$tmp/members" "$tmp/edges" >&2
echo "cycle of includes or calls between files" >&2
exit 1
