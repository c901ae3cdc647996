#!/bin/bash
# SPDX-License-Identifier: MIT
# make bench-subst: substitutable hits (issue 5) through a slow backend.
# nginx serves a generated dataset behind tests/faultproxy.py, which caps each
# connection's bandwidth (BW bytes/s, CONC connections: --backend-concurrency)
# and adds LAT ms per request.  A loader of THREADS threads pausing STEP_MS
# after each file (tests/subst_reader.py, which also checks that every
# content is served exactly once and within its directory) reads the seed's
# order; the cache holds about half the files.  Per mode, RUNS runs, each on
# a fresh cache: one cold epoch (not counted), then EPOCHS epochs, the page
# cache dropped before each.  Modes (MODES):
#   off   no substitution (the clairvoyant prefetcher and Belady eviction)
#   dir   --substitute=dir (default deadline, 20 ms)
#   dir0  --substitute=dir --substitute-deadline 0 (no wait for a prefetch
#         in flight: hits only for bytes cached when the open is decided)
# Prints the loader's demand (a warm epoch from a cache holding everything),
# the backend's effective rate (the cold epochs), and a Markdown table of
# medians over runs: epoch seconds (first open to last close), open hit rate
# and substitutions of epochs 1..EPOCHS, backend bytes per epoch, cached
# fraction.  Runs alternate modes, so that drift hits all alike.  Not a
# test: nothing here asserts.  Needs root (drop_caches) and nginx.
set -eu
B=${B:-.}
B=$(cd "$B" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$SRC/tests/serve-lib.sh"
RUNS=${RUNS:-3}
EPOCHS=${EPOCHS:-3}
MODES=${MODES:-off dir dir0}
CLASSES=${CLASSES:-6}
PER=${PER:-100}
SIZE=${SIZE:-256K}
THREADS=${THREADS:-8}
STEP_MS=${STEP_MS:-40}
CONC=${CONC:-8}
BW=${BW:-3000000}
LAT=${LAT:-5}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
D=$(mktemp -d /tmp/epochfs-bench-subst.XXXXXX)
PID=
SPIDS=()
cleanup() {
	mountpoint -q "$D/mnt" 2>/dev/null && { fusermount3 -u "$D/mnt" || fusermount3 -uz "$D/mnt"; }
	[ -n "$PID" ] && wait "$PID" 2>/dev/null || true
	for p in "${SPIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${SPIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$D"
}
trap cleanup EXIT INT TERM

say() { echo "== $*" >&2; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# mount_http CACHESIZE OPTIONS...: mount $D/mnt on a fresh cache, wait for it.
mount_http() {
	local size=$1
	shift
	rm -rf "$D/cache"
	mkdir -p "$D/mnt"
	"$B/epochfs" "http://127.0.0.1:$PROXY_PORT/" "$D/mnt" -f --cache-dir "$D/cache" --cache-size "$size" \
		--backend-concurrency "$CONC" "$@" 2>>"$D/daemon.log" &
	PID=$!
	until [ -r "$D/mnt/.epochfs/stats" ]; do
		sleep 0.05
		kill -0 "$PID" || { echo "epochfs died: $(tail -5 "$D/daemon.log")" >&2; return 1; }
	done
	echo "seed=11 sampler=randperm" >"$D/mnt/.epochfs/seed"
}
umount_http() { fusermount3 -u "$D/mnt"; wait "$PID" || true; PID=; }
# epoch SCOPE: one epoch through the loader; prints its JSON line.
epoch() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	python3 "$SRC/tests/subst_reader.py" "$D/mnt" "$D/src" "$1" "$THREADS" "$STEP_MS"
}
# stats NAME...: those numbers of the mount's stats, on one line.
stats() {
	python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(*(s[k] for k in sys.argv[2:]))' \
		"$D/mnt/.epochfs/stats" "$@"
}
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

[ -x "$B/epochfs" ] && [ -x "$B/epochfs-gendata" ] || { echo "build first (make)" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "nginx is not installed" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root (drops the page cache between epochs)" >&2; exit 1; }

say "dataset: $CLASSES x $PER files of $SIZE"
"$B/epochfs-gendata" --classes "$CLASSES" --per-class "$PER" --size "$SIZE" "$D/src" >&2
NFILES=$(find "$D/src" -type f | wc -l)
DBYTES=$(find "$D/src" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
# Half of what the dataset occupies in the cache (4 KiB blocks, 4 KiB per
# object file) plus 1 MiB for the index: about half the files.
HALF=$(find "$D/src" -type f -printf '%s\n' | awk '{s+=int(($1+4095)/4096)*4096+4096} END {printf "%d", s/2+1048576}')

NGINX_PORT=$(free_port)
nginx_conf "$D/nginx" 1 "$NGINX_PORT" "$D/src"
"$NGINX" -p "$D/nginx" -c "$D/nginx/nginx.conf" -g 'daemon off;' 2>"$D/nginx/logs/stderr" &
SPIDS+=($!)
wait_port "$NGINX_PORT"
PROXY_PORT=$(free_port)
python3 "$SRC/tests/faultproxy.py" --listen "$PROXY_PORT" --target "127.0.0.1:$NGINX_PORT" \
	--latency-ms "$LAT" --bandwidth "$BW" 2>"$D/proxy.log" &
SPIDS+=($!)
wait_port "$PROXY_PORT"

# The loader's demand: a warm epoch from a cache that holds everything.
say "loader demand (a warm epoch, everything cached)"
mount_http 4G
epoch off >/dev/null
warm=$(epoch off)
umount_http
demand=$(awk -v n="$NFILES" -v b="$DBYTES" -v s="$(field "$warm" seconds)" \
	'BEGIN{printf "%.0f files/s, %.1f MB/s", n/s, b/s/1e6}')

for m in $MODES; do : >"$D/r-$m"; done
for r in $(seq "$RUNS"); do
	for m in $MODES; do
		case $m in
		off) opts=(--substitute=off); scope=off ;;
		dir) opts=(--substitute=dir); scope=dir ;;
		dir0) opts=(--substitute=dir --substitute-deadline 0); scope=dir ;;
		*) echo "unknown mode $m" >&2; exit 2 ;;
		esac
		say "run $r/$RUNS, $m"
		mount_http "$HALF" "${opts[@]}"
		cold=$(epoch "$scope")
		secs=""
		inread=0
		for e in $(seq "$EPOCHS"); do
			read -r cached b0 < <(stats cache_objects backend_bytes)
			out=$(epoch "$scope")
			read -r b1 < <(stats backend_bytes)
			inread=$((inread + b1 - b0))
			echo "$m run $r epoch $e (cached $cached): $out" >>"$D/log"
			python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(r["missing"] or r["duplicates"] or r["wrong_scope"])' "$out" ||
				echo "WARNING: $m run $r epoch $e broke the guarantee: $out" >&2
			secs="$secs $(field "$out" seconds)"
			[ "$e" = 1 ] && cached1=$cached
		done
		python3 - "$D/mnt/.epochfs/stats" "$EPOCHS" "$cached1" "$(field "$cold" seconds)" "$secs" "$inread" >>"$D/r-$m" <<'EOF'
