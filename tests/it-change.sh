#!/bin/bash
# SPDX-License-Identifier: MIT
# A source file whose size or mtime changed is fetched again: after a
# relisting (--refresh or the TTL), and also when a read finds it changed.
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

log "a change found by a read (no relisting) fails that read and is not cached"
g=n00000002/img_000004.JPEG
mount_fs "$SRC" "$T/mnt" "$T/cache2" --cache-size 1G
head -c 4444 /dev/urandom >"$SRC/$g"
if cat "$T/mnt/$g" >/dev/null 2>&1; then
	fail "a changed, uncached file was served without error"
fi
[ "$(stat_field "$T/mnt" stale)" -ge 1 ] || fail "stale counter not raised"
cmp "$T/mnt/$g" "$SRC/$g" || fail "after the change was seen, the new bytes are not served"
umount_fs "$T/mnt"
echo ok
