#!/bin/bash
# SPDX-License-Identifier: MIT
# A listing larger than one index transaction batch (20,000 entries), walked
# by many threads: every file appears, and the remount reuses the snapshot.
# (Regression: the write transaction was committed from another thread than
# the one that began it, and the next one deadlocked.)
. "$(dirname "$0")/lib.sh"
require_fuse

gen "$T/src" 250 100 64
mount_fs "$T/src" "$T/mnt" "$T/cache" --cache-size 1G
n=$(find "$T/mnt" -type f | wc -l)
[ "$n" -eq 25000 ] || fail "listed $n files, expected 25000"
umount_fs "$T/mnt"
mount_fs "$T/src" "$T/mnt" "$T/cache" --cache-size 1G
grep -q "using the snapshot" "$T/daemon.log" || fail "snapshot not reused"
[ "$(find "$T/mnt" -type f | wc -l)" -eq 25000 ] || fail "remount lists a different count"
"$TOOLS/epochfs-read" --threads 8 --verify "$T/src" "$T/mnt" >/dev/null || fail "read"
umount_fs "$T/mnt"
echo ok
