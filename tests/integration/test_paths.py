# SPDX-License-Identifier: MIT
"""One canonical path: a corpus of spellings, sent raw over a socket (no client library that
would normalise them first), and what the mock upstream received.

Upstream (ASP.NET) percent-decodes a path, removes dot segments and routes case-insensitively,
so denvrd either refuses a path before anything else (400 envelope, nothing forwarded) or
decides on its one canonical form, while forwarding the client's bytes as they are:
  * every spelling of /api/TokenAuth/... is answered by the login shim or a local 404, never
    forwarded (upstream's LogOut would end the shared session);
  * nothing outside /api/ reaches upstream, whatever the spelling;
  * case variants, escaped letters and a trailing '/' of a known operation get its defaults,
    and reach upstream byte-exact but for them.
"""

import json
import re
import urllib.parse

import pytest

import denvrd_harness as H

CLUSTER = "Msc1"
VPC = "vpc-7"

# --- refused: (target bytes, a phrase the 400 message must hold) -----------------------------
DOT = "dot segment"
REFUSED = [
    # the spellings of the issue
    (b"/api/v1/../TokenAuth/LogOut", DOT),
    (b"/api/v1/%2E%2E/TokenAuth/LogOut", DOT),
    (b"/api/./TokenAuth/LogOut", DOT),
    (b"/api/../etc/passwd", DOT),
    # dots in every case and mix
    (b"/api/v1/%2e%2E/TokenAuth/LogOut", DOT),
    (b"/api/v1/%2e%2e/TokenAuth/LogOut", DOT),
    (b"/api/v1/.%2e/TokenAuth/LogOut", DOT),
    (b"/api/v1/.%2E/TokenAuth/LogOut", DOT),
    (b"/api/v1/%2E./TokenAuth/LogOut", DOT),
    (b"/api/%2e/TokenAuth/LogOut", DOT),
    (b"/api/v1/servers/virtual/GetServers/../../../TokenAuth/LogOut", DOT),
    (b"/api/v1/servers/virtual/GetServers/..", DOT),
    (b"/api/v1/servers/virtual/GetServers/.", DOT),
    (b"/api/v1/servers/virtual/GetServers/%2e%2e/", DOT),
    (b"/servers/virtual/../../TokenAuth/LogOut", DOT),
    (b"/_denvrd/../api/TokenAuth/LogOut", DOT),
    (b"/..", DOT),
    (b"/%2e%2e/api/TokenAuth/LogOut", DOT),
    # separators in disguise
    (b"/api/v1%2F..%2FTokenAuth/LogOut", "'/'"),
    (b"/api/v1%2f..%2fTokenAuth%2fLogOut", "'/'"),
    (b"/api%2FTokenAuth%2FLogOut", "'/'"),
    (b"/api/v1%5C..%5CTokenAuth/LogOut", "'\\'"),
    (b"/api/v1%5c..%5cTokenAuth/LogOut", "'\\'"),
    (b"/api\\TokenAuth\\LogOut", "'\\'"),
    (b"/api/v1/..\\TokenAuth/LogOut", "'\\'"),
    # empty segments
    (b"//api/TokenAuth/LogOut", "'//'"),
    (b"/api//TokenAuth/LogOut", "'//'"),
    (b"/api/v1/servers/virtual//GetServers", "'//'"),
    (b"/api/TokenAuth/LogOut//", "'//'"),
    # path parameters
    (b"/api/TokenAuth/LogOut;jsessionid=0123", "';'"),
    (b"/api/v1/..;/TokenAuth/LogOut", "';'"),
    (b"/api/TokenAuth;x=1/LogOut", "';'"),
    (b"/api/v1/servers/virtual/GetServers;", "';'"),
    # NUL and control bytes, encoded and raw
    (b"/api/TokenAuth/LogOut%00", "NUL"),
    (b"/api/%00/../TokenAuth/LogOut", "NUL"),
    (b"/api/v1/servers/virtual/GetServers%00.json", "NUL"),
    (b"/api/v1/%09/x", "control"),
    (b"/api/v1/%0d%0aX-Injected:%201", "control"),
    (b"/api/v1/%7F", "control"),
    (b"/api/v1/\x01x", "control"),
    (b"/api/v1/\x1b[31mred", "control"),
    (b"/api/v1/\x7f", "control"),
    (b"/api/v1/\tx", "control"),
    (b"/api/TokenAuth/LogOut\t", "control"),
    (b"/api/v1/a\rb", "bare CR"),      # refused on the raw head, before the path is read
    (b"/api/TokenAuth/LogOut\x0b", "control"),
    (b"/api/v1/a b", "RFC 3986"),
    # outside ASCII: raw UTF-8, encoded UTF-8, overlong dots, dotless i, fullwidth solidus
    (b"/api/v1/caf\xc3\xa9", "ASCII"),
    (b"/api/v1/caf%C3%A9", "ASCII"),
    (b"/api/%C0%AE%C0%AE/TokenAuth/LogOut", "ASCII"),
    (b"/api/TokenAuth/Authent%C4%B1cate", "ASCII"),
    (b"/api/v1%EF%BC%8F..%EF%BC%8FTokenAuth", "ASCII"),
    (b"/api/\xff\xfe", "ASCII"),
    # bad percent-encoding
    (b"/api/v1/%zz", "percent-encoding"),
    (b"/api/v1/%2", "percent-encoding"),
    (b"/api/v1/%", "percent-encoding"),
    (b"/api/v1/%u002e%u002e/TokenAuth/LogOut", "percent-encoding"),
    (b"/api/v1/%%32%65", "percent-encoding"),
    (b"/api/v1/%2/x", "percent-encoding"),
    # a second layer of encoding
    (b"/api/v1/%252e%252e/TokenAuth/LogOut", "%25"),
    (b"/api/v1/%25", "%25"),
    # characters a path may not hold raw
    (b"/api/v1/a\"b", "RFC 3986"),
    (b"/api/v1/<script>", "RFC 3986"),
    (b"/api/v1/{x}", "RFC 3986"),
    (b"/api/v1/a|b", "RFC 3986"),
    (b"/api/v1/a^b", "RFC 3986"),
    (b"/api/v1/a`b", "RFC 3986"),
    (b"/api/v1/[::1]", "RFC 3986"),
    (b"/api/v1/a#frag", "'#' in the request target"),
    # not a path
    (b"*", "starting with '/'"),
    (b"api/TokenAuth/LogOut", "starting with '/'"),
    # very long, with the dot segment at the end
    (b"/api" + b"/aAbB%43" * 1000 + b"/..", DOT),
]

