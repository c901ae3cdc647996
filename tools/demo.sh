#!/bin/sh
# SPDX-License-Identifier: MIT
# make demo: a synthetic ImageNet-like dataset in a local directory, mounted
# through a cache smaller than it, read for two shuffled epochs by several
# threads with every byte checked against the source, then the stats.
set -eu
B=${B:-.}
D=$(mktemp -d /tmp/epochfs-demo.XXXXXX)
MNT=$D/mnt
PID=
cleanup() {
	if mountpoint -q "$MNT" 2>/dev/null; then fusermount3 -u "$MNT" || fusermount3 -uz "$MNT"; fi
	[ -n "$PID" ] && wait "$PID" 2>/dev/null || true
	rm -rf "$D"
}
trap cleanup EXIT INT TERM

echo "== generating a dataset: 10 classes x 60 files of ~110 KB"
CLASSES=10 PER=60
"$B/epochfs-gendata" --classes $CLASSES --per-class $PER --size 110K "$D/dataset"
size=$(du -s -B1 "$D/dataset" | cut -f1)
cap=$((size * 6 / 10))
echo "== mounting $D/dataset on $MNT with a cache of $cap bytes (60% of the dataset)"
mkdir -p "$MNT"
"$B/epochfs" "$D/dataset" "$MNT" -f --cache-dir "$D/cache" --cache-size "$cap" 2>"$D/daemon.log" &
PID=$!
i=0
until [ -r "$MNT/.epochfs/stats" ]; do
	i=$((i + 1))
	if [ $i -gt 200 ] || ! kill -0 $PID 2>/dev/null; then cat "$D/daemon.log"; exit 1; fi
	sleep 0.05
done
echo "== reading two shuffled epochs with 8 threads, checking every byte"
drop=""
[ "$(id -u)" -eq 0 ] && drop="--drop-caches"   # epoch 1 then comes from epochfs, not the page cache
"$B/epochfs-read" --threads 8 --epochs 2 --seed 42 $drop --verify "$D/dataset" "$MNT"
echo "== epochfs-stat $MNT"
"$B/epochfs-stat" "$MNT"
hits=$("$B/epochfs-stat" --json "$MNT" | sed -n 's/^{.*"open_hits":\([0-9]*\).*/\1/p')
echo "== epoch 0 was cold (the cache started empty), so all $hits hits are epoch 1's:"
echo "   $hits of $((CLASSES * PER)) opens, the cached fraction (~60%): the default policy keeps what"
echo "   it admitted instead of thrashing like LRU"
fusermount3 -u "$MNT"
wait $PID
PID=
echo "== unmounted; demo done"
