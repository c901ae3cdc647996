#!/bin/bash
# SPDX-License-Identifier: MIT
# Mount integration: fuse3's mount helper (mount.fuse3), `mount -t
# fuse.epochfs` and an fstab entry (a temporary fstab through `mount -T`).
# mount(8) runs helpers without the caller's PATH, so the daemon must be in
# the default PATH: the test binds a directory holding a link to the built
# daemon over /usr/local/sbin inside a private mount namespace.
. "$(dirname "$0")/lib.sh"
require_fuse
command -v mount.fuse3 >/dev/null || skip "mount.fuse3 missing (Debian package fuse3)"
[ "$(id -u)" -eq 0 ] || skip "mount -t needs root"

mkdir -p "$T/bin"
ln -s "$(realpath "$EPOCHFS")" "$T/bin/epochfs"
gen "$T/src" 3 10 50K

# check_mounted MNT CAPACITY: a live epochfs of that capacity serving SRC.
check_mounted() {
	local i
	for i in $(seq 100); do
		grep -q '"version"' "$1/.epochfs/stats" 2>/dev/null && break
		sleep 0.05
	done
	awk -v m="$1" '$5 == m { for (i = 7; $i != "-"; i++); print $(i + 1) }' /proc/self/mountinfo |
		grep -qx fuse.epochfs || fail "$1 is not mounted as fuse.epochfs"
	[ "$(stat_field "$1" cache_capacity)" -eq "$2" ] || fail "cache_size did not reach the daemon"
	read_verify "$1" "$T/src" 4 1
	"$TOOLS/epochfs-stat" | grep -q "^$1 " || fail "epochfs-stat does not list $1"
}

# unmount MNT: umount(8), then wait until the mount is gone.
unmount() {
	umount "$1" || fail "umount $1"
	! mountpoint -q "$1" || fail "$1 still mounted"
}

if [ -z "$EPOCHFS_IN_NS" ]; then
	log "mount.fuse3 with epochfs on PATH"
	mkdir -p "$T/m1"
	MOUNTS+=("$T/m1")
	PATH=$T/bin:$PATH mount.fuse3 "$T/src" "$T/m1" -t epochfs \
		-o "cache_dir=$T/c1,cache_size=16M,nodev,nosuid" || fail "mount.fuse3 failed"
	check_mounted "$T/m1" $((16 << 20))
	unmount "$T/m1"

	command -v unshare >/dev/null || skip "unshare (util-linux) missing for mount -t"
	unshare -m --propagation private true 2>/dev/null || skip "cannot make a mount namespace"
	log "mount -t and mount -T in a private mount namespace"
	EPOCHFS_IN_NS=1 unshare -m --propagation private bash "$0"
	exit $?
fi

# In the namespace: the link to the daemon in the default PATH.
mount --bind "$T/bin" /usr/local/sbin || fail "cannot bind $T/bin on /usr/local/sbin"

log "mount -t fuse.epochfs SOURCE MNT -o cache_dir=...,cache_size=..."
mkdir -p "$T/m2"
MOUNTS+=("$T/m2")
mount -t fuse.epochfs "$T/src" "$T/m2" -o "cache_dir=$T/c2,cache_size=24M" || fail "mount -t failed"
check_mounted "$T/m2" $((24 << 20))
unmount "$T/m2"

log "an fstab line, through mount -T"
mkdir -p "$T/m3"
MOUNTS+=("$T/m3")
printf '# test fstab\n%s %s fuse.epochfs noauto,nofail,_netdev,cache_dir=%s,cache_size=32M,entry_timeout=60 0 0\n' \
	"$T/src" "$T/m3" "$T/c3" >"$T/fstab"
mount -T "$T/fstab" "$T/m3" || fail "mount -T failed"
check_mounted "$T/m3" $((32 << 20))
unmount "$T/m3"

log "a bad option fails the mount with a message"
mkdir -p "$T/m4"
MOUNTS+=("$T/m4")
mount -t fuse.epochfs "$T/src" "$T/m4" -o "cache_dir=$T/c4,cache_size=lots" 2>"$T/err" &&
	fail "mount with a bad cache_size succeeded"
cat "$T/err"
grep -q "bad cache size" "$T/err" || fail "no reason given"
echo ok
