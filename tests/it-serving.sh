#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 14: however cached chunks are read to be served (cache/store.c:
# splice then drop the store's pages, the default; O_DIRECT; splice through
# the page cache, as before; a cache on tmpfs, which falls back to the page
# cache; and FUSE passthrough, the kernel reading checked whole files from
# the store itself, fs/passthrough.h), every byte is still verified:
#  * store files damaged under a mount (after it started, before a byte of
#    them was read) are detected by the chunk's xxh3, fetched again, never
#    served wrong; in each read mode, with and without --no-open;
#  * after that first check, reads of the verified chunks (page cache
#    dropped) are right and fetch nothing;
#  * the store's pages: with O_DIRECT or dropping, the store files hold
#    (almost) no page cache after an epoch; kept, they do (fincore);
#  * on tmpfs the daemon says it falls back (log), and all of the above
#    holds there too.
# Files: small ones of ImageNet sizes (one chunk, not a whole number of
# blocks) and a 6,000,000-byte one of six 1 MiB chunks, the last partial.
. "$(dirname "$0")/lib.sh"
require_fuse

SHM=$(mktemp -d /dev/shm/epochfs-it-serving.XXXXXX)
trap 'cleanup; rm -rf "$SHM"' EXIT
SRC=$T/src
gen "$SRC" 3 20 110K
head -c 6000000 /dev/urandom >"$SRC/n00000000/shard.bin"
NFILES=$(find "$SRC" -type f | wc -l)
ROOT=0
[ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/drop_caches ] && ROOT=1
drop() { [ $ROOT = 1 ] && { sync; echo 3 >/proc/sys/vm/drop_caches; }; return 0; }
# resident KiB of the page cache over the store's object files
resident_kib() {
	find "$1/objects" -type f -print0 | xargs -0 fincore -b -n -o RES 2>/dev/null | awk '{s += $1} END {printf "%d", s / 1024}'
}
DATA_KIB=$(du -sk --apparent-size "$SRC" | cut -f1)