# --- answered by the login shim (200), every spelling ------------------------------------------
SHIM_OK = [
    b"/api/TokenAuth/LogOut",
    b"/api/tokenauth/logout",
    b"/API/TOKENAUTH/LOGOUT",
    b"/api/Token%41uth/LogOut",
    b"/api/Token%61uth/L%6fg%4Fut",
    b"/api/TokenAuth/LogOut/",
    b"/%61pi/TokenAuth/LogOut/",
    b"/api/TokenAuth/RefreshToken",
    b"/Api/TokenAuth/refreshtoken/",
]

# --- under /api/TokenAuth but no shim endpoint: a local 404 --------------------------------------
SHIM_UNKNOWN = [
    b"/api/TokenAuth",
    b"/api/TokenAuth/",
    b"/api/TokenAuth/ExternalAuthenticate",
    b"/api/tokenauth/LogOut/more",
    b"/api/TOKEN%41UTH/GetExternalAuthenticationProviders",
    b"/api/TokenAuth/LogOut%20",
    b"/api/TokenAuth/LogOut%3F",
]

# --- not under /api/ nor /_denvrd/ (and not the shorthand): a local 404 -------------------------
NOT_API = [
    b"/",
    b"/etc/passwd",
    b"/apix/TokenAuth/LogOut",
    b"/api",
    b"/TokenAuth/LogOut",
    b"/v1/servers/virtual/GetServers",
    b"/_mock/requests",
    b"/favicon.ico",
]

