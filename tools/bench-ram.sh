#!/bin/bash
# SPDX-License-Identifier: MIT
# make bench-ram (issue 14): a dataset bigger than the memory the reader and
# the daemon may use.  Both run in a memory cgroup of CAP (256 MiB) (v2 at
# /sys/fs/cgroup where it has the memory controller, else v1 at
# /sys/fs/cgroup/memory/NAME), the page cache is dropped before every
# measured epoch, and every figure is taken against reading the same files
# straight from the local directory in the same run (medians of RUNS runs in
# one invocation).  Not a test: nothing here asserts.  Needs root and nginx.
#
# Dataset: CLASSES x PER files of about SIZE (default 50 x 100 x 130K: 5,000
# files, ~666 MB, ImageNet's sizes).  The reader is epochfs-read with THREADS
# (8) threads, checking every byte against a copy of the dataset in /dev/shm
# made outside the cgroup (tmpfs pages stay charged to whoever wrote them,
# so the check costs the capped reader a memcpy and a memcmp, the same on
# every side, and none of its memory).
#
# Cases (CASES, default "W C S R"):
#   W  warm epochs: the dataset mounted from the local directory (posix
#      backend), its cache holding everything; per run, capped and uncapped
#      (the same cgroup with no limit): the page cache dropped, then two
#      epochs ("after drop" and "next"), local then epochfs.  Daemon CPU
#      seconds per 1,000 files over epochfs' epochs.  With BASE=DIR, DIR's
#      daemon (another build) is a third side, interleaved.
#   O  (with W) warm epochs with the seed written, as a user does: per run
#      and cgroup, one epoch in the plan's order (page cache dropped), local
#      then epochfs (PROCS readers, round-robin shards of the order); the
#      daemon stages the next cached files into RAM (--stage-ahead).
#   C  cold epoch with the seed over HTTP: nginx behind tests/faultproxy.py
#      adding LATENCIES (2 10) ms per request; a new cache per run (capped),
#      the seed written, read in its order, against tools/bench_client.py
#      with CONC (64) requests in flight straight to the proxy (the bound).
#      The stats' stall figure (time readers waited for fetches) is kept.
#   S  substitution off and on (--substitute=dir), a cache of half the
#      dataset, in the capped cgroup, SUBST_LATENCY (10) ms: a new cache,
#      the seed, one cold epoch (not counted), the page cache dropped, the
#      next epoch counted (no byte check: substituted files are other
#      files' bytes by design; tests/it-subst.sh checks the guarantee).
#   R  daemon RSS (VmHWM) at 5,000 files (the W daemon, after its epochs)
#      and at RSS_FILES2 (50,000) files of 2 KiB (two epochs, uncapped);
#      target 64 MiB + 150 B per file.
#
# QUICK=1: 1,000 files, 2 runs, 10,000 files for R.  PERF=1: perf record
# (cpu-clock, call graphs) of the daemon over the first run's capped warm
# epoch and 10 ms cold epoch; reports in $KEEP (kept) when KEEP=DIR.
# Everything started here is stopped by the trap: mounts (fusermount3 -u),
# servers, the cgroup (removed).
set -eu
B=${B:-.}
B=$(cd "$B" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$SRC/tests/serve-lib.sh"
if [ "${QUICK:-0}" = 1 ]; then
	CLASSES=${CLASSES:-10}; RUNS=${RUNS:-2}; RSS_FILES2=${RSS_FILES2:-10000}
fi
CLASSES=${CLASSES:-50}
PER=${PER:-100}
SIZE=${SIZE:-130K}
RUNS=${RUNS:-5}
THREADS=${THREADS:-8}
# PROCS=N (W only): the reader is N processes, one per rank, each reading
# its shard (every Nth path of a shuffled order) with THREADS/N threads;
# an epoch's rate is the node's: all files over the wall time of all N.
PROCS=${PROCS:-1}
CONC=${CONC:-64}
CAP=${CAP:-268435456}
LATENCIES=${LATENCIES:-2 10}
SUBST_LATENCY=${SUBST_LATENCY:-10}
RSS_FILES2=${RSS_FILES2:-50000}
CASES=${CASES:-W C S R}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
D=$(mktemp -d /tmp/epochfs-bench-ram.XXXXXX)
REF=$(mktemp -d /dev/shm/epochfs-bench-ram-ref.XXXXXX)
CGNAME=epochfs-bench-ram-$$
CG=
CGV=
MNTS=()
DPIDS=()
SPIDS=()
PFPID=

# --- the cgroup --------------------------------------------------------------
cg_make() {
	if grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
		CGV=2; CG=/sys/fs/cgroup/$CGNAME
		grep -qw memory /sys/fs/cgroup/cgroup.subtree_control || echo +memory >/sys/fs/cgroup/cgroup.subtree_control
	elif [ -w /sys/fs/cgroup/memory/cgroup.procs ]; then
		CGV=1; CG=/sys/fs/cgroup/memory/$CGNAME
	else
		echo "no memory cgroup controller (v2 at /sys/fs/cgroup or v1 at /sys/fs/cgroup/memory)" >&2
		exit 1
	fi
	mkdir "$CG"
}
cg_limit() { # BYTES|max
	if [ "$CGV" = 2 ]; then echo "$1" >"$CG/memory.max"
	elif [ "$1" = max ]; then echo -1 >"$CG/memory.limit_in_bytes"
	else echo "$1" >"$CG/memory.limit_in_bytes"; fi
}
cg_peak_mib() { # the cgroup's peak usage since the last cg_peak_reset
	local f=$CG/memory.max_usage_in_bytes
	[ "$CGV" = 2 ] && f=$CG/memory.peak
	[ -r "$f" ] && awk '{printf "%.0f\n", $1 / 1048576}' "$f" || echo -
}
cg_peak_reset() { [ "$CGV" = 1 ] && echo 0 >"$CG/memory.max_usage_in_bytes" 2>/dev/null || true; }
cg_remove() {
	[ -n "$CG" ] && [ -d "$CG" ] || return 0
	local p parent
	parent=$(dirname "$CG")
	for p in $(cat "$CG/cgroup.procs" 2>/dev/null); do echo "$p" >"$parent/cgroup.procs" 2>/dev/null || true; done
	rmdir "$CG" 2>/dev/null || { sleep 0.5; rmdir "$CG" || echo "WARNING: cannot remove $CG" >&2; }
}
# incg CMD...: run CMD as a member of the cgroup (it writes its own pid to
# cgroup.procs, then becomes CMD).
incg() { sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }
# incg_bg CMD... &: the same, for a background job ($! is CMD's pid).
incg_bg() { exec sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }

cleanup() {
	local m p
	[ -n "$PFPID" ] && { kill -INT "$PFPID" 2>/dev/null; wait "$PFPID" 2>/dev/null || true; }
	for m in "${MNTS[@]}"; do
		mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m"; }
	done
	for p in "${DPIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	for p in "${SPIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${SPIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	cg_remove
	rm -rf "$D" "$REF"
}
trap cleanup EXIT
trap 'exit 130' INT TERM # through the EXIT trap

say() { echo "== $(date +%H:%M:%S) $*" >&2; }
has() { case " $CASES " in *" $1 "*) return 0 ;; esac; return 1; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "-"; else print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
med() { if [ -s "$D/r-$1" ]; then median <"$D/r-$1"; else echo -; fi; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b}'; }
# files/s of each epoch line of epochfs-read or bench_client.py, one a line;
# a line with errors or mismatches makes the whole run a failure.
rates() {
	local out=$1
	if grep -qE '[1-9][0-9]* (mismatches|errors)' "$out"; then
		echo "WARNING: wrong bytes or errors: $(grep -E '[1-9][0-9]* (mismatches|errors)' "$out" | head -2)" >&2
	fi
	sed -n 's/.*s, \([0-9.]*\) files\/s, .*/\1/p' "$out"
}
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
TCK=$(getconf CLK_TCK)
cpu_s() { awk -v t="$TCK" '{printf "%.3f", ($14 + $15) / t}' "/proc/$1/stat"; }
hwm_mib() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
statj() { # MNT KEY...: numbers from MNT/.epochfs/stats, on one line
	python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(*(s[k] for k in sys.argv[2:]))' \
		"$1/.epochfs/stats" "${@:2}"
}
# mount_bg SOURCE MNT CACHE INCG(0|1) [OPTIONS...]: the daemon in the
# background (in the cgroup when INCG=1), waits for it; sets PID.
mount_bg() {
	local src=$1 mnt=$2 cache=$3 in=$4
	shift 4
	mkdir -p "$mnt"
	if [ "$in" = 1 ]; then
		incg_bg "${DAEMON:-$B/epochfs}" "$src" "$mnt" -f --cache-dir "$cache" "$@" 2>>"$D/daemon.log" &
	else
		"${DAEMON:-$B/epochfs}" "$src" "$mnt" -f --cache-dir "$cache" "$@" 2>>"$D/daemon.log" &
	fi
	PID=$!
	MNTS+=("$mnt"); DPIDS+=("$PID")
	until [ -r "$mnt/.epochfs/stats" ]; do
		sleep 0.05
		kill -0 "$PID" 2>/dev/null || { echo "epochfs died: $(tail -5 "$D/daemon.log")" >&2; exit 1; }
	done
}
umount_bg() { fusermount3 -u "$1"; wait "$2" || true; }
perf_start() { # PID OUT
	[ "${PERF:-0}" = 1 ] && command -v perf >/dev/null || return 0
	# system-wide (the readers' kernel time is the FUSE path); reported
	# for the daemon's and the readers' threads only
	perf record -q -a -e cpu-clock -F 499 -g -o "$2" 2>>"$D/perf.log" &
	PFPID=$!
	sleep 0.3
}
perf_stop() { # OUT
	[ -n "$PFPID" ] || return 0
	kill -INT "$PFPID"; wait "$PFPID" 2>/dev/null || true; PFPID=
	if [ -n "${KEEP:-}" ]; then
		mkdir -p "$KEEP"
		cp "$1" "$KEEP/"
		perf report -i "$1" --no-children -g none --percent-limit 0.4 --comms epochfs,epochfs-read \
			--sort comm,sym --stdio 2>/dev/null >"$KEEP/$(basename "$1").txt" || true
	fi
}

[ "$(id -u)" = 0 ] || { echo "bench-ram needs root (cgroups, drop_caches)" >&2; exit 1; }
[ -x "$B/epochfs" ] && [ -x "$B/epochfs-read" ] && [ -x "$B/epochfs-gendata" ] || { echo "build first (make)" >&2; exit 1; }
for c in $CASES; do case $c in W|O|C|S|R) ;; *) echo "CASES: unknown case $c (W O C S R)" >&2; exit 2 ;; esac; done
if has O && ! has W; then echo "CASES: O runs inside W (CASES=\"W O\")" >&2; exit 2; fi
if [ -n "${BASE:-}" ]; then BASE=$(cd "$BASE" && pwd); [ -x "$BASE/epochfs" ] || { echo "no $BASE/epochfs" >&2; exit 1; }; fi
cg_make
cg_limit max
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

say "dataset: $CLASSES x $PER files of about $SIZE"
"$B/epochfs-gendata" --classes "$CLASSES" --per-class "$PER" --size "$SIZE" "$D/src" >&2
cp -a "$D/src/." "$REF/"
NFILES=$((CLASSES * PER))
DBYTES=$(find "$D/src" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
(cd "$D/src" && find . -type f -printf '%P\n' | LC_ALL=C sort) >"$D/list"

# ranks_epochs TARGET SEED: two epochs by PROCS reader processes (PROCS > 1),
# each its shard of one shuffled order; writes $D/out as one reader's lines
# would read ("... s, RATE files/s, ...") and the readers' CPU to $D/time.
ranks_epochs() {
	local tgt=$1 seed=$2 e k t0 t1 u0 u1 pids
	python3 -c 'import random,sys; l=open(sys.argv[1]).read().split("\n")[:-1]; random.Random(int(sys.argv[2])).shuffle(l); print("\n".join(l))' \
		"$D/list" "$seed" >"$D/rorder"
	for k in $(seq 0 $((PROCS - 1))); do
		awk -v w="$PROCS" -v k="$k" '(NR - 1) % w == k' "$D/rorder" >"$D/rshard$k"
	done
	: >"$D/out"
	u0=$(awk '{print $14 + $15 + $16 + $17}' /proc/$$/stat)
	for e in 1 2; do
		t0=$(date +%s.%N)
		pids=()
		for k in $(seq 0 $((PROCS - 1))); do
			incg "$B/epochfs-read" --threads $(( (THREADS + PROCS - 1) / PROCS )) --order "$D/rshard$k" \
				--verify "$REF" "$tgt" >"$D/out$k" 2>&1 &
			pids+=($!)
		done
		wait "${pids[@]}" # not the daemon, also a child of this shell
		t1=$(date +%s.%N)
		cat "$D"/out[0-9]* >>"$D/log"
		{ grep -hE '[1-9][0-9]* (mismatches|errors)' "$D"/out[0-9]* || true; } >>"$D/out"
		awk -v n="$NFILES" -v a="$t0" -v b="$t1" 'BEGIN {printf "epoch: %.3f s, %.1f files/s, ranks\n", b - a, n / (b - a)}' >>"$D/out"
	done
	u1=$(awk '{print $14 + $15 + $16 + $17}' /proc/$$/stat)
	awk -v a="$u0" -v b="$u1" -v t="$TCK" 'BEGIN {printf "%.3f 0\n", (b - a) / t}' >"$D/time"
}

# order_epoch OUTFILE TARGET ORDER: one epoch by PROCS reader processes, each
# its round-robin shard of ORDER (a file of paths), page cache dropped
# first; appends its rate (files/s) to $D/r-OUTFILE.
order_epoch() {
	local out=$1 tgt=$2 order=$3 k t0 t1 pids=()
	for k in $(seq 0 $((PROCS - 1))); do
		awk -v w="$PROCS" -v k="$k" '(NR - 1) % w == k' "$order" >"$D/oshard$k"
	done
	drop
	t0=$(date +%s.%N)
	for k in $(seq 0 $((PROCS - 1))); do
		incg "$B/epochfs-read" --threads 1 --order "$D/oshard$k" --verify "$REF" "$tgt" >"$D/oout$k" 2>&1 &
		pids+=($!)
	done
	wait "${pids[@]}"
	t1=$(date +%s.%N)
	cat "$D"/oout[0-9]* >>"$D/log"
	if grep -qE '[1-9][0-9]* (mismatches|errors)' "$D"/oout[0-9]*; then
		echo "O: wrong bytes or errors reading $tgt" >&2
		exit 1
	fi
	awk -v n="$(wc -l <"$order")" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f\n", n / (b - a)}' >>"$D/r-$out"
}

# epoch_pair OUTPREFIX TARGET SEED [PID]: drop the page cache, read two epochs
# in the cgroup; appends "after drop" and "next" rates, and the daemon's CPU
# seconds per 1,000 files when PID is given.
epoch_pair() {
	local pre=$1 tgt=$2 seed=$3 pid=${4:-} c0=0 c1
	drop
	[ -n "$pid" ] && { c0=$(cpu_s "$pid"); statj "$tgt" reads opens >"$D/ro.$pid"; }
	if [ "$PROCS" -gt 1 ]; then
		ranks_epochs "$tgt" "$seed"
	else
		incg /usr/bin/time -f "%U %S" -o "$D/time" "$B/epochfs-read" --threads "$THREADS" --epochs 2 \
			--seed "$seed" --verify "$REF" "$tgt" >"$D/out" 2>&1 || true
	fi
	cat "$D/out" >>"$D/log"
	rates "$D/out" | sed -n 1p >>"$D/r-$pre-drop"
	rates "$D/out" | sed -n 2p >>"$D/r-$pre-next"
	# the reader's CPU, ms per file (both epochs)
	tail -1 "$D/time" | awk -v n="$NFILES" '{printf "%.3f\n", ($1 + $2) * 1000 / (2 * n)}' >>"$D/r-$pre-rcpu"
	if [ -n "$pid" ]; then
		# READ requests per file (a file the page cache holds costs none)
		statj "$tgt" reads opens >"$D/ro"
		[ -s "$D/ro.$pid" ] && awk -v n="$NFILES" 'NR == FNR {r0 = $1; next} {printf "%.2f\n", ($1 - r0) / (2 * n)}' \
			"$D/ro.$pid" "$D/ro" >>"$D/r-$pre-reads"
		mv "$D/ro" "$D/ro.$pid"
		c1=$(cpu_s "$pid")
		awk -v a="$c0" -v b="$c1" -v n="$NFILES" 'BEGIN{printf "%.3f\n", (b - a) * 1000 / (2 * n)}' >>"$D/r-$pre-cpu"
	fi
}

W_ROWS= ; WC_ROWS= ; O_ROWS= ; C_ROWS= ; S_ROWS= ; R_ROWS=
if has W; then
	say "W: fill the caches (one epoch through each mount)"
	mount_bg "$D/src" "$D/mnt" "$D/cache" 1 --cache-size 4G
	WPID=$PID
	incg "$B/epochfs-read" --threads "$THREADS" --verify "$REF" "$D/mnt" >>"$D/log"
	if [ -n "${BASE:-}" ]; then
		DAEMON=$BASE/epochfs mount_bg "$D/src" "$D/mntb" "$D/cacheb" 1 --cache-size 4G
		BPID=$PID
		incg "$B/epochfs-read" --threads "$THREADS" --verify "$REF" "$D/mntb" >>"$D/log"
	fi
	for r in $(seq "$RUNS"); do
		for cap in capped uncapped; do
			say "W: run $r/$RUNS, $cap"
			[ $cap = capped ] && cg_limit "$CAP" || cg_limit max
			cg_peak_reset
			epoch_pair "w-$cap-local" "$D/src" "$r"
			[ "$r" = 1 ] && [ $cap = capped ] && perf_start "$WPID" "$D/perf-warm-capped"
			epoch_pair "w-$cap-fs" "$D/mnt" "$r" "$WPID"
			[ "$r" = 1 ] && [ $cap = capped ] && perf_stop "$D/perf-warm-capped"
			cg_peak_mib >>"$D/r-w-$cap-peak"
			[ "$r" = 1 ] && [ $cap = capped ] && [ -n "${BASE:-}" ] && perf_start "$BPID" "$D/perf-warm-capped-base"
			[ -n "${BASE:-}" ] && epoch_pair "w-$cap-base" "$D/mntb" "$r" "$BPID"
			[ "$r" = 1 ] && [ $cap = capped ] && [ -n "${BASE:-}" ] && perf_stop "$D/perf-warm-capped-base"
			if has O; then
				# The seed written, as a user does: the order is the
				# plan's, local reads follow the same order.
				echo "seed=$((1000 + r)) sampler=randperm" >"$D/mnt/.epochfs/seed"
				k=0 # (the order file is made by the control write's thread)
				until [ "$(wc -l <"$D/mnt/.epochfs/order")" = "$NFILES" ]; do
					k=$((k + 1)); [ $k -lt 100 ] || { echo "O: no order" >&2; exit 1; }
					sleep 0.1
				done
				cp "$D/mnt/.epochfs/order" "$D/oorder"
				order_epoch "o-$cap-local" "$D/src" "$D/oorder"
				order_epoch "o-$cap-fs" "$D/mnt" "$D/oorder"
				# W's epochs are read in orders the daemon is not told
				echo clear >"$D/mnt/.epochfs/seed"
				if [ -n "${BASE:-}" ]; then
					echo "seed=$((1000 + r)) sampler=randperm" >"$D/mntb/.epochfs/seed"
					k=0 # (the order file is made by the control write's thread: wait for it)
					until cat "$D/mntb/.epochfs/order" | cmp -s "$D/oorder" -; do # (cmp takes st_size, not the bytes)
						k=$((k + 1)); [ $k -lt 100 ] || { echo "O: BASE's order differs" >&2; wc -l "$D/oorder" "$D/mntb/.epochfs/order" >&2; diff "$D/oorder" "$D/mntb/.epochfs/order" | head -3 >&2; exit 1; }
						sleep 0.1
					done
					order_epoch "o-$cap-base" "$D/mntb" "$D/oorder"
					echo clear >"$D/mntb/.epochfs/seed"
				fi
			fi
		done
	done
	cg_limit max
	HWM5=$(hwm_mib "$WPID")
	umount_bg "$D/mnt" "$WPID"
	[ -n "${BASE:-}" ] && umount_bg "$D/mntb" "$BPID"
	for cap in capped uncapped; do
		for e in drop next; do
			l=$(med "w-$cap-local-$e"); f=$(med "w-$cap-fs-$e")
			row="| $cap | $e | $l | $f | **$(ratio "$f" "$l")** |"
			if [ -n "${BASE:-}" ]; then bb=$(med "w-$cap-base-$e"); row+=" $bb | $(ratio "$bb" "$l") |"; fi
			W_ROWS+="$row $(med "w-$cap-fs-cpu") | $(med "w-$cap-peak") |"$'\n'
		done
		if has O; then
			l=$(med "o-$cap-local"); f=$(med "o-$cap-fs")
			row="| $cap | $l | $f | **$(ratio "$f" "$l")** |"
			if [ -n "${BASE:-}" ]; then bb=$(med "o-$cap-base"); row+=" $bb | $(ratio "$bb" "$l") |"; fi
			O_ROWS+="$row"$'\n'
		fi
		row="| $cap | $(med "w-$cap-local-rcpu") | $(med "w-$cap-fs-rcpu") | $(med "w-$cap-fs-cpu") | $(med "w-$cap-fs-reads") |"
		[ -n "${BASE:-}" ] && row+=" $(med "w-$cap-base-rcpu") | $(med "w-$cap-base-cpu") | $(med "w-$cap-base-reads") |"
		WC_ROWS+="$row"$'\n'
	done
fi

NGINX_PORT=
declare -A PORT
if has C || has S; then
	[ -x "$NGINX" ] || { echo "nginx is not installed" >&2; exit 1; }
	NGINX_PORT=$(free_port)
	nginx_conf "$D/nginx" 2 "$NGINX_PORT" "$D/src"
	"$NGINX" -p "$D/nginx" -c "$D/nginx/nginx.conf" -g 'daemon off;' 2>"$D/nginx/logs/stderr" &
	SPIDS+=($!)
	wait_port "$NGINX_PORT"
	for lat in $LATENCIES $SUBST_LATENCY; do
		[ -n "${PORT[$lat]:-}" ] && continue
		PORT[$lat]=$(free_port)
		python3 "$SRC/tests/faultproxy.py" --listen "${PORT[$lat]}" --target "127.0.0.1:$NGINX_PORT" \
			--latency-ms "$lat" 2>"$D/proxy-$lat.log" &
		SPIDS+=($!)
		wait_port "${PORT[$lat]}"
	done
	mkdir -p "$D/caches"
fi
NC=0
newcache() { NC=$((NC + 1)); CACHE=$D/caches/c$NC; } # kept: see bench-remote.sh

# cold_seeded DAEMONDIR PREFIX LAT RUN: a new cache, the seed, one capped
# epoch in its order; rate, stall seconds, prefetch_late, CPU per 1,000 files.
cold_seeded() {
	local bin=$1 pre=$2 lat=$3 r=$4 c0
	newcache
	cg_limit "$CAP"
	DAEMON=$bin/epochfs mount_bg "http://127.0.0.1:${PORT[$lat]}/" "$D/mnt" "$CACHE" 1 --cache-size 4G \
		--backend-concurrency "$CONC"
	echo "seed=$r sampler=randperm" >"$D/mnt/.epochfs/seed"
	cp "$D/mnt/.epochfs/order" "$D/order"
	drop
	c0=$(cpu_s "$PID")
	[ "$r" = 1 ] && [ "$lat" = 10 ] && perf_start "$PID" "$D/perf-cold-10-$pre"
	incg "$B/epochfs-read" --threads "$THREADS" --order "$D/order" --verify "$REF" "$D/mnt" >"$D/out" 2>&1 || true
	[ "$r" = 1 ] && [ "$lat" = 10 ] && perf_stop "$D/perf-cold-10-$pre"
	cat "$D/out" >>"$D/log"
	rates "$D/out" >>"$D/r-$pre"
	awk -v a="$c0" -v b="$(cpu_s "$PID")" -v n="$NFILES" 'BEGIN{printf "%.3f\n", (b - a) * 1000 / n}' >>"$D/r-$pre-cpu"
	statj "$D/mnt" stall_ns prefetch_late | awk '{printf "%.2f %d\n", $1 / 1e9, $2}' >"$D/st"
	cut -d' ' -f1 "$D/st" >>"$D/r-$pre-stall"
	cut -d' ' -f2 "$D/st" >>"$D/r-$pre-late"
	umount_bg "$D/mnt" "$PID"
}
if has C; then
	for lat in $LATENCIES; do
		for r in $(seq "$RUNS"); do
			say "C: $lat ms, run $r/$RUNS"
			cold_seeded "$B" "c$lat-fs" "$lat" "$r"
			[ -n "${BASE:-}" ] && cold_seeded "$BASE" "c$lat-base" "$lat" "$r"
			incg python3 "$SRC/tools/bench_client.py" --url "http://127.0.0.1:${PORT[$lat]}/" --list "$D/order" \
				--threads "$CONC" >"$D/out" 2>&1 || true
			cat "$D/out" >>"$D/log"
			rates "$D/out" >>"$D/r-c$lat-bound"
		done
		bd=$(med "c$lat-bound"); f=$(med "c$lat-fs")
		row="| $lat ms | $bd | $f | **$(ratio "$f" "$bd")** |"
		if [ -n "${BASE:-}" ]; then bb=$(med "c$lat-base"); row+=" $bb | $(ratio "$bb" "$bd") |"; fi
		C_ROWS+="$row $(med "c$lat-fs-stall") | $(med "c$lat-fs-late") | $(med "c$lat-fs-cpu") |"$'\n'
	done
fi

if has S; then
	# Half the dataset as the cache stores it, plus the index and the
	# directories, plus the headroom (as bench-remote.sh's "data" size).
	say "S: the cache footprint of the whole dataset"
	newcache
	cg_limit max
	mount_bg "http://127.0.0.1:${PORT[$SUBST_LATENCY]}/" "$D/mnt" "$CACHE" 1 --cache-size 4G --backend-concurrency "$CONC"
	incg "$B/epochfs-read" --threads "$THREADS" "$D/mnt" >>"$D/log"
	read -r FD FM < <(statj "$D/mnt" cache_data_bytes cache_meta_bytes)
	umount_bg "$D/mnt" "$PID"
	HALF=$(awk -v x=$((FD / 2 + FM)) 'BEGIN { c = x * 100 / 99; h = c / 100
		if (h < 65536) c = x + 65536; else if (h > 67108864) c = x + 67108864; printf "%d", c + 1 }')
	for r in $(seq "$RUNS"); do
		cg_limit "$CAP"
		say "S: run $r/$RUNS, local"
		drop
		incg "$B/epochfs-read" --threads "$THREADS" --seed "$r" "$D/src" >"$D/out" 2>&1 || true
		rates "$D/out" >>"$D/r-s-local"
		for mode in off dir; do
			say "S: run $r/$RUNS, substitution $mode"
			newcache
			opt=(); [ $mode = dir ] && opt=(--substitute=dir)
			mount_bg "http://127.0.0.1:${PORT[$SUBST_LATENCY]}/" "$D/mnt" "$CACHE" 1 --cache-size "$HALF" \
				--backend-concurrency "$CONC" "${opt[@]}"
			echo "seed=$((r + 50)) sampler=randperm" >"$D/mnt/.epochfs/seed"
			incg "$B/epochfs-read" --threads "$THREADS" --order "$D/mnt/.epochfs/order" "$D/mnt" >>"$D/log" 2>&1 || true
			read -r o0 h0 s0 < <(statj "$D/mnt" opens open_hits substitutions)
			drop
			incg "$B/epochfs-read" --threads "$THREADS" --order "$D/mnt/.epochfs/order" "$D/mnt" >"$D/out" 2>&1 || true
			cat "$D/out" >>"$D/log"
			rates "$D/out" >>"$D/r-s-$mode"
			read -r o1 h1 s1 < <(statj "$D/mnt" opens open_hits substitutions)
			awk -v a=$((h1 - h0)) -v b=$((o1 - o0)) 'BEGIN{printf "%.2f\n", b ? a / b : 0}' >>"$D/r-s-$mode-hit"
			echo $((s1 - s0)) >>"$D/r-s-$mode-subst"
			umount_bg "$D/mnt" "$PID"
		done
	done
	l=$(med s-local)
	for mode in off dir; do
		f=$(med "s-$mode")
		S_ROWS+="| $mode | $l | $f | $(ratio "$f" "$l") | $(med "s-$mode-hit") | $(med "s-$mode-subst") |"$'\n'
	done
fi

if has R; then
	say "R: $RSS_FILES2 files of 2 KiB, two epochs"
	"$B/epochfs-gendata" --classes $((RSS_FILES2 / 100)) --per-class 100 --size 2K "$D/small" >&2
	cg_limit max
	mount_bg "$D/small" "$D/mnts" "$D/caches-small" 0 --cache-size 4G
	"$B/epochfs-read" --threads "$THREADS" --epochs 2 "$D/mnts" >>"$D/log"
	HWM50=$(hwm_mib "$PID")
	umount_bg "$D/mnts" "$PID"
	bud() { awk -v n="$1" 'BEGIN{printf "%.1f", 64 + 150 * n / 1048576}'; }
	[ -n "${HWM5:-}" ] && R_ROWS+="| $NFILES (W's daemon, after its epochs) | ${HWM5} | $(bud "$NFILES") |"$'\n'
	R_ROWS+="| $RSS_FILES2 (2 KiB files, two epochs) | ${HWM50} | $(bud "$RSS_FILES2") |"$'\n'
fi

LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
[ -n "${KEEP:-}" ] && { mkdir -p "$KEEP"; cp "$D/log" "$D/daemon.log" "$KEEP/" 2>/dev/null || true; cp "$D"/r-* "$KEEP/" 2>/dev/null || true; }
cat <<EOT

Dataset: $NFILES files, $DBYTES bytes ($CLASSES x $PER, --size $SIZE); $THREADS reader threads ($PROCS process(es), one per rank, in W)
(epochfs-read, every byte checked); memory cgroup v$CGV, cap $CAP bytes; page cache dropped
before each measured epoch; medians of $RUNS runs; $(nproc) CPUs; load average at start
$LOAD0, at end $LOAD1; $(date -u +%Y-%m-%dT%H:%MZ).
EOT
has W && cat <<EOT

### Warm epochs (the cache holds everything), files/s

| cgroup | epoch | local | epochfs | epochfs / local |$([ -n "${BASE:-}" ] && echo " BASE epochfs | BASE / local |") daemon CPU s per 1,000 files | cgroup peak MiB |
|---|---|---|---|---|$([ -n "${BASE:-}" ] && echo "---|---|")---|---|
${W_ROWS}
CPU per file and epoch, ms (both epochs of each run; the reader's from /usr/bin/time,
the daemon's from /proc/PID/stat), and READ requests the daemon served per file and epoch:

| cgroup | reader, local | reader, epochfs | daemon, epochfs | READs per file, epochfs |$([ -n "${BASE:-}" ] && echo " reader, BASE | daemon, BASE | READs per file, BASE |")
|---|---|---|---|---|$([ -n "${BASE:-}" ] && echo "---|---|---|")
${WC_ROWS}
EOT
has O && cat <<EOT

### Warm epochs with the seed written (the plan's order; staging ahead), files/s

One epoch after the page cache is dropped, PROCS=$PROCS readers, each its
round-robin shard of the plan's order; local reads follow the same order.

| cgroup | local | epochfs | epochfs / local |$([ -n "${BASE:-}" ] && echo " BASE epochfs | BASE / local |")
|---|---|---|---|$([ -n "${BASE:-}" ] && echo "---|---|")
${O_ROWS}
EOT
has C && cat <<EOT

### Cold epoch with the seed over HTTP (capped), files/s, against $CONC requests in flight

| latency | bound (client, $CONC in flight) | epochfs | epochfs / bound |$([ -n "${BASE:-}" ] && echo " BASE epochfs | BASE / bound |") readers' stall s | prefetch_late | daemon CPU s per 1,000 files |
|---|---|---|---|$([ -n "${BASE:-}" ] && echo "---|---|")---|---|---|
${C_ROWS}
EOT
has S && cat <<EOT

### Substitution, a cache of half the dataset ($HALF bytes), capped, $SUBST_LATENCY ms, the epoch after a cold one, files/s

| substitution | local | epochfs | epochfs / local | open hit rate | substitutions |
|---|---|---|---|---|---|
${S_ROWS}
EOT
has R && cat <<EOT

### Daemon peak RSS (VmHWM), MiB

| files | VmHWM | budget (64 MiB + 150 B/file) |
|---|---|---|
${R_ROWS}
EOT
exit 0
