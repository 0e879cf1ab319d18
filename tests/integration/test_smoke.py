# SPDX-License-Identifier: MIT
"""Smoke tests: denvrd starts from a temporary config, answers /_denvrd/healthz on every
listener, and exits 0 on SIGTERM, removing its socket file."""

import os
import signal
import stat

from denvrd_harness import wait_until


def test_healthz_over_tcp_and_unix_socket(start_denvrd):
    d = start_denvrd()
    assert d.port and d.port != 0
    assert d.socket_path and stat.S_ISSOCK(os.stat(d.socket_path).st_mode)
    for via in ("tcp", "unix"):
        st, h, body = d.request("GET", "/_denvrd/healthz", via=via)
        assert st == 200, (via, st, body)
    assert d.stop() == 0
    assert not os.path.exists(d.socket_path), "socket file left behind after SIGTERM"


def test_healthz_over_ipv6(start_denvrd):
    d = start_denvrd(listen=["127.0.0.1:0", "[::1]:0"], socket=None)
    assert d.port and d.port6, "expected IPv4 and IPv6 listeners in the log"
    for via in ("tcp", "tcp6"):
        assert d.request("GET", "/_denvrd/healthz", via=via)[0] == 200


def test_password_mode_starts(start_denvrd):
    d = start_denvrd(credentials="password")
    assert d.request("GET", "/_denvrd/healthz")[0] == 200


def test_sigint_exits_zero(start_denvrd):
    d = start_denvrd()
    assert d.stop(sig=signal.SIGINT) == 0
    wait_until(lambda: not os.path.exists(d.socket_path), timeout=2,
               what="socket file removal")
