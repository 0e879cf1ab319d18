# SPDX-License-Identifier: MIT
"""The local API's access rules (issue 7): Host (DNS rebinding), Origin, Sec-Fetch-Site, CORS
preflights, browser form posts, unix socket peers, per-listener access levels, and the audit
trail of forwarded requests other than GET/HEAD.

The socket peer tests create a temporary system user and group (the tests run as root) and
run a small client under them with setpriv; both are removed at teardown, even on failure.
"""

import http.client
import io
import json
import os
import re

import pytest

import denvrd_harness as H
import peers as P

GET_PATH = "/api/v1/clusters/GetAll"
POST_PATH = "/api/v1/servers/virtual/StartServer"
POST_BODY = {"id": "vm-1", "namespace": "ns-1", "cluster": "Msc1"}
LISTED = "https://app.example.com"
LOOPBACK_ORIGINS = ["http://localhost:8080", "http://127.0.0.1", "https://[::1]:3000",
                    "HTTP://LocalHost:9"]
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def envelope_message(data):
    env = json.loads(data)
    assert env["success"] is False and env["__abp"] is True, env
    return env["error"]["message"]


def assert_refused(resp, *words):
    """A 403 envelope whose message contains every word (case-sensitive)."""
    st, h, data = resp
    assert st == 403, (st, data[:300])
    assert h.get("Content-Type", "").startswith("application/json")
    msg = envelope_message(data)
    for w in words:
        assert w in msg, (w, msg)
    return msg


def nothing_reached(mock):
    reqs = mock.api_requests()
    assert reqs == [], [(r["method"], r["path"]) for r in reqs]


def denied_count(d):
    st, _, status = d.request_json("GET", "/_denvrd/status", via="unix")
    assert st == 200
    return status["requests"]["denied"]


def send(d, method, path, body=None, headers=None, via="tcp"):
    """One request written in a single send, Connection: close -> (status, headers, body).

    denvrd refuses a request as soon as its headers are in; libmicrohttpd then closes the
    connection without reading the body, so a client that writes the body separately (as
    http.client does) may see EPIPE instead of the answer.  Real clients (curl, browsers)
    write a small body with the headers; so does this helper."""
    body, headers = H._encode_body(body, headers)
    body = body or b""
    h = {"Host": "localhost", "Content-Length": str(len(body)), "Connection": "close"}
    for k, v in (headers or {}).items():
        for old in [x for x in h if x.lower() == k.lower()]:
            del h[old]
        h[k] = v
    head = "%s %s HTTP/1.1\r\n" % (method, path) + \
        "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    out = d.raw(head.encode() + body, via=via)
    top, _, data = out.partition(b"\r\n\r\n")
    status = raw_status(top)
    msg = http.client.parse_headers(io.BytesIO(top.split(b"\r\n", 1)[1] + b"\r\n\r\n"))
    return status, msg, data


def ok(st):
    return 200 <= st < 300


def raw_status(data):
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", data)
    assert m, data[:200]
    return int(m.group(1))


# ---------------------------------------------------------------------------------------------
# Host: DNS rebinding
# ---------------------------------------------------------------------------------------------
def test_rebinding_host_refused(start_denvrd, mock):
    d = start_denvrd()
    before = denied_count(d)
    for method, path, body in (("GET", GET_PATH, None), ("POST", POST_PATH, POST_BODY)):
        msg = assert_refused(send(d, method, path, body, {"Host": "evil.example:%d" % d.port}),
                             "evil.example", "allowed_hosts")
        assert "DNS rebinding" in msg
    # the socket checks Host too when one is sent
    assert_refused(d.request("GET", GET_PATH, headers={"Host": "evil.example"}, via="unix"),
                   "allowed_hosts")
    nothing_reached(mock)
    assert denied_count(d) == before + 3


@pytest.mark.parametrize("host", ["localhost", "localhost:%(port)d", "LOCALHOST:1", "127.0.0.1",
                                  "127.0.0.1:%(port)d", "[::1]", "[::1]:%(port)d"])
def test_loopback_hosts_accepted(start_denvrd, mock, host):
    d = start_denvrd()
    st, _, _ = d.request("GET", GET_PATH, headers={"Host": host % {"port": d.port}})
    assert st == 200
    assert len(mock.api_requests()) == 1


