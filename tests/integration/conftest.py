# SPDX-License-Identifier: MIT
"""pytest fixtures for denvrd's integration tests.

Fixtures
  api_dir         tests/denvr-api, Denvr's API reference; the test FAILS (never skips) when it
                  is missing.
  harness_logdir  the one directory holding every denvrd and mock log of the session
                  (test_zz_log_hygiene.py searches it for secrets).
  mock_server     session-scoped HTTPS mock upstream (tests/mock_denvr.py).
  mock            the same mock, reset before the test (records, knobs, stats, config).
  start_mock      factory for extra mocks: start_mock(tls=True, untrusted=False,
                  host="127.0.0.1", args=()) -> MockProcess, stopped after the test.
  start_denvrd    factory: start_denvrd(config_text_extra="", env=None, args=(),
                  credentials="apikey"|"password"|None|{...}, ...) -> Denvrd (ready).
  denvrd          start_denvrd() with the defaults (API-key mode against `mock`).
  sock_dir        a per-test directory with a short path for unix sockets (sun_path holds
                  107 bytes, and pytest's tmp dir under a deep checkout can be longer).

On a failing test the logs of its daemons and mocks are attached to the report.  After each
test every daemon still running gets SIGTERM and must exit 0, and no daemon log may contain
a sanitizer or valgrind report; either is reported as an error of that test.
"""

import hashlib
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import denvrd_harness as H  # noqa: E402


# ---------------------------------------------------------------------------------------------
# session-wide places
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def harness_root(tmp_path_factory):
    return tmp_path_factory.getbasetemp()


@pytest.fixture(scope="session")
def harness_sock_root():
    """Unix sockets live under /tmp, not under the tmp dir, whose path may be too long."""
    base = tempfile.gettempdir()
    d = tempfile.mkdtemp(prefix="denvrd-s", dir=base if len(base) <= 40 else "/tmp")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def sock_dir(harness_sock_root):
    return Path(tempfile.mkdtemp(prefix="", dir=harness_sock_root))


@pytest.fixture(scope="session")
def harness_logdir(harness_root):
    d = harness_root / "logs"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture(scope="session")
def harness_token_log(harness_root):
    """Every token every mock issued and every secret configured (NOT inside the log dir)."""
    d = harness_root / "secrets"
    d.mkdir(exist_ok=True)
    return d / "tokens.txt"


@pytest.fixture(scope="session")
def harness_certdir(harness_root):
    d = harness_root / "certs"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture(scope="session")
def api_dir():
    if not (H.API_DIR / "operations.tsv").is_file():
        pytest.fail("Denvr's API reference %s is missing from the tree" % (H.API_DIR / "operations.tsv"))
    return H.API_DIR


def _slug(nodeid):
    """A file name for a test's logs.  A long name is cut, and then told apart by a hash of the
    whole id: two tests must never share a log (denvrd's is appended to, and its "listening on"
    lines would name an earlier daemon's ports)."""
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1])
    if len(s) > 80:
        s = s[:71] + "-" + hashlib.sha256(nodeid.encode()).hexdigest()[:8]
    return s


# ---------------------------------------------------------------------------------------------
# the mock upstream
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def mock_server(harness_logdir, harness_certdir, harness_token_log):
    m = H.MockProcess(harness_logdir / "mock-session.log", certdir=harness_certdir, tls=True,
                      token_log=harness_token_log)
    yield m
    m.stop()


@pytest.fixture
def mock(mock_server, request):
    """The session mock, reset (records, knobs, stats, config) before this test."""
    if not mock_server.running():
        pytest.fail("the session mock upstream died; see %s" % mock_server.log_path)
    mock_server.reset()
    request.node._harness_mock_offset = mock_server.log_size()
    request.node._harness_session_mock = mock_server
    return mock_server


@pytest.fixture
def start_mock(request, harness_logdir, harness_certdir, harness_token_log):
    started = []
    request.node._harness_mocks = started

    def _start(tls=True, untrusted=False, host="127.0.0.1", args=(), **kw):
        n = len(started) + 1
        m = H.MockProcess(harness_logdir / ("mock-%s-%d.log" % (_slug(request.node.nodeid), n)),
                          certdir=harness_certdir, tls=tls, untrusted=untrusted, host=host,
                          args=args, token_log=harness_token_log, **kw)
        started.append(m)
        return m

    yield _start
    for m in started:
        m.stop()


