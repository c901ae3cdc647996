#!/bin/bash
# SPDX-License-Identifier: MIT
# docs/control.md is the one description of the control files (issue 15
# item 13): every ```console block in it runs here, in order, against a
# mount of a generated dataset; each "$ " line goes through bash in the
# mount's root and its standard output must equal the lines below it.
. "$(dirname "$0")/lib.sh"
require_fuse
command -v getfattr >/dev/null || skip "getfattr missing (Debian package attr)"
DOC=${DOC:-$SRCDIR/docs/control.md}

gen "$T/src" 2 5 1K
mount_fs "$T/src" "$T/mnt" "$T/cache" --cache-size 64M

# Split the blocks into commands and expected outputs.
python3 - "$DOC" "$T/cases" <<'PY' || fail "cannot read the examples of $DOC"
import os, sys
doc, out = sys.argv[1], sys.argv[2]
os.makedirs(out)
cases, block, cur = [], False, None
for lineno, line in enumerate(open(doc), 1):
    line = line.rstrip("\n")
    if line.startswith("```"):
        block = line == "```console"
        cur = None
        continue
    if not block:
        continue
    if line.startswith("$ "):
        cur = [lineno, line[2:], []]
        cases.append(cur)
    elif cur is not None:
        cur[2].append(line)
for i, (lineno, cmd, want) in enumerate(cases):
    with open(os.path.join(out, "%03d.cmd" % i), "w") as f:
        f.write(cmd + "\n")
    with open(os.path.join(out, "%03d.want" % i), "w") as f:
        f.write("".join(w + "\n" for w in want))
    with open(os.path.join(out, "%03d.line" % i), "w") as f:
        f.write(str(lineno))
print("%d commands" % len(cases))
PY
n=0
for c in "$T"/cases/*.cmd; do
	b=${c%.cmd}
	(cd "$T/mnt" && bash "$c") >"$b.got" 2>"$b.err"
	rc=$?
	# a refusal the doc expects is written "... || echo refused": every
	# example exits 0 and writes nothing on stderr
	if [ $rc != 0 ] || [ -s "$b.err" ]; then
		echo "docs/control.md line $(cat "$b.line"): $(cat "$c"): exit $rc"
		cat "$b.err"
		fail "an example of docs/control.md failed"
	fi
	if ! diff -u "$b.want" "$b.got" >"$b.diff"; then
		echo "docs/control.md line $(cat "$b.line"): $(cat "$c")"
		cat "$b.diff" "$b.err"
		fail "an example of docs/control.md does not do what it says"
	fi
	n=$((n + 1))
done
[ $n -ge 20 ] || fail "only $n examples found in $DOC"
echo "$n examples of docs/control.md ran as written"
umount_fs "$T/mnt"
echo ok
