#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Train a tiny model on an epochfs mount, telling epochfs each epoch's order.

    epochfs /data/imagenet /mnt/imagenet --cache-dir /nvme/epochfs --cache-size 500G
    python3 tools/python/example_train.py /mnt/imagenet --epochs 2 --workers 4
    torchrun --nproc-per-node 4 tools/python/example_train.py /mnt/imagenet \
        --epochs 2 --checkpoint /tmp/ckpt          # one process per rank
    torchrun --nproc-per-node 4 tools/python/example_train.py /mnt/imagenet \
        --epochs 2 --checkpoint /tmp/ckpt --resume  # after a preemption

The dataset is any ImageFolder-style tree (class directories of image files).
To stay free of torchvision and image decoding, each sample's input is a
histogram of its file's first 64 KiB of bytes; the model learns nothing
useful, but the data path is exactly a real job's: a DataLoader with worker
processes, a DistributedSampler with set_epoch(), wrapped by EpochfsSampler,
which declares this rank's epoch (its seed spec) to <mount>/.epochfs/seed
before the first index is yielded.  Under torchrun (WORLD_SIZE > 1) the
process group is initialised (gloo) and the model wrapped in
DistributedDataParallel; --checkpoint saves the model, the optimiser and the
sampler's position every --checkpoint-every batches, and --resume continues
from there in the middle of the epoch (declared with start=K).
--importance also feeds per-sample loss ranks to .epochfs/importance
(SHADE); --seed-file gives the seed without the wrapper.
"""
import argparse
import os
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import epochfs  # noqa: E402


class ByteHistogramFolder(Dataset):
    """ImageFolder's samples and labels; the input is a 256-bin byte histogram."""

    def __init__(self, root, head=64 << 10):
        self.samples = epochfs.image_folder_samples(root)
        self.classes = epochfs.find_classes(root)
        self.head = head
        if not self.samples:
            raise SystemExit("no image files under %s" % root)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        with open(path, "rb") as f:
            data = f.read(self.head)
        x = torch.bincount(torch.frombuffer(bytearray(data), dtype=torch.uint8).long(), minlength=256)
        return x.float() / max(len(data), 1), label, i


def main():
    ap = argparse.ArgumentParser(description="a tiny training loop over an epochfs mount")
    ap.add_argument("mount", help="the epochfs mount point (an ImageFolder tree)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0, help="the sampler's shuffle seed")
    ap.add_argument("--world", type=int, default=None,
                    help="DistributedSampler num_replicas (default: torchrun's WORLD_SIZE, else 1)")
    ap.add_argument("--rank", type=int, default=None,
                    help="DistributedSampler rank (default: torchrun's RANK, else 0)")
    ap.add_argument("--checkpoint", metavar="PATH",
                    help="save model, optimiser and sampler position to PATH.rankR")
    ap.add_argument("--checkpoint-every", type=int, default=20, metavar="BATCHES")
    ap.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    ap.add_argument("--seed-file", action="store_true",
                    help="write the seed to .epochfs/seed instead of wrapping the sampler")
    ap.add_argument("--importance", action="store_true",
                    help="write per-sample loss ranks to .epochfs/importance every batch")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    rank, world, _ = epochfs.dist_info()  # torchrun's RANK / WORLD_SIZE (else 0, 1)
    rank = rank if a.rank is None else a.rank
    world = world if a.world is None else a.world
    distributed = world > 1 and "MASTER_ADDR" in os.environ  # started by torchrun
    if distributed:
        torch.distributed.init_process_group("gloo")
    ds = ByteHistogramFolder(a.mount)
    # num_replicas and rank given explicitly: no process group is needed for them
    sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=a.seed)
    if a.seed_file:
        epochfs.write_sampler_seed(a.mount, sampler)  # epochfs computes every epoch itself
        loader_sampler = sampler
    else:
        loader_sampler = epochfs.EpochfsSampler(sampler, a.mount, dataset=ds)
    loader = DataLoader(ds, batch_size=a.batch_size, sampler=loader_sampler,
                        num_workers=a.workers, persistent_workers=a.workers > 0)
    model = nn.Sequential(nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, len(ds.classes)))
    if distributed:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    paths = [os.path.relpath(p, a.mount) for p, _ in ds.samples]
    ckpt = "%s.rank%d" % (a.checkpoint, rank) if a.checkpoint else None
    first_epoch = 0
    if a.resume and ckpt and os.path.exists(ckpt):
        state = torch.load(ckpt)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        if not a.seed_file:
            loader_sampler.load_state_dict(state["sampler"])  # the epoch resumes at its position
        first_epoch = state["sampler"]["epoch"]
        print("rank %d: resuming epoch %d at sample %d" % (rank, first_epoch,
                                                           state["sampler"]["position"]), flush=True)

    for epoch in range(first_epoch, a.epochs):
        loader_sampler.set_epoch(epoch)
        t0, total, n = time.monotonic(), 0.0, 0
        for batch, (x, y, idx) in enumerate(loader):
            losses = loss_fn(model(x), y)
            opt.zero_grad()
            losses.mean().backward()
            opt.step()
            total += losses.sum().item()
            n += len(y)
            if ckpt and not a.seed_file and (batch + 1) % a.checkpoint_every == 0:
                # the position is what this loop trained on (the loader reads ahead)
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                            "sampler": loader_sampler.state_dict(consumed=n)}, ckpt + ".tmp")
                os.replace(ckpt + ".tmp", ckpt)
            if a.importance:
                try:
                    epochfs.write_importance(a.mount, [paths[i] for i in idx.tolist()],
                                             epochfs.importance_from_losses(losses))
                except OSError as e:  # an older epochfs, or not an epochfs mount
                    print("importance not written: %s" % e, file=sys.stderr)
                    a.importance = False
        dt = time.monotonic() - t0
        line = "rank %d epoch %d: %d samples in %.2f s (%.0f/s), mean loss %.4f" % (
            rank, epoch, n, dt, n / dt if dt else 0.0, total / max(n, 1))
        try:
            s = epochfs.read_stats(a.mount)
            line += "; epochfs: opens %s, hits %s, prefetched %s, late %s, backend %s bytes" % (
                s.get("opens"), s.get("open_hits"), s.get("prefetch_used"),
                s.get("prefetch_late"), s.get("backend_bytes"))
        except (OSError, ValueError):
            pass
        print(line, flush=True)
    if distributed:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