# one_case NAME CACHEDIR READS LOGLINE [daemon options...]: READS is
# EPOCHFS_STORE_READS (empty: the default)
one_case() {
	local name=$1 cache=$2 reads=$3 want=$4 vf fetched n res
	shift 4
	log "$name: fill the cache"
	rm -rf "$cache"
	: >"$T/daemon.log"
	EPOCHFS_STORE_READS=$reads mount_fs "$SRC" "$T/mnt" "$cache" --cache-size 1G --chunk-size 1M "$@"
	read_verify "$T/mnt" "$SRC" 4 1
	umount_fs "$T/mnt"
	grep -q "$want" "$T/daemon.log" || { cat "$T/daemon.log"; fail "$name: the log does not say '$want'"; }

	log "$name: a new daemon; 5 store files damaged under it, before any read"
	: >"$T/daemon.log"
	EPOCHFS_STORE_READS=$reads mount_fs "$SRC" "$T/mnt" "$cache" --cache-size 1G --chunk-size 1M "$@"
	n=$(damage_store "$cache" 4)
	[ "$n" -eq 5 ] || fail "$name: expected 5 store files to damage, found $n"
	drop
	read_verify "$T/mnt" "$SRC" 4 1
	vf=$(stat_field "$T/mnt" verify_failures)
	fetched=$(stat_field "$T/mnt" backend_bytes)
	echo "$name: verify_failures=$vf backend_bytes=$fetched"
	[ "$vf" -ge 5 ] || fail "$name: only $vf damaged chunks detected"
	[ "$fetched" -gt 0 ] || fail "$name: the damaged chunks were not fetched again"

	log "$name: the verified chunks, read again from the store (page cache dropped)"
	if [ $ROOT = 1 ]; then
		drop
		r0=$(stat_field "$T/mnt" reads)
		read_verify "$T/mnt" "$SRC" 4 1
		[ "$(stat_field "$T/mnt" verify_failures)" = "$vf" ] || fail "$name: new check failures on verified chunks"
		[ "$(stat_field "$T/mnt" backend_bytes)" = "$fetched" ] || fail "$name: verified chunks were fetched again"
		# The mount's readahead is max_read (fs/main.c): one READ a small
		# file (60 of them, up to 165 KB), six for the 6 MB one; with the
		# kernel's 128 KiB window it was about 1.5 a small file.
		r=$(stat_field "$T/mnt" reads)
		awk -v a="$r0" -v b="$r" -v n="$NFILES" 'BEGIN{printf "%s: READs per file %.2f\n", "'"$name"'", (b - a) / n}'
		[ $((r - r0)) -le $((NFILES + 12)) ] || fail "$name: $((r - r0)) READs for $NFILES files (readahead window not raised?)"
		if [ "$want" = "$PT" ]; then
			# The kernel read the store files itself: no READ, and
			# their pages are the one copy (nothing to drop).
			[ $((r - r0)) -eq 0 ] || fail "$name: $((r - r0)) READs reached the daemon"
			[ "$(stat_field "$T/mnt" passthrough_opens)" -ge "$NFILES" ] || fail "$name: opens did not pass through"
			echo "$name: store pages resident after the epoch: $(resident_kib "$cache") KiB of $DATA_KIB (the one copy)"
		elif command -v fincore >/dev/null; then
			res=$(resident_kib "$cache")
			echo "$name: store pages resident after the epoch: $res KiB of $DATA_KIB"
			[ -n "${DEBUG_RES:-}" ] && find "$cache/objects" -type f -print0 | xargs -0 fincore
			case $cache:$reads in
			"$SHM"/*) ;; # tmpfs: its pages are the cache
			*:keep) [ "$res" -ge $((DATA_KIB / 2)) ] || fail "$name: store pages should stay cached ($res KiB)" ;;
			# dropping after a splice can miss pages the store file's
			# readahead brings back while a file's reads are served out
			# of order (two READs in flight): a quarter at most
			*:|*:drop) [ "$res" -le $((DATA_KIB / 4)) ] || fail "$name: the store's pages were kept ($res KiB of $DATA_KIB)" ;;
			*) [ "$res" -le $((DATA_KIB / 20)) ] || fail "$name: the store's pages were kept ($res KiB of $DATA_KIB)" ;;
			esac
		fi
	else
		echo "$name: not root: page cache not dropped, residency not checked"
	fi
	umount_fs "$T/mnt"
	grep -q "$want" "$T/daemon.log" || fail "$name: the log does not say '$want' at the second mount"
}

DROP="chunks are served by splice, their pages then dropped"
DIRECT="chunks are served by O_DIRECT reads"
TMPFS_LINE="the cache is on tmpfs.*no O_DIRECT"
PT="passthrough: on"
# The daemon's own ways of serving (passthrough off: with it, checked
# chunks of whole files never reach them), then passthrough, where the
# kernel offers it (else the daemon says so and the case is left out).
NOPT=--no-passthrough
one_case default "$T/cache-default" "" "$DROP" $NOPT
one_case default-noopen "$T/cache-default-noopen" "" "$DROP" --no-open
one_case direct "$T/cache-direct" direct "$DIRECT" $NOPT
one_case direct-noopen "$T/cache-direct-noopen" direct "$DIRECT" --no-open
one_case keep "$T/cache-keep" keep "chunks are served by splice through the page cache" $NOPT
PT_ON=0
grep -q "$PT" "$T/daemon.log" && PT_ON=1
# (the last daemon ran with --no-passthrough: ask one that did not)
if [ $PT_ON = 0 ]; then
	: >"$T/daemon.log"
	mount_fs "$SRC" "$T/mnt" "$T/cache-probe" --cache-size 1G
	cat "$T/mnt/.epochfs/stats" >/dev/null
	umount_fs "$T/mnt"
	grep -q "$PT" "$T/daemon.log" && PT_ON=1
fi
if [ $PT_ON = 1 ]; then
	one_case passthrough "$T/cache-pt" "" "$PT"
else
	echo "the kernel does not offer passthrough: its case is left out ($(grep -h 'passthrough:' "$T/daemon.log" | head -1))"
fi
# tmpfs: the default, or O_DIRECT asked for: the store falls back and says so.
if [ "$(stat -f -c %T /dev/shm)" = tmpfs ]; then
	one_case tmpfs "$SHM/cache" "" "$TMPFS_LINE" $NOPT
	one_case tmpfs-direct "$SHM/cache2" direct "$TMPFS_LINE" $NOPT
	one_case tmpfs-noopen "$SHM/cache3" "" "$TMPFS_LINE" --no-open
	[ $PT_ON = 1 ] && one_case tmpfs-passthrough "$SHM/cache4" "" "$PT"
else
	echo "/dev/shm is not a tmpfs here: the tmpfs cases are left out"
fi
grep -h "store:" "$T/daemon.log" | head -3
echo ok
