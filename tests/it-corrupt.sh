#!/bin/bash
# SPDX-License-Identifier: MIT
# A cached chunk whose bytes were damaged on disk is detected by its xxh3,
# dropped, fetched again, and never served.
. "$(dirname "$0")/lib.sh"
require_fuse

SRC=$T/src
gen "$SRC" 4 30 110K
head -c 6000000 /dev/urandom >"$SRC/n00000000/shard.bin"

mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G --chunk-size 1M
read_verify "$T/mnt" "$SRC" 4 1
umount_fs "$T/mnt"

log "damage 5 cached object files"
n=0
for f in $(find "$T/cache/objects" -type f | sort | head -5); do
	printf 'XXXXXXXX' | dd of="$f" bs=1 seek=1000 conv=notrunc status=none
	n=$((n + 1))
done
[ $n -eq 5 ] || fail "expected cached objects to damage"

mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G --chunk-size 1M
read_verify "$T/mnt" "$SRC" 4 1
vf=$(stat_field "$T/mnt" verify_failures)
echo "verify_failures=$vf backend_bytes=$(stat_field "$T/mnt" backend_bytes)"
[ "$vf" -ge 5 ] || fail "only $vf damaged chunks detected"
umount_fs "$T/mnt"

log "the refetched copies are good: a third mount is warm and right"
mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G --chunk-size 1M
read_verify "$T/mnt" "$SRC" 4 1
[ "$(stat_field "$T/mnt" verify_failures)" -eq 0 ] || fail "damage persisted"
[ "$(stat_field "$T/mnt" backend_bytes)" -eq 0 ] || fail "not warm"
umount_fs "$T/mnt"
echo ok
