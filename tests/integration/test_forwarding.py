# SPDX-License-Identifier: MIT
"""The forwarding core (issue 3): byte-exact round trips of every operation over IPv4, IPv6
and the unix socket; header rules going up and coming back; limits; timeouts; retries;
upstream faults and their error envelopes; client disconnects aborting the upstream transfer.

Everything runs against tests/mock_denvr.py over HTTPS on loopback.  The load tests live in
test_load.py."""

import base64
import email.utils
import gzip
import hashlib
import json
import os
import re
import socket
import threading
import time

import pytest

import denvrd_harness as H
from denvrd_harness import scaled, wait_until

ECHO = "/api/v1/mock/Echo"
APIKEY_AUTH = "ApiKey " + H.DEFAULT_APIKEY


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def denvrd_version():
    import subprocess
    out = subprocess.run([str(H.denvrd_binary()), "--version"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, check=True).stdout.decode()
    m = re.search(r"denvrd (\S+)", out)
    assert m, out
    return m.group(1)


def check_error_envelope(status, body, want_status, *message_parts):
    """denvrd's own error: Denvr's ABP envelope with success false and a message."""
    assert status == want_status, (status, body[:500])
    env = json.loads(body)
    assert env["success"] is False and env["__abp"] is True, env
    assert env["result"] is None and env["targetUrl"] is None, env
    msg = env["error"]["message"]
    for part in message_parts:
        assert part in msg, "error.message %r lacks %r" % (msg, part)
    return env


def healthz_ok(d, via="tcp"):
    st, _, body = d.request("GET", "/_denvrd/healthz", via=via, timeout=scaled(5))
    assert st == 200, (st, body)


def api_records(mock, path=None):
    recs = mock.api_requests()
    if path is not None:
        recs = [r for r in recs if r["path"].split("?")[0] == path]
    return recs


def header_values(record, name):
    return [v for k, v in record["headers"] if k.lower() == name.lower()]


def connect_raw(d, via="tcp", timeout=10):
    return d.connect_raw(via, timeout)


def read_response(s, head_only=False):
    """Read one HTTP/1.1 response from socket s -> (status, [(name, value)], body bytes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError("connection closed before a full response head: %r" % buf)
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    hmap = {k.lower(): v for k, v in headers}
    if head_only or status in (204, 304) or 100 <= status < 200:
        return status, headers, b""
    if "chunked" in hmap.get("transfer-encoding", "").lower():
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += s.recv(65536)
            line, _, rest = rest.partition(b"\r\n")
            n = int(line.split(b";")[0], 16)
            while len(rest) < n + 2:
                chunk = s.recv(65536)
                if not chunk:
                    raise AssertionError("closed inside a chunk")
                rest += chunk
            if n == 0:
                break
            body += rest[:n]
            rest = rest[n + 2:]
        return status, headers, body
    if "content-length" in hmap:
        n = int(hmap["content-length"])
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("closed %d bytes short of the body" % (n - len(rest)))
            rest += chunk
        return status, headers, rest[:n]
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return status, headers, rest
        rest += chunk


def raw_exchange(d, data, via="tcp", timeout=10, head_only=False):
    s = connect_raw(d, via, timeout)
    try:
        s.sendall(data)
        return read_response(s, head_only)
    finally:
        s.close()


def hget(headers, name):
    """All values of `name` in a [(k, v)] list."""
    return [v for k, v in headers if k.lower() == name.lower()]


def request_bytes(method, target, headers, body=b""):
    lines = ["%s %s HTTP/1.1" % (method, target)]
    lines += ["%s: %s" % (k, v) for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("iso-8859-1") + body


# ---------------------------------------------------------------------------------------------
# byte-exact round trips of every operation
# ---------------------------------------------------------------------------------------------
def load_operations(api_dir):
    ops = []
    for line in (api_dir / "operations.tsv").read_text().splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("method\t"):
            continue
        method, path, q, b, dflt = line.split("\t")
        ops.append((method, path, [] if q == "-" else q.split(","),
                    [] if b == "-" else b.split(",")))
    return ops


# Odd but legal query bytes, appended to every operation's query: a percent-encoded slash in
# both cases, '+', '%20', an empty value, a bare key, '~', '!', '*', quoted '&' and '=', and
# UTF-8.  (A repeated key is refused: upstream would bind only one of the two.)
ODD_QUERY = ("x=%2F&x2=%2f&plus=a+b&sp=a%20b&empty=&bare&t=~!*'()&amp=a%26b%3Dc"
             "&u=%E2%82%AC&semi=a;b&colon=a:b@c,d$")

QUERY_VALUES = {
    "id": "vm%2Fodd+name%20x", "namespace": "denvr-test", "cluster": "Msc1",
    "resourcepool": "on-demand", "reportnodes": "true", "limit": "3",
    "deletesnapshots": "false", "refreshtoken": "not-a-token",
}


def body_for(fields):
    """Every body field, as hand-formatted JSON with odd but legal bytes (blanks, escapes,
    a number no double can hold), so a re-serialisation would show."""
    members = []
    for f in fields:
        n = f.rstrip("*")
        low = n.lower()
        if low == "ssh_keys" or low == "sshkeys":
            v = '[ "ssh-ed25519 AAAAC3Nza\\u00e9 k1" ,"k2"]'
        elif low in ("environmentvariables", "securitycontext", "imagerepository"):
            v = '{"A" : "1\\/2"}'
        elif low in ("persiststorage", "persistdirectattachedstorage",
                     "personalsharedstorage", "tenantsharedstorage"):
            v = "true"
        elif low in ("rootdisksize", "proxyport", "readinesswatcherport"):
            v = "12345678901234567890123"
        elif low == "cluster":
            v = '"Msc1"'
        elif low in ("rpool", "resourcepool"):
            v = '"on-demand"'
        elif low in ("vpc", "vpcid", "namespace"):
            v = '"denvr-test"'
        else:
            v = '"v-%s \\"q\\" \\u20ac/\\/"' % low
        members.append('"%s" :%s' % (n, v))
    return ('{\n  ' + ' ,\n  '.join(members) + ' , "zz" : 1.0e+2 }\r\n').encode()


def op_request(method, path, qparams, bfields):
    qs = []
    for p in qparams:
        n = p.rstrip("*")
        qs.append("%s=%s" % (n, QUERY_VALUES.get(n.lower(), "x")))
    target = path + "?" + "&".join(qs + [ODD_QUERY])
    body = body_for(bfields) if bfields else None
    return target, body


@pytest.mark.parametrize("via", ["tcp", "tcp6", "unix"])
def test_every_operation_round_trips_byte_exact(start_denvrd, mock, api_dir, via):
    d = start_denvrd(listen=["127.0.0.1:0", "[::1]:0"])
    ops = load_operations(api_dir)
    v1 = [op for op in ops if not op[1].startswith("/api/TokenAuth/")]
    assert len(v1) >= 30, "operations.tsv looks truncated: %d /api/v1 operations" % len(v1)
    for method, path, qparams, bfields in v1:
        target, body = op_request(method, path, qparams, bfields)
        headers = {"Content-Type": "application/json; charset=utf-8"} if body else {}
        mock.reset()
        st, h, data = d.request(method, target, body, headers, via=via)
        recs = mock.api_requests()
        assert len(recs) == 1, (method, target, recs)
        rec = recs[0]
        assert rec["method"] == method
        # every defaulted parameter is present: nothing may be added or re-encoded
        assert rec["path"] == target, (rec["path"], target)
        assert mock.body(rec) == (body or b""), (path, mock.body(rec), body)
        assert header_values(rec, "Authorization") == [APIKEY_AUTH]
        # the same request straight to the mock gives the same answer
        st2, h2, data2 = mock.call(method, target, body, headers, auth="apikey")
        assert (st, data) == (st2, data2), (path, st, data[:300], st2, data2[:300])
        assert 200 <= st < 300, (path, st, data[:300])
        assert h.get("Content-Type") == h2.get("Content-Type") == \
            "application/json; charset=utf-8"
        if method == "GET":
            assert h.get("ETag") and h.get("ETag") == h2.get("ETag")
        assert json.loads(data)["success"] is True


def test_tokenauth_operations_are_answered_by_denvrd_not_forwarded(start_denvrd, mock,
                                                                     api_dir):
    """The three TokenAuth operations of operations.tsv belong to denvrd's login holder: it
    answers them itself (a placeholder session) and never forwards the client's login."""
    d = start_denvrd()
    auth_ops = [op for op in load_operations(api_dir) if op[1].startswith("/api/TokenAuth/")]
    assert {op[1] for op in auth_ops} == {"/api/TokenAuth/Authenticate",
                                         "/api/TokenAuth/RefreshToken",
                                         "/api/TokenAuth/LogOut"}
    for method, path, qparams, bfields in auth_ops:
        target, body = op_request(method, path, qparams, bfields)
        st, h, data = d.request(method, target, body,
                                {"Content-Type": "application/json"} if body else {})
        assert st == 200, (path, st, data)
        assert json.loads(data)["success"] is True
        assert h.get("Content-Type", "").startswith("application/json")
    assert mock.api_requests() == []


@pytest.mark.parametrize("via", ["tcp", "tcp6", "unix"])
def test_pass_through_of_odd_targets_and_every_method(start_denvrd, mock, via):
    d = start_denvrd(listen=["127.0.0.1:0", "[::1]:0"])
    body = b'{"a":1,  "b":"\\u00e9"}\n\x00\xff binary tail'
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        mock.reset()
        target = ECHO + "?" + ODD_QUERY + "&m=" + method
        send = body if method not in ("GET", "HEAD") else None
        st, h, data = d.request(method, target, send,
                                {"Content-Type": "application/octet-stream"} if send else {},
                                via=via)
        assert st == 200, (method, st, data[:300])
        recs = mock.api_requests()
        assert len(recs) == 1 and recs[0]["method"] == method, recs
        assert recs[0]["path"] == target
        assert mock.body(recs[0]) == (send or b"")
        if method != "HEAD":
            echo = json.loads(data)["result"]
            assert echo["method"] == method and echo["path"] == target
            assert base64.b64decode(echo["body_b64"]) == (send or b"")
    # an accepted path is not normalised either: case and escapes of unreserved characters
    # reach upstream as sent (upstream answers 404 to this one)
    for target in ("/api/V1/Mock/%7euser/%41?", "/api/v1/Mock/~us%65r/?q=;%2F"):
        mock.reset()
        st, h, data = d.request("GET", target, via=via)
        recs = mock.api_requests()
        assert [r["path"] for r in recs] == [target], (target, recs)
        assert st == 404 and data == b"", (target, st, data)
    # what upstream would read otherwise (encoded slashes, double slashes, dot segments,
    # matrix parameters) is refused before anything is forwarded (tests/integration/test_paths.py)
    for target in ("/api/v1/mock/a%2Fb//c;p=1?q=%2F", "/api/v1/x/./y/../z?a=1",
                   "/api/v1/servers/virtual/GetServers/../../x"):
        mock.reset()
        st, h, data = d.request("GET", target, via=via)
        assert st == 400 and json.loads(data)["error"]["message"].startswith("path refused"), \
            (target, st, data)
        assert mock.requests() == [], target


def test_fill_in_adds_only_the_documented_parameters(start_denvrd, mock):
    """Byte-exact except for the documented fill-in: absent defaulted query parameters are
    appended, the client's bytes before them are unchanged."""
    d = start_denvrd(defaults={"cluster": "Hou1"})
    target = "/api/v1/servers/virtual/GetServers?x=%2F&y=a+b"
    st, _, data = d.request("GET", target)
    assert st == 200, data
    assert [r["path"] for r in mock.api_requests()] == [target + "&Cluster=Hou1"]
    mock.reset()
    st, _, data = d.request("GET", "/api/v1/servers/virtual/GetServers")
    assert st == 200, data
    assert [r["path"] for r in mock.api_requests()] == [
        "/api/v1/servers/virtual/GetServers?Cluster=Hou1"]


def test_large_request_and_response_bodies_are_exact(start_denvrd, mock):
    d = start_denvrd(daemon={"max_body_bytes": 8 * 1024 * 1024})
    blob = os.urandom(3 * 1024 * 1024 + 7)
    st, _, data = d.request("PUT", ECHO, blob, {"Content-Type": "application/octet-stream"})
    assert st == 200
    assert json.loads(data)["result"]["body_sha256"] == hashlib.sha256(blob).hexdigest()
    assert mock.body(mock.api_requests()[0]) == blob
    # a 20 MiB answer comes back intact: the same bytes as straight from the mock
    mock.respond(count=2, status=200, size=20 * 1024 * 1024, path=ECHO)
    st, h, data = d.request("GET", ECHO)
    st2, _, data2 = mock.call("GET", ECHO, auth="apikey")
    assert st == st2 == 200 and len(data) >= 20 * 1024 * 1024 - 100
    assert data == data2
    assert h.get("Content-Length") == str(len(data))


# ---------------------------------------------------------------------------------------------
# header rules going up
# ---------------------------------------------------------------------------------------------
def test_client_authorization_is_replaced_by_the_credential(start_denvrd, mock):
    d = start_denvrd()
    st, _, _ = d.request("GET", ECHO, headers={"Authorization": "Bearer client-supplied-xyz"})
    assert st == 200
    rec = mock.api_requests()[0]
    assert header_values(rec, "Authorization") == [APIKEY_AUTH]
    # and without any Authorization from the client, the credential is added
    mock.reset()
    assert d.request("GET", ECHO)[0] == 200
    assert header_values(mock.api_requests()[0], "Authorization") == [APIKEY_AUTH]


def test_cookie_is_dropped(start_denvrd, mock):
    d = start_denvrd()
    data = request_bytes("GET", ECHO, [("Host", "localhost"), ("Cookie", "session=abc"),
                                       ("cookie", "b=2"), ("Accept-Language", "yes")])
    st, _, _ = raw_exchange(d, data)
    assert st == 200
    rec = mock.api_requests()[0]
    assert header_values(rec, "Cookie") == []
    assert header_values(rec, "Accept-Language") == ["yes"]


def test_proxy_headers_are_dropped(start_denvrd, mock):
    d = start_denvrd()
    data = request_bytes("GET", ECHO, [
        ("Host", "localhost"), ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
        ("Proxy-Connection", "keep-alive"), ("proxy-x-anything", "1"), ("traceparent", "kept")])
    st, _, _ = raw_exchange(d, data)
    assert st == 200
    rec = mock.api_requests()[0]
    names = [k.lower() for k, _ in rec["headers"]]
    assert not [n for n in names if n.startswith("proxy-")], rec["headers"]
    assert header_values(rec, "traceparent") == ["kept"]


def test_hop_by_hop_headers_are_dropped(start_denvrd, mock):
    d = start_denvrd()
    body = b'{"chunked": true}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    data = request_bytes("POST", ECHO, [
        ("Host", "localhost"), ("Connection", "keep-alive, X-Hop-One"),
        ("Connection", "x-hop-two"), ("X-Hop-One", "1"), ("X-Hop-Two", "2"),
        ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Trailer", "X-Trailing"),
        ("Upgrade", "h2c"), ("Transfer-Encoding", "chunked"),
        ("Content-Type", "application/json"), ("Accept-Language", "kept")], chunked)
    st, _, resp = raw_exchange(d, data)
    assert st == 200, resp
    rec = mock.api_requests()[0]
    got = {k.lower() for k, _ in rec["headers"]}
    for h in ("connection", "x-hop-one", "x-hop-two", "keep-alive", "te", "trailer",
              "upgrade", "transfer-encoding"):
        if h == "connection":
            # curl may send its own Connection header to upstream; the client's never
            assert all("hop" not in v.lower() for v in header_values(rec, h)), rec["headers"]
            continue
        assert h not in got, (h, rec["headers"])
    assert header_values(rec, "Accept-Language") == ["kept"]
    # the body arrived whole, de-chunked, with a length
    assert mock.body(rec) == body and rec["chunked"] is False
    assert header_values(rec, "Content-Length") == [str(len(body))]


