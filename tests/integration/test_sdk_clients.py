# SPDX-License-Identifier: MIT
"""The Denvr SDKs through denvrd, as they really behave.

The Go SDK (go-denvr, and the Terraform provider through it) sends every field of its
generated types, empty when the caller left it unset ("Cluster=", "cluster":"", null), labels
bodies with any of the JSON types of the API document, and retries through
hashicorp/go-retryablehttp: every 5xx but 501, 429 and connection failures, three times, and
then drops the body ("giving up after 4 attempt(s)").  The Python SDK retries 429 and 5xx of
idempotent requests and honours Retry-After.  The test client below replays that policy
(with shorter pauses: what is counted here is upstream calls, not seconds).
"""

import http.client
import json
import socket
import threading
import time

import pytest

import denvrd_harness as H

V = "/api/v1/servers/virtual/"
DEFAULTS = {"cluster": "Msc1", "vpcid": "denvr-test", "rpool": "on-demand"}


def go_client_call(d, method, target, body=None, retries=3, pause=0.2, headers=None):
    """One SDK call as go-retryablehttp makes it: -> (attempts, status, body or None).
    Retries 429, 5xx but 501 and connection errors; honours Retry-After; after the last try
    the body is dropped (None), as the Go SDK drops it."""
    attempts = 0
    while True:
        attempts += 1
        try:
            st, h, data = d.request(method, target, body, headers)
        except (OSError, http.client.HTTPException):
            st, h, data = 0, {}, b""
        retry = st == 0 or st == 429 or (st >= 500 and st != 501)
        if not retry:
            return attempts, st, data
        if attempts > retries:
            return attempts, st, None
        ra = h.get("Retry-After") if st else None
        time.sleep(float(ra) if ra and ra.isdigit() else pause * 2 ** (attempts - 1))


def upstream_calls(mock, since, path):
    return [r for r in mock.requests(since=since) if r["path"].split("?")[0] == path]


def last_seq(mock):
    recs = mock.requests()
    return recs[-1]["seq"] if recs else 0


# ---------------------------------------------------------------------------------------------
# what go-denvr sends: empty values, JSON types of the API document
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ct", ["application/json", "application/json-patch+json",
                                "text/json", "application/*+json",
                                "application/json; charset=utf-8"],
                         ids=["json", "json-patch", "text-json", "star-json", "json-charset"])
def test_go_bodies_empty_members_filled_with_every_json_type(start_denvrd, mock, ct):
    d = start_denvrd(defaults=DEFAULTS)
    since = last_seq(mock)
    body = {"id": "vm-go", "namespace": "", "cluster": None}
    st, _, data = d.request("POST", V + "StartServer", json.dumps(body).encode(),
                            {"Content-Type": ct})
    assert 200 <= st < 300, (ct, st, data[:300])
    rec = upstream_calls(mock, since, V + "StartServer")[0]
    assert json.loads(H.MockProcess.body(rec)) == {"id": "vm-go", "namespace": "denvr-test",
                                                   "cluster": "Msc1"}
    assert H.MockProcess.header(rec, "Content-Type") == ct


def test_go_create_server_minimal_gets_its_defaults(start_denvrd, mock):
    """A minimal CreateServer as the Go types marshal it: every string member present."""
    d = start_denvrd(defaults=DEFAULTS)
    since = last_seq(mock)
    body = {"name": "go-1", "rpool": "", "vpc": "", "configuration": "A100_40GB_PCIe_1x",
            "cluster": "", "ssh_keys": ["ssh-ed25519 AAAA"], "snapshotName": "",
            "operatingSystemImage": "", "personalStorageMountPath": "", "rootDiskSize": 0,
            "persistStorage": False, "directStorageMountPath": "", "selectedNode": None}
    st, _, data = d.request("POST", V + "CreateServer", json.dumps(body).encode(),
                            {"Content-Type": "application/json-patch+json"})
    assert 200 <= st < 300, (st, data[:300])
    got = json.loads(H.MockProcess.body(upstream_calls(mock, since, V + "CreateServer")[0]))
    # required with a default: filled; optional (rpool, snapshotName ...): kept as sent
    assert got["vpc"] == "denvr-test" and got["cluster"] == "Msc1"
    assert got["rpool"] == "" and got["snapshotName"] == "" and got["selectedNode"] is None


def test_go_queries_required_empties_filled_optional_kept(start_denvrd, mock):
    d = start_denvrd(defaults=DEFAULTS)
    for target, sent in (
            (V + "GetServer?Id=vm-1&Cluster=&Namespace=", "Id=vm-1&Cluster=Msc1&Namespace=denvr-test"),
            (V + "GetServers?Cluster=", "Cluster="),            # optional: every cluster
            (V + "GetAvailability?cluster=&resourcePool=&reportNodes=false",
             "cluster=Msc1&resourcePool=&reportNodes=false")):
        since = last_seq(mock)
        st, _, data = d.request("GET", target)
        assert 200 <= st < 300, (target, st, data[:300])
        rec = upstream_calls(mock, since, target.split("?")[0])[0]
        assert rec["path"].split("?", 1)[1] == sent, rec["path"]


