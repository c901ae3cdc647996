# SPDX-License-Identifier: MIT
"""PyTorch helpers for an epochfs mount (stdlib only; torch is never imported).

epochfs prefetches exactly what a training job will read next when it knows
the epoch's order.  This module tells it, through the control files under
``<mount>/.epochfs/`` (docs/control.md):

* :class:`EpochfsSampler` wraps any sampler and, at the start of every epoch,
  writes that epoch's exact order of paths to ``.epochfs/order``.
* :func:`write_seed` gives the seed of a DistributedSampler, torch.randperm or
  numpy default_rng instead, so epochfs computes every epoch's order itself.
* :func:`write_importance` and :func:`importance_from_losses` feed per-sample
  importance (SHADE) to the cache's admission and eviction.
* :func:`read_stats` returns the daemon's counters as a dict.

All paths written are relative to the mount root.  See docs/python.md.
"""
import json
import math
import operator
import os
import warnings

__all__ = [
    "IMG_EXTENSIONS", "EpochfsSampler", "image_folder_samples", "find_classes",
    "write_seed", "write_sampler_seed", "set_epoch", "read_epoch", "read_seed",
    "read_stats", "read_order", "read_manifest", "write_order", "write_manifest",
    "evict", "importance_from_losses", "write_importance", "ctl_path",
]

CTL_DIR = ".epochfs"
# torchvision.datasets.folder.IMG_EXTENSIONS
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SAMPLERS = ("distributed", "randperm", "numpy")


# --- control files ---------------------------------------------------------

def ctl_path(mount, name):
    """The path of control file ``name`` of ``mount``."""
    return os.path.join(os.fspath(mount), CTL_DIR, name)


def _write_ctl(mount, name, data):
    """Write ``data`` to a control file in one open/write/close.

    Raises OSError as the daemon answers (EINVAL for a rejected write, from
    write() or from close(); ENOENT when ``mount`` is not an epochfs mount).
    No O_CREAT: a plain directory never gets a stray file.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    fd = os.open(ctl_path(mount, name), os.O_WRONLY | os.O_TRUNC)
    try:
        view = memoryview(data)
        while view:  # the kernel may split a large write; loop on short writes
            n = os.write(fd, view)
            view = view[n:]
    except BaseException:
        try:
            os.close(fd)
        except OSError:
            pass
        raise
    os.close(fd)  # a multi-line file is applied here; an error raises


def _read_ctl(mount, name):
    with open(ctl_path(mount, name), "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")


def _lines(text):
    return text.split("\n")[:-1] if text.endswith("\n") else (text.split("\n") if text else [])


def read_stats(mount):
    """The daemon's counters (``.epochfs/stats``) as a dict."""
    return json.loads(_read_ctl(mount, "stats"))


def read_seed(mount):
    """The seed spec in force, canonical form ('' when none)."""
    return _read_ctl(mount, "seed").strip()


def read_epoch(mount):
    """The epoch the prefetcher believes the readers are in."""
    return int(_read_ctl(mount, "epoch").strip())


def read_order(mount):
    """The order of paths planned for the current epoch."""
    return _lines(_read_ctl(mount, "order"))


def read_manifest(mount):
    """The index -> path list in force."""
    return _lines(_read_ctl(mount, "manifest"))


def set_epoch(mount, epoch):
    """Tell epochfs the readers are starting ``epoch`` (position 0)."""
    epoch = operator.index(epoch)
    if epoch < 0:
        raise ValueError("epoch must be >= 0")
    _write_ctl(mount, "epoch", "%d\n" % epoch)


def write_seed(mount, seed, sampler="distributed", world=1, rank=0, drop_last=False, epoch=0):
    """Give epochfs the shuffle seed; it then plans this and every later epoch.

    ``sampler``: 'distributed' (DistributedSampler(num_replicas=world,
    rank=rank, shuffle=True, seed=seed, drop_last=drop_last) after
    set_epoch(epoch)), 'randperm' (torch.randperm with manual_seed(seed +
    epoch)) or 'numpy' (numpy.random.default_rng(seed + epoch).permutation).
    """
    if sampler not in SAMPLERS:
        raise ValueError("sampler must be one of %s" % ", ".join(SAMPLERS))
    seed, epoch = operator.index(seed), operator.index(epoch)
    line = "seed=%d sampler=%s" % (seed, sampler)
    if sampler == "distributed":
        line += " world=%d rank=%d drop_last=%d" % (operator.index(world), operator.index(rank),
                                                     1 if drop_last else 0)
    elif (world, rank, bool(drop_last)) != (1, 0, False):
        raise ValueError("world, rank and drop_last belong to sampler='distributed'")
    _write_ctl(mount, "seed", line + " epoch=%d\n" % epoch)


