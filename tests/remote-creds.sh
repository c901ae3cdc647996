#!/bin/bash
# SPDX-License-Identifier: MIT
# S3 credentials from the AWS credential services, end to end: the daemon
# gets its keys from tests/fake_aws.py (IMDSv2, ECS, STS web identity on
# 127.0.0.1) and reads a bucket of s3rver through the fault proxy, which
# checks every SigV4 signature against the keys that fake issues: a request
# signed with anything else is refused.  Every run points IMDS at the fake
# (AWS_EC2_METADATA_SERVICE_ENDPOINT) or disables it: nothing here talks to
# 169.254.x.x or any address but 127.0.0.1.
source "$(dirname "$0")/remote-lib.sh"
need_daemon
need_s3rver
# s3rver knows one key pair (S3RVER); the fake's keys are added to its
# account by a module loaded before it starts.  s3rver does not check SigV4
# signatures: the fault proxy in front of it does.
cat >"$T/keys.js" <<EOF
const a = require("$NPM_DIR/node_modules/s3rver/lib/models/account.js");
for (const s of ["imds", "ecs", "sts"]) {
  a.DUMMY_ACCOUNT.createKeyPair("ASIA" + s.toUpperCase(), "secret-" + s);
  for (let i = 1; i <= 999; i++) {   // the rotating keys of --rotate
    const n = String(i).padStart(4, "0");
    a.DUMMY_ACCOUNT.createKeyPair("ASIA" + s.toUpperCase() + n, "secret-" + s + n);
  }
}
EOF
S3_PORT=$(free_port)
mkdir -p "$T/s3data"
node --openssl-legacy-provider -r "$T/keys.js" "$S3RVER" -d "$T/s3data" -a 127.0.0.1 \
	-p "$S3_PORT" -s --no-vhost-buckets >"$T/s3rver.log" 2>&1 &
PIDS+=($!)
wait_port "$S3_PORT" || fail "s3rver did not start: $(cat "$T/s3rver.log")"
S3_URL=http://127.0.0.1:$S3_PORT
export AWS_REGION=us-east-1
s3_mkbucket "$S3_URL/bkt" || fail "cannot create the bucket"
make_dataset "$T/data" 30
s3_upload_dir "$T/data" "$S3_URL/bkt/ds" || fail "upload failed"
want=$(count_files "$T/data")

# From here on the daemon finds no key in the environment or ~/.aws.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE \
	AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN \
	AWS_ROLE_SESSION_NAME AWS_ENDPOINT_URL_STS AWS_CONTAINER_CREDENTIALS_RELATIVE_URI \
	AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_AUTHORIZATION_TOKEN \
	AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE AWS_EC2_METADATA_DISABLED \
	AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
export HOME=$T/home
mkdir -p "$HOME"

python3 "$SRCDIR/tests/fake_aws.py" --ecs-auth ecs-auth-token --web-token web-identity-jwt \
	--log "$T/fake.log" >"$T/fake.out" 2>&1 &
PIDS+=($!)
for i in $(seq 100); do
	grep -q '^PORT ' "$T/fake.out" && break
	sleep 0.1
done
FAKE_PORT=$(sed -n 's/^PORT //p' "$T/fake.out")
[ -n "$FAKE_PORT" ] || fail "fake_aws.py did not start: $(cat "$T/fake.out")"
FAKE=http://127.0.0.1:$FAKE_PORT
export AWS_EC2_METADATA_SERVICE_ENDPOINT=$FAKE

# The proxy checks signatures with one key pair: one proxy per source.
start_proxy "$S3_PORT" --verify-sigv4 ASIAIMDS:secret-imds
P_IMDS=$PROXY_PORT
start_proxy "$S3_PORT" --verify-sigv4 ASIAECS:secret-ecs
P_ECS=$PROXY_PORT
start_proxy "$S3_PORT" --verify-sigv4 ASIASTS:secret-sts
P_STS=$PROXY_PORT

# check_mount NAME PROXY_PORT: mount s3://bkt/ds through that proxy, read
# every file, unmount; the log must name the source NAME.
check_mount() {
	local name=$1 port=$2
	CACHE_DIR=$T/cache-$port mount_epochfs s3://bkt/ds --s3-endpoint "http://127.0.0.1:$port" \
		--s3-path-style || fail "$name: mount failed: $(cat "$T/epochfs.log")"
	[ "$(count_files "$MNT")" = "$want" ] || fail "$name: listed $(count_files "$MNT"), want $want"
	compare_tree "$T/data" "$MNT" 4 || fail "$name: bytes differ"
	[ "$(stat_field backend_errors)" = 0 ] || fail "$name: backend errors: $(cat "$MNT/.epochfs/stats")"
	umount_epochfs || fail "$name: unmount failed"
	grep -q "AWS credentials from $name" "$T/epochfs.log" ||
		fail "$name: the log does not name the source: $(cat "$T/epochfs.log")"
	for s in secret-imds secret-ecs secret-sts token-imds token-ecs token-sts ecs-auth-token \
		web-identity-jwt; do
		grep -q "$s" "$T/epochfs.log" && fail "$name: '$s' appears in the log"
	done
	MNT=
}

