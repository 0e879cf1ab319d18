# SPDX-License-Identifier: MIT
"""GET /_denvrd/wait/...: one call that returns when the cloud state is reached.

Against the mock's VM state changes that take seconds (StartServer: STARTING then ONLINE,
StopServer: STOPPING then OFFLINE, DestroyServer: DELETING then gone; transition_seconds).
Covers one waiter, many waiters sharing one polling loop, waiters on different VMs, timeout,
hang-up, bad input, defaults and the query polled, reload and shutdown during a wait,
until=gone, upstream errors within a wait, the access rules, and the metrics.

Timing: denvrd polls at once, then after 1, 2, 4 ... s up to wait_poll_max_seconds (2 here),
so a change is seen at most about 2 s (plus a poll's round trip) after it happens; the upper
bounds below leave several seconds on top of that.
"""

import json
import re
import signal
import socket
import threading
import time
import urllib.parse

import pytest

import denvrd_harness as H
from test_systemd import metric, parse_metrics, promtool_check, promtool_path

DEFAULTS = {"cluster": "Msc1", "tenant": "denvr-test"}
POLL_MAX = 2
GET_SERVER = "/api/v1/servers/virtual/GetServer"
WAIT = "/_denvrd/wait"
HEADER = re.compile(r"^(matched|ended|timeout)=(.*); polls=(\d+); seconds=(\d+\.\d)$")


@pytest.fixture
def wd(start_denvrd, mock):
    """denvrd with a short polling cap, and the mock's transitions taking 3 s."""
    mock.config(transition_seconds=3)
    return start_denvrd(defaults=DEFAULTS, daemon={"wait_poll_max_seconds": POLL_MAX})


def post(d, op, vm, cluster="Msc1"):
    st, _, body = d.request_json("POST", "/api/v1/servers/virtual/%s" % op,
                                 {"id": vm, "cluster": cluster})
    assert st == 202, (st, body)
    return body


def destroy(d, vm):
    st, _, body = d.request_json("DELETE", "/api/v1/servers/virtual/DestroyServer?Id=%s" % vm)
    assert st == 202, (st, body)


def polls_of(mock, vm, since=0):
    """The GetServer requests the mock answered for vm."""
    out = []
    for r in mock.requests(since=since, path=GET_SERVER):
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r["path"]).query))
        if q.get("Id", q.get("id")) == vm:
            out.append(r)
    return out


def last_seq(mock):
    reqs = mock.requests()
    return reqs[-1]["seq"] if reqs else 0


def wait_header(h):
    v = h["X-Denvrd-Wait"]
    assert v, "no X-Denvrd-Wait header"
    m = HEADER.match(v)
    assert m, "X-Denvrd-Wait %r" % v
    return m.group(1), m.group(2), int(m.group(3)), float(m.group(4))


def wait_for(d, target, timeout=60, via="tcp"):
    t0 = time.monotonic()
    st, h, body = d.request("GET", WAIT + target, timeout=timeout, via=via)
    return st, h, body, time.monotonic() - t0


def envelope_message(body):
    j = json.loads(body)
    assert j["success"] is False and j["__abp"] is True, j
    return j["error"]["message"]


