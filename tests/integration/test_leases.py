# SPDX-License-Identifier: MIT
"""Leases: a deadline and an action (stop or destroy) on a virtual server or application that
denvrd carries out on time (GET/PUT/DELETE /_denvrd/leases, the X-Denvrd-Lease header on
CreateServer/StartServer and the application equivalents, [leases] in denvr.toml).

Real clocks, short leases: a lease of 2 s is acted on 2 s later (the deadline has a resolution
of one second and the timer an accuracy of one more).  The mock's VM state machine (StopServer:
STOPPING then OFFLINE; DestroyServer: DELETING then gone) tells "already stopped" and "gone".
Each test that restarts denvrd keeps its state directory ($XDG_STATE_HOME) across the
restarts.  Every refusal is checked not to have reached the mock upstream.
"""

import json
import os
import re
import signal
import stat
import time
import urllib.parse

import pytest

import denvrd_harness as H
import peers as P
from test_systemd import (HEX128, JournalSocket, journal_namespace_wrapper, metric, one,
                          parse_metrics, promtool_check, promtool_path)

DEFAULTS = {"cluster": "Msc1", "tenant": "denvr-test"}
V = "/api/v1/servers/virtual/"
A = "/api/v1/servers/applications/"
LEASES = "/_denvrd/leases"
HEADER = re.compile(r"^expires=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ); action=(stop|destroy)$")
STEPS = ["opened", "written", "synced", "renamed", "dir-synced"]


@pytest.fixture
def state(tmp_path):
    d = tmp_path / "state"
    d.mkdir()
    return d


@pytest.fixture
def ld(start_denvrd, mock, state):
    """start(**kw): denvrd keeping its leases in the test's state directory."""
    mock.config(transition_seconds=1)

    def start(**kw):
        env = dict(kw.pop("env", None) or {}, XDG_STATE_HOME=str(state))
        return start_denvrd(defaults=DEFAULTS, env=env, **kw)
    return start


def lease_path(service, vm, **q):
    q.setdefault("cluster", "Msc1")
    return "%s/%s/%s?%s" % (LEASES, service, vm, urllib.parse.urlencode(q))


def put(d, vm, body, service="servers/virtual", headers=None, **q):
    return d.request_json("PUT", lease_path(service, vm, **q), body, headers=headers)


def listed(d, headers=None):
    st, _, js = d.request_json("GET", LEASES, headers=headers)
    assert st == 200, (st, js)
    return js["leases"]


def upstream_seq(mock):
    reqs = mock.requests()
    return reqs[-1]["seq"] if reqs else 0


def ops_since(mock, seq, op):
    return [r for r in mock.acted(since=seq) if r["op"].lower().endswith(op.lower())]


def wait_state(d, vm, want, timeout=20):
    def reached():
        ls = [l for l in listed(d) if l["id"] == vm]
        return ls and ls[0]["state"] == want and ls[0]
    return H.wait_until(reached, timeout=timeout, interval=0.1, what="lease on %s %s" % (vm, want))


def error_of(js):
    assert js and js.get("success") is False and js.get("error"), js
    return js["error"]["message"]


def state_file(state):
    return state / "denvrd" / "leases.json"


