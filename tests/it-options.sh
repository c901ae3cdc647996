#!/bin/bash
# SPDX-License-Identifier: MIT
# The daemon's command line: --help and --version (of every tool); a bad
# option, wherever it stands, is one line and exit status 2 before anything
# is touched (a bad FUSE -o option too: no cache dir appears); the long
# forms people type; without -f it daemonizes and exits 0 once mounted; the
# log goes to --log-file at --log-level, or without /dev/log to
# CACHE_DIR/epochfs.log, said on stderr.  Also `make install PREFIX=DIR`.
. "$(dirname "$0")/lib.sh"
require_fuse

"$EPOCHFS" --help | grep -q "usage: epochfs" || fail "--help"
"$EPOCHFS" --version | grep -q "^epochfs " || fail "--version"
for t in epochfs-stat epochfs-ctl epochfs-gendata epochfs-read; do
	[ -x "$TOOLS/$t" ] || continue
	out=$("$TOOLS/$t" --help 2>&1) || fail "$t --help: exit $?: $out"
	echo "$out" | grep -qi "usage" || fail "$t --help prints no usage: $out"
done
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
	LAST=$out
	return 0
}
expect2 "unknown option" --bogus "$T/src" "$T/mnt"
expect2 "unknown option, last" "$T/src" "$T/mnt" --bogus
echo "$LAST" | grep -q "unknown option '--bogus'" || fail "not called unknown: $LAST"
expect2 "value missing, last" "$T/src" "$T/mnt" --cache-size
echo "$LAST" | grep -q "'--cache-size' needs a value" || fail "unclear: $LAST"
expect2 "bad size" --cache-size 12Q "$T/src" "$T/mnt"
expect2 "bad -o size" -o cache_size=abc,allow_other "$T/src" "$T/mnt"
expect2 "bad log level" --log-level loud "$T/src" "$T/mnt"
expect2 "bad timeout" -o timeout=0 "$T/src" "$T/mnt"
expect2 "bad retries" --retries many "$T/src" "$T/mnt"
expect2 "missing MOUNTPOINT" "$T/src"

log "a bad FUSE -o option is refused before the source or the cache dir is touched"
out=$("$EPOCHFS" "$T/src" "$T/mnt" --cache-dir "$T/c-bad" -o no_such_fuse_option 2>&1)
rc=$?
[ $rc -eq 2 ] || fail "bad FUSE option: exit $rc, expected 2: $out"
echo "$out" | grep -q "no_such_fuse_option" || fail "the option is not named: $out"
[ -e "$T/c-bad" ] && fail "the cache dir was made before the options were checked"

log "long forms: --foreground --allow-other --read-only --nonempty, --timeout, --retries"
"$EPOCHFS" "$T/src" "$T/mnt" --foreground --allow-other --read-only --nonempty --timeout 5 \
	--retries 1 --cache-dir "$T/cache" --cache-size 16M 2>"$T/fg.err" &
fgpid=$!
DPIDS+=("$fgpid")
MOUNTS+=("$T/mnt")
for i in $(seq 200); do
	mountpoint -q "$T/mnt" && break
	kill -0 "$fgpid" 2>/dev/null || fail "--foreground daemon exited: $(cat "$T/fg.err")"
	sleep 0.05
done
mountpoint -q "$T/mnt" || fail "--foreground mount did not come up"
kill -0 "$fgpid" || fail "--foreground did not stay in the foreground"
grep "$T/mnt" /proc/mounts | grep -q allow_other || fail "--allow-other did not reach FUSE: $(grep "$T/mnt" /proc/mounts)"
touch "$T/mnt/x" 2>/dev/null && fail "a write succeeded on the read-only mount"
fusermount3 -u "$T/mnt" || fail "unmount"
wait "$fgpid" || fail "--foreground daemon exit status $?"

log "daemon mode: the parent exits 0 once the mount is up"
"$EPOCHFS" "$T/src" "$T/mnt" --cache-dir "$T/cache" --cache-size 16M 2>"$T/d.err" || fail "daemon mode failed: $(cat "$T/d.err")"
mountpoint -q "$T/mnt" || fail "not mounted after the parent exited"
[ "$(cat "$T/mnt/f")" = x ] || fail "read through the daemonized mount"
grep -q "$T/src $T/mnt fuse.epochfs" /proc/mounts || fail "the mount does not name its source"
if [ ! -S /dev/log ]; then
	log "no /dev/log: the log is CACHE_DIR/epochfs.log, said on stderr"
	grep -q "logging to $T/cache/epochfs.log" "$T/d.err" || fail "where the log goes is not said: $(cat "$T/d.err")"
	grep -q "mounted file://$T/src on $T/mnt" "$T/cache/epochfs.log" || fail "no start in the fallback log"
fi
grep -q "mounted file://$T/src" "$T/d.err" || fail "the start is not on stderr: $(cat "$T/d.err")"
fusermount3 -u "$T/mnt" || fail "unmount"

log "--log-file and --log-level, daemonized"
"$EPOCHFS" "$T/src" "$T/mnt" --cache-dir "$T/cache" --cache-size 16M \
	--log-file "$T/e.log" --log-level debug 2>"$T/d.err" || fail "daemon with --log-file: $(cat "$T/d.err")"
cat "$T/mnt/f" >/dev/null
fusermount3 -u "$T/mnt" || fail "unmount"
for i in $(seq 200); do grep -q "unmounting" "$T/e.log" && break; sleep 0.05; done
grep -q "epochfs\[[0-9]*\]: info: mounted file://$T/src" "$T/e.log" || fail "no start in --log-file: $(cat "$T/e.log")"
grep -q ": debug: " "$T/e.log" || fail "--log-level debug logged no debug line"
grep -q "info: unmounting $T/mnt" "$T/e.log" || fail "the daemon's stop is not in --log-file"
grep -q "logging to" "$T/d.err" && fail "--log-file given, yet the fallback was used"
"$EPOCHFS" "$T/src" "$T/mnt" --cache-dir "$T/cache" --cache-size 16M \
	-o log_file="$T/w.log",log_level=warn 2>"$T/d.err" || fail "daemon with -o log_file: $(cat "$T/d.err")"
fusermount3 -u "$T/mnt" || fail "unmount"
sleep 0.5
grep -q "info:" "$T/w.log" && fail "log_level=warn logged info lines: $(cat "$T/w.log")"

log "a second daemon on a busy cache dir fails with status 4 and says why"
"$EPOCHFS" "$T/src" "$T/mnt" --cache-dir "$T/cache" --cache-size 16M 2>/dev/null || fail "remount"
mkdir -p "$T/mnt2"
out=$("$EPOCHFS" "$T/src" "$T/mnt2" --cache-dir "$T/cache" --cache-size 16M 2>&1)
rc=$?
[ $rc -eq 4 ] || fail "second daemon on the same cache dir: exit $rc, expected 4: $out"
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

log "make install PREFIX=DIR (the mount helper into DIR/sbin)"
make -s -C "$SRCDIR" B="$BUILDDIR" install PREFIX="$T/prefix" MOUNT_HELPER_DIR="$T/prefix/sbin" >/dev/null ||
	fail "make install"
for f in bin/epochfs bin/epochfs-stat bin/epochfs-ctl share/man/man1/epochfs.1 sbin/mount.fuse.epochfs; do
	[ -e "$T/prefix/$f" ] || fail "make install did not install $f"
done
echo ok
