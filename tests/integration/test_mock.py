# SPDX-License-Identifier: MIT
"""Tests of the mock Denvr upstream itself (tests/mock_denvr.py), so that tests built on it
can be trusted."""

import base64
import http.client
import json
import socket
import ssl
import time

import pytest

import denvrd_harness as H
from denvrd_harness import wait_until
import mock_denvr as M

ENVELOPE_KEYS = {"result", "targetUrl", "success", "error", "unAuthorizedRequest", "__abp"}
V1_OPS = [op for op in M.OPERATIONS if op[1].startswith("/api/v1/")]


def parse_params(spec):
    return [] if spec in ("", "-") else [p.strip() for p in spec.split(",") if p.strip()]


def sample_call(op, drop=None):
    """(path with query, JSON body or None) filling every parameter of op, except `drop`."""
    method, path, q, b, _ = op
    values = {"cluster": "Hou1", "namespace": "denvr-test", "id": "vm-test-42",
              "resourcepool": "reserved-denvr", "limit": "5", "vpc": "denvr-test",
              "vpcid": "denvr-test", "deletesnapshots": "true", "reportnodes": "true",
              "configuration": "A100_40GB_PCIe_1x", "ssh_keys": ["ssh-ed25519 AAAAC3Nza test"],
              "name": "my-app-7", "hardwarepackagename": "g-nvidia-1xa100-40gb-pcie-14vcpu-112gb",
              "applicationcatalogitemname": "jupyter-notebook",
              "applicationcatalogitemversion": "python-3.11",
              "imageurl": "docker.io/library/busybox:1.36"}
    qs = []
    for p in parse_params(q):
        n = p.rstrip("*")
        if n == drop:
            continue
        qs.append("%s=%s" % (n, values.get(n.lower(), "x")))
    body = None
    if b not in ("", "-"):
        body = {}
        for p in parse_params(b):
            n = p.rstrip("*")
            if n == drop or not p.endswith("*") and n.lower() not in values:
                continue
            body[n] = values.get(n.lower(), "x")
    return path + ("?" + "&".join(qs) if qs else ""), body


def check_envelope(env, success=True):
    assert set(env) == ENVELOPE_KEYS, env
    assert env["__abp"] is True and env["targetUrl"] is None
    assert env["success"] is success
    if success:
        assert env["error"] is None and env["unAuthorizedRequest"] is False


# ---------------------------------------------------------------------------------------------
# The operation table
# ---------------------------------------------------------------------------------------------
def test_builtin_operation_table_matches_api_tsv(api_dir):
    rows = []
    for line in (api_dir / "operations.tsv").read_text().splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("method\t"):
            continue
        f = line.split("\t")
        assert len(f) == 5, line
        rows.append(tuple("" if x == "-" else x for x in f))
    builtin = [tuple(r) for r in M.OPERATIONS]
    assert builtin == rows


# ---------------------------------------------------------------------------------------------
# Envelope, data, validation, auth
# ---------------------------------------------------------------------------------------------
def test_envelope_and_passthrough_headers(mock):
    st, h, data = mock.call("GET", "/api/v1/clusters/GetAll", auth="apikey")
    assert st == 200
    assert h["Content-Type"] == "application/json; charset=utf-8"
    env = json.loads(data)
    check_envelope(env)
    assert env["result"] == ["Msc1", "Hou1"]
    assert h["Cache-Control"] == "no-cache"
    assert h["ETag"].startswith('"') and len(h["ETag"]) > 10
    assert h["Set-Cookie"] and "path=/" in h["Set-Cookie"]
    assert int(h["X-Mock-Request-Seq"]) == mock.requests()[-1]["seq"]
    # identical GETs give identical bodies and ETags
    st2, h2, data2 = mock.call("GET", "/api/v1/clusters/GetAll", auth="apikey")
    assert (data2, h2["ETag"]) == (data, h["ETag"])


@pytest.mark.parametrize("op", V1_OPS, ids=lambda op: op[0] + " " + op[1].rsplit("/", 2)[-2]
                         + "/" + op[1].rsplit("/", 1)[-1])
def test_every_operation_returns_data(mock, op):
    path, body = sample_call(op)
    st, h, data = mock.call(op[0], path, body=body, auth="apikey")
    assert st in (200, 202), data
    env = json.loads(data)
    check_envelope(env)
    assert env["result"] not in (None, [], {}), env
    text = json.dumps(env["result"])
    if "Cluster" in op[2] or "cluster" in op[2] or (body and "cluster" in body):
        if "GetAvailability" not in op[1] or "virtual" in op[1]:
            assert "Hou1" in text, "cluster not echoed: %s" % text[:300]
    if "Id*" in op[2] or (body and "id" in body):
        assert "vm-test-42" in text, "id not echoed"
    if body and "name" in body and "Create" in op[1] and "Vpc" not in op[1]:
        assert "my-app-7" in text


