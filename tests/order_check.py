#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Python side of it-orders.sh, it-control.sh and it-loader.sh.

Run with Debian's /usr/bin/python3 (python3-torch, python3-numpy):

    order_check.py deps                          exit 77 when torch/numpy are missing
    order_check.py orders MNT SRC                golden orders through a mount
    order_check.py control MNT [--nobody]        bad control writes change nothing
    order_check.py loader MNT SRC --mode seed|wrapper --world W --rank R
                                                 a DataLoader reads two epochs

Prints one line per check group and 'FAIL: ...' lines; exits 1 on failure.
"""
import argparse
import errno
import hashlib
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "python"))
import epochfs  # noqa: E402

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL: " + what, flush=True)
    return cond


def finish(name):
    if FAILS:
        print("%s: %d failure(s)" % (name, len(FAILS)))
        sys.exit(1)
    print("%s: all checks passed" % name)
    sys.exit(0)


def ls_ctl(mnt):
    names = ["stats", "seed", "order", "manifest", "epoch", "importance", "evict"]
    return [n for n in names if os.path.exists(epochfs.ctl_path(mnt, n))]


# --- golden orders from the real libraries ---------------------------------

def golden(sampler, n, seed, epoch, world=1, rank=0, drop_last=False):
    """The indices the real torch/numpy code gives."""
    import numpy
    import torch
    from torch.utils.data import DistributedSampler
    if sampler == "distributed":
        s = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True,
                               seed=seed, drop_last=drop_last)
        s.set_epoch(epoch)
        return list(iter(s))
    if sampler == "randperm":
        return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    if sampler == "numpy":
        return numpy.random.default_rng(seed + epoch).permutation(n).tolist()
    raise ValueError(sampler)


def canonical(sampler, seed, epoch, world=1, rank=0, drop_last=False):
    if sampler == "distributed":
        return "seed=%d sampler=distributed world=%d rank=%d drop_last=%d epoch=%d" % (
            seed, world, rank, int(drop_last), epoch)
    return "seed=%d sampler=%s epoch=%d" % (seed, sampler, epoch)


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return "at %d: %r != %r" % (i, x, y)
    return "lengths %d != %d" % (len(a), len(b))


def seed_cases(n_dist_combos):
    seeds = [0, 1, 42, (1 << 32) + 5, (1 << 63) - 1]
    for sampler in ("distributed", "randperm", "numpy"):
        combos = n_dist_combos if sampler == "distributed" else [(1, 0, False)]
        for world, rank, dl in combos:
            for seed in seeds:
                for epoch in (0, 1, 7):
                    yield sampler, seed, epoch, world, rank, dl
        yield sampler, (1 << 64) - 1, 0, 1, 0, False  # the largest seed


def check_seed_orders(mnt, manifest, combos, label):
    n, done = len(manifest), 0
    for sampler, seed, epoch, world, rank, dl in seed_cases(combos):
        what = "%s %s seed=%d epoch=%d world=%d rank=%d drop_last=%d n=%d" % (
            label, sampler, seed, epoch, world, rank, dl, n)
        try:
            epochfs.write_seed(mnt, seed, sampler, world, rank, dl, epoch)
        except OSError as e:
            check(False, "%s: write_seed failed: %s" % (what, e))
            continue
        check(epochfs.read_seed(mnt) == canonical(sampler, seed, epoch, world, rank, dl),
              "%s: seed reads back %r" % (what, epochfs.read_seed(mnt)))
        want = [manifest[i] for i in golden(sampler, n, seed, epoch, world, rank, dl)]
        got = epochfs.read_order(mnt)
        check(got == want, "%s: order differs from the library's (%s)" % (what, first_diff(got, want)))
        done += 1
    print("%s: %d seed orders compared" % (label, done), flush=True)


def cmd_orders(a):
    mnt, src = a.mnt, a.src
    check(set(ls_ctl(mnt)) >= {"seed", "order", "manifest", "epoch"},
          "control files missing: have %s" % ls_ctl(mnt))
    want_manifest = [os.path.relpath(p, src) for p, _ in epochfs.image_folder_samples(src)]
    try:
        import torchvision.datasets.folder as tvf  # optional cross-check, not a dependency
        tv = [os.path.relpath(p, src) for p, _ in
              tvf.make_dataset(src, {c: i for i, c in enumerate(epochfs.find_classes(src))},
                               tvf.IMG_EXTENSIONS)]
        check(tv == want_manifest, "image_folder_samples differs from torchvision's")
    except ImportError:
        pass
    manifest = epochfs.read_manifest(mnt)
    check(manifest == want_manifest, "default manifest is not ImageFolder's order (%s)"
          % first_diff(manifest, want_manifest))
    # the mount itself, seen by the same code, gives the same list
    on_mnt = [os.path.relpath(p, mnt) for p, _ in epochfs.image_folder_samples(mnt)]
    check(on_mnt == want_manifest, "ImageFolder over the mount differs from over the source")
    print("manifest: %d samples, ImageFolder order" % len(manifest), flush=True)
    n = len(want_manifest)

    combos = [(1, 0, False), (1, 0, True), (2, 1, False), (3, 2, True), (3, 0, False),
              (8, 5, False), (8, 7, True), (64, 63, False), (64, 0, True)]
    check_seed_orders(mnt, want_manifest, combos, "default manifest")

    # epoch: write it, read it back; the order follows the seed to that epoch
    epochfs.write_seed(mnt, 42, "distributed", world=3, rank=1, epoch=0)
    check(epochfs.read_epoch(mnt) == 0, "epoch after seed epoch=0 reads %r" % epochfs.read_epoch(mnt))
    for e in (5, 1, 0, 1000):
        epochfs.set_epoch(mnt, e)
        check(epochfs.read_epoch(mnt) == e, "epoch written %d reads %d" % (e, epochfs.read_epoch(mnt)))
        want = [want_manifest[i] for i in golden("distributed", n, 42, e, 3, 1)]
        got = epochfs.read_order(mnt)
        check(got == want, "after epoch=%d the order is not the seed's epoch %d (%s)"
              % (e, e, first_diff(got, want)))
    epochfs.write_seed(mnt, 7, "numpy", epoch=3)
    check(epochfs.read_epoch(mnt) == 3, "epoch after seed epoch=3 reads %r" % epochfs.read_epoch(mnt))
    print("epoch: written, read back, the order follows", flush=True)

    # an explicit order of two epochs, separated by a blank line
    rng = random.Random(5)
    first = want_manifest[:]
    rng.shuffle(first)
    second = rng.sample(want_manifest, n // 2)
    epochfs.write_order(mnt, [first, second])
    got = epochfs.read_order(mnt)
    check(got == first, "explicit order: reads back %s" % first_diff(got, first))
    check(epochfs.read_seed(mnt) == "", "an explicit order left the seed spec %r" % epochfs.read_seed(mnt))
    e = epochfs.read_epoch(mnt)
    epochfs.set_epoch(mnt, e + 1)
    got = epochfs.read_order(mnt)
    check(got == second, "explicit order: epoch %d (the second block) reads %s" % (e + 1, first_diff(got, second)))
    # a single block, written raw as a shell would, with absolute paths via the module
    epochfs.write_order(mnt, [os.path.join(mnt, p) for p in first[:10]])
    check(epochfs.read_order(mnt) == first[:10], "a 10-path order does not read back")
    # then a seed replaces the explicit order
    epochfs.write_seed(mnt, 3, "randperm")
    check(epochfs.read_order(mnt) == [want_manifest[i] for i in golden("randperm", n, 3, 0)],
          "a seed after an explicit order does not replace it")
    print("order: explicit orders read back", flush=True)

    # a manifest written: the reversed list; the seed orders map through it
    rev = want_manifest[::-1]
    epochfs.write_manifest(mnt, rev)
    check(epochfs.read_manifest(mnt) == rev, "written manifest does not read back")
    check_seed_orders(mnt, rev, [(1, 0, False), (8, 3, True), (5, 4, False)], "reversed manifest")
    # small manifests: n < world, drop_last both ways; n = 1
    for small in (rev[:3], rev[:1]):
        epochfs.write_manifest(mnt, small)
        check(epochfs.read_manifest(mnt) == small, "a %d-path manifest does not read back" % len(small))
        for world, rank, dl in ((8, 0, False), (8, 2, False), (8, 7, False), (8, 5, True),
                                (64, 63, False), (2, 1, True), (1, 0, False)):
            for seed, epoch in ((0, 0), (42, 1), ((1 << 32) + 5, 7)):
                epochfs.write_seed(mnt, seed, "distributed", world, rank, dl, epoch)
                want = [small[i] for i in golden("distributed", len(small), seed, epoch, world, rank, dl)]
                got = epochfs.read_order(mnt)
                check(got == want, "n=%d world=%d rank=%d drop_last=%d seed=%d epoch=%d: %s"
                      % (len(small), world, rank, dl, seed, epoch, first_diff(got, want)))
        for sampler in ("randperm", "numpy"):
            epochfs.write_seed(mnt, 9, sampler, epoch=2)
            want = [small[i] for i in golden(sampler, len(small), 9, 2)]
            check(epochfs.read_order(mnt) == want, "n=%d %s order differs" % (len(small), sampler))
    print("manifest: reversed and small manifests map the seed orders", flush=True)
    epochfs.write_manifest(mnt, [])  # a blank line
    check(epochfs.read_manifest(mnt) == want_manifest, "a blank-line manifest write does not restore the default")
    epochfs.write_manifest(mnt, rev)
    err = attempt(mnt, "manifest", [])  # open(O_TRUNC) + close, as ': > manifest'
    check(err is None and epochfs.read_manifest(mnt) == rev,
          "open(O_TRUNC) + close with no write() changed the manifest: %s, manifest %s"
          % (fmt(err), "default" if epochfs.read_manifest(mnt) == want_manifest else "other"))
    finish("orders")


# --- bad control writes -----------------------------------------------------

STATE_FILES = ("seed", "order", "manifest", "epoch")


def snapshot(mnt):
    return {n: epochfs._read_ctl(mnt, n) for n in STATE_FILES}


def attempt(mnt, name, chunks):
    """Write chunks on one open; returns (where, errno) of the first error or None."""
    try:
        fd = os.open(epochfs.ctl_path(mnt, name), os.O_WRONLY | os.O_TRUNC)
    except OSError as e:
        return ("open", e.errno)
    err = None
    for c in chunks:
        try:
            os.write(fd, c.encode())
        except OSError as e:
            err = ("write", e.errno)
            break
    try:
        os.close(fd)
    except OSError as e:
        err = err or ("close", e.errno)
    return err


def fmt(err):
    return "success" if err is None else "%s() %s" % (err[0], errno.errorcode.get(err[1], err[1]))


def expect_rejected(mnt, name, chunks, where=("write",), label=None):
    """The write fails with EINVAL at one of `where` and changes nothing."""
    before = snapshot(mnt)
    err = attempt(mnt, name, chunks)
    after = snapshot(mnt)
    what = "%s <- %r" % (name, "".join(chunks) if label is None else label)
    ok = err is not None and err[1] == errno.EINVAL and err[0] in where
    if not ok and err is None and where == ("close",) and NO_OPEN[0]:
        # --no-open: no close reaches the daemon; an unterminated bad line is
        # rejected (logged) when applied, and nothing changes (checked below).
        ok = True
    check(ok, "%s: expected EINVAL from %s, got %s" % (what, "/".join(w + "()" for w in where), fmt(err)))
    for n in STATE_FILES:
        check(before[n] == after[n], "%s: changed %s (%r -> %r)" % (what, n, before[n][:80], after[n][:80]))
    return err


NO_OPEN = [False]


def cmd_control(a):
    mnt = a.mnt
    with open(os.path.join(mnt, ".epochfs", "stats")) as f:
        NO_OPEN[0] = json.load(f).get("open_mode") == "no-open"
    have = ls_ctl(mnt)
    check(set(have) >= {"seed", "order", "manifest", "epoch"}, "control files missing: have %s" % have)
    manifest = epochfs.read_manifest(mnt)
    p0, p1 = manifest[0], manifest[1]
    cls = p0.split("/")[0]

    # good writes first, in pieces: a line split across writes is applied whole
    check(attempt(mnt, "seed", ["seed=4", "2 sampler=dis", "tributed world=2 rank=1", "\n"]) is None,
          "seed written in pieces was rejected")
    check(epochfs.read_seed(mnt) == canonical("distributed", 42, 0, 2, 1), "seed in pieces reads %r"
          % epochfs.read_seed(mnt))
    check(attempt(mnt, "seed", ["epoch=0 rank=0 seed=43  world=1\tsampler=distributed"]) is None,
          "seed without newline, keys in any order, rejected")
    check(epochfs.read_seed(mnt) == canonical("distributed", 43, 0), "reordered keys read %r" % epochfs.read_seed(mnt))
    text = "".join(p + "\n" for p in manifest[::-1])
    check(attempt(mnt, "order", [text[i:i + 7] for i in range(0, len(text), 7)]) is None,
          "an order written 7 bytes at a time was rejected")
    check(epochfs.read_order(mnt) == manifest[::-1], "an order written in pieces does not read back")
    print("good writes in pieces: applied", flush=True)

    # a known state: a seed spec, epoch 2
    epochfs.write_seed(mnt, 42, "distributed", world=4, rank=3, drop_last=True, epoch=2)
    base = snapshot(mnt)
    check(base["seed"].strip() == canonical("distributed", 42, 2, 4, 3, True), "base seed %r" % base["seed"])

    bad_seeds = [
        "seed=1 bogus=2", "seed=abc", "seed=12x", "seed=", "seed=-1", "seed=1.5",
        "seed=18446744073709551616", "seed=99999999999999999999999",
        "seed=1 world=2 rank=2", "seed=1 world=2 rank=5", "seed=1 world=0",
        "seed=1 world=0 rank=0", "seed=1 seed=2", "seed=1 rank=0 rank=0",
        "sampler=randperm", "world=2 rank=1", "seed=1 sampler=foo", "seed=1 sampler=",
        "seed=1 epoch=-1", "seed=1 epoch=x", "seed=1 drop_last=2", "seed=1 drop_last=yes",
        "seed=1 sampler=numpy world=2", "seed=1 sampler=randperm rank=1",
        "seed=1 sampler=numpy drop_last=1", "seed", "seed=1 world",
        "seed=18446744073709551615 epoch=1",  # seed + epoch >= 2^64 for torch
        "seed=18446744073709551615 sampler=randperm epoch=1",
    ]
    for line in bad_seeds:
        expect_rejected(mnt, "seed", [line + "\n"])
    # A write that ends mid-line fails itself when no good line can begin so
    # (printf without a newline must report it: the shell ignores close()).
    for line in ("seed=abc", "seed=1 world=2 rank=2", "seed=1 bogus=2", "seed=1 sampler=x"):
        expect_rejected(mnt, "seed", [line], label=line + " (no newline)")
    # One that could still become good is checked whole when the file closes.
    expect_rejected(mnt, "seed", ["seed=1 world="], where=("close",), label="seed=1 world= (no newline)")
    expect_rejected(mnt, "seed", ["seed=1 wor", "ld=2 rank=2\n"], label="rank>=world in two writes")
    print("seed: %d bad lines rejected" % (len(bad_seeds) + 6), flush=True)

    for line in ("-1", "x", "1.5", "1 2", "0x10", "18446744073709551616", "epoch=3"):
        expect_rejected(mnt, "epoch", [line + "\n"])
        expect_rejected(mnt, "epoch", [line], label=line + " (no newline)")
    print("epoch: bad numbers rejected", flush=True)

    good = "".join(p + "\n" for p in manifest[:5])
    multi = {"order": [["nope/missing.JPEG\n"], [good, "nope/missing.JPEG\n"], [good + cls + "\n"],
                       [good, p0 + "/x\n"]],
             "manifest": [[cls + "\n"], [good + cls + "\n"], [good, "nope/missing.JPEG\n"],
                          [good, "\n\n" + cls + "\n"]]}
    for name, cases in multi.items():
        for chunks in cases:
            expect_rejected(mnt, name, chunks, where=("write", "close"))
    # docs/control.md: a bad line fails that write() itself; the open's other lines are dropped
    expect_rejected(mnt, "order", [good, "nope\n", good], where=("write",), label="good, bad, good")
    # a last line without a newline that no file of the mount begins with
    # fails the write itself (printf "nope" > order must report it)
    for name in ("order", "manifest", "evict"):
        expect_rejected(mnt, name, [good + "nope/missing.JPEG"], label=name + ": bad last line, no newline")
        expect_rejected(mnt, name, [good + p0[:-3]], where=("close",), label=name + ": last line, a prefix")
    print("order/manifest: unknown paths and directories rejected", flush=True)

    if "importance" in have:
        for chunks in ([p0 + "\n"], [p0 + " abc\n"], [p0 + " 0.5 7\n"], [p0 + " 0.5\n", p1 + " x\n"],
                       ["nope/missing.JPEG 0.5\n"],
                       ["%d 0.5\n" % len(manifest)]):
            expect_rejected(mnt, "importance", chunks, where=("write", "close"))
        # docs/control.md: a malformed line fails that write() itself
        expect_rejected(mnt, "importance", [p0 + " 0.5\n", p1 + "\n", p0 + " 0.5\n"], where=("write",),
                        label="good, no score, good")
        print("importance: malformed lines rejected", flush=True)
    else:
        print("importance: no .epochfs/importance; skipped", flush=True)

    if "evict" in have:
        with open(os.path.join(mnt, p1), "rb") as f:
            f.read()
        xa = os.getxattr(os.path.join(mnt, p1), "user.epochfs.cached").decode()
        expect_rejected(mnt, "evict", [p1 + "\nnope/missing.JPEG\n"], where=("write", "close"))
        expect_rejected(mnt, "evict", [cls + "\n"], where=("write", "close"))
        xb = os.getxattr(os.path.join(mnt, p1), "user.epochfs.cached").decode()
        check(xa == xb, "a rejected evict dropped %s (%s -> %s)" % (p1, xa, xb))
        print("evict: unknown paths rejected, nothing dropped (%s cached %s)" % (p1, xb), flush=True)

    check(snapshot(mnt) == base, "the state changed across the bad writes")
    if a.nobody:
        cmd_nobody(mnt, have)
    finish("control")


def cmd_nobody(mnt, have):
    """As uid 65534: stats readable, every writable control file EACCES, nothing changed."""
    before = snapshot(mnt)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        res = {}
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                with open(epochfs.ctl_path(mnt, "stats")) as f:
                    res["stats"] = "read %d bytes" % len(f.read())
            except OSError as e:
                res["stats"] = errno.errorcode.get(e.errno, str(e.errno))
            for n in have:
                if n == "stats":
                    continue
                res[n] = fmt(attempt(mnt, n, ["seed=1\n" if n == "seed" else "1\n"]))
        except Exception as e:  # noqa: BLE001
            res["error"] = repr(e)
        os.write(w, json.dumps(res).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.waitpid(pid, 0)
    res = json.loads(data)
    print("as nobody: %s" % res, flush=True)
    check("error" not in res, "nobody child: %s" % res.get("error"))
    check(res.get("stats", "").startswith("read"), "nobody cannot read stats (%s): mount without allow_other?"
          % res.get("stats"))
    for n in have:
        if n != "stats":
            check(str(res.get(n)).endswith("EACCES"), "nobody writing %s: expected EACCES, got %s" % (n, res.get(n)))
    check(snapshot(mnt) == before, "nobody's writes changed the state")


# --- a DataLoader over the mount ---------------------------------------------

def make_dataset_class():
    import torch

    class HashFolder(torch.utils.data.Dataset):
        """ImageFolder's samples; an item is (index, sha1 of the file's bytes)."""

        def __init__(self, root):
            self.root = root
            self.samples = epochfs.image_folder_samples(root)

        def __len__(self):
            return len(self.samples)

        def __getitem__(self, i):
            with open(self.samples[i][0], "rb") as f:
                return i, hashlib.sha1(f.read()).hexdigest()

    return HashFolder


STAT_KEYS = ("opens", "open_hits", "prefetch_issued", "prefetch_used", "prefetch_late",
             "prefetch_wasted", "backend_bytes", "backend_requests", "epoch", "position")


def cmd_loader(a):
    from torch.utils.data import DataLoader, DistributedSampler
    mnt, src = a.mnt, a.src
    ds = make_dataset_class()(mnt)
    rel = [os.path.relpath(p, mnt) for p, _ in ds.samples]
    want_hash = []
    for r in rel:
        with open(os.path.join(src, r), "rb") as f:
            want_hash.append(hashlib.sha1(f.read()).hexdigest())
    sampler = DistributedSampler(ds, num_replicas=a.world, rank=a.rank, shuffle=True, seed=a.seed)
    before = epochfs.read_stats(mnt)
    if a.mode == "seed":
        epochfs.write_sampler_seed(mnt, sampler)  # epoch 0; epochfs follows to epoch 1 itself
        loader_sampler = sampler
    else:
        loader_sampler = epochfs.EpochfsSampler(sampler, mnt, dataset=ds)
    loader = DataLoader(ds, batch_size=8, sampler=loader_sampler, num_workers=a.workers)
    missing = [k for k in STAT_KEYS if k not in before]
    check(not missing, "stats lack %s" % missing)
    label = "%s world=%d rank=%d" % (a.mode, a.world, a.rank)
    for epoch in range(a.epochs):
        loader_sampler.set_epoch(epoch)
        want_idx = list(iter(sampler))  # what DistributedSampler gives this epoch
        t0 = time.monotonic()
        got_idx, bad = [], 0
        for idx, hashes in loader:
            time.sleep(a.step_ms / 1000)  # the model's step: a job reads no faster than it trains
            for i, h in zip(idx.tolist(), hashes):
                got_idx.append(i)
                bad += h != want_hash[i]
        dt = time.monotonic() - t0
        after = epochfs.read_stats(mnt)
        d = {k: after.get(k, 0) - before.get(k, 0) for k in STAT_KEYS if k not in ("epoch", "position")}
        opens, hits = d["opens"], d["open_hits"]
        ratio = hits / opens if opens else 0.0
        print("%s epoch %d: %d files in %.2f s, opens %d, open_hits %d (%.3f), prefetch issued %d "
              "used %d late %d wasted %d, backend %d requests %d bytes; daemon epoch %s position %s"
              % (label, epoch, len(got_idx), dt, opens, hits, ratio, d["prefetch_issued"],
                 d["prefetch_used"], d["prefetch_late"], d["prefetch_wasted"], d["backend_requests"],
                 d["backend_bytes"], after.get("epoch"), after.get("position")), flush=True)
        check(got_idx == want_idx, "%s epoch %d: the loader's indices are not the sampler's" % (label, epoch))
        check(bad == 0, "%s epoch %d: %d files with wrong bytes" % (label, epoch, bad))
        check(opens >= len(want_idx), "%s epoch %d: %d opens for %d files" % (label, epoch, opens, len(want_idx)))
        check(ratio >= a.min_hit, "%s epoch %d: open_hits/opens %.3f < %.2f" % (label, epoch, ratio, a.min_hit))
        if epoch == 0:
            check(d["prefetch_issued"] > 0, "%s epoch 0: nothing prefetched" % label)
            check(d["prefetch_used"] + d["prefetch_late"] >= a.min_hit * len(want_idx),
                  "%s epoch 0: prefetch used+late %d of %d opens" % (label, d["prefetch_used"] + d["prefetch_late"],
                                                                     len(want_idx)))
        if a.mode == "wrapper":
            lw = loader_sampler.last_error
            check(lw is None, "%s: the wrapper could not write the order: %s" % (label, lw))
        before = after
    finish("loader " + label)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("deps")
    p = sub.add_parser("orders")
    p.add_argument("mnt")
    p.add_argument("src")
    p = sub.add_parser("control")
    p.add_argument("mnt")
    p.add_argument("--nobody", action="store_true", help="also check writes as uid 65534")
    p = sub.add_parser("loader")
    p.add_argument("mnt")
    p.add_argument("src")
    p.add_argument("--mode", choices=("seed", "wrapper"), required=True)
    p.add_argument("--world", type=int, default=1)
    p.add_argument("--rank", type=int, default=0)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--min-hit", type=float, default=0.8)
    p.add_argument("--step-ms", type=float, default=20, help="simulated training step per batch of 8")
    a = ap.parse_args()
    if a.cmd == "deps":
        try:
            import numpy  # noqa: F401
            import torch  # noqa: F401
        except ImportError as e:
            print("torch/numpy not importable from %s: %s" % (sys.executable, e))
            sys.exit(77)
        sys.exit(0)
    {"orders": cmd_orders, "control": cmd_control, "loader": cmd_loader}[a.cmd](a)


if __name__ == "__main__":
    main()