# ---------------------------------------------------------------------------------------------
# one waiter
# ---------------------------------------------------------------------------------------------
def test_start_and_wait(wd, mock):
    post(wd, "StartServer", "vm-w1")
    t_started = time.monotonic()
    st, h, body, took = wait_for(wd, GET_SERVER + "?id=vm-w1&until=status:ONLINE&timeout=60")
    assert st == 200, body
    assert json.loads(body)["result"]["status"] == "ONLINE"
    what, cond, polls, secs = wait_header(h)
    assert (what, cond) == ("matched", "status:ONLINE")
    # The answer is upstream's, byte for byte: a direct GET now gets the same bytes.
    st2, h2, direct = wd.request("GET", GET_SERVER + "?id=vm-w1")
    assert st2 == 200 and direct == body
    assert h["Content-Type"] == h2["Content-Type"]
    # Every poll is in the mock's records, the last one said ONLINE, the earlier ones not.
    recs = polls_of(mock, "vm-w1")
    assert len(recs) == polls + 1, (polls, [r["vm_status"] for r in recs])   # + the direct GET
    seen = [r["vm_status"] for r in recs[:polls]]
    assert seen[-1] == "ONLINE" and all(s == "STARTING" for s in seen[:-1]), seen
    assert polls >= 2
    # It cannot end before the change, and sees it within one pause of the cap.
    vm = [v for v in mock.control("GET", "vms") if v["id"] == "vm-w1"][0]
    assert recs[polls - 1]["t_start"] >= vm["at"]
    assert took >= vm["at"] - t_started - 0.05
    assert took < H.scaled(3 + POLL_MAX + 5), took
    assert abs(secs - took) < 1.0, (secs, took)


def test_stop_and_wait_shorthand(wd, mock):
    post(wd, "StopServer", "vm-w2")
    st, h, body, _ = wait_for(wd, "/servers/virtual/GetServer?id=vm-w2&until=status:OFFLINE")
    assert st == 200, body
    assert json.loads(body)["result"]["status"] == "OFFLINE"
    assert wait_header(h)[:2] == ("matched", "status:OFFLINE")


def test_destroy_and_wait_until_gone(wd, mock):
    destroy(wd, "vm-w3")
    st, h, body, _ = wait_for(wd, GET_SERVER + "?id=vm-w3&until=gone")
    assert st == 200, body
    j = json.loads(body)
    assert j["success"] is True and j["result"]["gone"] is True, j
    assert j["result"]["upstreamStatus"] == 404
    assert wait_header(h)[:2] == ("matched", "gone")
    assert polls_of(mock, "vm-w3")[-1]["vm_status"] == "gone"


def test_waiting_for_a_state_of_a_gone_vm_passes_the_404_through(wd, mock):
    mock.config(transition_seconds=0)
    destroy(wd, "vm-w4")
    st, h, body, _ = wait_for(wd, GET_SERVER + "?id=vm-w4&until=status:ONLINE")
    assert st == 404, body
    assert "no such an entity" in envelope_message(body)
    what, cond, polls, _ = wait_header(h)
    assert (what, cond, polls) == ("ended", "404", 1)


def test_any_of_several_conditions(wd, mock):
    post(wd, "StartServer", "vm-w5")
    st, h, body, _ = wait_for(wd, GET_SERVER + "?id=vm-w5&until=status:ERROR&until=status:ONLINE")
    assert st == 200
    assert wait_header(h)[:2] == ("matched", "status:ONLINE")
    # A condition already met answers at the first poll; a nested member, a number.
    st, h, body, _ = wait_for(wd, GET_SERVER + "?id=vm-w5&until=gpus:1")
    assert st == 200 and wait_header(h)[:3] == ("matched", "gpus:1", 1)


# ---------------------------------------------------------------------------------------------
# sharing
# ---------------------------------------------------------------------------------------------
def test_twenty_waiters_share_one_polling_loop(wd, mock):
    post(wd, "StartServer", "vm-many")
    since = last_seq(mock)
    results = [None] * 20

    def one(i):
        results[i] = wait_for(wd, GET_SERVER + "?id=vm-many&until=status:ONLINE&timeout=60")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    bodies = set()
    headers = []
    for r in results:
        assert r is not None
        st, h, body, took = r
        assert st == 200, body
        bodies.add(body)
        headers.append(wait_header(h))
    assert len(bodies) == 1, "every waiter gets the same upstream answer"
    upstream = polls_of(mock, "vm-many", since)
    # One loop: the upstream polls are those of the waiter that saw the most of them, not 20x.
    assert len(upstream) == max(p for _, _, p, _ in headers), (len(upstream), headers)
    # The schedule over a 3 s change (0, 1, 3, 5 s ...) has a handful of polls, plus at most
    # one early poll for waiters that joined after the first.
    assert len(upstream) <= 6, [r["vm_status"] for r in upstream]
    _, _, samples = metrics(wd)
    assert metric(samples, "denvrd_waits_ended_total", reason="match") == 20
    assert metric(samples, "denvrd_wait_polls_total") == len(upstream)
    assert metric(samples, "denvrd_waits_in_progress") == 0


