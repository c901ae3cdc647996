#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Read every file of REF through MNT in a shuffled order with several
threads and compare the bytes (tests/it-peers.sh).  Prints one summary line;
exit status 1 when any file failed to read or differed.  With PEER_READ_PROGRESS
set, that file is created once a quarter of the files are read."""
import os
import random
import sys
import threading


def main():
    ref, mnt, seed, nthreads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    limit = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    files = sorted(os.path.relpath(os.path.join(d, n), ref)
                   for d, _, names in os.walk(ref) for n in names)
    random.Random(seed).shuffle(files)
    if limit:
        files = files[:limit]
    bad, errors, lock, it = [], [], threading.Lock(), iter(files)
    total = [0]
    done = [0]
    progress = os.environ.get("PEER_READ_PROGRESS")

    def work():
        while True:
            with lock:
                rel = next(it, None)
            if rel is None:
                return
            try:
                with open(os.path.join(mnt, rel), "rb") as f:
                    got = f.read()
            except OSError as e:
                with lock:
                    errors.append("%s: %s" % (rel, e))
                continue
            with open(os.path.join(ref, rel), "rb") as f:
                want = f.read()
            with lock:
                done[0] += 1
                if progress and done[0] == len(files) // 4:
                    open(progress, "w").close()
                total[0] += len(got)
                if got != want:
                    bad.append("%s: %d bytes, %d expected, differ" % (rel, len(got), len(want)))

    ts = [threading.Thread(target=work) for _ in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("read %d files (%d bytes) through %s: %d failed reads, %d wrong" %
          (len(files), total[0], mnt, len(errors), len(bad)))
    for line in (errors + bad)[:20]:
        print("  " + line)
    sys.exit(1 if errors or bad else 0)


if __name__ == "__main__":
    main()
