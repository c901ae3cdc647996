#!/bin/bash
# SPDX-License-Identifier: MIT
# Bad control writes of every kind fail with EINVAL (single-line files at the
# write() of the newline or at close, multi-line files at the bad line's
# write() or at close) and change nothing: seed, order, manifest and epoch
# read the same before and after.  Good writes split across write() calls are
# applied whole.  Another user (uid 65534, mount with allow_other) can read
# stats but gets EACCES writing any control file.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
[ -x $PY ] || skip "no /usr/bin/python3 (Debian's, with python3-torch and python3-numpy)"
$PY "$SRCDIR/tests/order_check.py" deps || skip "torch/numpy cannot be imported from $PY"
require_fuse

gen "$T/src" 3 10 2K
opts=()
nobody=()
if [ "$(id -u)" = 0 ]; then
	chmod 755 "$T"     # let uid 65534 reach the mount point
	opts=(-o allow_other)
	nobody=(--nobody)
else
	echo "note: not root: the other-user check is skipped"
fi
mount_fs "$T/src" "$T/mnt" "$T/cache" --cache-size 64M "${opts[@]}"
for f in seed order manifest epoch; do
	[ -e "$T/mnt/.epochfs/$f" ] || fail ".epochfs/$f does not exist (have: $(ls "$T/mnt/.epochfs/"))"
done
$PY "$SRCDIR/tests/order_check.py" control "$T/mnt" "${nobody[@]}" || fail "control checks (above)"
grep -c "rejected" "$T/daemon.log" | sed 's/^/rejections logged: /'
grep -q "rejected" "$T/daemon.log" || fail "no rejection was logged"
umount_fs "$T/mnt"
echo "PASS: it-control"
