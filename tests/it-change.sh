#!/bin/bash
# SPDX-License-Identifier: MIT
# A source file whose size or mtime changed is fetched again: after a
# relisting (--refresh or the TTL), and also when a read finds it changed
# (the first read of an open gets the new bytes when the size is the same;
# otherwise that open fails with EIO and the log names the path).
. "$(dirname "$0")/lib.sh"
require_fuse

SRC=$T/src
gen "$SRC" 3 20 110K
f=n00000001/img_000003.JPEG

mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G
read_verify "$T/mnt" "$SRC" 4 1
umount_fs "$T/mnt"

log "change one file at the source, remount with --refresh"
head -c 77777 /dev/urandom >"$SRC/$f"
touch -d '2001-01-01' "$SRC/$f"
mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G --refresh
cmp "$T/mnt/$f" "$SRC/$f" || fail "stale bytes served after refresh"
[ "$(stat -c %s "$T/mnt/$f")" -eq 77777 ] || fail "stale size"
read_verify "$T/mnt" "$SRC" 4 1
umount_fs "$T/mnt"

log "--list-ttl 0 relists at every mount"
head -c 5555 /dev/urandom >"$SRC/$f"
mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G --list-ttl 0
cmp "$T/mnt/$f" "$SRC/$f" || fail "stale bytes with --list-ttl 0"
umount_fs "$T/mnt"

# A change found by a read (no relisting): the kernel has the old size.
log "a change in place (same size), found by the first read: the new bytes"
mount_fs "$SRC" "$T/mnt" "$T/cache2" --cache-size 1G
h=n00000002/img_000005.JPEG
sz=$(stat -c %s "$SRC/$h")
head -c "$sz" /dev/urandom >"$SRC/$h.new" && mv "$SRC/$h.new" "$SRC/$h"
touch -d '2002-02-02' "$SRC/$h"
cmp "$T/mnt/$h" "$SRC/$h" || fail "a file changed in place (same size) before its first read: wrong bytes"
grep -q "$h changed at the source before this open read it" "$T/daemon.log" ||
	fail "the switch to the new version is not logged with the path"
[ "$(stat_field "$T/mnt" stale)" -ge 1 ] || fail "stale counter not raised"

log "a change of size: EIO for that open, logged with the path; a new open reads it"
for k in n00000002/img_000006.JPEG:300000 n00000002/img_000004.JPEG:4444; do
	n=${k#*:}
	k=${k%:*}
	head -c "$n" /dev/urandom >"$SRC/$k"
	if cat "$T/mnt/$k" >/dev/null 2>&1; then
		fail "$k, resized at the source, was served to an open made at its old size"
	fi
	grep -q "$k changed at the source while open (size .* -> $n): this open fails with EIO" \
		"$T/daemon.log" || fail "the EIO is not logged with the path and the sizes"
	cmp "$T/mnt/$k" "$SRC/$k" || fail "after the change was seen, the new bytes are not served"
done
umount_fs "$T/mnt"
echo ok