@pytest.mark.parametrize("host", ["localhost.", "localhost:abc", "127.0.0.1:99999x", "::1",
                                  "127.0.0.1.nip.io", "[::1]x", "", "localhost:3368:1"])
def test_malformed_or_lookalike_hosts_refused(start_denvrd, mock, host):
    d = start_denvrd()
    assert_refused(d.request("GET", GET_PATH, headers={"Host": host}), "allowed_hosts")
    nothing_reached(mock)


def test_allowed_hosts(start_denvrd, mock):
    d = start_denvrd(daemon={"allowed_hosts": ["denvrd.internal", "10.1.2.3"]})
    for host in ("denvrd.internal", "Denvrd.Internal:%d" % d.port, "10.1.2.3:80"):
        st, _, _ = d.request("GET", GET_PATH, headers={"Host": host})
        assert st == 200, host
    assert len(mock.api_requests()) == 3
    assert_refused(d.request("GET", GET_PATH, headers={"Host": "other.internal"}), "allowed_hosts")
    assert len(mock.api_requests()) == 3


def test_listener_own_address_is_an_allowed_host(start_denvrd, mock):
    d = start_denvrd(listen="127.0.0.2:0")
    st, _, _ = d.request("GET", GET_PATH, headers={"Host": "127.0.0.2:%d" % d.port})
    assert st == 200
    assert_refused(d.request("GET", GET_PATH, headers={"Host": "127.0.0.3:%d" % d.port}))


def test_missing_host_refused_on_tcp_accepted_on_unix(start_denvrd, mock):
    d = start_denvrd()
    req = ("GET %s HTTP/1.0\r\n\r\n" % GET_PATH).encode()
    out = d.raw(req, via="tcp")
    assert raw_status(out) == 403
    body = out.split(b"\r\n\r\n", 1)[1]
    assert "Host" in envelope_message(body) and "unix socket" in envelope_message(body)
    nothing_reached(mock)
    out = d.raw(req, via="unix")
    assert raw_status(out) == 200, out[:300]
    assert len(mock.api_requests()) == 1


def test_duplicate_host_refused(start_denvrd, mock):
    d = start_denvrd()
    out = d.raw(("GET %s HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n"
                 "Connection: close\r\n\r\n" % GET_PATH).encode())
    assert raw_status(out) == 403
    nothing_reached(mock)


# ---------------------------------------------------------------------------------------------
# Origin and Sec-Fetch-Site
# ---------------------------------------------------------------------------------------------
def test_foreign_origin_refused(start_denvrd, mock):
    d = start_denvrd()
    for method, path, body in (("GET", GET_PATH, None), ("POST", POST_PATH, POST_BODY)):
        st, h, data = send(d, method, path, body, {"Origin": "https://evil.example"})
        assert_refused((st, h, data), "https://evil.example", "cors_origins")
        assert "Access-Control-Allow-Origin" not in h
    # a lookalike of a loopback origin is foreign too
    for o in ("http://localhost.evil.example", "http://127.0.0.1.evil.example:80",
              "http://localhost:80/path", "file://", "http://localhost:"):
        assert_refused(d.request("GET", GET_PATH, headers={"Origin": o}), "cors_origins")
    nothing_reached(mock)


def test_origin_null_refused(start_denvrd, mock):
    d = start_denvrd(daemon={"cors_origins": [LISTED]})
    assert_refused(send(d, "POST", POST_PATH, POST_BODY, {"Origin": "null"}), "Origin: null",
                   "cors_origins")
    assert_refused(d.request("GET", GET_PATH, headers={"Origin": "null"}))
    nothing_reached(mock)


@pytest.mark.parametrize("origin", LOOPBACK_ORIGINS)
def test_loopback_origin_accepted(start_denvrd, mock, origin):
    d = start_denvrd()
    st, h, _ = d.request("GET", GET_PATH, headers={"Origin": origin})
    assert st == 200
    # accepted, but not a CORS origin: the page cannot read the answer
    assert "Access-Control-Allow-Origin" not in h
    assert len(mock.api_requests()) == 1


