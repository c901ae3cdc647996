#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Local fakes of the three AWS credential services epochfs asks, on one
port of 127.0.0.1 (never any other address), speaking their wire formats:

  EC2 instance metadata (IMDSv2)
    PUT /latest/api/token            header X-aws-ec2-metadata-token-ttl-seconds
                                     (1..21600, else 400) -> a session token
    GET /latest/meta-data/iam/security-credentials/        -> the role name
    GET /latest/meta-data/iam/security-credentials/ROLE    -> credentials JSON
    a GET without a valid X-aws-ec2-metadata-token gets 401, as IMDSv2 does.
  ECS container credentials
    GET /ecs/creds (any path under /ecs/)                  -> credentials JSON
    with --ecs-auth TOKEN, an Authorization header other than TOKEN gets 401.
  STS AssumeRoleWithWebIdentity
    POST / (form body) or GET /?Action=AssumeRoleWithWebIdentity&Version=
    2011-06-15&RoleArn=..&RoleSessionName=..&WebIdentityToken=..  -> XML;
    a signed request (Authorization header) is refused: the call is unsigned.
    With --web-token TOKEN another token gets 400 InvalidIdentityToken.

Credentials: key ASIA<SOURCE> (ASIAIMDS, ASIAECS, ASIASTS), secret
secret-<source>, token token-<source>, expiring --expire-in seconds from now;
with --rotate every issue gets a new serial (ASIAIMDS0001, ...).

With --s3-target PORT, any other request is S3: its SigV4 signature is
checked against the credentials this fake issued (the key must be one of
them, the signature made with its secret, x-amz-security-token its token,
and the credentials not expired; else 403 with an S3 error code), then it
is passed to 127.0.0.1:PORT (s3rver) and the answer relayed.  The log line
is "METHOD PATH STATUS s3 KEY".

Test control (not part of any AWS API):
    GET /_fake/log                 the request log, one line per request:
                                   "METHOD PATH STATUS [issued KEY]"
    GET /_fake/echo                the request's headers, one per line
    GET /_fake/set?NAME=VALUE      change a setting at run time: fail_imds,
                                   fail_ecs, fail_sts (an HTTP status, 0 for
                                   none), expire_in (seconds)

