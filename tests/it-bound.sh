#!/bin/bash
# SPDX-License-Identifier: MIT
# The cache never holds more than --cache-size, counting its index and its
# per-file overhead, at any moment of reading a dataset three times larger,
# under both policies.  The cache dir is measured with du (allocated blocks).
. "$(dirname "$0")/lib.sh"
require_fuse

SRC=$T/src
gen "$SRC" 8 60 110K           # ~53 MB
head -c 8000000 /dev/urandom >"$SRC/n00000000/shard-a.bin"
CAP=$((20 * 1024 * 1024))      # about a third of the dataset

for policy in shade lru; do
	log "policy $policy"
	rm -rf "$T/cache"
	mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size $CAP --policy $policy --chunk-size 1M
	: >"$T/du.$policy"
	(
		while :; do
			du -s -B1 "$T/cache" 2>/dev/null | cut -f1 >>"$T/du.$policy"
			sleep 0.02
		done
	) &
	poller=$!
	read_verify "$T/mnt" "$SRC" 8 3
	kill $poller
	wait $poller 2>/dev/null
	du -s -B1 "$T/cache" | cut -f1 >>"$T/du.$policy"
	max=$(sort -n "$T/du.$policy" | tail -1)
	n=$(wc -l <"$T/du.$policy")
	ev=$(stat_field "$T/mnt" evictions)
	evi=$(stat_field "$T/mnt" evictions_for_index)
	cb=$(stat_field "$T/mnt" cache_bytes)
	echo "samples=$n max_du=$max cap=$CAP cache_bytes=$cb evictions=$ev (for index growth: $evi)"
	[ "$max" -le $CAP ] || fail "cache dir reached $max bytes, above the bound $CAP"
	[ "$cb" -le $CAP ] || fail "accounted $cb bytes, above the bound $CAP"
	[ "$max" -gt $((CAP / 2)) ] || fail "the cache barely filled ($max bytes)"
	if [ $policy = shade ]; then
		# Only the index's own growth may take room back (it counts against the bound).
		[ "$ev" -eq "$evi" ] || fail "shade evicted $((ev - evi)) objects for equal samples"
	else
		[ "$ev" -gt 0 ] || fail "lru never evicted"
	fi
	umount_fs "$T/mnt"
done
echo ok
