#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Read one epoch through a mount in the planned order with several threads
and check the substitution guarantee against the source directory:
every file's content served exactly once, and only within its scope.
usage: subst_reader.py MNT SRC SCOPE(dir|all|off) THREADS [STEP_MS]
STEP_MS: each reader thread pauses this long after a file (a training step).
Prints one JSON line: served, substituted, wrong_scope, missing, duplicates,
fstat_mismatch, and seconds (first open to last close, pauses included)."""
import collections, hashlib, json, os, sys, threading, time

mnt, src, scope, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
step = float(sys.argv[5]) / 1000 if len(sys.argv) > 5 else 0
order = [l.rstrip("\n") for l in open(os.path.join(mnt, ".epochfs/order")) if l.strip()]

by_hash = {}
for p in set(order):
    with open(os.path.join(src, p), "rb") as f:
        by_hash.setdefault(hashlib.sha1(f.read()).hexdigest(), []).append(p)

served = [None] * len(order)
sizes_ok = [True] * len(order)
lock = threading.Lock()
nxt = [0]

def work():
    while True:
        with lock:
            i = nxt[0]
            nxt[0] += 1
        if i >= len(order):
            return
        with open(os.path.join(mnt, order[i]), "rb") as f:
            data = f.read()
            if os.fstat(f.fileno()).st_size != len(data):
                sizes_ok[i] = False
        served[i] = hashlib.sha1(data).hexdigest()
        if step:
            time.sleep(step)

ts = [threading.Thread(target=work) for _ in range(threads)]
t0 = time.monotonic()
for t in ts:
    t.start()
for t in ts:
    t.join()
seconds = time.monotonic() - t0

want = collections.Counter()
for p in order:
    with open(os.path.join(src, p), "rb") as f:
        want[hashlib.sha1(f.read()).hexdigest()] += 1
got = collections.Counter(served)
subst = wrong_scope = 0
for i, h in enumerate(served):
    own = by_hash.get(h, [])
    if order[i] in own:
        continue
    subst += 1
    if scope == "dir" and not any(os.path.dirname(o) == os.path.dirname(order[i]) for o in own):
        wrong_scope += 1
    if scope == "off" or not own:
        wrong_scope += 1
print(json.dumps({
    "served": len(served), "substituted": subst, "wrong_scope": wrong_scope,
    "missing": sum((want - got).values()), "duplicates": sum((got - want).values()),
    "fstat_mismatch": sizes_ok.count(False), "seconds": round(seconds, 3)}))
