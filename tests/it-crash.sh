#!/bin/bash
# SPDX-License-Identifier: MIT
# kill -9 of the daemon during a fill, several times at different moments,
# then a new mount: only correct bytes are ever served.
. "$(dirname "$0")/lib.sh"
require_fuse

SRC=$T/src
gen "$SRC" 6 60 200K
head -c 12000000 /dev/urandom >"$SRC/n00000000/shard.bin"

for delay in 0.15 0.4 0.8; do
	log "kill -9 after ${delay}s of filling"
	mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G --chunk-size 1M
	"$TOOLS/epochfs-read" --threads 8 "$T/mnt" >/dev/null 2>&1 &
	reader=$!
	sleep "$delay"
	kill -9 "$DPID"
	wait "$reader" 2>/dev/null
	fusermount3 -uz "$T/mnt" 2>/dev/null
	sleep 0.2
	mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G --chunk-size 1M
	read_verify "$T/mnt" "$SRC" 8 1
	echo "verify_failures=$(stat_field "$T/mnt" verify_failures) open_hits=$(stat_field "$T/mnt" open_hits)"
	umount_fs "$T/mnt"
done
log "a final warm mount serves everything from the cache"
mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G --chunk-size 1M
read_verify "$T/mnt" "$SRC" 8 1
[ "$(stat_field "$T/mnt" backend_bytes)" -eq 0 ] || fail "not warm after recovery"
umount_fs "$T/mnt"
echo ok
