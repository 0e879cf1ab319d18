# SPDX-License-Identifier: MIT
"""Raw HTTP/1.1 requests for the binding, cache-poisoning and framing tests: byte-exact
requests built here (the stdlib clients normalise or refuse the very bytes these tests send),
sent from this process or, under setpriv, from a process running as a temporary user, and a
small answer parser.
"""

import base64
import json
import subprocess
import sys

import denvrd_harness as H
import peers as P

# One request in a single write, read until the server closes (or 20 s pass without data).
# argv: kind (unix|tcp), address, the request as base64.  Prints the answer as base64.
RAW_CLIENT = r"""
import base64, socket, sys
kind, addr, req = sys.argv[1:4]
if kind == "unix":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(addr)
else:
    host, port = addr.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, int(port)))
s.settimeout(20)
s.sendall(base64.b64decode(req))
data = b""
while True:
    try:
        c = s.recv(65536)
    except (socket.timeout, ConnectionResetError):
        break
    if not c:
        break
    data += c
sys.stdout.write(base64.b64encode(data).decode())
"""


def chunked(body, size=5):
    """body in chunks of `size` bytes, chunked transfer coding."""
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


def build(method, target, headers=(), body=None, chunk=False, auth=None, length=True):
    """A whole request as bytes.  target: str or bytes, sent as is.  headers: (name, value)
    pairs, sent after Host and Authorization.  body: bytes/str or None; chunk: send it with
    Transfer-Encoding: chunked; length: add Content-Length for a body (False: the caller's
    headers frame it)."""
    if isinstance(target, str):
        target = target.encode("latin-1")
    if isinstance(body, str):
        body = body.encode()
    h = [(b"Host", b"localhost")]
    if auth:
        h.append((b"Authorization", auth.encode()))
    for k, v in headers:
        h.append((k.encode("latin-1") if isinstance(k, str) else k,
                  v.encode("latin-1") if isinstance(v, str) else v))
    payload = b""
    if body is not None:
        if chunk:
            h.append((b"Transfer-Encoding", b"chunked"))
            payload = chunked(body)
        else:
            if length:
                h.append((b"Content-Length", b"%d" % len(body)))
            payload = body
    h.append((b"Connection", b"close"))
    head = method.encode() + b" " + target + b" HTTP/1.1\r\n" + \
        b"".join(k + b": " + v + b"\r\n" for k, v in h)
    return head + b"\r\n" + payload


def new_token(name, token_log):
    """denvrd --new-token name -> (token, its [tokens] line) (peers.new_token)."""
    return P.new_token(name, token_log)[:2]


def send_as(user, via, addr, raw):
    """Send raw from a process running as user (its uid and gid, no other group)."""
    cmd = ["setpriv", "--reuid=%d" % user["uid"], "--regid=%d" % user["gid"], "--clear-groups",
           sys.executable, "-I", "-c", RAW_CLIENT, via, addr, base64.b64encode(raw).decode()]
    p = subprocess.run(cmd, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env={"PATH": "/usr/bin:/bin"}, timeout=H.scaled(30))
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return base64.b64decode(p.stdout)


class Answer:
    """A parsed HTTP/1.1 answer: status, headers (lower-cased names -> list of values), body."""

    def __init__(self, data):
        self.raw = data
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError("no complete answer: %r" % data[:300])
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        self.status = int(parts[1])
        self.headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            self.headers.setdefault(k.strip().lower().decode("latin-1"), []).append(
                v.strip().decode("latin-1"))
        if "chunked" in ",".join(self.headers.get("transfer-encoding", [])).lower():
            body = b""
            while rest:
                size_line, _, rest = rest.partition(b"\r\n")
                n = int(size_line.split(b";")[0] or b"0", 16)
                if n == 0:
                    break
                body += rest[:n]
                rest = rest[n + 2:]
            self.body = body
        else:
            n = self.headers.get("content-length")
            self.body = rest[:int(n[0])] if n else rest

    def header(self, name):
        v = self.headers.get(name.lower())
        return v[0] if v else None

    def json(self):
        return json.loads(self.body)

    def envelope_message(self):
        """error.message of Denvr's error envelope (asserting it is one)."""
        try:
            env = self.json()
        except ValueError:
            raise AssertionError("not a JSON envelope: %d %r" % (self.status, self.body[:300]))
        assert isinstance(env, dict) and env.get("success") is False, env
        msg = (env.get("error") or {}).get("message")
        assert isinstance(msg, str) and msg, env
        return msg

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])