def test_request_id_kept_when_sane_and_returned(start_denvrd, mock):
    d = start_denvrd()
    rid = "req-42_abc.DEF:9"
    st, h, _ = d.request("GET", ECHO, headers={"X-Request-Id": rid})
    assert st == 200
    assert header_values(mock.api_requests()[0], "X-Request-Id") == [rid]
    assert h.get_all("X-Request-Id") == [rid]


@pytest.mark.parametrize("bad", ["has space", "<script>", "x" * 200, "a/b", "", "é"])
def test_request_id_replaced_when_not_sane(start_denvrd, mock, bad):
    d = start_denvrd()
    data = request_bytes("GET", ECHO, [("Host", "localhost"),
                                       ("X-Request-Id", bad)])
    st, headers, _ = raw_exchange(d, data.replace("é".encode("iso-8859-1"),
                                                  "é".encode()))
    assert st == 200
    sent = header_values(mock.api_requests()[0], "X-Request-Id")
    assert len(sent) == 1 and sent[0] != bad
    assert re.fullmatch(r"[A-Za-z0-9._:-]{8,128}", sent[0]), sent
    assert hget(headers, "X-Request-Id") == sent


def test_request_id_generated_when_absent_and_unique(start_denvrd, mock):
    d = start_denvrd()
    ids = []
    for _ in range(3):
        st, h, _ = d.request("GET", ECHO)
        assert st == 200
        ids.append(h.get("X-Request-Id"))
    sent = [header_values(r, "X-Request-Id")[0] for r in mock.api_requests()]
    assert sent == ids and len(set(ids)) == 3 and all(ids)
    # denvrd's own answers carry one too
    st, h, _ = d.request("GET", "/no/such/thing")
    assert st == 404 and h.get("X-Request-Id")


