# SPDX-License-Identifier: MIT
"""The login holder (issue 4) against the mock upstream with short token lifetimes.

Covers: background refresh and re-login without making requests wait, single flight after
a mass expiry, 401 recovery with a replay, failure reasons and backoff (wrong password,
two-factor, password reset, upstream down or failing), refresh by POST falling back to GET,
logout on shutdown (bounded), the SDK login shim, reload with new credentials, and the
/_denvrd/status view without secrets.

Timing: the mock stamps every request with t_start/t_end (time.monotonic(), i.e.
CLOCK_MONOTONIC, the same clock as this process's time.monotonic()), so a client-side
duration can be compared with the upstream's own processing time of that very request,
found by the X-Request-Id denvrd forwards.
"""

import hashlib
import json
import re
import selectors
import socket
import threading
import time
import uuid

import denvrd_harness as H
from denvrd_harness import scaled, wait_until

API = "/api/v1/clusters/GetAll"
SERVERS = "/api/v1/servers/virtual/GetServers?Cluster=Msc1"
ECHO = "/api/v1/mock/Echo"
AUTH = "/api/TokenAuth/"
USER = H.DEFAULT_USER
# What the SDKs are given: denvrd never sends these anywhere.
DUMMY_USER, DUMMY_PASSWORD, DUMMY_KEY = "local", "local", "local-dummy-key"


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def call(d, method, path, body=None, headers=None, rid=None, timeout=30):
    """-> (status, parsed JSON or None, raw bytes)."""
    headers = dict(headers or {})
    if rid:
        headers["X-Request-Id"] = rid
    st, _, data = d.request(method, path, body, headers, timeout=scaled(timeout))
    try:
        js = json.loads(data) if data else None
    except ValueError:
        js = None
    return st, js, data


def readyz(d):
    st, js, _ = call(d, "GET", "/_denvrd/readyz")
    return st, js


def status_auth(d):
    st, js, _ = call(d, "GET", "/_denvrd/status")
    assert st == 200, st
    return js["auth"]


def wait_ready(d, timeout=10):
    wait_until(lambda: readyz(d)[0] == 200, timeout, what="/_denvrd/readyz == 200")


def wait_not_ready(d, needle, timeout=10):
    """Waits for readyz 503 whose reason contains needle; returns the reason."""
    def check():
        st, js = readyz(d)
        return st == 503 and needle in (js or {}).get("reason", "") and js["reason"]
    return wait_until(check, timeout, what="/_denvrd/readyz 503 naming %r" % needle)


def records(mock, path_prefix):
    return [r for r in mock.requests() if r["path"].startswith(path_prefix)]


def auth_attempts(mock):
    s = mock.stats()
    return s["login_attempts"] + s["refresh_attempts"]


def assert_503_envelope(d, needle, path=API, status=503):
    """A transient login failure is a 503 with Retry-After; one no retry can cure is a 424,
    which retrying clients (go-retryablehttp, the Python SDK) do not retry."""
    st, js, raw = call(d, "GET", path)
    assert st == status, (st, raw[:300])
    assert js and js.get("success") is False and js.get("__abp") is True, raw[:300]
    msg = js["error"]["message"]
    assert msg.startswith("not logged in: ") and needle in msg, msg
    return msg


def rewrite_credentials(d, creds):
    """Replaces the [credentials] section of d's config file."""
    text = d.config_path.read_text()
    section = H.render_toml({"credentials": creds})
    new, n = re.subn(r"(?ms)^\[credentials\]\n.*?(?=^\[|\Z)", section + "\n", text)
    assert n == 1, text
    H.write_private(d.config_path, new)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------------------------
