#!/bin/bash
# SPDX-License-Identifier: MIT
# make bench-remote: epochfs over HTTP (nginx with a JSON autoindex behind
# tests/faultproxy.py adding LATENCIES ms per request), against a plain
# concurrent client (tools/bench_client.py) reading the same objects straight
# from the proxy.  Medians over RUNS runs in one invocation; prints Markdown
# tables for docs/benchmarks-remote.md.  Not a test: nothing here asserts.
#
#   A (issue 3)  cold and warm epochs, epochfs-read with THREADS threads
#                against the client with THREADS concurrent requests.
#   B (issue 4)  cold epoch with the seed written and read in its order,
#                against the same order without the seed (fresh cache), and
#                against the remote bound: the client with CONC (the
#                --backend-concurrency) concurrent requests.
#                With BASE=DIR, the seeded run is also made with DIR/epochfs
#                (another build), interleaved, for a same-invocation ratio.
#   R (issue 12) every rank of a node: WORLD reader processes, one per rank
#                of a DistributedSampler world, each writing its own seed
#                line and reading its shard cold (THREADS/WORLD threads
#                each), the whole node's epoch timed; against one reader that
#                declares every rank (rank=0-W-1) and reads the merged order
#                with THREADS threads, and against the bound (CONC in flight).
#   C (issue 4)  a cache of half the dataset, three epochs with the seed:
#                backend bytes per epoch after the first / half the dataset.
#   L (issue 3)  listing: LIST_DIRS x LIST_PER empty-ish objects behind
#                LIST_LATENCY ms, HTTP (nginx autoindex) and S3 (s3rver,
#                ListObjectsV2): time from starting epochfs until the mount is
#                there (the daemon lists before it mounts), against
#                tools/list_client.py listing the same straight from the
#                server (the server's own time) and through the proxy; and
#                the remount of the same cache (the index's snapshot).
# CASES (default "A B C L"; R on request) picks the cases: CASES=L runs the
# listing alone, CASES=R the ranks.
#
# Every cold run gets a cache directory of its own, kept until the end: on
# ext4 without a journal, creating thousands of files right after deleting
# thousands (rm -rf of the previous cache) costs ~1 ms of CPU per create in
# the kernel (find_inode_bit/recently_deleted), which halved the cold rates.
# So the run needs about 3 x RUNS x #LATENCIES x the dataset (~8 GB with the
# defaults) under CACHE_ROOT (default: the temp dir in /tmp); with
# CACHE_ROOT=/dev/shm KEEP_CACHES=0 the caches are in RAM instead.
#
# Every server listens on 127.0.0.1 and is stopped by the trap.  C drops the
# kernel page cache between epochs (epochfs-read --drop-caches; needs root),
# since the page cache would otherwise hold the whole dataset.
set -eu
B=${B:-.}
B=$(cd "$B" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$SRC/tests/serve-lib.sh"
RUNS=${RUNS:-5}
C_RUNS=${C_RUNS:-3}
THREADS=${THREADS:-16}
CONC=${CONC:-64}
CLASSES=${CLASSES:-20}
PER=${PER:-100}
SIZE=${SIZE:-110K}
LATENCIES=${LATENCIES:-2 10}
C_LATENCY=${C_LATENCY:-2}
CASES=${CASES:-A B C L}
LIST_RUNS=${LIST_RUNS:-5}
LIST_DIRS=${LIST_DIRS:-100}
LIST_PER=${LIST_PER:-200}
LIST_LATENCY=${LIST_LATENCY:-20}
NPM_DIR=${EPOCHFS_NPM_DIR:-$HOME/.cache/epochfs-npm}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
D=$(mktemp -d /tmp/epochfs-bench-remote.XXXXXX)
if [ -n "${CACHE_ROOT:-}" ]; then CR=$(mktemp -d "$CACHE_ROOT/epochfs-bench-caches.XXXXXX"); else CR=$D/caches; fi
mkdir -p "$CR"
NC=0
# KEEP_CACHES=0 deletes each cache when the next one is made (fine on tmpfs).
newcache() {
	[ "${KEEP_CACHES:-1}" = 0 ] && [ -n "${CACHE:-}" ] && rm -rf "$CACHE"
	NC=$((NC + 1)); CACHE=$CR/cache$NC
}
PID=
SPIDS=()
cleanup() {
	mountpoint -q "$D/mnt" 2>/dev/null && { fusermount3 -u "$D/mnt" || fusermount3 -uz "$D/mnt"; }
	[ -n "$PID" ] && wait "$PID" 2>/dev/null || true
	for p in "${SPIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${SPIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$D" "$CR"
}
trap cleanup EXIT INT TERM

say() { echo "== $*" >&2; }
has() { case " $CASES " in *" $1 "*) return 0 ;; esac; return 1; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# "files/s errors" from a line of epochfs-read or bench_client.py
rate() { sed -n 's/.*s, \([0-9.]*\) files\/s, .* \([0-9][0-9]*\) errors$/\1 \2/p'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", (b > 0) ? a / b : 0}'; }
stat_field() { # NAME: a number from MNT/.epochfs/stats
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$D/mnt/.epochfs/stats" "$1"
}
# mount_http PORT CACHEDIR CACHESIZE: mount $D/mnt in the background, wait for it.
mount_http() {
	mkdir -p "$D/mnt"
	"${DAEMON:-$B/epochfs}" "http://127.0.0.1:$1/" "$D/mnt" -f --cache-dir "$2" --cache-size "$3" \
		--backend-concurrency "$CONC" 2>>"$D/daemon.log" &
	PID=$!
	until [ -r "$D/mnt/.epochfs/stats" ]; do
		sleep 0.05
		kill -0 "$PID" || { echo "epochfs died: $(tail -5 "$D/daemon.log")" >&2; return 1; }
	done
}
TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
umount_http() { fusermount3 -u "$D/mnt"; wait "$PID" || true; PID=; }
# shuffled LIST SEED: the dataset's paths in a random order (for the client)
shuffled() { python3 -c 'import random,sys; l=open(sys.argv[1]).read().split("\n")[:-1]; random.Random(int(sys.argv[2])).shuffle(l); print("\n".join(l))' "$@"; }

[ -x "$B/epochfs" ] && [ -x "$B/epochfs-read" ] && [ -x "$B/epochfs-gendata" ] || { echo "build first (make)" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "nginx is not installed" >&2; exit 1; }
for c in $CASES; do case $c in A|B|C|L|R) ;; *) echo "CASES: unknown case $c (A B C L R)" >&2; exit 2 ;; esac; done
EPOCHS=0; { has A || has B || has C || has R; } && EPOCHS=1
WORLD=${WORLD:-8}

