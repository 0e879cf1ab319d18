# SPDX-License-Identifier: MIT
"""GET cache with coalescing ([cache] section): one upstream call for many
identical concurrent GETs, TTL expiry, no-cache, invalidation by writes to
the same service, per-credential keying, 2xx only."""

import json
import threading

from denvrd_harness import wait_until

SERVERS = "/api/v1/servers/virtual/GetServers"
CONFIGS = "/api/v1/servers/virtual/GetConfigurations"
CACHE = '[cache]\n"%s" = 300\n"%s" = 1\n' % (SERVERS, CONFIGS)


def upstream_count(mock, path):
    return sum(1 for r in mock.api_requests() if r["path"].split("?")[0] == path)


def get(d, path, headers=None):
    status, h, body = d.request("GET", path, headers=headers)
    return status, h, body


def test_concurrent_identical_gets_share_one_upstream_call(start_denvrd, mock):
    d = start_denvrd(config_text_extra=CACHE)
    mock.delay(1.0, count=1, path=SERVERS)   # keeps the first call in flight
    n = 25
    results = [None] * n
    barrier = threading.Barrier(n)

    def worker(i):
        barrier.wait()
        results[i] = get(d, SERVERS + "?Cluster=Msc1")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert all(r[0] == 200 for r in results), [r[0] for r in results]
    bodies = {r[2] for r in results}
    assert len(bodies) == 1
    assert upstream_count(mock, SERVERS) == 1
    assert {r[1]["X-Cache"] for r in results} <= {"MISS", "HIT"}


def test_hit_carries_age_and_x_cache(start_denvrd, mock):
    d = start_denvrd(config_text_extra=CACHE)
    s1, h1, b1 = get(d, SERVERS)
    s2, h2, b2 = get(d, SERVERS)
    assert (s1, s2) == (200, 200)
    assert h1["X-Cache"] == "MISS" and h1["Age"] == "0"
    assert h2["X-Cache"] == "HIT" and int(h2["Age"]) >= 0
    assert b1 == b2
    assert h2["Content-Type"].startswith("application/json")
    assert upstream_count(mock, SERVERS) == 1


def test_ttl_expiry(start_denvrd, mock):
    d = start_denvrd(config_text_extra=CACHE)
    assert get(d, CONFIGS)[1]["X-Cache"] == "MISS"
    # Hits until the 1 s TTL runs out; then exactly one more upstream call.
    wait_until(lambda: get(d, CONFIGS)[1]["X-Cache"] == "MISS", timeout=5,
               what="cache entry to expire")
    assert upstream_count(mock, CONFIGS) == 2


def test_no_cache_bypasses(start_denvrd, mock):
    d = start_denvrd(config_text_extra=CACHE)
    get(d, SERVERS)
    s, h, _ = get(d, SERVERS, headers={"Cache-Control": "no-cache"})
    assert s == 200
    assert "X-Cache" not in h
    assert upstream_count(mock, SERVERS) == 2
    # The bypass did not disturb the entry.
    assert get(d, SERVERS)[1]["X-Cache"] == "HIT"


def test_write_to_service_invalidates(start_denvrd, mock):
    d = start_denvrd(config_text_extra=CACHE, defaults={"tenant": "acme"})
    get(d, SERVERS)
    assert get(d, SERVERS)[1]["X-Cache"] == "HIT"
    s, _, _ = d.request("POST", "/api/v1/servers/virtual/StartServer",
                        body=json.dumps({"id": "vm-1"}).encode(),
                        headers={"Content-Type": "application/json"})
    assert s in (200, 202)
    assert get(d, SERVERS)[1]["X-Cache"] == "MISS"
    assert upstream_count(mock, SERVERS) == 2


def test_write_to_other_service_keeps_entries(start_denvrd, mock):
    d = start_denvrd(config_text_extra=CACHE)
    get(d, SERVERS)
    s, _, _ = d.request("POST", "/api/v1/vpcs/CreateVpc",
                        body=json.dumps({"id": "v1"}).encode(),
                        headers={"Content-Type": "application/json"})
    assert s in (200, 202)
    assert get(d, SERVERS)[1]["X-Cache"] == "HIT"


def test_only_2xx_cached(start_denvrd, mock):
    d = start_denvrd(config_text_extra=CACHE, defaults={"retries": 0})
    mock.fail(count=1, status=500, path=SERVERS)
    s, h, _ = get(d, SERVERS)
    assert s == 500
    s, h, _ = get(d, SERVERS)
    assert s == 200 and h["X-Cache"] == "MISS"
    assert upstream_count(mock, SERVERS) == 2


def test_uncached_paths_always_go_upstream(start_denvrd, mock):
    d = start_denvrd(config_text_extra=CACHE)
    for _ in range(3):
        s, h, _ = get(d, "/api/v1/clusters/GetAll")
        assert s == 200 and "X-Cache" not in h
    assert upstream_count(mock, "/api/v1/clusters/GetAll") == 3


def test_cache_keyed_by_credential(start_denvrd, mock):
    d = start_denvrd(config_text_extra=CACHE)
    get(d, SERVERS)
    assert get(d, SERVERS)[1]["X-Cache"] == "HIT"

    newkey = "dvr-other-key-for-cache-test-0123456789"
    mock.config(apikey=newkey)
    cfg = d.config_path.read_text()
    old = [l for l in cfg.splitlines() if l.startswith("apikey = ")][0]
    d.config_path.write_text(cfg.replace(old, 'apikey = "%s"' % newkey))
    d.reload()
    d.wait_for_log(r"configuration reloaded")

    s, h, _ = get(d, SERVERS)
    assert s == 200 and h["X-Cache"] == "MISS"
    assert upstream_count(mock, SERVERS) == 2
    last = [r for r in mock.api_requests() if r["path"].split("?")[0] == SERVERS][-1]
    assert mock.header(last, "Authorization") == "ApiKey " + newkey
