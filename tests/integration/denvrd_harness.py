# SPDX-License-Identifier: MIT
"""Helpers for denvrd's integration tests: run the mock Denvr upstream and denvrd, talk to both.

Standard library only.  conftest.py turns these into pytest fixtures; tests may also import
this module directly (e.g. `from denvrd_harness import wait_until`).
"""

import base64
import http.client
import json
import os
import re
import selectors
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

INTEGRATION_DIR = Path(__file__).resolve().parent
TESTS_DIR = INTEGRATION_DIR.parent
REPO_ROOT = TESTS_DIR.parent
API_DIR = TESTS_DIR / "denvr-api"      # Denvr's API reference, kept in the tree
MOCK_PATH = TESTS_DIR / "mock_denvr.py"

if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))
import mock_denvr  # noqa: E402  (the defaults and the operation table)

DEFAULT_USER = mock_denvr.DEFAULT_USER
DEFAULT_PASSWORD = mock_denvr.DEFAULT_PASSWORD
DEFAULT_APIKEY = mock_denvr.DEFAULT_APIKEY

# Multiply every timeout (e.g. DENVRD_TEST_TIMEOUT_SCALE=10 under valgrind).
TIMEOUT_SCALE = float(os.environ.get("DENVRD_TEST_TIMEOUT_SCALE", "1") or 1)

_SCRUB_ENV = ("DENVR_CONFIG", "DENVR_APIKEY", "DENVR_USERNAME", "DENVR_PASSWORD",
              "JOURNAL_STREAM", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "LISTEN_FDS",
              "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID",
              "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
              "all_proxy", "NO_PROXY", "no_proxy", "XDG_RUNTIME_DIR", "DENVRD_WRAPPER")

SANITIZER_PATTERNS = [
    re.compile(r"==\d+==ERROR: (Address|Leak|Memory|Thread)Sanitizer"),
    re.compile(r"runtime error: "),            # UBSan
    re.compile(r"==\d+== (Invalid (read|write)|Conditional jump)"),   # valgrind
    re.compile(r"definitely lost: [1-9]"),     # valgrind leak summary
]


def scaled(seconds):
    return seconds * TIMEOUT_SCALE


class GiveUp(Exception):
    """Raised by a wait_until predicate to stop waiting at once (propagates)."""


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Poll predicate() until it returns a truthy value (returned) or the deadline passes
    (AssertionError naming `what`).  Exceptions from predicate count as 'not yet' (the last
    one is mentioned in the failure), except GiveUp, which propagates at once."""
    deadline = time.monotonic() + scaled(timeout)
    last_exc = None
    while True:
        try:
            v = predicate()
            if v:
                return v
        except GiveUp:
            raise
        except Exception as e:   # noqa: BLE001 - any failure means "not yet"
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s%s" % (
                scaled(timeout), what, " (last error: %r)" % (last_exc,) if last_exc else ""))
        time.sleep(interval)


def denvrd_binary():
    p = os.environ.get("DENVRD_BIN")
    if p:
        return Path(p)
    return REPO_ROOT / "build" / "daemon" / "denvrd"


def denvrd_test_hooks_binary():
    """denvrd with the test-only endpoints of daemon/handlers/test_hooks.c (never installed)."""
    p = os.environ.get("DENVRD_TEST_HOOKS_BIN")
    if p:
        return Path(p)
    return REPO_ROOT / "build" / "daemon" / "denvrd-test-hooks"


# ---------------------------------------------------------------------------------------------
# TOML rendering (only what denvr.toml needs: strings, ints, bools, arrays of strings)
# ---------------------------------------------------------------------------------------------
def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    s = str(v)
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def render_toml(sections, extra_text=""):
    """sections: {"defaults": {...}, ...}; keys with value None are left out."""
    lines = []
    for name, keys in sections.items():
        if keys is None:
            continue
        lines.append("[%s]" % name)
        for k, v in keys.items():
            if v is not None:
                lines.append("%s = %s" % (k, toml_value(v)))
        lines.append("")
    text = "\n".join(lines)
    if extra_text:
        text += "\n" + extra_text.strip("\n") + "\n"
    return text


def write_private(path, text):
    path = Path(path)
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(str(path), 0o600)
    return path


# ---------------------------------------------------------------------------------------------
# HTTP clients
# ---------------------------------------------------------------------------------------------
class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix stream socket (Host: localhost)."""

    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = str(path)

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def _encode_body(body, headers):
    headers = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    elif isinstance(body, str):
        body = body.encode()
    return body, headers