def test_user_agent_gets_denvrd_version(start_denvrd, mock):
    d = start_denvrd()
    ver = denvrd_version()
    assert d.request("GET", ECHO, headers={"User-Agent": "denvr-python/0.9 (x)"})[0] == 200
    assert header_values(mock.api_requests()[0], "User-Agent") == [
        "denvr-python/0.9 (x) denvrd/" + ver]
    mock.reset()
    data = request_bytes("GET", ECHO, [("Host", "localhost")])
    assert raw_exchange(d, data)[0] == 200
    assert header_values(mock.api_requests()[0], "User-Agent") == ["denvrd/" + ver]


def dropped_headers(d):
    st, _, text = d.request("GET", "/_denvrd/metrics")
    assert st == 200
    return int(re.search(rb"^denvrd_request_headers_dropped_total (\d+)$", text, re.M).group(1))


def test_listed_request_headers_pass_in_order_others_are_dropped(start_denvrd, mock):
    """Only the documented list of client headers goes upstream, in order; every other one
    (an ABP tenant header, a method override, Forwarded, anything custom) is dropped and
    counted."""
    d = start_denvrd()
    before = dropped_headers(d)
    data = request_bytes("GET", ECHO, [
        ("Host", "localhost"), ("Accept", "application/json"), ("X-A", "1"),
        ("Accept-Language", "de-CH"), ("__tenant", "other"), ("If-None-Match", '"abc"'),
        ("X-HTTP-Method-Override", "DELETE"), ("Forwarded", "for=1.2.3.4"),
        ("Accept", "text/plain"), ("tracestate", "a=b"), ("X-Empty", "")])
    assert raw_exchange(d, data)[0] == 200
    # the metrics page reads the cost upstream too: the echo is the one to look at
    (rec,) = [r for r in mock.api_requests() if r["path"].startswith(ECHO)]
    fwd = [(k.lower(), v) for k, v in rec["headers"]
           if k.lower() not in ("host", "authorization", "user-agent", "x-request-id")]
    assert fwd == [("accept", "application/json"), ("accept-language", "de-CH"),
                   ("if-none-match", '"abc"'), ("accept", "text/plain"), ("tracestate", "a=b")], fwd
    assert dropped_headers(d) == before + 5


