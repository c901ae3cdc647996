#!/bin/bash
# SPDX-License-Identifier: MIT
# The daemon's command line: --help and --version; a bad option, a missing
# SOURCE, a cache dir that cannot be created: one line and exit status 2,
# before mounting; without -f it daemonizes and exits 0 once mounted.
# Also `make install PREFIX=DIR` puts the programs and man pages in DIR.
. "$(dirname "$0")/lib.sh"
require_fuse

"$EPOCHFS" --help | grep -q "usage: epochfs" || fail "--help"
"$EPOCHFS" --version | grep -q "^epochfs " || fail "--version"
mkdir -p "$T/src" "$T/mnt"
echo x >"$T/src/f"

expect2() { # DESCRIPTION ARGS...
	local what=$1 out rc
	shift
	out=$("$EPOCHFS" "$@" 2>&1)
	rc=$?
	[ $rc -eq 2 ] || fail "$what: exit $rc, expected 2 ($out)"
	[ "$(echo "$out" | wc -l)" -eq 1 ] || fail "$what: more than one line: $out"
	echo "$what: $out"
	mountpoint -q "$T/mnt" && fail "$what: mounted anyway"
	return 0
}
expect2 "unknown option" --bogus "$T/src" "$T/mnt"
expect2 "bad size" --cache-size 12Q "$T/src" "$T/mnt"
expect2 "bad -o size" -o cache_size=abc,allow_other "$T/src" "$T/mnt"
expect2 "missing SOURCE" "$T/nonexistent" "$T/mnt"
expect2 "missing MOUNTPOINT" "$T/src"
expect2 "uncreatable cache dir" --cache-dir /proc/epochfs-cache "$T/src" "$T/mnt"

log "daemon mode: the parent exits 0 once the mount is up"
"$EPOCHFS" "$T/src" "$T/mnt" --cache-dir "$T/cache" --cache-size 16M || fail "daemon mode failed"
MOUNTS+=("$T/mnt")
mountpoint -q "$T/mnt" || fail "not mounted after the parent exited"
[ "$(cat "$T/mnt/f")" = x ] || fail "read through the daemonized mount"
grep -q "$T/src $T/mnt fuse.epochfs" /proc/mounts || fail "the mount does not name its source"
fusermount3 -u "$T/mnt" || fail "unmount"

log "a second daemon on a busy cache dir fails with status 1 and says why"
"$EPOCHFS" "$T/src" "$T/mnt" --cache-dir "$T/cache" --cache-size 16M || fail "remount"
mkdir -p "$T/mnt2"
out=$("$EPOCHFS" "$T/src" "$T/mnt2" --cache-dir "$T/cache" --cache-size 16M 2>&1) &&
	fail "second daemon on the same cache dir succeeded"
echo "$out" | grep -q "in use by another epochfs daemon" || fail "unclear message: $out"

log "a daemon started right after an unmount waits for the old one to close"
# The old daemon is stopped so that it cannot close before the new one starts.
read -r oldpid _ <"$T/cache/lock"
kill -0 "$oldpid" || fail "the lock file does not name the daemon: $(cat "$T/cache/lock")"
DPIDS+=("$oldpid") # killed (stopped or not) if the test fails from here
kill -STOP "$oldpid"
fusermount3 -u "$T/mnt" || { kill -CONT "$oldpid"; fail "unmount of a stopped daemon"; }
"$EPOCHFS" -f "$T/src" "$T/mnt" --cache-dir "$T/cache" --cache-size 16M 2>"$T/wait.err" &
newpid=$!
DPIDS+=("$newpid")
sleep 1
kill -0 "$newpid" 2>/dev/null || { kill -CONT "$oldpid"; fail "the new daemon gave up: $(cat "$T/wait.err")"; }
mountpoint -q "$T/mnt" && fail "mounted while the old daemon held the cache"
kill -CONT "$oldpid"
for i in $(seq 600); do
	mountpoint -q "$T/mnt" && break
	kill -0 "$newpid" 2>/dev/null || fail "remount after the old daemon closed: $(cat "$T/wait.err")"
	sleep 0.05
done
mountpoint -q "$T/mnt" || fail "not mounted 30 s after the old daemon resumed"
grep -q "held by epochfs pid $oldpid, .*waiting for it to close" "$T/wait.err" || fail "the wait was not logged: $(cat "$T/wait.err")"
[ "$(cat "$T/mnt/f")" = x ] || fail "read after the remount"
fusermount3 -u "$T/mnt" || fail "unmount"
wait "$newpid" || fail "the daemon exited with an error after unmount: $(cat "$T/wait.err")"

log "make install PREFIX=DIR"
make -s -C "$SRCDIR" B="$BUILDDIR" install PREFIX="$T/prefix" >/dev/null || fail "make install"
for f in bin/epochfs bin/epochfs-stat bin/epochfs-ctl share/man/man1/epochfs.1; do
	[ -e "$T/prefix/$f" ] || fail "make install did not install $f"
done
echo ok
