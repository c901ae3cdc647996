#!/bin/bash
# SPDX-License-Identifier: MIT
# `mount -t fuse.epochfs` and an fstab line with the daemon installed where
# mount.fuse3 would not find it: `make install` puts the mount helper
# (tools/mount.fuse.epochfs) where mount(8) looks, naming the installed
# daemon.  Installed into a temporary PREFIX; in a private mount namespace
# that directory's sbin is bound over /sbin, so that mount(8) can use only
# our helper (mount.fuse3 hidden) and finds no epochfs in any PATH.
# Everything installed lives under $T and goes with it; every mount is
# unmounted with fusermount3 -u inside the namespace.
. "$(dirname "$0")/lib.sh"
require_fuse
[ "$(id -u)" -eq 0 ] || skip "mount -t and a bind over /sbin need root"
command -v unshare >/dev/null || skip "unshare (util-linux) missing"
mount --help 2>&1 | grep -q -- "--fstab" || skip "this mount(8) has no -T/--fstab"

if [ -z "$EPOCHFS_IN_NS" ]; then
	unshare -m --propagation private true 2>/dev/null || skip "cannot make a mount namespace"
	EPOCHFS_IN_NS=1 unshare -m --propagation private bash "$0"
	exit $?
fi

log "make install PREFIX=$T/prefix MOUNT_HELPER_DIR=$T/prefix/sbin"
make -s -C "$SRCDIR" B="$BUILDDIR" install PREFIX="$T/prefix" MOUNT_HELPER_DIR="$T/prefix/sbin" >/dev/null ||
	fail "make install"
H=$T/prefix/sbin/mount.fuse.epochfs
[ -x "$H" ] || fail "make install put no mount helper in $T/prefix/sbin"
grep -q "^EPOCHFS=$T/prefix/bin/epochfs\$" "$H" || fail "the helper does not name the installed daemon"
"$H" --help | grep -q "usage: mount.fuse.epochfs" || fail "helper --help"

gen "$T/src" 2 5 20K
mkdir -p "$T/m1" "$T/m2"
MOUNTS+=("$T/m1" "$T/m2")
sbin=$(realpath /sbin)
mount --bind "$T/prefix/sbin" "$sbin" || skip "cannot bind $T/prefix/sbin over $sbin"
[ -e "$sbin/mount.fuse3" ] && fail "mount.fuse3 still visible"

# check MNT CACHE: mounted as fuse.epochfs by the installed daemon, and right.
check() {
	local pid
	awk -v m="$1" '$5 == m { for (i = 7; $i != "-"; i++); print $(i + 1) }' /proc/self/mountinfo |
		grep -qx fuse.epochfs || fail "$1 is not mounted as fuse.epochfs"
	read -r pid _ <"$2/lock"
	DPIDS+=("$pid")
	[ "$(readlink "/proc/$pid/exe")" = "$T/prefix/bin/epochfs" ] ||
		fail "$1 is served by $(readlink "/proc/$pid/exe"), not the installed daemon"
	read_verify "$1" "$T/src" 2 1
}

log "mount -t fuse.epochfs, with no epochfs in PATH"
env -i /usr/bin/mount -t fuse.epochfs "$T/src" "$T/m1" -o "cache_dir=$T/c1,cache_size=16M,nodev" ||
	fail "mount -t fuse.epochfs failed"
check "$T/m1" "$T/c1"

log "an fstab line through mount -a -T FILE"
printf '# test fstab\n%s %s fuse.epochfs cache_dir=%s,cache_size=24M,nofail,_netdev 0 0\n' \
	"$T/src" "$T/m2" "$T/c2" >"$T/fstab"
env -i /usr/bin/mount -a -T "$T/fstab" || fail "mount -a -T failed"
check "$T/m2" "$T/c2"
[ "$(stat_field "$T/m2" cache_capacity)" -eq $((24 << 20)) ] || fail "cache_size did not reach the daemon"

log "mount -f (fake) mounts nothing"
mkdir -p "$T/m3"
env -i /usr/bin/mount -f -t fuse.epochfs "$T/src" "$T/m3" -o "cache_dir=$T/c3" || fail "mount -f failed"
mountpoint -q "$T/m3" && fail "mount -f mounted"

fusermount3 -u "$T/m1" || fail "unmount $T/m1"
fusermount3 -u "$T/m2" || fail "unmount $T/m2"
umount "$sbin"
echo ok