# steady state: refresh and re-login in the background, nobody waits
# ---------------------------------------------------------------------------------------------
def _streams(d, path, n_streams, seconds, pause):
    """n_streams concurrent clients, each on its own kept-alive connection (as an SDK's
    session), sending `path` again `pause` s after its previous answer, for `seconds`.
    One thread and a selector, so no client thread delays another one's timestamps.
    -> [(request id, t0 just before sending, t1 when the answer is complete, status, body)]."""
    host, port = d.tcp4[0]
    sel = selectors.DefaultSelector()
    out = []
    end = time.monotonic() + seconds
    seq = [0]
    timers = []   # (when, stream)

    def send(n, sock=None):
        if sock is None:
            sock = socket.create_connection((host, port), timeout=scaled(10))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rid = "steady-%d-%d-%s" % (n, seq[0], uuid.uuid4().hex[:8])
        seq[0] += 1
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nX-Request-Id: %s\r\n\r\n" % (
            path, host, port, rid)).encode()
        sock.setblocking(True)
        t0 = time.monotonic()
        sock.sendall(req)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, {"n": n, "rid": rid, "t0": t0, "buf": b""})

    idle = {}
    for n in range(n_streams):
        send(n)
    try:
        while sel.get_map() or timers:
            now = time.monotonic()
            for when, n in [t for t in timers if t[0] <= now]:
                timers.remove((when, n))
                sock = idle.pop(n)
                if now < end:
                    send(n, sock)
                else:
                    sock.close()
            wait = min([t[0] for t in timers], default=now + 1) - now
            if not sel.get_map():
                time.sleep(max(0.0, wait))
                continue
            for key, _ in sel.select(timeout=max(0.0, min(wait, 1.0))):
                sock, st = key.fileobj, key.data
                try:
                    chunk = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                st["buf"] += chunk
                head, sep, body = st["buf"].partition(b"\r\n\r\n")
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if chunk and not (sep and m and len(body) >= int(m.group(1))):
                    continue
                t1 = time.monotonic()
                sel.unregister(sock)
                sm = re.match(rb"HTTP/1\.[01] (\d{3})", head)
                out.append((st["rid"], st["t0"], t1, int(sm.group(1)) if sm else None, body))
                if not chunk or re.search(rb"(?im)^connection:\s*close", head):
                    sock.close()
                    sock = None   # a new connection for the next request
                idle[st["n"]] = sock
                timers.append((t1 + pause, st["n"]))
            if time.monotonic() > end + scaled(30):
                raise AssertionError("requests still unanswered 30 s after the end")
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        for sock in idle.values():
            if sock:
                sock.close()
        sel.close()
    return out


_RE_REQ_LOG = re.compile(r"request: (\S+) .* ms=([0-9.]+) ")