def test_list_results_have_items(mock):
    for p in ("/api/v1/servers/virtual/GetServers", "/api/v1/servers/metal/GetHosts",
              "/api/v1/vpcs/GetVpcs", "/api/v1/servers/virtual/GetConfigurations",
              "/api/v1/servers/applications/GetApplicationCatalogItems"):
        st, env = mock.call_json("GET", p, auth="apikey")
        assert st == 200 and len(env["result"]["items"]) >= 2, p
    st, env = mock.call_json("GET", "/api/v1/servers/virtual/GetServers?Cluster=Hou1",
                             auth="apikey")
    assert {s["cluster"] for s in env["result"]["items"]} == {"Hou1"}
    s = env["result"]["items"][0]
    for k in ("username", "tenancy_name", "rpool", "id", "namespace", "configuration", "gpus",
              "vcpus", "memory", "ip", "privateIp", "image", "cluster", "status"):
        assert k in s


REQUIRED = [(op, p.rstrip("*")) for op in V1_OPS
            for p in parse_params(op[2]) + parse_params(op[3]) if p.endswith("*")]


@pytest.mark.parametrize("op,param", REQUIRED,
                         ids=["%s-%s" % (op[1].rsplit("/", 1)[-1], p) for op, p in REQUIRED])
def test_missing_required_parameter_is_400(mock, op, param):
    path, body = sample_call(op, drop=param)
    st, h, data = mock.call(op[0], path, body=body, auth="apikey")
    assert st == 400
    env = json.loads(data)
    check_envelope(env, success=False)
    label = param[:1].upper() + param[1:]
    assert env["error"]["message"] == "Your request is not valid!"
    assert env["error"]["validationErrors"] == [
        {"message": "The %s field is required." % label,
         "members": [param[:1].lower() + param[1:]]}]


def test_validation_error_exact_shape(mock):
    st, h, data = mock.call("GET", "/api/v1/servers/virtual/GetServer?Id=x&Namespace=y",
                            auth="apikey")
    assert st == 400
    assert h["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(data) == {
        "result": None, "targetUrl": None, "success": False,
        "error": {"code": 0, "message": "Your request is not valid!",
                  "details": "The following errors were detected during validation.\r\n"
                             " - The Cluster field is required.\r\n",
                  "validationErrors": [{"message": "The Cluster field is required.",
                                        "members": ["cluster"]}]},
        "unAuthorizedRequest": False, "__abp": True}


def test_parameter_names_are_case_insensitive(mock):
    st, _, _ = mock.call("GET", "/api/v1/servers/virtual/GetServer?ID=a&nAmEsPaCe=b&CLUSTER=c",
                         auth="apikey")
    assert st == 200
    st, _, _ = mock.call("POST", "/api/v1/servers/virtual/StartServer",
                         body={"ID": "a", "Namespace": "b", "cluster": "c"}, auth="apikey")
    assert st == 202
    # an empty value is missing, as ASP.NET's [Required] says
    st, _, _ = mock.call("GET", "/api/v1/servers/virtual/GetServer?Id=a&Namespace=b&Cluster=",
                         auth="apikey")
    assert st == 400


# ---------------------------------------------------------------------------------------------
# Model binding as ASP.NET does it, and the "acted" records
# ---------------------------------------------------------------------------------------------
DESTROY = "/api/v1/servers/virtual/DestroyServer"
GET_ONE = "/api/v1/servers/virtual/GetServer"
START_OP = "/api/v1/servers/virtual/StartServer"
FORM = "application/x-www-form-urlencoded"


def acted_on(mock, method, target, body=None, headers=None):
    """One call straight to the mock -> (status, the one "acted" record or None)."""
    mock.clear_acted()
    st, _, _ = mock.call(method, target, body=body, headers=headers, auth="apikey")
    acted = mock.acted()
    assert len(acted) <= 1, acted
    return st, (acted[0] if acted else None)


@pytest.mark.parametrize("target,body,ctype,want", [
    # the first value wins, names in any case
    ("?Id=vm-1&id=vm-2&Namespace=n&Cluster=c", None, None, "vm-1"),
    ("?iD=vm-2&Id=vm-1&Namespace=n&Cluster=c", None, None, "vm-2"),
    # issue 17: any input.-prefixed name makes only those bind
    ("?Id=vm-1&input.Id=vm-2&input.Namespace=acme&input.Cluster=Msc1", None, None, "vm-2"),
    ("?Id=vm-1&INPUT.id=vm-2&Input.namespace=acme&input.CLUSTER=Msc1", None, None, "vm-2"),
    ("?Id=vm-1&input%2EId=vm-2&input.Namespace=a&input.Cluster=c", None, None, "vm-2"),
    # collections: Id[] and Id[0] bind Id
    ("?Id[]=vm-2&Namespace=n&Cluster=c", None, None, "vm-2"),
    ("?Id%5B0%5D=vm-2&Id=vm-1&Namespace=n&Cluster=c", None, None, "vm-2"),
    # percent-encoded names, + for space
    ("?%49d=vm-2&Namespace=n&Cluster=c", None, None, "vm-2"),
    ("?Id=vm+2&Namespace=n&Cluster=c", None, None, "vm 2"),
    # .NET OrdinalIgnoreCase: dotless i folds onto I, fullwidth I does not
    ("?%C4%B1d=vm-2&Id=vm-1&Namespace=n&Cluster=c", None, None, "vm-2"),
    ("?%EF%BC%A9d=vm-2&Id=vm-1&Namespace=n&Cluster=c", None, None, "vm-1"),
    # a form body binds before the query, whatever the method
    ("?Id=vm-1&Namespace=n&Cluster=c", "Id=vm-2", FORM, "vm-2"),
    ("?Id=vm-1&Namespace=n&Cluster=c", "id=vm-2", FORM + "; charset=utf-8", "vm-2"),
    ("?Id=vm-1&Namespace=n&Cluster=c",
     '--b\r\nContent-Disposition: form-data; name="Id"\r\n\r\nvm-2\r\n--b--\r\n',
     "multipart/form-data; boundary=b", "vm-2"),
    # a body of another type is not read
    ("?Id=vm-1&Namespace=n&Cluster=c", "Id=vm-2", "text/plain", "vm-1"),
    ("?Id=vm-1&Namespace=n&Cluster=c", '{"Id":"vm-2"}', "application/json", "vm-1"),
])
@pytest.mark.parametrize("method,path", [("GET", GET_ONE), ("DELETE", DESTROY)])
def test_query_binding_as_aspnet(mock, method, path, target, body, ctype, want):
    st, rec = acted_on(mock, method, path + target, body, {"Content-Type": ctype} if ctype else {})
    assert 200 <= st < 300 and rec is not None, st
    assert rec["id"] == want and rec["method"] == method and rec["op"] == path, rec
    assert rec["request"]["path"] == path + target