# ---------------------------------------------------------------------------------------------
# header rules coming back
# ---------------------------------------------------------------------------------------------
def test_end_to_end_response_headers_pass(start_denvrd, mock):
    d = start_denvrd()
    mock.respond(status=201, content_type="application/vnd.denvr+json; v=2",
                 body='{"made": true}',
                 headers=[["Cache-Control", "private, max-age=7"],
                          ["Retry-After", "120"], ["ETag", 'W/"e-123"'],
                          ["Location", "/api/v1/vpcs/GetVpc?Id=a%2Fb"],
                          ["Link", "</a>; rel=next"], ["X-Custom", "c1"],
                          ["X-Custom", "c2"], ["Vary", "Accept"]])
    st, h, data = d.request("POST", ECHO, b"{}", {"Content-Type": "application/json"})
    assert st == 201 and data == b'{"made": true}'
    assert h.get("Content-Type") == "application/vnd.denvr+json; v=2"
    assert h.get("Cache-Control") == "private, max-age=7"
    assert h.get("Retry-After") == "120"
    assert h.get("ETag") == 'W/"e-123"'
    assert h.get("Location") == "/api/v1/vpcs/GetVpc?Id=a%2Fb"
    assert h.get("Link") == "</a>; rel=next"
    assert h.get_all("X-Custom") == ["c1", "c2"]
    assert h.get("Vary") == "Accept"


def test_content_encoding_gzip_passes_compressed_and_untouched(start_denvrd, mock):
    d = start_denvrd()
    plain = json.dumps({"result": {"items": ["x" * 50] * 40}, "success": True}).encode()
    gz = gzip.compress(plain, mtime=0)
    mock.respond(status=200, body_b64=base64.b64encode(gz).decode(),
                 headers=[["Content-Encoding", "gzip"]])
    st, h, data = d.request("GET", ECHO, headers={"Accept-Encoding": "gzip"})
    assert st == 200
    assert h.get("Content-Encoding") == "gzip"
    assert data == gz, "the gzip body must be passed as the upstream sent it"
    assert gzip.decompress(data) == plain
    # the client's Accept-Encoding went up as sent
    assert header_values(mock.api_requests()[0], "Accept-Encoding") == ["gzip"]


def test_hop_by_hop_and_set_cookie_dropped_coming_back(start_denvrd, mock):
    d = start_denvrd()
    mock.respond(status=200, body='{"ok":1}', headers=[
        ["Connection", "X-Hop-Resp"], ["X-Hop-Resp", "secret"], ["Keep-Alive", "timeout=9"],
        ["Set-Cookie", "Abp.AuthToken=abc; path=/"], ["set-cookie", "b=2"],
        ["Set-Cookie2", "c=3"], ["Proxy-Authenticate", "Basic"], ["Trailer", "X-T"],
        ["X-Stays", "yes"]])
    st, headers, body = raw_exchange(d, request_bytes("GET", ECHO, [("Host", "localhost")]))
    assert st == 200 and body == b'{"ok":1}'
    names = [k.lower() for k, _ in headers]
    for gone in ("x-hop-resp", "keep-alive", "set-cookie", "set-cookie2",
                 "proxy-authenticate", "trailer"):
        assert gone not in names, (gone, headers)
    assert all("x-hop" not in v.lower() for v in hget(headers, "Connection")), headers
    assert hget(headers, "X-Stays") == ["yes"]
    # the mock's own Set-Cookie on real operations never reaches the client either
    st, h, _ = d.request("GET", "/api/v1/clusters/GetAll")
    assert st == 200 and h.get("Set-Cookie") is None


# ---------------------------------------------------------------------------------------------
# limits
# ---------------------------------------------------------------------------------------------
def test_413_for_content_length_over_limit_before_reading_the_body(start_denvrd, mock):
    d = start_denvrd(daemon={"max_body_bytes": 1024})
    s = connect_raw(d, timeout=5)
    try:
        s.sendall(request_bytes("POST", ECHO, [
            ("Host", "localhost"), ("Content-Type", "application/json"),
            ("Content-Length", "1000000000")], b'{"only": "a few bytes"'))
        t0 = time.monotonic()
        st, _, body = read_response(s)   # answered although 999999978 bytes never come
        assert time.monotonic() - t0 < scaled(3)
    finally:
        s.close()
    check_error_envelope(st, body, 413, "max_body_bytes")
    assert mock.api_requests() == []
    healthz_ok(d)