@pytest.mark.parametrize("listed", [False, True], ids=["no-cors_origins", "cors_origins"])
@pytest.mark.parametrize("site", ["none", "same-origin", "same-site", "cross-site", "bogus"])
def test_sec_fetch_site(start_denvrd, mock, site, listed):
    d = start_denvrd(daemon={"cors_origins": [LISTED]} if listed else None)
    headers = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "cors"}
    if listed:
        headers["Origin"] = LISTED
    st, h, data = d.request("GET", GET_PATH, headers=headers)
    if site in ("none", "same-origin") or listed:
        assert st == 200, data[:300]
        assert len(mock.api_requests()) == 1
        if listed:
            assert h["Access-Control-Allow-Origin"] == LISTED
    else:
        assert_refused((st, h, data), "Sec-Fetch-Site: " + site, "cors_origins")
        nothing_reached(mock)


def test_sec_fetch_site_cross_site_with_unlisted_origin_refused(start_denvrd, mock):
    d = start_denvrd(daemon={"cors_origins": [LISTED]})
    # a loopback origin passes the Origin rule, but a browser calls it same-site: refused
    assert_refused(d.request("GET", GET_PATH, headers={"Origin": "http://localhost:8080",
                                                       "Sec-Fetch-Site": "same-site"}),
                   "Sec-Fetch-Site")
    nothing_reached(mock)