@pytest.mark.parametrize("body,ctype,want", [
    ('{"id":"vm-1","namespace":"n","cluster":"c"}', "application/json", "vm-1"),
    ('{"id":"vm-1","Id":"vm-2","namespace":"n","cluster":"c"}', "application/json", "vm-2"),
    ('{"id":"vm-1","id":"vm-2","namespace":"n","cluster":"c"}', "text/json", "vm-2"),
    ('{"\\u0069d":"vm-2","namespace":"n","cluster":"c"}', "application/json-patch+json", "vm-2"),
    ('{"ID":"vm-2","namespace":"n","cluster":"c"}', "Application/JSON; charset=utf-8", "vm-2"),
    ('{"id":"vm-1","namespace":"n","cluster":"c"}', None, "vm-1"),
])
def test_json_body_binding_as_system_text_json(mock, body, ctype, want):
    st, rec = acted_on(mock, "POST", START_OP + "?id=vm-9", body,
                       {"Content-Type": ctype} if ctype else {})
    assert st == 202 and rec["id"] == want, (st, rec)


@pytest.mark.parametrize("body,ctype,status", [
    ("id=vm-1&namespace=n&cluster=c", FORM, 415),
    ('{"id":"vm-1","namespace":"n","cluster":"c"}', "text/plain", 415),
    ('[{"id":"vm-1","namespace":"n","cluster":"c"}]', "application/json", 400),
    ('{"id":1,"namespace":"n","cluster":"c"}', "application/json", 400),
    ('{"id":["vm-1"],"namespace":"n","cluster":"c"}', "application/json", 400),
])
def test_body_operation_refuses_what_aspnet_refuses(mock, body, ctype, status):
    st, rec = acted_on(mock, "POST", START_OP, body, {"Content-Type": ctype})
    assert st == status and rec is None


def test_acted_records_and_reset(mock):
    mock.call("DELETE", DESTROY + "?Id=vm-1&Namespace=n&Cluster=Msc1", auth="apikey")
    mock.call("GET", GET_ONE + "?Id=vm-1", auth="apikey")               # 400: nothing acted
    mock.call("GET", "/api/v1/clusters/GetAll", auth="apikey")
    acted = mock.acted()
    assert [(a["method"], a["op"], a["id"]) for a in acted] == [
        ("DELETE", DESTROY, "vm-1"), ("GET", "/api/v1/clusters/GetAll", None)]
    assert acted[0]["namespace"] == "n" and acted[0]["cluster"] == "Msc1"
    assert acted[0]["bound"] == {"ID": "vm-1", "NAMESPACE": "n", "CLUSTER": "Msc1"}
    assert mock.acted(since=acted[0]["seq"]) == acted[1:]
    mock.clear_acted()
    assert mock.acted() == [] and len(mock.api_requests()) == 3
    mock.call("GET", "/api/v1/clusters/GetAll", auth="apikey")
    mock.reset()
    assert mock.acted() == []


def test_query_knob_filter(mock):
    mock.fail(status=500, query="Id=vm-2", path=GET_ONE)
    assert mock.call("GET", GET_ONE + "?Id=vm-1&Namespace=n&Cluster=c", auth="apikey")[0] == 200
    assert mock.call("GET", GET_ONE + "?Id=vm-2&Namespace=n&Cluster=c", auth="apikey")[0] == 500
    assert mock.call("GET", GET_ONE + "?Id=vm-2&Namespace=n&Cluster=c", auth="apikey")[0] == 200


def test_invalid_json_body_is_400(mock):
    st, h, data = mock.call("POST", "/api/v1/vpcs/CreateVpc", body=b"{not json",
                            headers={"Content-Type": "application/json"}, auth="apikey")
    assert st == 400 and json.loads(data)["error"]["message"] == "Your request is not valid!"


@pytest.mark.parametrize("auth", [None, "ApiKey wrong-key", "Bearer not-a-token", "apikey-lower",
                                  "Basic YWxpY2U6eA==", "ApiKey ", "Bearer "])
