#!/bin/bash
# SPDX-License-Identifier: MIT
# make bench: the warm-epoch overhead of epochfs against reading the same
# files straight from the dataset directory, the daemon's CPU per warm file,
# and its peak RSS against the number of files.  Medians over RUNS runs in
# one invocation; prints a Markdown table for docs/benchmarks.md.
# Not a test: nothing here asserts a time.
set -eu
B=${B:-.}
RUNS=${RUNS:-5}
THREADS=${THREADS:-8}
EPOCHS=${EPOCHS:-3}
CLASSES=${CLASSES:-100}
PER=${PER:-100}
SMALL_FILES_CLASSES=${SMALL_FILES_CLASSES:-1000}
# A second, larger size: the slope between the two is the cost per file,
# free of what a daemon allocates once (threads, arenas, libraries).
SMALL_FILES_CLASSES2=${SMALL_FILES_CLASSES2:-3000}
D=$(mktemp -d /tmp/epochfs-bench.XXXXXX)
PID=
cleanup() {
	for m in "$D/mnt" "$D/mnt2" "$D/mnt3" "$D/mnt4"; do
		mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" || fusermount3 -uz "$m"; }
	done
	wait 2>/dev/null || true
	rm -rf "$D"
}
trap cleanup EXIT INT TERM
TCK=$(getconf CLK_TCK)

mount_bg() { # SRC MNT CACHE [OPTIONS...]
	local src=$1 mnt=$2 cache=$3
	shift 3
	mkdir -p "$mnt"
	"$B/epochfs" "$src" "$mnt" -f --cache-dir "$cache" --cache-size 8G "$@" 2>>"$D/daemon.log" &
	PID=$!
	until [ -r "$mnt/.epochfs/stats" ]; do sleep 0.05; kill -0 $PID; done
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$PID/status"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.* $1 \([0-9.]*\).*/\1/p" | head -1; } # from epochfs-read's line
rate() { sed -n 's/.*s, \([0-9.]*\) files\/s, \([0-9.]*\) MB\/s.*/\1 \2/p'; }

echo "== dataset: $CLASSES x $PER files of ~110 KB" >&2
"$B/epochfs-gendata" --classes "$CLASSES" --per-class "$PER" --size 110K "$D/src" >&2
NFILES=$((CLASSES * PER))
mount_bg "$D/src" "$D/mnt" "$D/cache"
PID_OPEN=$PID
echo "== cold epoch through epochfs (fills the cache)" >&2
"$B/epochfs-read" --threads "$THREADS" "$D/mnt" >&2
mount_bg "$D/src" "$D/mnt3" "$D/cache3" --no-open
PID_NOOPEN=$PID
echo "== cold epoch through epochfs --no-open (fills its cache)" >&2
"$B/epochfs-read" --threads "$THREADS" "$D/mnt3" >&2
"$B/epochfs-read" --threads "$THREADS" "$D/src" >/dev/null   # the direct side warm too

# Each run: EPOCHS warm epochs through each mount and straight from the
# directory, in turn; the medians are over every epoch of every run.
: >"$D/fs" ; : >"$D/fsno" ; : >"$D/direct" ; : >"$D/cpu" ; : >"$D/cpuno"
warm() { # MNT PIDVAR OUT CPUOUT SEED
	local c0 c1
	PID=$2
	c0=$(cpu_ticks)
	"$B/epochfs-read" --threads "$THREADS" --epochs "$EPOCHS" --seed "$5" "$1" | rate >>"$3"
	c1=$(cpu_ticks)
	echo "$c0 $c1" | awk -v t="$TCK" -v n="$((NFILES * EPOCHS))" '{print ($2-$1)/t*1000/n}' >>"$4"
}
for r in $(seq "$RUNS"); do
	warm "$D/mnt" "$PID_OPEN" "$D/fs" "$D/cpu" "$r"
	warm "$D/mnt3" "$PID_NOOPEN" "$D/fsno" "$D/cpuno" "$r"
	"$B/epochfs-read" --threads "$THREADS" --epochs "$EPOCHS" --seed "$r" "$D/src" | rate >>"$D/direct"
done
fs_files=$(cut -d' ' -f1 "$D/fs" | median)
fs_mb=$(cut -d' ' -f2 "$D/fs" | median)
no_files=$(cut -d' ' -f1 "$D/fsno" | median)
no_mb=$(cut -d' ' -f2 "$D/fsno" | median)
di_files=$(cut -d' ' -f1 "$D/direct" | median)
di_mb=$(cut -d' ' -f2 "$D/direct" | median)
cpu=$(median <"$D/cpu")
cpuno=$(median <"$D/cpuno")
PID=$PID_OPEN
hwm1=$(hwm_kb)
fusermount3 -u "$D/mnt"; wait $PID_OPEN
fusermount3 -u "$D/mnt3"; wait $PID_NOOPEN; PID=