log "instance metadata (IMDSv2)"
check_mount "instance metadata (IMDSv2)" "$P_IMDS"
grep -q "key ...IMDS, with a session token" "$T/epochfs.log" || fail "imds: $(cat "$T/epochfs.log")"
grep -q "^PUT /latest/api/token 200" "$T/fake.log" || fail "no IMDSv2 token asked: $(cat "$T/fake.log")"
grep -q "^GET /latest/meta-data/iam/security-credentials/fake-role 200 issued ASIAIMDS" \
	"$T/fake.log" || fail "no IMDS credentials issued: $(cat "$T/fake.log")"

log "IMDS credentials where the store wants others: refused, the source named"
if CACHE_DIR=$T/cache-bad mount_epochfs s3://bkt/ds --s3-endpoint "http://127.0.0.1:$P_ECS" \
	--s3-path-style; then
	fail "a mount signed with the wrong keys succeeded"
fi
grep -q "access denied.*with the credentials from instance metadata" "$T/epochfs.log" ||
	fail "no clear message: $(cat "$T/epochfs.log")"
MNT=

log "ECS container credentials"
AWS_CONTAINER_CREDENTIALS_FULL_URI=$FAKE/ecs/creds AWS_CONTAINER_AUTHORIZATION_TOKEN=ecs-auth-token \
	check_mount "ECS container" "$P_ECS"
grep -q "^GET /ecs/creds 200 issued ASIAECS" "$T/fake.log" || fail "ecs: $(cat "$T/fake.log")"
grep -q "/latest/api/token" <(sed -n '/ecs\/creds/,$p' "$T/fake.log") &&
	fail "IMDS was asked although ECS was configured"

log "web identity (STS AssumeRoleWithWebIdentity)"
echo web-identity-jwt >"$T/jwt"
AWS_WEB_IDENTITY_TOKEN_FILE=$T/jwt AWS_ROLE_ARN=arn:aws:iam::123456789012:role/irsa \
	AWS_ROLE_SESSION_NAME=remote-creds AWS_ENDPOINT_URL_STS=$FAKE \
	check_mount "web identity" "$P_STS"
grep -q "^POST / 200 issued ASIASTS session remote-creds" "$T/fake.log" ||
	fail "sts: $(cat "$T/fake.log")"

log "refresh: temporary credentials renewed while mounted reach the requests"
# A second fake: every issue gets new keys, valid 302 s, so due for renewal
# 2 s later (5 minutes before they expire); it is also the store, passing
# to s3rver only requests signed with a key it issued, its secret and its
# token.  s3rver knows these keys too (keys.js).
python3 "$SRCDIR/tests/fake_aws.py" --rotate --expire-in 302 --s3-target "$S3_PORT" \
	--log "$T/fake2.log" >"$T/fake2.out" 2>&1 &
PIDS+=($!)
for i in $(seq 100); do
	grep -q '^PORT ' "$T/fake2.out" && break
	sleep 0.1
done
F2=$(sed -n 's/^PORT //p' "$T/fake2.out")
[ -n "$F2" ] || fail "the second fake_aws.py did not start: $(cat "$T/fake2.out")"
EPOCHFS_CREDS_MIN_RETRY_S=1 AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:$F2 \
	CACHE_DIR=$T/cache-refresh mount_epochfs s3://bkt/ds --s3-endpoint "http://127.0.0.1:$F2" \
	--s3-path-style || fail "refresh: mount failed: $(cat "$T/epochfs.log")"
if grep -q "cannot take refreshed ones" "$T/epochfs.log"; then
	# the fetch engine has no per-request credential hook (FETCH_AUTH_HOOK)
	log "refresh: not checked, this fetch engine takes credentials once"
	umount_epochfs
	MNT=
else
	sleep 5
	compare_tree "$T/data" "$MNT" 4 || fail "refresh: bytes differ"
	[ "$(stat_field backend_errors)" = 0 ] || fail "refresh: errors: $(cat "$MNT/.epochfs/stats")"
	umount_epochfs || fail "refresh: unmount failed"
	MNT=
	grep -q "refreshed: key" "$T/epochfs.log" || fail "refresh: none logged: $(cat "$T/epochfs.log")"
	grep -q " s3 refused" "$T/fake2.log" && fail "refresh: requests refused: $(grep refused "$T/fake2.log")"
	first=$(grep -m1 -o ' s3 ASIAIMDS[0-9]*' "$T/fake2.log")
	last=$(grep -o ' s3 ASIAIMDS[0-9]*' "$T/fake2.log" | tail -1)
	[ -n "$first" ] && [ "$first" != "$last" ] ||
		fail "refresh: the requests did not move to new keys ($first, $last)"
	log "requests signed first with${first# s3}, last with${last# s3}"
fi

log "nothing anywhere: the mount fails saying where it looked"
if AWS_EC2_METADATA_DISABLED=true "$EPOCHFS" s3://bkt/ds "$T/mnt" -f --cache-dir "$T/cache-none" \
	--s3-endpoint "http://127.0.0.1:$P_IMDS" >"$T/none.log" 2>&1; then
	fail "a mount without credentials succeeded"
fi
grep -q "no AWS credentials (.*AWS_EC2_METADATA_DISABLED" "$T/none.log" ||
	fail "no clear message: $(cat "$T/none.log")"
echo "PASS: remote-creds"
