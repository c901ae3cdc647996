#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Python side of it-ranks.sh: every rank of a node on one mount (issue 12).

Run with Debian's /usr/bin/python3 (python3-torch).  Talks to the control
files with plain open/write, so that it tests the daemon, not a helper.

    ranks_check.py reader MNT SRC --world W --rank R --seed S --barrier DIR
        one rank of a torchrun-like job: declares its own seed line, waits
        for every rank, reads --epochs epochs with a real DataLoader over its
        DistributedSampler shard; with --dist-port the ranks form a gloo
        process group and all-reduce at every step (lockstep, as DDP
        training is); bytes and indices checked; after epoch 0
        its own entry of the stats' ranks[] must show >= --min-used of its
        opens prefetched in time.
    ranks_check.py partial MNT SRC --world W --seed S --upto K
        reads positions [0, K) of every rank's epoch-0 order, rank by rank
        within a position (lockstep ranks), checking bytes.
    ranks_check.py rest MNT SRC --world W --seed S --from K [--min-hit F] [--wait]
        reads positions [K, end) the same way; the open hits of that part
        must be >= F of its opens (the plan came back after a remount).
        --wait: first wait (up to 60 s) until the prefetcher has them all.
    ranks_check.py started MNT --world W --rank R --seed S --start K
        after 'start=K': every file of order[K:] is prefetched, and none of
        order[:K] that no later epoch plans (the plan holds two epochs).

Prints FAIL lines; exits 1 on failure.
"""
import argparse
import hashlib
import json
import os
import sys
import time

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL: " + what, flush=True)
    return cond


def finish(name):
    if FAILS:
        print("%s: %d failure(s)" % (name, len(FAILS)), flush=True)
        sys.exit(1)
    print("%s: all checks passed" % name, flush=True)
    sys.exit(0)


def ctl(mnt, name):
    return os.path.join(mnt, ".epochfs", name)


def read_ctl(mnt, name):
    with open(ctl(mnt, name)) as f:
        return f.read()


def write_ctl(mnt, name, text):
    fd = os.open(ctl(mnt, name), os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def stats(mnt):
    return json.loads(read_ctl(mnt, "stats"))


def rank_stats(mnt, rank):
    for r in stats(mnt).get("ranks", []):
        if r["rank"] == rank:
            return r
    return None


def manifest(mnt):
    return [line for line in read_ctl(mnt, "manifest").split("\n") if line]


def shard(n, world, rank, seed, epoch):
    from torch.utils.data import DistributedSampler
    s = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed)
    s.set_epoch(epoch)
    return list(s)


def sha1(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


class Files:
    """The manifest's files; an item is (index, sha1 of the bytes read)."""

    def __init__(self, mnt):
        self.mnt = mnt
        self.paths = manifest(mnt)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return i, sha1(os.path.join(self.mnt, self.paths[i]))


