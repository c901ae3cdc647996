# SPDX-License-Identifier: MIT
"""PyTorch helpers for an epochfs mount (stdlib only; torch is never imported).

epochfs prefetches exactly what a training job will read next when it knows
the epoch's order.  This package tells it, through the control files under
``<mount>/.epochfs/`` (docs/control.md):

* :class:`EpochfsSampler` wraps any sampler and, at every ``set_epoch``,
  declares this rank's epoch: the seed spec of a shuffling
  ``DistributedSampler`` (epochfs computes the order itself), else the
  explicit order of paths (with a ``# rank=R`` header when the job has
  several ranks).  It learns the rank and world from torch.distributed, or
  from torchrun's RANK / WORLD_SIZE / LOCAL_RANK, and its ``state_dict()``
  carries the position so that a resumed job declares ``start=K``.
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
import sys
import warnings

__all__ = [
    "IMG_EXTENSIONS", "EpochfsSampler", "image_folder_samples", "find_classes",
    "write_seed", "write_sampler_seed", "set_epoch", "read_epoch", "read_seed",
    "read_stats", "read_order", "read_manifest", "write_order", "write_manifest",
    "evict", "importance_from_losses", "write_importance", "ctl_path", "dist_info",
    "write_rank_order", "clear_plan",
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


def _rank_field(rank):
    """rank=: a number, or several (a list, a range, or a string such as '0-7')."""
    if isinstance(rank, str):
        return rank
    if isinstance(rank, range) and rank.step == 1 and len(rank) > 1:
        return "%d-%d" % (rank.start, rank.stop - 1)
    if isinstance(rank, (list, tuple, range)):
        return ",".join("%d" % operator.index(r) for r in rank)
    return "%d" % operator.index(rank)


def seed_spec(seed, sampler="distributed", world=1, rank=0, drop_last=False, epoch=0, start=0):
    """The line :func:`write_seed` writes (without its newline)."""
    if sampler not in SAMPLERS:
        raise ValueError("sampler must be one of %s" % ", ".join(SAMPLERS))
    seed, epoch, start = operator.index(seed), operator.index(epoch), operator.index(start)
    if start < 0:
        raise ValueError("start must be >= 0")
    line = "seed=%d sampler=%s" % (seed, sampler)
    if sampler == "distributed":
        line += " world=%d rank=%s drop_last=%d" % (operator.index(world), _rank_field(rank),
                                                     1 if drop_last else 0)
    elif (world, rank, bool(drop_last)) != (1, 0, False):
        raise ValueError("world, rank and drop_last belong to sampler='distributed'")
    line += " epoch=%d" % epoch
    if start:
        line += " start=%d" % start
    return line


def write_seed(mount, seed, sampler="distributed", world=1, rank=0, drop_last=False, epoch=0,
               start=0):
    """Give epochfs the shuffle seed; it then plans this and every later epoch.

    ``sampler``: 'distributed' (DistributedSampler(num_replicas=world,
    rank=rank, shuffle=True, seed=seed, drop_last=drop_last) after
    set_epoch(epoch)), 'randperm' (torch.randperm with manual_seed(seed +
    epoch)) or 'numpy' (numpy.random.default_rng(seed + epoch).permutation).
    ``rank`` may name several ranks of the job (a list, a range, '0-7'); the
    other ranks of the same job keep their specs.  ``start``: the samples of
    this epoch's order already consumed (a resumed job).
    """
    _write_ctl(mount, "seed", seed_spec(seed, sampler, world, rank, drop_last, epoch, start) + "\n")


def clear_plan(mount):
    """Forget every rank's spec and order (the policy falls back to its own)."""
    _write_ctl(mount, "seed", "clear\n")


def write_sampler_seed(mount, sampler, start=0):
    """write_seed() with the parameters of a shuffling DistributedSampler."""
    if not getattr(sampler, "shuffle", False):
        raise ValueError("the sampler does not shuffle; nothing to predict")
    write_seed(mount, sampler.seed, "distributed", world=sampler.num_replicas,
               rank=sampler.rank, drop_last=sampler.drop_last, epoch=sampler.epoch, start=start)