def _steady_window(d, mock):
    """10 s of traffic; asserts everything but the latency bound.
    -> (worst extra latency in s, its request id, summary line)."""
    since = mock.requests()[-1]["seq"]
    before = mock.stats()
    results = _streams(d, SERVERS, n_streams=4, seconds=10.0, pause=0.04)
    after = mock.stats()

    assert len(results) >= 300, "only %d requests in 10 s" % len(results)
    bad = [(rid, st, body[:200]) for rid, _, _, st, body in results
           if st != 200 or b'"success":true' not in body]
    assert not bad, "%d of %d requests failed: %s" % (len(bad), len(results), bad[:5])

    # Upstream renewed in the background: refreshes while the refresh token lived, and
    # fresh logins when it ran out (5 s), all without a single 401.
    refreshes = after["refreshes"] - before["refreshes"]
    logins = after["logins_ok"] - before["logins_ok"]
    assert refreshes >= 3 and logins >= 1, (refreshes, logins)
    assert after["unauthorized"] == before["unauthorized"], "a request met an expired token"
    assert after["logins_failed"] == before["logins_failed"]
    assert after["refreshes_failed"] == before["refreshes_failed"]

    recs = mock.requests(since)
    # Each successful login or refresh issued one access token, in this order: which
    # exchange made each token, and when it was done.
    done = [r["t_end"] for r in mock.requests() if r["path"].startswith(AUTH)
            and r["status"] == 200 and "LogOut" not in r["path"]]
    issued = dict(zip(mock.tokens()["access"][-len(done):], done))
    up = {}
    for r in recs:
        if r["path"].startswith("/api/v1/servers/virtual/GetServers"):
            up.setdefault(mock.header(r, "X-Request-Id"), []).append(r)
    # denvrd's own time for each request (from its arrival in denvrd to the answer)
    def logged():
        found = {rid: float(ms) / 1e3 for rid, ms in _RE_REQ_LOG.findall(d.log_text())}
        return all(x[0] in found for x in results) and found
    inside = wait_until(logged, 5, what="denvrd's log line of every request")
    extras, held = [], []
    for rid, t0, t1, _, _ in results:
        rs = up.get(rid, [])
        assert len(rs) == 1, "request %s reached upstream %d times" % (rid, len(rs))
        r = rs[0]
        assert r["t_end"] is not None
        # same clock: the upstream call lies within the client's request
        assert t0 <= r["t_start"] <= r["t_end"] <= t1, (rid, t0, r["t_start"], r["t_end"], t1)
        extras.append(((t1 - t0) - (r["t_end"] - r["t_start"]), rid,
                       "%.0f+%.0f+%.0f" % ((r["t_start"] - t0) * 1e3,
                                           (r["t_end"] - r["t_start"]) * 1e3,
                                           (t1 - r["t_end"]) * 1e3)))
        # Held for a token: it carries a token that did not exist yet when the request
        # reached denvrd (its arrival estimated late, so noise cannot make this up).
        arrived = t1 - inside[rid]
        token = (mock.header(r, "Authorization") or "").partition(" ")[2]
        assert token in issued, "request %s sent an unknown token" % rid
        if arrived + 0.005 < issued[token]:
            held.append((rid, "%.0f ms" % ((issued[token] - arrived) * 1e3)))
    assert not held, "requests held until a login or refresh finished: %s" % held[:10]
    extras.sort()
    worst, worst_rid, _ = extras[-1]
    line = ("steady: %d requests, %d refreshes, %d logins; extra latency median %.1f ms, "
            "p99 %.1f ms, max %.1f ms (slowest: %s; ms before+in+after the upstream call)" % (
                len(results), refreshes, logins, extras[len(extras) // 2][0] * 1e3,
                extras[int(len(extras) * 0.99)][0] * 1e3, worst * 1e3,
                ", ".join("%s +%.0f ms (%s)" % (rid, x * 1e3, split)
                          for x, rid, split in extras[-3:])))
    print(line)
    return worst, worst_rid, line


def test_steady_traffic_never_waits_for_a_token(start_denvrd, mock, harness_logdir):
    mock.config(access_lifetime=2, refresh_lifetime=5)
    # Every login and refresh takes 150 ms upstream, as a real one might: a request that
    # waited for one would be >= 150 ms slower than its own upstream call.
    mock.delay(0.15, count=-1, path=AUTH)
    d = start_denvrd(credentials="password")
    assert d.log_path.parent == harness_logdir   # the session-wide log hygiene test sees it
    wait_ready(d)
    # Open the upstream connections first: a TLS handshake is not waiting for a token.
    warm = [threading.Thread(target=call, args=(d, "GET", API)) for _ in range(6)]
    for t in warm:
        t.start()
    for t in warm:
        t.join()

    # Every window must pass every check above (no request held for a token, no failure,
    # no 401).  The 50 ms bound is wall-clock and a busy machine can stall any of the
    # three processes for longer once in a while, so a second window is measured when the
    # first one misses it; a real wait for a token recurs with every renewal and fails both.
    lines = []
    for _ in range(2):
        worst, worst_rid, line = _steady_window(d, mock)
        lines.append(line)
        if worst <= scaled(0.050):
            break
    assert worst <= scaled(0.050), "request %s took %.1f ms longer than its upstream call\n%s" % (
        worst_rid, worst * 1e3, "\n".join(lines))


# ---------------------------------------------------------------------------------------------
# single flight
# ---------------------------------------------------------------------------------------------
def _concurrent_gets(d, n, path):
    """Opens n connections, sends n requests, then reads every answer: -> [(status, body)]."""
    host, port = d.tcp4[0]
    socks = []
    sel = selectors.DefaultSelector()
    try:
        for i in range(n):
            s = socket.create_connection((host, port), timeout=scaled(10))
            socks.append(s)
        for i, s in enumerate(socks):
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n"
                       "X-Request-Id: burst-%d\r\n\r\n" % (path, host, port, i)).encode())
        bufs = {}
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            bufs[s] = b""
        open_ = set(socks)
        deadline = time.monotonic() + scaled(60)
        while open_ and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                s = key.fileobj
                try:
                    chunk = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    bufs[s] += chunk
                else:
                    sel.unregister(s)
                    open_.discard(s)
        assert not open_, "%d of %d requests unanswered after 60 s" % (len(open_), n)
        out = []
        for s in socks:
            raw = bufs[s]
            head, _, body = raw.partition(b"\r\n\r\n")
            m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
            out.append((int(m.group(1)) if m else None, body))
        return out
    finally:
        sel.close()
        for s in socks:
            s.close()


def test_mass_expiry_500_concurrent_requests_one_login(start_denvrd, mock):
    d = start_denvrd(credentials="password")
    wait_ready(d)
    assert call(d, "GET", API)[0] == 200
    before = auth_attempts(mock)
    before_stats = mock.stats()

    mock.expire_tokens()
    answers = _concurrent_gets(d, 500, API)

    statuses = {}
    for st, body in answers:
        statuses[st] = statuses.get(st, 0) + 1
    assert statuses == {200: 500}, statuses
    assert all(b'"success":true' in body for _, body in answers)
    after_stats = mock.stats()
    assert auth_attempts(mock) - before == 1, (before_stats, after_stats)
    assert after_stats["logins_ok"] - before_stats["logins_ok"] == 1
    assert after_stats["unauthorized"] > before_stats["unauthorized"], \
        "the expiry was never noticed: the test proved nothing"


