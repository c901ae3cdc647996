#!/bin/bash
# SPDX-License-Identifier: MIT
# epochfs-ctl: warm fills exactly what fits in a cache smaller than the
# dataset (and what the xattr calls cached is then served without the
# backend), reports progress, stops on SIGINT and resumes; status and evict.
. "$(dirname "$0")/lib.sh"
require_fuse
CTL=$TOOLS/epochfs-ctl
[ -x "$CTL" ] || fail "not built: $CTL"
command -v python3 >/dev/null || skip "python3 missing"

# cached_list MNT: "full" and "partial" counts, then full files one a line
cached_list() {
	python3 - "$1" <<'PY'
import os, sys
root = sys.argv[1]
full, part = [], 0
for d, dirs, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f)
        c, s = map(int, os.getxattr(p, "user.epochfs.cached").decode().split("/"))
        if c == s:
            full.append(os.path.relpath(p, root))
        elif c:
            part += 1
print(len(full), part)
print("\n".join(sorted(full)))
PY
}

gen "$T/src" 6 40 110K
maxsize=$(find "$T/src" -type f -printf '%s\n' | sort -n | tail -1)

log "warm a cache smaller than the dataset"
mount_fs "$T/src" "$T/mnt" "$T/cache" --cache-size 8M
"$CTL" "$T/mnt" warm --every 0.2 --rate 20 >"$T/warm.out" 2>"$T/warm.err"
rc=$?
cat "$T/warm.out"
tail -2 "$T/warm.err"
[ $rc -eq 0 ] || fail "warm exited $rc"
grep -q "^epochfs-ctl: warm: [0-9]*/240 files" "$T/warm.err" || fail "no progress lines"
grep -q "cache full" "$T/warm.out" || fail "warm did not report a full cache"
used=$(stat_field "$T/mnt" cache_bytes)
cap=$(stat_field "$T/mnt" cache_capacity)
echo "cache $used of $cap bytes, largest file $maxsize"
[ "$used" -le "$cap" ] || fail "cache over capacity"
[ $((cap - used)) -lt $((2 * maxsize)) ] || fail "warm left $((cap - used)) bytes free"
cached_list "$T/mnt" >"$T/full"
read -r nfull npart <"$T/full"
echo "$nfull files fully cached, $npart partly"
[ "$nfull" -gt 0 ] && [ "$nfull" -lt 240 ] || fail "$nfull of 240 files cached"
[ "$nfull" -eq "$(stat_field "$T/mnt" cache_objects)" ] || [ "$npart" -gt 0 ] ||
	fail "xattr says $nfull cached, stats $(stat_field "$T/mnt" cache_objects) objects"

log "what the xattr calls cached is read without the backend"
b0=$(stat_field "$T/mnt" backend_bytes)
tail -n +2 "$T/full" | while read -r f; do cmp -s "$T/mnt/$f" "$T/src/$f" || echo "$f" >>"$T/bad"; done
[ -e "$T/bad" ] && fail "wrong bytes in $(head -1 "$T/bad")"
b1=$(stat_field "$T/mnt" backend_bytes)
[ "$b1" -eq "$b0" ] || fail "reading the cached files cost $((b1 - b0)) backend bytes"
other=$(cd "$T/src" && find . -type f | sed 's|^\./||' | sort | comm -23 - <(tail -n +2 "$T/full") | head -1)
cat "$T/mnt/$other" >/dev/null
[ "$(stat_field "$T/mnt" backend_bytes)" -gt "$b1" ] || fail "$other was not cached, yet read for free"

log "warm again: everything cached is skipped"
"$CTL" "$T/mnt" warm >"$T/warm2.out" 2>&1 || fail "second warm failed"
cat "$T/warm2.out"
grep -q " $nfull already cached" "$T/warm2.out" || fail "second warm did not skip the $nfull cached files"

