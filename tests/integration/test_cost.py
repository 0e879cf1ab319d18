# SPDX-License-Identifier: MIT
"""GET /_denvrd/cost and the cost metrics of /_denvrd/metrics.

The figures are checked against the mock's own tables (tests/mock_denvr.py: its GetServers,
GetApplications and both GetConfigurations, as operation_result() makes them), never against
what denvrd said before.  Upstream traffic is counted with the mock's /_mock/requests: the
four reads happen only when someone asks, at most once per [daemon] cost_interval, once for
any number of concurrent askers, again after a change sent through denvrd to the service, and
a failed read caches nothing.  [rights]: a caller sees the cost only when its rule lets it GET
GetServers and GetApplications; a refused one costs no upstream request.
"""

import datetime
import json
import threading
import time

import pytest

import denvrd_harness as H
from test_systemd import metric, parse_metrics, promtool_check, promtool_path

M = H.mock_denvr
COST = "/_denvrd/cost"
SERVERS = "/api/v1/servers/virtual/GetServers"
SERVER_CONFIGS = "/api/v1/servers/virtual/GetConfigurations"
APPS = "/api/v1/servers/applications/GetApplications"
APP_CONFIGS = "/api/v1/servers/applications/GetConfigurations"
READS = (SERVERS, SERVER_CONFIGS, APPS, APP_CONFIGS)
NS = M.TENANT


def expected_machines(stopped=()):
    """(service, id, cluster, configuration, price) of every machine not offline, from the
    mock's tables; stopped: VM ids the test stopped (OFFLINE now)."""
    _, servers = M.operation_result(SERVERS, [], None, H.DEFAULT_USER)
    _, apps = M.operation_result(APPS, [], None, H.DEFAULT_USER)
    prices = {c["name"]: c["price"] for c in M.SERVER_CONFIGS}
    out = []
    for s in servers["items"]:
        if s["status"] != "OFFLINE" and s["id"] not in stopped:
            out.append(("servers/virtual", s["id"], s["cluster"], s["configuration"],
                        prices[s["configuration"]]))
    for a in apps["items"]:
        inst, hw = a["instanceDetails"], a["hardwarePackage"]
        if inst["status"] != "OFFLINE":
            out.append(("servers/applications", inst["id"], inst["cluster"], hw["name"],
                        hw["pricePerHour"]))
    return sorted(out)


def got_machines(cost):
    return sorted((m["service"], m["id"], m["cluster"], m["configuration"], m["price_per_hour"])
                  for m in cost["machines"])


def get_cost(d, headers=None):
    st, _, body = d.request("GET", COST, headers=headers)
    return st, json.loads(body)


def reads_seen(mock, since=0):
    """How many times the mock was asked each of the four reads."""
    paths = [r["path"].split("?")[0] for r in mock.requests(since=since)]
    return {p: paths.count(p) for p in READS}


def last_seq(mock):
    reqs = mock.requests()
    return reqs[-1]["seq"] if reqs else 0