import json, sys
st = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
eps = [e for e in st["epochs"] if 1 <= e["epoch"] <= n]
cold = [e for e in st["epochs"] if e["epoch"] == 0][0]
secs = [float(x) for x in sys.argv[5].split()]
opens = sum(e["opens"] for e in eps)
# epoch-s hit-rate subst/epoch backend-MB/epoch cached-fraction cold-backend-MB/s
# backend-MB/epoch-while-reading
print("%.3f %.3f %.1f %.1f %.3f %.2f %.1f" % (
    sum(secs) / len(secs), sum(e["open_hits"] for e in eps) / opens,
    sum(e["substitutions"] for e in eps) / len(eps),
    sum(e["backend_bytes"] for e in eps) / len(eps) / 1e6,
    int(sys.argv[3]) / st["files"], cold["backend_bytes"] / float(sys.argv[4]) / 1e6,
    int(sys.argv[6]) / n / 1e6))
EOF
		umount_http
	done
done

med() { cut -d' ' -f"$2" "$D/r-$1" | median; }
brate=$(for m in $MODES; do cut -d' ' -f6 "$D/r-$m"; done | median)
echo
echo "dataset: $NFILES files, $((DBYTES / 1000000)) MB ($CLASSES directories); cache $((HALF / 1000000)) MB;"
echo "loader: $THREADS threads, $STEP_MS ms per file; demand $demand (warm epoch);"
echo "backend: $CONC connections x $BW B/s + $LAT ms per request; ${brate} MB/s effective (cold epochs);"
echo "medians of $RUNS runs, epochs 1-$EPOCHS of each"
echo
echo "| mode | epoch s | open hit rate | substitutions / epoch | backend MB / epoch | ... while the loader reads | cached fraction |"
echo "|---|---|---|---|---|---|---|"
for m in $MODES; do
	echo "| $m | $(med "$m" 1) | $(med "$m" 2) | $(med "$m" 3) | $(med "$m" 4) | $(med "$m" 7) | $(med "$m" 5) |"
done
echo
echo "per run (epoch-s hit-rate subst/epoch backend-MB/epoch cached-fraction cold-backend-MB/s backend-MB/epoch-while-reading):"
for m in $MODES; do sed "s/^/  $m: /" "$D/r-$m"; done
[ -n "${KEEP_LOG:-}" ] && cp "$D/log" "$KEEP_LOG"
exit 0
