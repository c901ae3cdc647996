#!/bin/bash
# SPDX-License-Identifier: MIT
# The man page and the program agree: every option `epochfs --help` lists is
# an item of OPTIONS in docs/man/epochfs.1 and every item there is in
# --help; the EXIT STATUS table holds exactly the codes of
# backends/base/exitcode.h, and every man page that carries the table
# (between its begin and end marks) carries the same one.  Needs no FUSE.
. "$(dirname "$0")/lib.sh"
[ -x "$EPOCHFS" ] || fail "daemon not built: $EPOCHFS"
MAN=$SRCDIR/docs/man/epochfs.1

# The options of --help: the first words of its option lines (those
# that begin with a dash), e.g. "-f, --foreground" gives -f and --foreground.
"$EPOCHFS" --help >"$T/help" || fail "--help"
sed -n 's/^  \(-[^ ].*\)$/\1/p' "$T/help" | sed 's/  .*//; s/ [A-Z|a-z.,[\]%]*$//' |
	grep -o -- '--\?[A-Za-z0-9][A-Za-z0-9-]*' | sort -u >"$T/help.opts"
# The options of the man page: the heading lines of OPTIONS' items.
awk '/^\.SH OPTIONS/ { on = 1; next } /^\.SH/ { on = 0 } on && prev == ".TP" { print } { prev = $0 }' "$MAN" |
	sed 's/\\-/-/g; s/\\f[BIRP]//g' | grep -o -- '\(^\|[ "]\)--\?[A-Za-z0-9][A-Za-z0-9-]*' |
	tr -d ' "' | sort -u >"$T/man.opts"
[ "$(wc -l <"$T/help.opts")" -ge 20 ] || fail "too few options read from --help: $(cat "$T/help.opts")"
[ "$(wc -l <"$T/man.opts")" -ge 20 ] || fail "too few options read from the man page: $(cat "$T/man.opts")"
missing=$(comm -23 "$T/help.opts" "$T/man.opts")
extra=$(comm -13 "$T/help.opts" "$T/man.opts")
[ -z "$missing" ] || fail "in --help, not in epochfs.1's OPTIONS: $(echo $missing)"
[ -z "$extra" ] || fail "in epochfs.1's OPTIONS, not in --help: $(echo $extra)"
echo "options: $(wc -l <"$T/help.opts") in both --help and epochfs.1"

# The exit codes: exitcode.h's enum values against the table's items.
sed -n 's/^\s*EXIT_[A-Z_]* = \([0-9]*\),.*/\1/p' "$SRCDIR/backends/base/exitcode.h" | sort -n >"$T/codes.h"
[ "$(wc -l <"$T/codes.h")" -ge 5 ] || fail "cannot read exitcode.h"
table() { # MANPAGE: the table's lines
	sed -n '/exit-status table begin/,/exit-status table end/p' "$1"
}
table "$MAN" >"$T/table"
[ -s "$T/table" ] || fail "epochfs.1 has no exit-status table"
awk 'prev == ".TP" { sub(/^\.B /, ""); print } { prev = $0 }' "$T/table" | sort -n >"$T/codes.man"
cmp -s "$T/codes.h" "$T/codes.man" ||
	fail "exit codes: exitcode.h has $(echo $(cat "$T/codes.h")), epochfs.1 $(echo $(cat "$T/codes.man"))"
for m in "$SRCDIR"/docs/man/*.1; do
	if ! grep -q "exit-status table begin" "$m"; then
		echo "NOTE: $(basename "$m") does not carry the exit-status table yet"
		continue
	fi
	table "$m" | cmp -s - "$T/table" || fail "$(basename "$m")'s exit-status table differs from epochfs.1's"
done
echo "exit codes: $(echo $(cat "$T/codes.h"))"
echo ok