# ---------------------------------------------------------------------------------------------
# failures: clear reasons, polite retries
# ---------------------------------------------------------------------------------------------
def test_wrong_password_424_and_backoff_over_60s(start_denvrd, mock):
    mock.reject_logins(mode="password")
    d = start_denvrd(credentials="password")
    why = wait_not_ready(d, "upstream rejected the password for %s" % USER)
    assert H.DEFAULT_PASSWORD not in why
    assert_503_envelope(d, "upstream rejected the password for %s" % USER, status=424)

    first = wait_until(lambda: records(mock, AUTH + "Authenticate"), 5,
                       what="a login attempt")[0]["t_start"]
    # Keep clients coming for 60 s from the first attempt: each gets the 424 at once (no
    # request starts a login of its own while denvrd backs off).
    slow = []
    n = 0
    while time.monotonic() < first + 60.0:
        t0 = time.monotonic()
        st, js, raw = call(d, "GET", API)
        dt = time.monotonic() - t0
        assert st == 424 and "rejected the password" in js["error"]["message"], raw[:300]
        if dt > 0.5:
            slow.append(dt)
        n += 1
        time.sleep(min(0.25, max(0.0, first + 60.0 - time.monotonic())))

    logins = [r["t_start"] for r in records(mock, AUTH + "Authenticate")
              if r["t_start"] < first + 60.0]
    gaps = [b - a for a, b in zip(logins, logins[1:])]
    print("wrong password: %d login attempts in 60 s, gaps %s s; %d client requests" % (
        len(logins), ", ".join("%.2f" % g for g in gaps), n))
    assert len(logins) <= 6, gaps
    assert len(logins) >= 5, "denvrd stopped retrying: gaps %s" % gaps
    # 1 s doubling, jitter only upward (at most +25%), plus the mock's own time
    for i, g in enumerate(gaps):
        assert 2 ** i * 0.98 <= g <= 2 ** i * 1.25 + 0.5, (i, gaps)
    assert len(slow) <= len(logins), slow   # only a request that met an attempt waits for it

    a = status_auth(d)
    assert a["logged_in"] is False and a["last_login_result"] == "rejected"
    assert a["consecutive_failures"] == len(logins)
    assert a["next_attempt_in"] is not None and a["next_attempt_in"] > 0
    assert "rejected the password for %s" % USER in a["failure"]
    # the reason is logged once, not once per attempt
    assert len(re.findall(r"login failing: upstream rejected the password", d.log_text())) == 1


def test_two_factor_required_is_a_clear_424(start_denvrd, mock):
    mock.reject_logins(mode="two_factor")
    d = start_denvrd(credentials="password")
    wait_not_ready(d, "requires two-factor verification")
    msg = assert_503_envelope(d, "the account %s requires two-factor verification" % USER, status=424)
    assert "API key" in msg
    assert status_auth(d)["last_login_result"] == "two-factor verification required"


def test_password_reset_required_is_a_clear_424(start_denvrd, mock):
    mock.reject_logins(mode="reset_password")
    d = start_denvrd(credentials="password")
    wait_not_ready(d, "requires a password reset")
    assert_503_envelope(d, "upstream requires a password reset for %s" % USER, status=424)
    assert status_auth(d)["last_login_result"] == "password reset required"


def test_login_answered_503_is_not_called_a_wrong_password(start_denvrd, mock):
    mock.fail(count=-1, status=503, path=AUTH + "Authenticate")
    d = start_denvrd(credentials="password")
    why = wait_not_ready(d, "HTTP 503")
    assert "rejected the password" not in why, why
    assert_503_envelope(d, "unavailable")


def test_upstream_unreachable_then_recovers(start_denvrd, start_mock, mock):
    port = free_port()
    d = start_denvrd(credentials="password", upstream="https://127.0.0.1:%d" % port)
    why = wait_not_ready(d, "unreachable")
    assert "127.0.0.1:%d" % port in why, why
    assert_503_envelope(d, "unreachable")
    wait_until(lambda: status_auth(d)["consecutive_failures"] >= 2, 5,
               what="a second failed attempt")
    # the same reason is logged once however often it recurs
    assert len(re.findall(r"login failing: ", d.log_text())) == 1, d.log_text()

    up = start_mock(args=("--port", str(port)))
    assert up.port == port
    wait_ready(d, timeout=10)
    st, js, _ = call(d, "GET", API)
    assert st == 200 and js["result"] == ["Msc1", "Hou1"]
    a = status_auth(d)
    assert a["consecutive_failures"] == 0 and a["failure"] is None and a["logged_in"]
    assert "login recovered" in d.log_text()


