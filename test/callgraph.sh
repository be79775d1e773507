#!/usr/bin/env bash
# test/callgraph.sh: the calls between the C files of src/, from their
# object files (make first).  An edge "a -> b" means a.c calls a function
# defined in b.c; reads of another file's variables (GUCs, the outcome
# table, apikeys_locks) are data, not calls, and are not edges.  Prints
# the edges, then fails if the calls form a cycle (tsort finds them), or
# if the Files table of docs/architecture.md does not name exactly the
# files of src/.
#
#   test/callgraph.sh            edges, one per line, and the cycle check
#   test/callgraph.sh --dot      the graph in Graphviz form
set -e
cd "$(dirname "$0")/../src"
defs=$(mktemp) uses=$(mktemp) edges=$(mktemp)
trap 'rm -f "$defs" "$uses" "$edges"' EXIT
for o in *.o; do
	f=${o%.o}
	nm --defined-only -g "$o" | awk -v f="$f" '$2 == "T" { print $3, f }'
	# static inline functions of shared headers are compiled into each user
done | sort > "$defs"
for o in *.o; do
	f=${o%.o}
	nm -u "$o" | awk -v f="$f" '{ print $2, f }'
done | sort > "$uses"
join "$uses" "$defs" | awk '$2 != $3 { print $2, $3 }' | sort -u > "$edges"
if [ "$1" = "--dot" ]; then
	echo "digraph apikeys {"
	awk '{ printf "\t\"%s\" -> \"%s\";\n", $1, $2 }' "$edges"
	echo "}"
	exit 0
fi
awk '{ print $1 " -> " $2 }' "$edges"
status=0
listed=$(sed -n '/^## Files/,/^## /p' ../docs/architecture.md | grep '^| `' | cut -d'|' -f2 |
	grep -oE '[a-z_]+\.[ch]' | sort)
present=$(ls *.c *.h | sort)
if [ "$listed" != "$present" ]; then
	echo "docs/architecture.md's Files table and src/ differ (< docs, > src/):" >&2
	diff <(echo "$listed") <(echo "$present") >&2 || true
	status=1
fi
if tsort "$edges" > /dev/null 2> "$defs.err"; then
	echo "no cycle of calls between files"
	rm -f "$defs.err"
	exit $status
else
	cat "$defs.err" >&2
	rm -f "$defs.err"
	echo "cycle of calls between files" >&2
	exit 1
fi