def cmd_reader(a):
    import torch
    from torch.utils.data import DataLoader, DistributedSampler

    class DS(torch.utils.data.Dataset):
        def __init__(self, mnt):
            self.f = Files(mnt)

        def __len__(self):
            return len(self.f)

        def __getitem__(self, i):
            return self.f[i]

    ds = DS(a.mnt)
    paths = ds.f.paths
    want = [sha1(os.path.join(a.src, p)) for p in paths]
    write_ctl(a.mnt, "seed", "seed=%d sampler=distributed world=%d rank=%d epoch=0\n"
              % (a.seed, a.world, a.rank))
    step = None
    if a.dist_port:
        # The job's own process group (gloo over loopback), as torchrun
        # makes it: every step ends in an all-reduce, which holds the ranks
        # in lockstep as data-parallel training does.
        import datetime
        import torch.distributed as dist
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % a.dist_port,
                                world_size=a.world, rank=a.rank,
                                timeout=datetime.timedelta(seconds=120))
        dist.barrier()
        grad = torch.zeros(16)

        def step():
            dist.all_reduce(grad)
    else:
        open(os.path.join(a.barrier, "ready.%d" % a.rank), "w").close()
        t0 = time.monotonic()
        while len([n for n in os.listdir(a.barrier) if n.startswith("ready.")]) < a.world:
            if time.monotonic() - t0 > 120:
                check(False, "rank %d: the other ranks never came" % a.rank)
                finish("reader")
            time.sleep(0.02)
    sampler = DistributedSampler(ds, num_replicas=a.world, rank=a.rank, shuffle=True, seed=a.seed)
    loader = DataLoader(ds, batch_size=8, sampler=sampler, num_workers=a.workers)
    for epoch in range(a.epochs):
        sampler.set_epoch(epoch)
        want_idx = list(iter(sampler))
        before = rank_stats(a.mnt, a.rank) or {}
        got, bad, t0 = [], 0, time.monotonic()
        for idx, hashes in loader:
            time.sleep(a.step_ms / 1000)  # the model's step
            if step:
                step()
            for i, h in zip(idx.tolist(), hashes):
                got.append(i)
                bad += h != want[i]
        after = rank_stats(a.mnt, a.rank)
        if not check(after is not None, "rank %d: no entry in the stats' ranks[]" % a.rank):
            break
        d = {k: after[k] - before.get(k, 0) for k in ("opens", "prefetch_used", "prefetch_late",
                                                     "plain_reads")}
        print("rank %d epoch %d: %d files in %.2f s; rank stats: opens %d, prefetch used %d, "
              "late %d, plain reads %d; epoch %d position %d"
              % (a.rank, epoch, len(got), time.monotonic() - t0, d["opens"], d["prefetch_used"],
                 d["prefetch_late"], d["plain_reads"], after["epoch"], after["position"]), flush=True)
        check(got == want_idx, "rank %d epoch %d: indices are not the sampler's" % (a.rank, epoch))
        check(bad == 0, "rank %d epoch %d: %d files with wrong bytes" % (a.rank, epoch, bad))
        check(d["opens"] >= len(want_idx), "rank %d epoch %d: %d opens located in this rank for %d "
              "files" % (a.rank, epoch, d["opens"], len(want_idx)))
        if epoch == 0:
            check(d["prefetch_used"] >= a.min_used * d["opens"],
                  "rank %d epoch 0: %d of %d opens prefetched in time (< %.0f%%)"
                  % (a.rank, d["prefetch_used"], d["opens"], 100 * a.min_used))
        check(d["plain_reads"] == 0, "rank %d epoch %d: %d plain reads" % (a.rank, epoch, d["plain_reads"]))
    if step:
        import torch.distributed as dist
        dist.destroy_process_group()
    finish("reader rank %d" % a.rank)


def merged(paths, world, seed, lo, hi):
    """Positions [lo, hi) of every rank's epoch-0 order, rank by rank."""
    orders = [shard(len(paths), world, r, seed, 0) for r in range(world)]
    return [paths[orders[r][p]] for p in range(lo, min(hi, len(orders[0]))) for r in range(world)]


def read_check(mnt, src, rels):
    bad = 0
    for rel in rels:
        with open(os.path.join(mnt, rel), "rb") as f:
            got = f.read()
        with open(os.path.join(src, rel), "rb") as f:
            bad += got != f.read()
    return bad


def cmd_partial(a):
    paths = manifest(a.mnt)
    rels = merged(paths, a.world, a.seed, 0, a.upto)
    check(read_check(a.mnt, a.src, rels) == 0, "partial read: wrong bytes")
    print("read positions [0, %d) of %d ranks: %d files" % (a.upto, a.world, len(rels)), flush=True)
    finish("partial")


