#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""One rank of a two-rank job for it-python.sh, run as torchrun runs it
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT in the environment),
with the installed epochfs package.

    python_ranks.py seed MNT SRC OUT    torch.distributed (gloo) initialised, a
                                        DistributedSampler wrapped: the seed spec
    python_ranks.py order MNT SRC OUT   no process group: a per-rank random
                                        sampler wrapped: the explicit rank order

Writes what it saw to OUT.rank<R>.json; prints 'FAIL: ...' and exits 1 on a
failed check.
"""
import hashlib
import json
import os
import sys
import time

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, SubsetRandomSampler

import epochfs

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL: rank %s: %s" % (os.environ.get("RANK"), what), flush=True)
    return cond


class HashFolder(Dataset):
    """ImageFolder's samples; an item is (index, sha1 of the file's bytes)."""

    def __init__(self, root):
        self.samples = epochfs.image_folder_samples(root)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        with open(self.samples[i][0], "rb") as f:
            return i, hashlib.sha1(f.read()).hexdigest()


def file_barrier(out, name, rank, world, timeout=60):
    """Every rank reaches this point (without a process group)."""
    open("%s.%s.%d" % (out, name, rank), "w").close()
    t0 = time.monotonic()
    while not all(os.path.exists("%s.%s.%d" % (out, name, r)) for r in range(world)):
        if time.monotonic() - t0 > timeout:
            raise SystemExit("FAIL: barrier %s timed out" % name)
        time.sleep(0.02)


def my_rank(stats, rank):
    for r in stats.get("ranks", []):
        if r["rank"] == rank:
            return r
    return None


def read_epoch(loader, sampler_indices, want_hash, label):
    got, bad = [], 0
    for idx, hashes in loader:
        for i, h in zip(idx.tolist(), hashes):
            got.append(i)
            bad += h != want_hash[i]
    check(got == sampler_indices, "%s: the loader's indices are not the sampler's" % label)
    check(bad == 0, "%s: %d files with wrong bytes" % (label, bad))


def main():
    mode, mnt, src, out = sys.argv[1:5]
    rank, world, local = epochfs.dist_info()
    ds = HashFolder(mnt)
    want_hash = []
    for p, _ in ds.samples:
        with open(os.path.join(src, os.path.relpath(p, mnt)), "rb") as f:
            want_hash.append(hashlib.sha1(f.read()).hexdigest())
    seen = {"rank": rank, "world": world, "local_rank": local}
    K = 6

    if mode == "seed":
        dist.init_process_group("gloo", init_method="env://")
        r2, w2, _ = epochfs.dist_info()
        check((r2, w2) == (rank, world), "dist_info %s from the process group, %s from the environment"
              % ((r2, w2), (rank, world)))
        sampler = DistributedSampler(ds, shuffle=True, seed=7)  # rank and world from the group
        wrapper = epochfs.EpochfsSampler(sampler, mnt, dataset=ds)
        loader = DataLoader(ds, batch_size=4, sampler=wrapper, num_workers=2)
        wrapper.set_epoch(0)
        seen["spec0"] = wrapper.last_spec
        check(wrapper.last_error is None, "declaring epoch 0: %s" % wrapper.last_error)
        dist.barrier()
        seen["seed_after_both"] = epochfs.read_seed(mnt).split("\n")
        dist.barrier()
        read_epoch(loader, list(sampler), want_hash, "epoch 0")
        # epoch 1: K samples handed out (not read), then the job "dies"
        wrapper.set_epoch(1)
        it = iter(wrapper)
        first = [next(it) for _ in range(K)]
        check(first == list(sampler)[:K], "epoch 1: the first %d indices" % K)
        state = wrapper.state_dict()
        seen["state"] = state
        check(state == {"epoch": 1, "position": K, "rank": rank, "world": world}, "state_dict %s" % state)
        dist.barrier()
        # the resumed job: a new sampler and wrapper, from the saved state
        sampler2 = DistributedSampler(ds, shuffle=True, seed=7)
        wrapper2 = epochfs.EpochfsSampler(sampler2, mnt, dataset=ds)
        wrapper2.load_state_dict(json.loads(json.dumps(state)))
        check(len(wrapper2) == len(sampler2) - K, "len of the resumed epoch %d" % len(wrapper2))
        wrapper2.set_epoch(1)
        seen["spec_resumed"] = wrapper2.last_spec
        check(wrapper2.last_error is None, "declaring the resumed epoch: %s" % wrapper2.last_error)
        dist.barrier()
        seen["seed_resumed"] = epochfs.read_seed(mnt).split("\n")
        seen["rank_resumed"] = my_rank(epochfs.read_stats(mnt), rank)
        dist.barrier()  # both have looked before either goes on
        rest = list(iter(wrapper2))
        check(rest == list(sampler2)[K:], "the resumed epoch yields the order from position %d" % K)
        seen["state_resumed_end"] = wrapper2.state_dict()
        # the next epoch is whole again
        wrapper2.set_epoch(2)
        seen["spec2"] = wrapper2.last_spec
        check(len(list(iter(wrapper2))) == len(sampler2), "epoch 2 is whole")
        dist.barrier()
        dist.destroy_process_group()
    else:
        g = torch.Generator().manual_seed(100 + rank)
        mine = list(range(rank, len(ds), world))  # this rank's shard, shuffled every epoch
        sampler = SubsetRandomSampler(mine, generator=g)
        wrapper = epochfs.EpochfsSampler(sampler, mnt, dataset=ds)
        loader = DataLoader(ds, batch_size=4, sampler=wrapper, num_workers=2)
        wrapper.set_epoch(0)
        seen["spec0"] = wrapper.last_spec
        check(wrapper.last_error is None, "declaring epoch 0: %s" % wrapper.last_error)
        prepared = wrapper._prepared[1]
        seen["order0"] = [os.path.relpath(ds.samples[i][0], mnt) for i in prepared]
        file_barrier(out, "declared", rank, world)
        seen["rank_declared"] = my_rank(epochfs.read_stats(mnt), rank)
        seen["merged"] = epochfs.read_order(mnt)
        seen["seed_text"] = epochfs.read_seed(mnt)
        file_barrier(out, "inspected", rank, world)
        read_epoch(loader, prepared, want_hash, "epoch 0")
        file_barrier(out, "read", rank, world)
        # resume in epoch 1 at position K (a new wrapper of a new sampler)
        state = {"epoch": 1, "position": K}
        w2 = epochfs.EpochfsSampler(SubsetRandomSampler(mine, generator=g), mnt, dataset=ds)
        w2.load_state_dict(state)
        w2.set_epoch(1)
        seen["spec_resumed"] = w2.last_spec
        check(w2.last_error is None, "declaring the resumed epoch: %s" % w2.last_error)
        file_barrier(out, "resumed", rank, world)
        seen["rank_resumed"] = my_rank(epochfs.read_stats(mnt), rank)
        check(len(list(iter(w2))) == len(mine) - K, "the resumed epoch yields %d" % (len(mine) - K))
        file_barrier(out, "done", rank, world)

    with open("%s.rank%d.json" % (out, rank), "w") as f:
        json.dump(seen, f, indent=1)
    if FAILS:
        sys.exit(1)
    print("rank %d: %s checks passed" % (rank, mode), flush=True)


if __name__ == "__main__":
    main()