# --- known operations in other spellings: forwarded byte-exact, defaults filled ----------------
GETSERVERS_SPELLINGS = [
    b"/API/v1/Servers/Virtual/getservers",
    b"/api/v1/servers/virtual/GetServers/",
    b"/api/v1/servers/virtual/%47et%53ervers",
    b"/api/v1/servers/virtual/%67etservers",
    b"/%61pi/V1/SERVERS/virtual/GETSERVERS/",
    b"/api/v1/servers/virtual/GetServers?x=%2F..%2F&y=;",
]

SHORTHAND_SPELLINGS = [
    b"/Servers/Virtual/getservers",
    b"/servers/virtual/GetServers/",
    b"/%73ervers/virtual/GetServers",
]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def raw_request(d, method, target, body=b"", via="tcp", headers=None):
    """METHOD TARGET as bytes, exactly, in one send -> (status, headers dict, body bytes)."""
    h = {"Host": "localhost", "Connection": "close", "Content-Length": str(len(body))}
    if body:
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    head = method.encode() + b" " + target + b" HTTP/1.1\r\n" + \
        b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in h.items()) + b"\r\n"
    out = d.raw(head + body, via=via)
    top, _, data = out.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", top)
    assert m, "no HTTP answer to %r: %r" % (target[:200], out[:300])
    hdrs = {}
    for line in top.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        hdrs[k.strip().lower().decode()] = v.strip().decode("latin-1")
    return int(m.group(1)), hdrs, data


def envelope(data):
    env = json.loads(data)
    assert env["__abp"] is True and set(env) >= {"success", "error", "result"}, env
    return env


def canonical(path):
    """How upstream routes a path: percent-decoded once, ASCII case folded."""
    return urllib.parse.unquote(path, encoding="latin-1").lower()


def assert_upstream_only_api(mock):
    """Nothing recorded upstream outside /api/ or at /api/TokenAuth, under any spelling."""
    for r in mock.requests():
        p = canonical(r["path"].partition("?")[0])
        segs = p.split("/")
        assert p.startswith("/api/"), r["path"]
        assert ".." not in segs and "." not in segs and "" not in segs[1:-1], r["path"]
        assert not p.startswith("/api/tokenauth"), r["path"]


def shown(target):
    return target[:120]


# ---------------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_refused_spellings_get_a_400_envelope_and_reach_nothing(start_denvrd, mock, via):
    d = start_denvrd(defaults={"cluster": CLUSTER})
    for target, phrase in REFUSED:
        for method, body in (("GET", b""), ("POST", b'{"id":"vm-1"}')):
            st, h, data = raw_request(d, method, target, body, via=via)
            assert st == 400, (shown(target), method, st, data[:300])
            assert h.get("content-type", "").startswith("application/json"), shown(target)
            env = envelope(data)
            msg = env["error"]["message"]
            assert env["success"] is False, (shown(target), msg)
            assert msg.startswith("path refused: ") or msg.startswith("request refused: "), \
                (shown(target), msg)
            assert phrase in msg, (shown(target), msg)
    assert mock.requests() == [], [r["path"][:120] for r in mock.requests()]
    # the refusals are in the access log, with the path made printable
    log = d.log_text()
    assert "\x1b" not in log and "\x01" not in log and "\x7f" not in log
    assert "/api/v1/%1B[31mred 400" in log
    assert "/api/v1/caf%C3%A9 400" in log


def test_raw_nul_ends_the_target_for_both_decision_and_forwarding(start_denvrd, mock):
    """libmicrohttpd (0.9.75) ends the request target at a raw NUL byte, so denvrd never sees
    what follows it; whatever it decides on, it is what upstream gets: the bytes before it."""
    d = start_denvrd()
    st, _, data = raw_request(d, "GET", b"/api/TokenAuth/LogOut\x00/../../v1/clusters/GetAll")
    assert st == 200 and envelope(data)["result"] is None, data[:300]
    st, _, data = raw_request(d, "GET", b"/api/v1/clusters/GetAll\x00/../../TokenAuth/LogOut")
    assert st == 200, data[:300]
    st, _, data = raw_request(d, "GET", b"/\x00/api/v1/clusters/GetAll")
    assert st == 404, data[:300]
    assert [r["path"] for r in mock.requests()] == ["/api/v1/clusters/GetAll"]
    assert mock.stats()["logout_attempts"] == 0


