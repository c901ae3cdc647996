#!/bin/bash
# SPDX-License-Identifier: MIT
# A real torch DataLoader (4 workers, DistributedSampler with set_epoch) reads
# two epochs from an HTTP mount (nginx behind the fault proxy adding latency
# to every request): the bytes are right and almost every open (>= 80%, cold
# epoch included) is a prefetched hit.  Four runs, each on a fresh cache
# larger than the dataset: the seed control file with world 1 and with world
# 2 rank 1 (epochfs follows the readers into epoch 2 by itself), and the
# EpochfsSampler wrapper (an explicit order each epoch) with the same two.
# The training loop sleeps 20 ms per batch of 8 (the model's step: 400
# files/s, a third of what the proxy serves here with 64 requests in flight);
# a loop that trains on nothing reads as fast as the backend itself and no
# prefetcher can then be ahead of it.
source "$(dirname "$0")/remote-lib.sh"
PY=/usr/bin/python3
[ -x $PY ] || skip "no /usr/bin/python3 (Debian's, with python3-torch and python3-numpy)"
$PY "$SRCDIR/tests/order_check.py" deps || skip "torch/numpy cannot be imported from $PY"
need_daemon

mkdir -p "$T/www"
"${TOOLS:-$BUILDDIR}/epochfs-gendata" --classes 8 --per-class 40 --size 40K "$T/www/ds" >/dev/null ||
	fail "cannot generate the dataset"
start_nginx "$T/www"
start_proxy "$NGINX_PORT" --latency-ms "${LATENCY_MS:-5}"
URL=http://127.0.0.1:$PROXY_PORT/ds/

run=0
for spec in "seed 1 0" "seed 2 1" "wrapper 1 0" "wrapper 2 1"; do
	set -- $spec
	run=$((run + 1))
	log "$1, DistributedSampler world=$2 rank=$3"
	CACHE_DIR=$T/cache$run CACHE_SIZE=256M mount_epochfs "$URL" ||
		fail "mount failed: $(cat "$T/epochfs.log")"
	[ -e "$MNT/.epochfs/seed" ] && [ -e "$MNT/.epochfs/order" ] ||
		fail "no .epochfs/seed or order (have: $(ls "$MNT/.epochfs/"))"
	$PY "$SRCDIR/tests/order_check.py" loader "$MNT" "$T/www/ds" --mode "$1" --world "$2" --rank "$3" ||
		{ tail -20 "$T/epochfs.log"; fail "loader run '$spec' (above)"; }
	umount_epochfs || fail "unmount failed"
done
echo "PASS: it-loader"