def test_cost_is_the_mocks_prices_and_read_once_per_interval(start_denvrd, mock):
    d = start_denvrd()
    time.sleep(0.5)
    assert reads_seen(mock) == dict.fromkeys(READS, 0), "read upstream while nobody asked"

    st, cost = get_cost(d)
    assert st == 200, cost
    want = expected_machines()
    assert got_machines(cost) == want
    assert len(want) >= 2 and any(m[0] == "servers/applications" for m in want)
    assert cost["total_per_hour"] == pytest.approx(sum(m[4] for m in want))
    assert cost["unpriced"] == 0
    assert "currency" not in cost   # the mock names none
    assert all(m["lease"] is None and m["status"] == "ONLINE" for m in cost["machines"])
    assert [m["namespace"] for m in cost["machines"] if m["service"] == "servers/virtual"] == \
        [NS] * sum(1 for m in want if m[0] == "servers/virtual")
    as_of = datetime.datetime.strptime(cost["as_of"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)
    assert abs(as_of.timestamp() - time.time()) < 5 and cost["age_seconds"] == 0
    assert reads_seen(mock) == dict.fromkeys(READS, 1)

    # within the interval (60 s by default): from the cache, no upstream request
    time.sleep(1.1)
    seq = last_seq(mock)
    st, again = get_cost(d)
    assert st == 200 and got_machines(again) == want
    assert again["age_seconds"] >= 1 and again["as_of"] == cost["as_of"]
    assert mock.requests(since=seq) == []


def test_cost_read_again_after_the_interval(start_denvrd, mock):
    d = start_denvrd(daemon={"cost_interval": 1})
    assert get_cost(d)[0] == 200
    st, _ = get_cost(d)
    assert st == 200 and reads_seen(mock) == dict.fromkeys(READS, 1)
    time.sleep(1.3)
    st, cost = get_cost(d)
    assert st == 200 and cost["age_seconds"] == 0
    assert reads_seen(mock) == dict.fromkeys(READS, 2)


def test_a_stop_through_denvrd_drops_the_virtual_reads(start_denvrd, mock):
    mock.config(transition_seconds=0.3)
    d = start_denvrd()
    st, cost = get_cost(d)
    assert st == 200 and ("servers/virtual", "vm-msc1-01") in [(m["service"], m["id"])
                                                              for m in cost["machines"]]
    st, _, body = d.request_json("POST", "/api/v1/servers/virtual/StopServer",
                                 {"id": "vm-msc1-01", "namespace": NS, "cluster": "Msc1"})
    assert st == 202, body
    time.sleep(0.5)   # the mock's transition: STOPPING, then OFFLINE
    seq = last_seq(mock)
    st, cost = get_cost(d)
    assert st == 200
    assert got_machines(cost) == expected_machines(stopped={"vm-msc1-01"})
    # the virtual service's reads again, the applications' still cached
    assert reads_seen(mock, since=seq) == {SERVERS: 1, SERVER_CONFIGS: 1, APPS: 0, APP_CONFIGS: 0}


def test_concurrent_askers_share_one_fetch(start_denvrd, mock):
    d = start_denvrd()
    mock.delay(1.0, count=1, path=SERVERS)
    results = [None] * 6

    def ask(i):
        results[i] = get_cost(d)
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r is not None and r[0] == 200 for r in results), results
    assert len({json.dumps(r[1]["machines"], sort_keys=True) for r in results}) == 1
    assert got_machines(results[0][1]) == expected_machines()
    assert reads_seen(mock) == dict.fromkeys(READS, 1)


def test_a_failed_read_is_an_error_envelope_and_caches_nothing(start_denvrd, mock):
    d = start_denvrd(defaults={"retries": 0})
    mock.fail(count=1, status=500, path=APPS)
    st, body = get_cost(d)
    assert st == 500, body
    assert body["success"] is False and APPS in body["error"]["message"]
    assert reads_seen(mock)[APPS] == 1
    # nothing of that fetch was kept: all four are read again
    seq = last_seq(mock)
    st, cost = get_cost(d)
    assert st == 200 and got_machines(cost) == expected_machines()
    assert reads_seen(mock, since=seq) == dict.fromkeys(READS, 1)


def test_a_price_not_known_is_null_and_counted(start_denvrd, mock):
    """A configuration missing from GetConfigurations: its machines are unpriced, not free."""
    d = start_denvrd()
    want = expected_machines()
    gone = [m for m in want if m[0] == "servers/virtual"][0][3]
    configs = [c for c in M.SERVER_CONFIGS if c["name"] != gone]
    mock.respond(count=1, status=200, body=M.envelope({"items": configs}), path=SERVER_CONFIGS)
    st, cost = get_cost(d)
    assert st == 200, cost
    unpriced = [m for m in cost["machines"] if m["configuration"] == gone]
    assert unpriced and all(m["price_per_hour"] is None for m in unpriced)
    assert cost["unpriced"] == len(unpriced) == sum(1 for m in want if m[3] == gone)
    assert cost["total_per_hour"] == pytest.approx(sum(m[4] for m in want if m[3] != gone))


