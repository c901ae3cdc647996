#!/bin/bash
# SPDX-License-Identifier: MIT
# The HTTP backend against nginx (Debian's nginx-light) on 127.0.0.1: mount
# from the JSON autoindex, then from a manifest file and a manifest URL, and
# read every file with 8 threads in random order, comparing bytes.
source "$(dirname "$0")/remote-lib.sh"
need_daemon

mkdir -p "$T/www/ds"
make_dataset "$T/www/ds" 200
(cd "$T/www/ds" && find . -type f -printf '%P %s\n') | python3 -c '
import sys, urllib.parse
for l in sys.stdin:
    p, s = l.rstrip("\n").rsplit(" ", 1)
    print(urllib.parse.quote(p), s)' | LC_ALL=C sort >"$T/www/manifest.txt"
want=$(count_files "$T/www/ds")
start_nginx "$T/www"
URL=http://127.0.0.1:$NGINX_PORT/ds/

log "autoindex listing"
CACHE_DIR=$T/cache1 mount_epochfs "$URL" || fail "mount failed: $(cat "$T/epochfs.log")"
got=$(count_files "$MNT")
[ "$got" = "$want" ] || fail "autoindex listed $got files, want $want"
compare_tree "$T/www/ds" "$MNT" 8 || fail "bytes differ (autoindex)"
[ "$(stat_field backend_errors)" = 0 ] || fail "backend errors: $(cat "$MNT/.epochfs/stats")"
[ "$(stat_field backend_requests)" -ge "$want" ] || fail "too few backend requests"
umount_epochfs || fail "unmount failed"

log "manifest file"
CACHE_DIR=$T/cache2 mount_epochfs "$URL" --manifest "$T/www/manifest.txt" ||
	fail "mount failed: $(cat "$T/epochfs.log")"
[ "$(count_files "$MNT")" = "$want" ] || fail "manifest listed $(count_files "$MNT"), want $want"
compare_tree "$T/www/ds" "$MNT" 8 || fail "bytes differ (manifest file)"
umount_epochfs || fail "unmount failed"

log "manifest URL"
CACHE_DIR=$T/cache3 mount_epochfs "$URL" --manifest "http://127.0.0.1:$NGINX_PORT/manifest.txt" ||
	fail "mount failed: $(cat "$T/epochfs.log")"
[ "$(count_files "$MNT")" = "$want" ] || fail "manifest URL listed $(count_files "$MNT"), want $want"
compare_tree "$T/www/ds" "$MNT" 8 || fail "bytes differ (manifest URL)"
umount_epochfs || fail "unmount failed"

log "a server that is not there"
MNT=
port=$(free_port)
if "$EPOCHFS" "http://127.0.0.1:$port/" "$T/mnt" -f --cache-dir "$T/cache4" \
	>"$T/down.log" 2>&1; then
	fail "mounting an unreachable server with no snapshot succeeded"
fi
echo "PASS: remote-http"
