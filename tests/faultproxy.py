#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A fault-injecting HTTP/1.1 proxy for the remote tests (stdlib only).

Sits on 127.0.0.1 in front of one server and, per request, may add latency,
cap bandwidth, reset the connection, answer 503 SlowDown, truncate the body
or stall mid-body, or (--corrupt-rate) flip one byte of the body; while
--outage-file exists every connection is reset.
With --verify-sigv4 KEY:SECRET it also checks each request's AWS SigV4
signature (s3rver does not) and answers 403 SignatureDoesNotMatch if wrong.
--nodelay turns Nagle's algorithm off on both sides: without it, a response
relayed in several small writes (a chunked body, a head then a tiny body)
waits for the client's delayed ACK, about 40 ms more per response on Linux.
--timing-log FILE appends, per forwarded request, the server's own time to
the response head.
"""
import argparse
import hashlib
import hmac
import os
import random
import signal
import socket
import struct
import sys
import threading
import time

MAX_HEAD = 64 * 1024
stats = {"requests": 0, "reset": 0, "503": 0, "truncate": 0, "stall": 0,
         "outage": 0, "badsig": 0, "corrupt": 0}
stats_lock = threading.Lock()
timing_lock = threading.Lock()


def count(what):
    with stats_lock:
        stats[what] += 1


def reset(sock):
    """Close with RST, as a crashed peer or a middlebox would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def read_head(rf):
    """Read a request or response head; returns (lines, raw) or None at EOF."""
    raw = b""
    while True:
        line = rf.readline(MAX_HEAD)
        if not line:
            return None
        raw += line
        if len(raw) > MAX_HEAD:
            raise ValueError("head too large")
        if line in (b"\r\n", b"\n"):
            break
    lines = raw.decode("latin-1").split("\r\n")
    return lines, raw


def header(lines, name):
    name = name.lower() + ":"
    for line in lines[1:]:
        if line.lower().startswith(name):
            return line[len(name):].strip()
    return None


class Relay:
    """Copies one message body, applying bandwidth and fault limits."""

    def __init__(self, args, dst, cut=None, stall_at=None, corrupt_at=None):
        self.args, self.dst, self.cut, self.stall_at, self.sent = args, dst, cut, stall_at, 0
        self.corrupt_at = corrupt_at

    def write(self, data):
        while data:
            n = len(data)
            if self.cut is not None:
                n = min(n, self.cut - self.sent)
            if self.stall_at is not None and self.sent < self.stall_at:
                n = min(n, self.stall_at - self.sent)
            if self.args.bandwidth:
                n = min(n, max(1, self.args.bandwidth // 20))
            if n <= 0 and self.cut is not None and self.sent >= self.cut:
                raise ConnectionAbortedError("truncated")
            piece = data[:n]
            if self.corrupt_at is not None and self.sent <= self.corrupt_at < self.sent + n:
                k = self.corrupt_at - self.sent
                piece = piece[:k] + bytes([piece[k] ^ 0x55]) + piece[k + 1:]
            self.dst.sendall(piece)
            self.sent += n
            data = data[n:]
            if self.args.bandwidth:
                time.sleep(n / self.args.bandwidth)
            if self.stall_at is not None and self.sent == self.stall_at:
                time.sleep(self.args.stall_ms / 1000.0)
                raise ConnectionAbortedError("stalled")


def copy_body(rf, relay, lines, is_response, method, status):
    """Relay the body framed as HTTP/1.1 says; returns False if it ran to EOF."""
    if is_response and (method == "HEAD" or status in (204, 304) or 100 <= status < 200):
        return True
    te = (header(lines, "transfer-encoding") or "").lower()
    if "chunked" in te:
        while True:
            line = rf.readline(1024)
            if not line:
                raise ConnectionError("eof in chunked body")
            relay.write(line)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:
                    t = rf.readline(MAX_HEAD)
                    relay.write(t)
                    if t in (b"\r\n", b"\n", b""):
                        return True
            left = size + 2
            while left:
                d = rf.read(min(left, 65536))
                if not d:
                    raise ConnectionError("eof in chunk")
                relay.write(d)
                left -= len(d)
    cl = header(lines, "content-length")
    if cl is not None:
        left = int(cl)
        while left:
            d = rf.read(min(left, 65536))
            if not d:
                raise ConnectionError("eof in body")
            relay.write(d)
            left -= len(d)
        return True
    if not is_response:
        return True
    while True:
        d = rf.read1(65536) if hasattr(rf, "read1") else rf.read(65536)
        if not d:
            return False
        relay.write(d)


def sigv4_ok(lines, key, secret):
    """Check an AWS SigV4 Authorization header of a request head."""
    auth = header(lines, "authorization")
    if not auth or not auth.startswith("AWS4-HMAC-SHA256 "):
        return False
    parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    cred = parts["Credential"].split("/")
    if cred[0] != key:
        return False
    date, region, service = cred[1], cred[2], cred[3]
    method, target, _ = lines[0].split(" ", 2)
    path, _, query = target.partition("?")
    pairs = []
    for kv in query.split("&") if query else []:
        k, _, v = kv.partition("=")
        pairs.append((k, v))
    cquery = "&".join("%s=%s" % kv for kv in sorted(pairs))
    signed = parts["SignedHeaders"].split(";")
    chead = "".join("%s:%s\n" % (h, " ".join((header(lines, h) or "").split())) for h in signed)
    payload = header(lines, "x-amz-content-sha256") or hashlib.sha256(b"").hexdigest()
    creq = "\n".join([method, path, cquery, chead, parts["SignedHeaders"], payload])
    amzdate = header(lines, "x-amz-date")
    scope = "/".join([date, region, service, "aws4_request"])
    sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope,
                     hashlib.sha256(creq.encode("latin-1")).hexdigest()])
    k = ("AWS4" + secret).encode()
    for m in (date, region, service, "aws4_request"):
        k = hmac.new(k, m.encode(), hashlib.sha256).digest()
    want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, parts["Signature"])