# ---------------------------------------------------------------------------------------------
# denvrd
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def start_denvrd(request, mock, tmp_path, harness_logdir, sock_dir):
    """Factory: start_denvrd(config_text_extra="", env=None, args=(), credentials="apikey",
    *, upstream=None, listen="127.0.0.1:0", socket=True, ca_file=True, log_level="debug",
    defaults=None, daemon=None, config_text=None, wait=True, timeout=15, wrapper=(),
    journal_stream=False) -> Denvrd

    credentials: "apikey" (the mock's key), "password" (the mock's user and password), None
      (no [credentials] section) or a dict written as the [credentials] section.
    upstream: the MockProcess or URL for [defaults] server (default: the session mock).
    listen: "HOST:PORT" or a list of them, None to leave the key out.
    socket: True (a socket in the test's tmp dir), a path, or None/False (key left out).
    ca_file: True (the test CA), a path, or None (key left out).
    defaults / daemon: dicts merged into [defaults] / [daemon]; a None value drops a key.
    config_text_extra: raw TOML appended (for other sections such as [cache]).
    config_text: the whole file, verbatim (everything above ignored).
    env: extra environment variables (None value = unset); args: extra CLI arguments.
    wait: wait for /_denvrd/healthz (else the caller uses .wait_ready() / .wait_exit()).
    wrapper: a command prefix run before DENVRD_WRAPPER and denvrd (e.g.
      ["systemd-socket-activate", "-l", ...]); it must exec denvrd in its own process.
    journal_stream: set $JOURNAL_STREAM to the dev:ino of denvrd's stderr (journal output).
    binary: another build of denvrd (H.denvrd_test_hooks_binary(): the test-hooks build).
    """
    started = []
    request.node._harness_daemons = started
    default_binary = H.denvrd_binary()

    def _start(config_text_extra="", env=None, args=(), credentials="apikey", *,
               upstream=None, listen="127.0.0.1:0", socket=True, ca_file=True,
               log_level="debug", defaults=None, daemon=None, config_text=None, wait=True,
               timeout=15, wrapper=(), journal_stream=False, binary=None):
        exe = binary or default_binary
        if not exe.exists():
            pytest.fail("denvrd binary %s not found: build it (meson compile -C build) or set "
                        "DENVRD_BIN / DENVRD_TEST_HOOKS_BIN" % exe)
        n = len(started) + 1
        work = tmp_path / ("denvrd-%d" % n)
        work.mkdir()
        home = work / "home"
        home.mkdir()
        up = upstream if upstream is not None else mock
        server = up if isinstance(up, str) else up.url
        sock_path = None
        if socket is True:
            sock_path = str(sock_dir / ("denvrd-%d.sock" % n))
        elif socket:
            sock_path = str(socket)
        ca = None
        if ca_file is True:
            ca = getattr(up, "ca_file", None) or mock.ca_file
        elif ca_file:
            ca = str(ca_file)
        if config_text is None:
            creds = None
            if credentials == "apikey":
                creds = {"apikey": getattr(up, "apikey", H.DEFAULT_APIKEY)}
            elif credentials == "password":
                creds = {"username": getattr(up, "user", H.DEFAULT_USER),
                         "password": getattr(up, "password", H.DEFAULT_PASSWORD)}
            elif isinstance(credentials, dict):
                creds = credentials
            elif credentials is not None:
                raise ValueError("credentials must be 'apikey', 'password', None or a dict")
            d_sec = {"server": server}
            d_sec.update(defaults or {})
            dm = {"listen": listen, "socket": sock_path, "ca_file": ca, "log_level": log_level}
            dm.update(daemon or {})
            config_text = H.render_toml({"defaults": d_sec, "credentials": creds,
                                         "daemon": dm}, config_text_extra)
        cfg = H.write_private(work / "denvr.toml", config_text)
        log = harness_logdir / ("denvrd-%s-%d.log" % (_slug(request.node.nodeid), n))
        d = H.Denvrd(exe, cfg, log, H.denvrd_env(home, env), args,
                     list(wrapper) + H.denvrd_wrapper(), expected_socket=sock_path,
                     journal_stream=journal_stream)
        d.workdir = work
        started.append(d)
        if wait:
            try:
                d.wait_ready(timeout)
            except RuntimeError:
                d._stop()
                d.stopped_by_test = True   # reported here; not again at teardown
                raise
        return d

    yield _start

    problems = []
    for d in started:
        if not d.stopped_by_test:
            rc = d._stop()
            if rc != 0:
                problems.append("denvrd pid %d (%s) exited with %s on SIGTERM" % (
                    d.pid, d.log_path.name, rc))
        for rep in d.sanitizer_reports():
            problems.append("denvrd pid %d (%s): %s" % (d.pid, d.log_path.name, rep))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def denvrd(start_denvrd):
    """A running denvrd in API-key mode against the (reset) session mock."""
    return start_denvrd()


# ---------------------------------------------------------------------------------------------
# logs of failed tests
# ---------------------------------------------------------------------------------------------
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    for d in getattr(item, "_harness_daemons", []):
        rep.sections.append(("denvrd pid %d log (%s)" % (d.pid, d.log_path),
                             H._tail(d.log_text())))
    m = getattr(item, "_harness_session_mock", None)
    if m is not None:
        rep.sections.append(("mock upstream log during this test (%s)" % m.log_path,
                             H._tail(m.log_text(getattr(item, "_harness_mock_offset", 0)))))
    for m in getattr(item, "_harness_mocks", []):
        rep.sections.append(("extra mock log (%s)" % m.log_path, H._tail(m.log_text())))


def pytest_report_header(config):
    return "denvrd binary: %s; API reference: %s" % (H.denvrd_binary(), H.API_DIR)
