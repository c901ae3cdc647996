#!/bin/bash
# SPDX-License-Identifier: MIT
# epochfs-ctl: warm fills exactly what fits in a cache smaller than the
# dataset (and what the xattr calls cached is then served without the
# backend), reports progress, stops on SIGINT and resumes; status and evict.
# The progress bar fits the terminal (TIOCGWINSZ, else COLUMNS, else 80), the
# ETA follows the recent rate, a warm with unreadable files ends FAILED with
# exit 1; evict of a directory drops its subtree and counts it; --help, usage
# errors (2) and a path that is not a mount (5) exit as the table says.
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

log "--help, usage errors, not a mount"
"$CTL" --help >"$T/help" || fail "--help exited $?"
grep -q "^usage: epochfs-ctl" "$T/help" || fail "--help printed no usage"
"$CTL" /nonexistent warm --help >/dev/null || fail "warm --help exited $?"
"$CTL" >/dev/null 2>&1; [ $? -eq 2 ] || fail "no arguments did not exit 2"
"$CTL" /tmp frob 2>/dev/null; [ $? -eq 2 ] || fail "an unknown command did not exit 2"
"$CTL" /tmp warm --threads 0 2>/dev/null; [ $? -eq 2 ] || fail "a bad value did not exit 2"
"$CTL" /tmp warm --threads 2>/dev/null; [ $? -eq 2 ] || fail "a missing value did not exit 2"
"$CTL" /tmp evict 2>/dev/null; [ $? -eq 2 ] || fail "evict without a path did not exit 2"
"$CTL" /tmp status 2>"$T/nm"; [ $? -eq 5 ] || fail "a path that is not a mount did not exit 5"
grep -q "not an epochfs mount" "$T/nm" || fail "unclear message: $(cat "$T/nm")"

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
grep -q "ETA \(?\|[0-9]*:[0-9][0-9]\)$" "$T/warm.err" || fail "no ETA in the progress lines"
awk 'length($0) > 80 { exit 1 }' "$T/warm.out" || fail "a summary line is wider than 80 columns"
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

log "progress bar on a terminal: it fits the width"
# width_ok FILE MAX: every redraw of the bar (the text between carriage
# returns, escapes removed) is at most MAX columns, and there was a bar
width_ok() {
	sed 's/\x1b\[K//g' "$1" | tr '\r' '\n' | awk -v max="$2" '
		!/[0-9]\/[0-9]+ files/ { next }
		{ n++ } length($0) > max { print "too wide (" length($0) "): " $0; bad = 1 }
		END { exit bad || !n }'
}
if command -v script >/dev/null; then
	"$CTL" "$T/mnt2" evict n00000000 >/dev/null || fail "evict of a directory failed"
	script -qfec "stty cols 60; $CTL $T/mnt2 warm --rate 20 n00000000" /dev/null >"$T/tty.out" 2>&1
	grep -q $'\r\[[#.]*\] [ 0-9]*/40 files' "$T/tty.out" || { cat -v "$T/tty.out"; fail "no progress bar"; }
	width_ok "$T/tty.out" 59 || fail "the bar does not fit a 60-column terminal"
	# no size on the terminal: COLUMNS, else 80
	"$CTL" "$T/mnt2" evict n00000000 >/dev/null
	script -qfec "stty cols 0 rows 0; COLUMNS=45 $CTL $T/mnt2 warm --rate 20 n00000000" /dev/null >"$T/tty2.out" 2>&1
	width_ok "$T/tty2.out" 44 || fail "the bar does not fit COLUMNS=45"
	"$CTL" "$T/mnt2" evict n00000000 >/dev/null
	script -qfec "stty cols 0 rows 0; unset COLUMNS; $CTL $T/mnt2 warm --rate 20 n00000000" /dev/null >"$T/tty3.out" 2>&1
	width_ok "$T/tty3.out" 79 || fail "the bar does not fit 80 columns by default"
	grep -q $'\r\[#\{10,40\}' "$T/tty3.out" || fail "no bar at 80 columns"
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

log "the ETA follows the recent rate, not the average since the start"
# Half the files are cached (skipped at once), the other half is read at
# 1 MB/s: an ETA from the average since the start would be seconds short.
mount_fs "$T/src" "$T/mnt3" "$T/cache3" --cache-size 64M
"$CTL" "$T/mnt3" warm n00000000 n00000001 n00000002 >/dev/null 2>&1 || fail "warm of half failed"
t0=$(date +%s.%N)
"$CTL" "$T/mnt3" warm --rate 1 --every 0.5 2>&1 >"$T/eta.out" |
	while IFS= read -r l; do echo "$(date +%s.%N) $l"; done >"$T/eta.err"
t1=$(date +%s.%N)
cat "$T/eta.out"
python3 - "$T/eta.err" "$t0" "$t1" <<'PY' || fail "the ETA is off"
import re, sys
t0, t1 = float(sys.argv[2]), float(sys.argv[3])
checked = good = 0
for line in open(sys.argv[1]):
    m = re.match(r"([0-9.]+) epochfs-ctl: warm: .* ETA (\d+):(\d\d)$", line)
    if not m:
        continue
    t = float(m.group(1))
    eta = int(m.group(2)) * 60 + int(m.group(3))
    if 6 <= t - t0 <= 10:  # past the rate window, while the average is still far off
        # (from the average since the start the ETA at 6 s would be about 2 s
        # for the 7 s left: 70% short)
        checked += 1
        ok = abs(t + eta - t1) <= max(1.6, 0.3 * (t1 - t))
        good += ok
        print("at %.1f s: ETA %d s, done at %.1f s%s" % (t - t0, eta, t1 - t0, "" if ok else "  (off)"))
assert checked >= 3, "only %d progress lines with an ETA between 6 and 10 s" % checked
assert good * 2 > checked, "the ETA was off in %d of %d lines" % (checked - good, checked)
PY

log "evict a directory: its subtree, counted"
"$CTL" "$T/mnt3" evict "$T/mnt3/n00000005/" >"$T/evd.out" || fail "evict of a directory failed"
cat "$T/evd.out"
grep -q "^evicted 40 files from $T/mnt3: 40 had cached bytes" "$T/evd.out" || fail "no count of the subtree"
"$CTL" "$T/mnt3" status n00000005 | grep -q "^n00000005/  0 of 40 files cached" || fail "the subtree is still cached"
"$CTL" "$T/mnt3" status n00000004 | grep -q "^n00000004/  40 of 40 files cached" || fail "evict took another directory"

log "a warm with unreadable files fails: summary and exit 1"
rm -f "$T/src/n00000005/img_00000"[0-4]*
"$CTL" "$T/mnt3" warm n00000005 >"$T/fail.out" 2>"$T/fail.err"
rc=$?
cat "$T/fail.out"
[ $rc -eq 1 ] || fail "a warm with errors exited $rc"
grep -q "FAILED .*: 5 files could not be read" "$T/fail.out" || fail "no FAILED summary"
grep -q " 35 read, 0 already cached" "$T/fail.out" || fail "the summary does not count the files read"
grep -q "first error: n00000005/img_00000" "$T/fail.out" || fail "the summary does not name the first error"
grep -q "complete" "$T/fail.out" && fail "a failed warm says complete"
umount_fs "$T/mnt3"
echo ok
