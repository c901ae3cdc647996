#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 14: FUSE passthrough (fs/passthrough.h).  A file the cache holds
# whole, every chunk checked in this daemon's life, is read by the kernel
# straight from its store file; the daemon still answers the open.
#  * after the fill, an epoch (page cache dropped) is all passthrough opens,
#    no READ reaches the daemon, nothing is fetched, every byte is right,
#    and the stats count each file's bytes as read from the cache;
#  * a new daemon, store files damaged under it before any read: nothing
#    passes through until checked (the damage is found and fetched again,
#    no wrong byte); the next epoch passes through, right;
#  * live opens of one inode never mix modes (the kernel would fail the
#    open with EIO): an open beside a live cached one is cached, beside a
#    live passthrough one passes through; mmap reads right;
#  * staging (--stage-ahead): with a seed, the cached files next in the
#    order are read ahead into RAM before any read (the store files' pages
#    resident, fincore); --stage-ahead 0 stages none;
#  * --no-passthrough: every read through the daemon.
# Where the kernel does not offer passthrough (before Linux 6.9, or without
# CONFIG_FUSE_PASSTHROUGH) the daemon says so, and the test checks that
# reads still come right, then exits 77.
. "$(dirname "$0")/lib.sh"
require_fuse
[ "$(id -u)" = 0 ] || skip "passthrough needs CAP_SYS_ADMIN (run as root)"

SRC=$T/src
gen "$SRC" 3 20 110K
head -c 3000000 /dev/urandom >"$SRC/n00000000/shard.bin"
NFILES=$(find "$SRC" -type f | wc -l)
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
field() { stat_field "$T/mnt" "$1"; }

log "fill"
mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G --chunk-size 1M
read_verify "$T/mnt" "$SRC" 4 1
if grep -q "passthrough: off" "$T/daemon.log"; then
	drop
	read_verify "$T/mnt" "$SRC" 4 1
	grep "passthrough:" "$T/daemon.log"
	umount_fs "$T/mnt"
	skip "this kernel does not offer FUSE passthrough; reads through the daemon are right"
fi
grep -q "passthrough: on" "$T/daemon.log" || { cat "$T/daemon.log"; fail "the daemon does not say whether passthrough is on"; }