# ---------------------------------------------------------------------------------------------
# refresh protocol
# ---------------------------------------------------------------------------------------------
def _refresh_fallback(start_denvrd, mock, code):
    # 1 s tokens: renewed at 0.8 s (a 1 s margin would have made them unusable)
    mock.config(access_lifetime=1, refresh_post_405=True, refresh_post_status=code)
    d = start_denvrd(credentials="password")
    wait_ready(d)
    mock.wait_for(lambda s: s["refreshes"] >= 2, timeout=10, what="two refreshes")
    recs = records(mock, AUTH + "RefreshToken")
    seen = [(r["method"], r["status"]) for r in recs]
    # POST first (as the spec says); on 404/405 GET, and GET from then on
    assert seen[:3] == [("POST", code), ("GET", 200), ("GET", 200)], seen
    assert all(r["path"].startswith(AUTH + "RefreshToken?refreshToken=") for r in recs)
    assert mock.stats()["logins_ok"] == 1
    assert call(d, "GET", API)[0] == 200
    assert status_auth(d)["last_refresh_result"] == "ok"


def test_refresh_post_405_falls_back_to_get(start_denvrd, mock):
    _refresh_fallback(start_denvrd, mock, 405)


def test_refresh_post_404_falls_back_to_get(start_denvrd, mock):
    _refresh_fallback(start_denvrd, mock, 404)


def test_refused_refresh_logs_in_again(start_denvrd, mock):
    mock.config(access_lifetime=2)
    d = start_denvrd(credentials="password")
    wait_ready(d)
    mock.fail(count=1, status=400, path=AUTH + "RefreshToken")   # "Refresh token is not valid"
    mock.wait_for(lambda s: s["logins_ok"] >= 2, timeout=5, what="a second login")
    seen = [(r["path"].split("?")[0], r["status"]) for r in records(mock, AUTH)]
    assert seen[:3] == [(AUTH + "Authenticate", 200), (AUTH + "RefreshToken", 400),
                        (AUTH + "Authenticate", 200)], seen
    assert call(d, "GET", API)[0] == 200
    assert mock.stats()["unauthorized"] == 0


def test_refresh_lost_on_the_network_is_retried_before_expiry(start_denvrd, mock):
    mock.config(access_lifetime=2)
    d = start_denvrd(credentials="password")
    wait_ready(d)
    mock.drop(count=1, mode="reset", path=AUTH + "RefreshToken")
    mock.wait_for(lambda s: s["refreshes"] >= 1, timeout=5, what="a refresh")
    refs = records(mock, AUTH + "RefreshToken")
    assert [r["status"] for r in refs][:2] == [None, 200], refs
    assert refs[1]["t_start"] - refs[0]["t_start"] < 0.4   # well before the 2 s expiry
    a = status_auth(d)
    assert a["logged_in"] and a["consecutive_failures"] == 0
    assert mock.stats()["logins_ok"] == 1 and mock.stats()["unauthorized"] == 0
    assert call(d, "GET", API)[0] == 200


# ---------------------------------------------------------------------------------------------
# 401 recovery
# ---------------------------------------------------------------------------------------------
def test_401_fresh_login_and_replay_with_body(start_denvrd, mock):
    d = start_denvrd(credentials="password")
    wait_ready(d)
    body = json.dumps({"name": "vm-1", "blob": "\u00e9" * 300 + "x" * 5000}).encode()
    mock.expire_tokens()   # denvrd's token is now refused before its expiry
    since = mock.requests()[-1]["seq"]
    before = mock.stats()

    st, js, raw = call(d, "POST", ECHO, body, {"Content-Type": "application/json"},
                       rid="replay-1")
    assert st == 200, raw[:300]
    assert js["result"]["body_sha256"] == hashlib.sha256(body).hexdigest()

    after = mock.stats()
    recs = [r for r in mock.requests(since) if r["path"].startswith(ECHO)]
    assert [r["status"] for r in recs] == [401, 200]
    assert [mock.body(r) for r in recs] == [body, body]
    assert all(mock.header(r, "X-Request-Id") == "replay-1" for r in recs)
    assert mock.header(recs[0], "Authorization") != mock.header(recs[1], "Authorization")
    # a revoked session's refresh token is no better: one fresh login, no refresh
    assert after["login_attempts"] - before["login_attempts"] == 1
    assert after["refresh_attempts"] == before["refresh_attempts"]
    auths = [r for r in mock.requests(since) if r["path"].startswith(AUTH)]
    assert len(auths) == 1 and recs[0]["seq"] < auths[0]["seq"] < recs[1]["seq"]