# rss_phase CLASSES NAME: two epochs over CLASSES x 100 files of 512 bytes;
# sets N_<NAME>, RSS0_, HWM_, ANON_, RSS_<NAME> (KiB).
rss_phase() {
	local classes=$1 name=$2 n rss0 hwm anon rss
	echo "== RSS scaling: $classes x 100 files of 512 bytes" >&2
	"$B/epochfs-gendata" --classes "$classes" --per-class 100 --size 512 "$D/small$name" >&2
	n=$((classes * 100))
	mount_bg "$D/small$name" "$D/mnt$name" "$D/cache$name" --cache-size $((n * 12288 + (1 << 30)))
	rss0=$(awk '/^Rss:/ {print $2}' "/proc/$PID/smaps_rollup")
	"$B/epochfs-read" --threads "$THREADS" "$D/mnt$name" >&2
	"$B/epochfs-read" --threads "$THREADS" "$D/mnt$name" >&2
	hwm=$(hwm_kb)
	anon=$(awk '/^Anonymous:/ {print $2}' "/proc/$PID/smaps_rollup")
	rss=$(awk '/^Rss:/ {print $2}' "/proc/$PID/smaps_rollup")
	fusermount3 -u "$D/mnt$name"; wait $PID; PID=
	# Deleted only at exit: ext4 without a journal skips inodes freed in
	# the last seconds when it allocates, and the next phase's files paid
	# for it (300,000 fills at half the rate of 100,000).
	eval "N_$name=$n RSS0_$name=$rss0 HWM_$name=$hwm ANON_$name=$anon RSS_$name=$rss"
}
rss_phase "$SMALL_FILES_CLASSES" 2
rss_phase "$SMALL_FILES_CLASSES2" 4
NSMALL=$N_2 rss0=$RSS0_2 hwm2=$HWM_2 anon2=$ANON_2 rss2=$RSS_2
slope_hwm=$(( (HWM_4 - HWM_2) * 1024 / (N_4 - N_2) ))
slope_anon=$(( (ANON_4 - ANON_2) * 1024 / (N_4 - N_2) ))

ratio_f=$(awk "BEGIN{printf \"%.2f\", $fs_files/$di_files}")
ratio_m=$(awk "BEGIN{printf \"%.2f\", $fs_mb/$di_mb}")
ratio_nf=$(awk "BEGIN{printf \"%.2f\", $no_files/$di_files}")
ratio_nm=$(awk "BEGIN{printf \"%.2f\", $no_mb/$di_mb}")
budget_mib() { awk "BEGIN{printf \"%.1f\", (64*1048576 + 150*$1)/1048576}"; } # 64 MiB + 150 B/file
budget=$(budget_mib "$NSMALL")
budget4=$(budget_mib "$N_4")
cat <<EOT

### Warm epoch, $NFILES files of ~110 KB, $THREADS reader threads, median of $RUNS runs x $EPOCHS epochs

| measure | epochfs | epochfs --no-open | direct | ratio | ratio --no-open |
|---|---|---|---|---|---|
| files/s | $fs_files | $no_files | $di_files | $ratio_f | $ratio_nf |
| MB/s | $fs_mb | $no_mb | $di_mb | $ratio_m | $ratio_nm |
| daemon CPU per warm file | $(printf %.4f "$cpu") ms | $(printf %.4f "$cpuno") ms | | | |
| daemon peak RSS ($NFILES files) | $((hwm1 / 1024)) MiB | | |
| daemon peak RSS ($NSMALL files, 2 epochs) | $((hwm2 / 1024)) MiB | budget 64 MiB + 150 B/file = $budget MiB | |
| of which, at the end: anonymous / file-backed (LMDB map, libraries) | $((anon2 / 1024)) / $(((rss2 - anon2) / 1024)) MiB | | |
| daemon peak RSS ($N_4 files, 2 epochs) | $((HWM_4 / 1024)) MiB | budget $budget4 MiB | |
| of which, at the end: anonymous / file-backed | $((ANON_4 / 1024)) / $(((RSS_4 - ANON_4) / 1024)) MiB | | |
| RSS per file above the freshly mounted daemon ($((rss0 / 1024)) MiB), $NSMALL files | $(( (rss2 - rss0) * 1024 / NSMALL )) B | | |
| peak RSS per file, slope from $NSMALL to $N_4 files | $slope_hwm B (anonymous: $slope_anon B) | budget 150 B/file | |
EOT