def test_unauthorized_is_401_envelope(mock, auth):
    if auth == "apikey-lower":
        auth = "ApiKey " + mock.apikey.upper()
    st, h, data = mock.call("GET", "/api/v1/clusters/GetAll", auth=auth)
    assert st == 401
    env = json.loads(data)
    check_envelope(env, success=False)
    assert env["unAuthorizedRequest"] is True
    assert env["error"]["message"]
    assert mock.stats()["unauthorized"] == 1


def test_auth_checked_before_validation(mock):
    st, _, _ = mock.call("GET", "/api/v1/servers/virtual/GetServer")
    assert st == 401


def test_unknown_path_404_and_wrong_method_405(mock):
    st, h, data = mock.call("GET", "/api/v1/servers/virtual/NoSuchThing", auth="apikey")
    assert (st, data) == (404, b"")
    st, h, data = mock.call("PUT", "/api/v1/clusters/GetAll", body=b"x", auth="apikey")
    assert (st, data, h["Allow"]) == (405, b"", "GET")
    st, h, data = mock.call("OPTIONS", "/api/v1/vpcs/CreateVpc", auth="apikey")
    assert st == 405 and h["Allow"] == "POST"


def test_head_is_get_without_body(mock):
    st, h, data = mock.call("HEAD", "/api/v1/clusters/GetAll", auth="apikey")
    st2, h2, data2 = mock.call("GET", "/api/v1/clusters/GetAll", auth="apikey")
    assert st == 200 and data == b""
    assert int(h["Content-Length"]) == len(data2) and h["ETag"] == h2["ETag"]


def test_echo_endpoint(mock):
    st, env = mock.call_json("PATCH", "/api/v1/mock/Echo?a=%2F", body=b"\x00\x01zz",
                             auth="apikey")
    assert st == 200
    r = env["result"]
    assert r["method"] == "PATCH" and r["path"] == "/api/v1/mock/Echo?a=%2F"
    assert base64.b64decode(r["body_b64"]) == b"\x00\x01zz"
    st, _, _ = mock.call("GET", "/api/v1/mock/Echo")
    assert st == 401


# ---------------------------------------------------------------------------------------------
# Login, refresh, logout, expiry
# ---------------------------------------------------------------------------------------------
def test_login_refresh_logout(mock):
    r = mock.login()
    for k in ("accessToken", "refreshToken", "expireInSeconds", "refreshTokenExpireInSeconds",
              "encryptedAccessToken", "userId", "requiresTwoFactorVerification",
              "shouldResetPassword"):
        assert k in r
    assert r["requiresTwoFactorVerification"] is False and r["shouldResetPassword"] is False
    assert r["expireInSeconds"] == M.DEFAULT_ACCESS_LIFETIME
    at, rt = r["accessToken"], r["refreshToken"]
    assert mock.call("GET", "/api/v1/clusters/GetAll", auth="bearer:" + at)[0] == 200
    # the user name is matched case-insensitively, as ABP does
    assert mock.login(user=mock.user.upper())["accessToken"] != at

    # refresh: POST (the spec) and GET (what the Python SDK sends)
    news = []
    for method in ("POST", "GET"):
        st, env = mock.call_json(method, "/api/TokenAuth/RefreshToken?refreshToken=" + rt)
        assert st == 200, env
        check_envelope(env)
        assert set(env["result"]) == {"accessToken", "encryptedAccessToken", "expireInSeconds"}
        news.append(env["result"]["accessToken"])
    assert len({at, *news}) == 3
    for t in news:
        assert mock.call("GET", "/api/v1/clusters/GetAll", auth="bearer:" + t)[0] == 200
    s = mock.stats()
    assert (s["logins_ok"], s["refreshes"]) == (2, 2)

    # logout invalidates the bearer token and its refresh token
    st, env = mock.call_json("GET", "/api/TokenAuth/LogOut", auth="bearer:" + at)
    assert st == 200 and env["success"]
    assert mock.call("GET", "/api/v1/clusters/GetAll", auth="bearer:" + at)[0] == 401
    st, env = mock.call_json("GET", "/api/TokenAuth/RefreshToken?refreshToken=" + rt)
    assert st == 401 and env["unAuthorizedRequest"] is True
    assert mock.stats()["logouts"] == 1

    toks = mock.tokens()
    assert {at, *news} <= set(toks["access"]) and rt in toks["refresh"]
    assert r["encryptedAccessToken"] in toks["encrypted"]
    assert M.DEFAULT_PASSWORD in toks["secrets"] and M.DEFAULT_APIKEY in toks["secrets"]


def test_wrong_password_is_abp_login_failed(mock):
    st, env = mock.call_json("POST", "/api/TokenAuth/Authenticate",
                             {"userNameOrEmailAddress": mock.user, "password": "nope"})
    assert st == 500
    check_envelope(env, success=False)
    assert env["error"]["message"] == "Login failed!"
    assert env["error"]["details"] == "Invalid user name or password"
    s = mock.stats()
    assert (s["logins_ok"], s["logins_failed"], s["login_attempts"]) == (0, 1, 1)


def test_login_missing_field_is_400(mock):
    st, env = mock.call_json("POST", "/api/TokenAuth/Authenticate",
                             {"userNameOrEmailAddress": mock.user})
    assert st == 400
    assert env["error"]["validationErrors"][0]["members"] == ["password"]


