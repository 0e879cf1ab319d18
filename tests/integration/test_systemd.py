# SPDX-License-Identifier: MIT
"""denvrd as a systemd service (issue 6): sd_notify, watchdog, socket activation, reload,
journal fields and the local endpoints.

Nothing here needs a running systemd:
  * sd_notify goes to a NOTIFY_SOCKET this test binds (a SOCK_DGRAM unix socket);
  * socket activation uses systemd-socket-activate (package systemd), which binds the
    sockets, waits for the first connection, then execs denvrd with LISTEN_FDS set;
  * journal output is read from a journal-protocol socket this test binds: denvrd runs in a
    private mount namespace (unshare) where that socket is mounted at
    /run/systemd/journal/socket, the path sd_journal_sendv() writes to; $JOURNAL_STREAM
    names the dev:ino of denvrd's stderr as journald would;
  * promtool comes out of Debian's prometheus package (tests/get-promtool.sh, never
    installed), or from $PROMTOOL.
A missing tool makes its test fail, never skip.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

import denvrd_harness as H
from denvrd_harness import scaled, wait_until

GET_SERVERS = "/api/v1/servers/virtual/GetServers"
HEX128 = re.compile(r"^[0-9a-f]{32}$")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def port_refuses(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        return True
    finally:
        s.close()
    return False


def unix_refuses(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return True
    finally:
        s.close()
    return False


def get_at(method, path, port=None, unix=None, headers=None, timeout=10):
    """One request to a given TCP port or unix socket (not necessarily one denvrd logged)."""
    if unix:
        conn = H.UnixHTTPConnection(unix, timeout=timeout)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        return H.http_request(conn, method, path, headers=headers)
    finally:
        conn.close()


def count_log(d, needle):
    return d.log_text().count(needle)


def wait_log_count(d, needle, n, timeout=10):
    wait_until(lambda: count_log(d, needle) >= n, timeout,
               what="%d x %r in the denvrd log" % (n, needle))


def rewrite_config(d, *replacements):
    """Apply (old, new) text replacements to d's config file; each old must be present."""
    text = d.config_path.read_text()
    for old, new in replacements:
        assert old in text, "config has no %r:\n%s" % (old, text)
        text = text.replace(old, new)
    H.write_private(d.config_path, text)
    return text


def reload_and_wait(d, outcome="configuration reloaded", timeout=10):
    """SIGHUP, then wait for one more `outcome` line in the log."""
    before = count_log(d, outcome)
    d.reload()
    wait_log_count(d, outcome, before + 1, timeout)


def last_api_record(mock, since, path=GET_SERVERS):
    recs = [r for r in mock.requests(since) if r["path"].startswith(path)]
    assert recs, "the mock saw no %s since seq %d" % (path, since)
    return recs[-1]


def mock_seq(mock):
    recs = mock.requests()
    return recs[-1]["seq"] if recs else 0


def query_of(record):
    return record["path"].partition("?")[2]