def test_waiters_on_different_vms(wd, mock):
    vms = ["vm-a", "vm-b", "vm-c"]
    for vm in vms:
        post(wd, "StartServer", vm)
    results = {}

    def one(vm):
        results[vm] = wait_for(wd, GET_SERVER + "?id=%s&until=status:ONLINE" % vm)

    threads = [threading.Thread(target=one, args=(vm,)) for vm in vms]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for vm in vms:
        st, h, body, _ = results[vm]
        assert st == 200, body
        assert json.loads(body)["result"]["id"] == vm
        polls = wait_header(h)[2]
        assert len(polls_of(mock, vm)) == polls, vm


def test_late_waiter_does_not_sit_out_the_long_pause(start_denvrd, mock):
    """A waiter joining a loop in a long pause gets a poll within a second of the last one."""
    mock.config(transition_seconds=600)
    d = start_denvrd(defaults=DEFAULTS, daemon={"wait_poll_max_seconds": 60})
    post(d, "StartServer", "vm-late")
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", wait_for(
        d, GET_SERVER + "?id=vm-late&until=status:ONLINE&timeout=10")))
    t.start()
    # The first waiter's loop polls at 0, 1, 3, 7 s; a second waiter joining at about 3.5 s
    # whose condition is already met must not wait for the poll at 7 s.
    H.wait_until(lambda: len(polls_of(mock, "vm-late")) >= 3, timeout=15, what="three polls")
    time.sleep(0.5)
    st, h, body, took = wait_for(d, GET_SERVER + "?id=vm-late&until=status:STARTING")
    assert st == 200 and wait_header(h)[:3] == ("matched", "status:STARTING", 1)
    assert took < H.scaled(2.5), took
    t.join(30)
    assert box["r"][0] == 504


# ---------------------------------------------------------------------------------------------
# timeout and hang-up
# ---------------------------------------------------------------------------------------------
def test_timeout_names_the_last_value(wd, mock):
    mock.config(transition_seconds=600)
    post(wd, "StartServer", "vm-slow")
    st, h, body, took = wait_for(wd, GET_SERVER + "?id=vm-slow&until=status:ONLINE&timeout=3")
    assert st == 504, body
    msg = envelope_message(body)
    assert msg == "status still STARTING after 3 s", msg
    details = json.loads(body)["error"]["details"]
    what, _, polls, _ = wait_header(h)
    assert what == "timeout"
    assert details == "waited for status:ONLINE; %d polls" % polls, details
    assert polls == len(polls_of(mock, "vm-slow")) >= 2
    assert took >= 2.9, took
    st, h, body, _ = wait_for(wd, GET_SERVER + "?id=vm-slow&until=status:ONLINE&until=ip:x"
                              "&until=gone&timeout=1")
    assert st == 504
    assert json.loads(body)["error"]["details"].startswith(
        "waited for status:ONLINE, ip:x or gone; "), body
    _, _, samples = metrics(wd)
    assert metric(samples, "denvrd_waits_ended_total", reason="timeout") == 2


