#!/bin/bash
# SPDX-License-Identifier: MIT
# The checks of the mount point and the cache dir, and the cache size:
# a mount point that has an epochfs mount already and a cache dir inside the
# mount point are refused (status 4); a non-empty mount point is warned about
# unless -o nonempty says it is meant; missing parents of the cache dir are
# created and said; --cache-size KB/MB are powers of 1000, K/M of 1024; a size
# the cache filesystem cannot hold is refused with the numbers, creating
# nothing; N% is of free space plus what the cache holds (a remount of a
# filled cache keeps its size), and the size is said at start.
. "$(dirname "$0")/lib.sh"
require_fuse

gen "$T/src" 2 10 100K
mkdir -p "$T/mnt"

log "missing parents of the cache dir are created, and said"
mount_fs "$T/src" "$T/mnt" "$T/p/q/cache" --cache-size 20MB
grep -q "created cache dir $T/p/q/cache and its missing parents from $T/p\$" "$T/daemon.log" ||
	fail "the created parents are not said: $(cat "$T/daemon.log")"
[ "$(stat_field "$T/mnt" cache_capacity)" -eq 20000000 ] || fail "20MB is not 20,000,000 bytes"
grep -q "cache size 19.07 MiB" "$T/daemon.log" || fail "the size is not said at start"

log "a second mount on the same mount point is refused"
out=$("$EPOCHFS" "$T/src" "$T/mnt" --cache-dir "$T/c2" --cache-size 16M 2>&1)
rc=$?
[ $rc -eq 4 ] || fail "mount over an epochfs mount: exit $rc, expected 4: $out"
echo "$out" | grep -q "already has an epochfs mount" || fail "unclear: $out"
[ "$(grep -c " $T/mnt fuse.epochfs" /proc/mounts)" -eq 1 ] || fail "stacked mounts: $(grep "$T/mnt" /proc/mounts)"
umount_fs "$T/mnt"

log "a cache dir inside the mount point is refused, creating nothing"
out=$("$EPOCHFS" "$T/src" "$T/mnt" --cache-dir "$T/mnt/sub/cache" 2>&1)
rc=$?
[ $rc -eq 4 ] || fail "cache dir in the mount point: exit $rc, expected 4: $out"
echo "$out" | grep -q "inside the mount point $T/mnt" || fail "unclear: $out"
[ -e "$T/mnt/sub" ] && fail "the cache dir was made inside the mount point"
ln -s "$T/mnt" "$T/link"
out=$("$EPOCHFS" "$T/src" "$T/mnt" --cache-dir "$T/link/c" 2>&1) && fail "through a symlink: accepted"
echo "$out" | grep -q "inside the mount point" || fail "through a symlink, unclear: $out"

log "a size larger than the cache filesystem can hold is refused with the numbers"
out=$("$EPOCHFS" "$T/src" "$T/mnt" --cache-dir "$T/big/cache" --cache-size 100000TB 2>&1)
rc=$?
[ $rc -eq 4 ] || fail "100000TB: exit $rc, expected 4: $out"
echo "$out" | grep -q "cache size 88.82 PiB (100000000000000000 bytes) is more than the cache filesystem can hold: .* free + 0 B already in the cache (filesystem size .*)" ||
	fail "no numbers: $out"
[ -e "$T/big" ] && fail "a refused size left a cache dir behind"

log "a non-empty mount point: a warning, none with -o nonempty"
echo hidden >"$T/mnt/hidden"
: >"$T/daemon.log"
mount_fs "$T/src" "$T/mnt" "$T/cache" --cache-size 16M
grep -q "warning: mount point $T/mnt is not empty" "$T/daemon.log" || fail "no warning: $(cat "$T/daemon.log")"
umount_fs "$T/mnt"
: >"$T/daemon.log"
mount_fs "$T/src" "$T/mnt" "$T/cache" --cache-size 16M -o nonempty
grep -q "not empty" "$T/daemon.log" && fail "warned despite -o nonempty"
grep -q "nonempty" /proc/mounts && fail "nonempty was passed to the kernel"
umount_fs "$T/mnt"
rm "$T/mnt/hidden"

log "N% is of free space plus the cache's own; a filled cache keeps its size"
avail() { echo $(($(stat -f -c '%a * %S' "$T"))); }
near() { # A B: within 1% (other programs write to this disk too)
	local d=$(($1 - $2))
	[ $((d < 0 ? -d : d)) -le $(($2 / 100)) ]
}
: >"$T/daemon.log"
a=$(avail)
mount_fs "$T/src" "$T/pct" "$T/pcache" --cache-size 50%
cap1=$(stat_field "$T/pct" cache_capacity)
near "$cap1" $((a / 2)) || fail "50% gave $cap1, half of the free $a is $((a / 2))"
grep -q "cache size .*: 50% of .* (free space plus the cache's own)" "$T/daemon.log" ||
	fail "the size is not said: $(cat "$T/daemon.log")"
umount_fs "$T/pct"
[ "$(id -u)" -eq 0 ] || skip "the remount part needs root to mount a small tmpfs"
mkdir -p "$T/small"
mount -t tmpfs -o size=64m tmpfs "$T/small" || skip "cannot mount tmpfs"
TMPFS=("$T/small")
gen "$T/src2" 2 10 1M
a=$(stat -f -c '%a * %S' "$T/small")
mount_fs "$T/src2" "$T/pct" "$T/small/cache" --cache-size 50% --chunk-size 1M
cap1=$(stat_field "$T/pct" cache_capacity)
near "$cap1" $((a / 2)) || fail "50% of the tmpfs gave $cap1, expected $((a / 2))"
read_verify "$T/pct" "$T/src2" 4 1
umount_fs "$T/pct"
used=$(($(du -s -B1 "$T/small/cache" | cut -f1)))
a=$(($(stat -f -c '%a * %S' "$T/small")))
[ "$used" -gt 8000000 ] || fail "the cache holds only $used bytes after an epoch"
mount_fs "$T/src2" "$T/pct" "$T/small/cache" --cache-size 50% --chunk-size 1M
cap2=$(stat_field "$T/pct" cache_capacity)
near "$cap2" $(((a + used) / 2)) || fail "remount: 50% gave $cap2, expected $(((a + used) / 2)) (free $a, cached $used)"
umount_fs "$T/pct"
echo "50% of a 64 MiB tmpfs: $cap1 bytes, then $cap2 bytes with $used cached ($a free)"
echo ok