def error_response(csock, status, reason, code):
    body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
            "<Message>injected by faultproxy</Message></Error>" % code).encode()
    csock.sendall(("HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\n"
                   "Content-Length: %d\r\n\r\n" % (status, reason, len(body))).encode() + body)


def nodelay(args, sock):
    if args.nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def serve(args, rng, rng_lock, csock):
    usock = None
    try:
        nodelay(args, csock)
        crf = csock.makefile("rb")
        while True:
            head = read_head(crf)
            if head is None:
                return
            if args.outage_file and os.path.exists(args.outage_file):
                count("outage")
                reset(csock)
                return
            lines, raw = head
            method = lines[0].split(" ", 1)[0]
            count("requests")
            with rng_lock:
                r = rng.random()
                frac = rng.random()
            if args.latency_ms:
                time.sleep(args.latency_ms / 1000.0)
            if args.verify_sigv4 and not sigv4_ok(lines, *args.verify_sigv4.split(":", 1)):
                count("badsig")
                copy_body(crf, Relay(args, _Null()), lines, False, method, 0)
                error_response(csock, 403, "Forbidden", "SignatureDoesNotMatch")
                continue
            edge = 0.0
            fault = None
            for name in ("reset", "503", "truncate", "stall", "corrupt"):
                edge += getattr(args, name.replace("503", "e503") + "_rate")
                if r < edge:
                    fault = name
                    break
            if fault == "reset":
                count("reset")
                reset(csock)
                return
            if fault == "503":
                count("503")
                copy_body(crf, Relay(args, _Null()), lines, False, method, 0)
                error_response(csock, 503, "Slow Down", "SlowDown")
                continue
            if usock is None:
                host, port = args.target.rsplit(":", 1)
                usock = socket.create_connection((host, int(port)), timeout=60)
                nodelay(args, usock)
                urf = usock.makefile("rb")
            t0 = time.monotonic()
            usock.sendall(raw)
            copy_body(crf, Relay(args, usock), lines, False, method, 0)
            rhead = read_head(urf)
            if rhead is None:
                reset(csock)
                return
            rlines, rraw = rhead
            status = int(rlines[0].split(" ")[1])
            if args.timing_log:
                with timing_lock, open(args.timing_log, "a") as f:
                    f.write("%s %s %d %.3f\n" % (method, lines[0].split(" ")[1], status,
                                                 (time.monotonic() - t0) * 1000))
            cut = stall = corrupt = None
            length = int(header(rlines, "content-length") or 0)
            if fault == "truncate" and method != "HEAD" and length > 1:
                count("truncate")
                cut = int(frac * length)
            elif fault == "stall" and method != "HEAD" and length > 1:
                count("stall")
                stall = int(frac * length)
            elif fault == "corrupt" and method != "HEAD" and length > 0:
                count("corrupt")
                corrupt = int(frac * length)
            csock.sendall(rraw)
            if not copy_body(urf, Relay(args, csock, cut, stall, corrupt), rlines, True, method,
                             status):
                csock.close()
                return
    except (ConnectionError, OSError, ValueError):
        pass
    finally:
        for s in (csock, usock):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass


class _Null:
    def sendall(self, data):
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1")
    ap.add_argument("--target", required=True, help="HOST:PORT of the server")
    ap.add_argument("--latency-ms", type=float, default=0, help="added per request")
    ap.add_argument("--bandwidth", type=int, default=0, help="bytes/s per connection")
    ap.add_argument("--reset-rate", type=float, default=0)
    ap.add_argument("--503-rate", dest="e503_rate", type=float, default=0)
    ap.add_argument("--truncate-rate", type=float, default=0)
    ap.add_argument("--stall-rate", type=float, default=0)
    ap.add_argument("--corrupt-rate", type=float, default=0,
                    help="flip one byte of the response body")
    ap.add_argument("--stall-ms", type=int, default=15000, help="stall length, then reset")
    ap.add_argument("--outage-file", help="while this file exists, reset every connection")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-conns", type=int, default=512)
    ap.add_argument("--verify-sigv4", metavar="KEY:SECRET")
    ap.add_argument("--nodelay", action="store_true", help="TCP_NODELAY on both sides")
    ap.add_argument("--timing-log", metavar="FILE",
                    help="append 'METHOD TARGET STATUS MS' per request, MS the server's time")
    args = ap.parse_args()

    rng, rng_lock = random.Random(args.seed), threading.Lock()
    slots = threading.BoundedSemaphore(args.max_conns)
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", args.listen))
    lsock.listen(512)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def run(c):
        try:
            serve(args, rng, rng_lock, c)
        finally:
            slots.release()

    try:
        while True:
            c, _ = lsock.accept()
            if args.outage_file and os.path.exists(args.outage_file):
                count("outage")
                reset(c)
                continue
            if not slots.acquire(blocking=False):
                reset(c)
                continue
            threading.Thread(target=run, args=(c,), daemon=True).start()
    finally:
        lsock.close()
        with stats_lock:
            print("faultproxy: " + " ".join("%s=%d" % kv for kv in sorted(stats.items())),
                  file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