The port (0: a free one) is printed on stdout as "PORT N" once listening;
--log FILE also appends each request line to FILE.
"""
import argparse
import datetime
import hashlib
import hmac
import http.client
import json
import secrets
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE = "fake-role"
IMDS_PREFIX = "/latest/meta-data/iam/security-credentials/"


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.args = args
        self.tokens = {}          # IMDSv2 session token -> expiry (monotonic-free: wall clock)
        self.serial = 0
        self.log = []
        self.issued = {}          # key -> (secret, token, expiry as a POSIX time)
        self.settings = {"fail_imds": 0, "fail_ecs": 0, "fail_sts": 0,
                         "expire_in": args.expire_in}

    def issue(self, source):
        with self.lock:
            self.serial += 1
            n = self.serial
            expire_in = self.settings["expire_in"]
        suffix = "%04d" % n if self.args.rotate else ""
        exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=expire_in)
        key = "ASIA" + source.upper() + suffix
        with self.lock:
            self.issued[key] = ("secret-" + source + suffix, "token-" + source + suffix,
                                exp.timestamp())
        return {
            "AccessKeyId": "ASIA" + source.upper() + suffix,
            "SecretAccessKey": "secret-" + source + suffix,
            "Token": "token-" + source + suffix,
            "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-aws"

    def log_message(self, fmt, *a):
        pass

    def record(self, status, extra=""):
        st = self.server.state
        line = "%s %s %d%s" % (self.command, self.path.split("?")[0], status, extra)
        with st.lock:
            st.log.append(line)
        if st.args.log:
            with open(st.args.log, "a") as f:
                f.write(line + "\n")

    def send(self, status, body, ctype="text/plain", extra=""):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        if not self.path.startswith("/_fake/"):
            self.record(status, extra)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    # --- IMDSv2 ---------------------------------------------------------
    def imds_token(self):
        st = self.server.state
        if st.settings["fail_imds"]:
            return self.send(st.settings["fail_imds"], "failing on purpose\n")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        if self.headers.get("X-Forwarded-For"):
            return self.send(403, "")
        try:
            ttl = int(ttl)
        except (TypeError, ValueError):
            return self.send(400, "")
        if not 1 <= ttl <= 21600:
            return self.send(400, "")
        tok = "imdsv2-" + secrets.token_hex(16)
        with st.lock:
            st.tokens[tok] = datetime.datetime.now().timestamp() + ttl
        self.send(200, tok)

    def imds_get(self, path):
        st = self.server.state
        tok = self.headers.get("X-aws-ec2-metadata-token")
        with st.lock:
            ok = tok in st.tokens and st.tokens[tok] > datetime.datetime.now().timestamp()
        if not ok:
            return self.send(401, "")
        if st.settings["fail_imds"]:
            return self.send(st.settings["fail_imds"], "failing on purpose\n")
        rest = path[len(IMDS_PREFIX):]
        if rest == "":
            return self.send(200, ROLE)
        if rest != ROLE:
            return self.send(404, "")
        c = st.issue("imds")
        doc = {"Code": "Success",
               "LastUpdated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "Type": "AWS-HMAC", "AccessKeyId": c["AccessKeyId"],
               "SecretAccessKey": c["SecretAccessKey"], "Token": c["Token"],
               "Expiration": c["Expiration"]}
        self.send(200, json.dumps(doc, indent=2), "text/plain", " issued " + c["AccessKeyId"])

    # --- ECS ------------------------------------------------------------
    def ecs(self):
        st = self.server.state
        if st.args.ecs_auth is not None and self.headers.get("Authorization") != st.args.ecs_auth:
            return self.send(401, json.dumps({"code": "AccessDenied",
                                              "message": "bad authorization token"}),
                             "application/json")
        if st.settings["fail_ecs"]:
            return self.send(st.settings["fail_ecs"], "failing on purpose\n")
        c = st.issue("ecs")
        doc = {"AccessKeyId": c["AccessKeyId"], "Expiration": c["Expiration"],
               "RoleArn": "arn:aws:iam::123456789012:role/fake-task-role",
               "SecretAccessKey": c["SecretAccessKey"], "Token": c["Token"]}
        self.send(200, json.dumps(doc), "application/json", " issued " + c["AccessKeyId"])

    # --- STS ------------------------------------------------------------
    def sts_error(self, status, code, msg):
        xml = ('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n'
               '  <Error>\n    <Type>Sender</Type>\n    <Code>%s</Code>\n'
               '    <Message>%s</Message>\n  </Error>\n'
               '  <RequestId>%s</RequestId>\n</ErrorResponse>\n' % (code, msg, secrets.token_hex(8)))
        self.send(status, xml, "text/xml")

    def sts(self, form):
        st = self.server.state
        q = {k: v[0] for k, v in urllib.parse.parse_qs(form, keep_blank_values=True).items()}
        if self.headers.get("Authorization"):
            return self.sts_error(400, "InvalidAction", "AssumeRoleWithWebIdentity is not signed")
        if q.get("Action") != "AssumeRoleWithWebIdentity" or q.get("Version") != "2011-06-15":
            return self.sts_error(400, "InvalidAction", "Could not find operation")
        for k in ("RoleArn", "RoleSessionName", "WebIdentityToken"):
            if not q.get(k):
                return self.sts_error(400, "MissingParameter", "%s is missing" % k)
        if st.args.web_token is not None and q["WebIdentityToken"] != st.args.web_token:
            return self.sts_error(400, "InvalidIdentityToken", "Incorrect token audience")
        if st.settings["fail_sts"]:
            return self.sts_error(st.settings["fail_sts"], "ServiceUnavailable", "failing on purpose")
        c = st.issue("sts")
        role = q["RoleArn"].split("/")[-1]
        xml = """<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:default:fake</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/%s/%s</Arn>
      <AssumedRoleId>AROAFAKE:%s</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>%s</SessionToken>
      <SecretAccessKey>%s</SecretAccessKey>
      <Expiration>%s</Expiration>
      <AccessKeyId>%s</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/fake</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>%s</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