def test_413_for_chunked_body_over_limit(start_denvrd, mock):
    d = start_denvrd(daemon={"max_body_bytes": 1024})
    chunk = b"a" * 600
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"
    s = connect_raw(d, timeout=5)
    try:
        s.sendall(request_bytes("PUT", ECHO, [
            ("Host", "localhost"), ("Transfer-Encoding", "chunked")]))
        s.sendall(body)   # 2400 bytes: over the limit at the second chunk
        st, _, resp = read_response(s)
        check_error_envelope(st, resp, 413, "max_body_bytes")
        # the connection stays usable
        s.sendall(request_bytes("GET", ECHO, [("Host", "localhost")]))
        assert read_response(s)[0] == 200
    finally:
        s.close()
    assert [r["method"] for r in mock.api_requests()] == ["GET"]


def test_endless_chunked_body_is_not_read_to_its_end(start_denvrd, mock):
    """A chunked body far over the limit is not read whole: denvrd drops the connection."""
    d = start_denvrd(daemon={"max_body_bytes": 1024})
    chunk = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
    total = 256 * 1024 * 1024
    sent = 0
    s = connect_raw(d, timeout=10)
    t0 = time.monotonic()
    try:
        s.sendall(request_bytes("POST", ECHO, [
            ("Host", "localhost"), ("Transfer-Encoding", "chunked")]))
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            while sent < total:
                s.sendall(chunk)
                sent += len(chunk)
    finally:
        s.close()
    assert sent < 64 * 1024 * 1024, sent
    assert time.monotonic() - t0 < scaled(10)
    assert mock.api_requests() == []
    healthz_ok(d)


def test_body_at_the_limit_passes(start_denvrd, mock):
    d = start_denvrd(daemon={"max_body_bytes": 1024})
    st, _, data = d.request("POST", ECHO, b"b" * 1024, {"Content-Type": "text/plain"})
    assert st == 200, data
    assert mock.body(mock.api_requests()[0]) == b"b" * 1024
    # chunked, exactly at the limit
    mock.reset()
    body = b"c" * 1024
    st, _, _ = raw_exchange(d, request_bytes("POST", ECHO, [
        ("Host", "localhost"), ("Transfer-Encoding", "chunked")],
        b"200\r\n" + body[:512] + b"\r\n200\r\n" + body[512:] + b"\r\n0\r\n\r\n"))
    assert st == 200
    assert mock.body(mock.api_requests()[0]) == body


def test_431_for_headers_over_16k(start_denvrd, mock):
    d = start_denvrd()
    st, _, body = raw_exchange(d, request_bytes("GET", ECHO, [
        ("Host", "localhost"), ("X-Big", "h" * 9000), ("X-Big2", "h" * 8000)]))
    check_error_envelope(st, body, 431, "16384")
    assert mock.api_requests() == []
    # just under the limit passes, even with a URL near its own limit
    st, _, _ = raw_exchange(d, request_bytes("GET", ECHO + "?q=" + "u" * 8000, [
        ("Host", "localhost"), ("X-Big", "h" * 16000)]))
    assert st == 200
    # far over it: still 431 (libmicrohttpd's own answer once its buffer is full)
    st, _, _ = raw_exchange(d, request_bytes("GET", ECHO, [
        ("Host", "localhost"), ("X-Big", "h" * 100000)]))
    assert st == 431
    assert mock.api_requests()[0]["path"].startswith(ECHO + "?q=uuu")
    assert len(mock.api_requests()) == 1


def test_414_for_url_over_8k(start_denvrd, mock):
    d = start_denvrd()
    st, _, body = raw_exchange(d, request_bytes(
        "GET", ECHO + "?q=" + "u" * 8200, [("Host", "localhost")]))
    check_error_envelope(st, body, 414, "8192")
    assert mock.api_requests() == []
    target = ECHO + "?q=" + "u" * (8192 - len(ECHO) - 3)
    assert len(target) == 8192
    st, _, _ = raw_exchange(d, request_bytes("GET", target, [("Host", "localhost")]))
    assert st == 200
    assert mock.api_requests()[0]["path"] == target
    # far over it: still 414 (libmicrohttpd's own answer once its buffer is full)
    st, _, _ = raw_exchange(d, request_bytes(
        "GET", ECHO + "?q=" + "u" * 100000, [("Host", "localhost")]))
    assert st == 414
    assert len(mock.api_requests()) == 1


@pytest.mark.parametrize("method", ["PROPFIND", "TRACE", "FOO"])
def test_405_for_other_methods(start_denvrd, mock, method):
    d = start_denvrd()
    st, headers, body = raw_exchange(d, request_bytes(method, ECHO, [("Host", "localhost")]))
    check_error_envelope(st, body, 405, method)
    allow = hget(headers, "Allow")
    assert allow and "GET" in allow[0] and "POST" in allow[0]
    assert mock.api_requests() == []


@pytest.mark.parametrize("path", ["/", "/foo/bar", "/apiv1/x", "/_denvrdx/healthz",
                                  "/v1/servers/virtual/GetServers", "/favicon.ico"])
def test_404_outside_api_and_denvrd(start_denvrd, mock, path):
    d = start_denvrd()
    st, _, body = d.request("GET", path)
    check_error_envelope(st, body, 404, path)
    assert mock.api_requests() == []


# ---------------------------------------------------------------------------------------------
# timeouts
# ---------------------------------------------------------------------------------------------
def test_request_timeout_gives_504_in_time(start_denvrd, mock):
    d = start_denvrd(daemon={"request_timeout": 2})
    mock.delay(8, path=ECHO)
    t0 = time.monotonic()
    st, _, body = d.request("GET", ECHO, timeout=scaled(20))
    took = time.monotonic() - t0
    # (said "did not answer within 2 s", or "no answer ... within 2 s" when the deadline
    # passed between attempts)
    check_error_envelope(st, body, 504, "127.0.0.1:%d" % mock.port, "within 2 s",
                         "request_timeout")
    assert 1.8 <= took <= scaled(3.5), took
    healthz_ok(d)


