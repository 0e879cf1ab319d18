#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The WAN benchmark's callers (stdlib only).  Each call prints its latency in seconds.

wan_client.py sdk URL CA-FILE USER PASSWORD PATH [CONCURRENCY CALLS]
    what a Denvr SDK does in a fresh process: one HTTPS connection (TCP and TLS
    handshakes), POST /api/TokenAuth/Authenticate, then the call with the
    Bearer token on the same kept-alive connection
wan_client.py apikey URL CA-FILE APIKEY PATH [CONCURRENCY CALLS]
    the SDK with an API key: the handshakes, then the call
wan_client.py local URL PATH [CONCURRENCY CALLS]
    a tool calling denvrd: a new plain HTTP connection to denvrd and the call
wan_client.py warm URL CA-FILE APIKEY PATH CALLS
    the reference: CALLS calls on one kept-alive HTTPS connection (after a first,
    untimed one), i.e. one round trip each plus what the relay itself adds

Without CONCURRENCY one call is made (run it once per fresh process); with it,
CALLS calls by CONCURRENCY threads, every call on a new connection.
"""
import http.client
import json
import ssl
import sys
import threading
import time
from urllib.parse import urlsplit


def connection(url, ca):
    u = urlsplit(url)
    if u.scheme == "https":
        ctx = ssl.create_default_context(cafile=ca)
        return http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=60)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60)


def fetch(c, method, path, body=None, headers=None):
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError("%s %s: %d %s" % (method, path, r.status, data[:200]))
    return data


def call_sdk(url, ca, user, password, path):
    t0 = time.monotonic()
    c = connection(url, ca)
    login = json.dumps({"userNameOrEmailAddress": user, "password": password})
    answer = json.loads(fetch(c, "POST", "/api/TokenAuth/Authenticate", login,
                              {"Content-Type": "application/json"}))
    token = answer["result"]["accessToken"]
    fetch(c, "GET", path, headers={"Authorization": "Bearer " + token})
    c.close()
    return time.monotonic() - t0


def call_apikey(url, ca, key, path):
    t0 = time.monotonic()
    c = connection(url, ca)
    fetch(c, "GET", path, headers={"Authorization": "ApiKey " + key})
    c.close()
    return time.monotonic() - t0


def call_local(url, path):
    t0 = time.monotonic()
    c = connection(url, None)
    fetch(c, "GET", path)
    c.close()
    return time.monotonic() - t0


def warm(url, ca, key, path, calls):
    c = connection(url, ca)
    fetch(c, "GET", path, headers={"Authorization": "ApiKey " + key})
    for _ in range(int(calls)):
        t0 = time.monotonic()
        fetch(c, "GET", path, headers={"Authorization": "ApiKey " + key})
        print("%.6f" % (time.monotonic() - t0))
    c.close()


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "warm":
        warm(*args)
        return
    nargs = {"sdk": 5, "apikey": 4, "local": 2}[mode]
    fn = {"sdk": call_sdk, "apikey": call_apikey, "local": call_local}[mode]
    fixed, rest = args[:nargs], args[nargs:]
    if not rest:
        print("%.6f" % fn(*fixed))
        return
    conc, calls = int(rest[0]), int(rest[1])
    out, lock, left = [], threading.Lock(), [calls]

    def worker():
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            dt = fn(*fixed)
            with lock:
                out.append(dt)

    threads = [threading.Thread(target=worker) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("\n".join("%.6f" % x for x in out))


if __name__ == "__main__":
    main()