def test_hangup_stops_polling(wd, mock):
    mock.config(transition_seconds=600)
    post(wd, "StartServer", "vm-hup")
    socks = []
    for _ in range(2):
        s = wd.connect_raw()
        s.sendall(b"GET " + (WAIT + GET_SERVER + "?id=vm-hup&until=status:ONLINE").encode() +
                  b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
        socks.append(s)
    H.wait_until(lambda: len(polls_of(mock, "vm-hup")) >= 3, timeout=15, what="three polls")
    socks[0].close()
    # One waiter left: polling goes on.
    n = len(polls_of(mock, "vm-hup"))
    H.wait_until(lambda: len(polls_of(mock, "vm-hup")) > n, timeout=POLL_MAX + 5,
                  what="a poll after the first hang-up")
    socks[1].close()
    H.wait_until(lambda: metric(metrics(wd)[2], "denvrd_waits_in_progress") == 0, timeout=5,
                 what="no wait in progress")
    stopped = len(polls_of(mock, "vm-hup"))
    time.sleep(POLL_MAX * 2 + 1)   # two pauses of the cap: a loop still running would poll
    assert len(polls_of(mock, "vm-hup")) == stopped
    samples = metrics(wd)[2]
    assert metric(samples, "denvrd_waits_ended_total", reason="hangup") == 2


# ---------------------------------------------------------------------------------------------
# bad input: a 4xx envelope and nothing upstream
# ---------------------------------------------------------------------------------------------
BAD = [
    ("GET", GET_SERVER + "?id=vm-1", 400, "until is missing"),
    ("GET", GET_SERVER + "?id=vm-1&until=status", 400, "not FIELD:VALUE"),
    ("GET", GET_SERVER + "?id=vm-1&until=", 400, "not FIELD:VALUE"),
    ("GET", GET_SERVER + "?id=vm-1&until=a..b:1", 400, "not a member name"),
    ("GET", GET_SERVER + "?id=vm-1&until=status:ONLINE&timeout=soon", 400, "not a number"),
    ("GET", GET_SERVER + "?id=vm-1&until=status:ONLINE&timeout=0", 400, "out of range"),
    ("GET", GET_SERVER + "?id=vm-1&until=status:ONLINE&timeout=3601", 400, "out of range"),
    ("GET", GET_SERVER + "?id=vm-1&until=gone&timeout=5&timeout=6", 400, "more than once"),
    ("POST", GET_SERVER + "?id=vm-1&until=status:ONLINE", 405, "accepts only GET"),
    ("DELETE", GET_SERVER + "?id=vm-1&until=status:ONLINE", 405, "accepts only GET"),
    ("GET", "/api/v1/servers/virtual/StartServer?id=vm-1&until=status:ONLINE", 400,
     "is a POST operation"),
    ("GET", "/api/v1/servers/virtual/DestroyServer?id=vm-1&until=gone", 400,
     "is a DELETE operation"),
    ("GET", "/api/v1/servers/virtual/NoSuchThing?until=gone", 404, "not a Denvr API operation"),
    ("GET", "/nowhere/GetServer?until=gone", 404, "names no API path"),
    ("GET", "", 404, "names no API path"),
    ("GET", "/api/TokenAuth/LogOut?until=gone", 400, "login endpoint"),
    # A required parameter missing after defaults: the same 400 a direct GET gets.
    ("GET", GET_SERVER + "?until=status:ONLINE", 400, "Your request is not valid!"),
]


@pytest.mark.parametrize("method,target,status,needle", BAD,
                         ids=["%s %s" % (b[0], b[1][:60]) for b in BAD])
def test_bad_input(wd, mock, method, target, status, needle):
    since = last_seq(mock)
    st, h, body = wd.request(method, WAIT + target)
    assert st == status, body
    assert needle in envelope_message(body) or needle in body.decode(), body
    if status == 405:
        assert h["Allow"] == "GET"
    assert [r["path"] for r in mock.requests(since=since) if r["path"].startswith("/api/v1/")] == []


# ---------------------------------------------------------------------------------------------
# what is polled
# ---------------------------------------------------------------------------------------------
def test_defaults_filled_in_and_wait_parameters_never_forwarded(wd, mock):
    post(wd, "StartServer", "vm-q")
    st, h, body, _ = wait_for(
        wd, GET_SERVER + "?until=status:ONLINE&Id=vm-q&x=%41b+c&timeout=30&Until=status:ERROR&&y")
    assert st == 200, body
    recs = polls_of(mock, "vm-q")
    assert recs
    for r in recs:
        q = urllib.parse.urlsplit(r["path"]).query
        # One canonical form: the operation's own parameters in table order, as the table
        # spells them, defaults in their place; names it lacks (x, y) are not polled.
        assert q == "Id=vm-q&Namespace=denvr-test&Cluster=Msc1", q
        assert H.MockProcess.header(r, "Authorization")
    # Another spelling of the same request shares that form (and so the loop).
    since = last_seq(mock)
    st, _, body, _ = wait_for(wd, GET_SERVER + "?cluster=Msc1&iD=vm-q&until=status:ONLINE&junk=1")
    assert st == 200, body
    again = [r for r in mock.requests(since=since) if r["path"].startswith(GET_SERVER)]
    assert again and all(r["path"] == recs[0]["path"] for r in again), [r["path"] for r in again]


def test_cache_never_answers_a_poll(start_denvrd, mock):
    mock.config(transition_seconds=3)
    d = start_denvrd(defaults=DEFAULTS, daemon={"wait_poll_max_seconds": POLL_MAX},
                     config_text_extra='[cache]\n"%s" = 600\n' % GET_SERVER)
    st, h, _ = d.request("GET", GET_SERVER + "?id=vm-c1")   # cached: ONLINE
    assert st == 200 and h["X-Cache"] == "MISS"
    post(d, "StartServer", "vm-c1")
    st, h, body, _ = wait_for(d, GET_SERVER + "?id=vm-c1&until=status:STARTING")
    assert st == 200, body
    assert json.loads(body)["result"]["status"] == "STARTING"
    assert h["X-Cache"] is None


def test_upstream_errors_are_polled_through(wd, mock):
    post(wd, "StartServer", "vm-err")
    mock.fail(count=2, status=503, path=GET_SERVER)
    st, h, body, _ = wait_for(wd, GET_SERVER + "?id=vm-err&until=status:ONLINE")
    assert st == 200, body
    assert wait_header(h)[2] >= 3   # two 503s, then at least one real answer
    # A connection reset and a 429 (curl may retry a reset on a reused connection itself,
    # so the mock's count is the one to check).
    since = last_seq(mock)
    mock.drop(count=1, mode="reset", path=GET_SERVER)
    mock.fail(count=1, status=429, path=GET_SERVER)
    st, h, body, _ = wait_for(wd, GET_SERVER + "?id=vm-err&until=status:ONLINE")
    assert st == 200, body
    assert len(polls_of(mock, "vm-err", since)) == 3
    assert [r["status"] for r in polls_of(mock, "vm-err", since)][1:] == [429, 200]


def test_a_client_error_ends_the_wait_and_is_passed_through(wd, mock):
    mock.fail(count=1, status=403, path=GET_SERVER, body={"success": False, "error": {
        "code": 0, "message": "Forbidden for this tenant"}, "__abp": True})
    st, h, body, _ = wait_for(wd, GET_SERVER + "?id=vm-403&until=status:ONLINE")
    assert st == 403
    assert json.loads(body)["error"]["message"] == "Forbidden for this tenant"
    assert wait_header(h)[:3] == ("ended", "403", 1)


# ---------------------------------------------------------------------------------------------
# reload, shutdown, access
# ---------------------------------------------------------------------------------------------
def test_reload_during_a_wait_continues_with_the_new_configuration(start_denvrd, mock, start_mock):
    """Waits carry over a reload: the next polls go to the new server with its credentials."""
    mock.config(transition_seconds=600)
    other = start_mock()
    d = start_denvrd(defaults=DEFAULTS, daemon={"wait_poll_max_seconds": POLL_MAX})
    post(d, "StartServer", "vm-r")   # STARTING for 10 minutes on the first mock
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", wait_for(
        d, GET_SERVER + "?id=vm-r&until=status:ONLINE&timeout=60")))
    t.start()
    H.wait_until(lambda: len(polls_of(mock, "vm-r")) >= 2, timeout=15, what="two polls")
    text = d.config_path.read_text()
    assert mock.url in text
    d.config_path.write_text(text.replace(mock.url, other.url))
    d.reload()
    d.wait_for_log(r"configuration reloaded")
    t.join(60)
    st, h, body, _ = box["r"]
    assert st == 200, body   # the other mock never saw StartServer: ONLINE
    assert polls_of(other, "vm-r"), "the polls after the reload go to the new server"
    assert all(r["vm_status"] == "STARTING" for r in polls_of(mock, "vm-r"))


