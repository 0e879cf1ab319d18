#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Polls per wait and wake-up latency of GET /_denvrd/wait/, against the mock.

    DENVRD_BIN=build/daemon/denvrd tests/bench/wait_latency.py [TRANSITION_SECONDS...]

For each polling cap (wait_poll_max_seconds 10, the default, and 2) and each transition
time (default 3, 10, 30 s), starts a VM, waits for ONLINE with WAITERS concurrent waiters
(default 1 and 20), and prints the upstream polls the wait cost and the wake-up latency:
from the moment the mock's state changed to the moment the last waiter had its answer.
Not part of the test run: numbers, not assertions.
"""

import os
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
import denvrd_harness as H  # noqa: E402

GET_SERVER = "/api/v1/servers/virtual/GetServer"


def run(mock, d, vm, transition, waiters):
    mock.config(transition_seconds=transition)
    st, _, _ = d.request("POST", "/api/v1/servers/virtual/StartServer", {"id": vm})
    assert st == 202
    done = [None] * waiters

    def one(i):
        st, h, _ = d.request("GET", "/_denvrd/wait%s?id=%s&until=status:ONLINE&timeout=600"
                             % (GET_SERVER, vm), timeout=700)
        done[i] = (st, time.monotonic(), h["X-Denvrd-Wait"])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(waiters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    at = [v for v in mock.control("GET", "vms") if v["id"] == vm][0]["at"]
    polls = [r for r in mock.requests(path=GET_SERVER)
             if dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r["path"]).query)).get("id") == vm]
    assert all(s == 200 for s, _, _ in done), done
    return len(polls), max(t for _, t, _ in done) - at


def main():
    transitions = [float(a) for a in sys.argv[1:]] or [3, 10, 30]
    work = Path(tempfile.mkdtemp(prefix="wait-bench-"))
    mock = H.MockProcess(work / "mock.log", certdir=work / "certs")
    rows = []
    try:
        for cap in (10, 2):
            home = work / ("home-%d" % cap)
            home.mkdir()
            cfg = H.write_private(work / ("denvr-%d.toml" % cap), H.render_toml({
                "defaults": {"server": mock.url, "cluster": "Msc1", "tenant": "denvr-test"},
                "credentials": {"apikey": H.DEFAULT_APIKEY},
                "daemon": {"listen": "127.0.0.1:0", "ca_file": mock.ca_file,
                           "log_level": "info", "wait_poll_max_seconds": cap}}))
            d = H.Denvrd(H.denvrd_binary(), cfg, work / ("denvrd-%d.log" % cap),
                         H.denvrd_env(home))
            d.wait_ready()
            try:
                for tr in transitions:
                    for n in (1, 20):
                        vm = "vm-bench-%d-%g-%d" % (cap, tr, n)
                        polls, late = run(mock, d, vm, tr, n)
                        rows.append((cap, tr, n, polls, late))
                        print("cap %2d s  change after %4g s  %2d waiter(s): %2d polls, "
                              "answered %.2f s after the change" % (cap, tr, n, polls, late),
                              flush=True)
            finally:
                d.stop()
    finally:
        mock.stop()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DENVRD_BIN", str(Path(__file__).resolve().parents[2] / "build" /
                                            "daemon" / "denvrd"))
    sys.exit(main())