def test_401_replayed_once_and_client_gets_the_replays_answer(start_denvrd, mock):
    d = start_denvrd(credentials="password")
    wait_ready(d)
    # replay answered 418: the client gets exactly that
    mock.fail(count=1, status=401, path=ECHO)
    mock.fail(count=1, status=418, path=ECHO)
    since = mock.requests()[-1]["seq"]
    st, js, _ = call(d, "PUT", ECHO, b"payload-1", {"Content-Type": "text/plain"})
    assert st == 418 and js["error"]["message"] == "Mock fault 418", js
    recs = [r for r in mock.requests(since) if r["path"].startswith(ECHO)]
    assert [(r["status"], mock.body(r)) for r in recs] == [(401, b"payload-1"),
                                                           (418, b"payload-1")]

    # a second 401 is not replayed again
    mock.fail(count=2, status=401, path=ECHO)
    since = mock.requests()[-1]["seq"]
    st, js, _ = call(d, "POST", ECHO, b"payload-2", {"Content-Type": "text/plain"})
    assert st == 401 and js["unAuthorizedRequest"] is True
    recs = [r for r in mock.requests(since) if r["path"].startswith(ECHO)]
    assert [r["status"] for r in recs] == [401, 401]
    # and denvrd is fine afterwards
    wait_ready(d)
    assert call(d, "POST", ECHO, b"payload-3")[0] == 200


# ---------------------------------------------------------------------------------------------
# logout
# ---------------------------------------------------------------------------------------------
def test_logout_on_sigterm_with_the_current_token(start_denvrd, mock):
    d = start_denvrd(credentials="password")
    wait_ready(d)
    assert call(d, "GET", API, rid="before-logout")[0] == 200
    used = mock.header([r for r in records(mock, API)
                        if mock.header(r, "X-Request-Id") == "before-logout"][0],
                       "Authorization")
    assert used.startswith("Bearer ")
    assert d.stop() == 0
    outs = records(mock, AUTH + "LogOut")
    assert len(outs) == 1 and outs[0]["method"] == "GET"
    assert mock.header(outs[0], "Authorization") == used
    assert mock.stats()["logouts"] == 1
    assert re.search(r"logged out \(HTTP 200\)", d.log_text())


def test_logout_is_bounded_to_2s(start_denvrd, mock):
    d = start_denvrd(credentials="password")
    wait_ready(d)
    mock.delay(5, count=1, path=AUTH + "LogOut")
    t0 = time.monotonic()
    rc = d.stop()
    took = time.monotonic() - t0
    assert rc == 0
    assert took < scaled(2.5), "shutdown took %.2f s" % took
    assert len(records(mock, AUTH + "LogOut")) == 1, "no logout attempted"
    # Let the mock finish that logout (it may not notice the closed TLS connection), so it
    # does not land in the next test's counters.
    wait_until(lambda: (lambda r: r["client_aborted"] or r["t_end"])(
        records(mock, AUTH + "LogOut")[0]), 8, what="the mock to finish the delayed logout")


def test_apikey_mode_sends_no_login_or_logout(start_denvrd, mock):
    d = start_denvrd(credentials="apikey")
    assert call(d, "GET", API)[0] == 200
    assert d.stop() == 0
    s = mock.stats()
    assert s["login_attempts"] == s["refresh_attempts"] == s["logout_attempts"] == 0


# ---------------------------------------------------------------------------------------------
# the Denvr SDKs through denvrd
# ---------------------------------------------------------------------------------------------
def _sdk_bearer_session(d):
    """Exactly what the Python SDK's Bearer auth does (denvr/auth.py), against denvrd."""
    st, js, raw = call(d, "POST", AUTH + "Authenticate",
                       {"userNameOrEmailAddress": DUMMY_USER, "password": DUMMY_PASSWORD},
                       {"Content-type": "application/json"})
    assert st == 200 and js["success"] is True, raw[:300]
    res = js["result"]
    for k in ("accessToken", "refreshToken"):
        assert isinstance(res[k], str) and res[k]
    # long enough that the SDK never refreshes by itself
    assert res["expireInSeconds"] >= 86400 * 365
    assert res["refreshTokenExpireInSeconds"] >= 86400 * 365
    assert res["requiresTwoFactorVerification"] is False and res["shouldResetPassword"] is False
    bearer = {"Authorization": "Bearer " + res["accessToken"],
              "Content-type": "application/json"}
    st, js, _ = call(d, "GET", AUTH + "RefreshToken?refreshToken=" + res["refreshToken"],
                     headers={"Content-type": "application/json"})
    assert st == 200 and js["success"] and js["result"]["accessToken"]
    assert js["result"]["expireInSeconds"] >= 86400 * 365
    st, js, _ = call(d, "POST", AUTH + "RefreshToken?refreshToken=" + res["refreshToken"])
    assert st == 200 and js["result"]["accessToken"]
    return bearer


def _sdk_calls(d, headers):
    st, js, _ = call(d, "GET", API, headers=headers)
    assert st == 200 and js["result"] == ["Msc1", "Hou1"], js
    st, js, _ = call(d, "GET", SERVERS, headers=headers)
    assert st == 200 and js["result"]["items"][0]["username"] == USER, js
    st, js, _ = call(d, "POST", "/api/v1/servers/virtual/StartServer",
                     {"id": "vm-1", "namespace": "denvr-test", "cluster": "Msc1"},
                     headers=headers)
    assert st == 202 and js["result"]["status"] == "STARTING", js