def http_request(conn, method, path, body=None, headers=None):
    """One request on an http.client connection -> (status, headers, body bytes)."""
    body, headers = _encode_body(body, headers)
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, resp.headers, data


def _read_pipe_line(pipe, timeout):
    """Read one line from a subprocess pipe with a deadline (None if none came)."""
    sel = selectors.DefaultSelector()
    sel.register(pipe, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                return None
            ch = os.read(pipe.fileno(), 1)
            if not ch:
                return None
            buf += ch
    finally:
        sel.close()
    return buf.decode(errors="replace").strip()


def _tail(text, lines=200):
    parts = text.splitlines()
    if len(parts) > lines:
        return "... (%d lines cut)\n" % (len(parts) - lines) + "\n".join(parts[-lines:])
    return text


# ---------------------------------------------------------------------------------------------
# The mock upstream
# ---------------------------------------------------------------------------------------------
class MockProcess:
    """tests/mock_denvr.py in a subprocess, plus a client for its control API."""

    def __init__(self, log_path, certdir=None, tls=True, untrusted=False, host="127.0.0.1",
                 args=(), token_log=None, user=DEFAULT_USER, password=DEFAULT_PASSWORD,
                 apikey=DEFAULT_APIKEY):
        self.log_path = Path(log_path)
        self.tls = tls
        self.untrusted = untrusted
        self.host = host
        self.user, self.password, self.apikey = user, password, apikey
        self.certdir = Path(certdir) if certdir else None
        cmd = [sys.executable, str(MOCK_PATH), "--host", host, "--port", "0",
               "--user", user, "--password", password, "--apikey", apikey]
        if tls:
            cmd += ["--tls", "--certdir", str(self.certdir)]
            if untrusted:
                cmd.append("--untrusted")
        if token_log:
            cmd += ["--token-log", str(token_log)]
        cmd += list(args)
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._logf,
                                     stdin=subprocess.DEVNULL)
        line = _read_pipe_line(self.proc.stdout, scaled(30))
        if not line or not line.startswith("PORT "):
            self.stop()
            raise RuntimeError("mock_denvr did not start (got %r); log:\n%s" % (
                line, _tail(self.log_text())))
        self.port = int(line.split()[1])
        self.pid = self.proc.pid

    # -- addresses -----------------------------------------------------------------------
    @property
    def url(self):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d" % ("https" if self.tls else "http", h, self.port)

    @property
    def ca_file(self):
        return str(self.certdir / "ca.pem") if self.certdir else None

    def ssl_context(self, verify=True):
        """A (cached) client context: trusting the test CA, or not verifying at all."""
        verify = bool(verify and not self.untrusted)
        cache = self.__dict__.setdefault("_ctx_cache", {})
        if verify not in cache:
            if verify:
                ctx = ssl.create_default_context(cafile=self.ca_file)
            else:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            cache[verify] = ctx
        return cache[verify]

    def connection(self, timeout=30, verify=True):
        host = self.host.strip("[]")
        if self.tls:
            return http.client.HTTPSConnection(host, self.port, timeout=timeout,
                                               context=self.ssl_context(verify))
        return http.client.HTTPConnection(host, self.port, timeout=timeout)

    # -- lifecycle -----------------------------------------------------------------------
    def log_size(self):
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_text(self, since=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def running(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._logf.close()
        return self.proc.returncode

    # -- direct API calls (bypassing denvrd) ---------------------------------------------
    def call(self, method, path, body=None, headers=None, auth=None, timeout=30):
        """auth: None, "apikey", "bearer:<token>" or a raw Authorization value."""
        headers = dict(headers or {})
        if auth == "apikey":
            headers["Authorization"] = "ApiKey " + self.apikey
        elif auth and auth.startswith("bearer:"):
            headers["Authorization"] = "Bearer " + auth[len("bearer:"):]
        elif auth:
            headers["Authorization"] = auth
        conn = self.connection(timeout=timeout)
        try:
            return http_request(conn, method, path, body, headers)
        finally:
            conn.close()

    def call_json(self, method, path, body=None, headers=None, auth=None):
        st, h, data = self.call(method, path, body, headers, auth)
        return st, (json.loads(data) if data else None)

    def login(self, user=None, password=None):
        """-> the AuthenticateResultModel (the envelope's result); asserts success."""
        st, env = self.call_json("POST", "/api/TokenAuth/Authenticate", {
            "userNameOrEmailAddress": user or self.user,
            "password": password if password is not None else self.password})
        assert st == 200 and env["success"], (st, env and env.get("error"))
        return env["result"]

    # -- control API ---------------------------------------------------------------------
    def control(self, method, name, body=None):
        conn = self.connection(timeout=scaled(30), verify=False)
        try:
            st, _, data = http_request(conn, method, "/_mock/" + name,
                                       body if body is not None else
                                       (None if method == "GET" else {}))
        finally:
            conn.close()
        if st != 200:
            raise RuntimeError("mock control %s %s -> %d %s" % (method, name, st, data[:300]))
        return json.loads(data)

    def requests(self, since=0, path=None):
        q = "requests?since=%d" % since
        if path:
            q += "&path=" + path
        return self.control("GET", q)

    def api_requests(self, since=0):
        """Recorded requests whose path starts with /api/."""
        return [r for r in self.requests(since) if r["path"].startswith("/api/")]

    @staticmethod
    def header(record, name):
        """First value of header `name` in a recorded request (case-insensitive), or None."""
        for k, v in record["headers"]:
            if k.lower() == name.lower():
                return v
        return None

    @staticmethod
    def body(record):
        return base64.b64decode(record["body"])

    def reset(self):
        return self.control("POST", "reset")

    def acted(self, since=0):
        """What each /api/v1 operation acted on, as upstream bound it: [{seq, method, op, id,
        namespace, cluster, status, bound, request}] (see mock_denvr.py, GET /_mock/acted)."""
        return self.control("GET", "acted?since=%d" % since)

    def clear_acted(self):
        return self.control("POST", "clear_acted")

    def stats(self):
        return self.control("GET", "stats")

    def tokens(self):
        return self.control("GET", "tokens")

    def expire_tokens(self):
        return self.control("POST", "expire_tokens")

    def advance_clock(self, seconds):
        """Every token issued so far becomes `seconds` older (a client's suspend, upstream's view)."""
        return self.control("POST", "advance_clock", {"seconds": seconds})

    def config(self, **kw):
        return self.control("POST", "config", kw) if kw else self.control("GET", "config")

    def _knob(self, name, count, path, method, exclude_auth, **spec):
        spec = {k: v for k, v in spec.items() if v is not None}
        spec.update({"count": count})
        if path:
            spec["path"] = path
        if method:
            spec["method"] = method
        if exclude_auth:
            spec["exclude_auth"] = True
        return self.control("POST", name, spec)

    def fail(self, count=1, status=503, retry_after=None, body=None, headers=None,
             content_type=None, size=None, body_b64=None, path=None, method=None,
             exclude_auth=False, query=None):
        """query: only for requests whose raw query contains this string."""
        return self._knob("fail", count, path, method, exclude_auth, status=status,
                          retry_after=retry_after, body=body, headers=headers,
                          content_type=content_type, size=size, body_b64=body_b64,
                          query=query)

    respond = fail

    def delay(self, seconds, count=1, phase=None, path=None, method=None, exclude_auth=False,
              query=None):
        return self._knob("delay", count, path, method, exclude_auth, seconds=seconds,
                          phase=phase, query=query)

    def drop(self, count=1, mode="before_response", path=None, method=None,
             exclude_auth=False):
        return self._knob("drop", count, path, method, exclude_auth, mode=mode)

    def garbage(self, count=1, path=None, method=None, exclude_auth=False):
        return self._knob("garbage", count, path, method, exclude_auth)

    def reject_logins(self, mode="password"):
        return self.control("POST", "reject_logins", {"mode": mode})

    def close_idle(self, rst=False):
        """Close every kept-alive connection that waits for its next request."""
        return self.control("POST", "close_idle", {"rst": rst})["closed"]

    def chaos(self, enabled=True, seed=1, rate=None):
        spec = {"enabled": enabled, "seed": seed}
        if rate is not None:
            spec["rate"] = rate
        return self.control("POST", "chaos", spec)

    def wait_for(self, predicate, timeout=10.0, what="mock condition"):
        """wait_until(predicate(self.stats())) - e.g. lambda s: s["refreshes"] >= 1."""
        return wait_until(lambda: predicate(self.stats()), timeout, what=what)


# ---------------------------------------------------------------------------------------------
# denvrd
# ---------------------------------------------------------------------------------------------
_RE_TCP4 = re.compile(r"listening on tcp (\d+\.\d+\.\d+\.\d+):(\d+)")
_RE_TCP6 = re.compile(r"listening on tcp \[([0-9A-Fa-f:.]+)\]:(\d+)")
_RE_UNIX = re.compile(r"listening on unix (\S+)")


class Denvrd:
    """One denvrd process started with a temporary config."""

    def __init__(self, binary, config_path, log_path, env, args=(), wrapper=(),
                 expected_socket=None, journal_stream=False):
        """wrapper: a command prefix (e.g. systemd-socket-activate ..., or DENVRD_WRAPPER);
        journal_stream: set $JOURNAL_STREAM to the dev:ino of the log file denvrd gets as
        stderr, as journald does for the services it collects."""
        self.binary = Path(binary)
        self.config_path = Path(config_path)
        self.log_path = Path(log_path)
        self.expected_socket = expected_socket
        self.stopped_by_test = False
        self.returncode = None
        self.tcp4, self.tcp6, self.unix = [], [], []
        self._logf = open(self.log_path, "ab")
        if journal_stream:
            st = os.fstat(self._logf.fileno())
            env = dict(env, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
        self.cmd = list(wrapper) + [str(self.binary), "--config", str(self.config_path)] + \
            list(args)
        self.proc = subprocess.Popen(self.cmd, stdout=self._logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        self.pid = self.proc.pid

    # -- log -----------------------------------------------------------------------------
    def log_text(self):
        try:
            return self.log_path.read_bytes().decode(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, pattern, timeout=10.0):
        """Wait until the log matches regex `pattern`; returns the match."""
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.log_text()), timeout,
                          what="denvrd log to match %r" % pattern)

    def parse_listeners(self):
        text = self.log_text()
        self.tcp4 = [(h, int(p)) for h, p in _RE_TCP4.findall(text) if int(p) != 0]
        self.tcp6 = [(h, int(p)) for h, p in _RE_TCP6.findall(text) if int(p) != 0]
        self.unix = _RE_UNIX.findall(text)
        return self.tcp4 or self.tcp6 or self.unix

    # -- addresses -----------------------------------------------------------------------
    @property
    def port(self):
        """The first IPv4 TCP port (else the first IPv6 one)."""
        if self.tcp4:
            return self.tcp4[0][1]
        return self.tcp6[0][1] if self.tcp6 else None

    @property
    def port6(self):
        return self.tcp6[0][1] if self.tcp6 else None

    @property
    def host(self):
        return self.tcp4[0][0] if self.tcp4 else "::1"

    @property
    def url(self):
        if self.tcp4:
            return "http://%s:%d" % self.tcp4[0]
        if self.tcp6:
            return "http://[%s]:%d" % self.tcp6[0]
        return None

    @property
    def socket_path(self):
        return self.unix[0] if self.unix else self.expected_socket

    # -- lifecycle -----------------------------------------------------------------------
    def running(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout=15.0):
        """Wait for a 'listening on' line, then for GET /_denvrd/healthz == 200."""
        def ready():
            if self.proc.poll() is not None:
                raise _Exited()
            if not self.parse_listeners():
                return False
            via = "tcp" if self.tcp4 else ("tcp6" if self.tcp6 else "unix")
            st, _, _ = self.request("GET", "/_denvrd/healthz", via=via, timeout=2)
            return st == 200
        try:
            wait_until(ready, timeout, what="denvrd to answer /_denvrd/healthz")
        except _Exited:
            raise RuntimeError("denvrd exited with status %s before it was ready:\n%s" % (
                self.proc.returncode, _tail(self.log_text()))) from None
        except AssertionError as e:
            raise RuntimeError("%s\ndenvrd log:\n%s" % (e, _tail(self.log_text()))) from None
        self.parse_listeners()
        return self

    def wait_exit(self, timeout=15.0):
        """For a daemon expected to exit by itself: its exit status (killed if it doesn't)."""
        try:
            self.returncode = self.proc.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.stopped_by_test = True
            raise AssertionError("denvrd did not exit within %ss" % timeout)
        self.stopped_by_test = True
        self._logf.close()
        return self.returncode

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout=10.0, sig=signal.SIGTERM):
        """Send SIGTERM (or sig), wait, return the exit code (negative: killed by signal)."""
        self.stopped_by_test = True
        return self._stop(timeout, sig)

    def _stop(self, timeout=10.0, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=scaled(timeout))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.returncode = "hung (SIGKILLed after %ss)" % timeout
                self._logf.close()
                return self.returncode
        self.returncode = self.proc.returncode
        self._logf.close()
        return self.returncode

    def kill(self):
        self.stopped_by_test = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._logf.close()
        return self.proc.returncode

    # -- process metrics -----------------------------------------------------------------
    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    # -- HTTP ----------------------------------------------------------------------------
    def connection(self, via="tcp", timeout=30):
        """A fresh http.client connection to denvrd (caller closes it)."""
        if via == "tcp":
            if not self.tcp4:
                raise AssertionError("denvrd has no IPv4 TCP listener (log: %s)" % self.log_path)
            return http.client.HTTPConnection(self.tcp4[0][0], self.tcp4[0][1], timeout=timeout)
        if via == "tcp6":
            if not self.tcp6:
                raise AssertionError("denvrd has no IPv6 TCP listener (log: %s)" % self.log_path)
            return http.client.HTTPConnection(self.tcp6[0][0], self.tcp6[0][1], timeout=timeout)
        if via == "unix":
            if not self.socket_path:
                raise AssertionError("denvrd has no unix socket (log: %s)" % self.log_path)
            return UnixHTTPConnection(self.socket_path, timeout=timeout)
        raise ValueError("via must be tcp, tcp6 or unix")

    def request(self, method, path, body=None, headers=None, via="tcp", timeout=30):
        """-> (status, headers (http.client.HTTPMessage, case-insensitive), body bytes).
        body may be bytes, str, or a dict/list (sent as JSON)."""
        conn = self.connection(via, timeout)
        try:
            return http_request(conn, method, path, body, headers)
        finally:
            conn.close()

    def request_json(self, method, path, body=None, headers=None, via="tcp", timeout=30):
        st, h, data = self.request(method, path, body, headers, via, timeout)
        try:
            return st, h, json.loads(data) if data else None
        except ValueError:
            raise AssertionError("denvrd answered %d with non-JSON body %r" % (st, data[:300]))

    def connect_raw(self, via="tcp", timeout=10):
        """A plain connected socket to one of denvrd's listeners (for raw HTTP)."""
        if via == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            addr = self.socket_path
        elif via == "tcp6":
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            addr = self.tcp6[0]
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            addr = self.tcp4[0]
        s.settimeout(scaled(timeout))
        try:
            s.connect(addr)
        except OSError:
            s.close()
            raise
        return s

    def raw(self, data, via="tcp", timeout=10):
        """Send raw bytes, return every byte received until the peer closes or `timeout`
        passes without data."""
        s = self.connect_raw(via, timeout)
        try:
            s.sendall(data)
            out = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except (socket.timeout, ConnectionResetError):
                    break
                if not chunk:
                    break
                out += chunk
            return out
        finally:
            s.close()

    def sanitizer_reports(self):
        text = self.log_text()
        return [m.group(0) for rx in SANITIZER_PATTERNS for m in [rx.search(text)] if m]


class _Exited(GiveUp):
    pass


def denvrd_env(home, extra=None):
    """The environment denvrd runs with: the test's, minus anything that would change its
    configuration, credentials, logging target or proxies; HOME is a private directory."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB_ENV}
    env["HOME"] = str(home)
    env.pop("XDG_CONFIG_HOME", None)
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def denvrd_wrapper():
    """DENVRD_WRAPPER, e.g. "valgrind --leak-check=full --error-exitcode=99", prefixes denvrd."""
    w = os.environ.get("DENVRD_WRAPPER", "")
    return shlex.split(w) if w.strip() else []