# ---------------------------------------------------------------------------------------------
# one layer of retries
# ---------------------------------------------------------------------------------------------
def test_persistent_503_costs_one_round_per_client_call(start_denvrd, mock):
    """denvrd retries 3 times (retries = 3), gives up, and the Go client's own three retries
    are answered from that failure: 4 upstream calls for the whole SDK call, not 16."""
    d = start_denvrd(defaults=DEFAULTS)
    mock.fail(count=-1, status=503, path=V + "GetServers")
    since = last_seq(mock)
    attempts, st, data = go_client_call(d, "GET", V + "GetServers")
    assert attempts == 4 and st == 503 and data is None
    first = len(upstream_calls(mock, since, V + "GetServers"))
    assert first <= 4, first
    # the replay says what it is
    st, h, data = d.request("GET", V + "GetServers")
    assert st == 503 and "not sent again" in h.get("X-Denvrd-Replayed", ""), dict(h)
    assert h.get("Retry-After") == "1"
    # a second SDK call within the memory costs nothing upstream
    go_client_call(d, "GET", V + "GetServers")
    assert len(upstream_calls(mock, since, V + "GetServers")) == first
    st, _, text = d.request("GET", "/_denvrd/metrics")
    assert b"denvrd_upstream_failures_replayed_total " in text


def test_persistent_503_new_requests_are_throttled(start_denvrd, mock):
    """While upstream keeps failing, denvrd stops adding retries of its own (retry
    throttling): other requests then cost one upstream call per client try at most."""
    d = start_denvrd(defaults=DEFAULTS)
    mock.fail(count=-1, status=503, path=V + "GetServer")
    since = last_seq(mock)
    for i in range(4):
        attempts, st, _ = go_client_call(d, "GET", V + "GetServer?Id=vm-%d" % i)
        assert st == 503
    calls = len(upstream_calls(mock, since, V + "GetServer"))
    assert calls <= 4 + 3, calls   # the first call's round, then one call per later request


def test_post_keeps_todays_rule(start_denvrd, mock):
    """Non-idempotent requests are never retried nor replayed."""
    d = start_denvrd(defaults=DEFAULTS)
    mock.fail(count=-1, status=503, path=V + "StartServer")
    since = last_seq(mock)
    for _ in range(2):
        st, h, _ = d.request("POST", V + "StartServer", b'{"id":"vm-1"}',
                             {"Content-Type": "application/json"})
        assert st == 503 and "X-Denvrd-Replayed" not in h
    assert len(upstream_calls(mock, since, V + "StartServer")) == 2


class ClosingUpstream:
    """A TCP port that accepts and closes every connection at once, counting them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = False
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            c.close()

    def close(self):
        self.stop = True
        self.sock.close()


def test_persistent_connection_failure_costs_one_round_per_client_call(start_denvrd):
    up = ClosingUpstream()
    try:
        d = start_denvrd(defaults=DEFAULTS, upstream="https://127.0.0.1:%d" % up.port,
                         daemon={"request_timeout": 20})
        attempts, st, data = go_client_call(d, "GET", V + "GetServers")
        assert attempts == 4 and st in (502, 504) and data is None, (attempts, st)
        assert up.accepted <= 4, up.accepted
    finally:
        up.close()


# ---------------------------------------------------------------------------------------------
# errors a Go caller can read
# ---------------------------------------------------------------------------------------------
def test_wrong_password_reaches_a_go_caller_within_a_second(start_denvrd, mock):
    mock.reject_logins(mode="password")
    d = start_denvrd(credentials="password", defaults=DEFAULTS)
    t0 = time.monotonic()
    attempts, st, data = go_client_call(d, "GET", V + "GetServers")
    assert time.monotonic() - t0 < 1.0 + 5.0 * (H.TIMEOUT_SCALE - 1)
    assert attempts == 1 and st == 424, (attempts, st)
    assert "upstream rejected the password" in json.loads(data)["error"]["message"]
    # readiness still says not ready
    assert d.request("GET", "/_denvrd/readyz")[0] == 503


def test_untrusted_certificate_reaches_a_go_caller_within_a_second(start_denvrd, start_mock):
    bad = start_mock(untrusted=True)
    d = start_denvrd(upstream=bad, defaults=DEFAULTS)
    t0 = time.monotonic()
    attempts, st, data = go_client_call(d, "GET", V + "GetServers")
    assert time.monotonic() - t0 < 1.0 + 5.0 * (H.TIMEOUT_SCALE - 1)
    assert attempts == 1 and st == 424, (attempts, st)
    assert "not trusted" in json.loads(data)["error"]["message"]