log "status"
f=$(sed -n 2p "$T/full")
"$CTL" "$T/mnt" status "$f" | tee "$T/st"
size=$(stat -c %s "$T/src/$f")
grep -q "^$f  $size/$size bytes cached (100.0%)$" "$T/st" || fail "status of a cached file"
"$CTL" "$T/mnt" status "$other" | grep -q "0/[0-9]* bytes cached (0.0%), not cached" || fail "status of an uncached file"
"$CTL" "$T/mnt" status "$T/mnt/n00000000" | grep -q "^n00000000/  [0-9]* of 40 files cached" || fail "status of a directory"
"$CTL" "$T/mnt" status nonexistent 2>/dev/null && fail "status of a missing file succeeded"
umount_fs "$T/mnt"

log "SIGINT stops warm cleanly; a new run resumes"
mount_fs "$T/src" "$T/mnt2" "$T/cache2" --cache-size 20M
"$CTL" "$T/mnt2" warm --threads 4 --rate 5 --every 0.3 >"$T/int.out" 2>"$T/int.err" &
wp=$!
sleep 1.5
kill -INT $wp
wait $wp
rc=$?
cat "$T/int.out"
[ $rc -eq 130 ] || fail "interrupted warm exited $rc, not 130"
grep -q "interrupted" "$T/int.out" || fail "no summary after SIGINT"
grep -q "^epochfs-ctl: warm: " "$T/int.err" || fail "no progress before SIGINT"
cached_list "$T/mnt2" >"$T/full2"
read -r n1 p1 <"$T/full2"
echo "$n1 files cached when interrupted"
[ "$n1" -gt 0 ] && [ "$n1" -lt 150 ] || fail "$n1 files cached after the interrupt"
b0=$(stat_field "$T/mnt2" backend_bytes)
"$CTL" "$T/mnt2" warm >"$T/res.out" 2>&1 || fail "resumed warm failed"
cat "$T/res.out"
grep -q " $n1 already cached" "$T/res.out" || fail "resume did not skip the $n1 cached files"
grep -q "cache full" "$T/res.out" || fail "resume did not fill the cache"
b1=$(stat_field "$T/mnt2" backend_bytes)
used=$(stat_field "$T/mnt2" cache_bytes)
[ $((b1 - b0)) -lt $((used + 8 * maxsize)) ] || fail "resume fetched $((b1 - b0)) bytes"

log "progress bar on a terminal"
if command -v script >/dev/null; then
	"$CTL" "$T/mnt2" evict n00000000 >/dev/null 2>&1 # room to warm again, if evict exists
	script -qfec "$CTL $T/mnt2 warm --rate 50 n00000000" /dev/null >"$T/tty.out" 2>&1
	grep -q $'\r\[[#.]*\] [0-9]*/40 files' "$T/tty.out" || { cat -v "$T/tty.out"; fail "no progress bar"; }
fi

log "evict"
if [ ! -e "$T/mnt2/.epochfs/evict" ]; then
	"$CTL" "$T/mnt2" evict "$f" 2>"$T/ev.err" && fail "evict succeeded without .epochfs/evict"
	grep -q "cannot evict" "$T/ev.err" || fail "unclear message: $(cat "$T/ev.err")"
	skip "the daemon has no .epochfs/evict yet (everything else passed)"
fi
tail -n +2 "$T/full2" | head -2 >"$T/ev"
e1=$(sed -n 1p "$T/ev")
e2=$(sed -n 2p "$T/ev")
before=$(stat_field "$T/mnt2" cache_bytes)
"$CTL" "$T/mnt2" evict "$e1" no/such/file 2>"$T/ev.err" && fail "evict of an unknown path succeeded"
cat "$T/ev.err"
"$CTL" "$T/mnt2" status "$e1" | grep -q "(100.0%)" || fail "a refused evict evicted $e1"
"$CTL" "$T/mnt2" evict "$e1" "$T/mnt2/$e2" || fail "evict failed"
"$CTL" "$T/mnt2" status "$e1" "$e2" | tee "$T/ev.st"
[ "$(grep -c "not cached" "$T/ev.st")" -eq 2 ] || fail "evicted files still cached"
[ "$(stat_field "$T/mnt2" cache_bytes)" -lt "$before" ] || fail "cache_bytes did not drop"
cmp "$T/mnt2/$e1" "$T/src/$e1" || fail "an evicted file reads wrong"
umount_fs "$T/mnt2"
echo ok