# ---------------------------------------------------------------------------------------------
# the API
# ---------------------------------------------------------------------------------------------
def test_put_list_delete(ld, mock, state):
    d = ld()
    before = time.time()
    st, h, js = put(d, "vm-a1", {"expires_in": "4h", "action": "destroy"})
    assert st == 200, js
    assert js["service"] == "servers/virtual" and js["id"] == "vm-a1" and js["cluster"] == "Msc1"
    assert js["namespace"] == "denvr-test" and js["action"] == "destroy" and js["state"] == "pending"
    assert 4 * 3600 - 5 <= js["expires_in"] <= 4 * 3600
    exp = time.mktime(time.strptime(js["expires_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert abs(exp - (before + 4 * 3600)) < 5
    assert js["set_by"]["uid"] == os.getuid() and js["set_by"]["token"] is None
    assert h["Cache-Control"] == "no-store"
    # it asked upstream whether the machine exists, with the defaults filled in
    gets = [r for r in mock.acted() if r["op"].endswith("GetServer")]
    assert [(g["id"], g["namespace"], g["cluster"]) for g in gets] == [("vm-a1", "denvr-test", "Msc1")]

    f = state_file(state)
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE(f.parent.stat().st_mode) == 0o700
    on_disk = json.loads(f.read_text())
    assert on_disk["version"] == 1 and [l["id"] for l in on_disk["leases"]] == ["vm-a1"]

    assert [l["id"] for l in listed(d)] == ["vm-a1"]
    # replaced: one lease per machine
    st, _, js = put(d, "vm-a1", {"expires_in": "1h"})
    assert st == 200 and js["action"] == "stop", js
    assert [(l["id"], l["action"]) for l in listed(d)] == [("vm-a1", "stop")]
    # an application
    st, _, js = put(d, "jupyter-msc1", {"expires_at": "2099-01-01T00:00:00Z"}, "servers/applications")
    assert st == 400 and "within a year" in error_of(js)
    st, _, js = put(d, "jupyter-msc1", {"expires_in": "2d"}, "servers/applications")
    assert st == 200 and js["namespace"] is None and js["service"] == "servers/applications", js

    st, _, js = d.request_json("DELETE", lease_path("servers/virtual", "vm-a1"))
    assert st == 200 and js["removed"]["id"] == "vm-a1", js
    st, _, js = d.request_json("DELETE", lease_path("servers/virtual", "vm-a1"))
    assert st == 404 and "no lease" in error_of(js)
    assert [l["id"] for l in listed(d)] == ["jupyter-msc1"]
    assert [l["id"] for l in json.loads(f.read_text())["leases"]] == ["jupyter-msc1"]


BAD_BODIES = [
    ({"expires_in": "4h", "action": "reboot"}, "action"),
    ({"expires_in": "0s"}, "expires_in"),
    ({"expires_in": "-5m"}, "expires_in"),
    ({"expires_in": "soon"}, "expires_in"),
    ({"expires_in": 3600}, "expires_in"),
    ({"expires_in": "400d"}, "expires_in"),
    ({"expires_at": "2020-01-01T00:00:00Z"}, "future"),
    ({"expires_at": "tomorrow"}, "RFC 3339"),
    ({"expires_in": "1h", "expires_at": "2030-01-01T00:00:00Z"}, "one of"),
    ({}, "one of"),
    ({"expires_in": "1h", "colour": "red"}, "colour"),
    ("not json", "JSON object"),
    ('{"expires_in": "1h", "expires_in": "2h"}', "JSON object"),
    ([1, 2], "JSON object"),
]


@pytest.mark.parametrize("body,words", BAD_BODIES, ids=[str(i) for i in range(len(BAD_BODIES))])
def test_bad_input_stores_and_sends_nothing(ld, mock, state, body, words):
    d = ld()
    seq = upstream_seq(mock)
    headers = {"Content-Type": "application/json"}
    st, _, js = put(d, "vm-b1", body, headers=headers)
    assert st == 400 and words in error_of(js), (st, js)
    assert listed(d) == [] and not state_file(state).exists()
    assert mock.requests(since=seq, path="/api/v1/") == []


def test_bad_paths_and_methods(ld, mock):
    d = ld()
    seq = upstream_seq(mock)
    for path, want in [(LEASES + "/servers/volumes/x?cluster=Msc1", 404),
                       (LEASES + "/servers/virtual/?cluster=Msc1", 400),
                       (LEASES + "/servers/virtual/a%2Fb?cluster=Msc1", 400),
                       (LEASES + "/servers/virtual/a%0ab?cluster=Msc1", 400)]:
        st, _, js = d.request_json("PUT", path, {"expires_in": "1h"})
        assert st == want, (path, st, js)
    st, h, _ = d.request("POST", LEASES, {"expires_in": "1h"})
    assert st == 405 and h["Allow"] == "GET, HEAD"
    st, h, _ = d.request("GET", LEASES + "/servers/virtual/vm-1")
    assert st == 405 and h["Allow"] == "PUT, DELETE"
    assert mock.requests(since=seq, path="/api/v1/") == []


def test_machine_that_does_not_exist(ld, mock, state):
    d = ld()
    mock.fail(count=1, status=404, path=V + "GetServer",
              body=json.dumps({"result": None, "success": False, "error": {
                  "code": 0, "message": "There is no such an entity. Entity type: VirtualServer"},
                  "unAuthorizedRequest": False, "__abp": True}))
    st, _, js = put(d, "vm-ghost", {"expires_in": "1h"})
    assert st == 404 and "no such machine" in error_of(js), js
    assert listed(d) == [] and not state_file(state).exists()


def test_the_id_keeps_its_case_and_bytes(ld, mock):
    d = ld()
    st, _, js = put(d, "VM-Mixed%2BCase", {"expires_in": "1h"})
    assert st == 200 and js["id"] == "VM-Mixed+Case", js
    gets = [r for r in mock.acted() if r["op"].endswith("GetServer")]
    assert gets[-1]["id"] == "VM-Mixed+Case"


# ---------------------------------------------------------------------------------------------
# enforcement
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("action,op", [("stop", "StopServer"), ("destroy", "DestroyServer")])
def test_acted_on_at_the_deadline(ld, mock, action, op):
    d = ld()
    st, _, js = put(d, "vm-d-" + action, {"expires_in": "2s", "action": action})
    assert st == 200, js
    set_at = time.monotonic()
    seq = upstream_seq(mock)
    done = wait_state(d, "vm-d-" + action, "done", timeout=15)
    assert done["last_error"] is None
    took = time.monotonic() - set_at
    assert 0.5 < took < 6, took
    acts = ops_since(mock, seq, op)
    assert [(a["id"], a["namespace"], a["cluster"]) for a in acts] == \
        [("vm-d-" + action, "denvr-test", "Msc1")], acts
    assert acts[0]["status"] == 202
    assert re.search(r"lease on servers/virtual/vm-d-%s .* done: upstream accepted the %s" % (action, action),
                     d.log_text())
    # warned ahead (the lease was shorter than the warning time), then acted
    assert "ends in" in d.log_text()


def test_application_stopped(ld, mock):
    d = ld()
    # an application has no namespace: one in the query is not the lease's
    # Counted from before the PUT: a deadline is kept in whole seconds, so "1s" may be due at once.
    seq = upstream_seq(mock)
    st, _, js = put(d, "jupyter-msc1", {"expires_in": "1s"}, "servers/applications", namespace="zzz")
    assert st == 200 and js["namespace"] is None, js
    wait_state(d, "jupyter-msc1", "done")
    acts = ops_since(mock, seq, "StopApplication")
    assert [(a["id"], a["cluster"]) for a in acts] == [("jupyter-msc1", "Msc1")]


def test_already_stopped_and_gone_are_done(ld, mock):
    d = ld()
    for vm in ("vm-s1", "vm-g1"):
        assert put(d, vm, {"expires_in": "3s"})[0] == 200
    st, _, _ = d.request_json("POST", V + "StopServer", {"id": "vm-s1", "cluster": "Msc1"})
    assert st == 202
    st, _, _ = d.request_json("DELETE", V + "DestroyServer?Id=vm-g1")
    assert st == 202
    seq = upstream_seq(mock)
    s1 = wait_state(d, "vm-s1", "done")
    g1 = wait_state(d, "vm-g1", "done")
    assert ops_since(mock, seq, "StopServer") == []
    assert "already OFFLINE" in d.log_text() and "vm-g1" in d.log_text()
    assert re.search(r"vm-g1 .*done: the machine is gone", d.log_text())
    assert s1["state"] == g1["state"] == "done"


@pytest.mark.parametrize("fault", ["503", "reset"])
def test_upstream_down_at_the_deadline(ld, mock, fault):
    d = ld()
    # "2s": a deadline is kept in whole seconds, and "1s" may be due before the fault is set.
    assert put(d, "vm-u1", {"expires_in": "2s"})[0] == 200
    if fault == "503":
        mock.fail(count=-1, status=503, path=V)
    else:   # the connection dies before any answer
        mock.drop(count=-1, mode="reset", path=V)
    acting = wait_state(d, "vm-u1", "acting", timeout=15)
    H.wait_until(lambda: [l for l in listed(d) if l["last_error"]], timeout=30, what="an error noted")
    err = listed(d)[0]["last_error"]
    assert ("503" in err) if fault == "503" else ("503" not in err and err), err
    mock.reset()   # the fault is gone, and so are the records: count from 0
    mock.config(transition_seconds=1)
    seq = 0
    done = wait_state(d, "vm-u1", "done", timeout=30)
    assert done["last_error"] is None and acting["action"] == "stop"
    assert len(ops_since(mock, seq, "StopServer")) == 1


def test_refused_by_upstream_fails_once(ld, mock):
    d = ld()
    # Before the PUT (which asks only GetServer): a deadline is kept in whole seconds, so
    # "1s" may be due at once.
    mock.fail(count=-1, status=403, path=V + "StopServer",
              body=json.dumps({"success": False, "error": {"message": "You are not allowed"}}))
    assert put(d, "vm-f1", {"expires_in": "1s"})[0] == 200
    failed = wait_state(d, "vm-f1", "failed")
    assert "403" in failed["last_error"] and "You are not allowed" in failed["last_error"]
    seq = upstream_seq(mock)
    time.sleep(3)
    assert ops_since(mock, seq, "StopServer") == []


def test_never_acted_on_twice_across_restarts(ld, mock, state):
    d = ld()
    assert put(d, "vm-t1", {"expires_in": "1s"})[0] == 200
    wait_state(d, "vm-t1", "done")
    d.stop()
    seq = upstream_seq(mock)
    d2 = ld()
    assert [l["state"] for l in listed(d2)] == ["done"]
    time.sleep(2)
    assert ops_since(mock, seq, "StopServer") == [] and ops_since(mock, seq, "GetServer") == []


def test_deadline_passed_while_stopped(ld, mock, state):
    d = ld()
    assert put(d, "vm-l1", {"expires_in": "2s"})[0] == 200
    d.stop()
    time.sleep(4)
    seq = upstream_seq(mock)
    d2 = ld()
    wait_state(d2, "vm-l1", "done", timeout=10)
    assert len(ops_since(mock, seq, "StopServer")) == 1
    assert re.search(r"lease on servers/virtual/vm-l1 .* ended at .*, \d+s late", d2.log_text())


@pytest.mark.parametrize("damage,words", [
    ("cut", "line 1"), ("version", "not a lease file of version 1"), ("bad lease", "leases.json"),
    ("loop", "Too many levels of symbolic links")])
def test_unreadable_state_file_stops_the_start(ld, state, damage, words):
    f = state_file(state)
    f.parent.mkdir(mode=0o700)
    text = {"cut": '{"version": 1, "leases": [{"id": ',
            "version": '{"version": 2, "leases": []}',
            "bad lease": '{"version": 1, "leases": [{"service": "servers/virtual", "id": "vm-1"}]}'}
    if damage == "loop":
        os.symlink(f.name, f)
    else:
        f.write_text(text[damage])
    before = f.read_text() if damage != "loop" else None
    d = ld(wait=False)
    assert d.wait_exit() == 1
    log = d.log_text()
    assert "cannot read the leases" in log and str(f) in log and words in log, log
    assert "does not start without them" in log
    if before is not None:
        assert f.read_text() == before     # never replaced by an empty list


def test_metrics_and_cost_show_leases(ld, mock):
    d = ld()
    st, _, pending = put(d, "vm-msc1-01", {"expires_in": "4h", "action": "destroy"})
    assert st == 200
    # "2s": a deadline is kept in whole seconds, and "1s" may be due at once, never warned of.
    assert put(d, "vm-m2", {"expires_in": "2s"})[0] == 200
    wait_state(d, "vm-m2", "done")
    st, _, text = d.request("GET", "/_denvrd/metrics")
    assert st == 200
    promtool_check(promtool_path(), text.decode())
    m, _ = parse_metrics(text.decode())
    assert metric(m, "denvrd_leases", state="pending") == 1
    assert metric(m, "denvrd_leases", state="done") == 1
    assert metric(m, "denvrd_leases", state="failed") == 0
    assert metric(m, "denvrd_lease_actions_total", result="ok") == 1
    assert metric(m, "denvrd_lease_warnings_total") >= 1     # vm-m2 was warned of at once
    assert metric(m, "denvrd_leases_ending_soon") == 0
    left = metric(m, "denvrd_lease_seconds_remaining", service="servers/virtual", cluster="Msc1",
                  id="vm-msc1-01", action="destroy")
    assert 4 * 3600 - 10 <= left <= 4 * 3600
    # the cost view names the lease of a machine that runs
    st, _, cost = d.request_json("GET", "/_denvrd/cost")
    assert st == 200, cost
    (vm,) = [x for x in cost["machines"] if x["id"] == "vm-msc1-01"]
    assert vm["lease"]["action"] == "destroy" and vm["lease"]["expires_at"] == pending["expires_at"]
    assert all(x["lease"] is None for x in cost["machines"] if x["id"] != "vm-msc1-01")


def lease_metrics(d):
    st, _, text = d.request("GET", "/_denvrd/metrics")
    assert st == 200
    return parse_metrics(text.decode())[0]


def test_warned_ten_minutes_ahead_on_a_test_clock(ld, mock):
    """30 minutes of lease in no time: the test build's lease clock is moved on."""
    d = ld(binary=H.denvrd_test_hooks_binary())

    def advance(seconds):
        st, _, _ = d.request("GET", "/_denvrd/test/lease-clock?advance=%d" % seconds)
        assert st == 200

    assert put(d, "vm-w1", {"expires_in": "30m"})[0] == 200
    time.sleep(1.5)
    assert "ends in" not in d.log_text()
    assert metric(lease_metrics(d), "denvrd_leases_ending_soon") == 0
    advance(21 * 60)
    d.wait_for_log(r"lease on servers/virtual/vm-w1 .* ends in (5[0-9][0-9]|540)s")
    m = lease_metrics(d)
    assert metric(m, "denvrd_leases_ending_soon") == 1 and metric(m, "denvrd_lease_warnings_total") == 1
    assert 530 <= metric(m, "denvrd_lease_seconds_remaining", service="servers/virtual", cluster="Msc1",
                         id="vm-w1", action="stop") <= 540
    seq = upstream_seq(mock)
    assert [l["state"] for l in listed(d)] == ["pending"]
    advance(10 * 60)
    wait_state(d, "vm-w1", "done", timeout=10)
    assert len(ops_since(mock, seq, "StopServer")) == 1
    assert d.log_text().count("ends in") == 1     # warned once


def test_each_step_has_its_message_id(ld, mock, sock_dir):
    """In the journal: set, warned, acting, done and failed, each with the MESSAGE_ID denvrd(8)
    documents."""
    documented = re.findall(r"^\.It Li ([0-9a-f]{32})\n(\S+)",
                            (H.INTEGRATION_DIR.parents[1] / "daemon" / "denvrd.8").read_text(), re.M)
    ids = {word: mid for mid, word in documented}
    assert set(ids) >= {"set", "warned", "acting:", "done", "failed"}, documented
    jdir = sock_dir / "journal"
    jdir.mkdir()
    journal = JournalSocket(jdir / "socket")
    try:
        d = ld(wrapper=journal_namespace_wrapper(jdir), journal_stream=True, wait=False)
        e = journal.wait(MESSAGE=r"listening on tcp 127\.0\.0\.1:\d+", timeout=15)[0]
        host, port = re.search(r"listening on tcp (\S+):(\d+)", one(e, "MESSAGE")).groups()
        d.tcp4 = [(host, int(port))]
        H.wait_until(lambda: d.request("GET", "/_denvrd/healthz", timeout=2)[0] == 200, 10,
                     what="denvrd to answer")
        # "2s": a deadline is kept in whole seconds, and "1s" may be due at once, never warned of.
        assert put(d, "vm-j1", {"expires_in": "2s"})[0] == 200
        for word, prio in (("set", "6"), ("warned", "4"), ("acting:", "5"), ("done", "5")):
            (entry,) = journal.wait(MESSAGE_ID=ids[word], timeout=15)
            assert "vm-j1" in one(entry, "MESSAGE") and one(entry, "PRIORITY") == prio, entry
        mock.fail(count=-1, status=403, path=V + "StopServer")
        assert put(d, "vm-j2", {"expires_in": "1s"})[0] == 200
        (entry,) = journal.wait(MESSAGE_ID=ids["failed"], timeout=15)
        assert "vm-j2" in one(entry, "MESSAGE") and one(entry, "PRIORITY") == "3"
        assert all(HEX128.match(i) for i in ids.values()) and len(set(ids.values())) == len(ids)
    finally:
        journal.close()


# ---------------------------------------------------------------------------------------------
# the header and [leases]
# ---------------------------------------------------------------------------------------------
def create(d, name, lease=None, headers=None):
    h = dict(headers or {})
    if lease is not None:
        h["X-Denvrd-Lease"] = lease
    return d.request_json("POST", V + "CreateServer",
                          {"name": name, "rpool": "on-demand", "vpc": "denvr-test",
                           "configuration": "A100_40GB_PCIe_1x", "cluster": "Msc1",
                           "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDenvrdTestKey"],
                           "operatingSystemImage": "Ubuntu_22.04.4_LTS"}, headers=h)


def test_header_on_create_sets_a_lease(ld, mock):
    d = ld()
    seq = upstream_seq(mock)
    st, h, js = create(d, "vm-h1", "2s; action=destroy")
    assert st == 202, js
    m = HEADER.match(h["X-Denvrd-Lease"] or "")
    assert m and m.group(2) == "destroy", h["X-Denvrd-Lease"]
    sent = [r for r in mock.requests(since=seq, path=V + "CreateServer")]
    assert len(sent) == 1 and not any(k.lower() == "x-denvrd-lease" for k, _ in sent[0]["headers"])
    (l,) = listed(d)
    assert (l["id"], l["namespace"], l["action"], l["expires_at"]) == \
        ("vm-h1", "denvr-test", "destroy", m.group(1))
    wait_state(d, "vm-h1", "done")
    assert [a["id"] for a in ops_since(mock, seq, "DestroyServer")] == ["vm-h1"]


def test_header_on_start(ld, mock):
    d = ld()
    st, h, js = d.request_json("POST", V + "StartServer", {"id": "vm-h2", "cluster": "Msc1"},
                               headers={"X-Denvrd-Lease": "1h30m"})
    assert st == 202 and HEADER.match(h["X-Denvrd-Lease"]).group(2) == "stop", (st, js)
    (l,) = listed(d)
    assert l["id"] == "vm-h2" and 5390 <= l["expires_in"] <= 5400


@pytest.mark.parametrize("value", ["", "forever", "0s", "-1h", "4h; action=reboot", "4h; when=now"])
def test_bad_header_forwards_nothing(ld, mock, value):
    d = ld()
    seq = upstream_seq(mock)
    st, _, js = create(d, "vm-h3", value)
    assert st == 400 and "X-Denvrd-Lease" in error_of(js), (st, js)
    assert mock.requests(since=seq, path="/api/v1/") == [] and listed(d) == []


def test_header_twice_is_refused(ld, mock):
    d = ld()
    seq = upstream_seq(mock)
    body = '{"id": "vm-h5", "cluster": "Msc1"}'
    data = ('POST %sStartServer HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n'
            'X-Denvrd-Lease: 1h\r\nx-denvrd-lease: 400d\r\nContent-Length: %d\r\n'
            'Connection: close\r\n\r\n%s' % (V, len(body), body)).encode()
    reply = d.raw(data)
    assert reply.startswith(b"HTTP/1.1 400") and b"more than once" in reply, reply[:300]
    assert mock.requests(since=seq, path="/api/v1/") == [] and listed(d) == []


def test_header_elsewhere_is_refused(ld, mock):
    d = ld()
    seq = upstream_seq(mock)
    st, _, js = d.request_json("GET", V + "GetServers", headers={"X-Denvrd-Lease": "1h"})
    assert st == 400 and "X-Denvrd-Lease" in error_of(js)
    assert mock.requests(since=seq, path="/api/v1/") == []


def test_names_with_control_characters_set_no_lease(ld, mock, state):
    """Lease names are logged as they are: a newline in one would forge a log line."""
    d = ld()
    seq = upstream_seq(mock)
    for q in ({"cluster": "Msc1\nerror lease: forged"}, {"namespace": "ns\r\nforged"}):
        st, _, js = put(d, "vm-c1", {"expires_in": "1h"}, **q)
        assert st == 400 and "control characters" in error_of(js), (q, st, js)
    assert mock.requests(since=seq, path="/api/v1/") == []
    # upstream's answer names the machine with a newline: started, but without a lease
    mock.fail(count=1, status=202, path=V + "StartServer", body=json.dumps(
        {"result": {"id": "vm-c2\nerror lease: forged", "cluster": "Msc1"}, "success": True}))
    st, h, js = d.request_json("POST", V + "StartServer", {"id": "vm-c2", "cluster": "Msc1"},
                               headers={"X-Denvrd-Lease": "1h"})
    assert st == 202 and h["X-Denvrd-Lease"] is None and h["X-Denvrd-Lease-Error"], (st, js)
    assert listed(d) == [] and not state_file(state).exists()
    assert "forged" not in d.log_text()


def test_failed_create_sets_no_lease(ld, mock):
    d = ld()
    mock.fail(count=1, status=400, path=V + "CreateServer")
    st, h, _ = create(d, "vm-h4", "1h")
    assert st == 400 and h["X-Denvrd-Lease"] is None and listed(d) == []


def test_leases_section_gives_a_default_and_a_ceiling(ld, mock):
    d = ld(config_text_extra='[leases]\n"*" = "1h stop"\n')
    st, h, _ = d.request_json("POST", V + "StartServer", {"id": "vm-c1", "cluster": "Msc1"})
    assert st == 202 and HEADER.match(h["X-Denvrd-Lease"]), h["X-Denvrd-Lease"]
    (l,) = listed(d)
    assert 3590 <= l["expires_in"] <= 3600 and l["action"] == "stop"
    # shorter is fine, longer is not, on the header and on PUT
    st, _, _ = d.request_json("POST", V + "StartServer", {"id": "vm-c2", "cluster": "Msc1"},
                              headers={"X-Denvrd-Lease": "30m; action=destroy"})
    assert st == 202
    seq = upstream_seq(mock)
    st, _, js = d.request_json("POST", V + "StartServer", {"id": "vm-c3", "cluster": "Msc1"},
                               headers={"X-Denvrd-Lease": "2h"})
    assert st == 403 and '[leases] "*"' in error_of(js), js
    st, _, js = put(d, "vm-c1", {"expires_in": "3h"})
    assert st == 403 and '[leases] "*"' in error_of(js), js
    # "never none": such a caller may not remove a lease either
    st, _, js = d.request_json("DELETE", lease_path("servers/virtual", "vm-c1"))
    assert st == 403 and '[leases] "*"' in error_of(js) and "not remove" in error_of(js), js
    assert mock.requests(since=seq, path="/api/v1/") == []
    assert sorted(l["id"] for l in listed(d)) == ["vm-c1", "vm-c2"]
    # shortening is fine
    st, _, js = put(d, "vm-c1", {"expires_in": "10m"})
    assert st == 200 and 590 <= js["expires_in"] <= 600, js


# ---------------------------------------------------------------------------------------------
# rights
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def tokens(harness_token_log):
    made = {}
    for name in ("stopper", "reader", "other"):
        token, line, _ = P.new_token(name, harness_token_log)
        made[name] = (token, line)
    return made


def test_rights_on_leases(ld, mock, tokens):
    lines = "\n".join(l for _, l in tokens.values())
    d = ld(config_text_extra='[tokens]\n%s\n[rights]\n'
           '"token:stopper" = ["servers/virtual/GetServer", "servers/virtual/StopServer?id=vm-r1"]\n'
           '"token:reader" = "read-only"\n'
           '"token:other" = ["servers/virtual/GetServer", "servers/virtual/StopServer"]\n' % lines)
    auth = {name: {"Authorization": "ApiKey " + t} for name, (t, _) in tokens.items()}
    seq = upstream_seq(mock)
    # read-only: no lease at all (it may not stop anything)
    st, _, js = put(d, "vm-r1", {"expires_in": "1h"}, headers=auth["reader"])
    assert st == 403 and '"token:reader"' in error_of(js), js
    # the right to stop vm-r1 only: a stop lease there, not a destroy lease, not elsewhere
    st, _, js = put(d, "vm-r1", {"expires_in": "1h", "action": "destroy"}, headers=auth["stopper"])
    assert st == 403 and "DestroyServer" in error_of(js), js
    st, _, js = put(d, "vm-r2", {"expires_in": "1h"}, headers=auth["stopper"])
    assert st == 403, js
    assert mock.requests(since=seq, path="/api/v1/") == []
    st, _, js = put(d, "vm-r1", {"expires_in": "1h"}, headers=auth["stopper"])
    assert st == 200 and js["set_by"]["token"] == "stopper", js
    st, _, js = put(d, "vm-r3", {"expires_in": "1h"}, headers=auth["other"])
    assert st == 200, js
    # another's lease is not there to replace, even with the right to its action
    st, _, js = put(d, "vm-r1", {"expires_in": "5h"}, headers=auth["other"])
    assert st == 403 and "another caller" in error_of(js) and "stopper" in error_of(js), js
    # each sees its own; denvrd's own user (no rule) sees all
    assert [l["id"] for l in listed(d, auth["stopper"])] == ["vm-r1"]
    assert [l["id"] for l in listed(d, auth["other"])] == ["vm-r3"]
    assert listed(d, auth["reader"]) == []
    assert sorted(l["id"] for l in listed(d)) == ["vm-r1", "vm-r3"]
    # removing needs the right to the action too; another's lease is not there to remove
    st, _, _ = d.request_json("DELETE", lease_path("servers/virtual", "vm-r3"), headers=auth["stopper"])
    assert st == 404
    st, _, _ = d.request_json("DELETE", lease_path("servers/virtual", "vm-r1"), headers=auth["stopper"])
    assert st == 200
    assert sorted(l["id"] for l in listed(d)) == ["vm-r3"]
    # the header is judged the same way before anything is forwarded
    seq = upstream_seq(mock)
    st, _, js = d.request_json("POST", V + "StopServer", {"id": "vm-r1", "cluster": "Msc1"},
                               headers=dict(auth["stopper"], **{"X-Denvrd-Lease": "1h"}))
    assert st == 400, js   # StopServer takes no lease
    assert mock.requests(since=seq, path="/api/v1/") == []


def test_replacing_a_lease_needs_the_right_to_its_action(ld, mock, tokens):
    """A caller that may stop but not destroy cannot undo a destroy lease by putting a year-long
    stop lease in its place, neither with PUT nor with the header, as it could not DELETE it:
    another's lease is not its to replace at all, and its own, set while it had the right, not
    once the right is gone."""
    lines = "\n".join(l for _, l in tokens.values())
    rule = ('"token:stopper" = ["servers/virtual/GetServer", "servers/virtual/StopServer", '
            '"servers/virtual/StartServer"%s]\n')
    d = ld(config_text_extra='[tokens]\n%s\n[rights]\n%s"token:reader" = "read-only"\n'
           '"token:other" = "read-only"\n' % (lines, rule % ', "servers/virtual/DestroyServer"'))
    stopper = {"Authorization": "ApiKey " + tokens["stopper"][0]}
    st, _, js = put(d, "vm-x1", {"expires_in": "1h", "action": "destroy"})      # denvrd's own user
    assert st == 200, js
    st, _, js = put(d, "vm-x2", {"expires_in": "1h", "action": "destroy"}, headers=stopper)
    assert st == 200, js
    # the stopper loses the right to destroy
    text = d.config_path.read_text().replace(rule % ', "servers/virtual/DestroyServer"', rule % "")
    H.write_private(d.config_path, text)
    d.reload()
    d.wait_for_log(r"configuration reloaded")
    seq = upstream_seq(mock)
    st, _, js = put(d, "vm-x1", {"expires_in": "300d"}, headers=stopper)
    assert st == 403 and "another caller" in error_of(js), js
    for vm in ("vm-x1", "vm-x2"):
        st, _, js = put(d, vm, {"expires_in": "300d"}, headers=stopper)
        assert st == 403, js
        st, _, js = d.request_json("POST", V + "StartServer", {"id": vm, "cluster": "Msc1"},
                                   headers=dict(stopper, **{"X-Denvrd-Lease": "300d"}))
        assert st == 403, js
    assert "DestroyServer" in error_of(js), js     # its own lease: the right to destroy is missing
    assert mock.requests(since=seq, path="/api/v1/") == []
    for vm in ("vm-x1", "vm-x2"):
        [l] = [l for l in listed(d) if l["id"] == vm]
        assert l["action"] == "destroy" and l["expires_in"] <= 3600, l
    # its own stop lease is the stopper's to replace
    st, _, js = put(d, "vm-x4", {"expires_in": "1h"}, headers=stopper)
    assert st == 200, js
    st, _, js = put(d, "vm-x4", {"expires_in": "2h"}, headers=stopper)
    assert st == 200 and js["set_by"]["token"] == "stopper", js
    # a destroy lease that failed is history: a new lease may take its place
    mock.fail(count=1, status=400, path=V + "DestroyServer")
    st, _, js = put(d, "vm-x3", {"expires_in": "1s", "action": "destroy"})
    assert st == 200, js
    wait_state(d, "vm-x3", "failed")
    st, _, js = put(d, "vm-x3", {"expires_in": "1h"}, headers=stopper)
    assert st == 200 and js["action"] == "stop" and js["state"] == "pending", js


def test_cost_shows_a_caller_only_the_leases_it_sees(ld, mock, tokens):
    lines = "\n".join(l for _, l in tokens.values())
    d = ld(config_text_extra='[tokens]\n%s\n[rights]\n"token:reader" = "read-only"\n'
           '"token:stopper" = "off"\n"token:other" = "off"\n' % lines)
    assert put(d, "vm-msc1-01", {"expires_in": "4h"})[0] == 200
    reader = {"Authorization": "ApiKey " + tokens["reader"][0]}

    def lease_of(headers):
        st, _, cost = d.request_json("GET", "/_denvrd/cost", headers=headers)
        assert st == 200, cost
        (vm,) = [x for x in cost["machines"] if x["id"] == "vm-msc1-01"]
        return vm["lease"]
    assert lease_of(None)["action"] == "stop"
    assert lease_of(reader) is None and listed(d, reader) == []


# ---------------------------------------------------------------------------------------------
# durability: SIGKILL at every step of a state write
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("step", STEPS)
def test_kill_at_every_step_of_a_write(ld, mock, state, step):
    d = ld()
    assert put(d, "vm-old", {"expires_in": "4h"})[0] == 200
    d.stop()
    old = json.loads(state_file(state).read_text())

    d = ld(binary=H.denvrd_test_hooks_binary(), env={"DENVRD_TEST_LEASE_KILL_AT": step})
    try:
        put(d, "vm-new", {"expires_in": "4h"}, )
    except (ConnectionError, OSError, AssertionError):
        pass
    assert d.wait_exit() == -signal.SIGKILL
    now = json.loads(state_file(state).read_text())
    ids = sorted(l["id"] for l in now["leases"])
    assert ids in (["vm-old"], ["vm-new", "vm-old"]), (step, ids)
    if step in ("opened", "written", "synced"):
        assert now == old
    if step == "dir-synced":
        assert ids == ["vm-new", "vm-old"]
    d = ld()
    assert sorted(l["id"] for l in listed(d)) == ids
