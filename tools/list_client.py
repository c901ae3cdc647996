#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A plain listing client for tools/bench-remote.sh (stdlib only).

Lists what epochfs lists at mount, the plain way, to tell the server's and
the network's share of a listing from the daemon's:
  s3    ListObjectsV2 of s3://BUCKET/PREFIX through an endpoint, page after
        page with continuation tokens on one keep-alive connection, every
        request SigV4-signed (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
        AWS_REGION); path-style addressing.  With --by-prefix, first the
        top-level folders (delimiter=/), then each folder's pages, N folders
        at a time on N connections.
  http  an nginx JSON autoindex walked breadth-first, N directories at a
        time on N connections.
Prints one line: "list-client: K keys, R requests, S s".  Parses only what it
counts (keys); not a test, it only measures.
"""
import argparse
import datetime
import hashlib
import hmac
import http.client
import json
import os
import queue
import re
import sys
import threading
import time
import urllib.parse

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def quote(s):
    return urllib.parse.quote(s, safe="-_.~")


class S3:
    def __init__(self, endpoint, bucket, region):
        u = urllib.parse.urlsplit(endpoint)
        if u.scheme != "http":
            sys.exit("list_client: only http:// endpoints")
        self.host, self.port, self.bucket, self.region = u.hostname, u.port or 80, bucket, region
        self.key = os.environ["AWS_ACCESS_KEY_ID"]
        self.secret = os.environ["AWS_SECRET_ACCESS_KEY"]
        self.local = threading.local()
        self.requests = 0
        self.lock = threading.Lock()

    def conn(self):
        if not hasattr(self.local, "c"):
            self.local.c = http.client.HTTPConnection(self.host, self.port, timeout=60)
        return self.local.c

    def get(self, params):
        """One signed GET of the bucket with the query params; the body."""
        path = "/" + quote(self.bucket) + "/"
        q = "&".join("%s=%s" % (quote(k), quote(v)) for k, v in sorted(params.items()))
        now = datetime.datetime.now(datetime.timezone.utc)
        amzdate, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        hostport = "%s:%d" % (self.host, self.port)
        creq = "\n".join(["GET", path, q, "host:%s\nx-amz-content-sha256:%s\nx-amz-date:%s\n"
                          % (hostport, EMPTY_SHA256, amzdate),
                          "host;x-amz-content-sha256;x-amz-date", EMPTY_SHA256])
        scope = "%s/%s/s3/aws4_request" % (date, self.region)
        sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
        k = ("AWS4" + self.secret).encode()
        for m in (date, self.region, "s3", "aws4_request"):
            k = hmac.new(k, m.encode(), hashlib.sha256).digest()
        sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        headers = {"Host": hostport, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": amzdate,
                   "Authorization": "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders="
                   "host;x-amz-content-sha256;x-amz-date, Signature=%s" % (self.key, scope, sig)}
        c = self.conn()
        c.request("GET", path + "?" + q, headers=headers)
        r = c.getresponse()
        body = r.read().decode()
        with self.lock:
            self.requests += 1
        if r.status != 200:
            raise OSError("HTTP %d: %s" % (r.status, body[:200]))
        return body

    def pages(self, prefix, delimiter=None):
        """Every page of prefix; yields (keys, common prefixes)."""
        token = None
        while True:
            p = {"list-type": "2", "prefix": prefix, "max-keys": "1000"}
            if delimiter:
                p["delimiter"] = delimiter
            if token:
                p["continuation-token"] = token
            body = self.get(p)
            keys = re.findall(r"<Key>([^<]*)</Key>", body)
            cps = re.findall(r"<CommonPrefixes><Prefix>([^<]*)</Prefix>", body)
            yield keys, cps
            if "<IsTruncated>true</IsTruncated>" not in body:
                return
            m = re.search(r"<NextContinuationToken>([^<]*)</NextContinuationToken>", body)
            if not m or m.group(1) == token:
                raise OSError("truncated page without a new token")
            token = m.group(1)


def list_s3(args):
    s3 = S3(args.endpoint, args.bucket, os.environ.get("AWS_REGION", "us-east-1"))
    prefix = args.prefix.strip("/") + "/" if args.prefix.strip("/") else ""
    if not args.by_prefix:
        return sum(len(k) for k, _ in s3.pages(prefix)), s3.requests
    n, folders = 0, []
    for keys, cps in s3.pages(prefix, "/"):
        n += len(keys)
        folders += cps
    total = [n]
    q = queue.Queue()
    for f in folders:
        q.put(f)

    def work():
        while True:
            try:
                f = q.get_nowait()
            except queue.Empty:
                return
            got = sum(len(k) for k, _ in s3.pages(f))
            with s3.lock:
                total[0] += got

    ts = [threading.Thread(target=work) for _ in range(args.threads)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    return total[0], s3.requests


def list_http(args):
    base = urllib.parse.urlsplit(args.url)
    if base.scheme != "http":
        sys.exit("list_client: only http:// URLs")
    root = base.path if base.path.endswith("/") else base.path + "/"
    q, lock, local = queue.Queue(), threading.Lock(), threading.local()
    state = {"keys": 0, "requests": 0, "pending": 1, "error": None}
    q.put(root)

    def work():
        local.c = http.client.HTTPConnection(base.hostname, base.port or 80, timeout=60)
        while True:
            d = q.get()
            if d is None:
                return
            try:
                local.c.request("GET", d)
                r = local.c.getresponse()
                body = r.read()
                if r.status != 200:
                    raise OSError("HTTP %d on %s" % (r.status, d))
                ents = json.loads(body)
            except (OSError, ValueError, http.client.HTTPException) as e:
                ents = []
                with lock:
                    state["error"] = e
            files = sum(1 for e in ents if e["type"] == "file")
            dirs = [d + quote(e["name"]) + "/" for e in ents if e["type"] == "directory"]
            with lock:
                state["keys"] += files
                state["requests"] += 1
                state["pending"] += len(dirs) - 1
                done = state["pending"] == 0
            for sub in dirs:
                q.put(sub)
            if done:
                for _ in range(args.threads):
                    q.put(None)

    ts = [threading.Thread(target=work) for _ in range(args.threads)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    if state["error"]:
        raise state["error"]
    return state["keys"], state["requests"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="kind", required=True)
    s = sub.add_parser("s3")
    s.add_argument("--endpoint", required=True, help="http://HOST:PORT")
    s.add_argument("--bucket", required=True)
    s.add_argument("--prefix", default="")
    s.add_argument("--by-prefix", action="store_true",
                   help="top-level folders first, then each folder's listing")
    s.add_argument("--threads", type=int, default=8, help="folders in flight (--by-prefix)")
    h = sub.add_parser("http")
    h.add_argument("--url", required=True, help="http://HOST:PORT/PATH/")
    h.add_argument("--threads", type=int, default=8, help="directories in flight")
    args = ap.parse_args()
    t0 = time.monotonic()
    keys, reqs = list_s3(args) if args.kind == "s3" else list_http(args)
    print("list-client: %d keys, %d requests, %.3f s" % (keys, reqs, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