def test_a_currency_named_upstream_is_shown(start_denvrd, mock):
    d = start_denvrd()
    configs = [dict(c, currency="USD") for c in M.SERVER_CONFIGS]
    mock.respond(count=1, status=200, body=M.envelope({"items": configs}), path=SERVER_CONFIGS)
    st, cost = get_cost(d)
    assert st == 200 and cost["currency"] == "USD", cost
    assert got_machines(cost) == expected_machines()


def test_metrics_hold_the_cost_series(start_denvrd, mock):
    promtool = promtool_path()
    d = start_denvrd()
    st, _, body = d.request("GET", "/_denvrd/metrics")
    assert st == 200
    text = body.decode()
    promtool_check(promtool, text)
    samples, _ = parse_metrics(text)
    want = expected_machines()
    assert metric(samples, "denvrd_cost_up") == 1
    assert metric(samples, "denvrd_cost_per_hour") == pytest.approx(sum(m[4] for m in want))
    counts = {}
    for _, _, cluster, conf, _ in want:
        counts[(cluster, conf)] = counts.get((cluster, conf), 0) + 1
    servers = {k: v for k, v in samples.items() if k[0] == "denvrd_servers"}
    assert len(servers) == len(counts)
    for (cluster, conf), n in counts.items():
        assert metric(samples, "denvrd_servers", cluster=cluster, configuration=conf,
                      status="ONLINE") == n
    assert "# TYPE denvrd_lease_seconds_remaining gauge" in text
    # the metrics and the cost share the reads
    assert get_cost(d)[0] == 200 and reads_seen(mock) == dict.fromkeys(READS, 1)


def test_metrics_without_the_cost_when_it_cannot_be_read(start_denvrd, mock):
    d = start_denvrd(defaults={"retries": 0})
    mock.fail(count=1, status=503, path=SERVERS)
    st, _, body = d.request("GET", "/_denvrd/metrics")
    assert st == 200
    samples, _ = parse_metrics(body.decode())
    assert metric(samples, "denvrd_cost_up") == 0
    assert metric(samples, "denvrd_build_info", version=metric_version(samples)) == 1
    assert not [k for k in samples if k[0] in ("denvrd_servers", "denvrd_cost_per_hour")]


def test_a_slow_cost_read_does_not_hold_the_metrics_up(start_denvrd, mock):
    d = start_denvrd()
    mock.delay(6.5, count=1, path=SERVERS)
    t0 = time.monotonic()
    st, _, body = d.request("GET", "/_denvrd/metrics", timeout=30)
    took = time.monotonic() - t0
    assert st == 200 and 4 < took < 6.4, took   # denvrd waits 5 s for the cost, no longer
    samples, _ = parse_metrics(body.decode())
    assert metric(samples, "denvrd_cost_up") == 0
    assert metric(samples, "denvrd_requests_in_flight") == 1
    # the reads went on without the scrape and were kept for the next asker
    H.wait_until(lambda: mock.requests(path=SERVERS)[0]["t_end"] is not None, 10,
                 what="the delayed GetServers to be answered")
    time.sleep(0.3)
    st, cost = get_cost(d)
    assert st == 200 and got_machines(cost) == expected_machines()
    assert reads_seen(mock) == dict.fromkeys(READS, 1)


def test_denvrd_stops_with_cost_reads_under_way(start_denvrd, mock):
    d = start_denvrd()
    mock.delay(10, count=1, path=SERVERS)
    st, _, body = d.request("GET", "/_denvrd/metrics", timeout=30)
    assert st == 200 and b"denvrd_cost_up 0" in body
    assert mock.requests(path=SERVERS)[0]["t_end"] is None   # still under way
    t0 = time.monotonic()
    assert d.stop() == 0 and time.monotonic() - t0 < 4