def test_too_long_a_target_is_refused_before_anything(start_denvrd, mock):
    d = start_denvrd()
    st, _, data = raw_request(d, "GET", b"/api/v1/" + b"a" * 9000)
    assert st == 414, data[:200]
    st, _, data = raw_request(d, "GET", b"/api/v1/" + b"a" * 8000 + b"/../../TokenAuth/LogOut")
    assert st == 400 and "dot segment" in envelope(data)["error"]["message"]
    assert mock.requests() == []


def test_absolute_form_target_does_not_reach_tokenauth(start_denvrd, mock):
    """An absolute-form target (as sent to a proxy) is no path: refused, whatever it names."""
    d = start_denvrd()
    for target in (b"http://127.0.0.1/api/TokenAuth/LogOut", b"http://localhost/api/v1/../TokenAuth"):
        st, _, data = raw_request(d, "GET", target)
        assert st == 400, (target, st, data[:300])
    assert mock.requests() == []


# ---------------------------------------------------------------------------------------------
# /api/TokenAuth: local under every spelling
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_tokenauth_under_any_spelling_is_answered_locally(start_denvrd, mock, via):
    d = start_denvrd()
    for target in SHIM_OK:
        for method in ("GET", "POST"):
            st, _, data = raw_request(d, method, target, b"{}" if method == "POST" else b"", via=via)
            assert st == 200, (target, method, st, data[:300])
            env = envelope(data)
            assert env["success"] is True, (target, env)
            if b"refresh" in target.lower():
                assert env["result"]["accessToken"] == "denvrd-local-session", (target, env)
            else:
                assert env["result"] is None, (target, env)
    for target in SHIM_UNKNOWN:
        for method in ("GET", "POST", "DELETE"):
            st, _, data = raw_request(d, method, target, b"{}" if method == "POST" else b"", via=via)
            assert st == 404, (target, method, st, data[:300])
            assert "no such login endpoint" in envelope(data)["error"]["message"], (target, data)
    # the SDK's login, in another spelling, gets the placeholder token
    st, _, data = raw_request(d, "POST", b"/API/tokenauth/%41uthenticate/",
                              json.dumps({"userNameOrEmailAddress": "x", "password": "y"}).encode(),
                              via=via)
    assert st == 200 and envelope(data)["result"]["accessToken"] == "denvrd-local-session", data
    assert mock.api_requests() == [], [r["path"] for r in mock.api_requests()]
    # denvrd's own session survived all of it
    st, _, data = raw_request(d, "GET", b"/api/v1/clusters/GetAll", via=via)
    assert st == 200, data[:300]
    assert [r["path"] for r in mock.api_requests()] == ["/api/v1/clusters/GetAll"]
    stats = mock.stats()
    assert stats["logouts"] == 0 and stats["logout_attempts"] == 0, stats
    assert_upstream_only_api(mock)


def test_outside_api_is_never_forwarded(start_denvrd, mock):
    d = start_denvrd()
    for target in NOT_API:
        st, _, data = raw_request(d, "GET", target)
        assert st == 404, (target, st, data[:300])
        assert "no such endpoint" in envelope(data)["error"]["message"], (target, data)
    assert mock.requests() == []


def test_denvrd_endpoints_in_other_spellings(start_denvrd, mock):
    d = start_denvrd()
    for target in (b"/_denvrd/healthz", b"/_DENVRD/Healthz", b"/_denvrd/healthz/", b"/_denvrd/%68ealthz"):
        st, _, data = raw_request(d, "GET", target)
        assert st == 200, (target, st, data[:200])
    st, _, data = raw_request(d, "GET", b"/_denvrd/Status/")
    assert st == 200 and "auth" in json.loads(data), data[:200]
    assert mock.api_requests() == []