def test_refresh_unknown_or_missing_token(mock):
    st, env = mock.call_json("POST", "/api/TokenAuth/RefreshToken?refreshToken=bogus")
    assert st == 400 and env["error"]["message"] == "Refresh token is not valid!"
    st, env = mock.call_json("POST", "/api/TokenAuth/RefreshToken")
    assert st == 400 and env["success"] is False


def test_refresh_post_405_knob(mock):
    rt = mock.login()["refreshToken"]
    mock.config(refresh_post_405=True)
    st, h, data = mock.call("POST", "/api/TokenAuth/RefreshToken?refreshToken=" + rt)
    assert st == 405 and h["Allow"] == "GET"
    assert mock.call("GET", "/api/TokenAuth/RefreshToken?refreshToken=" + rt)[0] == 200
    mock.config(refresh_post_status=404)
    assert mock.call("POST", "/api/TokenAuth/RefreshToken?refreshToken=" + rt)[0] == 404


def test_access_token_lifetime(mock):
    mock.config(access_lifetime=0.5, refresh_lifetime=60)
    r = mock.login()
    assert r["expireInSeconds"] == 0 or r["expireInSeconds"] <= 1
    at = r["accessToken"]
    t0 = time.monotonic()
    assert mock.call("GET", "/api/v1/clusters/GetAll", auth="bearer:" + at)[0] == 200
    wait_until(lambda: mock.call("GET", "/api/v1/clusters/GetAll",
                                 auth="bearer:" + at)[0] == 401, timeout=5,
               what="access token to expire")
    assert time.monotonic() - t0 >= 0.4
    st, env = mock.call_json("GET", "/api/TokenAuth/RefreshToken?refreshToken=" +
                             r["refreshToken"])
    assert st == 200


def test_refresh_token_lifetime(mock):
    mock.config(access_lifetime=60, refresh_lifetime=0.3)
    rt = mock.login()["refreshToken"]
    wait_until(lambda: mock.call("GET", "/api/TokenAuth/RefreshToken?refreshToken=" + rt)[0]
               == 401, timeout=5, what="refresh token to expire")


def test_expire_tokens(mock):
    r = mock.login()
    mock.expire_tokens()
    assert mock.call("GET", "/api/v1/clusters/GetAll", auth="bearer:" + r["accessToken"])[0] \
        == 401
    assert mock.call("GET", "/api/TokenAuth/RefreshToken?refreshToken=" +
                     r["refreshToken"])[0] == 401
    # the API key is not a token: unaffected
    assert mock.call("GET", "/api/v1/clusters/GetAll", auth="apikey")[0] == 200
    # a new login works
    assert mock.call("GET", "/api/v1/clusters/GetAll",
                     auth="bearer:" + mock.login()["accessToken"])[0] == 200


def test_tokens_unique(mock):
    seen = set()
    for _ in range(5):
        r = mock.login()
        seen |= {r["accessToken"], r["refreshToken"]}
    assert len(seen) == 10


@pytest.mark.parametrize("mode", ["password", "two_factor", "reset_password"])
def test_reject_logins(mock, mode):
    mock.reject_logins(mode)
    st, env = mock.call_json("POST", "/api/TokenAuth/Authenticate", {
        "userNameOrEmailAddress": mock.user, "password": mock.password})
    if mode == "password":
        assert st == 500 and env["error"]["message"] == "Login failed!"
    else:
        assert st == 200 and env["success"] is True
        r = env["result"]
        assert r["accessToken"] is None and r["refreshToken"] is None
        assert r["requiresTwoFactorVerification"] is (mode == "two_factor")
        assert r["shouldResetPassword"] is (mode == "reset_password")
    assert mock.stats()["logins_failed"] == 1
    mock.reject_logins("off")
    assert mock.login()["accessToken"]


def test_config_and_reset(mock):
    mock.config(user="bob@example.com", password="Another-Pw-31415", apikey="another-key-2718")
    assert mock.login(user="bob@example.com", password="Another-Pw-31415")["accessToken"]
    assert mock.call("GET", "/api/v1/clusters/GetAll", auth="ApiKey another-key-2718")[0] == 200
    assert mock.call("GET", "/api/v1/clusters/GetAll", auth="apikey")[0] == 401
    at = mock.login(user="bob@example.com", password="Another-Pw-31415")["accessToken"]
    mock.fail(count=-1, status=500, path="/api/v1/vpcs/")
    assert mock.stats()["knobs_pending"] == 1
    secrets_ = mock.tokens()["secrets"]
    assert "Another-Pw-31415" in secrets_ and "another-key-2718" in secrets_
    mock.reset()
    assert mock.requests() == []
    s = mock.stats()
    assert s["requests"] == 0 and s["knobs_pending"] == 0 and s["logins_ok"] == 0
    assert mock.config()["user"] == H.DEFAULT_USER
    assert mock.call("GET", "/api/v1/clusters/GetAll", auth="apikey")[0] == 200
    # tokens survive a reset (a daemon may still hold them) and stay in /_mock/tokens
    assert mock.call("GET", "/api/v1/vpcs/GetVpcs", auth="bearer:" + at)[0] == 200
    assert at in mock.tokens()["access"]