def test_connect_timeout_gives_504_after_5s(start_denvrd, mock):
    """A loopback listener whose accept queue is full drops new SYNs, so connecting to it
    times out: denvrd gives up after its 5 s connect timeout."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    try:
        # fill the accept queue: connects that complete without accept()
        for _ in range(8):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(c)
            time.sleep(0.05)
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        with pytest.raises(socket.timeout):
            probe.connect(("127.0.0.1", port))   # proves the queue is full
        probe.close()
        d = start_denvrd(upstream="https://127.0.0.1:%d" % port,
                         defaults={"retries": 0}, daemon={"request_timeout": 30})
        t0 = time.monotonic()
        st, _, body = d.request("GET", ECHO, timeout=scaled(40))
        took = time.monotonic() - t0
        check_error_envelope(st, body, 504, "127.0.0.1:%d" % port,
                             "did not accept a connection in time")
        assert 4.5 <= took <= scaled(8), took
        healthz_ok(d)
    finally:
        for c in fillers:
            c.close()
        lsock.close()


# ---------------------------------------------------------------------------------------------
# retries
# ---------------------------------------------------------------------------------------------
def attempt_times(mock, path=ECHO):
    return [r["time"] for r in api_records(mock, path)]


def test_get_retried_after_503_then_succeeds(start_denvrd, mock):
    d = start_denvrd()
    mock.fail(count=1, status=503, path=ECHO)
    t0 = time.monotonic()
    st, _, data = d.request("GET", ECHO + "?a=%2F")
    took = time.monotonic() - t0
    assert st == 200 and json.loads(data)["success"] is True
    recs = api_records(mock, ECHO)
    assert len(recs) == 2 and recs[0]["path"] == recs[1]["path"] == ECHO + "?a=%2F"
    assert recs[0]["status"] == 503
    assert 0.45 <= took <= scaled(2.0), took   # first backoff: 0.5 s
    d.wait_for_log(r"GET %s 200 upstream=200 .*retries=1" % re.escape(ECHO))


@pytest.mark.parametrize("method", ["HEAD", "PUT", "DELETE", "OPTIONS"])
def test_idempotent_methods_retried(start_denvrd, mock, method):
    d = start_denvrd()
    body = b"same bytes twice" if method == "PUT" else None
    mock.fail(count=1, status=502, path=ECHO)
    st, _, _ = d.request(method, ECHO, body)
    assert st == 200
    recs = api_records(mock, ECHO)
    assert [r["method"] for r in recs] == [method, method]
    assert [mock.body(r) for r in recs] == [body or b""] * 2


def test_delete_of_known_operation_retried_on_504(start_denvrd, mock):
    d = start_denvrd()
    path = "/api/v1/vpcs/DestroyVpc"
    mock.fail(count=1, status=504, path=path)
    st, _, data = d.request("DELETE", path + "?Id=v1&Cluster=Msc1")
    assert st == 200, data
    assert len(api_records(mock, path)) == 2


def test_get_retried_after_connection_dropped(start_denvrd, mock):
    d = start_denvrd()
    mock.drop(count=1, mode="reset", path=ECHO)
    st, _, _ = d.request("GET", ECHO)
    assert st == 200
    assert len(api_records(mock, ECHO)) == 2


def test_429_retried(start_denvrd, mock):
    d = start_denvrd()
    mock.fail(count=2, status=429, path=ECHO)
    st, _, _ = d.request("GET", ECHO)
    assert st == 200
    assert [r["status"] for r in api_records(mock, ECHO)] == [429, 429, 200]


def test_retry_after_seconds_honoured(start_denvrd, mock):
    d = start_denvrd()
    mock.fail(count=1, status=503, retry_after=2, path=ECHO)
    st, _, _ = d.request("GET", ECHO)
    assert st == 200
    t = attempt_times(mock)
    assert len(t) == 2
    assert 1.9 <= t[1] - t[0] <= scaled(3.0), t[1] - t[0]


def test_retry_after_http_date_honoured(start_denvrd, mock):
    d = start_denvrd()
    assert d.request("GET", ECHO)[0] == 200   # connection warm: the first attempt is quick
    mock.reset()
    when = int(time.time()) + 3 + int(scaled(1))    # an HTTP date has a 1 s resolution
    mock.fail(count=1, status=429, retry_after=email.utils.formatdate(when, usegmt=True),
              path=ECHO)
    st, _, _ = d.request("GET", ECHO)
    assert st == 200
    t = attempt_times(mock)   # the mock's wall clock, as the date's
    assert len(t) == 2
    assert t[0] < when - 1, "the first attempt came too late for this test to mean anything"
    # not retried before the date, and soon after it
    assert when - 0.05 <= t[1] <= when + scaled(1.5), (t[1] - when)


def test_retry_after_beyond_request_timeout_is_not_waited_for(start_denvrd, mock):
    d = start_denvrd(daemon={"request_timeout": 20})
    assert d.request("GET", ECHO)[0] == 200   # connection warm: the timing is the retry's
    mock.reset()
    mock.fail(count=1, status=503, retry_after=30, path=ECHO)
    t0 = time.monotonic()
    st, h, data = d.request("GET", ECHO)
    assert time.monotonic() - t0 < scaled(1.5)
    assert st == 503 and h.get("Retry-After") == "30"   # upstream's answer, passed on
    assert len(api_records(mock, ECHO)) == 1


def test_retries_bounded_with_exponential_backoff(start_denvrd, mock):
    d = start_denvrd(defaults={"retries": 2})
    mock.fail(count=-1, status=503, path=ECHO)
    st, _, data = d.request("GET", ECHO)
    assert st == 503   # upstream's own last answer
    assert json.loads(data)["error"]["details"] == "injected by mock_denvr /_mock/fail"
    t = attempt_times(mock)
    assert len(t) == 3, t
    g1, g2 = t[1] - t[0], t[2] - t[1]
    assert 0.45 <= g1 <= scaled(1.0) and 0.95 <= g2 <= scaled(1.6), (g1, g2)


def test_retries_zero_means_one_attempt(start_denvrd, mock):
    d = start_denvrd(defaults={"retries": 0})
    mock.fail(count=-1, status=503, path=ECHO)
    assert d.request("GET", ECHO)[0] == 503
    assert len(api_records(mock, ECHO)) == 1


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_post_patch_not_retried_on_status(start_denvrd, mock, method):
    d = start_denvrd()
    mock.fail(count=1, status=503, path=ECHO)
    st, _, _ = d.request(method, ECHO, b"{}", {"Content-Type": "application/json"})
    assert st == 503
    assert len(api_records(mock, ECHO)) == 1


@pytest.mark.parametrize("mode", ["mid_body", "before_response", "reset"])
@pytest.mark.parametrize("warm", [False, True], ids=["fresh", "reused"])
def test_post_not_retried_after_it_was_sent(start_denvrd, mock, mode, warm):
    """Upstream got the POST and then the connection broke: the POST may have had its effect,
    so it is never sent again, by denvrd nor by curl (which re-sends requests that die on a
    reused connection) -> 502 and exactly one POST upstream."""
    d = start_denvrd()
    if warm:   # the POST goes over a kept-alive connection
        assert d.request("GET", ECHO)[0] == 200
        mock.reset()
    mock.drop(count=1, mode=mode, path=ECHO, method="POST")
    st, _, body = d.request("POST", ECHO, b'{"create": 1}',
                            {"Content-Type": "application/json"})
    check_error_envelope(st, body, 502, "closed or reset the connection")
    recs = api_records(mock, ECHO)
    assert len(recs) == 1, [(r["method"], r["fault"]) for r in recs]
    healthz_ok(d)


def test_post_retried_when_nothing_was_sent(start_denvrd, start_mock, mock):
    """The first attempt finds the upstream port closed (refused: not one byte of the POST
    left); the upstream comes up on that port during the backoff; the POST arrives once."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    d = start_denvrd(upstream="https://127.0.0.1:%d" % port, defaults={"retries": 5},
                     daemon={"request_timeout": 30})
    result = {}

    def client():
        result["r"] = d.request("POST", ECHO, b'{"once": true}',
                                {"Content-Type": "application/json"}, timeout=scaled(40))

    th = threading.Thread(target=client)
    th.start()
    try:
        d.wait_for_log(r"retrying %s in \d+ ms" % re.escape(ECHO), timeout=10)
        m2 = start_mock(args=("--port", str(port)))
        assert m2.port == port
    finally:
        th.join(scaled(40))
    st, _, data = result["r"]
    assert st == 200, data
    recs = m2.api_requests()
    assert [(r["method"], mock.body(r)) for r in recs] == [("POST", b'{"once": true}')]
    d.wait_for_log(r"POST %s 200 upstream=200 .*retries=[1-9]" % re.escape(ECHO), timeout=3)


