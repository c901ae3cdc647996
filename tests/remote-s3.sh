#!/bin/bash
# SPDX-License-Identifier: MIT
# The S3 backend against s3rver (npm) on 127.0.0.1, reached through the fault
# proxy in its SigV4-checking mode (s3rver does not check signatures): a
# listing of many pages, every object read with 8 threads and compared, wrong
# credentials refused at mount with a clear message, and hostile keys.
source "$(dirname "$0")/remote-lib.sh"
need_daemon
start_s3rver
start_proxy "$S3_PORT" --verify-sigv4 S3RVER:S3RVER
EP=http://127.0.0.1:$PROXY_PORT

s3_mkbucket "$S3_URL/bkt" || fail "cannot create the bucket"
make_dataset "$T/data" 150
s3_upload_dir "$T/data" "$S3_URL/bkt/ds" || fail "upload failed"
want=$(count_files "$T/data")

log "listing in pages of 16, reading everything"
EPOCHFS_S3_MAX_KEYS=16 mount_epochfs s3://bkt/ds --s3-endpoint "$EP" --s3-path-style ||
	fail "mount failed: $(cat "$T/epochfs.log")"
got=$(count_files "$MNT")
[ "$got" = "$want" ] || fail "listed $got objects, want $want"
compare_tree "$T/data" "$MNT" 8 || fail "bytes differ"
[ "$(stat_field backend_errors)" = 0 ] || fail "backend errors: $(cat "$MNT/.epochfs/stats")"
umount_epochfs || fail "unmount failed"

log "a remount of the unchanged bucket uses the index's snapshot, no listing"
EPOCHFS_S3_MAX_KEYS=16 mount_epochfs s3://bkt/ds --s3-endpoint "$EP" --s3-path-style ||
	fail "remount failed: $(cat "$T/epochfs.log")"
grep -q "using the snapshot" "$T/epochfs.log" || fail "listed again: $(cat "$T/epochfs.log")"
# the one-key probe of the credentials is the only request
[ "$(stat_field backend_requests)" = 1 ] || fail "remount requests: $(cat "$MNT/.epochfs/stats")"
[ "$(count_files "$MNT")" = "$want" ] || fail "the snapshot shows $(count_files "$MNT") objects, want $want"
umount_epochfs || fail "unmount failed"

log "wrong credentials"
MNT=
for creds in "S3RVER:wrong-secret" "NOBODY:S3RVER"; do
	if AWS_ACCESS_KEY_ID=${creds%%:*} AWS_SECRET_ACCESS_KEY=${creds#*:} \
		"$EPOCHFS" s3://bkt/ds "$T/mnt" -f --cache-dir "$T/cache-bad" --s3-endpoint "$EP" \
		>"$T/bad.log" 2>&1; then
		fail "mount with wrong credentials succeeded"
	fi
	grep -q "access denied" "$T/bad.log" || fail "no clear message: $(cat "$T/bad.log")"
	grep -q "wrong-secret" "$T/bad.log" && fail "the secret appears in the log"
done

log "hostile keys"
s3_mkbucket "$S3_URL/hostile" || fail "cannot create the bucket"
echo x >"$T/one"
# s3rver keeps objects as files, so it cannot store '//' or segments over
# NAME_MAX; those cases are covered by tests/check_s3.c.
for k in a a/b a-1 'dir/' 'dir/f' 'sp%20ace' 'd%C3%BCn' '%25lit' 'amp%26%3C' '.epochfs/stats' \
	'ok/file'; do
	curl -sf --path-as-is --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "$T/one" "$S3_URL/hostile/h/$k" \
		>/dev/null || fail "cannot upload $k"
done
CACHE_DIR=$T/cache-h mount_epochfs s3://hostile/h --s3-endpoint "$EP" --s3-path-style ||
	fail "mount failed: $(cat "$T/epochfs.log")"
for f in a/b a-1 dir/f "sp ace" "dün" "%lit" "amp&<" ok/file; do
	[ "$(cat "$MNT/$f")" = x ] || fail "key '$f' not shown right"
done
[ -d "$MNT/a" ] || fail "a should be the directory of a/b"
[ "$(ls "$MNT/.epochfs" | grep -c stats)" = 1 ] || fail "a key shadowed the control dir"
[ "$(stat_field skipped_keys)" -ge 1 ] || fail "skipped keys not counted"
umount_epochfs
echo "PASS: remote-s3"