# -- sd_notify ----------------------------------------------------------------------------
class NotifySocket:
    """A test-owned NOTIFY_SOCKET: collects every datagram with its arrival time."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages = []          # [(monotonic arrival, {key: value}, raw text)]
        self.lock = threading.Lock()
        self.hooks = []             # called with the fields of each message, in the reader
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic()
            text = data.decode(errors="replace")
            fields = {}
            for line in text.split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    fields[k] = v
            for hook in list(self.hooks):
                hook(fields)
            with self.lock:
                self.messages.append((now, fields, text))

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def index(self):
        with self.lock:
            return len(self.messages)

    def find(self, key, value=None, since=0):
        """Messages (from index `since`) that carry key (=value)."""
        return [(i, t, f) for i, (t, f, _) in enumerate(self.snapshot())
                if i >= since and key in f and (value is None or f[key] == value)]

    def wait(self, key, value=None, since=0, timeout=10, count=1):
        def found():
            m = self.find(key, value, since)
            return m if len(m) >= count else None
        return wait_until(found, timeout, interval=0.01,
                          what="sd_notify %s%s (got: %r)" % (
                              key, "=" + value if value is not None else "",
                              [raw for _, _, raw in self.snapshot()][-12:]))

    def close(self):
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def notify_socket(sock_dir):
    n = NotifySocket(sock_dir / "notify.sock")
    yield n
    n.close()


# A wrapper that runs denvrd with WATCHDOG_PID set to denvrd's own pid: sh exports its pid
# ($$) and execs denvrd in the same process, as systemd does for the main process.
WATCHDOG_PID_WRAPPER = ["sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"', "sh"]

PLAIN_WORDS = re.compile(r"^[a-z][A-Za-z0-9 @._,:;()'/-]*$")


def assert_plain_words(text):
    """A STATUS= text is a sentence for humans: no JSON, no key=value, no C-isms."""
    assert PLAIN_WORDS.match(text), "STATUS is not plain words: %r" % text
    for bad in ("(null)", "errno", "-1 ", "{", "="):
        assert bad not in text, "STATUS %r contains %r" % (text, bad)


# ---------------------------------------------------------------------------------------------
# 1. sd_notify: READY, STATUS, WATCHDOG, RELOADING, STOPPING
# ---------------------------------------------------------------------------------------------
def test_notify_lifecycle(start_denvrd, mock, notify_socket, sock_dir):
    port = free_port()
    sock = str(sock_dir / "d.sock")
    probe = {}

    def on_message(fields):
        # Runs the moment READY=1 arrives: both listeners must already accept and answer.
        if fields.get("READY") == "1" and "first" not in probe:
            probe["first"] = True
            try:
                probe["tcp"] = get_at("GET", "/_denvrd/healthz", port=port,
                                      timeout=scaled(5))[0]
                probe["unix"] = get_at("GET", "/_denvrd/healthz", unix=sock,
                                       timeout=scaled(5))[0]
            except OSError as e:
                probe["error"] = repr(e)

    notify_socket.hooks.append(on_message)
    d = start_denvrd(credentials="password", listen="127.0.0.1:%d" % port, socket=sock,
                     wrapper=WATCHDOG_PID_WRAPPER, wait=False,
                     env={"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "400000"})
    # READY=1 once the listeners are bound (not once logged in).
    notify_socket.wait("READY", "1", timeout=15)
    # The wrapper exec'd denvrd in place: WATCHDOG_PID names denvrd itself.
    environ = Path("/proc/%d/environ" % d.pid).read_bytes().split(b"\0")
    assert ("WATCHDOG_PID=%d" % d.pid).encode() in environ, environ
    wait_until(lambda: "tcp" in probe or "error" in probe, 10, what="the READY probe")
    assert probe == {"first": True, "tcp": 200, "unix": 200}, probe
    d.wait_ready()
    ready_idx = notify_socket.find("READY", "1")[0][0]
    assert "STATUS" in notify_socket.snapshot()[ready_idx][1], "READY=1 came without STATUS="

    # STATUS= in plain words: logging in, then logged in with the token's life and a count.
    wait_until(lambda: [f for _, f, _ in notify_socket.snapshot()
                        if f.get("STATUS", "").startswith("logged in as ")], 15,
               what="STATUS=logged in as ...")
    statuses = [f["STATUS"] for _, f, _ in notify_socket.snapshot() if "STATUS" in f]
    for s in statuses:
        assert_plain_words(s)
    rx = re.compile(r"^logged in as %s, token valid \d+ (s|min), (\d+) requests$" %
                    re.escape(mock.user))
    assert any(rx.match(s) for s in statuses), statuses

    # STATUS= is kept current: after traffic the request count in it moves.
    for _ in range(3):
        st, _, _ = d.request("GET", GET_SERVERS + "?Cluster=Msc1")
        assert st == 200

    def count_now():
        counts = [int(m.group(2)) for _, f, _ in notify_socket.snapshot()
                  for m in [rx.match(f.get("STATUS", ""))] if m]
        return counts and counts[-1] >= 3
    wait_until(count_now, 8, what="STATUS= to show >= 3 requests")

    # WATCHDOG=1 at half of WATCHDOG_USEC (400 ms -> every 200 ms), from the event loop.
    start = notify_socket.index()
    time.sleep(scaled(1.5))
    pings = notify_socket.find("WATCHDOG", "1", since=start)
    assert len(pings) >= 4, "only %d WATCHDOG=1 in 1.5 s with WATCHDOG_USEC=400000" % len(pings)
    gaps = [b[1] - a[1] for a, b in zip(pings, pings[1:])]
    assert max(gaps) < scaled(0.4), "watchdog gaps %r exceed WATCHDOG_USEC" % gaps

    # A wedged loop stops pinging (SIGSTOP freezes it), so systemd would restart it.
    os.kill(d.pid, signal.SIGSTOP)
    try:
        time.sleep(0.1)
        frozen = notify_socket.index()
        time.sleep(0.6)
        assert not notify_socket.find("WATCHDOG", "1", since=frozen)
    finally:
        os.kill(d.pid, signal.SIGCONT)
    notify_socket.wait("WATCHDOG", "1", since=frozen, timeout=5)

    # RELOADING=1 (with MONOTONIC_USEC) ... READY=1 around a reload.
    start = notify_socket.index()
    t0 = time.monotonic()
    d.reload()
    notify_socket.wait("RELOADING", "1", since=start)
    ready = notify_socket.wait("READY", "1", since=start)
    reloading = notify_socket.find("RELOADING", "1", since=start)
    assert reloading[0][0] < ready[0][0], "READY=1 came before RELOADING=1"
    mono = int(reloading[0][2]["MONOTONIC_USEC"])
    assert t0 * 1e6 - 1e6 <= mono <= time.monotonic() * 1e6, (t0, mono)
    assert_plain_words(reloading[0][2]["STATUS"])
    assert "STATUS" in notify_socket.snapshot()[ready[0][0]][1]
    st, _, _ = d.request("GET", "/_denvrd/healthz")
    assert st == 200

    # STOPPING=1 on SIGTERM, and a clean exit.
    start = notify_socket.index()
    assert d.stop() == 0
    stopping = notify_socket.find("STOPPING", "1", since=start)
    assert stopping, [raw for _, _, raw in notify_socket.snapshot()[start:]]
    later = [f for _, f, _ in notify_socket.snapshot()[stopping[0][0] + 1:]]
    assert not [f for f in later if "READY" in f or "STATUS" in f and "shutting" not in
                f["STATUS"]], "status changed after STOPPING=1: %r" % later


def test_watchdog_only_for_its_own_pid(start_denvrd, notify_socket):
    """WATCHDOG_PID naming another process: denvrd must not ping (the check the test above
    relies on, so its pings come from the WATCHDOG_PID/WATCHDOG_USEC handshake)."""
    d = start_denvrd(env={"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "200000",
                          "WATCHDOG_PID": "1"})
    notify_socket.wait("READY", "1")
    time.sleep(scaled(0.8))
    assert not notify_socket.find("WATCHDOG"), notify_socket.snapshot()
    assert d.stop() == 0


def test_status_words_api_key_and_failing_login(start_denvrd, mock, notify_socket):
    # API-key mode says so.
    d = start_denvrd(env={"NOTIFY_SOCKET": notify_socket.path})
    ready = notify_socket.wait("READY", "1")
    status = ready[0][2]["STATUS"]
    assert re.match(r"^using an API key, \d+ requests$", status), status
    assert d.stop() == 0

    # A rejected password: the reason and when the next try comes, in words; the same
    # sentence shows in /_denvrd/status.
    mock.reject_logins("password")
    start = notify_socket.index()
    d = start_denvrd(credentials="password", env={"NOTIFY_SOCKET": notify_socket.path})
    failing = r"^login failing: upstream rejected the password for %s \(.+\)" % re.escape(mock.user)
    rx = re.compile(failing + r"; next try in \d+ s$")
    # READY=1 does not wait for a login (readiness of the login is /_denvrd/readyz).
    notify_socket.wait("READY", "1", since=start)
    wait_until(lambda: [f for _, f, _ in notify_socket.snapshot()[start:]
                        if rx.match(f.get("STATUS", ""))], 10,
               what="STATUS=login failing: ...; next try in N s")
    for _, f, _ in notify_socket.snapshot()[start:]:
        if "STATUS" in f:
            assert_plain_words(f["STATUS"])
    # (While a retry is in flight no next try is scheduled, so that part may be missing.)
    st, _, body = d.request_json("GET", "/_denvrd/status")
    any_time = re.compile(failing + r"(; next try in \d+ s)?$")
    assert st == 200 and any_time.match(body["status"]), body["status"]
    assert mock.password not in json.dumps(body)
    assert d.stop() == 0

    # An unreachable upstream: said so, with the next try.
    dead = "https://127.0.0.1:%d" % free_port()
    start = notify_socket.index()
    d = start_denvrd(credentials="password", upstream=dead,
                     env={"NOTIFY_SOCKET": notify_socket.path})
    rx = re.compile(r"^login failing: upstream %s unreachable: .+; next try in \d+ s$" %
                    re.escape(dead))
    wait_until(lambda: [f for _, f, _ in notify_socket.snapshot()[start:]
                        if rx.match(f.get("STATUS", ""))], 10,
               what="STATUS=login failing: upstream ... unreachable; next try in N s")
    for _, f, _ in notify_socket.snapshot()[start:]:
        if "STATUS" in f:
            assert_plain_words(f["STATUS"])
    assert d.stop() == 0


# ---------------------------------------------------------------------------------------------
# 2. socket activation under systemd-socket-activate
# ---------------------------------------------------------------------------------------------
def socket_activate_binary():
    for c in (shutil.which("systemd-socket-activate"), "/usr/bin/systemd-socket-activate",
              "/lib/systemd/systemd-socket-activate", "/usr/lib/systemd/systemd-socket-activate"):
        if c and os.access(c, os.X_OK):
            return c
    pytest.fail("systemd-socket-activate not found: install the Debian package systemd")


def start_socket_activated(start_denvrd, sock_dir, **kw):
    """denvrd under systemd-socket-activate with a TCP and a unix socket; the config has
    its own listen and socket, which must be ignored.  -> (Denvrd, port, unix path)."""
    ssa = socket_activate_binary()
    sock = str(sock_dir / "activated.sock")
    for attempt in range(5):
        port = free_port()
        wrapper = [ssa, "-l", "127.0.0.1:%d" % port, "-l", sock,
                   "--fdname=http:local"]
        # systemd-socket-activate passes only a few variables on; keep sanitizer settings.
        for k in os.environ:
            if re.match(r"^(ASAN|UBSAN|LSAN|MSAN|TSAN|VALGRIND)_", k):
                wrapper += ["-E", k]
        d = start_denvrd(wrapper=wrapper, wait=False, **kw)

        def bound():
            if d.proc.poll() is not None:
                raise H.GiveUp("systemd-socket-activate exited: %s" % d.log_text())
            return not port_refuses(port) and os.path.exists(sock)
        try:
            wait_until(bound, 10, what="systemd-socket-activate to listen")
        except H.GiveUp:
            d.stopped_by_test = True
            if "Address already in use" in d.log_text() and attempt < 4:
                if os.path.exists(sock):
                    os.unlink(sock)
                continue
            raise
        break
    return d, port, sock


def test_socket_activation(start_denvrd, mock, sock_dir):
    d, port, sock = start_socket_activated(start_denvrd, sock_dir)
    config_sock = d.expected_socket
    # The first connection makes systemd-socket-activate exec denvrd, which answers it.
    st, _, body = get_at("GET", "/_denvrd/healthz", port=port, timeout=scaled(15))
    assert st == 200, body
    d.wait_ready()

    log = d.log_text()
    assert re.search(r"using 2 socket\(s\) passed by systemd; the configuration's listen and "
                     r"socket settings are ignored", log), log
    listening = re.findall(r"listening on (tcp|unix) (\S+)(.*)", log)
    assert sorted((k, a) for k, a, _ in listening) == sorted(
        [("tcp", "127.0.0.1:%d" % port), ("unix", sock)]), listening
    assert all("(from systemd)" in rest for _, _, rest in listening), listening
    assert not os.path.exists(config_sock), "the config's socket was bound anyway"

    # Health and a forwarded request over each inherited socket.
    for via in ({"port": port}, {"unix": sock}):
        st, _, _ = get_at("GET", "/_denvrd/healthz", **via)
        assert st == 200
        since = mock_seq(mock)
        st, _, body = get_at("GET", GET_SERVERS + "?Cluster=Msc1", **via)
        assert st == 200, body
        rec = last_api_record(mock, since)
        assert mock.header(rec, "Authorization") == "ApiKey " + mock.apikey

    st, _, status = d.request_json("GET", "/_denvrd/status", via="unix")
    assert st == 200
    assert sorted((l["kind"], l["address"], l["socket_activated"]) for l in status["listeners"]) \
        == sorted([("tcp", "127.0.0.1:%d" % port, True), ("unix", sock, True)])

    # A reload that changes listen keeps the systemd sockets and says so.
    rewrite_config(d, ('listen = "127.0.0.1:0"', 'listen = "127.0.0.1:%d"' % free_port()))
    reload_and_wait(d)
    assert "managed by systemd sockets" in d.log_text()
    assert get_at("GET", "/_denvrd/healthz", port=port)[0] == 200
    assert get_at("GET", "/_denvrd/healthz", unix=sock)[0] == 200
    assert d.stop() == 0
    # The socket file belongs to systemd-socket-activate's caller, not to denvrd.
    assert os.path.exists(sock)


# ---------------------------------------------------------------------------------------------
# 3. reload
# ---------------------------------------------------------------------------------------------
def test_reload_new_default_applies_without_dropping_connections(start_denvrd, mock):
    d = start_denvrd(defaults={"cluster": "Msc1"})
    conn = d.connection("tcp")
    try:
        since = mock_seq(mock)
        st, _, body = H.http_request(conn, "GET", GET_SERVERS)
        assert st == 200, body
        assert query_of(last_api_record(mock, since)) == "Cluster=Msc1"
        sock_before = conn.sock
        local_before = conn.sock.getsockname()

        # A request in flight across the reload (the upstream takes 1 s to answer).
        mock.delay(1.0, path=GET_SERVERS)
        slow = {}

        def slow_request():
            slow["result"] = d.request("GET", GET_SERVERS + "?Cluster=Msc1", timeout=20)
        t = threading.Thread(target=slow_request)
        t.start()
        wait_until(lambda: mock.stats()["by_path"].get(GET_SERVERS, 0) >= 2, 5,
                   what="the slow request to reach the mock")

        rewrite_config(d, ('cluster = "Msc1"', 'cluster = "Hou1"'))
        reload_and_wait(d)
        t.join(timeout=scaled(20))
        assert slow["result"][0] == 200, slow

        # The same keep-alive connection, used after the reload, gets the new default.
        since = mock_seq(mock)
        st, _, body = H.http_request(conn, "GET", GET_SERVERS)
        assert st == 200, body
        assert conn.sock is sock_before and conn.sock.getsockname() == local_before, \
            "the keep-alive connection was replaced"
        assert query_of(last_api_record(mock, since)) == "Cluster=Hou1"
        # An explicit parameter still wins over the default.
        since = mock_seq(mock)
        st, _, _ = H.http_request(conn, "GET", GET_SERVERS + "?Cluster=Msc1")
        assert st == 200 and query_of(last_api_record(mock, since)) == "Cluster=Msc1"
    finally:
        conn.close()
    assert d.stop() == 0


@pytest.mark.parametrize("bad", [
    ("syntax", 'cluster = "Msc1"', 'cluster = "Hou1'),
    ("value", 'cluster = "Msc1"', 'cluster = "Hou1"\nretries = 99'),
    ("type", 'cluster = "Msc1"', 'cluster = 5'),
], ids=lambda b: b[0])
def test_reload_invalid_config_is_rejected_and_service_continues(start_denvrd, mock,
                                                                 notify_socket, bad):
    _, old, new = bad
    d = start_denvrd(defaults={"cluster": "Msc1"}, env={"NOTIFY_SOCKET": notify_socket.path})
    notify_socket.wait("READY", "1")
    conn = d.connection("tcp")
    try:
        st, _, _ = H.http_request(conn, "GET", "/_denvrd/healthz")
        assert st == 200
        good = d.config_path.read_text()
        rewrite_config(d, (old, new))
        start = notify_socket.index()
        reload_and_wait(d, "new configuration rejected; still running with the previous one")
        # The reason is logged (the config file is named), and systemd hears READY again.
        log = d.log_text()
        assert re.search(r"error .*%s" % re.escape(str(d.config_path)), log), log
        notify_socket.wait("RELOADING", "1", since=start)
        notify_socket.wait("READY", "1", since=start)
        assert d.running()

        # Service continues with the previous configuration, on the same connection too.
        since = mock_seq(mock)
        st, _, body = H.http_request(conn, "GET", GET_SERVERS)
        assert st == 200, body
        assert query_of(last_api_record(mock, since)) == "Cluster=Msc1"
        st, _, _ = d.request("GET", "/_denvrd/readyz")
        assert st == 200

        # And a later good reload still works.
        H.write_private(d.config_path, good.replace('cluster = "Msc1"', 'cluster = "Hou1"'))
        reload_and_wait(d)
        since = mock_seq(mock)
        st, _, _ = H.http_request(conn, "GET", GET_SERVERS)
        assert st == 200 and query_of(last_api_record(mock, since)) == "Cluster=Hou1"
    finally:
        conn.close()
    assert d.stop() == 0


def test_reload_rebinds_changed_listeners(start_denvrd, sock_dir):
    a, b = free_port(), free_port()
    while b == a:
        b = free_port()
    sock_a, sock_b = str(sock_dir / "a.sock"), str(sock_dir / "b.sock")
    d = start_denvrd(listen="127.0.0.1:%d" % a, socket=sock_a)
    assert get_at("GET", "/_denvrd/healthz", port=a)[0] == 200

    rewrite_config(d, ("127.0.0.1:%d" % a, "127.0.0.1:%d" % b), (sock_a, sock_b))
    reload_and_wait(d)
    assert get_at("GET", "/_denvrd/healthz", port=b)[0] == 200
    assert get_at("GET", "/_denvrd/healthz", unix=sock_b)[0] == 200
    assert port_refuses(a), "the old port still accepts connections"
    assert unix_refuses(sock_a) and not os.path.exists(sock_a)
    st, _, data = get_at("GET", "/_denvrd/status", port=b)
    listeners = sorted((l["kind"], l["address"]) for l in json.loads(data)["listeners"])
    assert listeners == sorted([("tcp", "127.0.0.1:%d" % b), ("unix", sock_b)])

    # A new address that cannot be bound: the old listeners and config stay.
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        c = busy.getsockname()[1]
        rewrite_config(d, ("127.0.0.1:%d" % b, "127.0.0.1:%d" % c))
        before = count_log(d, "restoring the previous ones")
        d.reload()
        wait_log_count(d, "restoring the previous ones", before + 1)
        wait_until(lambda: get_at("GET", "/_denvrd/healthz", port=b)[0] == 200, 5,
                   what="the previous listener to answer again")
        assert get_at("GET", "/_denvrd/healthz", unix=sock_b)[0] == 200
        assert d.running()
    finally:
        busy.close()
    assert d.stop() == 0


def test_reload_keeps_unchanged_listeners(start_denvrd, mock, sock_dir):
    """A reload that changes only the socket leaves the TCP listener alone: its port (even
    one from port 0), its kept-alive connection and the request in flight on it."""
    sock_a, sock_b = str(sock_dir / "a.sock"), str(sock_dir / "b.sock")
    d = start_denvrd(listen="127.0.0.1:0", socket=sock_a)
    port = d.tcp4[0][1]
    keep = http.client.HTTPConnection("127.0.0.1", port, timeout=scaled(10))
    try:
        assert H.http_request(keep, "GET", "/_denvrd/healthz")[0] == 200
        local = keep.sock.getsockname()

        mock.delay(2, path=GET_SERVERS)
        slow = {}

        def slow_request():
            try:
                slow["r"] = get_at("GET", GET_SERVERS + "?Cluster=Msc1", port=port,
                                   timeout=scaled(20))
            except OSError as e:   # what a dropped connection gives
                slow["r"] = (None, None, repr(e))
        t = threading.Thread(target=slow_request)
        t.start()
        wait_until(lambda: json.loads(get_at("GET", "/_denvrd/status", unix=sock_a)[2])
                   ["requests"]["in_flight"] >= 2, 5, what="the slow request in flight")

        rewrite_config(d, (sock_a, sock_b))
        reload_and_wait(d)
        assert unix_refuses(sock_a) and not os.path.exists(sock_a)
        assert get_at("GET", "/_denvrd/healthz", unix=sock_b)[0] == 200

        t.join(scaled(20))
        assert slow["r"][0] == 200, "the request in flight on the kept listener: %r" % (slow["r"],)
        st, _, _ = H.http_request(keep, "GET", "/_denvrd/healthz")
        assert st == 200 and keep.sock.getsockname() == local, "the kept-alive connection was closed"
        st, _, data = get_at("GET", "/_denvrd/status", port=port)
        listeners = sorted((l["kind"], l["address"]) for l in json.loads(data)["listeners"])
        assert listeners == sorted([("tcp", "127.0.0.1:%d" % port), ("unix", sock_b)])
    finally:
        keep.close()
    assert d.stop() == 0


def test_reload_changed_credentials_log_in_again(start_denvrd, mock):
    d = start_denvrd()   # API key
    since = mock_seq(mock)
    st, _, _ = d.request("GET", GET_SERVERS + "?Cluster=Msc1")
    assert st == 200
    assert mock.header(last_api_record(mock, since), "Authorization").startswith("ApiKey ")
    logins = mock.stats()["logins_ok"]

    rewrite_config(d, ('[credentials]\napikey = "%s"' % mock.apikey,
                       '[credentials]\nusername = "%s"\npassword = "%s"' % (
                           mock.user, mock.password)))
    reload_and_wait(d)
    d.wait_for_log(r"logged in as %s" % re.escape(mock.user))
    since = mock_seq(mock)
    st, _, _ = d.request("GET", GET_SERVERS + "?Cluster=Msc1")
    assert st == 200
    assert mock.requests(0, path="/api/TokenAuth/Authenticate"), "no new login upstream"
    assert mock.header(last_api_record(mock, since), "Authorization").startswith("Bearer ")
    assert mock.stats()["logins_ok"] == logins + 1
    assert d.stop() == 0


# ---------------------------------------------------------------------------------------------
# 6. local endpoints: metrics, status, readyz
# ---------------------------------------------------------------------------------------------
def promtool_path():
    """$PROMTOOL, else tests/get-promtool.sh into the build directory (cached there)."""
    p = os.environ.get("PROMTOOL")
    if p:
        if not os.access(p, os.X_OK):
            pytest.fail("PROMTOOL=%s is not executable" % p)
        return p
    cache = os.environ.get("DENVRD_PROMTOOL_DIR") or \
        str(H.denvrd_binary().resolve().parent.parent / "promtool-cache")
    r = subprocess.run(["sh", str(H.TESTS_DIR / "get-promtool.sh"), cache],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    if r.returncode != 0:
        pytest.fail("cannot obtain promtool (tests/get-promtool.sh %s): %s" % (
            cache, r.stderr.decode(errors="replace")[-2000:]))
    return r.stdout.decode().strip().splitlines()[-1]


def promtool_check(promtool, text):
    r = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0 and not out.strip(), \
        "promtool check metrics failed (%d):\n%s\n--- metrics ---\n%s" % (r.returncode, out, text)


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def parse_metrics(text):
    """-> {(name, frozenset(labels)): float}; also checks every sample has a # TYPE."""
    out, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        name, labels, value = m.groups()
        lab = frozenset(re.findall(r'(\w+)="([^"]*)"', labels or ""))
        out[(name, lab)] = float(value)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or base in types, "%s has no # TYPE" % name
    return out, types