def write_sampler_seed(mount, sampler):
    """write_seed() with the parameters of a shuffling DistributedSampler."""
    if not getattr(sampler, "shuffle", False):
        raise ValueError("the sampler does not shuffle; nothing to predict")
    write_seed(mount, sampler.seed, "distributed", world=sampler.num_replicas,
               rank=sampler.rank, drop_last=sampler.drop_last, epoch=sampler.epoch)


def _relpath(mount, path, base=None):
    """``path`` relative to the mount root, in the form the control files use."""
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not os.path.isabs(path):
        if base is None:  # already mount-relative
            return os.path.normpath(path)
        path = os.path.join(base, path)
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(os.fspath(mount)))
    if rel == os.curdir or rel == os.pardir or rel.startswith(os.pardir + os.sep):
        raise ValueError("%s is not under the mount %s" % (path, mount))
    return rel


def _check_line(p):
    if "\n" in p or not p:
        raise ValueError("a path cannot be empty or contain a newline: %r" % p)
    return p


def write_order(mount, epochs):
    """Write an explicit order: a list of paths, or a list of such lists (one per epoch).

    Paths are mount-relative or absolute under the mount.  The first list is
    the current epoch; the following ones are the next epochs.
    """
    epochs = list(epochs)
    if not epochs or isinstance(epochs[0], (str, bytes, os.PathLike)):
        epochs = [epochs]
    blocks = ["".join(_check_line(_relpath(mount, p)) + "\n" for p in e) for e in epochs]
    _write_ctl(mount, "order", "\n".join(blocks))


def write_manifest(mount, paths):
    """Replace the index -> path list; an empty list restores ImageFolder's order."""
    text = "".join(_check_line(_relpath(mount, p)) + "\n" for p in paths)
    # a zero-byte write never reaches the daemon as a write(): send a blank line
    _write_ctl(mount, "manifest", text or "\n")


def evict(mount, paths):
    """Drop the cached bytes of ``paths``."""
    _write_ctl(mount, "evict", "".join(_check_line(_relpath(mount, p)) + "\n" for p in paths))


# --- ImageFolder's sample order without torchvision --------------------------

def find_classes(root):
    """The class directories of ``root``, sorted (torchvision's find_classes)."""
    with os.scandir(root) as it:
        return sorted(e.name for e in it if e.is_dir())


def image_folder_samples(root, extensions=IMG_EXTENSIONS):
    """[(path, class_index)] in torchvision ImageFolder's order (make_dataset).

    This is also epochfs's default manifest.
    """
    samples = []
    for idx, cls in enumerate(find_classes(root)):
        for dirpath, _, fnames in sorted(os.walk(os.path.join(root, cls), followlinks=True)):
            for f in sorted(fnames):
                if f.lower().endswith(extensions):
                    samples.append((os.path.join(dirpath, f), idx))
    return samples


def _dataset_paths(dataset):
    for attr in ("samples", "imgs"):
        items = getattr(dataset, attr, None)
        if items is not None:
            return [s[0] if isinstance(s, (tuple, list)) else s for s in items]
    raise ValueError("the dataset has no .samples or .imgs; pass paths=")


# --- the sampler wrapper ----------------------------------------------------

