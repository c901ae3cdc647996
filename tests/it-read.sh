#!/bin/bash
# SPDX-License-Identifier: MIT
# A real mount of a generated tree: every file read in random order by
# several threads equals the source; listings and stat match the source;
# .epochfs is reachable but never listed; odd names work; writes get EROFS.
. "$(dirname "$0")/lib.sh"
require_fuse

SRC=$T/src
gen "$SRC" 6 40 110K
# Multi-chunk files (chunk size 1 MiB below) and awkward names.
head -c 5000000 /dev/urandom >"$SRC/n00000001/big shard.tar"
head -c 3145728 /dev/urandom >"$SRC/n00000002/exactly-three-chunks.bin"
: >"$SRC/n00000003/empty"
mkdir -p "$SRC/名前 with spaces/ünïcödé"
echo "unicode" >"$SRC/名前 with spaces/ünïcödé/файл.txt"
long=$(printf 'L%.0s' $(seq 255))
echo "long name" >"$SRC/n00000004/$long"
ln -s n00000000 "$SRC/linkdir"   # a link to a directory: skipped
ln -s ../n00000000/img_000001.JPEG "$SRC/n00000005/link.JPEG"  # a link to a file: shown

mount_fs "$SRC" "$T/mnt" "$T/cache" --cache-size 1G --chunk-size 1M
MNT=$T/mnt

log "random-order multi-threaded read, byte for byte"
read_verify "$MNT" "$SRC" 8 1

log "listings and stat match the source"
(cd "$SRC" && find . -mindepth 1 ! -name linkdir -printf '%P|%s|%Ts\n' | sort) >"$T/src.lst"
# find reports the link itself; the mount shows the file it points to.
sed -i "s#^n00000005/link.JPEG|[0-9]*|[0-9]*#n00000005/link.JPEG|$(stat -L -c %s "$SRC/n00000005/link.JPEG")|$(stat -L -c %Y "$SRC/n00000005/link.JPEG")#" "$T/src.lst"
(cd "$MNT" && find . -mindepth 1 -type f -printf '%P|%s|%Ts\n'; find . -mindepth 1 -type d -printf '%P|%s|%Ts\n') | sort >"$T/mnt.lst"
# Directories: compare names only (sizes and times are the mount's own).
cut -d'|' -f1 "$T/src.lst" >"$T/src.names"
cut -d'|' -f1 "$T/mnt.lst" >"$T/mnt.names"
diff "$T/src.names" "$T/mnt.names" || fail "the mount lists different names"
(cd "$SRC" && find . -mindepth 1 -type f ! -type l -printf '%P|%s|%Ts\n' | sort) >"$T/src.files"
(cd "$MNT" && find . -mindepth 1 -type f ! -name link.JPEG -printf '%P|%s|%Ts\n' | sort) >"$T/mnt.files"
diff "$T/src.files" "$T/mnt.files" || fail "sizes or mtimes differ"
[ "$(cat "$MNT/名前 with spaces/ünïcödé/файл.txt")" = unicode ] || fail "unicode path"
[ "$(cat "$MNT/n00000004/$long")" = "long name" ] || fail "255-byte name"
[ ! -e "$MNT/linkdir" ] || fail "a link to a directory was shown"

log ".epochfs is reachable by path but not listed"
ls -a "$MNT" | grep -q '^\.epochfs$' && fail ".epochfs appears in readdir of the root"
ls "$MNT/.epochfs" | grep -q '^stats$' || fail ".epochfs/stats not reachable"
python3 - "$MNT" <<'PY' || fail "os.scandir sees .epochfs"
import os, sys
names = [e.name for e in os.scandir(sys.argv[1])]
sys.exit(1 if ".epochfs" in names else 0)
PY

log "every write-side operation fails with EROFS"
f="$MNT/n00000000/img_000000.JPEG"
for op in "touch $MNT/new" "mkdir $MNT/d" "rm -f $f" "mv $f $MNT/x" "ln -s x $MNT/l" \
	"chmod 777 $f" "truncate -s 0 $f" "cp /etc/hostname $MNT/n00000000/"; do
	out=$(eval "$op" 2>&1) && fail "'$op' succeeded"
	echo "$out" | grep -q "Read-only file system" || fail "'$op' failed without EROFS: $out"
done
python3 - "$f" <<'PY' || fail "open for writing did not give EROFS"
import errno, os, sys
try:
    os.open(sys.argv[1], os.O_WRONLY)
except OSError as e:
    sys.exit(0 if e.errno == errno.EROFS else 1)
sys.exit(1)
PY
cmp "$f" "$SRC/n00000000/img_000000.JPEG" || fail "file changed"

log "xattr user.epochfs.cached reports cached bytes"
v=$(getfattr --only-values -n user.epochfs.cached "$MNT/n00000001/big shard.tar" 2>/dev/null) ||
	fail "getfattr failed"
[ "$v" = "5000000/5000000" ] || fail "user.epochfs.cached = $v"

umount_fs "$MNT"
echo "ok"
