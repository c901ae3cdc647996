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
log "a server that accepts and never answers (--timeout 1 --retries 2)"
port=$(free_port)
python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
held = []
while True:
    held.append(s.accept()[0])' "$port" &
PIDS+=($!)
wait_port "$port" || fail "the hung server did not start"
t0=$(date +%s.%N)
if "$EPOCHFS" "http://127.0.0.1:$port/" "$T/mnt" -f --cache-dir "$T/cache5" \
	--timeout 1 --retries 2 >"$T/hung.log" 2>&1; then
	fail "mounting a hung server succeeded"
fi
secs=$(awk "BEGIN{print $(date +%s.%N) - $t0}")
cat "$T/hung.log"
# 3 attempts of 1 s and 0.3-0.6 s of backoff; the daemon's start on top
awk "BEGIN{exit !($secs >= 2.8 && $secs < 8)}" || fail "a hung server failed the mount after $secs s"
grep -q "attempt 1 of 3 failed: connected, but no answer within 1 s; retrying" "$T/hung.log" ||
	fail "no line for the first retry"
grep -q "attempt 2 of 3 failed: connected, but no answer within 1 s; retrying" "$T/hung.log" ||
	fail "no line for the second retry"
grep -q "giving up on / after 3 attempts: connected, but no answer within 1 s" "$T/hung.log" ||
	fail "no give-up line"
echo "a hung server fails the mount after $secs s"
echo "PASS: remote-http"