mkdir -p "$D/src"
if [ $EPOCHS = 1 ]; then
	say "dataset: $CLASSES x $PER files of $SIZE"
	"$B/epochfs-gendata" --classes "$CLASSES" --per-class "$PER" --size "$SIZE" "$D/src" >&2
fi
(cd "$D/src" && find . -type f -printf '%P\n' | LC_ALL=C sort) >"$D/list"
NFILES=$(wc -l <"$D/list")
DBYTES=$(find "$D/src" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
if has L; then
	say "listing dataset: $LIST_DIRS folders x $LIST_PER objects"
	python3 - "$D/ltree" "$LIST_DIRS" "$LIST_PER" <<'EOF'
import os, sys
root, dirs, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for d in range(dirs):
    os.makedirs(os.path.join(root, "d%03d" % d))
    for f in range(per):
        with open(os.path.join(root, "d%03d" % d, "f%06d.bin" % (d * per + f)), "w") as fh:
            fh.write("x")
EOF
	LFILES=$((LIST_DIRS * LIST_PER))
fi

NGINX_PORT=$(free_port)
LNGINX_PORT=$(free_port)
nginx_conf "$D/nginx" 2 "$NGINX_PORT" "$D/src" "$LNGINX_PORT" "$D/ltree"
"$NGINX" -p "$D/nginx" -c "$D/nginx/nginx.conf" -g 'daemon off;' 2>"$D/nginx/logs/stderr" &
SPIDS+=($!)
wait_port "$NGINX_PORT"
declare -A PORT
LATS=
{ has A || has B || has R; } && LATS="$LATENCIES"
has C && LATS="$LATS $C_LATENCY"
for lat in $LATS; do
	[ -n "${PORT[$lat]:-}" ] && continue
	PORT[$lat]=$(free_port)
	python3 "$SRC/tests/faultproxy.py" --listen "${PORT[$lat]}" --target "127.0.0.1:$NGINX_PORT" \
		--latency-ms "$lat" 2>"$D/proxy-$lat.log" &
	SPIDS+=($!)
	wait_port "${PORT[$lat]}"
done

A_ROWS= ; B_ROWS= ; C_ROWS= ; BASE_ROWS= ; L_ROWS=
for lat in $( { has A || has B; } && echo "$LATENCIES"); do
	port=${PORT[$lat]}
	: >"$D/a-cold"; : >"$D/a-warm"; : >"$D/a-remount"; : >"$D/a-client"
	: >"$D/b-seed"; : >"$D/b-noseed"; : >"$D/b-bound"; : >"$D/b-late"; : >"$D/b-cpu"; : >"$D/b-base"; : >"$D/b-basecpu"
	for r in $(seq "$RUNS"); do
		say "latency $lat ms, run $r/$RUNS"
		# A: cold (a new cache, epochfs-read's own shuffle), warm (the page
		# cache of the same mount), warm after a remount (the SSD cache).
		if has A; then
			newcache
			mount_http "$port" "$CACHE" 4G
			"$B/epochfs-read" --threads "$THREADS" --seed "$r" "$D/mnt" | tee -a "$D/log" | rate >>"$D/a-cold"
			"$B/epochfs-read" --threads "$THREADS" --seed "$((r + 100))" "$D/mnt" | tee -a "$D/log" | rate >>"$D/a-warm"
			umount_http
			mount_http "$port" "$CACHE" 4G
			"$B/epochfs-read" --threads "$THREADS" --seed "$((r + 200))" "$D/mnt" | tee -a "$D/log" | rate >>"$D/a-remount"
			umount_http
			shuffled "$D/list" "$r" >"$D/shuf"
			python3 "$SRC/tools/bench_client.py" --url "http://127.0.0.1:$port/" --list "$D/shuf" \
				--threads "$THREADS" | tee -a "$D/log" | rate >>"$D/a-client"
		fi

		# B: the seed written, read in its order (the order is saved for
		# the run without the seed).
		has B || continue
		newcache
		mount_http "$port" "$CACHE" 4G
		echo "seed=$r sampler=randperm" >"$D/mnt/.epochfs/seed"
		cp "$D/mnt/.epochfs/order" "$D/order"
		c0=$(cpu_ticks)
		"$B/epochfs-read" --threads "$THREADS" --order "$D/mnt/.epochfs/order" "$D/mnt" | tee -a "$D/log" | rate >>"$D/b-seed"
		echo "$c0 $(cpu_ticks)" | awk -v t="$TCK" -v n="$NFILES" '{print ($2-$1)/t*1000/n}' >>"$D/b-cpu"
		stat_field prefetch_late >>"$D/b-late"
		umount_http
		[ "$(wc -l <"$D/order")" = "$NFILES" ] || echo "WARNING: the planned order has $(wc -l <"$D/order") paths, not $NFILES" >&2
		if [ -n "${BASE:-}" ]; then
			# ... the same with the daemon of another build, interleaved
			newcache
			DAEMON=$BASE/epochfs mount_http "$port" "$CACHE" 4G
			echo "seed=$r sampler=randperm" >"$D/mnt/.epochfs/seed"
			c0=$(cpu_ticks)
			"$B/epochfs-read" --threads "$THREADS" --order "$D/mnt/.epochfs/order" "$D/mnt" | tee -a "$D/log" | rate >>"$D/b-base"
			echo "$c0 $(cpu_ticks)" | awk -v t="$TCK" -v n="$NFILES" '{print ($2-$1)/t*1000/n}' >>"$D/b-basecpu"
			umount_http
		fi
		# ... the same order, fresh cache, no seed
		newcache
		mount_http "$port" "$CACHE" 4G
		"$B/epochfs-read" --threads "$THREADS" --order "$D/order" "$D/mnt" | tee -a "$D/log" | rate >>"$D/b-noseed"
		umount_http
		# ... the remote bound: every file, CONC requests in flight
		python3 "$SRC/tools/bench_client.py" --url "http://127.0.0.1:$port/" --list "$D/order" \
			--threads "$CONC" | tee -a "$D/log" | rate >>"$D/b-bound"
	done
	errs=$(cat "$D"/a-* "$D"/b-seed "$D"/b-noseed "$D"/b-bound | awk '{s+=$2} END {print s+0}')
	ac=$(cut -d' ' -f1 "$D/a-cold" | median); aw=$(cut -d' ' -f1 "$D/a-warm" | median)
	ar=$(cut -d' ' -f1 "$D/a-remount" | median); acl=$(cut -d' ' -f1 "$D/a-client" | median)
	has A && A_ROWS+="| $lat ms | $ac | $aw | $ar | $acl | $(ratio "$ac" "$acl") | $(ratio "$aw" "$acl") | $(ratio "$ar" "$acl") | $errs |"$'\n'
	bs=$(cut -d' ' -f1 "$D/b-seed" | median); bn=$(cut -d' ' -f1 "$D/b-noseed" | median)
	bb=$(cut -d' ' -f1 "$D/b-bound" | median); bl=$(median <"$D/b-late")
	bc=$(median <"$D/b-cpu")
	has B && B_ROWS+="| $lat ms | $bs | $bn | $bb | $(ratio "$bs" "$bb") | $(ratio "$bn" "$bb") | $(ratio "$bs" "$bn") | $bl | $(printf %.2f "$bc") |"$'\n'
	if has B && [ -n "${BASE:-}" ]; then
		ba=$(cut -d' ' -f1 "$D/b-base" | median); bac=$(median <"$D/b-basecpu")
		BASE_ROWS+="| $lat ms | $bs | $ba | $bb | $(ratio "$bs" "$bb") | $(ratio "$ba" "$bb") | $(printf %.2f "$bc") | $(printf %.2f "$bac") |"$'\n'
	fi
done

# R: WORLD ranks on one mount, each its own process and seed line.
R_ROWS=
now_s() { date +%s.%N; }
for lat in $(has R && echo "$LATENCIES"); do
	port=${PORT[$lat]}
	: >"$D/r-ranks"; : >"$D/r-one"; : >"$D/r-bound"; : >"$D/r-late"; : >"$D/r-errs"
	for r in $(seq "$RUNS"); do
		say "ranks: latency $lat ms, run $r/$RUNS"
		newcache
		mount_http "$port" "$CACHE" 4G
		for k in $(seq 0 $((WORLD - 1))); do
			echo "seed=$r sampler=distributed world=$WORLD rank=$k" >"$D/mnt/.epochfs/seed"
		done
		cp "$D/mnt/.epochfs/order" "$D/rorder"
		t0=$(now_s)
		rpids=()
		for k in $(seq 0 $((WORLD - 1))); do
			awk -v w="$WORLD" -v k="$k" '(NR - 1) % w == k' "$D/rorder" >"$D/rshard$k"
			"$B/epochfs-read" --threads $(( (THREADS + WORLD - 1) / WORLD )) --order "$D/rshard$k" "$D/mnt" \
				>"$D/rread$k" 2>&1 &
			rpids+=($!)
		done
		for p in "${rpids[@]}"; do wait "$p" || echo 1 >>"$D/r-errs"; done
		t1=$(now_s)
		cat "$D"/rread* >>"$D/log"
		awk -v n="$(wc -l <"$D/rorder")" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f\n", n / (b - a)}' >>"$D/r-ranks"
		cat "$D"/rread* | rate | awk '{print $2}' >>"$D/r-errs"
		stat_field prefetch_late >>"$D/r-late"
		umount_http
		# one reader declaring every rank, reading the merged order
		newcache
		mount_http "$port" "$CACHE" 4G
		echo "seed=$r sampler=distributed world=$WORLD rank=0-$((WORLD - 1))" >"$D/mnt/.epochfs/seed"
		"$B/epochfs-read" --threads "$THREADS" --order "$D/mnt/.epochfs/order" "$D/mnt" | tee -a "$D/log" | rate >>"$D/r-one"
		umount_http
		python3 "$SRC/tools/bench_client.py" --url "http://127.0.0.1:$port/" --list "$D/rorder" \
			--threads "$CONC" | tee -a "$D/log" | rate >>"$D/r-bound"
	done
	rk=$(median <"$D/r-ranks"); ro=$(cut -d' ' -f1 "$D/r-one" | median)
	rb=$(cut -d' ' -f1 "$D/r-bound" | median); rl=$(median <"$D/r-late")
	re=$( { cat "$D/r-errs"; cut -d' ' -f2 "$D/r-one" "$D/r-bound"; } | awk '{s+=$1} END {print s+0}')
	R_ROWS+="| $lat ms | $rk | $ro | $rb | $(ratio "$rk" "$rb") | $(ratio "$ro" "$rb") | $(ratio "$rk" "$ro") | $rl | $re |"$'\n'
done

# C: a cache of half the dataset, three epochs with the seed.  Two ways to
# size it (C_SIZES):
#  data       half the dataset as the cache stores it (data blocks and the
#             per-file overhead of half the files), plus the index and store
#             directories (which hold a record for every file whatever is
#             cached) and the 1% headroom: --cache-size counts all of these
#             (docs/architecture.md, Accounting), so this cache holds half
#             the dataset and the floor is half the dataset's bytes per later
#             epoch (docs/decisions.md).
#  footprint  half of what the whole dataset occupies in the cache, index
#             included (the first version of this benchmark): it holds about
#             2% fewer files, the index and headroom not being halved.
: >"$D/cstats"
if has C; then
say "cache footprint of the whole dataset"
port=${PORT[$C_LATENCY]}
newcache
mount_http "$port" "$CACHE" 4G
"$B/epochfs-read" --threads "$THREADS" "$D/mnt" >>"$D/log" || true
FOOT=$(stat_field cache_bytes)
FOOT_DATA=$(stat_field cache_data_bytes)
FOOT_META=$(stat_field cache_meta_bytes)
umount_http
HALF_DATA=$((DBYTES / 2))
# size such that size - headroom(size) = half the data + index and directories
DATA_CACHE=$(awk -v x=$((FOOT_DATA / 2 + FOOT_META)) 'BEGIN {
	c = x * 100 / 99; h = c / 100
	if (h < 65536) c = x + 65536; else if (h > 67108864) c = x + 67108864
	printf "%d", c + 1 }')
declare -A CSIZE=([data]=$DATA_CACHE [footprint]=$((FOOT / 2)))
C_ROWS=
for def in ${C_SIZES:-data footprint}; do
	size=${CSIZE[$def]}
	for k in c1 c2 ctot cadj cheld cref cevpl cnsp cahead cafter; do : >"$D/$def-$k"; done
	for r in $(seq "$C_RUNS"); do
		say "half cache ($def: $size bytes), 3 epochs with the seed, run $r/$C_RUNS"
		newcache
		mount_http "$port" "$CACHE" "$size"
		b0=$(stat_field backend_bytes) # the listing
		echo "seed=$r sampler=randperm" >"$D/mnt/.epochfs/seed"
		{ "$B/epochfs-read" --threads "$THREADS" --epochs 3 --drop-caches --order "$D/mnt/.epochfs/order" "$D/mnt" \
			|| echo "WARNING: epochfs-read failed (see above)"; } | tee -a "$D/log" >&2
		python3 - "$D" "$b0" "$HALF_DATA" "$DBYTES" "$def" "$size" >>"$D/cstats" <<'EOF'
import json, sys
d, b0, half, full, name, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
s = json.load(open(d + "/mnt/.epochfs/stats"))
ep = {e["epoch"]: e for e in s["epochs"]}
bb = lambda i: ep[i]["backend_bytes"] if i in ep else 0
later = [ep[i] for i in (1, 2) if i in ep]
print(json.dumps({"size": name, "cache_size": size, "epochs": s["epochs"],
                  "backend_bytes": s["backend_bytes"], "listing": b0,
                  "prefetch_issued": s["prefetch_issued"], "prefetch_used": s["prefetch_used"],
                  "prefetch_late": s["prefetch_late"], "prefetch_wasted": s["prefetch_wasted"],
                  "evictions": s["evictions"], "evictions_for_index": s["evictions_for_index"],
                  "not_admitted": s["not_admitted"], "cache_bytes": s["cache_bytes"],
                  "cache_objects": s["cache_objects"]}))
n = max(len(later), 1)
val = {
    "c1": bb(1) / half, "c2": bb(2) / half,
    # fetched while epochs 0-2 were read, beyond one dataset, per later
    # epoch (epoch 0's entry holds its lookahead into epoch 1)
    "ctot": (bb(0) + bb(1) + bb(2) - full) / 2 / half,
    # the bytes each later epoch fetched for its own reads, over the floor
    # for what the cache really held when it began (dataset - cached bytes)
    "cadj": sum((e["fetched_bytes"] - e.get("prefetched_ahead_bytes", 0)) /
                (full - e["cached_bytes_at_start"]) for e in later) / n,
    "cheld": sum(e["cached_objects_at_start"] for e in later) / n,
    "cref": sum(e["refetched_bytes"] for e in later) / n / half,
    "cevpl": sum(e["evicted_planned"] for e in later) / n,
    "cnsp": sum(e["not_stored_prefetch"] for e in later) / n,
    "cahead": sum(e.get("prefetched_ahead_bytes", 0) for e in later) / n / half,
    "cafter": bb(3) / half,
}
for k, v in val.items():
    with open("%s/%s-%s" % (d, name, k), "a") as f:
        f.write("%.4f\n" % v)
EOF
		umount_http
	done
	m() { median <"$D/$def-$1"; }
	C_ROWS+="| $def | $size | $(printf %.0f "$(m cheld)") | $(m c1) | $(m c2) | $(m ctot) | $(m cadj) | $(m cref) | $(m cevpl) | $(m cnsp) | $(m cahead) | $(m cafter) |"$'\n'
done
fi

# L: the listing.  epochfs lists the whole namespace before it mounts, so the
# time from its start until MNT/.epochfs/stats can be read is the time until
# the namespace is listed and usable (plus process start, the cache index,
# S3's one-key probe and the FUSE mount; the daemon's own "listed ... in X s"
# is reported apart).  The same listing by tools/list_client.py straight from
# the server (no proxy, no latency) is the server's own time; through the
# proxy, the server plus the latency.  Each proxy logs the server's time per
# request (--timing-log): for the sequential S3 listing, the listing's time
# minus the sum of those is what the client (epochfs or the plain one), the
# proxy and the added latency took.  Two proxies per backend: the default one
# (as in the earlier figures) and one with --nodelay, where Nagle's algorithm
# does not hold small response writes until the client's delayed ACK.
lmount() { # SOURCE CACHEDIR [ARGS...]: mount, set SECS (start to mounted)
	local src=$1 cache=$2 t0
	shift 2
	mkdir -p "$D/mnt"
	t0=$EPOCHREALTIME
	"$B/epochfs" "$src" "$D/mnt" -f --cache-dir "$cache" --cache-size 1G "$@" 2>"$D/lmount.log" &
	PID=$!
	until [ -r "$D/mnt/.epochfs/stats" ]; do
		kill -0 "$PID" 2>/dev/null || { echo "epochfs died: $(tail -5 "$D/lmount.log")" >&2; return 1; }
		sleep 0.01
	done
	SECS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.3f", b - a}')
}
lumount() { umount_http; cat "$D/lmount.log" >>"$D/daemon.log"; }
# srvtime TIMING_LOG: seconds the server spent on the logged requests, the
# S3 probe (max-keys=1) left out
srvtime() { awk '$2 !~ /max-keys=1&/ {s += $4} END {printf "%.3f", s / 1000}' "$1"; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f\n", a - b}'; }
# lcase NAME PROXY SOURCE [ARGS...]: a cold mount (new cache) and a remount
# of it; appends to $D/l-NAME-*.
lcase() {
	local name=$1 tl=$D/timing-$2 src=$3 t0 n ls
	shift 3
	newcache
	: >"$tl"
	lmount "$src" "$CACHE" "$@"
	echo "$SECS" >>"$D/l-$name-ready"
	ls=$(sed -n 's/.*: listed .* in \([0-9.]*\) s$/\1/p' "$D/lmount.log")
	echo "$ls" >>"$D/l-$name-list"
	minus "$ls" "$(srvtime "$tl")" >>"$D/l-$name-beyond"
	stat_field backend_requests >>"$D/l-$name-req"
	t0=$EPOCHREALTIME
	n=$(find "$D/mnt" -path "$D/mnt/.epochfs" -prune -o -type f -print | wc -l)
	awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.3f\n", b - a}' >>"$D/l-$name-find"
	[ "$n" = "$LFILES" ] || echo "WARNING: $name: the mount shows $n files, not $LFILES" >&2
	echo "$name: mounted in $SECS s, $(grep -o 'listed .*' "$D/lmount.log"), server $(srvtime "$tl") s, find saw $n files" >>"$D/log"
	lumount
	lmount "$src" "$CACHE" "$@"
	echo "$SECS" >>"$D/l-$name-remount"
	stat_field backend_requests >>"$D/l-$name-rereq"
	grep -q "using the snapshot" "$D/lmount.log" || echo "WARNING: $name: the remount listed again" >&2
	echo "$name: remounted in $SECS s: $(grep -o 'using the snapshot.*' "$D/lmount.log")" >>"$D/log"
	lumount
}
# lclient NAME PROXY|- ARGS...: one tools/list_client.py run; appends its
# seconds (and, through a proxy, the seconds beyond the server's) to $D/l-NAME*
lclient() {
	local name=$1 tl=$D/timing-$2 out s
	shift 2
	: >"$tl"
	out=$(python3 "$SRC/tools/list_client.py" "$@") || { echo "WARNING: list_client $*: failed" >&2; return 0; }
	echo "$name: $out, server $(srvtime "$tl") s" >>"$D/log"
	case $out in *" $LFILES keys,"*) ;; *) echo "WARNING: list_client $*: $out (want $LFILES keys)" >&2 ;; esac
	s=$(echo "$out" | sed -n 's/.* \([0-9.]*\) s$/\1/p')
	echo "$s" >>"$D/l-$name"
	[ "$tl" = "$D/timing--" ] || minus "$s" "$(srvtime "$tl")" >>"$D/l-$name-beyond"
}
lmed() { if [ -s "$D/l-$1" ]; then median <"$D/l-$1"; else echo -; fi; }
declare -A LPORT
# lproxy NAME TARGET_PORT [ARGS...]: a proxy adding LIST_LATENCY; LPORT[NAME]
lproxy() {
	local name=$1 target=$2
	shift 2
	LPORT[$name]=$(free_port)
	python3 "$SRC/tests/faultproxy.py" --listen "${LPORT[$name]}" --target "127.0.0.1:$target" \
		--latency-ms "$LIST_LATENCY" --timing-log "$D/timing-$name" "$@" 2>"$D/proxy-$name.log" &
	SPIDS+=($!)
	wait_port "${LPORT[$name]}"
}
if has L; then
	lproxy http-default "$LNGINX_PORT"
	lproxy http-nodelay "$LNGINX_PORT" --nodelay
	# s3rver from npm, as tests/remote-lib.sh installs it; without it the
	# S3 rows are skipped.
	S3RVER=$NPM_DIR/node_modules/.bin/s3rver
	if [ ! -x "$S3RVER" ] && command -v npm >/dev/null; then
		mkdir -p "$NPM_DIR"
		npm install --no-save --no-audit --no-fund --prefix "$NPM_DIR" s3rver@3 >"$D/npm.log" 2>&1 || true
	fi
	S3OK=0
	if [ -x "$S3RVER" ] && command -v node >/dev/null; then
		S3_PORT=$(free_port)
		mkdir -p "$D/s3data"
		node --openssl-legacy-provider "$S3RVER" -d "$D/s3data" -a 127.0.0.1 -p "$S3_PORT" -s \
			--no-vhost-buckets >"$D/s3rver.log" 2>&1 &
		S3PID=$!
		SPIDS+=($!)
		wait_port "$S3_PORT"
		export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
		unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
		S3CURL=(curl -sSf --no-progress-meter --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER
			-H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
		"${S3CURL[@]}" -X PUT "http://127.0.0.1:$S3_PORT/lbkt" >/dev/null
		say "uploading $LFILES objects to s3rver"
		(cd "$D/ltree" && find . -type f -printf '%P\n') |
			awk -v u="http://127.0.0.1:$S3_PORT/lbkt/ds/" -v r="$D/ltree/" \
				'{printf "upload-file = \"%s%s\"\nurl = \"%s%s\"\noutput = \"/dev/null\"\n", r, $0, u, $0}' >"$D/upload.cfg"
		"${S3CURL[@]}" --parallel --parallel-max 16 -K "$D/upload.cfg"
		lproxy s3-default "$S3_PORT" --verify-sigv4 S3RVER:S3RVER
		lproxy s3-nodelay "$S3_PORT" --verify-sigv4 S3RVER:S3RVER --nodelay
		S3OK=1
	else
		say "S3 listing skipped: no s3rver (npm install s3rver@3 into $NPM_DIR) or no node"
	fi
	for r in $(seq "$LIST_RUNS"); do
		say "listing, run $r/$LIST_RUNS"
		if [ $S3OK = 1 ]; then
			# ... and the CPU time s3rver (one node process) spends on it
			c0=$(awk '{print $14 + $15}' "/proc/$S3PID/stat")
			lclient s3-direct - s3 --endpoint "http://127.0.0.1:$S3_PORT" --bucket lbkt --prefix ds
			awk -v c0="$c0" -v t="$TCK" '{printf "%.2f\n", ($14 + $15 - c0) / t}' "/proc/$S3PID/stat" >>"$D/l-s3-cpu"
			for m in default nodelay; do
				ep=http://127.0.0.1:${LPORT[s3-$m]}
				lclient "s3-$m-client" "s3-$m" s3 --endpoint "$ep" --bucket lbkt --prefix ds
				[ $m = nodelay ] && lclient "s3-$m-byfolder" "s3-$m" s3 --endpoint "$ep" --bucket lbkt \
					--prefix ds --by-prefix --threads 8
				lcase "s3-$m" "s3-$m" s3://lbkt/ds --s3-endpoint "$ep"
			done
		fi
		lclient http-direct - http --url "http://127.0.0.1:$LNGINX_PORT/" --threads 8
		for m in default nodelay; do
			lclient "http-$m-client" "http-$m" http --url "http://127.0.0.1:${LPORT[http-$m]}/" --threads 8
			lcase "http-$m" "http-$m" "http://127.0.0.1:${LPORT[http-$m]}/"
		done
	done
	for b in s3 http; do
		[ $b = s3 ] && [ $S3OK = 0 ] && continue
		for m in default nodelay; do
			if [ $b = s3 ]; then
				what="S3 (s3rver), ListObjectsV2"
				bc=$(lmed "$b-$m-client-beyond"); be=$(lmed "$b-$m-beyond")
			else
				# 8 requests overlap: the server's times do not add up
				what="HTTP (nginx), JSON autoindex"; bc=-; be=-
			fi
			[ $m = default ] && px=default || px=--nodelay
			L_ROWS+="| $what | $px | $(lmed $b-direct) | $(lmed $b-cpu) | $(lmed "$b-$m-client") | $bc | $(lmed "$b-$m-byfolder") | **$(lmed "$b-$m-ready")** | $(lmed "$b-$m-list") | $be | $(lmed "$b-$m-find") | $(lmed "$b-$m-req") | $(lmed "$b-$m-remount") | $(lmed "$b-$m-rereq") |"$'\n'
		done
	done
fi

if [ -n "${KEEP_LOG:-}" ]; then cp "$D/log" "$KEEP_LOG"; cp "$D/cstats" "$KEEP_LOG.cstats"; cp "$D/daemon.log" "$KEEP_LOG.daemon"; fi
if [ $EPOCHS = 1 ]; then cat <<EOT

Dataset: $NFILES files of $SIZE ($DBYTES bytes) in $CLASSES classes, served by nginx
(JSON autoindex) behind tests/faultproxy.py; medians of $RUNS runs (C: $C_RUNS).
epochfs: --cache-size 4G --backend-concurrency $CONC; caches in $(df --output=fstype "$CR" | tail -1) ($CR); $(nproc) CPUs.

EOT
fi
if has A; then cat <<EOT
### A. Cold and warm epochs, files/s, $THREADS reader threads / $THREADS client requests in flight

| added latency | epochfs cold | epochfs warm (page cache) | epochfs warm (after remount) | client, $THREADS in flight | cold / client | warm / client | remount / client | errors |
|---|---|---|---|---|---|---|---|---|
${A_ROWS}
EOT
fi
if has B; then cat <<EOT
### B. Cold epoch, files/s: the seed written against no seed, against the remote bound ($CONC in flight)

| added latency | epochfs, seed | epochfs, same order, no seed | client, $CONC in flight (bound) | seed / bound | no seed / bound | seed / no seed | prefetch_late (of $NFILES) | daemon CPU per file, seed (ms) |
|---|---|---|---|---|---|---|---|---|
${B_ROWS}
$( [ -n "${BASE:-}" ] && printf '%s\n' "The seeded cold epoch with this build and with BASE=$BASE, interleaved (a new cache each):" "" \
	"| added latency | seed, this build | seed, BASE | bound | this build / bound | BASE / bound | daemon CPU per file, this build (ms) | same, BASE (ms) |" \
	"|---|---|---|---|---|---|---|---|" "${BASE_ROWS}" "" )
EOT
fi
if has R; then cat <<EOT
### R. Every rank of a node: $WORLD reader processes (one per rank of world $WORLD), cold, files/s

Each process writes its own seed line (seed=RUN sampler=distributed world=$WORLD rank=K)
and reads its shard (every ${WORLD}th path of the merged .epochfs/order from K) with
$(( (THREADS + WORLD - 1) / WORLD )) threads; the node's epoch is timed from the first start to the last
finish.  One reader: rank=0-$((WORLD - 1)) in one line, the merged order read with $THREADS threads.

| added latency | $WORLD ranks, one process each | one reader, every rank declared | client, $CONC in flight (bound) | ranks / bound | one reader / bound | ranks / one reader | prefetch_late (ranks) | errors |
|---|---|---|---|---|---|---|---|---|
${R_ROWS}
EOT
fi
if has C; then cat <<EOT
### C. Cache of half the dataset, 3 epochs with the seed, $C_LATENCY ms

Whole dataset in the cache: $FOOT bytes ($FOOT_DATA data, $FOOT_META index and directories).
Ratios to half the dataset ($HALF_DATA bytes) unless said; target <= 1.05.  Per-epoch
columns: medians over the runs of the mean of epochs 1 and 2.

| cache size | bytes | files cached at an epoch's start | epoch 1 / half | epoch 2 / half | epochs 0-2 beyond one dataset, per later epoch | fetched for the epoch / (dataset - cached at its start) | refetched / half | evicted while planned (files) | prefetches not stored | prefetched for the next epoch / half | fetched after the reader finished / half |
|---|---|---|---|---|---|---|---|---|---|---|---|
${C_ROWS}
EOT
fi
if has L; then cat <<EOT
### L. Listing $LFILES objects in $LIST_DIRS folders, $LIST_LATENCY ms added per request, seconds (medians of $LIST_RUNS)

Plain client: tools/list_client.py (S3: pages in sequence on one connection;
HTTP: 8 directories in flight).  epochfs: a new cache, --cache-size 1G, and
a remount of that cache.  Requests: backend_requests after the mount.
"Beyond the server": the listing's time minus the server's own time for its
requests (logged by the proxy), per run: the latency, the proxy and the client.

| backend | proxy | server alone (plain client, no proxy) | server's CPU time for it | plain client through the proxy | its time beyond the server | plain client by folder, 8 in flight | **epochfs: start to mounted** | epochfs listing (daemon log) | its time beyond the server | then find of every file | requests | remount: start to mounted | remount requests |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
${L_ROWS}
EOT
fi