def test_post_after_upstream_closed_pooled_connections(start_denvrd, mock):
    """The upstream drops its idle kept-alive connections (as servers do): the next POST must
    still arrive exactly once and succeed."""
    d = start_denvrd()
    assert d.request("GET", ECHO)[0] == 200
    for rst in (False, True):
        mock.reset()
        assert mock.close_idle(rst=rst) >= 1
        time.sleep(0.1)
        st, _, data = d.request("POST", ECHO, b'{"n": 1}', {"Content-Type": "application/json"})
        assert st == 200, data
        assert len(api_records(mock, ECHO)) == 1


# ---------------------------------------------------------------------------------------------
# upstream faults: status, envelope, and healthz through all of them
# ---------------------------------------------------------------------------------------------
def test_fault_connection_refused(start_denvrd, mock):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    d = start_denvrd(upstream="https://127.0.0.1:%d" % port, defaults={"retries": 1})
    st, _, body = d.request("GET", ECHO)
    check_error_envelope(st, body, 502, "upstream 127.0.0.1:%d unreachable" % port,
                         "connection refused")
    healthz_ok(d)


@pytest.mark.parametrize("mode,message", [
    ("mid_body", "closed or reset the connection"),
    ("reset", "closed or reset the connection"),
    ("before_response", "closed or reset the connection"),
    ("tls_corrupt", "127.0.0.1:"),
])
def test_fault_drop(start_denvrd, mock, mode, message):
    d = start_denvrd(defaults={"retries": 1})
    mock.drop(count=-1, mode=mode, path=ECHO)
    st, _, body = d.request("GET", ECHO)
    check_error_envelope(st, body, 502, message)
    assert len(api_records(mock, ECHO)) == 2   # retried once, then given up
    healthz_ok(d)


def test_fault_garbage(start_denvrd, mock):
    d = start_denvrd(defaults={"retries": 0})
    mock.garbage(count=-1, path=ECHO)
    st, _, body = d.request("GET", ECHO)
    check_error_envelope(st, body, 502, "sent an invalid HTTP answer")
    healthz_ok(d)


def test_fault_slow_upstream_and_healthz_meanwhile(start_denvrd, mock):
    timeout = max(2, int(scaled(2)))
    d = start_denvrd(daemon={"request_timeout": timeout})
    assert d.request("GET", ECHO)[0] == 200   # connection warm: no TLS handshake below
    mock.reset()
    mock.delay(timeout + 4, count=-1, path=ECHO)
    result = {}
    th = threading.Thread(target=lambda: result.setdefault("r", d.request("GET", ECHO)))
    th.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    healthz_ok(d)   # the loop is not blocked by the slow transfer
    assert time.monotonic() - t0 < scaled(0.5)
    th.join(scaled(10))
    st, _, body = result["r"]
    check_error_envelope(st, body, 504, "within %d s" % timeout)
    healthz_ok(d)


def test_fault_untrusted_certificate(start_denvrd, start_mock, mock):
    bad = start_mock(untrusted=True)
    d = start_denvrd(upstream=bad)   # ca_file: the test CA, which did not sign bad's cert
    st, _, body = d.request("GET", ECHO)
    # no retry cures it: a 4xx, which retrying clients show at once instead of retrying
    check_error_envelope(st, body, 424, "TLS certificate of 127.0.0.1:%d not trusted: set ca_file"
                         % bad.port)
    assert bad.api_requests() == []
    assert bad.stats()["tls_handshake_failures"] == 1, "a certificate failure is not retried"
    healthz_ok(d)


def test_fault_response_over_64mib_cap(start_denvrd, mock):
    d = start_denvrd()
    mock.respond(status=200, size=65 * 1024 * 1024, path=ECHO)
    st, _, body = d.request("GET", ECHO, timeout=scaled(60))
    check_error_envelope(st, body, 502, "larger than 64 MiB")
    healthz_ok(d)