log "an epoch of the filled cache: every open passes through"
drop
p0=$(field passthrough_opens); r0=$(field reads); b0=$(field backend_bytes)
h0=$(field read_bytes_from_cache)
read_verify "$T/mnt" "$SRC" 4 1
p=$(( $(field passthrough_opens) - p0 )); r=$(( $(field reads) - r0 ))
h=$(( $(field read_bytes_from_cache) - h0 ))
DBYTES=$(find "$SRC" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
echo "passthrough opens $p of $NFILES, READs $r, bytes from the cache $h of $DBYTES"
[ "$p" -eq "$NFILES" ] || fail "$p of $NFILES opens passed through"
[ "$r" -eq 0 ] || fail "$r READs reached the daemon for passthrough opens"
# (the kernel's reads are not seen: each open counts its file whole)
[ "$h" -eq "$DBYTES" ] || fail "passthrough opens counted $h bytes from the cache, not $DBYTES"
[ "$(field backend_bytes)" = "$b0" ] || fail "a passthrough epoch fetched"
umount_fs "$T/mnt"

log "a new daemon, 3 store files damaged before any read"
mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G --chunk-size 1M
n=$(damage_store "$T/cache" 2)
[ "$n" -eq 3 ] || fail "expected 3 store files to damage, found $n"
drop
read_verify "$T/mnt" "$SRC" 4 1
p=$(field passthrough_opens); vf=$(field verify_failures)
echo "first epoch: passthrough opens $p, verify_failures $vf"
[ "$p" -eq 0 ] || fail "$p opens passed through before their chunks were checked"
[ "$vf" -ge 3 ] || fail "only $vf damaged chunks detected"
drop
read_verify "$T/mnt" "$SRC" 4 1
p=$(field passthrough_opens)
echo "second epoch: passthrough opens $p of $NFILES"
[ "$p" -eq "$NFILES" ] || fail "$p of $NFILES opens passed through once checked"
umount_fs "$T/mnt"

log "live opens of one inode keep one mode"
mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G --chunk-size 1M
REL=$(cd "$SRC" && find . -type f -name '*.JPEG' | sort | head -1)
python3 - "$T/mnt" "$SRC" "$REL" <<'EOF' || fail "mixed opens of one inode"
import json, mmap, os, sys, time
mnt, src, rel = sys.argv[1], sys.argv[2], sys.argv[3]
want = open(os.path.join(src, rel), "rb").read()
path = os.path.join(mnt, rel)
def pt():
    return json.load(open(os.path.join(mnt, ".epochfs/stats")))["passthrough_opens"]
def read_all(fd):
    os.lseek(fd, 0, 0)
    out = b""
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            return out
        out += b
p0 = pt()
a = os.open(path, os.O_RDONLY)          # not checked yet in this daemon: cached
assert read_all(a) == want, "first open: wrong bytes"
b = os.open(path, os.O_RDONLY)          # checked now, but a cached open is live
assert read_all(b) == want, "second open: wrong bytes"
assert pt() == p0, "an open passed through beside a live cached one"
os.close(a); os.close(b)
# Alone: passes through, once the daemon has had the two RELEASEs (the
# kernel sends them after close() returns, without waiting).
for attempt in range(200):
    p0 = pt()
    c = os.open(path, os.O_RDONLY)
    if pt() == p0 + 1:
        break
    os.close(c)
    time.sleep(0.02)
else:
    raise AssertionError("a checked file's open did not pass through")
d = os.open(path, os.O_RDONLY)          # beside a live passthrough open
assert pt() == p0 + 2, "an open beside a live passthrough one did not pass through"
assert read_all(c) == want and read_all(d) == want, "passthrough: wrong bytes"
m = mmap.mmap(c, len(want), prot=mmap.PROT_READ)
assert m[:] == want, "passthrough mmap: wrong bytes"
m.close()
os.close(c); os.close(d)
print("modes: ok")
EOF
umount_fs "$T/mnt"

log "staging: with a seed, the next cached files are read ahead into RAM"
mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G --chunk-size 1M
read_verify "$T/mnt" "$SRC" 4 1          # checked in this daemon's life
drop
echo "seed=7" >"$T/mnt/.epochfs/seed" || fail "cannot write the seed"
cp "$T/mnt/.epochfs/order" "$T/order"
NORDER=$(wc -l <"$T/order") # the images (the default manifest)
# Before any read: the window (128 files) covers the whole epoch.
for i in $(seq 100); do
	[ "$(field prefetch_staged)" -ge "$NORDER" ] && break
	sleep 0.05
done
st=$(field prefetch_staged)
[ "$st" -ge "$NORDER" ] || fail "$st of $NORDER files staged before any read"
if command -v fincore >/dev/null; then
	IMG_KIB=$(( $(cd "$SRC" && cat $(cat "$T/order") | wc -c) / 1024 ))
	res=$(find "$T/cache/objects" -type f -print0 | xargs -0 fincore -b -n -o RES 2>/dev/null |
		awk '{s += $1} END {printf "%d", s / 1024}')
	echo "staged $st files; store pages resident: $res KiB for $IMG_KIB KiB of images"
	[ "$res" -ge $((IMG_KIB * 8 / 10)) ] || fail "staging left the images on disk ($res of $IMG_KIB KiB in RAM)"
fi
p0=$(field passthrough_opens)
"$TOOLS/epochfs-read" --threads 1 --order "$T/order" --verify "$SRC" "$T/mnt" ||
	fail "reading in the plan's order gave wrong bytes"
p=$(( $(field passthrough_opens) - p0 ))
echo "passthrough opens $p of $NORDER"
[ "$p" -eq "$NORDER" ] || fail "$p of $NORDER opens passed through"
umount_fs "$T/mnt"
mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G --chunk-size 1M --stage-ahead 0
echo "seed=8" >"$T/mnt/.epochfs/seed" || fail "cannot write the seed"
cp "$T/mnt/.epochfs/order" "$T/order"
"$TOOLS/epochfs-read" --threads 1 --order "$T/order" --verify "$SRC" "$T/mnt" >/dev/null ||
	fail "reading in the plan's order gave wrong bytes"
[ "$(field prefetch_staged)" = 0 ] || fail "--stage-ahead 0 staged files"
umount_fs "$T/mnt"

log "--no-passthrough"
mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G --chunk-size 1M --no-passthrough
read_verify "$T/mnt" "$SRC" 4 1
drop
read_verify "$T/mnt" "$SRC" 4 1
[ "$(field passthrough_opens)" = 0 ] || fail "--no-passthrough: opens passed through"
[ "$(field reads)" -ge "$NFILES" ] || fail "--no-passthrough: reads did not reach the daemon"
umount_fs "$T/mnt"
echo ok
