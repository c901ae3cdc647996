#!/bin/bash
# SPDX-License-Identifier: MIT
# Persistence: after an unmount, a new mount of the same source with the same
# cache dir serves every byte without touching the source.
. "$(dirname "$0")/lib.sh"
require_fuse

SRC=$T/src
gen "$SRC" 5 40 110K
head -c 9000000 /dev/urandom >"$SRC/n00000000/shard.bin"

mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G
read_verify "$T/mnt" "$SRC" 8 1
[ "$(stat_field "$T/mnt" backend_bytes)" -gt 0 ] || fail "cold read did not touch the backend"
umount_fs "$T/mnt"

log "remount: warm"
mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G
grep -q "using the snapshot" "$T/daemon.log" || fail "the namespace was listed again instead of reused"
read_verify "$T/mnt" "$SRC" 8 1
b=$(stat_field "$T/mnt" backend_bytes)
o=$(stat_field "$T/mnt" opens)
h=$(stat_field "$T/mnt" open_hits)
echo "backend_bytes=$b opens=$o open_hits=$h"
[ "$b" -eq 0 ] || fail "warm remount read $b bytes from the source"
[ "$o" -eq "$h" ] || fail "warm remount: $h hits of $o opens"
umount_fs "$T/mnt"

log "remount with the source unreadable: still served"
chmod 000 "$SRC/n00000001"
mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G
chmod 755 "$SRC/n00000001"
echo ok
