#!/bin/bash
# SPDX-License-Identifier: MIT
# The Python package as a torchrun job uses it (issue 12 "For PyTorch
# users", issue 15 item 13): `make install` puts it where Debian's
# /usr/bin/python3 finds it; two processes, RANK=0/1 WORLD_SIZE=2, each wrap
# their sampler with EpochfsSampler over a real mount:
#  - torch.distributed initialised (gloo) and a DistributedSampler: each rank
#    declares its seed spec at set_epoch, .epochfs/seed reads back both
#    ranks' lines, a real DataLoader (2 workers) reads the right bytes; a job
#    resumed from state_dict() declares start=K (the daemon's rank position
#    is K) and yields the order from K;
#  - no process group, a per-rank random sampler: the rank and world come
#    from the environment, each rank's explicit order goes in with its
#    '# rank=R epoch=E' header, .epochfs/order reads back the two merged
#    position by position, and a resumed rank is at start=K.
# (tests/it-loader.sh covers the prefetch hit rates of one reader.)
. "$(dirname "$0")/lib.sh"
require_fuse
PY=/usr/bin/python3
[ -x $PY ] || skip "no /usr/bin/python3 (Debian's, with python3-torch)"
$PY -c 'import torch, torch.distributed as d; assert d.is_available()' 2>/dev/null ||
	skip "torch (with torch.distributed) cannot be imported from $PY"

log "make install puts the package where $PY finds it"
make -s -C "$SRCDIR" B="$BUILDDIR" DESTDIR="$T/root" PREFIX=/usr/local install >"$T/install.log" 2>&1 ||
	{ tail -20 "$T/install.log"; fail "make install failed"; }
pydir=$($PY -c 'import sys; print("/usr/local/lib/python%d.%d/dist-packages" % sys.version_info[:2])')
[ -f "$T/root$pydir/epochfs/__init__.py" ] ||
	fail "no epochfs package under $T/root$pydir (installed: $(cd "$T/root" && find . -name '*.py'))"
$PY -c 'import sys; sys.exit(0 if sys.argv[1] in sys.path else 1)' "$pydir" ||
	fail "$pydir is not on $PY's sys.path"
# from here on the installed copy is the one imported
export PYTHONPATH=$T/root$pydir
$PY -c 'import epochfs, sys; assert epochfs.__file__.startswith(sys.argv[1]), epochfs.__file__' "$T/root" ||
	fail "python imports another epochfs than the installed one"

gen "$T/src" 2 40 20K
mount_fs "$T/src" "$T/mnt" "$T/cache" --cache-size 64M

# run_ranks MODE: the two ranks at once, as torchrun starts them
run_ranks() {
	local r port=$((20000 + RANDOM % 20000)) pids=() rc=0
	for r in 0 1; do
		RANK=$r LOCAL_RANK=$r WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
			timeout 120 $PY "$SRCDIR/tests/python_ranks.py" "$1" "$T/mnt" "$T/src" "$T/$1" \
			>"$T/$1.$r.log" 2>&1 &
		pids+=($!)
	done
	for r in 0 1; do
		wait "${pids[$r]}" || rc=1
		cat "$T/$1.$r.log"
	done
	return $rc
}

log "torch.distributed + DistributedSampler: the seed spec of each rank"
run_ranks seed || fail "a rank failed (above)"
$PY - "$T/seed" <<'PY' || fail "seed specs"
import json, sys
r = [json.load(open("%s.rank%d.json" % (sys.argv[1], k))) for k in (0, 1)]
spec = "seed=7 sampler=distributed world=2 rank=%d drop_last=0 epoch=%d"
for k in (0, 1):
    print("rank %d declared: %s; resumed: %s" % (k, r[k]["spec0"], r[k]["spec_resumed"]))
    assert (r[k]["rank"], r[k]["world"], r[k]["local_rank"]) == (k, 2, k), r[k]
    assert r[k]["spec0"] == spec % (k, 0), r[k]["spec0"]
    # both ranks' lines, sorted by rank, once both declared
    assert r[k]["seed_after_both"] == [spec % (0, 0), spec % (1, 0)], r[k]["seed_after_both"]
    assert r[k]["state"] == {"epoch": 1, "position": 6, "rank": k, "world": 2}, r[k]["state"]
    assert r[k]["spec_resumed"] == spec % (k, 1) + " start=6", r[k]["spec_resumed"]
    assert r[k]["seed_resumed"] == [spec % (0, 1), spec % (1, 1)], r[k]["seed_resumed"]
    rk = r[k]["rank_resumed"]
    assert rk and rk["epoch"] == 1 and rk["position"] == 6, ("the daemon's rank after start=6", rk)
    assert r[k]["state_resumed_end"]["position"] == 40, r[k]["state_resumed_end"]
    assert r[k]["spec2"] == spec % (k, 2), r[k]["spec2"]
print("ok")
PY

log "no process group, a per-rank random sampler: explicit orders with a rank header"
echo clear >"$T/mnt/.epochfs/seed" || fail "cannot clear the plan"
run_ranks order || fail "a rank failed (above)"
$PY - "$T/order" <<'PY' || fail "explicit rank orders"
import json, sys
r = [json.load(open("%s.rank%d.json" % (sys.argv[1], k))) for k in (0, 1)]
for k in (0, 1):
    print("rank %d declared: %s; resumed: %s" % (k, r[k]["spec0"], r[k]["spec_resumed"]))
    assert (r[k]["rank"], r[k]["world"]) == (k, 2), r[k]
    assert r[k]["spec0"] == "# rank=%d epoch=0" % k, r[k]["spec0"]
    assert len(r[k]["order0"]) == 40 and len(set(r[k]["order0"])) == 40, len(r[k]["order0"])
    assert r[k]["seed_text"] == "", ("an explicit plan has no seed spec", r[k]["seed_text"])
    d = r[k]["rank_declared"]
    assert d and d["epoch"] == 0 and d["epoch_length"] == 40, d
    assert r[k]["spec_resumed"] == "# rank=%d epoch=1 start=6" % k, r[k]["spec_resumed"]
    rk = r[k]["rank_resumed"]
    assert rk and rk["epoch"] == 1 and rk["position"] == 6, ("the daemon's rank after start=6", rk)
# the node's plan: position by position, rank by rank
merged = [p for pair in zip(r[0]["order0"], r[1]["order0"]) for p in pair]
for k in (0, 1):
    assert r[k]["merged"] == merged, ("merged order", r[k]["merged"][:6], merged[:6])
print("ok")
PY
umount_fs "$T/mnt"
echo ok