# ---------------------------------------------------------------------------------------------
# Recording
# ---------------------------------------------------------------------------------------------
def raw_exchange(mock, data, timeout=10):
    """Send raw bytes over TLS, read one response (Content-Length framed)."""
    s = socket.create_connection(("127.0.0.1", mock.port), timeout=timeout)
    s = mock.ssl_context().wrap_socket(s, server_hostname="127.0.0.1")
    try:
        s.sendall(data)
        resp = http.client.HTTPResponse(s)
        resp.begin()
        return resp.status, resp.read()
    finally:
        s.close()


def test_records_are_byte_exact(mock):
    target = "/api/v1/servers/virtual/GetServers?Cluster=Msc1&x=%2f%41+b&y=a%20b&&z"
    req = ("GET %s HTTP/1.1\r\nHost: upstream.example\r\nX-B: 2\r\nAuthorization: ApiKey %s\r\n"
           "x-a: 1\r\nX-B: 3\r\nConnection: close\r\n\r\n" % (target, mock.apikey)).encode()
    st, _ = raw_exchange(mock, req)
    assert st == 200
    rec = mock.requests()[-1]
    assert rec["path"] == target and rec["method"] == "GET" and rec["version"] == "HTTP/1.1"
    assert rec["headers"] == [["Host", "upstream.example"], ["X-B", "2"],
                              ["Authorization", "ApiKey " + mock.apikey], ["x-a", "1"],
                              ["X-B", "3"], ["Connection", "close"]]
    assert rec["status"] == 200 and rec["tls"] is True
    # a leading '//' is kept as sent
    raw_exchange(mock, b"GET //api/v1/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert mock.requests()[-1]["path"] == "//api/v1/x"


def test_records_body_and_chunked(mock):
    body = bytes(range(256)) * 3
    st, _, _ = mock.call("POST", "/api/v1/mock/Echo", body=body, auth="apikey")
    assert st == 200
    rec = mock.requests()[-1]
    assert base64.b64decode(rec["body"]) == body and rec["chunked"] is False
    req = (b"POST /api/v1/vpcs/CreateVpc HTTP/1.1\r\nHost: h\r\nAuthorization: ApiKey " +
           mock.apikey.encode() + b"\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
           b"a\r\n{\"id\":\"v1\"\r\n12\r\n,\"cluster\":\"Msc1\"}\r\n0\r\n\r\n")
    st, data = raw_exchange(mock, req)
    assert st == 200, data
    rec = mock.requests()[-1]
    assert base64.b64decode(rec["body"]) == b'{"id":"v1","cluster":"Msc1"}'
    assert rec["chunked"] is True


def test_records_connections(mock):
    c = mock.connection()
    for _ in range(3):
        assert H.http_request(c, "GET", "/api/v1/clusters/GetAll",
                              headers={"Authorization": "ApiKey " + mock.apikey})[0] == 200
    c.close()
    mock.call("GET", "/api/v1/clusters/GetAll", auth="apikey")
    recs = mock.requests()
    assert len(recs) == 4
    assert len({r["conn"] for r in recs[:3]}) == 1 and recs[3]["conn"] != recs[0]["conn"]
    assert len({r["client_port"] for r in recs[:3]}) == 1
    assert [r["seq"] for r in recs] == [1, 2, 3, 4]
    s = mock.stats()
    assert s["requests"] == 4 and s["api_v1_requests"] == 4
    assert s["connections"] >= 2   # control API connections count too
    assert s["by_path"]["/api/v1/clusters/GetAll"] == 4
    assert mock.requests(since=3)[0]["seq"] == 4
    assert len(mock.requests(path="/api/v1/clusters")) == 4


# ---------------------------------------------------------------------------------------------
# Fault knobs
# ---------------------------------------------------------------------------------------------
GET_ALL = "/api/v1/clusters/GetAll"


def test_fail_knob(mock):
    mock.fail(count=2, status=503, retry_after="2")
    for _ in range(2):
        st, h, data = mock.call("GET", GET_ALL, auth="apikey")
        assert st == 503 and h["Retry-After"] == "2"
        env = json.loads(data)
        check_envelope(env, success=False)
    assert mock.call("GET", GET_ALL, auth="apikey")[0] == 200
    recs = mock.requests()
    assert [r["fault"] for r in recs] == ["fail", "fail", None]
    assert [r["status"] for r in recs] == [503, 503, 200]


def test_fail_knob_http_date_raw_body_headers(mock):
    date = "Wed, 21 Oct 2037 07:28:00 GMT"
    mock.fail(status=429, retry_after=date, body="not json at all", content_type="text/plain",
              headers=[["Location", "/elsewhere"], ["Content-Encoding", "identity"]])
    st, h, data = mock.call("GET", GET_ALL, auth="apikey")
    assert (st, data, h["Retry-After"], h["Content-Type"], h["Location"]) == \
        (429, b"not json at all", date, "text/plain", "/elsewhere")
    mock.respond(status=200, size=20000)
    st, h, data = mock.call("GET", GET_ALL, auth="apikey")
    assert st == 200 and 19900 <= len(data) <= 20100 and json.loads(data)["success"]


def test_fail_knob_401_and_filters(mock):
    mock.fail(status=401, path="/api/v1/vpcs/", method="GET")
    assert mock.call("GET", GET_ALL, auth="apikey")[0] == 200          # path filter
    assert mock.call("POST", "/api/v1/vpcs/CreateVpc", {"id": "a", "cluster": "b"},
                     auth="apikey")[0] == 200                         # method filter
    st, env = mock.call_json("GET", "/api/v1/vpcs/GetVpcs", auth="apikey")
    assert st == 401 and env["unAuthorizedRequest"] is True
    assert mock.call("GET", "/api/v1/vpcs/GetVpcs", auth="apikey")[0] == 200
    # exclude_auth leaves logins alone; without it a login is hit too
    mock.fail(count=1, status=502, exclude_auth=True)
    assert mock.login()["accessToken"]
    assert mock.call("GET", GET_ALL, auth="apikey")[0] == 502
    mock.fail(count=1, status=502)
    assert mock.call("POST", "/api/TokenAuth/Authenticate", {
        "userNameOrEmailAddress": mock.user, "password": mock.password})[0] == 502


def test_fail_knob_unlimited_until_reset(mock):
    mock.fail(count=-1, status=500)
    for _ in range(5):
        assert mock.call("GET", GET_ALL, auth="apikey")[0] == 500
    mock.reset()
    assert mock.call("GET", GET_ALL, auth="apikey")[0] == 200


def test_control_paths_never_faulted(mock):
    mock.fail(count=-1, status=500)
    mock.drop(count=-1)
    assert mock.stats()["knobs_pending"] == 2


def test_delay_knob(mock):
    mock.delay(0.6)
    t0 = time.monotonic()
    assert mock.call("GET", GET_ALL, auth="apikey")[0] == 200
    assert time.monotonic() - t0 >= 0.55
    t0 = time.monotonic()
    assert mock.call("GET", GET_ALL, auth="apikey")[0] == 200
    assert time.monotonic() - t0 < 0.5


def test_delay_mid_body(mock):
    mock.delay(0.5, phase="mid_body")
    c = mock.connection()
    c.request("GET", GET_ALL, headers={"Authorization": "ApiKey " + mock.apikey})
    t0 = time.monotonic()
    r = c.getresponse()
    t_headers = time.monotonic() - t0
    data = r.read()
    assert r.status == 200 and json.loads(data)["success"]
    assert t_headers < 0.45 and time.monotonic() - t0 >= 0.45
    c.close()


def test_delay_notices_client_going_away(mock):
    mock.delay(30)
    s = socket.create_connection(("127.0.0.1", mock.port))
    s = mock.ssl_context().wrap_socket(s, server_hostname="127.0.0.1")
    s.sendall(("GET %s HTTP/1.1\r\nHost: h\r\nAuthorization: ApiKey %s\r\n\r\n" % (
        GET_ALL, mock.apikey)).encode())
    wait_until(lambda: mock.requests(), what="request recorded")
    s.close()
    wait_until(lambda: mock.requests()[-1]["client_aborted"], timeout=5,
               what="mock to notice the client left")
    assert mock.stats()["client_aborts"] == 1


def test_drop_before_response(mock):
    mock.drop(mode="before_response")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
        mock.call("GET", GET_ALL, auth="apikey")
    assert mock.requests()[-1]["fault"] == "drop:before_response"
    assert mock.call("GET", GET_ALL, auth="apikey")[0] == 200


def test_drop_reset(mock):
    mock.drop(mode="reset")
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected, ssl.SSLError)):
        mock.call("GET", GET_ALL, auth="apikey")
    assert mock.call("GET", GET_ALL, auth="apikey")[0] == 200