def _check_upstream_saw_only_denvrd(mock, denvrd_mode):
    recs = mock.api_requests()
    toks = mock.tokens()
    real_access = set(toks["access"])
    for r in recs:
        raw = json.dumps(r)
        assert DUMMY_KEY not in raw and "denvrd-local" not in raw, r
        if r["path"].startswith(AUTH):
            continue
        a = mock.header(r, "Authorization")
        if denvrd_mode == "apikey":
            assert a == "ApiKey " + H.DEFAULT_APIKEY, r["path"]
        else:
            assert a.startswith("Bearer ") and a[len("Bearer "):] in real_access, r["path"]
    auths = [r for r in recs if r["path"].startswith(AUTH)]
    if denvrd_mode == "apikey":
        assert auths == []
    else:
        # denvrd's own single login; none of the client's Authenticate/Refresh/LogOut
        assert [(r["method"], r["path"]) for r in auths] == [("POST", AUTH + "Authenticate")]
        body = json.loads(mock.body(auths[0]))
        assert body["userNameOrEmailAddress"] == USER
    assert mock.stats()["logouts"] == 0


def test_sdk_bearer_flow_through_denvrd(start_denvrd, mock):
    d = start_denvrd(credentials="password")
    wait_ready(d)
    headers = _sdk_bearer_session(d)
    _sdk_calls(d, headers)
    # the SDK's logout is answered locally: denvrd stays logged in
    st, js, _ = call(d, "GET", AUTH + "LogOut", headers=headers)
    assert st == 200 and js["success"] is True
    _sdk_calls(d, headers)
    _check_upstream_saw_only_denvrd(mock, "password")


def test_sdk_bearer_flow_against_apikey_denvrd(start_denvrd, mock):
    d = start_denvrd(credentials="apikey")
    headers = _sdk_bearer_session(d)
    _sdk_calls(d, headers)
    _check_upstream_saw_only_denvrd(mock, "apikey")


def test_sdk_apikey_flow_through_denvrd(start_denvrd, mock):
    for mode in ("password", "apikey"):
        mock.reset()
        d = start_denvrd(credentials=mode)
        wait_ready(d)
        _sdk_calls(d, {"Authorization": "ApiKey " + DUMMY_KEY})
        _check_upstream_saw_only_denvrd(mock, mode)
        assert d.stop() == 0
        # (the logout of password mode happens after the check above)


def test_sdk_login_shim_is_answered_even_when_upstream_refuses(start_denvrd, mock):
    """The shim never forwards: even with denvrd's own login failing it answers the SDK,
    whose next call then gets denvrd's clear 424."""
    mock.reject_logins(mode="password")
    d = start_denvrd(credentials="password")
    wait_not_ready(d, "rejected the password")
    n = mock.stats()["login_attempts"]
    headers = _sdk_bearer_session(d)
    st, js, _ = call(d, "GET", API, headers=headers)
    assert st == 424 and "rejected the password" in js["error"]["message"]
    assert mock.stats()["login_attempts"] == n


# ---------------------------------------------------------------------------------------------
# reload
# ---------------------------------------------------------------------------------------------
def test_reload_with_new_credentials_resets_backoff(start_denvrd, mock):
    bob, bob_pw = "bob@example.com", "Bob-Pw#denvrd-91c2e4!z"
    mock.config(user=bob, password=bob_pw)   # the mock now accepts bob only
    d = start_denvrd(credentials="password")   # alice: refused
    wait_not_ready(d, "rejected the password for %s" % USER)
    a = wait_until(lambda: (lambda a: a["consecutive_failures"] >= 3 and a)(status_auth(d)),
                   10, what="three failed logins")
    assert a["next_attempt_in"] >= 3, a

    n = len(records(mock, AUTH + "Authenticate"))
    rewrite_credentials(d, {"username": bob, "password": bob_pw})
    t0 = time.monotonic()
    d.reload()
    wait_ready(d, timeout=5)
    took = time.monotonic() - t0
    assert took < 2.0, "login after reload took %.2f s: backoff not reset" % took
    logins = records(mock, AUTH + "Authenticate")[n:]
    assert len(logins) == 1
    assert json.loads(mock.body(logins[0]))["userNameOrEmailAddress"] == bob
    a = status_auth(d)
    assert a["user"] == bob and a["logged_in"] and a["consecutive_failures"] == 0
    assert a["failure"] is None and a["next_attempt_in"] is None
    st, js, _ = call(d, "GET", SERVERS)
    assert st == 200 and js["result"]["items"][0]["username"] == bob
    assert "credentials changed; logging in again" in d.log_text()


