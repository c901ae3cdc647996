#!/bin/bash
# SPDX-License-Identifier: MIT
# Correct under faults: through the fault proxy (resets, 503 SlowDown,
# truncated bodies, stalls: 10% of requests) every byte read from nginx and
# from s3rver is right; during a full outage cached files still read,
# uncached ones fail with EIO within the documented bound, and after it
# reads succeed again without a remount.
source "$(dirname "$0")/remote-lib.sh"
need_daemon
OUTAGE_BOUND=15   # seconds: 6 retries after backoffs <= 10.2 s, a second kernel read retried once

FAULTS="--reset-rate 0.03 --503-rate 0.03 --truncate-rate 0.035 --stall-rate 0.005 --stall-ms 1500"

make_dataset "$T/www" 150
start_nginx "$T/www"
want=$(count_files "$T/www")

log "nginx behind 10% faults"
start_proxy "$NGINX_PORT" $FAULTS --seed 11
CACHE_DIR=$T/c1 mount_epochfs "http://127.0.0.1:$PROXY_PORT/" ||
	fail "mount failed: $(cat "$T/epochfs.log")"
[ "$(count_files "$MNT")" = "$want" ] || fail "listed $(count_files "$MNT"), want $want"
compare_tree "$T/www" "$MNT" 8 || fail "bytes differ under faults (http)"
echo "retries: $(stat_field backend_retries)"
[ "$(stat_field backend_retries)" -gt 0 ] || fail "no fault was injected"
umount_epochfs || fail "unmount failed"
kill "$PROXY_PID"

log "s3rver behind 10% faults"
start_s3rver
s3_mkbucket "$S3_URL/bkt" || fail "cannot create the bucket"
s3_upload_dir "$T/www" "$S3_URL/bkt/ds" || fail "upload failed"
start_proxy "$S3_PORT" $FAULTS --seed 12
CACHE_DIR=$T/c2 EPOCHFS_S3_MAX_KEYS=20 mount_epochfs s3://bkt/ds \
	--s3-endpoint "http://127.0.0.1:$PROXY_PORT" --s3-path-style ||
	fail "mount failed: $(cat "$T/epochfs.log")"
[ "$(count_files "$MNT")" = "$want" ] || fail "listed $(count_files "$MNT"), want $want"
compare_tree "$T/www" "$MNT" 8 || fail "bytes differ under faults (s3)"
umount_epochfs || fail "unmount failed"
kill "$PROXY_PID"

log "outage"
start_proxy "$NGINX_PORT" --outage-file "$T/outage"
CACHE_DIR=$T/c3 mount_epochfs "http://127.0.0.1:$PROXY_PORT/" ||
	fail "mount failed: $(cat "$T/epochfs.log")"
mapfile -t files < <(cd "$T/www" && find . -type f -size +0 | sed 's|^\./||' | sort)
cached=("${files[@]:0:20}")
uncached=${files[40]}
for f in "${cached[@]}"; do
	cmp -s "$T/www/$f" "$MNT/$f" || fail "$f differs before the outage"
done
touch "$T/outage"
for f in "${cached[@]}"; do
	cmp -s "$T/www/$f" "$MNT/$f" || fail "cached $f does not read during the outage"
done
t0=$(date +%s)
if err=$(cat "$MNT/$uncached" 2>&1 >/dev/null); then
	fail "uncached $uncached read during the outage"
fi
t1=$(date +%s)
echo "uncached read failed after $((t1 - t0)) s: $err"
case "$err" in *"Input/output error"*) ;; *) fail "expected EIO, got: $err" ;; esac
[ $((t1 - t0)) -le $OUTAGE_BOUND ] || fail "EIO took $((t1 - t0)) s (bound $OUTAGE_BOUND s)"
rm -f "$T/outage"
cmp -s "$T/www/$uncached" "$MNT/$uncached" || fail "$uncached does not read after the outage"
compare_tree "$T/www" "$MNT" 8 || fail "bytes differ after the outage"
umount_epochfs || fail "unmount failed"
echo "PASS: remote-faults"