def test_healthz_stays_200_through_a_fault_storm(start_denvrd, mock):
    d = start_denvrd(defaults={"retries": 0}, daemon={"request_timeout": 2})
    faults = [("drop", "reset"), ("drop", "mid_body"), ("drop", "tls_corrupt"), ("garbage", None),
              ("delay", None), ("fail", 500)]
    # Each fault on a request of its own: the same request again would be answered from the
    # failure denvrd just gave up on (failure_memory_seconds), without reaching the mock.
    for i, (kind, arg) in enumerate(faults):
        if kind == "drop":
            mock.drop(count=1, mode=arg, path=ECHO)
        elif kind == "garbage":
            mock.garbage(count=1, path=ECHO)
        elif kind == "delay":
            mock.delay(4, count=1, path=ECHO)
        else:
            mock.fail(count=1, status=arg, path=ECHO)
        st, _, body = d.request("GET", ECHO + "?fault=%d" % i)
        assert st in (500, 502, 504), (kind, arg, st, body)
        assert json.loads(body)["success"] is False
        healthz_ok(d)
        healthz_ok(d, via="unix")
    assert d.request("GET", ECHO)[0] == 200


# ---------------------------------------------------------------------------------------------
# client disconnects
# ---------------------------------------------------------------------------------------------
def settled_fd_count(d, reads=3, interval=0.05, timeout=3.0):
    """denvrd's fd count once it stops changing: a client that just closed its
    connection is still counted until the event loop has seen the close."""
    deadline = time.monotonic() + timeout
    last, same = d.fd_count(), 1
    while same < reads:
        assert time.monotonic() < deadline, "denvrd's fd count did not settle"
        time.sleep(interval)
        now = d.fd_count()
        same = same + 1 if now == last else 1
        last = now
    return last


def test_client_disconnect_aborts_upstream_transfer(start_denvrd, mock):
    d = start_denvrd()
    assert d.request("GET", ECHO)[0] == 200   # pool warm: one upstream connection
    baseline = settled_fd_count(d)
    mock.reset()
    mock.delay(5, path=ECHO)
    s = connect_raw(d)
    s.sendall(request_bytes("GET", ECHO + "?slow=1", [("Host", "localhost")]))
    wait_until(lambda: api_records(mock, ECHO), timeout=3, what="the request upstream")
    time.sleep(0.3)
    t_close = time.monotonic()
    s.close()
    d.wait_for_log(r"client closed the connection; aborting", timeout=1.0)

    def upstream_idle():
        up = json.loads(d.request("GET", "/_denvrd/status")[2])["upstream"]
        return up["transfers_running"] == 0 and up["connections_open"] == 0

    # the transfer is gone and its (HTTP/1.1) connection closed: a half-read answer
    # cannot be reused.  (The mock cannot tell: curl's TLS close_notify reads as data.)
    wait_until(upstream_idle, timeout=1.0, what="the upstream transfer and connection to end")
    assert time.monotonic() - t_close < scaled(1.5)
    d.wait_for_log(r"GET %s 499 " % re.escape(ECHO), timeout=2)
    wait_until(lambda: d.fd_count() <= baseline - 1, timeout=3,
               what="fds back to baseline minus the closed upstream connection")
    assert d.request("GET", ECHO)[0] == 200
    wait_until(lambda: d.fd_count() == baseline, timeout=3, what="fds at baseline")


def test_client_disconnect_during_retry_backoff(start_denvrd, mock):
    d = start_denvrd()
    baseline = d.fd_count()
    mock.fail(count=1, status=503, retry_after=3, path=ECHO)
    s = connect_raw(d)
    s.sendall(request_bytes("GET", ECHO, [("Host", "localhost")]))
    d.wait_for_log(r"retrying %s in 3000 ms" % re.escape(ECHO), timeout=3)
    s.close()
    d.wait_for_log(r"GET %s 499 " % re.escape(ECHO), timeout=2)
    time.sleep(3.5)   # the retry timer would have fired by now
    assert len(api_records(mock, ECHO)) == 1, "an abandoned request was retried"
    wait_until(lambda: d.fd_count() <= baseline + 1, timeout=3, what="fds back to baseline")
    healthz_ok(d)


# ---------------------------------------------------------------------------------------------
# the unix socket listener
# ---------------------------------------------------------------------------------------------
def test_stale_unix_socket_is_replaced(start_denvrd, mock, sock_dir):
    path = sock_dir / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()   # the file stays, nobody listens: what a killed daemon leaves
    assert path.exists()
    d = start_denvrd(socket=path)
    assert "removing stale socket" in d.log_text()
    healthz_ok(d, via="unix")
    assert d.request("GET", ECHO, via="unix")[0] == 200


def test_live_unix_socket_is_not_stolen(start_denvrd, mock):
    d1 = start_denvrd()
    d2 = start_denvrd(socket=d1.socket_path, wait=False)
    rc = d2.wait_exit(timeout=15)
    assert rc != 0
    assert "already running" in d2.log_text()
    healthz_ok(d1, via="unix")


# --- response headers must fit beside the largest request ------------------

def _big_request(d, n_kib_response_headers, mock):
    hdrs = [["X-Big-%d" % i, "v" * 1000] for i in range(n_kib_response_headers)]
    mock.respond(count=1, status=200, body='{"ok":1}', headers=hdrs, path="/api/v1/mock/Echo")
    # Just under denvrd's own limits: 16 KiB of headers, 8 KiB of URL.
    req_h = {"X-Pad-%d" % i: "p" * 1000 for i in range(15)}
    return d.request("GET", "/api/v1/mock/Echo?q=" + "a" * 8000, headers=req_h)


def test_large_response_headers_pass_beside_largest_request(start_denvrd, mock):
    d = start_denvrd()
    status, headers, body = _big_request(d, 6, mock)
    assert status == 200, body
    assert headers.get("X-Big-5") == "v" * 1000


def test_oversized_response_headers_give_502_envelope(start_denvrd, mock):
    d = start_denvrd()
    status, headers, body = _big_request(d, 12, mock)
    assert status == 502
    env = json.loads(body)
    assert env["__abp"] is True and env["success"] is False
    assert "KiB of response headers" in env["error"]["message"]
    assert d.request("GET", "/_denvrd/healthz")[0] == 200
