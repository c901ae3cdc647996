#!/bin/bash
# SPDX-License-Identifier: MIT
# Golden shuffle orders through a mount: the default manifest is ImageFolder's
# order (with its quirks: byte-order sort, sorted(os.walk), extensions in any
# case, hidden files, non-images skipped), and for every sampler, several
# seeds, epochs, world sizes, ranks and drop_last, .epochfs/order equals the
# order the real torch/numpy give, mapped through the manifest.  Also: an
# explicit two-epoch order, .epochfs/epoch, a written (reversed) manifest,
# and small manifests with n < world.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
[ -x $PY ] || skip "no /usr/bin/python3 (Debian's, with python3-torch and python3-numpy)"
$PY "$SRCDIR/tests/order_check.py" deps || skip "torch/numpy cannot be imported from $PY"
require_fuse

gen "$T/src" 6 30 2K
# ImageFolder's corner cases, next to the generated classes
c=$T/src/n00000000
mkdir -p "$c/sub/a/deeper" "$c/sub/a-b" "$T/src/Zebra" "$T/src/n00000002"
for f in "$c/sub/a/x.jpg" "$c/sub/a-b/y.PNG" "$c/sub/a/deeper/z.Jpeg" "$c/sub/a/w.webp" \
	"$T/src/Zebra/b.bmp" "$T/src/Zebra/a.TIFF" "$T/src/n00000002/with space.jpeg" \
	"$T/src/n00000002/.hidden.jpg" "$T/src/n00000001/notes.txt" "$T/src/n00000001/x.jpg.txt" \
	"$T/src/root.jpg"; do
	head -c 300 /dev/urandom >"$f"
done

mount_fs "$T/src" "$T/mnt" "$T/cache" --cache-size 64M
for f in seed order manifest epoch; do
	[ -e "$T/mnt/.epochfs/$f" ] || fail ".epochfs/$f does not exist (have: $(ls "$T/mnt/.epochfs/"))"
done
$PY "$SRCDIR/tests/order_check.py" orders "$T/mnt" "$T/src" || fail "orders differ (above)"
umount_fs "$T/mnt"
echo "PASS: it-orders"
