#!/bin/bash
# SPDX-License-Identifier: MIT
# Each exit status the daemon can give, as backends/base/exitcode.h and the
# EXIT STATUS table of epochfs(1) define them: 0 mounted (daemonized) or
# unmounted cleanly (-f); 1 the mount failed; 2 bad command line; 3 the
# source cannot be used; 4 the mount point or the cache dir cannot be used.
# Every refusal is said on stderr, and nothing is left mounted.
. "$(dirname "$0")/lib.sh"
require_fuse

mkdir -p "$T/src/d" "$T/mnt" "$T/m2"
echo x >"$T/src/f"
: >"$T/file"

# expect CODE WHAT PATTERN ARGS...: exit CODE, stderr matches PATTERN.
expect() {
	local code=$1 what=$2 pat=$3 out rc
	shift 3
	out=$(timeout 120 "$EPOCHFS" "$@" 2>&1)
	rc=$?
	[ $rc -eq "$code" ] || fail "$what: exit $rc, expected $code: $out"
	echo "$out" | grep -q -- "$pat" || fail "$what: the reason ('$pat') is not said: $out"
	echo "$code $what: $(echo "$out" | grep -- "$pat" | head -1)"
	for m in "$T/mnt" "$T/m2"; do
		[ "$m" = "$KEEP" ] && continue
		mountpoint -q "$m" && fail "$what: $m mounted anyway"
	done
	return 0
}
C=(--cache-dir "$T/cache" --cache-size 16M)

log "2: bad command line"
expect 2 "unknown option" "unknown option" "$T/src" "$T/mnt" --bogus
expect 2 "bad value" "bad cache size" "$T/src" "$T/mnt" --cache-size 12Q
expect 2 "missing MOUNTPOINT" "missing MOUNTPOINT" "$T/src"
expect 2 "bad FUSE option" "no_such_option" "$T/src" "$T/mnt" "${C[@]}" -o no_such_option

log "3: the source cannot be used"
expect 3 "missing source" "No such file" "$T/nonexistent" "$T/mnt" "${C[@]}"
expect 3 "source is a file" "not a directory" "$T/file" "$T/mnt" "${C[@]}"
expect 3 "unsupported URL" "unsupported source URL" "gopher://h/x" "$T/mnt" "${C[@]}"
expect 3 "unreachable server" "listing http://127.0.0.1:1/ failed" http://127.0.0.1:1/ "$T/mnt" "${C[@]}" \
	--retries 0 --timeout 2

log "4: the mount point or the cache dir cannot be used"
expect 4 "missing mount point" "mount point $T/nonexistent" "$T/src" "$T/nonexistent" "${C[@]}"
expect 4 "mount point is a file" "not a directory" "$T/src" "$T/file" "${C[@]}"
expect 4 "cache dir in the mount point" "inside the mount point" "$T/src" "$T/mnt" --cache-dir "$T/mnt/c"
expect 4 "uncreatable cache dir" "cannot create cache dir" "$T/src" "$T/mnt" --cache-dir /proc/epochfs-cache
expect 4 "cache size too large" "more than the cache filesystem can hold" "$T/src" "$T/mnt" \
	--cache-dir "$T/cache" --cache-size 1000000T
expect 4 "unwritable log file" "log file" "$T/src" "$T/mnt" "${C[@]}" --log-file /proc/no/such.log

log "0: daemonized, once mounted"
"$EPOCHFS" "$T/src" "$T/mnt" "${C[@]}" 2>"$T/err" || fail "daemon mode: exit $?: $(cat "$T/err")"
MOUNTS+=("$T/mnt")
mountpoint -q "$T/mnt" || fail "exit 0 but not mounted"
KEEP=$T/mnt
expect 4 "already an epochfs mount" "already has an epochfs mount" "$T/src" "$T/mnt" --cache-dir "$T/c2" --cache-size 16M
expect 4 "cache dir in use" "in use by another epochfs daemon" "$T/src" "$T/m2" "${C[@]}"
KEEP=
fusermount3 -u "$T/mnt" || fail "unmount"

log "0: in the foreground, after a clean unmount"
mount_fs "$T/src" "$T/mnt" "$T/c3" --cache-size 16M
fusermount3 -u "$T/mnt" || fail "unmount"
wait "$DPID"
rc=$?
[ $rc -eq 0 ] || fail "-f daemon after unmount: exit $rc"

log "1: the mount itself failed"
out=$("$EPOCHFS" "$T/src" "$T/mnt" "${C[@]}" -o context=epochfs_test_bogus 2>&1)
rc=$?
if mountpoint -q "$T/mnt"; then
	fusermount3 -u "$T/mnt"
	echo "(this kernel took context=: code 1 not checked)"
else
	[ $rc -eq 1 ] || fail "a refused mount: exit $rc, expected 1: $out"
	echo "$out" | grep -q "cannot mount on" || fail "the mount failure is not said: $out"
	echo "1 refused mount: $(echo "$out" | grep "cannot mount")"
fi
echo ok
