#!/bin/bash
# SPDX-License-Identifier: MIT
# Importance (SHADE): scores mark a tenth of the files important; with a
# cache of a fifth of the dataset and no known order, after a few random
# epochs the important files are the cached ones.  Scores survive a remount.
# Also: a second daemon on the same cache dir is refused with a clear message.
. "$(dirname "$0")/lib.sh"
require_fuse
[ -w /proc/sys/vm/drop_caches ] || skip "cannot drop the page cache (not root)"

SRC=$T/src
gen "$SRC" 10 50 20K
size=$(du -s -B1 --apparent-size "$SRC" | cut -f1)
cap=$((size / 5 + 300000))
mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size $cap
MNT=$T/mnt

log "score every tenth file of the manifest 1.0 (by index), one by path"
python3 - "$MNT" <<'PY' || fail "importance write"
import sys
m = sys.argv[1]
paths = open(m + "/.epochfs/manifest").read().split("\n")[:-1]
lines = ["%d 1.0" % i for i in range(0, len(paths), 10) if i != 10]
lines.append("%s 1.0" % paths[10])
with open(m + "/.epochfs/importance", "w") as f:
    f.write("\n".join(lines) + "\n")
PY
for e in 1 2 3 4; do
	sync; echo 3 >/proc/sys/vm/drop_caches
	"$TOOLS/epochfs-read" --threads 4 --seed $e --verify "$SRC" "$MNT" >/dev/null || fail "read"
done
check_cached() {
	python3 - "$1" <<'PY'
import os, sys
m = sys.argv[1]
paths = open(m + "/.epochfs/manifest").read().split("\n")[:-1]
imp = set(range(0, len(paths), 10))
cached = set()
for i, p in enumerate(paths):
    v = os.getxattr(os.path.join(m, p), "user.epochfs.cached").decode()
    got, size = map(int, v.split("/"))
    if got == size:
        cached.add(i)
print("important %d, cached %d, important cached %d" % (len(imp), len(cached), len(imp & cached)))
sys.exit(0 if imp <= cached else 1)
PY
}
check_cached "$MNT" || fail "not every important file is cached"
echo "evictions=$(stat_field "$MNT" evictions) not_admitted=$(stat_field "$MNT" not_admitted)"

log "a second daemon on the same cache dir is refused"
mkdir -p "$T/mnt2"
if "$EPOCHFS" "$SRC" "$T/mnt2" -f --cache-dir "$T/cache" --cache-size $cap >"$T/second.log" 2>&1; then
	fail "a second daemon mounted the same cache dir"
fi
grep -q "in use by another epochfs daemon" "$T/second.log" || { cat "$T/second.log"; fail "no clear message"; }
mountpoint -q "$T/mnt2" && fail "second mount exists"
umount_fs "$MNT"

log "scores persist: after a remount, more reads keep the important files cached"
mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size $cap
for e in 5 6; do
	sync; echo 3 >/proc/sys/vm/drop_caches
	"$TOOLS/epochfs-read" --threads 4 --seed $e --verify "$SRC" "$MNT" >/dev/null || fail "read"
done
check_cached "$MNT" || fail "important files lost after the remount"
umount_fs "$MNT"
echo ok
