#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""denvrd's own CPU time per request for GET /_denvrd/healthz (answered locally, so only
denvrd's connection and request handling count), on a new connection each time and on one
keep-alive connection, then again with EXTRA loopback connections open on the host.

    identify.py DENVRD [DENVRD ...]   (run by tests/bench/identify.sh)

Environment: IDENTIFY_REQUESTS (default 4000), IDENTIFY_EXTRA (default 12000).
CPU time is the sum over denvrd's threads of /proc/PID/task/*/schedstat (nanoseconds on CPU).
"""

import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import time

N = int(os.environ.get("IDENTIFY_REQUESTS", "4000"))
EXTRA = int(os.environ.get("IDENTIFY_EXTRA", "12000"))
REQUEST = b"GET /_denvrd/healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
CLOSE = b"GET /_denvrd/healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"

HOLDER = r"""
import resource, socket, struct, sys
n = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
lst = socket.socket()
lst.bind(("127.0.0.1", 0))
lst.listen(4096)
print(lst.getsockname()[1], flush=True)
held = [lst.accept()[0] for _ in range(n)]
print("held", flush=True)
sys.stdin.read()
"""


def cpu_ns(pid):
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
            total += int(f.read().split()[0])
    return total


def read_reply(s, buf=b""):
    """One HTTP reply with Content-Length; returns what is left over."""
    while b"\r\n\r\n" not in buf:
        c = s.recv(65536)
        if not c:
            raise RuntimeError("connection closed")
        buf += c
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        c = s.recv(65536)
        if not c:
            raise RuntimeError("connection closed")
        rest += c
    assert head.startswith(b"HTTP/1.1 200"), head[:80]
    return rest[length:]


def new_connections(port, n):
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(CLOSE)
        read_reply(s)
        s.close()


def keep_alive(port, n):
    s = socket.create_connection(("127.0.0.1", port))
    left = b""
    for _ in range(n):
        s.sendall(REQUEST)
        left = read_reply(s, left)
    s.close()


def per_request_us(pid, fn, port, n):
    fn(port, 50)   # warm-up
    before = cpu_ns(pid)
    fn(port, n)
    return (cpu_ns(pid) - before) / n / 1000.0


def start(binary, tmp):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = os.path.join(tmp, "denvr.toml")
    fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, ('[defaults]\nserver = "https://127.0.0.1:9"\n[credentials]\napikey = "bench"\n'
                  '[daemon]\nlisten = "127.0.0.1:%d"\nsocket = ""\nlog_level = "warning"\n'
                  % port).encode())
    os.close(fd)
    p = subprocess.Popen([binary, "--config", cfg], stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(tmp, "denvrd.log"), "ab"),
                         env={"PATH": "/usr/bin:/bin", "HOME": tmp})
    for _ in range(100):
        try:
            keep_alive(port, 1)
            return p, port
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError("%s did not answer on port %d" % (binary, port))


def measure(binaries, label, rows):
    for b in binaries:
        with tempfile.TemporaryDirectory(prefix="denvrd-identify-") as tmp:
            p, port = start(b, tmp)
            try:
                rows.append((b, label, per_request_us(p.pid, new_connections, port, N),
                             per_request_us(p.pid, keep_alive, port, N)))
            finally:
                p.terminate()
                p.wait(10)


def main():
    binaries = sys.argv[1:]
    if not binaries:
        sys.exit(__doc__)
    rows = []
    measure(binaries, "as is", rows)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    holder = subprocess.Popen([sys.executable, "-I", "-c", HOLDER, str(EXTRA)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    socks = []
    try:
        port = int(holder.stdout.readline())
        for _ in range(EXTRA):
            c = socket.socket()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.connect(("127.0.0.1", port))
            socks.append(c)
        holder.stdout.readline()
        measure(binaries, "+%d connections" % EXTRA, rows)
    finally:
        for c in socks:
            c.close()
        holder.stdin.close()
        holder.wait()

    print("denvrd CPU time per GET /_denvrd/healthz, %d requests each (us)" % N)
    print("%-40s %-20s %16s %12s" % ("binary", "host", "new connection", "keep-alive"))
    for b, label, new, ka in rows:
        print("%-40s %-20s %16.1f %12.1f" % (b[-40:], label, new, ka))


if __name__ == "__main__":
    main()