# ---------------------------------------------------------------------------------------------
# CORS preflights and CORS answers
# ---------------------------------------------------------------------------------------------
def preflight(d, origin, method="POST", req_headers="content-type", extra=None):
    h = {"Origin": origin, "Access-Control-Request-Method": method,
         "Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "cross-site", "User-Agent": BROWSER_UA}
    if req_headers is not None:
        h["Access-Control-Request-Headers"] = req_headers
    h.update(extra or {})
    return d.request("OPTIONS", POST_PATH, headers=h)


def test_preflight_refused_without_cors_origins(start_denvrd, mock):
    d = start_denvrd()
    st, h, data = preflight(d, LISTED)
    assert_refused((st, h, data), "cors_origins")
    for k in h.keys():
        assert not k.lower().startswith("access-control-"), k
    # a loopback origin is not enough for a preflight either
    st, h, data = preflight(d, "http://localhost:3000", req_headers=None,
                            extra={"Sec-Fetch-Site": "same-site"})
    assert st == 403
    nothing_reached(mock)


def test_preflight_answered_with_cors_origins(start_denvrd, mock):
    d = start_denvrd(daemon={"cors_origins": [LISTED, "http://localhost:3000"]})
    st, h, data = preflight(d, LISTED, "POST", "content-type, X-Request-Id,bad header,a\tb, ",
                            extra={"Access-Control-Request-Private-Network": "true"})
    assert st == 204, data[:300]
    assert data == b""
    assert h["Access-Control-Allow-Origin"] == LISTED
    assert h["Access-Control-Allow-Methods"] == "GET, HEAD, POST, PUT, PATCH, DELETE"
    assert h["Access-Control-Allow-Headers"] == "content-type, X-Request-Id"
    assert h["Access-Control-Max-Age"] == "600"
    vary = ", ".join(h.get_all("Vary"))
    for v in ("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"):
        assert v in vary, vary
    assert h["Access-Control-Allow-Private-Network"] == "true"
    assert "Access-Control-Allow-Credentials" not in h
    nothing_reached(mock)   # answered by denvrd itself

    # a method denvrd does not forward
    assert_refused(preflight(d, LISTED, "TRACE"), "TRACE")
    # the listed loopback origin is answered too, without Private-Network
    st, h, _ = preflight(d, "http://localhost:3000", "DELETE", None)
    assert st == 204 and h["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "Access-Control-Allow-Headers" not in h
    assert "Access-Control-Allow-Private-Network" not in h

    # the real request that follows: forwarded, with CORS headers on the answer
    st, h, data = send(d, "POST", POST_PATH, POST_BODY,
                            {"Origin": LISTED, "Sec-Fetch-Site": "cross-site",
                             "Sec-Fetch-Mode": "cors", "User-Agent": BROWSER_UA})
    assert ok(st), data[:300]
    assert h["Access-Control-Allow-Origin"] == LISTED
    assert h["Access-Control-Expose-Headers"] == "X-Request-Id"
    assert "Origin" in ", ".join(h.get_all("Vary"))
    assert [r["method"] for r in mock.api_requests()] == ["POST"]


def test_preflight_on_read_only_listener_offers_only_reads(start_denvrd, mock):
    d = start_denvrd(daemon={"cors_origins": [LISTED], "tcp_access": "read-only"})
    st, h, _ = preflight(d, LISTED, "GET", "authorization")
    assert st == 204
    assert h["Access-Control-Allow-Methods"] == "GET, HEAD"
    assert_refused(preflight(d, LISTED, "POST"), 'tcp_access = "read-only"')


def test_upstream_cors_headers_are_not_passed_on(start_denvrd, mock):
    d = start_denvrd()
    mock.respond(status=200, body={"result": [], "success": True, "error": None, "__abp": True},
                 headers=[["Access-Control-Allow-Origin", "*"],
                          ["Access-Control-Allow-Credentials", "true"]], path=GET_PATH)
    st, h, _ = d.request("GET", GET_PATH, headers={"Origin": "http://localhost:8080"})
    assert st == 200
    assert "Access-Control-Allow-Origin" not in h
    assert "Access-Control-Allow-Credentials" not in h


def test_options_without_preflight_headers_is_forwarded(start_denvrd, mock):
    d = start_denvrd()
    d.request("OPTIONS", GET_PATH)
    assert [r["method"] for r in mock.api_requests()] == ["OPTIONS"]


# ---------------------------------------------------------------------------------------------
# browser form posts
# ---------------------------------------------------------------------------------------------
FORM_TYPES = ["text/plain", "application/x-www-form-urlencoded",
              "multipart/form-data; boundary=----WebKitFormBoundaryx"]


@pytest.mark.parametrize("ctype", FORM_TYPES, ids=["text-plain", "urlencoded", "multipart"])
def test_cross_site_form_post_refused(start_denvrd, mock, ctype):
    d = start_denvrd(daemon={"cors_origins": [LISTED]})
    body = '{"id": "vm-1", "namespace": "ns-1", "cluster": "Msc1"}'
    if ctype.startswith("multipart"):
        body = ('------WebKitFormBoundaryx\r\nContent-Disposition: form-data; name="id"\r\n\r\n'
                'vm-1\r\n------WebKitFormBoundaryx--\r\n')
    markers = [
        # what a cross-site HTML form really sends: refused by the Origin rule already
        {"Origin": "https://evil.example", "Referer": "https://evil.example/x",
         "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "User-Agent": BROWSER_UA},
        # each browser marker alone is enough for the form rule
        {"Origin": "http://localhost:8080"},
        {"Origin": LISTED, "Sec-Fetch-Site": "cross-site"},   # even a listed origin
        {"Referer": "http://localhost:8080/"},
        {"Sec-Fetch-Dest": "document"},
        {"Cookie": "a=b"},
        {"User-Agent": BROWSER_UA},
    ]
    for m in markers:
        h = dict(m, **{"Content-Type": ctype})
        for method in ("POST", "PUT", "DELETE"):
            msg = assert_refused(send(d, method, POST_PATH, body, h))
            if "Origin" not in m or m["Origin"] != "https://evil.example":
                assert "form" in msg and "application/json" in msg, msg
    nothing_reached(mock)


def test_browser_post_without_content_type_refused(start_denvrd, mock):
    d = start_denvrd(daemon={"cors_origins": [LISTED]})
    out = d.raw(("POST %s HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost:8080\r\n"
                 "Content-Length: 2\r\nConnection: close\r\n\r\n{}" % POST_PATH).encode())
    assert raw_status(out) == 403
    nothing_reached(mock)


def test_curl_like_form_post_with_json_body_passes(start_denvrd, mock):
    """curl -d '{"id":"vm-1"}' sends application/x-www-form-urlencoded and no browser header."""
    d = start_denvrd()
    body = json.dumps(POST_BODY)
    for ua in ("curl/8.5.0", None):
        h = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "*/*"}
        if ua:
            h["User-Agent"] = ua
        st, _, data = d.request("POST", POST_PATH, body, h)
        assert ok(st), data[:300]
    reqs = mock.api_requests()
    assert [r["method"] for r in reqs] == ["POST", "POST"]
    assert json.loads(mock.body(reqs[0])) == POST_BODY


# ---------------------------------------------------------------------------------------------
# unix socket peers under another uid
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def other_user():
    """A temporary system user and an extra group: {"name", "uid", "gid", "group", "group_gid"}."""
    with P.system_users("denvrd-test", {"": {}}, groups=["g"]) as made:
        user, group = made["users"][""], made["groups"]["g"]
        yield {"name": user["name"], "uid": user["uid"], "gid": user["gid"],
               "group": group["name"], "group_gid": group["gid"]}


@pytest.fixture
def shared_socket_dir():
    """A directory other users can traverse (the test's tmp dir is private to root)."""
    with P.shared_dir("denvrd-sec-") as d:
        yield d


def start_shared(start_denvrd, sockdir, **daemon):
    dm = {"socket_mode": "0666"}
    dm.update(daemon)
    return start_denvrd(socket=os.path.join(sockdir, "denvrd.sock"), daemon=dm)


def test_socket_peer_other_uid_refused(start_denvrd, mock, other_user, shared_socket_dir):
    d = start_shared(start_denvrd, shared_socket_dir)
    out = P.run_as(other_user, "unix", d.socket_path, "POST", POST_PATH, POST_BODY)
    assert out["status"] == 403
    msg = envelope_message(out["body"])
    assert "uid %d" % other_user["uid"] in msg and "allowed_uids" in msg and \
        "allowed_groups" in msg, msg
    out2 = P.run_as(other_user, "unix", d.socket_path, "GET", GET_PATH)
    assert out2["status"] == 403
    nothing_reached(mock)
    for o in (out, out2):
        d.wait_for_log(r"refused unix socket peer uid=%d gid=%d pid=%d\b" % (
            other_user["uid"], other_user["gid"], o["pid"]))
    # the daemon's own user (root here) is still fine
    st, _, _ = d.request("GET", GET_PATH, via="unix")
    assert st == 200


def test_socket_peer_allowed_uids(start_denvrd, mock, other_user, shared_socket_dir):
    d = start_shared(start_denvrd, shared_socket_dir, allowed_uids=[other_user["name"]])
    out = P.run_as(other_user, "unix", d.socket_path, "GET", GET_PATH)
    assert out["status"] == 200, out["body"][:300]
    assert len(mock.api_requests()) == 1


def test_socket_peer_allowed_groups(start_denvrd, mock, other_user, shared_socket_dir):
    d = start_shared(start_denvrd, shared_socket_dir, allowed_groups=[other_user["group"]])
    # supplementary group (SO_PEERGROUPS)
    out = P.run_as(other_user, "unix", d.socket_path, "GET", GET_PATH,
                   groups=[other_user["group_gid"]])
    assert out["status"] == 200, out["body"][:300]
    # without it: refused
    out = P.run_as(other_user, "unix", d.socket_path, "GET", GET_PATH)
    assert out["status"] == 403
    # primary group
    as_primary = dict(other_user, gid=other_user["group_gid"])
    out = P.run_as(as_primary, "unix", d.socket_path, "GET", GET_PATH)
    assert out["status"] == 200, out["body"][:300]
    assert len(mock.api_requests()) == 2


# ---------------------------------------------------------------------------------------------
# access levels
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_read_only_listener(start_denvrd, mock, via):
    key = "tcp_access" if via == "tcp" else "socket_access"
    other = "unix" if via == "tcp" else "tcp"
    d = start_denvrd(daemon={key: "read-only"})
    st, _, _ = d.request("GET", GET_PATH, via=via)
    assert st == 200
    st, _, _ = d.request("HEAD", GET_PATH, via=via)
    assert st == 200
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        msg = assert_refused(send(d, method, POST_PATH, POST_BODY, via=via),
                             '%s = "read-only"' % key, '%s = "full"' % key)
        assert method in msg
    # the login shim answers locally and stays usable, so SDKs can log in to read
    st, _, _ = d.request("POST", "/api/TokenAuth/Authenticate",
                         {"userNameOrEmailAddress": "x", "password": "y"}, via=via)
    assert st == 200
    assert [r["method"] for r in mock.api_requests()] == ["GET", "HEAD"]
    # the other listener is untouched
    st, _, _ = d.request("POST", POST_PATH, POST_BODY, via=other)
    assert ok(st)


@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_off_listener(start_denvrd, mock, via):
    key = "tcp_access" if via == "tcp" else "socket_access"
    d = start_denvrd(daemon={key: "off"})
    for method, path in (("GET", GET_PATH), ("POST", POST_PATH), ("GET", "/_denvrd/status"),
                         ("GET", "/_denvrd/metrics"), ("POST", "/api/TokenAuth/Authenticate")):
        assert_refused(send(d, method, path, POST_BODY if method == "POST" else None, via=via),
                       '%s = "off"' % key, key + ' = "read-only" or "full"')
    st, _, _ = d.request("GET", "/_denvrd/healthz", via=via)
    assert st == 200
    st, _, _ = d.request("GET", "/_denvrd/readyz", via=via)
    assert st in (200, 503)
    nothing_reached(mock)


def test_tcp_default_is_full(start_denvrd, mock):
    d = start_denvrd()
    st, _, _ = d.request("POST", POST_PATH, POST_BODY)
    assert ok(st)


# ---------------------------------------------------------------------------------------------
# audit
# ---------------------------------------------------------------------------------------------
def audit_lines(d):
    return [l for l in d.log_text().splitlines() if "audit: " in l]


def test_audit_socket_peer(start_denvrd, mock):
    d = start_denvrd()
    st, h, _ = d.request("POST", POST_PATH + "?secretKey=s3cr3t-value&x=1", POST_BODY, via="unix")
    assert ok(st)
    rid = h["X-Request-Id"]
    exe = os.readlink("/proc/self/exe")
    line = H.wait_until(lambda: [l for l in audit_lines(d) if rid in l], what="audit line")[0]
    assert "POST %s by uid=%d pid=%d exe=%s via unix socket" % (
        POST_PATH, os.getuid(), os.getpid(), exe) in line, line
    assert "upstream status 202, status 202" in line
    assert "s3cr3t-value" not in d.log_text()
    assert " notice audit: " in line, line
    # GETs are not audited
    d.request("GET", GET_PATH, via="unix")
    d.request("GET", "/_denvrd/status", via="unix")
    assert len(audit_lines(d)) == 1


def test_audit_tcp_peer_names_socket_owner(start_denvrd, mock, other_user):
    d = start_denvrd(daemon={"allowed_uids": [other_user["name"]]})
    # our own request: uid 0 owns the client socket
    st, h, _ = d.request("DELETE", "/api/v1/servers/virtual/DestroyServer?Id=vm-1&Namespace=n"
                         "&Cluster=Msc1&password=hunter2hunter2")
    assert ok(st)
    rid = h["X-Request-Id"]
    line = H.wait_until(lambda: [l for l in audit_lines(d) if rid in l], what="audit line")[0]
    assert re.search(r"DELETE /api/v1/servers/virtual/DestroyServer by uid=%d \(owner of client "
                     r"socket 127\.0\.0\.1:\d+\) via tcp: upstream status 202" % os.getuid(), line), line
    assert "hunter2hunter2" not in d.log_text()
    # a client under another uid (allowed): the kernel's socket diagnostics name that uid
    out = P.run_as(other_user, "tcp", "127.0.0.1:%d" % d.port, "POST", POST_PATH, POST_BODY)
    assert ok(out["status"]), out["body"][:300]
    H.wait_until(lambda: [l for l in audit_lines(d) if
                          "POST %s by uid=%d (owner of client socket" % (POST_PATH, other_user["uid"])
                          in l], what="audit line naming the other uid")


def test_audit_tcp6_peer(start_denvrd, mock):
    d = start_denvrd(listen="[::1]:0")
    st, h, _ = d.request("PUT", POST_PATH, POST_BODY, via="tcp6")
    rid = h["X-Request-Id"]
    line = H.wait_until(lambda: [l for l in audit_lines(d) if rid in l], what="audit line")[0]
    assert re.search(r"PUT %s by uid=%d \(owner of client socket \[::1\]:\d+\) via tcp" % (
        POST_PATH, os.getuid()), line), line


def test_refused_requests_are_not_audited_but_logged(start_denvrd, mock):
    d = start_denvrd()
    assert_refused(send(d, "POST", POST_PATH + "?token=tok-abcdefgh", POST_BODY,
                             {"Host": "evil.example"}))
    d.wait_for_log(r"refused POST %s from 127\.0\.0\.1:\d+ \(uid=%d\): Host" % (
        re.escape(POST_PATH), os.getuid()))
    assert audit_lines(d) == []
    assert "tok-abcdefgh" not in d.log_text()
