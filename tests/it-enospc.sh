#!/bin/bash
# SPDX-License-Identifier: MIT
# A full cache disk (a small tmpfs under a larger --cache-size) degrades to
# reads straight from the source: every byte still right, logged once.
. "$(dirname "$0")/lib.sh"
require_fuse
[ "$(id -u)" -eq 0 ] || skip "needs root to mount a small tmpfs"

SRC=$T/src
gen "$SRC" 6 40 110K     # ~26 MB
mkdir -p "$T/small"
mount -t tmpfs -o size=8m tmpfs "$T/small" || skip "cannot mount tmpfs"
TMPFS=("$T/small")

mount_fs "$SRC" "$T/mnt" "$T/small/cache" --cache-size 1G
read_verify "$T/mnt" "$SRC" 8 2
grep -q "cache disk full" "$T/daemon.log" || fail "ENOSPC not logged"
[ "$(grep -c "cache disk full" "$T/daemon.log")" -eq 1 ] || fail "ENOSPC logged more than once"
echo "cache_degraded=$(stat_field "$T/mnt" cache_degraded) opens=$(stat_field "$T/mnt" opens)"
umount_fs "$T/mnt"
echo ok