def test_metrics_of_a_denvrd_that_cannot_log_in_read_nothing(start_denvrd, mock):
    d = start_denvrd(credentials={"username": H.DEFAULT_USER, "password": "not-the-password"})
    d.wait_for_log(r"login")
    t0 = time.monotonic()
    st, _, body = d.request("GET", "/_denvrd/metrics")
    assert st == 200 and time.monotonic() - t0 < 5
    assert metric(parse_metrics(body.decode())[0], "denvrd_cost_up") == 0
    assert reads_seen(mock) == dict.fromkeys(READS, 0)


def metric_version(samples):
    return [dict(k[1])["version"] for k in samples if k[0] == "denvrd_build_info"][0]


def test_rights_decide_who_sees_the_cost(start_denvrd, mock, harness_token_log):
    import peers as P
    names = ("ro", "off", "vmonly")
    toks = {n: P.new_token(n, harness_token_log) for n in names}
    rights = '"token:ro" = "read-only"\n"token:off" = "off"\n' \
             '"token:vmonly" = ["servers/virtual/GetServers", "servers/virtual/GetConfigurations"]\n'
    d = start_denvrd('[rights]\n%s\n[tokens]\n%s\n' % (rights, "\n".join(t[1] for t in toks.values())))

    def auth(n):
        return {"Authorization": "ApiKey " + toks[n][0]}
    for n in ("off", "vmonly"):
        st, body = get_cost(d, auth(n))
        assert st == 403, body
        assert body["success"] is False and '"token:%s"' % n in body["error"]["message"]
        # the metrics of a caller that may not see the cost leave it out, and read nothing
        st, _, text = d.request("GET", "/_denvrd/metrics", headers=auth(n))
        if n == "vmonly":
            assert st == 200 and metric(parse_metrics(text.decode())[0], "denvrd_cost_up") == 0
    assert reads_seen(mock) == dict.fromkeys(READS, 0)
    st, cost = get_cost(d, auth("ro"))
    assert st == 200 and got_machines(cost) == expected_machines()


def test_a_cached_answer_that_is_not_an_envelope_is_an_error(start_denvrd, mock):
    """All four reads answered from the GET cache, one of them a 2xx that is not a JSON envelope
    (cached from a client's own GET): a 502 envelope, and denvrd lives on."""
    cache = "[cache]\n" + "".join('"%s" = 300\n' % p for p in READS)
    d = start_denvrd(config_text_extra=cache, defaults={"cluster": ""})   # GetServers as it is
    mock.fail(count=1, status=200, path=SERVERS, body="<html>maintenance</html>", content_type="text/html")
    for p in READS:
        out = d.raw(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % p.encode())
        assert out.startswith(b"HTTP/1.1 200"), (p, out[:200])
    seq = last_seq(mock)
    for _ in range(3):
        st, body = get_cost(d)
        assert st == 502, body
        assert body["success"] is False and SERVERS in body["error"]["message"]
    assert reads_seen(mock, since=seq) == dict.fromkeys(READS, 0)
    assert d.request("GET", "/_denvrd/healthz")[0] == 200


def test_a_login_that_fails_while_the_reads_wait_for_it(start_denvrd, mock):
    """The four reads wait for the first login, which fails: every waiter is woken with the
    failure, the first one ends the fetch and cancels the other three while the login holder
    is still waking them.  One error envelope, and denvrd lives on."""
    mock.delay(1.5, path="/api/TokenAuth/Authenticate")
    d = start_denvrd(credentials={"username": H.DEFAULT_USER, "password": "not-the-password"})
    st, body = get_cost(d)
    assert st in (424, 503), body
    assert body["success"] is False and "not logged in" in body["error"]["message"], body
    assert reads_seen(mock) == dict.fromkeys(READS, 0)
    assert d.request("GET", "/_denvrd/healthz")[0] == 200
