#!/bin/bash
# SPDX-License-Identifier: MIT
# make bench-peers (issue 13, docs/peers.md): NODES (4) epochfs daemons on
# this machine, one job of world NODES (one rank per node), each daemon with
# a cache of a third of the dataset (CACHE_DIV=3), the origin nginx behind
# tests/faultproxy.py adding LATENCY (10) ms per request; EPOCHS (3) epochs,
# with peers (--listen, --peers listing all the nodes, itself included, and
# --peer-secret-file) and without (the same daemons, no --listen/--peers).
# Per epoch: the origin's bytes over the dataset's size (from the daemons'
# stats and from nginx's access log), and files/s per node; and, to tell
# why, what the caches hold at each epoch's end by owner (the daemon's
# rendezvous hashing redone here over the peers file, each file's
# user.epochfs.cached) and the epoch's eviction and peer counters.  Medians over
# RUNS (3) runs in one invocation, the two setups interleaved in each run.
# Prints Markdown tables for docs/benchmarks-remote.md.  Not a test: nothing
# here asserts a figure, but a wrong byte, a failed read, a node that does not
# find itself in the peers list or an order that is not DistributedSampler's
# is reported (WARNING lines, and the exit status is 1).
#
# Each epoch E: every node, at once, writes
#     seed=RUN sampler=distributed world=NODES rank=R epoch=E
# to its .epochfs/seed (as epochfs.EpochfsSampler does at set_epoch), copies
# .epochfs/order (its rank's shard of epoch E) and reads it with epochfs-read
# --threads THREADS --verify (every byte compared with the dataset).  The
# epochs are separated by a barrier (all nodes finish epoch E before any
# starts E+1, as a DDP job's all-reduce keeps its ranks together), and the
# kernel page cache is dropped at each barrier (DROP=1; needs root): the
# mounts' page caches would otherwise be a second, unbounded cache.  At the
# end the saved orders are compared with torch's DistributedSampler when
# /usr/bin/python3 has torch (else: the NODES shards of an epoch must be a
# permutation of the manifest).
#
# Dataset: epochfs-gendata --classes CLASSES (20) --per-class PER (100)
# --size SIZE (100K): 2,000 files of 50 to 150 KiB, about 205 MB.  QUICK=1:
# 400 files, one run.  Cache size: (dataset bytes + 4 KiB a file) / CACHE_DIV
# + 2 MiB for the index (tests/it-peers.sh's rule for its 40%).
# Other knobs: CONC (--backend-concurrency, 64), SEED0 (0: run r uses seed
# SEED0+r), MODES ("peers nopeers"), CACHE_ROOT (where the caches go; each
# run's caches are new directories, deleted at the end), KEEP=DIR (keeps the
# daemons' logs, every stats snapshot and the per-run lines).
# Everything started here is stopped by the trap: the readers, each mount
# (fusermount3 -u), the daemons, nginx and the proxy.  Run time: 5.5 min
# for RUNS=5 at the default size on 2 loaded CPUs; QUICK=1 under a minute.
set -eu
B=${B:-.}
B=$(cd "$B" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$SRC/tests/serve-lib.sh"
if [ "${QUICK:-0}" = 1 ]; then
	CLASSES=${CLASSES:-10}; PER=${PER:-40}; RUNS=${RUNS:-1}
fi
CLASSES=${CLASSES:-20}
PER=${PER:-100}
SIZE=${SIZE:-100K}
RUNS=${RUNS:-3}
EPOCHS=${EPOCHS:-3}
NODES=${NODES:-4}
THREADS=${THREADS:-4}
LATENCY=${LATENCY:-10}
CONC=${CONC:-64}
CACHE_DIV=${CACHE_DIV:-3}
SEED0=${SEED0:-0}
DROP=${DROP:-1}
MODES=${MODES:-peers nopeers}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
D=$(mktemp -d /tmp/epochfs-bench-peers.XXXXXX)
if [ -n "${CACHE_ROOT:-}" ]; then CR=$(mktemp -d "$CACHE_ROOT/epochfs-bench-peers-caches.XXXXXX"); else CR=$D/caches; fi
mkdir -p "$CR"
declare -a NPID NMNT
SPIDS=()
FAILED=0

rpids=()
cleanup() {
	local i p
	for p in "${rpids[@]}"; do kill "$p" 2>/dev/null || true; done # the readers, when interrupted
	for p in "${rpids[@]}"; do wait "$p" 2>/dev/null || true; done
	for i in "${!NMNT[@]}"; do
		mountpoint -q "${NMNT[$i]}" 2>/dev/null &&
			{ fusermount3 -u "${NMNT[$i]}" 2>/dev/null || fusermount3 -uz "${NMNT[$i]}" 2>/dev/null || true; }
	done
	for i in "${!NPID[@]}"; do kill "${NPID[$i]}" 2>/dev/null || true; done
	for i in "${!NPID[@]}"; do wait "${NPID[$i]}" 2>/dev/null || true; done
	for p in "${SPIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${SPIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$D" "$CR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM # through the EXIT trap

# the interpreter itself (a pyenv shim costs ~0.5 s a start)
PY=$(python3 -c 'import sys; print(sys.executable)')
PATH=$(dirname "$PY"):$PATH
say() { echo "== $(date +%H:%M:%S) $*" >&2; }
warn() { echo "WARNING: $*" >&2; FAILED=1; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "-"; else print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
med() { if [ -s "$D/r-$1" ]; then median <"$D/r-$1"; else echo -; fi; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b}'; }
# statj MNT EXPR: a Python expression over MNT's stats (as s)
statj() {
	"$PY" -c 'import json,sys; s=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$1/.epochfs/stats" "$2"
}
drop() {
	[ "$DROP" = 1 ] || return 0
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || { warn "cannot drop the page cache (not root?): DROP=0 to go on without"; exit 1; }
}
# The bytes nginx sent for dataset files (GETs of paths not ending in /)
# in access-log lines FROM..TO-1 (1-based), the number of those GETs and
# of the distinct files they asked for.
ALOG=$D/nginx/logs/access.log
nginx_bytes() { # FROM TO
	awk -v from="$1" -v to="$2" 'NR >= from && NR < to && $1 == "GET" && $2 !~ /\/$/ {b += $4; n++; u[$2] = 1}
		END {print b + 0, n + 0, length(u)}' "$ALOG"
}
nginx_lines() { wc -l <"$ALOG"; }

[ -x "$B/epochfs" ] && [ -x "$B/epochfs-read" ] && [ -x "$B/epochfs-gendata" ] || { echo "build first (make)" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "nginx is not installed" >&2; exit 1; }
[ -e /dev/fuse ] && command -v fusermount3 >/dev/null || { echo "needs /dev/fuse and fusermount3" >&2; exit 1; }
[ "$DROP" = 0 ] || [ "$(id -u)" = 0 ] || { echo "dropping the page cache between epochs needs root (or DROP=0)" >&2; exit 1; }

say "dataset: $CLASSES x $PER files of about $SIZE"
mkdir -p "$D/src"
"$B/epochfs-gendata" --classes "$CLASSES" --per-class "$PER" --size "$SIZE" "$D/src" >&2
NFILES=$(find "$D/src" -type f | wc -l)
DBYTES=$(find "$D/src" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
CSIZE=$(( (DBYTES + NFILES * 4096) / CACHE_DIV + (2 << 20) ))

NGINX_PORT=$(free_port)
nginx_conf "$D/nginx" 2 "$NGINX_PORT" "$D/src"
# serve-lib's config logs nothing: log the bytes of every request
sed -i "s|access_log off;|log_format epb '\$request_method \$uri \$status \$body_bytes_sent'; access_log $ALOG epb;|" \
	"$D/nginx/nginx.conf"
"$NGINX" -p "$D/nginx" -c "$D/nginx/nginx.conf" -g 'daemon off;' 2>"$D/nginx/logs/stderr" &
SPIDS+=($!)
wait_port "$NGINX_PORT" || { cat "$D/nginx/logs/"*; exit 1; }
PROXY_PORT=$(free_port)
python3 "$SRC/tests/faultproxy.py" --listen "$PROXY_PORT" --target "127.0.0.1:$NGINX_PORT" \
	--latency-ms "$LATENCY" 2>"$D/proxy.log" &
SPIDS+=($!)
wait_port "$PROXY_PORT" || { cat "$D/proxy.log"; exit 1; }
ORIGIN=http://127.0.0.1:$PROXY_PORT/

# The peer secret, as a user keeps it: a file only its owner reads.
head -c 32 /dev/urandom | base64 >"$D/secret"
chmod 600 "$D/secret"

NC=0
# start_nodes MODE: NODES daemons on $D/mntI, new caches; with MODE=peers,
# each listens on a port of its own and is given the one peers file
# (every node, itself included).
start_nodes() {
	local mode=$1 i k opts
	: >"$D/peers"
	for i in $(seq 0 $((NODES - 1))); do
		PPORT[$i]=$(free_port)
		echo "127.0.0.1:${PPORT[$i]}" >>"$D/peers"
	done
	for i in $(seq 0 $((NODES - 1))); do
		NC=$((NC + 1))
		NMNT[$i]=$D/mnt$i
		mkdir -p "${NMNT[$i]}" "$CR/cache$NC"
		opts=()
		[ "$mode" = peers ] && opts=(--listen "127.0.0.1:${PPORT[$i]}" --peers "@$D/peers" --peer-secret-file "$D/secret")
		echo "=== $mode run $r node $i: $(date)" >>"$D/node$i.log"
		"$B/epochfs" "$ORIGIN" "${NMNT[$i]}" -f --cache-dir "$CR/cache$NC" --cache-size "$CSIZE" \
			--backend-concurrency "$CONC" "${opts[@]}" >>"$D/node$i.log" 2>&1 &
		NPID[$i]=$!
	done
	for i in $(seq 0 $((NODES - 1))); do
		for k in $(seq 600); do
			[ -r "${NMNT[$i]}/.epochfs/stats" ] && break
			kill -0 "${NPID[$i]}" 2>/dev/null || break
			sleep 0.05
		done
		[ -r "${NMNT[$i]}/.epochfs/stats" ] || { tail -20 "$D/node$i.log" >&2; warn "node $i did not mount"; exit 1; }
		if [ "$mode" = peers ] &&
			[ "$(statj "${NMNT[$i]}" '[p["state"] for p in s["peers"]].count("self")')" != 1 ]; then
			warn "node $i does not find itself in the peers list: $(statj "${NMNT[$i]}" 's["peers"]')"
			exit 1
		fi
	done
}
stop_nodes() {
	local i st
	for i in $(seq 0 $((NODES - 1))); do
		fusermount3 -u "${NMNT[$i]}" || { warn "cannot unmount node $i"; fusermount3 -uz "${NMNT[$i]}" || true; }
		st=0; wait "${NPID[$i]}" || st=$?
		unset "NPID[$i]"
		[ $st = 0 ] || { tail -20 "$D/node$i.log" >&2; warn "node $i exited with status $st"; }
	done
}
TCK=$(getconf CLK_TCK)
cpu_s() { awk -v t="$TCK" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"; }
# held MODE TAG: what each node's cache holds whole, by owner (rendezvous
# hashing as backends/owner.c does it, over the peers file's entries):
# prints "owned-held-bytes foreign-held-bytes" over all nodes; one JSON line
# per node is appended to $D/held.
held() {
	"$PY" - "$D/manifest" "$D/peers" "$D/held" "$1" "$2" "${NMNT[@]}" <<'PYEOF'
import ctypes, json, os, sys
manifest, peers, held, mode, tag, mnts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
x = ctypes.CDLL("libxxhash.so.0")
x.XXH3_64bits.restype = x.XXH3_64bits_withSeed.restype = ctypes.c_uint64
x.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
x.XXH3_64bits_withSeed.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
M = (1 << 64) - 1
def weight(node, obj):
    z = node ^ ((obj * 0x9E3779B97F4A7C15) & M)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)
ids = [l.strip().encode() for l in open(peers) if l.strip()]
nodes = [x.XXH3_64bits_withSeed(i, len(i), 0x6E6F6465) for i in ids]
keys = open(manifest).read().split("\n")[:-1]
out = []
for n, mnt in enumerate(mnts):
    own = [0, 0, 0]; foreign = [0, 0]  # owned: objects, held whole, bytes held; foreign: objects, bytes
    for k in keys:
        kb = k.encode()
        h = x.XXH3_64bits(kb, len(kb))
        best = max(range(len(nodes)), key=lambda i: (weight(nodes[i], h), -nodes[i]))
        c, _, size = os.getxattr(os.path.join(mnt, k), "user.epochfs.cached").decode().partition("/")
        whole = int(c) == int(size)
        if best == n:
            own[0] += 1; own[1] += whole; own[2] += int(c) if whole else 0
        elif whole:
            foreign[0] += 1; foreign[1] += int(c)
    out.append({"mode": mode, "tag": tag, "node": n, "owned": own[0], "owned_held": own[1],
                "owned_held_bytes": own[2], "foreign_held": foreign[0], "foreign_held_bytes": foreign[1]})
with open(held, "a") as f:
    for o in out:
        print(json.dumps(o), file=f)
print(sum(o["owned_held_bytes"] for o in out), sum(o["foreign_held_bytes"] for o in out))
PYEOF
}
# counters TAG: every node's stats copied to $D/stats/TAG.nodeI.json, and
# one line of sums over the nodes: the origin's bytes (origin_bytes with
# peers, backend_bytes without), then each of CKEYS, then the sums over the
# stats' epochs array of evicted_planned and refetched_bytes (the array
# holds the last 16 epochs: here, all), then the daemons' CPU seconds.
CKEYS="peer_bytes_in evictions not_admitted prefetch_wasted peer_requests peer_misses peer_errors"
counters() {
	local i cpu=0
	for i in $(seq 0 $((NODES - 1))); do
		cpu=$(awk -v a="$cpu" -v t="$TCK" '{printf "%.2f", a + ($14 + $15) / t}' "/proc/${NPID[$i]}/stat")
	done
	"$PY" - "$D/stats/$1" "$CKEYS" "${NMNT[@]}" <<'PYEOF'
import json, shutil, sys
out, keys, mnts = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
tot = [0] * (len(keys) + 3)
for n, m in enumerate(mnts):
    raw = open(m + "/.epochfs/stats").read()
    open("%s.node%d.json" % (out, n), "w").write(raw)
    s = json.loads(raw)
    tot[0] += s.get("origin_bytes", s["backend_bytes"])
    for i, k in enumerate(keys):
        tot[i + 1] += s.get(k, 0)
    for ep in s.get("epochs", []):
        tot[-2] += ep.get("evicted_planned", 0)
        tot[-1] += ep.get("refetched_bytes", 0)
print(*tot, end=" ")
PYEOF
	echo "$cpu"
}
# sub A B: the field-wise difference B - A of two counters lines
sub() { paste -d' ' <(echo $1 | tr ' ' '\n') <(echo $2 | tr ' ' '\n') | awk '{printf "%s ", $2 - $1} END {print ""}'; }
# frac BYTES: BYTES / the dataset
frac() { awk -v a="$1" -v d="$DBYTES" 'BEGIN {if (a == "-") print "-"; else printf "%.4f\n", a / d}'; }

mkdir -p "$D/stats" "$D/orders"
declare -a PPORT
for r in $(seq "$RUNS"); do
	seed=$((SEED0 + r))
	for mode in $MODES; do
		say "run $r/$RUNS, $mode"
		start_nodes "$mode"
		[ -s "$D/manifest" ] || cp "${NMNT[0]}/.epochfs/manifest" "$D/manifest"
		cprev=$(counters "$mode.r$r.mounted")
		lprev=$(($(nginx_lines) + 1))
		for e in $(seq 0 $((EPOCHS - 1))); do
			drop
			rpids=()
			for i in $(seq 0 $((NODES - 1))); do
				(
					echo "seed=$seed sampler=distributed world=$NODES rank=$i epoch=$e" >"${NMNT[$i]}/.epochfs/seed"
					cp "${NMNT[$i]}/.epochfs/order" "$D/orders/$mode.$r.$e.$i"
					exec "$B/epochfs-read" --threads "$THREADS" --order "$D/orders/$mode.$r.$e.$i" \
						--verify "$D/src" "${NMNT[$i]}"
				) >"$D/read.$i" 2>&1 &
				rpids+=($!)
			done
			for i in $(seq 0 $((NODES - 1))); do
				wait "${rpids[$i]}" || warn "$mode run $r epoch $e node $i: the reader failed: $(tail -3 "$D/read.$i")"
			done
			# The epoch's figures: everything since the previous epoch's end
			# (so every byte is counted in one epoch), from every node's
			# stats and nginx's log.
			cnow=$(counters "$mode.r$r.e$e")
			lnow=$(($(nginx_lines) + 1))
			read -r nb ng nu <<<"$(nginx_bytes "$lprev" "$lnow")"
			read -r ob pin ev na pw pr pm pe epl rf cpu <<<"$(sub "$cprev" "$cnow")"
			lfrom=$lprev; cprev=$cnow; lprev=$lnow
			frac "$ob" >>"$D/r-$mode-e$e-origin"
			frac "$nb" >>"$D/r-$mode-e$e-nginx"
			frac "$pin" >>"$D/r-$mode-e$e-peerin"
			echo "$ng" >>"$D/r-$mode-e$e-gets"
			echo "$nu" >>"$D/r-$mode-e$e-uniq"
			for k in ev na pw pr pm pe epl rf cpu; do echo "${!k}" >>"$D/r-$mode-e$e-$k"; done
			for i in $(seq 0 $((NODES - 1))); do
				sed "s/^/$mode r$r e$e node$i: /" "$D/read.$i" >>"$D/log"
				n=$(wc -l <"$D/orders/$mode.$r.$e.$i")
				[ "$n" = $(( (NFILES + NODES - 1) / NODES )) ] || warn "$mode run $r epoch $e node $i: the order has $n paths"
			done
			rates=$(sed -n 's/.*s, \([0-9.]*\) files\/s, .*/\1/p' "$D"/read.*)
			echo "$rates" | median >>"$D/r-$mode-e$e-fps"
			echo "$rates" | sort -g | head -1 >>"$D/r-$mode-e$e-fpsmin"
			cat "$D"/read.* | sed -n 's/.* \([0-9]*\) mismatches, \([0-9]*\) errors$/\1 \2/p' |
				awk '{s += $1 + $2} END {print s + 0}' >>"$D/r-$mode-errs"
			# what the caches hold at the epoch's end, by owner
			h=$(held "$mode" "r$r.e$e") || warn "cannot read what the caches hold"
			read -r hown hfor <<<"$h"
			frac "${hown:-0}" >>"$D/r-$mode-e$e-ownheld"
			frac "${hfor:-0}" >>"$D/r-$mode-e$e-forheld"
			echo "$mode r$r e$e: origin $ob B (nginx $nb B, $ng GETs of $nu files, access log lines $lfrom-$((lnow - 1))), from peers $pin B, files/s per node $(echo $rates), daemons' CPU $cpu s; held whole: owned $hown B, foreign $hfor B" >>"$D/log"
			say "$(tail -1 "$D/log")"
		done
		counters "$mode.r$r.end" >/dev/null
		stop_nodes
	done
done

# The orders: torch's DistributedSampler over the daemon's manifest (the
# manifest of the last mount: every mount lists the same dataset).
say "checking the orders"
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then TPY=/usr/bin/python3; else TPY=$PY; fi
ORDERS=$($TPY - "$D/orders" "$D/manifest" "$NODES" "$SEED0" <<'EOF' || true
import os, sys
odir, manifest, world, seed0 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
paths = open(manifest).read().split("\n")[:-1]
try:
    from torch.utils.data.distributed import DistributedSampler
except ImportError:
    DistributedSampler = None
bad = checked = 0
groups = {}
for name in sorted(os.listdir(odir)):
    mode, r, e, rank = name.split(".")
    got = open(os.path.join(odir, name)).read().split("\n")[:-1]
    groups.setdefault((mode, r, e), []).extend(got)
    if DistributedSampler:
        s = DistributedSampler(range(len(paths)), num_replicas=world, rank=int(rank), shuffle=True,
                               seed=seed0 + int(r))
        s.set_epoch(int(e))
        want = [paths[i] for i in s]
        checked += 1
        if got != want:
            bad += 1
            print("order %s differs from DistributedSampler's" % name, file=sys.stderr)
for k, v in groups.items():
    if sorted(v) != sorted(paths):
        bad += 1
        print("epoch %s: the shards are not a permutation of the dataset" % (k,), file=sys.stderr)
print("%d shards equal to torch's DistributedSampler, the %d epochs' shards a permutation of the dataset; %d bad"
      % (checked, len(groups), bad) if DistributedSampler else
      "torch not found: the %d epochs' shards a permutation of the dataset; %d bad" % (len(groups), bad))
sys.exit(1 if bad else 0)
EOF
)
echo "$ORDERS" | grep -q '; 0 bad$' || warn "the orders: $ORDERS"

if [ -n "${KEEP:-}" ]; then
	mkdir -p "$KEEP"
	cp -r "$D/stats" "$D/log" "$D/held" "$D"/node*.log "$D/proxy.log" "$KEEP/"
	cp "$ALOG" "$KEEP/nginx-access.log"
fi

ERRS=$(cat "$D"/r-*-errs 2>/dev/null | awk '{s+=$1} END {print s+0}')
ROWS_O= ; ROWS_F= ; ROWS_D=
for e in $(seq 0 $((EPOCHS - 1))); do
	ROWS_O+="| $e | **$(med peers-e$e-origin)** | $(med peers-e$e-nginx) | $(med peers-e$e-gets) / $(med peers-e$e-uniq) | $(med peers-e$e-peerin) | $(med nopeers-e$e-origin) | $(med nopeers-e$e-nginx) | $(med nopeers-e$e-gets) / $(med nopeers-e$e-uniq) |"$'\n'
	fp=$(med peers-e$e-fps); fn=$(med nopeers-e$e-fps)
	ROWS_F+="| $e | $fp | $(med peers-e$e-fpsmin) | $fn | $(med nopeers-e$e-fpsmin) | $(ratio "$fp" "$fn") | $(med peers-e$e-cpu) | $(med nopeers-e$e-cpu) |"$'\n'
	nh=$(awk -v a="$(med nopeers-e$e-ownheld)" -v b="$(med nopeers-e$e-forheld)" 'BEGIN {if (a == "-") print "-"; else printf "%.3f", a + b}')
	ROWS_D+="| $e | $(med peers-e$e-ownheld) | $(med peers-e$e-forheld) | $nh | $(med peers-e$e-ev) | $(med nopeers-e$e-ev) | $(med peers-e$e-na) | $(med peers-e$e-pw) | $(med peers-e$e-epl) | $(med nopeers-e$e-epl) | $(frac "$(med peers-e$e-rf)") | $(med peers-e$e-pr) | $(med peers-e$e-pm) | $(med peers-e$e-pe) |"$'\n'
done
cat <<EOT

Dataset: $NFILES files ($DBYTES bytes) in $CLASSES classes, nginx behind tests/faultproxy.py
--latency-ms $LATENCY; $NODES daemons --cache-size $CSIZE (1/$CACHE_DIV of the dataset
with 4 KiB a file, + 2 MiB) --backend-concurrency $CONC; world $NODES, one rank per node,
epochfs-read --threads $THREADS --verify per node, all nodes at once, a barrier and the
page cache dropped between epochs (DROP=$DROP); seeds $((SEED0 + 1))..$((SEED0 + RUNS)); medians of $RUNS runs;
caches on $(df --output=fstype "$CR" | tail -1); $(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg).
Orders: $ORDERS.  Wrong bytes and failed reads: $ERRS.

### Origin bytes per epoch / dataset (all nodes together)

| epoch | **peers: origin / dataset (daemons' origin_bytes)** | peers: nginx's bytes / dataset | peers: origin GETs / distinct files | peers: bytes from peers / dataset | no peers: origin / dataset (backend_bytes) | no peers: nginx's bytes / dataset | no peers: origin GETs / distinct files |
|---|---|---|---|---|---|---|---|
${ROWS_O}
### Files/s per node (each node's epochfs-read over its shard of $(( (NFILES + NODES - 1) / NODES )) files)

| epoch | peers: median node | peers: slowest node | no peers: median node | no peers: slowest node | peers / no peers (median nodes) | peers: daemons' CPU s (all nodes) | no peers: daemons' CPU s |
|---|---|---|---|---|---|---|---|
${ROWS_F}
### What the caches hold at each epoch's end, / dataset, and the epoch's counters (all nodes)

"Owned": objects held whole by the node that owns them (rendezvous over the
peers list, as backends/owner.c); "foreign": held whole by another node.
With peers, origin traffic after the first epoch is owned objects that are
not held by their owner when asked for.

| epoch | peers: owned held | peers: foreign held | no peers: held | peers: evictions | no peers: evictions | peers: not admitted | peers: prefetch wasted | peers: evicted while planned | no peers: evicted while planned | peers: refetched / dataset | peers: peer requests | peer misses (404/409) | peer errors |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
${ROWS_D}
EOT
[ "$FAILED" = 0 ] || { echo "WARNING: see the warnings above" >&2; exit 1; }
