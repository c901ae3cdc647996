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
#   C (issue 4)  a cache of half the dataset, three epochs with the seed:
#                backend bytes per epoch after the first / half the dataset.
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
RUNS=${RUNS:-5}
C_RUNS=${C_RUNS:-3}
THREADS=${THREADS:-16}
CONC=${CONC:-64}
CLASSES=${CLASSES:-20}
PER=${PER:-100}
SIZE=${SIZE:-110K}
LATENCIES=${LATENCIES:-2 10}
C_LATENCY=${C_LATENCY:-2}
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
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# "files/s errors" from a line of epochfs-read or bench_client.py
rate() { sed -n 's/.*s, \([0-9.]*\) files\/s, .* \([0-9][0-9]*\) errors$/\1 \2/p'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", (b > 0) ? a / b : 0}'; }
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
	for _ in $(seq 100); do
		python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing listens on 127.0.0.1:$1" >&2
	return 1
}
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

say "dataset: $CLASSES x $PER files of $SIZE"
"$B/epochfs-gendata" --classes "$CLASSES" --per-class "$PER" --size "$SIZE" "$D/src" >&2
(cd "$D/src" && find . -type f -printf '%P\n' | LC_ALL=C sort) >"$D/list"
NFILES=$(wc -l <"$D/list")
DBYTES=$(find "$D/src" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')

NGINX_PORT=$(free_port)
mkdir -p "$D/nginx/logs" "$D/nginx/tmp"
cat >"$D/nginx/nginx.conf" <<EOF
worker_processes 2;
$( [ "$(id -u)" = 0 ] && echo "user root;" )
pid $D/nginx/nginx.pid;
error_log $D/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $D/nginx/tmp/body;
	proxy_temp_path $D/nginx/tmp/proxy;
	fastcgi_temp_path $D/nginx/tmp/fastcgi;
	uwsgi_temp_path $D/nginx/tmp/uwsgi;
	scgi_temp_path $D/nginx/tmp/scgi;
	keepalive_requests 100000;
	server {
		listen 127.0.0.1:$NGINX_PORT;
		root $D/src;
		location / { autoindex on; autoindex_format json; }
	}
}
EOF
"$NGINX" -p "$D/nginx" -c "$D/nginx/nginx.conf" -g 'daemon off;' 2>"$D/nginx/logs/stderr" &
SPIDS+=($!)
wait_port "$NGINX_PORT"
declare -A PORT
for lat in $LATENCIES $C_LATENCY; do
	[ -n "${PORT[$lat]:-}" ] && continue
	PORT[$lat]=$(free_port)
	python3 "$SRC/tests/faultproxy.py" --listen "${PORT[$lat]}" --target "127.0.0.1:$NGINX_PORT" \
		--latency-ms "$lat" 2>"$D/proxy-$lat.log" &
	SPIDS+=($!)
	wait_port "${PORT[$lat]}"
done

A_ROWS= ; B_ROWS= ; C_ROWS= ; BASE_ROWS=
for lat in $LATENCIES; do
	port=${PORT[$lat]}
	: >"$D/a-cold"; : >"$D/a-warm"; : >"$D/a-remount"; : >"$D/a-client"
	: >"$D/b-seed"; : >"$D/b-noseed"; : >"$D/b-bound"; : >"$D/b-late"; : >"$D/b-cpu"; : >"$D/b-base"; : >"$D/b-basecpu"
	for r in $(seq "$RUNS"); do
		say "latency $lat ms, run $r/$RUNS"
		# A: cold (a new cache, epochfs-read's own shuffle), warm (the page
		# cache of the same mount), warm after a remount (the SSD cache).
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

		# B: the seed written, read in its order (the order is saved for
		# the run without the seed).
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
	A_ROWS+="| $lat ms | $ac | $aw | $ar | $acl | $(ratio "$ac" "$acl") | $(ratio "$aw" "$acl") | $(ratio "$ar" "$acl") | $errs |"$'\n'
	bs=$(cut -d' ' -f1 "$D/b-seed" | median); bn=$(cut -d' ' -f1 "$D/b-noseed" | median)
	bb=$(cut -d' ' -f1 "$D/b-bound" | median); bl=$(median <"$D/b-late")
	bc=$(median <"$D/b-cpu")
	B_ROWS+="| $lat ms | $bs | $bn | $bb | $(ratio "$bs" "$bb") | $(ratio "$bn" "$bb") | $(ratio "$bs" "$bn") | $bl | $(printf %.2f "$bc") |"$'\n'
	if [ -n "${BASE:-}" ]; then
		ba=$(cut -d' ' -f1 "$D/b-base" | median); bac=$(median <"$D/b-basecpu")
		BASE_ROWS+="| $lat ms | $bs | $ba | $bb | $(ratio "$bs" "$bb") | $(ratio "$ba" "$bb") | $(printf %.2f "$bc") | $(printf %.2f "$bac") |"$'\n'
	fi
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

if [ -n "${KEEP_LOG:-}" ]; then cp "$D/log" "$KEEP_LOG"; cp "$D/cstats" "$KEEP_LOG.cstats"; cp "$D/daemon.log" "$KEEP_LOG.daemon"; fi
cat <<EOT

Dataset: $NFILES files of $SIZE ($DBYTES bytes) in $CLASSES classes, served by nginx
(JSON autoindex) behind tests/faultproxy.py; medians of $RUNS runs (C: $C_RUNS).
epochfs: --cache-size 4G --backend-concurrency $CONC; caches in $(df --output=fstype "$CR" | tail -1) ($CR); $(nproc) CPUs.

### A. Cold and warm epochs, files/s, $THREADS reader threads / $THREADS client requests in flight

| added latency | epochfs cold | epochfs warm (page cache) | epochfs warm (after remount) | client, $THREADS in flight | cold / client | warm / client | remount / client | errors |
|---|---|---|---|---|---|---|---|---|
${A_ROWS}
### B. Cold epoch, files/s: the seed written against no seed, against the remote bound ($CONC in flight)

| added latency | epochfs, seed | epochfs, same order, no seed | client, $CONC in flight (bound) | seed / bound | no seed / bound | seed / no seed | prefetch_late (of $NFILES) | daemon CPU per file, seed (ms) |
|---|---|---|---|---|---|---|---|---|
${B_ROWS}
$( [ -n "${BASE:-}" ] && printf '%s\n' "The seeded cold epoch with this build and with BASE=$BASE, interleaved (a new cache each):" "" \
	"| added latency | seed, this build | seed, BASE | bound | this build / bound | BASE / bound | daemon CPU per file, this build (ms) | same, BASE (ms) |" \
	"|---|---|---|---|---|---|---|---|" "${BASE_ROWS}" "" )
### C. Cache of half the dataset, 3 epochs with the seed, $C_LATENCY ms

Whole dataset in the cache: $FOOT bytes ($FOOT_DATA data, $FOOT_META index and directories).
Ratios to half the dataset ($HALF_DATA bytes) unless said; target <= 1.05.  Per-epoch
columns: medians over the runs of the mean of epochs 1 and 2.

| cache size | bytes | files cached at an epoch's start | epoch 1 / half | epoch 2 / half | epochs 0-2 beyond one dataset, per later epoch | fetched for the epoch / (dataset - cached at its start) | refetched / half | evicted while planned (files) | prefetches not stored | prefetched for the next epoch / half | fetched after the reader finished / half |
|---|---|---|---|---|---|---|---|---|---|---|---|
${C_ROWS}
EOT