def dist_info():
    """(rank, world, local_rank) of this process.

    From torch.distributed when it is initialised (torch is not imported
    here: a job that initialised it has imported it), else from the
    environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK; LOCAL_RANK and
    LOCAL_WORLD_SIZE alone describe one node), else (0, 1, 0).
    """
    env = os.environ

    def num(name, default):
        try:
            return int(env[name])
        except (KeyError, ValueError):
            return default

    td = sys.modules.get("torch.distributed")
    try:
        if td is not None and td.is_available() and td.is_initialized():
            rank, world = td.get_rank(), td.get_world_size()
            return rank, world, num("LOCAL_RANK", rank)
    except Exception:  # a half-initialised or unusual build: fall back to the environment
        pass
    local = num("LOCAL_RANK", None)
    rank = num("RANK", local if local is not None else 0)
    world = num("WORLD_SIZE", num("LOCAL_WORLD_SIZE", 1) if "RANK" not in env else 1)
    return rank, max(world, 1), local if local is not None else rank


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


def write_rank_order(mount, rank, epochs, epoch=None, start=0):
    """One rank's explicit order, keeping the other ranks' (docs/control.md).

    ``epochs``: a list of paths, or a list of such lists (this epoch, then the
    next ones).  ``epoch``: the epoch the first list is (default: the one the
    rank reads).  ``start``: the positions of the first list already read.
    Every path must be in the manifest.
    """
    epochs = list(epochs)
    if not epochs or isinstance(epochs[0], (str, bytes, os.PathLike)):
        epochs = [epochs]
    head = "# rank=%d" % operator.index(rank)
    if epoch is not None:
        head += " epoch=%d" % operator.index(epoch)
    if start:
        head += " start=%d" % operator.index(start)
    blocks = []
    for e in epochs:
        lines = []
        for p in e:
            p = _check_line(_relpath(mount, p))
            lines.append(("./" + p if p.startswith("# ") else p) + "\n")
        blocks.append("".join(lines))
    _write_ctl(mount, "order", head + "\n" + "\n".join(blocks))


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

def _is_stock_distributed_sampler(s):
    """A torch DistributedSampler itself (not a subclass, which may order
    differently) that shuffles: its order is the seed spec's, bit for bit."""
    td = sys.modules.get("torch.utils.data")
    cls = getattr(td, "DistributedSampler", None) if td is not None else None
    if cls is None:
        try:
            from torch.utils.data.distributed import DistributedSampler as cls  # noqa: N813
        except Exception:
            return False
    return (type(s) is cls and bool(getattr(s, "shuffle", False))
            and isinstance(getattr(s, "seed", None), int)
            and isinstance(getattr(s, "epoch", None), int))


