#!/bin/bash
# SPDX-License-Identifier: MIT
# A full cache disk (a small tmpfs that something else fills after the mount
# checked --cache-size against it) degrades to reads straight from the
# source: every byte still right, logged once.
. "$(dirname "$0")/lib.sh"
require_fuse
[ "$(id -u)" -eq 0 ] || skip "needs root to mount a small tmpfs"

SRC=$T/src
gen "$SRC" 6 40 110K     # ~26 MB
mkdir -p "$T/small"
mount -t tmpfs -o size=64m tmpfs "$T/small" || skip "cannot mount tmpfs"
TMPFS=("$T/small")

mount_fs "$SRC" "$T/mnt" "$T/small/cache" --cache-size 48M
# Another tenant of the disk leaves 4 MiB free: the cache's 48M cannot fit.
fallocate -l $(($(stat -f -c '%a*%S' "$T/small") - (4 << 20))) "$T/small/fill" ||
	fail "cannot fill the tmpfs"
read_verify "$T/mnt" "$SRC" 8 2
grep -q "cache disk full" "$T/daemon.log" || fail "ENOSPC not logged"
[ "$(grep -c "cache disk full" "$T/daemon.log")" -eq 1 ] || fail "ENOSPC logged more than once"
echo "cache_degraded=$(stat_field "$T/mnt" cache_degraded) opens=$(stat_field "$T/mnt" opens)"
umount_fs "$T/mnt"
echo ok