def test_shutdown_ends_waits(wd, mock):
    mock.config(transition_seconds=600)
    post(wd, "StartServer", "vm-term")
    s = wd.connect_raw(timeout=20)
    s.sendall(b"GET " + (WAIT + GET_SERVER + "?id=vm-term&until=status:ONLINE").encode() +
              b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
    H.wait_until(lambda: len(polls_of(mock, "vm-term")) >= 1, timeout=10, what="a poll")
    t0 = time.monotonic()
    assert wd.stop(sig=signal.SIGTERM) == 0
    assert time.monotonic() - t0 < H.scaled(5)
    try:
        data = s.recv(65536)
    except (ConnectionResetError, socket.timeout):
        data = b""
    s.close()
    assert not data.startswith(b"HTTP/1.1 200"), data[:200]


def test_access_rules_apply_to_waits(start_denvrd, mock):
    """A listener that refuses a direct GET refuses the wait, before anything goes upstream;
    a read-only one allows both."""
    mock.config(transition_seconds=0)
    d = start_denvrd(defaults=DEFAULTS, daemon={"tcp_access": "off", "socket_access": "read-only"})
    since = last_seq(mock)
    st, _, body = d.request("GET", GET_SERVER + "?id=vm-acc")
    assert st == 403
    st, _, body = d.request("GET", WAIT + GET_SERVER + "?id=vm-acc&until=status:ONLINE")
    assert st == 403, body
    assert "tcp_access" in envelope_message(body)
    assert [r for r in mock.requests(since=since) if r["path"].startswith("/api/v1/")] == []
    st, h, body = d.request("GET", WAIT + GET_SERVER + "?id=vm-acc&until=status:ONLINE",
                            via="unix")
    assert st == 200, body
    assert wait_header(h)[:2] == ("matched", "status:ONLINE")


def test_access_refused_peer_is_refused_the_wait(start_denvrd, mock):
    """Host header check (DNS rebinding) applies as for any GET."""
    d = start_denvrd(defaults=DEFAULTS)
    st, _, body = d.request("GET", WAIT + GET_SERVER + "?id=vm-1&until=status:ONLINE",
                            headers={"Host": "evil.example"})
    assert st == 403, body


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------
def metrics(d):
    st, _, body = d.request("GET", "/_denvrd/metrics")
    assert st == 200
    text = body.decode()
    samples, types = parse_metrics(text)
    return text, types, samples


def test_metrics_of_waits_pass_promtool(wd, mock):
    promtool = promtool_path()
    post(wd, "StartServer", "vm-m")
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", wait_for(
        wd, GET_SERVER + "?id=vm-m&until=status:ONLINE")))
    t.start()
    H.wait_until(lambda: metric(metrics(wd)[2], "denvrd_waits_in_progress") == 1, timeout=5,
                 what="one wait in progress")
    t.join(30)
    assert box["r"][0] == 200
    text, types, samples = metrics(wd)
    promtool_check(promtool, text)
    assert types["denvrd_waits_in_progress"] == "gauge"
    assert types["denvrd_wait_polls_total"] == "counter"
    assert types["denvrd_waits_ended_total"] == "counter"
    assert metric(samples, "denvrd_waits_in_progress") == 0
    assert metric(samples, "denvrd_wait_polls_total") == len(polls_of(mock, "vm-m"))
    for reason in ("match", "timeout", "hangup", "upstream", "aborted"):
        assert metric(samples, "denvrd_waits_ended_total", reason=reason) == (reason == "match")
