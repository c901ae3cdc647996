#!/bin/bash
# SPDX-License-Identifier: MIT
# Every rank of a node on one mount (issue 12), behind the slow proxy (an
# HTTP origin, 10 ms per request):
#  1. four reader processes, one per rank of a world of 4, each with a real
#     torch DataLoader (2 workers) over its DistributedSampler shard, in one
#     gloo process group that all-reduces at every step (the lockstep of
#     data-parallel training), two epochs: bytes and indices right, .epochfs/seed reads back
#     one line per rank sorted by rank, and each rank's own stats show at
#     least 90% of its epoch-0 opens prefetched in time;
#  2. a remount in the middle of an epoch: the plan and the positions come
#     back, and the rest of the epoch is prefetched without a new seed write;
#  3. start=K plans exactly order[K:].
source "$(dirname "$0")/remote-lib.sh"
PY=/usr/bin/python3
[ -x $PY ] || skip "no /usr/bin/python3 (Debian's, with python3-torch)"
$PY -c 'import torch' 2>/dev/null || skip "torch cannot be imported from $PY"
need_daemon
RC=$SRCDIR/tests/ranks_check.py

mkdir -p "$T/www"
"${TOOLS:-$BUILDDIR}/epochfs-gendata" --classes 8 --per-class 40 --size 24K "$T/www/ds" >/dev/null ||
	fail "cannot generate the dataset"
SRC=$T/www/ds
start_nginx "$T/www"
start_proxy "$NGINX_PORT" --latency-ms "${LATENCY_MS:-10}"
URL=http://127.0.0.1:$PROXY_PORT/ds/

log "four ranks, one process each, two epochs"
CACHE_DIR=$T/cache1 CACHE_SIZE=256M mount_epochfs "$URL" || fail "mount failed: $(cat "$T/epochfs.log")"
mkdir -p "$T/barrier"
DIST_PORT=$(free_port)
pids=()
for r in 0 1 2 3; do
	$PY "$RC" reader "$MNT" "$SRC" --world 4 --rank $r --seed 11 --barrier "$T/barrier" \
		--dist-port "$DIST_PORT" \
		>"$T/rank$r.log" 2>&1 &
	pids+=($!)
done
bad=0
for r in 0 1 2 3; do
	wait "${pids[$r]}" || bad=1
	cat "$T/rank$r.log"
done
[ $bad = 0 ] || { tail -20 "$T/epochfs.log"; fail "a rank's reader failed (above)"; }
$PY - "$MNT" <<'EOF' || fail "the seed lines do not read back one per rank"
import sys
lines = open(sys.argv[1] + "/.epochfs/seed").read().split("\n")[:-1]
# each rank's line names the epoch it is in: two were read
want = ["seed=11 sampler=distributed world=4 rank=%d drop_last=0 epoch=2" % r for r in range(4)]
print("\n".join(lines))
sys.exit(0 if lines == want else 1)
EOF
umount_epochfs || fail "unmount failed"

log "a remount in the middle of an epoch: the plan and the positions come back"
# A slower origin (50 ms, 4 requests in flight: about 80 files/s) so that the
# prefetcher is still behind the end of the epoch when the daemon stops.
start_proxy "$NGINX_PORT" --latency-ms 50
URL2=http://127.0.0.1:$PROXY_PORT/ds/
SLOW=(--backend-concurrency 4)
CACHE_DIR=$T/cache2 CACHE_SIZE=256M mount_epochfs "$URL2" "${SLOW[@]}" ||
	fail "mount failed: $(cat "$T/epochfs.log")"
echo "seed=5 sampler=distributed world=2 rank=0-1" >"$MNT/.epochfs/seed" || fail "rank=0-1 refused"
$PY "$RC" partial "$MNT" "$SRC" --world 2 --seed 5 --upto 60 || fail "the first part of the epoch"
cp "$MNT/.epochfs/seed" "$T/seed.before"
umount_epochfs || fail "unmount failed" # the positions are saved at the unmount
CACHE_DIR=$T/cache2 CACHE_SIZE=256M mount_epochfs "$URL2" "${SLOW[@]}" ||
	fail "remount failed: $(cat "$T/epochfs.log")"
diff "$T/seed.before" "$MNT/.epochfs/seed" || fail "the seed lines did not come back"
$PY - "$MNT" <<'EOF' || fail "the positions did not come back"
import json, sys, time
mnt = sys.argv[1]
s = json.load(open(mnt + "/.epochfs/stats"))
pos = [(r["rank"], r["epoch"], r["position"]) for r in s["ranks"]]
print("after the remount: ranks (rank, epoch, position) %s" % pos)
ok = pos == [(0, 0, 60), (1, 0, 60)]
# the prefetcher goes on by itself: requests to the origin, no seed written
t0 = time.monotonic()
while time.monotonic() - t0 < 30:
    s = json.load(open(mnt + "/.epochfs/stats"))
    if s["prefetch_issued"] >= 20:
        break
    time.sleep(0.1)
print("prefetch issued %d after the remount" % s["prefetch_issued"])
sys.exit(0 if ok and s["prefetch_issued"] >= 20 else 1)
EOF
$PY "$RC" rest "$MNT" "$SRC" --world 2 --seed 5 --from 60 --wait || fail "the rest of the epoch"
umount_epochfs || fail "unmount failed"

log "--forget-plan drops the saved plan"
CACHE_DIR=$T/cache2 CACHE_SIZE=256M mount_epochfs "$URL2" --forget-plan ||
	fail "mount with --forget-plan failed: $(cat "$T/epochfs.log")"
[ -z "$(cat "$MNT/.epochfs/seed")" ] || fail "--forget-plan kept: $(cat "$MNT/.epochfs/seed")"
umount_epochfs || fail "unmount failed"

log "start=K plans exactly order[K:]"
CACHE_DIR=$T/cache3 CACHE_SIZE=256M mount_epochfs "$URL" || fail "mount failed: $(cat "$T/epochfs.log")"
echo "seed=9 sampler=distributed world=2 rank=0 start=100" >"$MNT/.epochfs/seed" || fail "start= refused"
$PY "$RC" started "$MNT" --world 2 --rank 0 --seed 9 --start 100 || fail "start=K (above)"
umount_epochfs || fail "unmount failed"
echo "PASS: it-ranks"