class EpochfsSampler:
    """Wrap any sampler; each epoch, write its exact order to ``.epochfs/order``.

    ``paths`` maps a sample index to its path (mount-relative, or absolute
    under the mount); with ``dataset`` it is taken from ``dataset.samples`` or
    ``dataset.imgs`` (relative paths there are relative to the current
    directory, as the dataset opens them); with neither, the mount's manifest
    (by default ImageFolder's order) is used.  The wrapped sampler may also
    yield batches (a BatchSampler): the order is then the flattened batches.

    A failure to tell epochfs (not an epochfs mount, a rejected order) is
    warned about once and otherwise ignored: training never breaks because
    of the cache.
    """

    def __init__(self, sampler, mount, paths=None, dataset=None, lookahead=True):
        self.sampler = sampler
        self.mount = os.fspath(mount)
        self.lookahead = lookahead
        self._paths = None
        self._raw = (paths, None) if paths is not None else (None, dataset)
        self._prepared = None
        self._warned = False
        self.last_error = None  # the last OSError/ValueError met, for inspection

    def __len__(self):
        return len(self.sampler)

    def set_epoch(self, epoch):
        """Forwarded to the wrapped sampler when it has it (DistributedSampler).

        The epoch's order is then written at once, before the DataLoader
        starts its workers: the prefetcher gets a head start.
        """
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
            self._prepared = self._prepare()

    def __getattr__(self, name):  # epoch, num_replicas, ... of the wrapped sampler
        if name == "sampler":
            raise AttributeError(name)
        return getattr(self.sampler, name)

    def _path_table(self):
        if self._paths is None:
            paths, dataset = self._raw
            if paths is not None:
                self._paths = [_check_line(_relpath(self.mount, p)) for p in paths]
            elif dataset is not None:
                cwd = os.getcwd()
                self._paths = [_check_line(_relpath(self.mount, p, cwd))
                               for p in _dataset_paths(dataset)]
            else:
                self._paths = read_manifest(self.mount)
        return self._paths

    def _warn(self, err):
        self.last_error = err
        if not self._warned:
            self._warned = True
            warnings.warn("epochfs: cannot give the epoch's order to %s (%s); "
                          "training goes on without prefetching" % (self.mount, err),
                          RuntimeWarning, stacklevel=3)

    def order_paths(self, items):
        """The paths, in read order, of what the wrapped sampler yielded."""
        table = self._path_table()
        out = []
        for it in items:
            if isinstance(it, (list, tuple)) or hasattr(it, "tolist"):
                batch = it.tolist() if hasattr(it, "tolist") else it
                batch = batch if isinstance(batch, list) else [batch]
                out.extend(table[operator.index(i)] for i in batch)
            else:
                out.append(table[operator.index(it)])
        return out

    def _next_epoch_items(self):
        """The next epoch's items when set_epoch determines them, else None."""
        s = self.sampler
        e = getattr(s, "epoch", None)
        if not self.lookahead or not hasattr(s, "set_epoch") or not isinstance(e, int):
            return None
        try:
            s.set_epoch(e + 1)
            return list(iter(s))
        finally:
            s.set_epoch(e)

    def _prepare(self):
        """Materialize this epoch's items and write their order; returns them.

        With ``lookahead`` and a sampler whose order follows from set_epoch()
        (DistributedSampler), the next epoch's order is written too, as a
        second block, so epochfs prefetches across the epoch boundary.
        """
        items = list(iter(self.sampler))
        try:
            text = "".join(p + "\n" for p in self.order_paths(items))
            nxt = self._next_epoch_items()
            if nxt:
                text += "\n" + "".join(p + "\n" for p in self.order_paths(nxt))
            _write_ctl(self.mount, "order", text)
        except (OSError, ValueError, IndexError, TypeError) as e:
            self._warn(e)
        return items

    def __iter__(self):
        items, self._prepared = self._prepared, None
        if items is None:
            items = self._prepare()
        return iter(items)


# --- importance (SHADE) ------------------------------------------------------

def importance_from_losses(losses):
    """Per-sample scores from a batch's per-sample losses.

    The score is the loss's rank within the batch divided by the batch size:
    in (0, 1], the highest loss gets 1.0; equal losses share their mean rank.
    Accepts a list, a numpy array or a torch tensor; returns a list of floats.
    """
    if hasattr(losses, "detach"):
        losses = losses.detach().cpu()
    if hasattr(losses, "tolist"):
        losses = losses.tolist()
    losses = [float(x) for x in losses]
    n = len(losses)
    order = sorted(range(n), key=lambda i: losses[i])
    scores = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and losses[order[j + 1]] == losses[order[i]]:
            j += 1
        mean_rank = (i + j) / 2 + 1  # 1-based ranks i+1 .. j+1
        for k in range(i, j + 1):
            scores[order[k]] = mean_rank / n
        i = j + 1
    return scores


def write_importance(mount, paths_or_indices, scores):
    """Write ``PATH SCORE`` (or ``INDEX SCORE``, an index into the manifest)
    lines to ``.epochfs/importance``; the cache keeps important samples first."""
    if hasattr(scores, "tolist"):
        scores = scores.tolist()
    if hasattr(paths_or_indices, "tolist"):
        paths_or_indices = paths_or_indices.tolist()
    keys, scores = list(paths_or_indices), [float(s) for s in scores]
    if len(keys) != len(scores):
        raise ValueError("%d keys but %d scores" % (len(keys), len(scores)))
    lines = []
    for k, s in zip(keys, scores):
        if math.isnan(s) or math.isinf(s) or s < 0:
            raise ValueError("a score must be finite and >= 0: %r" % s)
        if isinstance(k, (str, bytes, os.PathLike)):
            k = _check_line(_relpath(mount, k))
        else:
            k = "%d" % operator.index(k)
        lines.append("%s %.9g\n" % (k, s))
    _write_ctl(mount, "importance", "".join(lines))
