#!/bin/bash
# SPDX-License-Identifier: MIT
# A cache of about half the dataset, the seed written, three epochs read in
# the planned order (page cache dropped between them): in the epochs after
# the first, nothing planned for the epoch is evicted before its read (other
# than to keep the bound as the index grows, or for a read that missed the
# prefetcher on a loaded machine: two at most each), every prefetched chunk is
# stored, no chunk is fetched twice, and the bytes fetched for the epoch's
# own reads are at most the dataset minus what the cache held when the epoch
# began (the floor under a permutation per epoch, docs/policy.md).  The bytes read are checked.
. "$(dirname "$0")/lib.sh"
require_fuse
[ -w /proc/sys/vm/drop_caches ] || skip "cannot drop the page cache (not root)"
command -v python3 >/dev/null || skip "python3 missing"

SRC=$T/src
gen "$SRC" 10 50 110K
DBYTES=$(find "$SRC" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
MAXF=$(find "$SRC" -type f -printf '%s\n' | sort -n | tail -1)

log "footprint of the whole dataset in the cache"
mount_fs "$SRC" "$T/mnt" "$T/full" --cache-size 1G
"$TOOLS/epochfs-read" --threads 8 "$T/mnt" >/dev/null || fail "read failed"
data=$(stat_field "$T/mnt" cache_data_bytes)
meta=$(stat_field "$T/mnt" cache_meta_bytes)
umount_fs "$T/mnt"
half=$(( (data / 2 + meta) * 100 / 99 ))

log "cache of $half bytes (data $data, index and directories $meta), 3 epochs"
mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size "$half"
echo "seed=11 sampler=randperm" >"$T/mnt/.epochfs/seed" || fail "seed write"
"$TOOLS/epochfs-read" --threads 8 --epochs 3 --drop-caches --order "$T/mnt/.epochfs/order" \
	--verify "$SRC" "$T/mnt" || fail "reading gave wrong bytes or errors"
cp "$T/mnt/.epochfs/stats" "$T/stats.json"
umount_fs "$T/mnt"

python3 - "$T/stats.json" "$DBYTES" "$MAXF" <<'PY' || fail "the epochs fetched more than they had to"
import json, sys
s = json.load(open(sys.argv[1]))
dataset = int(sys.argv[2])
# The files still being read when the plan moves on (at the epoch's last
# open, 8 reader threads) may be fetched after it: a file each at most.
slack = 8 * int(sys.argv[3])
ep = {e["epoch"]: e for e in s["epochs"]}
ok = True
for i in (1, 2):
    e = ep[i]
    floor = dataset - e["cached_bytes_at_start"]
    # What it fetched for its own reads (the rest was for the next epoch).
    own = e["fetched_bytes"] - e["prefetched_ahead_bytes"]
    print("epoch %d: fetched %d (%d for the next epoch), floor %d (%.4f), cached at start %d "
          "objects, refetched %d, evicted while planned %d, prefetches not stored %d, opens %d, "
          "hits %d" % (i, e["fetched_bytes"], e["prefetched_ahead_bytes"], floor, own / floor,
                       e["cached_objects_at_start"], e["refetched_bytes"], e["evicted_planned"],
                       e["not_stored_prefetch"], e["opens"], e["open_hits"]))
    if e["opens"] != 500:
        print("epoch %d: %d opens, not 500" % (i, e["opens"])); ok = False
    # A read the prefetcher did not get to first (an open that missed, seen
    # on a loaded machine) is fetched and stored on the read path, where
    # Belady may give up an object needed later in the epoch for it: two
    # objects of these sizes at most per miss.  Without misses: none.
    misses = e["opens"] - e["open_hits"]
    if e["evicted_planned"] > s["evictions_for_index"] + 2 * misses:
        print("epoch %d: objects still planned were evicted (%d misses)" % (i, misses)); ok = False
    # A file read near the epoch's end that is also planned early in the
    # next one can be fetched for each (seen once in 6 runs under ASan: one
    # file, its bytes both "refetched" and "for the next epoch"): the same
    # boundary slack.
    if e["not_stored_prefetch"] or e["refetched_bytes"] > slack:
        print("epoch %d: prefetches not stored or chunks fetched twice" % i); ok = False
    if own > floor + slack:
        print("epoch %d: more than the floor" % i); ok = False
    if e["cached_objects_at_start"] < 200:
        print("epoch %d: the cache was not full at its start" % i); ok = False
sys.exit(0 if ok else 1)
PY
echo ok
