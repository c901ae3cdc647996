#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A plain concurrent HTTP client for tools/bench-remote.sh (stdlib only).

Fetches every path of a list (one per line, relative to the base URL) with
N threads, each with its own keep-alive http.client connection, so that at
most N requests are in flight.  Prints one line in the style of
epochfs-read:  "client: N files, B bytes, S s, F files/s, M MB/s, E errors".
Not a test: it only measures; a failed request is retried once on a fresh
connection and then counted as an error.
"""
import argparse
import http.client
import sys
import threading
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="base URL, http://HOST:PORT/PATH/")
    ap.add_argument("--list", required=True, help="file of paths, one per line")
    ap.add_argument("--threads", type=int, default=16, help="concurrent requests")
    args = ap.parse_args()

    base = urllib.parse.urlsplit(args.url)
    if base.scheme != "http":
        sys.exit("bench_client: only http:// URLs")
    prefix = base.path if base.path.endswith("/") else base.path + "/"
    with open(args.list) as f:
        paths = [line.rstrip("\n") for line in f if line.strip()]

    lock = threading.Lock()
    state = {"next": 0, "bytes": 0, "errors": 0}

    def connect():
        return http.client.HTTPConnection(base.hostname, base.port or 80, timeout=60)

    def fetch(conn, target):
        conn.request("GET", target)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise OSError("HTTP %d" % r.status)
        return len(body)

    def work():
        conn = connect()
        got = 0
        while True:
            with lock:
                i = state["next"]
                state["next"] += 1
            if i >= len(paths):
                break
            target = prefix + urllib.parse.quote(paths[i])
            try:
                got += fetch(conn, target)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = connect()
                try:
                    got += fetch(conn, target)
                except (OSError, http.client.HTTPException) as e:
                    print("bench_client: %s: %s" % (paths[i], e), file=sys.stderr)
                    with lock:
                        state["errors"] += 1
        conn.close()
        with lock:
            state["bytes"] += got

    threads = [threading.Thread(target=work) for _ in range(args.threads)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    print("client: %d files, %d bytes, %.3f s, %.0f files/s, %.1f MB/s, %d errors"
          % (len(paths), state["bytes"], secs, len(paths) / secs,
             state["bytes"] / secs / 1e6, state["errors"]))
    return 1 if state["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