def test_reload_with_fixed_password_file_retries_at_once(start_denvrd, mock, tmp_path):
    """Same configuration, new password in the password file: a reload is the operator's
    way to say "try now"."""
    pwfile = tmp_path / "password"
    H.write_private(pwfile, "not-the-password\n")
    d = start_denvrd(credentials={"username": USER, "password_file": str(pwfile)})
    wait_not_ready(d, "rejected the password for %s" % USER)
    wait_until(lambda: status_auth(d)["consecutive_failures"] >= 3, 10,
               what="three failed logins")
    H.write_private(pwfile, H.DEFAULT_PASSWORD + "\n")
    t0 = time.monotonic()
    d.reload()
    wait_ready(d, timeout=5)
    assert time.monotonic() - t0 < 2.0
    assert call(d, "GET", API)[0] == 200


def test_reload_unchanged_credentials_keeps_the_session(start_denvrd, mock):
    d = start_denvrd(credentials="password")
    wait_ready(d)
    d.reload()
    d.wait_for_log(r"configuration reloaded")
    assert call(d, "GET", API)[0] == 200
    assert mock.stats()["login_attempts"] == 1


# ---------------------------------------------------------------------------------------------
# status
# ---------------------------------------------------------------------------------------------
def _secrets(mock):
    toks = mock.tokens()
    out = {H.DEFAULT_PASSWORD, H.DEFAULT_APIKEY}
    out.update(toks["access"], toks["refresh"], toks["encrypted"], toks["secrets"])
    sigs = {t.rsplit(".", 1)[1] for t in out if t.count(".") == 2}
    return {s for s in out | sigs if len(s) >= 12}


def test_status_shows_state_and_no_secret(start_denvrd, mock):
    mock.config(access_lifetime=2, refresh_lifetime=30)
    d = start_denvrd(credentials="password")
    wait_ready(d)
    mock.wait_for(lambda s: s["refreshes"] >= 1, timeout=5, what="a refresh")
    wait_until(lambda: status_auth(d)["last_refresh_result"] == "ok", 2, what="refresh noted")
    a = status_auth(d)
    assert a["mode"] == "password" and a["user"] == USER and a["logged_in"] is True
    assert 0 <= a["access_token_expires_in"] <= 2, a
    assert 20 <= a["refresh_token_expires_in"] <= 30, a
    for k in ("last_login", "last_refresh"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", a[k]), a
    assert a["last_login_result"] == "ok" and a["last_refresh_result"] == "ok"
    assert a["consecutive_failures"] == 0 and a["next_attempt_in"] is None
    assert a["failure"] is None

    secrets = _secrets(mock)
    assert len(secrets) >= 5
    for path in ("/_denvrd/status", "/_denvrd/readyz", "/_denvrd/metrics",
                 "/_denvrd/healthz"):
        st, _, raw = d.request("GET", path)
        text = raw.decode(errors="replace")
        leaked = [s[:6] + "..." for s in secrets if s in text]
        assert st == 200 and not leaked, (path, leaked)


def test_status_in_failure_and_apikey_modes_shows_no_secret(start_denvrd, mock):
    mock.reject_logins(mode="password")
    d = start_denvrd(credentials="password")
    wait_not_ready(d, "rejected")
    a = status_auth(d)
    assert a["logged_in"] is False and a["consecutive_failures"] >= 1
    assert a["next_attempt_in"] is not None and a["access_token_expires_in"] is None
    assert a["last_login_result"] == "rejected" and a["last_refresh"] is None
    k = start_denvrd(credentials="apikey")
    b = status_auth(k)
    assert b["mode"] == "apikey" and b["logged_in"] is True and b["last_login"] is None
    secrets = _secrets(mock)
    for dd in (d, k):
        for path in ("/_denvrd/status", "/_denvrd/readyz"):
            text = dd.request("GET", path)[2].decode(errors="replace")
            assert not [s for s in secrets if s in text], path


def test_reload_rereads_a_rotated_apikey_file(start_denvrd, mock, tmp_path):
    keyfile = tmp_path / "apikey"
    H.write_private(keyfile, "dvr-revoked-key-0000000000000000\n")
    d = start_denvrd(credentials={"apikey_file": str(keyfile)})
    st, js, _ = call(d, "GET", API)
    assert st == 401 and js["unAuthorizedRequest"] is True   # API keys cannot be renewed
    H.write_private(keyfile, H.DEFAULT_APIKEY + "\n")
    d.reload()
    d.wait_for_log(r"configuration reloaded")
    st, js, _ = call(d, "GET", API)
    assert st == 200 and js["result"] == ["Msc1", "Hou1"]
    recs = records(mock, API)
    assert mock.header(recs[-1], "Authorization") == "ApiKey " + H.DEFAULT_APIKEY
