#!/bin/bash
# SPDX-License-Identifier: MIT
# Substitutable hits through a slow HTTP backend with a cache of half the
# dataset: over each of three epochs the multiset of served contents equals
# the dataset's, every served content stays in its directory, fstat matches
# the bytes served, and substitutions do happen.  With substitution off no
# file is ever substituted.  The readers pause 30 ms per file (a training
# step), which the backend (4 requests in flight, 30 ms each) cannot keep up
# with: misses remain, and they are what substitution serves.  The hit rates
# are printed, not asserted (docs/benchmarks.md has the comparison).
. "$(dirname "$0")/remote-lib.sh"
need_daemon
[ -e /dev/fuse ] || skip "no /dev/fuse"

SRC=$T/src
mkdir -p "$SRC"
"$BUILDDIR/epochfs-gendata" --classes 6 --per-class 50 --size 40K "$SRC" >/dev/null
start_nginx "$SRC"
start_proxy "$NGINX_PORT" --latency-ms 30
size=$(du -s -B1 --apparent-size "$SRC" | cut -f1)
half=$((size / 2 + 400000))

for scope in dir off; do
	log "substitute=$scope, cache $half bytes of $size"
	rm -rf "$T/cache"
	CACHE_SIZE=$half mount_epochfs "http://127.0.0.1:$PROXY_PORT/" --substitute=$scope --substitute-deadline ${DEADLINE:-20} \
		--backend-concurrency 4 || fail "mount failed: $(cat "$T/epochfs.log")"
	echo "seed=7 sampler=randperm" >"$MNT/.epochfs/seed" || fail "seed write"
	for e in 0 1 2; do
		# Each epoch must come from epochfs, not from the kernel's page cache.
		sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || skip "cannot drop the page cache (not root)"
		out=$(python3 "$SRCDIR/tests/subst_reader.py" "$MNT" "$SRC" $scope 8 ${STEP_MS:-30}) || fail "reader failed"
		echo "epoch $e: $out"
		echo "$out" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
scope = sys.argv[1]
assert r["missing"] == 0 and r["duplicates"] == 0, "contents not served exactly once: %r" % r
assert r["wrong_scope"] == 0, "content served outside its scope: %r" % r
assert r["fstat_mismatch"] == 0, "fstat disagrees with the bytes served: %r" % r
if scope == "off":
    assert r["substituted"] == 0, "substituted with substitution off: %r" % r
' $scope || fail "epoch $e violates the guarantee"
	done
	stats=$(cat "$MNT/.epochfs/stats")
	echo "$stats" | python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
for e in s["epochs"]:
    print("  epoch %d: opens %d hits %d (%.0f%%) substitutions %d backend %d" % (e["epoch"], e["opens"], e["open_hits"], 100.0 * e["open_hits"] / max(1, e["opens"]), e["substitutions"], e["backend_bytes"]))
print("  substitutions %d, debt %d" % (s["substitutions"], s["substitution_debt"]))
'
	if [ $scope = dir ]; then
		echo "$stats" | python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
assert s["substitutions"] > 0, "no substitution happened"
late = [e for e in s["epochs"] if e["epoch"] >= 1 and e["opens"] >= 250]
rate = sum(e["open_hits"] for e in late) / max(1, sum(e["opens"] for e in late))
print("  open hit rate in epochs 1-2: %.2f (cached fraction about 0.5)" % rate)
' || fail "substitution did not happen"
	else
		n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["substitutions"])' "$MNT/.epochfs/stats")
		[ "$n" = 0 ] || fail "$n substitutions with substitution off"
	fi
	umount_epochfs
done
echo ok