def test_drop_mid_body(mock):
    mock.drop(mode="mid_body")
    c = mock.connection()
    c.request("GET", "/api/v1/servers/virtual/GetConfigurations",
              headers={"Authorization": "ApiKey " + mock.apikey})
    r = c.getresponse()
    assert r.status == 200
    n = int(r.headers["Content-Length"])
    with pytest.raises(http.client.IncompleteRead) as ei:
        r.read()
    assert 0 < len(ei.value.partial) < n
    c.close()


def test_drop_tls_corrupt(mock):
    mock.drop(mode="tls_corrupt")
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
        mock.call("GET", GET_ALL, auth="apikey")
    assert mock.call("GET", GET_ALL, auth="apikey")[0] == 200


def test_garbage(mock):
    mock.garbage()
    with pytest.raises((http.client.BadStatusLine, http.client.HTTPException, ConnectionError)):
        mock.call("GET", GET_ALL, auth="apikey")
    assert mock.requests()[-1]["fault"] == "garbage"
    assert mock.call("GET", GET_ALL, auth="apikey")[0] == 200


def test_close_idle(mock):
    c = mock.connection()
    hdr = {"Authorization": "ApiKey " + mock.apikey}
    assert H.http_request(c, "GET", GET_ALL, headers=hdr)[0] == 200
    wait_until(lambda: mock.close_idle() >= 1, what="an idle connection to close")
    # http.client notices the closed connection only when it reuses it
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
        H.http_request(c, "GET", GET_ALL, headers=hdr)
    c.close()
    assert mock.call("GET", GET_ALL, auth="apikey")[0] == 200


