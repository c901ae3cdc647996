#!/bin/bash
# SPDX-License-Identifier: MIT
# Paths written to the control files (order, manifest, importance, evict)
# may be absolute under the mount point; any other absolute path, or a path
# that is not a file of the mount, is refused with the offending line's
# number in the reason (issue 15, item 17).
. "$(dirname "$0")/lib.sh"
require_fuse

gen "$T/src" 2 5 3K
mount_fs "$T/src" "$T/mnt" "$T/cache" --cache-size 64M
M=$T/mnt
mapfile -t files < <(cd "$T/src" && find . -type f -name '*.JPEG' | sed 's|^\./||' | sort | head -4)

log "absolute paths under the mount point are the mount's files"
printf '%s\n' "$M/${files[2]}" "${files[0]}" "./${files[1]}" "$M/${files[3]}" >"$T/order"
cp "$T/order" "$M/.epochfs/order" || fail "an order of absolute paths under the mount was refused"
printf '%s\n' "${files[2]}" "${files[0]}" "${files[1]}" "${files[3]}" >"$T/want"
diff "$M/.epochfs/order" "$T/want" || fail "order reads back wrong"
printf '%s 2.5\n' "$M/${files[1]}" >"$M/.epochfs/importance" || fail "importance: absolute path refused"
printf '%s\n' "$M/${files[1]}" >"$M/.epochfs/evict" || fail "evict: absolute path refused"

log "an absolute path elsewhere: EINVAL naming the line; nothing changes"
before=$(cat "$M/.epochfs/order")
printf '%s\n' "${files[0]}" "$T/src/${files[1]}" | "$SRCDIR/tests/ctl_write.py" "$M/.epochfs/order" 2>"$T/err" &&
	fail "an absolute path outside the mount point was accepted"
grep -q "Invalid argument" "$T/err" || { cat "$T/err"; fail "not EINVAL"; }
grep -q "line 2: '$T/src/${files[1]}' is not under the mount point $M" "$T/daemon.log" ||
	{ tail -5 "$T/daemon.log"; fail "the reason does not name line 2 and the mount point"; }
[ "$(cat "$M/.epochfs/order")" = "$before" ] || fail "a refused order changed the order"
printf '%s\n' "${files[0]}" "${files[1]}" "nope/missing.JPEG" |
	"$SRCDIR/tests/ctl_write.py" "$M/.epochfs/manifest" 2>/dev/null && fail "a missing file was accepted"
grep -q "line 3: 'nope/missing.JPEG' is not a file of the mount" "$T/daemon.log" ||
	fail "the reason for a missing file does not name line 3"
umount_fs "$T/mnt"
echo ok
