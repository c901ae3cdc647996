#!/bin/bash
# SPDX-License-Identifier: MIT
# Shared helpers of the remote-*.sh integration tests: start nginx, s3rver
# and the fault proxy on 127.0.0.1 in a private temp dir, make a dataset,
# mount and read it back.  Sourced, not run: run alone it skips (77).

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	echo "remote-lib.sh is a library of the remote-*.sh tests, not a test"
	exit 77
fi

SRCDIR=${SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
. "$SRCDIR/tests/serve-lib.sh"
BUILDDIR=${BUILDDIR:-$PWD}
EPOCHFS=${EPOCHFS:-$BUILDDIR/epochfs}
NPM_DIR=${EPOCHFS_NPM_DIR:-$HOME/.cache/epochfs-npm}
T=$(mktemp -d /tmp/epochfs-remote.XXXXXX)
PIDS=()
MNT=

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
log() { echo "== $*"; }

cleanup() {
	local p
	if [ -n "$MNT" ] && mountpoint -q "$MNT" 2>/dev/null; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null
	fi
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT

# start_nginx ROOT: serve ROOT with a JSON autoindex; sets NGINX_PORT.
start_nginx() {
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || skip "nginx is not installed"
	NGINX_PORT=$(free_port)
	nginx_conf "$T/nginx" 2 "$NGINX_PORT" "$1"
	${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)} -p "$T/nginx" -c "$T/nginx/nginx.conf" \
		-g 'daemon off;' 2>"$T/nginx/logs/stderr" &
	PIDS+=($!)
	wait_port "$NGINX_PORT" || fail "nginx did not start: $(cat "$T/nginx/logs/"*)"
}

# Install s3rver into $NPM_DIR once (npm registry); skip when impossible.
need_s3rver() {
	S3RVER="$NPM_DIR/node_modules/.bin/s3rver"
	if [ ! -x "$S3RVER" ]; then
		command -v npm >/dev/null || skip "npm is not installed (needed for s3rver)"
		mkdir -p "$NPM_DIR"
		npm install --no-save --no-audit --no-fund --prefix "$NPM_DIR" s3rver@3 \
			>"$T/npm.log" 2>&1 || skip "cannot install s3rver: $(tail -3 "$T/npm.log")"
	fi
	command -v node >/dev/null || skip "node is not installed"
}

# start_s3rver: S3 on 127.0.0.1 (keys S3RVER/S3RVER); sets S3_PORT, S3_URL.
start_s3rver() {
	need_s3rver
	S3_PORT=$(free_port)
	mkdir -p "$T/s3data"
	node --openssl-legacy-provider "$S3RVER" -d "$T/s3data" -a 127.0.0.1 -p "$S3_PORT" -s --no-vhost-buckets \
		>"$T/s3rver.log" 2>&1 &
	PIDS+=($!)
	wait_port "$S3_PORT" || fail "s3rver did not start: $(cat "$T/s3rver.log")"
	S3_URL=http://127.0.0.1:$S3_PORT
	export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
	unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL
}

# s3_put URL FILE: a signed PUT with curl's own SigV4.
s3_put() {
	curl -sf --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "$2" "$1" >/dev/null
}

s3_mkbucket() {
	curl -sf --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X PUT "$1" >/dev/null
}

# Upload every file of DIR under s3 URL PREFIX (8 at a time).
s3_upload_dir() {
	python3 - "$1" "$2" <<'EOF'
import os, subprocess, sys, urllib.parse
from concurrent.futures import ThreadPoolExecutor
root, url = sys.argv[1], sys.argv[2]
files = [os.path.relpath(os.path.join(d, n), root) for d, _, ns in os.walk(root) for n in ns]
def put(rel):
    return subprocess.call(["curl", "-sf", "--aws-sigv4", "aws:amz:us-east-1:s3",
                            "--user", "S3RVER:S3RVER", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                            "-T", os.path.join(root, rel), url + "/" + urllib.parse.quote(rel)],
                           stdout=subprocess.DEVNULL)
with ThreadPoolExecutor(8) as ex:
    bad = [r for r in ex.map(put, files) if r]
sys.exit(1 if bad else 0)
EOF
}

# start_proxy TARGET_PORT [ARGS...]: fault proxy in front of TARGET; sets PROXY_PORT.
start_proxy() {
	local target=$1
	shift
	PROXY_PORT=$(free_port)
	python3 "$SRCDIR/tests/faultproxy.py" --listen "$PROXY_PORT" --target "127.0.0.1:$target" \
		"$@" >"$T/proxy.log" 2>&1 &
	PIDS+=($!)
	PROXY_PID=$!
	wait_port "$PROXY_PORT" || fail "the fault proxy did not start: $(cat "$T/proxy.log")"
}

# make_dataset DIR N: N files of assorted sizes (0 B to ~1 MiB) in subdirs.
make_dataset() {
	python3 - "$1" "$2" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(1234)
sizes = [0, 1, 100, 4095, 4096, 4097, 65536, 100000, 1 << 20, 1048577]
for i in range(n):
    d = os.path.join(root, "class%02d" % (i % 7))
    os.makedirs(d, exist_ok=True)
    size = sizes[i % len(sizes)] if i < 20 else rng.randrange(0, 300000)
    with open(os.path.join(d, "s%05d.bin" % i), "wb") as f:
        f.write(rng.randbytes(size))
os.makedirs(os.path.join(root, "deep/a/b/c"), exist_ok=True)
with open(os.path.join(root, "deep/a/b/c/leaf name with spaces.txt"), "w") as f:
    f.write("leaf\n")
EOF
}

need_daemon() {
	[ -x "$EPOCHFS" ] || skip "the daemon $EPOCHFS is not built"
	[ -e /dev/fuse ] || skip "no /dev/fuse"
	command -v fusermount3 >/dev/null || skip "fusermount3 is not installed"
}

# stat_field NAME: a number from MNT/.epochfs/stats.
stat_field() {
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
		"$MNT/.epochfs/stats" "$1"
}

# count_files DIR: regular files under DIR (the control dir excluded).
count_files() {
	find "$1" -path "$1/.epochfs" -prune -o -type f -print | wc -l
}

# mount_epochfs SOURCE [OPTIONS...]: mount on $T/mnt in the background.
mount_epochfs() {
	local src=$1 i
	shift
	MNT=$T/mnt
	mkdir -p "$MNT" "${CACHE_DIR:=$T/cache}"
	# EPOCHFS_TEST_ARGS: daemon options for a whole run (e.g. --no-open).
	"$EPOCHFS" "$src" "$MNT" -f --cache-dir "$CACHE_DIR" --cache-size "${CACHE_SIZE:-1G}" "$@" $EPOCHFS_TEST_ARGS \
		>"$T/epochfs.log" 2>&1 &
	EPOCHFS_PID=$!
	PIDS+=($EPOCHFS_PID)
	for i in $(seq 300); do
		mountpoint -q "$MNT" && return 0
		kill -0 "$EPOCHFS_PID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

umount_epochfs() {
	fusermount3 -u "$MNT" || return 1
	wait "$EPOCHFS_PID" 2>/dev/null
	return 0
}

# compare_tree REF MNT THREADS: read every file of REF from MNT in random
# order with THREADS threads and compare bytes; prints a summary.
compare_tree() {
	python3 - "$1" "$2" "$3" <<'EOF'
import os, random, sys, threading
ref, mnt, nthreads = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = []
for d, _, names in os.walk(ref):
    for n in names:
        files.append(os.path.relpath(os.path.join(d, n), ref))
random.Random(7).shuffle(files)
bad, lock, it = [], threading.Lock(), iter(files)
def work():
    while True:
        with lock:
            rel = next(it, None)
        if rel is None:
            return
        try:
            with open(os.path.join(mnt, rel), "rb") as f:
                got = f.read()
            with open(os.path.join(ref, rel), "rb") as f:
                want = f.read()
            if got != want:
                with lock:
                    bad.append("%s: %d bytes differ from %d" % (rel, len(got), len(want)))
        except OSError as e:
            with lock:
                bad.append("%s: %s" % (rel, e))
ts = [threading.Thread(target=work) for _ in range(nthreads)]
[t.start() for t in ts]
[t.join() for t in ts]
print("compared %d files, %d bad" % (len(files), len(bad)))
for b in bad[:20]:
    print("  " + b)
sys.exit(1 if bad else 0)
EOF
}