def test_bad_control_input(mock):
    for name, body in (("fail", b"[1,2]"), ("drop", b'{"mode":"sideways"}'),
                       ("fail", b"{bad json"), ("reject_logins", b'{"mode":"x"}')):
        c = mock.connection()
        st, _, data = H.http_request(c, "POST", "/_mock/" + name, body)
        c.close()
        assert st == 400, name
    c = mock.connection()
    assert H.http_request(c, "GET", "/_mock/nonsense")[0] == 404
    c.close()


def test_survives_hostile_input(mock):
    for junk in (b"\x00\xff" * 100 + b"\r\n\r\n", b"GET\r\n\r\n",
                 b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                 b"POST /api/v1/vpcs/CreateVpc HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"zz\r\n",
                 b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"):
        s = socket.create_connection(("127.0.0.1", mock.port), timeout=5)
        s = mock.ssl_context().wrap_socket(s, server_hostname="127.0.0.1")
        try:
            s.sendall(junk)
            s.recv(1000)
        except OSError:
            pass
        s.close()
    # plain-text bytes to the TLS port
    s = socket.create_connection(("127.0.0.1", mock.port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\n\r\n")
    try:
        s.recv(100)
    except OSError:
        pass
    s.close()
    assert mock.call("GET", GET_ALL, auth="ApiKey caf\xe9")[0] == 401
    st, env = mock.call_json("POST", "/api/TokenAuth/Authenticate",
                             b'{"userNameOrEmailAddress":"\\ud800","password":"\\udfff"}')
    assert st == 500 and env["error"]["message"] == "Login failed!"
    assert mock.call("GET", GET_ALL, auth="apikey")[0] == 200
    wait_until(lambda: mock.stats()["tls_handshake_failures"] >= 1, what="handshake failure")
    assert mock.running()


def test_chaos(mock):
    mock.chaos(enabled=True, seed=7, rate=0.6)
    outcomes = {"ok": 0, "http_error": 0, "conn_error": 0}
    for _ in range(40):
        try:
            st, _, data = mock.call("GET", GET_ALL, auth="apikey", timeout=10)
            outcomes["ok" if st == 200 else "http_error"] += 1
        except (OSError, http.client.HTTPException, ssl.SSLError):
            outcomes["conn_error"] += 1
    assert outcomes["ok"] > 0 and outcomes["http_error"] > 0 and outcomes["conn_error"] > 0, \
        outcomes
    faults = {r["fault"] for r in mock.requests() if r["fault"]}
    assert len(faults) >= 3, faults
    # chaos spares logins and the control API
    assert mock.login()["accessToken"]
    mock.chaos(enabled=False)
    for _ in range(5):
        assert mock.call("GET", GET_ALL, auth="apikey")[0] == 200


# ---------------------------------------------------------------------------------------------
# Other instances: untrusted certificate, IPv6, plain HTTP, CLI credentials
# ---------------------------------------------------------------------------------------------
def test_untrusted_certificate(start_mock, mock_server):
    m = start_mock(untrusted=True)
    ctx = ssl.create_default_context(cafile=mock_server.ca_file)
    c = http.client.HTTPSConnection("127.0.0.1", m.port, context=ctx, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        c.request("GET", GET_ALL)
    c.close()
    assert m.call("GET", GET_ALL, auth="apikey")[0] == 200   # unverified works


def test_trusted_certificate_names(mock_server):
    for host in ("127.0.0.1", "localhost"):
        ctx = ssl.create_default_context(cafile=mock_server.ca_file)
        c = http.client.HTTPSConnection(host, mock_server.port, context=ctx, timeout=10)
        c.request("GET", "/_mock/ping")
        assert c.getresponse().status == 200
        c.close()


def test_ipv6_plain_http_and_cli_credentials(start_mock):
    m6 = start_mock(host="::1")
    assert m6.url.startswith("https://[::1]:")
    assert m6.call("GET", GET_ALL, auth="apikey")[0] == 200
    ctx = ssl.create_default_context(cafile=m6.ca_file)   # the cert covers ::1
    c = http.client.HTTPSConnection("::1", m6.port, context=ctx, timeout=10)
    c.request("GET", "/_mock/ping")
    assert c.getresponse().status == 200
    c.close()
    mp = start_mock(tls=False, user="carol@example.com", password="Cli-Pw-9999",
                    apikey="cli-key-8888", args=["--access-lifetime", "7"])
    assert mp.url.startswith("http://127.0.0.1:")
    assert mp.call("GET", GET_ALL, auth="ApiKey cli-key-8888")[0] == 200
    r = mp.login()
    assert r["expireInSeconds"] == 7
    assert mp.requests()[-1]["tls"] is False


def test_mock_log_has_no_secrets(mock):
    r = mock.login()
    mock.call("GET", "/api/TokenAuth/RefreshToken?refreshToken=" + r["refreshToken"])
    mock.call("GET", GET_ALL, auth="bearer:" + r["accessToken"])
    mock.call("GET", GET_ALL, auth="apikey")
    log = mock.log_text()
    assert "/api/TokenAuth/RefreshToken" in log      # the log works ...
    for s in (r["accessToken"], r["refreshToken"], r["encryptedAccessToken"], mock.password,
              mock.apikey, "refreshToken="):
        assert s not in log                           # ... and holds no secret, no query
