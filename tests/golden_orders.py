#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Print golden shuffle orders from the real libraries for tests/check_order.c.

Run with Debian's interpreter, which has python3-torch and python3-numpy:
    /usr/bin/python3 tests/golden_orders.py > golden.txt
    GOLDEN_ORDERS=golden.txt ./check_order

Output, one record per line, fields separated by single spaces, '#' starts a comment:

    order SAMPLER SEED EPOCH N WORLD RANK DROP_LAST LEN HASH K I0 .. I(K-1)
    order SAMPLER SEED EPOCH N WORLD RANK DROP_LAST ERR
    torchmt SEED K V0 .. V(K-1)       first raw mt19937 outputs of manual_seed(SEED)
    pcg64 SEED K V0 .. V(K-1)         PCG64(SEED).random_raw(K)
    pcg64u32 SEED K V0 .. V(K-1)      default_rng(SEED).integers(0, 2**32, K, uint32)

SAMPLER is distributed, randperm or numpy (as order_spec_parse spells them). LEN is the
number of indices, HASH (16 hex digits) the mixsum64 of all of them (below), and
I0.. the first K indices (K = LEN when LEN <= 64, else 8). ERR means the library
raised for these parameters. Every number is decimal except HASH.

mixsum64(idx) = sum over i of fmix64((i << 32 | idx[i]) + 0x9e3779b97f4a7c15) mod 2^64,
fmix64 being splitmix64's finalizer; vectorised here with numpy's wrapping uint64 ops.
"""
import sys
import time

import numpy as np
import torch
from torch.utils.data.distributed import DistributedSampler

U = np.uint64
GAMMA = U(0x9E3779B97F4A7C15)
M1 = U(0xBF58476D1CE4E5B9)
M2 = U(0x94D049BB133111EB)


def mixsum64(indices):
    idx = np.asarray(indices, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (np.arange(idx.size, dtype=np.uint64) << U(32)) | idx
        z = z + GAMMA
        z = (z ^ (z >> U(30))) * M1
        z = (z ^ (z >> U(27))) * M2
        z = z ^ (z >> U(31))
        return int(np.sum(z, dtype=np.uint64))


def emit_order(out, sampler, seed, epoch, n, world, rank, drop_last, indices):
    head = f"order {sampler} {seed} {epoch} {n} {world} {rank} {drop_last}"
    if indices is None:
        out.append(f"{head} ERR")
        return
    k = len(indices) if len(indices) <= 64 else 8
    first = " ".join(str(int(v)) for v in indices[:k])
    out.append(f"{head} {len(indices)} {mixsum64(indices):016x} {k} {first}".rstrip())


def distributed(seed, epoch, n, world, rank, drop_last):
    try:
        s = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True,
                               seed=seed, drop_last=bool(drop_last))
        s.set_epoch(epoch)
        return list(s)
    except RuntimeError:  # manual_seed(seed + epoch >= 2**64)
        return None


def randperm(seed, epoch, n):
    try:
        g = torch.Generator().manual_seed(seed + epoch)
    except RuntimeError:
        return None
    return torch.randperm(n, generator=g).numpy()


def numpy_perm(seed, epoch, n):
    return np.random.default_rng(seed + epoch).permutation(n)


def ranks_of(world):
    return range(world) if world <= 8 else sorted({0, 1, world // 2 - 1, world - 1})


def main():
    t0 = time.time()
    out = ["# golden shuffle orders: torch %s, numpy %s" % (torch.__version__,
                                                            np.__version__)]

    seeds = [0, 1, 42, 2**32 + 5, 2**63 - 1]
    big_seeds = [42, 2**32 + 5]
    epochs = [0, 1, 7]
    small_n = [0, 1, 2, 3, 5, 10, 17, 100, 1000]
    big_n = 1281167  # ImageNet-1k train
    worlds = [1, 2, 3, 8, 64]

    # Raw generator streams.
    for seed in [0, 1, 5489, 2**32 + 5, 2**64 - 1]:
        g = torch.Generator().manual_seed(seed)
        # randint over [0, 2^32 - 1) is random() % (2^32 - 1): raw unless the draw is
        # 0xffffffff, so the C side compares mt() % 0xffffffff.
        v = torch.randint(0, 2**32 - 1, (16,), generator=g, dtype=torch.int64).tolist()
        out.append(f"torchmt {seed} {len(v)} " + " ".join(map(str, v)))
    for seed in [0, 1, 42, 2**32 + 5, 2**64 - 1, 2**64, 2**128 + 3]:
        v = np.random.PCG64(seed).random_raw(8)
        out.append(f"pcg64 {seed} {len(v)} " + " ".join(str(int(x)) for x in v))
        v = np.random.default_rng(seed).integers(0, 2**32, size=9, dtype=np.uint32)
        out.append(f"pcg64u32 {seed} {len(v)} " + " ".join(str(int(x)) for x in v))

    # DistributedSampler.
    for seed in seeds:
        for epoch in epochs:
            for n in small_n:
                for world in worlds:
                    for rank in ranks_of(world):
                        for dl in (0, 1):
                            emit_order(out, "distributed", seed, epoch, n, world, rank,
                                       dl, distributed(seed, epoch, n, world, rank, dl))
    for seed in big_seeds:
        for epoch in (0, 1):
            for world in (1, 8, 64):
                for rank in ranks_of(world):
                    for dl in (0, 1):
                        emit_order(out, "distributed", seed, epoch, big_n, world, rank,
                                   dl, distributed(seed, epoch, big_n, world, rank, dl))
    # seed + epoch must fit in a uint64 for torch.
    for epoch in (0, 1):
        for n in (10, 1000):
            emit_order(out, "distributed", 2**64 - 1, epoch, n, 8, 3, 0,
                       distributed(2**64 - 1, epoch, n, 8, 3, 0))

    # Rank sets (issue 12): one mount plans several local ranks; the merged
    # plan interleaves them by position, rank by rank:
    #   ranks SEED EPOCH N WORLD DROP_LAST NR R1..RNR LEN HASH K FIRST...
    rank_sets = {1: [[0]], 2: [[0, 1], [1]], 3: [[0, 1, 2], [2, 0]], 8: [list(range(8)), [0, 2, 4, 6]],
                 64: [list(range(8)), list(range(56, 64)), [0, 9, 18, 63]]}
    for seed in (0, 42, 2**32 + 5):
        for epoch in (0, 3):
            for n in (0, 1, 5, 17, 100, 1000):
                for world, sets in rank_sets.items():
                    for ranks in sets:
                        for dl in (0, 1):
                            per = [distributed(seed, epoch, n, world, r, dl) for r in ranks]
                            merged = [per[k][q] for q in range(len(per[0])) for k in range(len(ranks))]
                            head = "ranks %d %d %d %d %d %d %s" % (seed, epoch, n, world, dl, len(ranks),
                                                                  " ".join(map(str, ranks)))
                            kk = len(merged) if len(merged) <= 64 else 8
                            out.append(("%s %d %016x %d %s" % (head, len(merged), mixsum64(merged), kk,
                                        " ".join(str(int(v)) for v in merged[:kk]))).rstrip())
    for ranks in (list(range(8)), list(range(56, 64))):
        per = [distributed(42, 1, big_n, 64, r, 0) for r in ranks]
        merged = [per[k][q] for q in range(len(per[0])) for k in range(len(ranks))]
        out.append("ranks 42 1 %d 64 0 8 %s %d %016x 8 %s" % (big_n, " ".join(map(str, ranks)), len(merged),
                   mixsum64(merged), " ".join(str(int(v)) for v in merged[:8])))

    # torch.randperm.
    for seed in seeds + [2**64 - 1]:
        for epoch in epochs:
            for n in small_n + [65536, 65537]:
                emit_order(out, "randperm", seed, epoch, n, 1, 0, 0,
                           randperm(seed, epoch, n))
    for seed in big_seeds:
        for epoch in (0, 1):
            emit_order(out, "randperm", seed, epoch, big_n, 1, 0, 0,
                       randperm(seed, epoch, big_n))

    # numpy default_rng().permutation; seed + epoch >= 2^64 is fine for numpy.
    for seed in seeds + [2**64 - 1, 2**64 - 2]:
        for epoch in epochs:
            for n in small_n + [65536, 65537]:
                emit_order(out, "numpy", seed, epoch, n, 1, 0, 0,
                           numpy_perm(seed, epoch, n))
    for seed in big_seeds + [2**64 - 1]:
        for epoch in (0, 1):
            emit_order(out, "numpy", seed, epoch, big_n, 1, 0, 0,
                       numpy_perm(seed, epoch, big_n))

    out.append("# %d records in %.1f s" % (len(out) - 1, time.time() - t0))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