""" % (role, q["RoleSessionName"], q["RoleSessionName"], c["Token"], c["SecretAccessKey"],
       c["Expiration"], c["AccessKeyId"], secrets.token_hex(8))
        self.send(200, xml, "text/xml", " issued %s session %s" % (c["AccessKeyId"],
                                                                    q["RoleSessionName"]))

    # --- control --------------------------------------------------------
    def control(self, path, query):
        st = self.server.state
        if path == "/_fake/log":
            with st.lock:
                text = "".join(l + "\n" for l in st.log)
            return self.send(200, text)
        if path == "/_fake/echo":
            return self.send(200, "".join("%s: %s\n" % kv for kv in self.headers.items()))
        if path == "/_fake/set":
            for k, v in urllib.parse.parse_qs(query).items():
                if k not in st.settings:
                    return self.send(400, "unknown setting %s\n" % k)
                with st.lock:
                    st.settings[k] = int(v[0])
            return self.send(200, "ok\n")
        self.send(404, "")

    # --- S3, checked and passed on ---------------------------------------
    def sigv4_key(self):
        """The issued key that signed this request, or (None, S3 error code)."""
        st = self.server.state
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return None, "AccessDenied"
        try:
            parts = dict(p.strip().split("=", 1) for p in auth[17:].split(","))
            key, date, region, service, _ = parts["Credential"].split("/")
        except (ValueError, KeyError):
            return None, "AuthorizationHeaderMalformed"
        with st.lock:
            cred = st.issued.get(key)
        if not cred:
            return None, "InvalidAccessKeyId"
        secret, token, expiry = cred
        if expiry < datetime.datetime.now().timestamp():
            return None, "ExpiredToken"
        if self.headers.get("x-amz-security-token") != token:
            return None, "InvalidToken"
        path, _, query = self.path.partition("?")
        pairs = sorted(tuple(kv.partition("=")[::2]) for kv in query.split("&") if kv)
        signed = parts["SignedHeaders"].split(";")
        chead = "".join("%s:%s\n" % (h, " ".join((self.headers.get(h) or "").split()))
                        for h in signed)
        payload = self.headers.get("x-amz-content-sha256") or hashlib.sha256(b"").hexdigest()
        creq = "\n".join([self.command, path, "&".join("%s=%s" % kv for kv in pairs), chead,
                          parts["SignedHeaders"], payload])
        scope = "/".join([date, region, service, "aws4_request"])
        sts = "\n".join(["AWS4-HMAC-SHA256", self.headers.get("x-amz-date") or "", scope,
                         hashlib.sha256(creq.encode("latin-1")).hexdigest()])
        k = ("AWS4" + secret).encode()
        for m in (date, region, service, "aws4_request"):
            k = hmac.new(k, m.encode(), hashlib.sha256).digest()
        want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, parts.get("Signature", "")):
            return None, "SignatureDoesNotMatch"
        return key, None

    def s3(self):
        st = self.server.state
        body = self.body()
        key, code = self.sigv4_key()
        if not key:
            xml = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
                   "<Message>refused by fake_aws.py</Message></Error>\n" % code)
            return self.send(403, xml, "application/xml", " s3 refused " + code)
        conn = http.client.HTTPConnection("127.0.0.1", st.args.s3_target, timeout=30)
        hdrs = {k: v for k, v in self.headers.items()
                if k.lower() not in ("connection", "keep-alive", "transfer-encoding")}
        conn.request(self.command, self.path, body=body or None, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("connection", "keep-alive", "transfer-encoding",
                                 "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.record(r.status, " s3 " + key)

    def do_HEAD(self):
        if self.server.state.args.s3_target:
            return self.s3()
        self.send(405, "")

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path.startswith("/_fake/"):
            return self.control(path, query)
        if path.startswith(IMDS_PREFIX):
            return self.imds_get(path)
        if path.startswith("/ecs/"):
            return self.ecs()
        if path == "/" and query.startswith("Action="):
            return self.sts(query)
        if self.server.state.args.s3_target:
            return self.s3()
        self.send(404, "")

    def do_PUT(self):
        if self.path == "/latest/api/token":
            self.body()
            return self.imds_token()
        if self.server.state.args.s3_target:
            return self.s3()
        self.body()
        self.send(405, "")

    def do_POST(self):
        form = self.body().decode("utf-8", "replace")
        if self.path.split("?")[0] == "/":
            return self.sts(form)
        self.send(405, "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--expire-in", type=int, default=3600)
    ap.add_argument("--rotate", action="store_true")
    ap.add_argument("--ecs-auth")
    ap.add_argument("--web-token")
    ap.add_argument("--log")
    ap.add_argument("--s3-target", type=int, metavar="PORT")
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.state = State(args)
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