class EpochfsSampler:
    """Wrap any sampler; declare this rank's epoch to epochfs at every set_epoch.

    What is declared:

    * a shuffling ``torch.utils.data.DistributedSampler`` (the class itself,
      with its own seeded generator) whose dataset's paths are the mount's
      manifest: the seed spec ``seed=S sampler=distributed world=W rank=R
      drop_last=D epoch=E`` (W, R from the sampler), so epochfs computes this
      epoch and every later one and keeps the other ranks' specs;
    * anything else: the explicit order of paths of this epoch (and, with
      ``lookahead``, of the next one), as ``# rank=R epoch=E`` when the job
      has several ranks (R and W from :func:`dist_info`: torch.distributed
      when it is initialised, else torchrun's RANK / WORLD_SIZE /
      LOCAL_RANK), or as the whole node's order with one rank.

    ``state_dict()`` gives ``{"epoch", "position", "rank", "world"}``: the
    position is the samples this epoch already handed out (or ``consumed=``,
    the number the training loop says it has used).  ``load_state_dict()``
    makes the next epoch declared (set_epoch of that epoch, or the next
    __iter__) skip them: it is declared with ``start=K`` and the iterator
    yields the order from position K.

    ``paths`` maps a sample index to its path (mount-relative, or absolute
    under the mount); with ``dataset`` it is taken from ``dataset.samples`` or
    ``dataset.imgs`` (relative paths there are relative to the current
    directory, as the dataset opens them); with neither, the mount's manifest
    (by default ImageFolder's order) is used.  The wrapped sampler may also
    yield batches (a BatchSampler): the order is then the flattened batches.

    A failure to tell epochfs (not an epochfs mount, a rejected order) is
    warned about once and otherwise ignored: training never breaks because
    of the cache.  ``last_spec`` is the last seed line or order header
    written (None before).
    """

    def __init__(self, sampler, mount, paths=None, dataset=None, lookahead=True, rank=None,
                 world=None, use_seed=True):
        self.sampler = sampler
        self.mount = os.fspath(mount)
        self.lookahead = lookahead
        self.use_seed = use_seed
        self._rank, self._world = rank, world
        self._paths = None
        self._raw = (paths, None) if paths is not None else (None, dataset)
        self._prepared = None   # (epoch, items, start) declared by set_epoch, not iterated yet
        self._warned = False
        self._seed_ok = None
        self._epoch = None      # the epoch declared last
        self._start = 0         # samples skipped at the start of that epoch
        self._yielded = 0       # samples handed out since
        self._resume = None     # (epoch, position) from load_state_dict
        self._skip_items = 0    # items the declared epoch skips
        self.last_error = None  # the last OSError/ValueError met, for inspection
        self.last_spec = None

    # -- rank and world --
    @property
    def rank(self):
        """This process's rank (argument, else torch.distributed, else RANK / LOCAL_RANK)."""
        return self._rank if self._rank is not None else dist_info()[0]

    @property
    def world(self):
        """The job's world size (argument, else torch.distributed, else WORLD_SIZE)."""
        return self._world if self._world is not None else dist_info()[1]

    def __len__(self):
        n = len(self.sampler)
        skip = self._skip_items
        if self._resume is not None and self._prepared is None:  # resuming, not yet declared
            skip = self._resume[1]  # samples; a BatchSampler counts batches
            bs = getattr(self.sampler, "batch_size", None)
            if isinstance(bs, int) and bs > 0:
                skip //= bs
        return max(n - skip, 0)  # a resumed epoch is shorter

    def set_epoch(self, epoch):
        """Forwarded to the wrapped sampler when it has it (DistributedSampler),
        then this rank's epoch is declared at once, before the DataLoader
        starts its workers: the prefetcher gets a head start."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        self._prepared = self._prepare(operator.index(epoch))

    def __getattr__(self, name):  # epoch, num_replicas, ... of the wrapped sampler
        if name == "sampler":
            raise AttributeError(name)
        return getattr(self.sampler, name)

    # -- resuming --
    def state_dict(self, consumed=None):
        """The position to resume from: this epoch's samples handed out so far.

        With DataLoader workers the loader fetches ahead of the training
        loop; pass ``consumed`` (the samples the loop has trained on since
        this epoch's set_epoch, a resumed epoch's skipped ones not counted)
        for an exact resume.
        """
        pos = self._start + (self._yielded if consumed is None else operator.index(consumed))
        epoch = self._epoch if self._epoch is not None else 0
        return {"epoch": epoch, "position": pos, "rank": self.rank, "world": self.world}

    def load_state_dict(self, state):
        """Resume: the epoch ``state["epoch"]`` is declared with ``start=position``
        and iterated from that position."""
        self._resume = (operator.index(state["epoch"]), operator.index(state.get("position", 0)))
        self._prepared = None

    def _start_for(self, epoch):
        if self._resume is None:
            return 0
        e, k = self._resume
        if epoch is not None and epoch != e:
            if epoch > e:
                self._resume = None
            return 0
        return k

    # -- paths --
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

    def _uses_seed(self):
        """Whether the seed spec describes the wrapped sampler's order: a stock
        shuffling DistributedSampler over a dataset whose paths are the
        manifest (checked once)."""
        if self._seed_ok is None:
            ok = self.use_seed and _is_stock_distributed_sampler(self.sampler)
            if ok and self._raw != (None, None):
                try:
                    ok = self._path_table() == read_manifest(self.mount)
                except (OSError, ValueError) as e:
                    self._warn(e)
                    ok = False
            if ok:
                try:
                    ok = len(self.sampler.dataset) == len(self._path_table())
                except (TypeError, AttributeError, OSError):
                    ok = False
            self._seed_ok = ok
        return self._seed_ok

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

    @staticmethod
    def _samples_in(items):
        n = 0
        for it in items:
            if isinstance(it, (list, tuple)):
                n += len(it)
            elif hasattr(it, "tolist") and isinstance(it.tolist(), list):
                n += len(it.tolist())
            else:
                n += 1
        return n

    def _prepare(self, epoch):
        """Declare ``epoch`` (None: the one after the last declared) and return
        (epoch, items or None, skip): the iterator yields items[skip:] (items
        None: the wrapped sampler's own iterator, skipping skip)."""
        if epoch is None:
            se = getattr(self.sampler, "epoch", None)
            if isinstance(se, int) and hasattr(self.sampler, "set_epoch"):
                epoch = se
            elif self._resume is not None and self._epoch is None:
                epoch = self._resume[0]
            else:
                epoch = 0 if self._epoch is None else self._epoch + 1
        skip = self._start_for(epoch)
        if self._resume is not None and self._resume[0] <= epoch:
            self._resume = None  # used (or passed)
        self._epoch, self._yielded, self._skip_items = epoch, 0, skip
        self._start = skip
        if self._uses_seed():
            s = self.sampler
            skip = self._skip_items = self._start = min(skip, len(s))
            line = seed_spec(s.seed, "distributed", world=s.num_replicas, rank=s.rank,
                             drop_last=s.drop_last, epoch=epoch, start=skip)
            try:
                _write_ctl(self.mount, "seed", line + "\n")
                self.last_spec = line
            except (OSError, ValueError) as e:
                self._warn(e)
            return epoch, None, skip
        items = list(iter(self.sampler))
        k = acc = 0  # the position is in samples: skip the items (batches) it covers
        while k < len(items) and acc < skip:
            acc += self._samples_in(items[k:k + 1])
            k += 1
        skip = self._skip_items = k
        self._start = acc
        try:
            paths = self.order_paths(items)
            nxt = self._next_epoch_items()
            world = self.world
            if world > 1:
                head = "# rank=%d epoch=%d" % (self.rank, epoch)
                start = self._samples_in(items[:skip])
                if start:
                    head += " start=%d" % start
                text = head + "\n" + "".join(("./" + p if p.startswith("# ") else p) + "\n"
                                               for p in paths)
                if nxt:
                    text += "\n" + "".join(("./" + p if p.startswith("# ") else p) + "\n"
                                            for p in self.order_paths(nxt))
                self.last_spec = head
            else:  # one rank: the whole node's order, from the position resumed at
                paths = paths[self._samples_in(items[:skip]):]
                text = "".join(p + "\n" for p in paths)
                if nxt:
                    text += "\n" + "".join(p + "\n" for p in self.order_paths(nxt))
                self.last_spec = "order"
            _write_ctl(self.mount, "order", text)
        except (OSError, ValueError, IndexError, TypeError) as e:
            self._warn(e)
        return epoch, items, skip

    def _count(self, it):
        for x in it:
            self._yielded += self._samples_in([x])  # handed out once yielded
            yield x

    def __iter__(self):
        prepared, self._prepared = self._prepared, None
        if prepared is None:
            prepared = self._prepare(None)
        epoch, items, skip = prepared
        if items is None:
            it = iter(self.sampler)
            for _ in range(skip):
                next(it, None)
        else:
            it = iter(items[skip:])
        return self._count(it)


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
