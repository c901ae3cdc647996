#!/bin/bash
# SPDX-License-Identifier: MIT
# Control files written the way people write them: a real shell redirection
# (bash opens with O_TRUNC, duplicates the descriptor and closes a copy
# before echo writes).  Issue 15 items 1 and 18: a rejected `echo bad >
# manifest` changes nothing (it used to drop the plan), `printf` without a
# newline reports a bad line too, and `: > file` alone changes nothing.
# Every control file is read back before and after each rejected write.
. "$(dirname "$0")/lib.sh"
require_fuse
command -v getfattr >/dev/null || skip "getfattr missing (Debian package attr)"

gen "$T/src" 3 6 2K
mount_fs "$T/src" "$T/mnt" "$T/cache" --cache-size 64M
C=$T/mnt/.epochfs
mapfile -t files < <(cd "$T/src" && find . -type f | sed 's|^\./||' | sort)

# the control files, and what is cached of one file (a rejected evict must
# not drop it)
snap() {
	for f in seed order manifest epoch; do echo "== $f"; cat "$C/$f"; done
	echo "== cached"; getfattr --only-values -n user.epochfs.cached "$T/mnt/${files[0]}"; echo
}

log "good writes from the shell are applied: echo, and printf without a newline"
echo "seed=7 sampler=distributed world=2 rank=0" >"$C/seed" || fail "echo of a good seed failed"
printf 'seed=7 sampler=distributed world=2 rank=1' >"$C/seed" || fail "printf of a good seed failed"
[ "$(wc -l <"$C/seed")" = 2 ] || { cat "$C/seed"; fail "the two ranks' seed lines do not read back"; }
printf '%s 2.0' "${files[2]}" >"$C/importance" || fail "printf of a good importance line failed"
echo 1 >"$C/epoch" || fail "echo 1 > epoch failed"
cat "$T/mnt/${files[0]}" >/dev/null
snap >"$T/before"
grep -qx '0/[0-9]*' <(sed -n '/^== cached/{n;p}' "$T/before") && fail "${files[0]} not cached after a read"

# bad WHAT FILE: the shell reports the failed write; nothing changed
bad() {
	local how=$1 file=$2 line=$3
	if [ "$how" = echo ]; then
		(echo "$line" >"$C/$file") 2>"$T/err" && fail "echo '$line' > $file succeeded"
	else
		(printf '%s' "$line" >"$C/$file") 2>"$T/err" && fail "printf '$line' > $file succeeded"
	fi
	grep -q "Invalid argument" "$T/err" || { cat "$T/err"; fail "$how > $file: not EINVAL"; }
	snap >"$T/after"
	diff -u "$T/before" "$T/after" || fail "$how '$line' > $file changed the control files"
}

for how in echo printf; do
	log "$how of bad lines fails and changes nothing"
	bad $how manifest "bad"
	bad $how manifest "nope/missing.JPEG"
	bad $how order "nope/missing.JPEG"
	bad $how order "/elsewhere/x"
	bad $how evict "nope"
	bad $how evict "${files[0]}"$'\n'"nope"
	bad $how importance "${files[0]} abc"
	bad $how importance "nope 1.0"
	bad $how seed "seed=abc"
	bad $how seed "seed=1 world=2 rank=2"
	bad $how seed "bogus=1"
	bad $how epoch "x"
	bad $how epoch "-1"
done

log ": > FILE alone (open with O_TRUNC, no write) changes nothing"
for f in seed order manifest epoch; do
	: >"$C/$f" || fail ": > $f failed"
done
snap >"$T/after"
diff -u "$T/before" "$T/after" || fail ": > FILE changed the control files"

log "a blank line restores the default manifest"
cp "$C/manifest" "$T/default"
(cd "$T/mnt" && find . -type f -not -path './.epochfs/*' | sed 's|^\./||' | sort -r) >"$T/rev"
cat "$T/rev" >"$C/manifest" || fail "a reversed manifest was refused"
diff -q "$C/manifest" "$T/rev" >/dev/null || fail "the reversed manifest does not read back"
echo >"$C/manifest" || fail "echo > manifest failed"
diff -q "$C/manifest" "$T/default" >/dev/null || fail "a blank line did not restore the default manifest"
grep -q "rejected: line 1:" "$T/daemon.log" || fail "no rejection names its line"
umount_fs "$T/mnt"
echo ok
