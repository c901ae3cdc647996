#!/bin/bash
# SPDX-License-Identifier: MIT
# Shared helpers of the it-*.sh integration tests: a private temp dir, a
# generated dataset, mounting and unmounting the daemon, reading stats.
# Sourced, not run.  Every test cleans up what it started in its EXIT trap.

SRCDIR=${SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BUILDDIR=${BUILDDIR:-$SRCDIR}
EPOCHFS=${EPOCHFS:-$BUILDDIR/epochfs}
TOOLS=${TOOLS:-$BUILDDIR}
T=$(mktemp -d /tmp/epochfs-it.XXXXXX)
MOUNTS=()
DPIDS=()

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
log() { echo "== $*"; }

cleanup() {
	local m p
	for m in "${MOUNTS[@]}"; do
		if mountpoint -q "$m" 2>/dev/null; then
			fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
		fi
	done
	for p in "${DPIDS[@]}"; do
		kill -9 "$p" 2>/dev/null
	done
	for m in "${TMPFS[@]}"; do
		umount -l "$m" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT

require_fuse() {
	[ -e /dev/fuse ] || skip "no /dev/fuse on this machine"
	command -v fusermount3 >/dev/null || skip "fusermount3 missing (Debian package fuse3)"
	[ -x "$EPOCHFS" ] || fail "daemon not built: $EPOCHFS"
}

# gen DIR [classes] [per-class] [size]
gen() {
	"$TOOLS/epochfs-gendata" --classes "${2:-6}" --per-class "${3:-40}" --size "${4:-110K}" "$1" >/dev/null ||
		fail "cannot generate dataset"
}

# mount_fs SRC MNT CACHE [options...]: foreground daemon in the background;
# waits until the stats file answers.  Sets DPID.
mount_fs() {
	local src=$1 mnt=$2 cache=$3 i
	shift 3
	mkdir -p "$mnt"
	# EPOCHFS_TEST_ARGS: daemon options for a whole run (e.g. --no-open).
	"$EPOCHFS" "$src" "$mnt" -f --cache-dir "$cache" "$@" $EPOCHFS_TEST_ARGS >>"$T/daemon.log" 2>&1 &
	DPID=$!
	DPIDS+=("$DPID")
	MOUNTS+=("$mnt")
	for i in $(seq 200); do
		if [ -r "$mnt/.epochfs/stats" ] && grep -q '"version"' "$mnt/.epochfs/stats" 2>/dev/null; then
			return 0
		fi
		kill -0 "$DPID" 2>/dev/null || { cat "$T/daemon.log"; fail "daemon exited before mounting"; }
		sleep 0.05
	done
	cat "$T/daemon.log"
	fail "mount of $src on $mnt did not come up"
}

# umount_fs MNT: unmount and wait for the daemon to exit.
umount_fs() {
	local i
	fusermount3 -u "$1" || fail "cannot unmount $1"
	for i in $(seq 200); do
		kill -0 "$DPID" 2>/dev/null || return 0
		sleep 0.05
	done
	fail "daemon did not exit after unmount"
}

# stat_field MNT KEY: one number from the stats file.
stat_field() {
	sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$1/.epochfs/stats"
}

# damage_store CACHE SMALL: write 8 bytes of garbage at offset 1000 of every
# store file over 2 MiB and of the first SMALL of the others; prints how
# many files it damaged.
damage_store() {
	local n=0 f
	for f in $(find "$1/objects" -type f -size +2M; find "$1/objects" -type f -size -2M | sort | head -"$2"); do
		printf 'XXXXXXXX' | dd of="$f" bs=1 seek=1000 conv=notrunc status=none
		n=$((n + 1))
	done
	echo "$n"
}

# read_verify MNT SRC [threads] [epochs]: read everything, compare bytes.
read_verify() {
	"$TOOLS/epochfs-read" --threads "${3:-8}" --epochs "${4:-1}" --seed "$RANDOM" --verify "$2" "$1" ||
		fail "reading $1 gave wrong bytes or errors"
}