# ---------------------------------------------------------------------------------------------
# known operations under other spellings: defaults, byte-exact forwarding, cache, audit
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_case_variants_get_defaults_and_are_forwarded_byte_exact(start_denvrd, mock, via):
    d = start_denvrd(defaults={"cluster": CLUSTER})
    for target in GETSERVERS_SPELLINGS:
        mock.reset()
        st, _, data = raw_request(d, "GET", target, via=via)
        recs = mock.requests()
        assert len(recs) == 1, (target, recs)
        assert st == 200 and envelope(data)["success"] is True, (target, st, data[:300])
        sep = b"&" if b"?" in target else b"?"
        assert recs[0]["path"] == (target + sep + b"Cluster=" + CLUSTER.encode()).decode(), \
            (target, recs[0]["path"])
        assert recs[0]["method"] == "GET"
    for target in SHORTHAND_SPELLINGS:
        mock.reset()
        st, _, data = raw_request(d, "GET", target, via=via)
        recs = mock.requests()
        assert [r["path"] for r in recs] == ["/api/v1" + target.decode() + "?Cluster=" + CLUSTER], \
            (target, recs)
        assert st == 200, (target, st, data[:300])
    assert_upstream_only_api(mock)


def test_required_parameters_checked_under_any_spelling(start_denvrd, mock):
    """A case variant of a known operation is validated early like the table's spelling."""
    d = start_denvrd(defaults={"cluster": CLUSTER})
    st, _, data = raw_request(d, "POST", b"/API/V1/servers/virtual/startserver/", b"{}")
    assert st == 400, data[:300]
    env = envelope(data)
    assert env["error"]["validationErrors"], env
    assert mock.api_requests() == []


def test_post_body_defaults_under_another_spelling(start_denvrd, mock):
    d = start_denvrd(defaults={"cluster": CLUSTER, "vpcid": VPC})
    target = b"/api/v1/Servers/Virtual/St%61rtServer/"
    st, _, data = raw_request(d, "POST", target, b'{"id":"vm-1"}')
    assert 200 <= st < 300, data[:300]
    recs = mock.api_requests()
    assert [r["path"] for r in recs] == [target.decode()]
    body = json.loads(H.MockProcess.body(recs[0]))
    assert body == {"id": "vm-1", "namespace": VPC, "cluster": CLUSTER}, body
    # audited as the operation, spelled as the table spells it
    line = H.wait_until(lambda: [l for l in d.log_text().splitlines() if "audit: POST " in l],
                        what="audit line")[0]
    assert "audit: POST /api/v1/servers/virtual/StartServer by " in line, line


def test_cache_shares_an_entry_across_spellings(start_denvrd, mock):
    cfg = '[cache]\n"/api/v1/servers/virtual/GetConfigurations" = 300\n'
    d = start_denvrd(config_text_extra=cfg)
    seen = []
    for target in (b"/api/v1/servers/virtual/GetConfigurations",
                   b"/API/v1/servers/virtual/getconfigurations/",
                   b"/api/v1/servers/virtual/%47etConfigurations",
                   b"/servers/virtual/GetConfigurations"):
        st, h, data = raw_request(d, "GET", target)
        assert st == 200, (target, data[:200])
        seen.append((h.get("x-cache"), data))
    assert [s[0] for s in seen] == ["MISS", "HIT", "HIT", "HIT"], seen
    assert len({s[1] for s in seen}) == 1
    assert len(mock.api_requests()) == 1
    # a write to the service, in any spelling, drops the entry
    st, _, _ = raw_request(d, "POST", b"/API/V1/Servers/Virtual/StopServer",
                           b'{"id":"vm-1","namespace":"n","cluster":"Msc1"}')
    st, h, _ = raw_request(d, "GET", b"/api/v1/servers/virtual/GetConfigurations")
    assert h.get("x-cache") == "MISS"


def test_read_only_listener_lets_the_shim_through_in_any_spelling(start_denvrd, mock):
    d = start_denvrd(daemon={"tcp_access": "read-only"})
    st, _, data = raw_request(d, "POST", b"/api/Token%41uth/LogOut/", b"{}")
    assert st == 200 and envelope(data)["success"] is True, data[:300]
    st, _, data = raw_request(d, "POST", b"/API/v1/servers/virtual/startserver", b'{"id":"x"}')
    assert st == 403, data[:300]
    assert mock.api_requests() == []