def metric(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    assert key in samples, "no sample %s%r; have %r" % (
        name, labels, sorted(k for k in samples if k[0].startswith(name)))
    return samples[key]


def test_metrics_pass_promtool_and_move(start_denvrd, mock):
    promtool = promtool_path()
    d = start_denvrd(credentials="password")
    d.wait_for_log(r"logged in as ")
    st, h, body = d.request("GET", "/_denvrd/metrics")
    assert st == 200
    assert h["Content-Type"].startswith("text/plain; version=0.0.4"), h["Content-Type"]
    first = body.decode()
    promtool_check(promtool, first)
    s0, types = parse_metrics(first)
    for name, typ in [("denvrd_requests_total", "counter"),
                      ("denvrd_upstream_request_duration_seconds", "histogram"),
                      ("denvrd_upstream_retries_total", "counter"),
                      ("denvrd_logins_total", "counter"),
                      ("denvrd_token_refreshes_total", "counter"),
                      ("denvrd_token_expiry_seconds", "gauge"),
                      ("denvrd_requests_in_flight", "gauge"),
                      ("denvrd_upstream_connections_open", "gauge")]:
        assert types.get(name) == typ, (name, types.get(name))
    assert metric(s0, "denvrd_logins_total", result="ok") == 1
    assert metric(s0, "denvrd_logins_total", result="failed") == 0
    metric(s0, "denvrd_token_refreshes_total", result="ok")
    metric(s0, "denvrd_token_refreshes_total", result="failed")
    life = mock.config()["access_lifetime"]
    assert life - 60 < metric(s0, "denvrd_token_expiry_seconds") <= life
    assert metric(s0, "denvrd_requests_in_flight") == 1   # this scrape

    # Traffic: forwarded 2xx, a retried 503, a local 404, a POST, and one slow in flight.
    for _ in range(2):
        assert d.request("GET", GET_SERVERS + "?Cluster=Msc1")[0] == 200
    mock.fail(count=1, status=503, path=GET_SERVERS)
    assert d.request("GET", GET_SERVERS + "?Cluster=Msc1")[0] == 200
    assert d.request("GET", "/_denvrd/nonesuch")[0] == 404
    assert d.request("DELETE", "/_denvrd/status")[0] == 405
    mock.delay(1.5, path=GET_SERVERS)
    slow = {}
    t = threading.Thread(target=lambda: slow.update(r=d.request(
        "GET", GET_SERVERS + "?Cluster=Msc1", timeout=20)))
    t.start()
    try:
        # the forwarded ones only: the first scrape read GetServers too, for the cost
        wait_until(lambda: sum("Cluster=Msc1" in r["path"]
                               for r in mock.requests(path=GET_SERVERS)) >= 5, 5,
                   what="the slow request to reach the mock")
        st, _, body = d.request("GET", "/_denvrd/metrics")
        assert st == 200
        during = body.decode()
    finally:
        t.join(timeout=scaled(20))
    assert slow["r"][0] == 200
    promtool_check(promtool, during)
    s1, _ = parse_metrics(during)
    assert metric(s1, "denvrd_requests_in_flight") == 2

    st, _, body = d.request("GET", "/_denvrd/metrics")
    last = body.decode()
    promtool_check(promtool, last)
    s2, _ = parse_metrics(last)
    get2xx = lambda s: metric(s, "denvrd_requests_total", method="GET", code="2xx")  # noqa: E731
    assert get2xx(s2) - get2xx(s0) >= 6      # 4 forwarded + 2 scrapes
    assert metric(s2, "denvrd_requests_total", method="GET", code="4xx") >= 1
    assert metric(s2, "denvrd_requests_total", method="DELETE", code="4xx") == 1
    assert metric(s2, "denvrd_upstream_retries_total") == 1
    count = metric(s2, "denvrd_upstream_request_duration_seconds_count")
    assert count - metric(s0, "denvrd_upstream_request_duration_seconds_count") == 5
    assert metric(s2, "denvrd_upstream_request_duration_seconds_bucket", le="+Inf") == count
    assert metric(s2, "denvrd_upstream_request_duration_seconds_sum") >= 1.5   # the slow one
    assert metric(s2, "denvrd_upstream_request_duration_seconds_bucket", le="1") <= count - 1
    assert metric(s2, "denvrd_upstream_connections_open") >= 1
    assert metric(s2, "denvrd_requests_in_flight") == 1
    assert d.stop() == 0


def secrets_of(mock):
    t = mock.tokens()
    out = {mock.password, mock.apikey}
    for k in ("access", "refresh", "encrypted", "secrets"):
        out.update(x for x in t.get(k, []) if x)
    return out


def test_status_json_and_no_secrets(start_denvrd, mock):
    d = start_denvrd(credentials="password")
    d.wait_for_log(r"logged in as ")
    st, h, s0 = d.request_json("GET", "/_denvrd/status")
    assert st == 200 and h["Content-Type"].startswith("application/json")
    version = subprocess.run([str(H.denvrd_binary()), "--version"], stdout=subprocess.PIPE,
                             check=True).stdout.decode().split()[-1]
    assert s0["version"] == version
    assert isinstance(s0["uptime_seconds"], int) and 0 <= s0["uptime_seconds"] < 60
    assert sorted((l["kind"], l["address"]) for l in s0["listeners"]) == sorted(
        [("tcp", "%s:%d" % d.tcp4[0]), ("unix", d.socket_path)])
    assert s0["upstream"]["server"] == mock.url
    assert s0["auth"]["mode"] == "password" and s0["auth"]["logged_in"] is True
    assert s0["auth"]["user"] == mock.user
    assert s0["auth"]["last_login_result"] == "ok"
    life = mock.config()["access_lifetime"]
    assert life - 60 < s0["auth"]["access_token_expires_in"] <= life
    assert s0["status"].startswith("logged in as ")
    for k in ("total", "in_flight", "upstream_requests", "retries", "upstream_errors"):
        assert isinstance(s0["requests"][k], int), k

    for _ in range(3):
        assert d.request("GET", GET_SERVERS + "?Cluster=Msc1", via="unix")[0] == 200
    time.sleep(1.1)
    st, _, s1 = d.request_json("GET", "/_denvrd/status")
    assert s1["requests"]["total"] - s0["requests"]["total"] == 4   # 3 + the first status
    assert s1["requests"]["upstream_requests"] - s0["requests"]["upstream_requests"] == 3
    assert s1["uptime_seconds"] >= s0["uptime_seconds"] + 1
    assert s1["upstream"]["connections_open"] >= 1

    # Local endpoints are never forwarded (HEAD too).
    assert d.request("HEAD", "/_denvrd/metrics")[0] == 200
    assert not mock.requests(0, path="/_denvrd"), "a local endpoint reached upstream"

    # Never a secret: password, API key, any token the mock issued, in any endpoint.
    secrets = secrets_of(mock)
    assert mock.password in secrets and any(x for x in mock.tokens()["access"])
    for path in ("/_denvrd/status", "/_denvrd/metrics", "/_denvrd/healthz", "/_denvrd/readyz"):
        st, _, body = d.request("GET", path)
        text = body.decode(errors="replace")
        for sec in secrets:
            assert sec not in text, "%s reveals a secret" % path
    assert d.stop() == 0


def test_readyz(start_denvrd, mock, start_mock):
    # API key held, upstream working: ready.
    d = start_denvrd(defaults={"retries": 0})
    assert d.request("GET", GET_SERVERS + "?Cluster=Msc1")[0] == 200
    st, _, body = d.request_json("GET", "/_denvrd/readyz")
    assert st == 200 and body["status"] == "ready"
    assert d.request_json("GET", "/_denvrd/healthz")[2] == {"status": "alive"}

    # The last upstream contact failed: not ready, with the reason; alive all the same.
    mock.drop(count=-1, path=GET_SERVERS)
    assert d.request("GET", GET_SERVERS + "?Cluster=Msc1")[0] == 502
    st, _, body = d.request_json("GET", "/_denvrd/readyz")
    assert st == 503 and body["status"] == "not ready", body
    assert "upstream" in body["reason"], body
    assert d.request("GET", "/_denvrd/healthz")[0] == 200
    # Upstream back: ready again after the next contact.  (The same GetServers would be
    # answered from the failure denvrd just gave up on, failure_memory_seconds; another
    # request reaches upstream, and its answer makes that failure forgotten.)
    mock.reset()
    assert d.request("GET", "/api/v1/clusters/GetAll")[0] == 200
    assert d.request("GET", "/_denvrd/readyz")[0] == 200
    assert d.request("GET", GET_SERVERS + "?Cluster=Msc1")[0] == 200
    assert d.stop() == 0

    # A dead upstream (nothing listens there).
    dead = "https://127.0.0.1:%d" % free_port()
    d = start_denvrd(upstream=dead, defaults={"retries": 0})
    assert d.request("GET", GET_SERVERS + "?Cluster=Msc1")[0] == 502
    st, _, body = d.request_json("GET", "/_denvrd/readyz")
    assert st == 503, body
    assert d.stop() == 0

    # Password mode: not ready until logged in; not ready while the login is refused.
    mock.reject_logins("password")
    d = start_denvrd(credentials="password")
    d.wait_for_log(r"login failing")
    st, _, body = d.request_json("GET", "/_denvrd/readyz")
    assert st == 503 and "rejected the password" in body["reason"], body
    assert mock.password not in json.dumps(body)
    mock.reject_logins("off")
    wait_until(lambda: d.request("GET", "/_denvrd/readyz")[0] == 200, 10,
               what="readyz 200 once the login is accepted")
    assert d.stop() == 0


# ---------------------------------------------------------------------------------------------
# 5. journal fields
# ---------------------------------------------------------------------------------------------
class JournalSocket:
    """Receives the native journal protocol (what sd_journal_sendv() sends to
    /run/systemd/journal/socket): one datagram per entry, KEY=VALUE lines or
    KEY\\n<le64 length><value>\\n for values with newlines; big entries come as a memfd."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.entries = []
        self.lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def parse(data):
        fields, i = {}, 0
        while i < len(data):
            nl = data.index(b"\n", i)
            line = data[i:nl]
            if b"=" in line:
                k, v = line.split(b"=", 1)
                i = nl + 1
            else:
                k = line
                (size,) = struct.unpack("<Q", data[nl + 1:nl + 9])
                v = data[nl + 9:nl + 9 + size]
                assert data[nl + 9 + size:nl + 10 + size] == b"\n"
                i = nl + 10 + size
            fields.setdefault(k.decode(), []).append(v.decode(errors="replace"))
        return fields

    def _run(self):
        while not self._stop:
            try:
                data, anc, _, _ = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(4 * 4))
            except socket.timeout:
                continue
            except OSError:
                return
            for level, typ, payload in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    for fd in struct.unpack("%di" % (len(payload) // 4), payload):
                        with os.fdopen(fd, "rb") as f:
                            data = f.read()
            with self.lock:
                self.entries.append(self.parse(data))

    def all(self):
        with self.lock:
            return list(self.entries)

    def where(self, **match):
        """Entries whose fields equal every given value (MESSAGE matched as a regex)."""
        out = []
        for e in self.all():
            ok = True
            for k, v in match.items():
                vals = e.get(k, [])
                if k == "MESSAGE":
                    ok = ok and any(re.search(v, x) for x in vals)
                else:
                    ok = ok and v in vals
            if ok:
                out.append(e)
        return out

    def wait(self, timeout=10, **match):
        return wait_until(lambda: self.where(**match), timeout,
                          what="journal entry %r (have %d entries, last: %r)" % (
                              match, len(self.entries),
                              [e.get("MESSAGE") for e in self.all()[-5:]]))

    def close(self):
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()


def one(entry, key):
    vals = entry.get(key, [])
    assert len(vals) == 1, "%s: %r in %r" % (key, vals, entry)
    return vals[0]


def journal_namespace_wrapper(jdir):
    """Run denvrd in a private mount namespace where jdir is /run/systemd/journal.  A tmpfs
    over /run gives the mount point; propagation is private, so nothing leaks out."""
    unshare = shutil.which("unshare")
    if not unshare:
        pytest.fail("unshare (util-linux) not found: needed to give denvrd a private "
                    "/run/systemd/journal")
    script = ('set -e; mount -t tmpfs -o mode=0755 denvrd-test-run /run; '
              'mkdir -p /run/systemd/journal; mount --bind "$0" /run/systemd/journal; '
              'exec "$@"')
    cmd = [unshare, "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        cmd += ["--user", "--map-root-user"]
    probe = subprocess.run(cmd + ["sh", "-c", script, str(jdir), "true"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if probe.returncode != 0:
        pytest.fail("cannot make a private mount namespace (%s): %s" % (
            " ".join(cmd), probe.stdout.decode(errors="replace")))
    return cmd + ["sh", "-c", script, str(jdir)]


def test_journal_fields(start_denvrd, mock, sock_dir):
    assert not str(sock_dir).startswith("/run/"), "the test dir would be hidden by the tmpfs"
    jdir = sock_dir / "journal"
    jdir.mkdir()
    journal = JournalSocket(jdir / "socket")
    try:
        wrapper = journal_namespace_wrapper(jdir)
        mock.config(access_lifetime=3)   # renewal at 80%: a refresh within ~2.4 s
        d = start_denvrd(credentials="password", wrapper=wrapper, journal_stream=True,
                         wait=False)
        e = journal.wait(MESSAGE=r"listening on tcp 127\.0\.0\.1:\d+", timeout=15)[0]
        host, port = re.search(r"listening on tcp (\S+):(\d+)", one(e, "MESSAGE")).groups()
        d.tcp4 = [(host, int(port))]
        wait_until(lambda: d.request("GET", "/_denvrd/healthz", timeout=2)[0] == 200, 10,
                   what="denvrd to answer")

        # Login, with a MESSAGE_ID.
        login = journal.wait(MESSAGE=r"logged in as %s" % re.escape(mock.user))[0]
        login_id = one(login, "MESSAGE_ID")
        assert HEX128.match(login_id), login_id
        assert one(login, "PRIORITY") == "6"

        # An access-log entry for a forwarded request over the unix socket.
        st, _, _ = d.request("GET", GET_SERVERS + "?Cluster=Msc1", via="unix",
                             headers={"X-Request-Id": "journal-test-unix-1"})
        assert st == 200
        acc = journal.wait(REQUEST_ID="journal-test-unix-1")[0]
        assert one(acc, "METHOD") == "GET"
        assert one(acc, "PATH") == GET_SERVERS
        assert one(acc, "STATUS") == "200"
        assert one(acc, "UPSTREAM_STATUS") == "200"
        assert re.match(r"^\d+\.\d{3}$", one(acc, "DURATION_MS")), acc
        expected_uid = "0" if os.geteuid() != 0 else str(os.getuid())
        assert one(acc, "PEER_UID") == expected_uid
        assert one(acc, "PRIORITY") == "6"
        assert "Cluster" not in one(acc, "PATH")

        # Over TCP the peer uid is the owner of the client's socket; a local endpoint has no
        # upstream status.
        st, _, _ = d.request("GET", "/_denvrd/nonesuch",
                             headers={"X-Request-Id": "journal-test-tcp-1"})
        assert st == 404
        acc = journal.wait(REQUEST_ID="journal-test-tcp-1")[0]
        assert one(acc, "STATUS") == "404" and one(acc, "PATH") == "/_denvrd/nonesuch"
        assert one(acc, "PEER_UID") == expected_uid and "UPSTREAM_STATUS" not in acc

        # Token refresh, with its own MESSAGE_ID.
        refresh = journal.wait(MESSAGE=r"token refreshed", timeout=10)[0]
        refresh_id = one(refresh, "MESSAGE_ID")
        assert HEX128.match(refresh_id) and refresh_id != login_id

        # Reload events (accepted: info; rejected: error), with one MESSAGE_ID.
        d.reload()
        done = journal.wait(MESSAGE=r"configuration reloaded")[0]
        reload_id = one(done, "MESSAGE_ID")
        assert HEX128.match(reload_id) and reload_id not in (login_id, refresh_id)
        assert one(journal.where(MESSAGE=r"reloading the configuration")[0],
                   "MESSAGE_ID") == reload_id
        H.write_private(d.config_path, d.config_path.read_text() + "\n[daemon\n")
        d.reload()
        rejected = journal.wait(MESSAGE=r"new configuration rejected")[0]
        assert one(rejected, "MESSAGE_ID") == reload_id
        assert one(rejected, "PRIORITY") == "3"

        assert d.stop() == 0
        entries = journal.all()
        assert len(entries) >= 10
        for e in entries:
            assert one(e, "SYSLOG_IDENTIFIER") == "denvrd", e
            assert re.match(r"^[0-7]$", one(e, "PRIORITY")), e
            one(e, "MESSAGE")
            # A code location, if any, must be the caller's, not the logging helper's.
            assert "log_to_journal" not in e.get("CODE_FUNC", []), e
        # Everything went to the journal, nothing to stderr.
        assert "listening on" not in d.log_text(), d.log_text()[:2000]
        # And no secret reached it.
        blob = json.dumps(entries)
        for sec in secrets_of(mock):
            assert sec not in blob, "a secret reached the journal"
    finally:
        journal.close()