def cmd_rest(a):
    paths = manifest(a.mnt)
    rels = merged(paths, a.world, a.seed, a.start, 1 << 30)
    t0 = time.monotonic()
    while a.wait and time.monotonic() - t0 < 60 and not all(cached(a.mnt, p) for p in rels):
        time.sleep(0.1)
    if a.wait:
        print("the rest of the epoch was prefetched in %.1f s" % (time.monotonic() - t0))
    before = stats(a.mnt)
    check(read_check(a.mnt, a.src, rels) == 0, "rest of the epoch: wrong bytes")
    after = stats(a.mnt)
    opens = after["opens"] - before["opens"]
    hits = after["open_hits"] - before["open_hits"]
    print("read positions [%d, end) of %d ranks: %d files, %d opens, %d hits"
          % (a.start, a.world, len(rels), opens, hits), flush=True)
    check(opens >= len(rels), "%d opens for %d files" % (opens, len(rels)))
    check(hits >= a.min_hit * opens, "after the remount: %d hits of %d opens (< %.0f%%)"
          % (hits, opens, 100 * a.min_hit))
    check(len(after.get("ranks", [])) == a.world, "ranks[] has %d ranks, not %d"
          % (len(after.get("ranks", [])), a.world))
    for r in after.get("ranks", []):
        check(r["epoch"] >= 1 or r["position"] >= a.start + len(rels) // a.world,
              "rank %d ends at epoch %d position %d" % (r["rank"], r["epoch"], r["position"]))
    finish("rest")


def cached(mnt, rel):
    v = os.getxattr(os.path.join(mnt, rel), "user.epochfs.cached").decode()
    have, size = v.split("/")
    return int(have) == int(size)


def cmd_started(a):
    paths = manifest(a.mnt)
    e0 = [paths[i] for i in shard(len(paths), a.world, a.rank, a.seed, 0)]
    e1 = set(paths[i] for i in shard(len(paths), a.world, a.rank, a.seed, 1))
    want, skip = e0[a.start:], [p for p in e0[:a.start] if p not in e1]
    check(len(skip) > 0, "the test needs files of order[:K] that epoch 1 does not plan")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60 and not all(cached(a.mnt, p) for p in want):
        time.sleep(0.1)
    missing = [p for p in want if not cached(a.mnt, p)]
    check(not missing, "start=%d: %d of the %d files of order[K:] were not prefetched"
          % (a.start, len(missing), len(want)))
    time.sleep(0.5)  # anything wrongly queued would have arrived by now
    extra = [p for p in skip if cached(a.mnt, p)]
    check(not extra, "start=%d: %d of the %d files of order[:K] (planned by no later epoch) were "
          "fetched: %s" % (a.start, len(extra), len(skip), extra[:3]))
    r = rank_stats(a.mnt, a.rank)
    check(r is not None and r["position"] == a.start,
          "start=%d: the rank's position reads %s" % (a.start, r and r["position"]))
    print("start=%d: %d files of order[K:] prefetched, none of the %d only in order[:K]"
          % (a.start, len(want), len(skip)), flush=True)
    finish("started")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("reader")
    p.add_argument("mnt")
    p.add_argument("src")
    p.add_argument("--world", type=int, required=True)
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--barrier", required=True)
    p.add_argument("--dist-port", type=int, default=0,
                   help="join a gloo process group on this loopback port; all-reduce each step")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--step-ms", type=float, default=20)
    p.add_argument("--min-used", type=float, default=0.9)
    for name in ("partial", "rest"):
        p = sub.add_parser(name)
        p.add_argument("mnt")
        p.add_argument("src")
        p.add_argument("--world", type=int, required=True)
        p.add_argument("--seed", type=int, required=True)
        if name == "partial":
            p.add_argument("--upto", type=int, required=True)
        else:
            p.add_argument("--from", dest="start", type=int, required=True)
            p.add_argument("--min-hit", type=float, default=0.9)
            p.add_argument("--wait", action="store_true")
    p = sub.add_parser("started")
    p.add_argument("mnt")
    p.add_argument("--world", type=int, required=True)
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--start", type=int, required=True)
    a = ap.parse_args()
    {"reader": cmd_reader, "partial": cmd_partial, "rest": cmd_rest, "started": cmd_started}[a.cmd](a)


if __name__ == "__main__":
    main()
