# SPDX-License-Identifier: MIT
"""Rights per caller ([rights]) and local tokens ([tokens]): the three set-ups of the README
(a CI user that may only list and stop servers, a group that may start and stop but not
create or destroy, a VM that may only stop itself through a token), unknown operations,
which rule applies (token, then uid, then the first group in file order), a reload changing
rights for the next request on an open connection, GET /_denvrd/whoami, and tokens: only
their hash in the config, a wrong one is a 401, an SDK-like client with apikey = token.

Real users and groups (prefix dvrt-) are created for the module and removed at teardown,
even on failure; their clients run under setpriv.  Every refused request is checked not to
have reached the mock upstream.  Every local token made here is added to the session's
secret list, which test_zz_log_hygiene.py searches every log for.
"""

import hashlib
import http.client
import json
import os
import re
import secrets
import subprocess
import sys
import tomllib

from pathlib import Path

import pytest

import denvrd_harness as H
import peers as P

V = "/api/v1/servers/virtual/"
GET_SERVERS = V + "GetServers"
START, STOP, CREATE = V + "StartServer", V + "StopServer", V + "CreateServer"
DESTROY = V + "DestroyServer?Id=vm-1&Namespace=ns-1&Cluster=Msc1"
DESTROY_PATH = V + "DestroyServer"
VM = {"id": "vm-1", "namespace": "ns-1", "cluster": "Msc1"}
UNKNOWN = "/api/v1/denvrd-test/NotInTheTable"


# ---------------------------------------------------------------------------------------------
# users, groups, tokens
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def people():
    """ci, op, other (users) and ops, extra (groups): {"name", "uid", "gid"} / {"name", "gid"}."""
    with P.system_users("dvrt-", {"ci": {}, "op": {}, "other": {}},
                        groups=["ops", "extra"]) as made:
        yield dict(made["users"], **made["groups"])


@pytest.fixture
def new_token(harness_token_log):
    """new_token(name) -> (token, [tokens] line, whole output) from denvrd --new-token."""
    return lambda name: P.new_token(name, harness_token_log)


@pytest.fixture
def shared_dir_for_socket():
    with P.shared_dir("denvrd-rt-") as d:
        yield d


start = P.start_with_rights


def run_as(user, d, method, path, body=None, headers=None, groups=None):
    """One request on d's socket from a process with user's uid and gid (and only the given
    groups)."""
    return P.run_as(user, "unix", d.socket_path, method, path, body, headers, groups)


def send(d, method, path, body=None, headers=None, via="tcp"):
    """One request in a single write, Connection: close -> (status, parsed JSON or None)."""
    data = json.dumps(body).encode() if body is not None else b""
    h = {"Host": "localhost", "Content-Length": str(len(data)), "Connection": "close"}
    if body is not None:
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h.items())
    out = d.raw(head.encode() + b"\r\n" + data, via=via)
    top, _, rest = out.partition(b"\r\n\r\n")
    st = int(top.split(b" ", 2)[1])
    try:
        return st, json.loads(rest) if rest else None
    except ValueError:
        return st, None


def message(body):
    env = json.loads(body) if isinstance(body, str) else body
    assert env["success"] is False and env["__abp"] is True, env
    return env["error"]["message"]


def refused(out, *words, status=403):
    st, body = (out["status"], out["body"]) if isinstance(out, dict) else out
    assert st == status, (st, body)
    msg = message(body)
    for w in words:
        assert w in msg, (w, msg)
    return msg


def ok(out):
    st = out["status"] if isinstance(out, dict) else out[0]
    return 200 <= st < 300


def upstream_saw(mock):
    """(method, path without the query) of every request that reached upstream."""
    return [(r["method"], r["path"].split("?", 1)[0]) for r in mock.api_requests()]


class Conn:
    """One keep-alive connection; each request written in a single send."""

    def __init__(self, d, via):
        self.sock = d.connect_raw(via=via)

    def call(self, method, path, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else b""
        h = {"Host": "localhost", "Content-Length": str(len(data))}
        if body is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h.items())
        self.sock.sendall(head.encode() + b"\r\n" + data)
        r = http.client.HTTPResponse(self.sock, method=method)
        r.begin()
        return r.status, r.read()

    def close(self):
        self.sock.close()


def line_of(d, key):
    """The line of denvr.toml where a [rights] key is set."""
    for n, text in enumerate(d.config_path.read_text().splitlines(), 1):
        if text.startswith('"%s" = ' % key):
            return n
    raise AssertionError("no %s in %s" % (key, d.config_path))


def audit_lines(d):
    return [ln for ln in d.log_text().splitlines() if "audit: " in ln]


# ---------------------------------------------------------------------------------------------
# the three set-ups
# ---------------------------------------------------------------------------------------------
def test_ci_user_may_only_list_and_stop(start_denvrd, mock, people, shared_dir_for_socket):
    ci = people["ci"]
    d = start(start_denvrd, shared_dir_for_socket,
              '"uid:%s" = ["servers/virtual/GetServers", "servers/virtual/StopServer"]' % ci["name"])
    assert run_as(ci, d, "GET", GET_SERVERS)["status"] == 200
    assert ok(run_as(ci, d, "POST", STOP, VM))
    seen = upstream_saw(mock)
    assert [m for m, _ in seen] == ["GET", "POST"] and seen[1][1] == STOP, seen

    rule = '[rights] "uid:%s"' % ci["name"]
    msg = refused(run_as(ci, d, "POST", START, VM), rule, 'add "servers/virtual/StartServer"')
    assert "line " in msg
    refused(run_as(ci, d, "DELETE", DESTROY), rule, "servers/virtual/DestroyServer")
    refused(run_as(ci, d, "POST", CREATE, {"configuration": "x", "ssh_keys": []}), rule)
    refused(run_as(ci, d, "GET", V + "GetConfigurations"), rule)
    assert len(upstream_saw(mock)) == 2, upstream_saw(mock)
    # the refusal names the caller and the rule in the log
    d.wait_for_log(r"refused POST %s from uid=%d pid=\d+: \[rights\] \"uid:%s\"" % (
        re.escape(START), ci["uid"], re.escape(ci["name"])))
    # the daemon's own user (no rule) keeps everything
    assert ok(send(d, "POST", START, VM, via="unix"))


def test_operators_group_may_start_and_stop_not_create_or_destroy(start_denvrd, mock, people,
                                                                    shared_dir_for_socket):
    op, ops, other = people["op"], people["ops"], people["other"]
    d = start(start_denvrd, shared_dir_for_socket,
              '"group:%s" = ["read-only", "servers/virtual/StartServer", '
              '"servers/virtual/StopServer"]' % ops["name"])
    as_primary = dict(op, gid=ops["gid"])
    for who, groups in ((op, [ops["gid"]]), (as_primary, None)):   # supplementary, primary
        assert ok(run_as(who, d, "POST", START, VM, groups=groups))
        assert ok(run_as(who, d, "POST", STOP, VM, groups=groups))
        assert run_as(who, d, "GET", GET_SERVERS, groups=groups)["status"] == 200
        n = len(upstream_saw(mock))
        refused(run_as(who, d, "POST", CREATE, {"configuration": "x"}, groups=groups),
                '"group:%s"' % ops["name"], 'add "servers/virtual/CreateServer"')
        refused(run_as(who, d, "DELETE", DESTROY, groups=groups), "servers/virtual/DestroyServer")
        assert len(upstream_saw(mock)) == n
    # outside the group: no rule, and not let in at all (the peer gate names [rights])
    refused(run_as(other, d, "GET", GET_SERVERS), "uid %d" % other["uid"], "[rights]")
    refused(run_as(op, d, "POST", START, VM), "uid %d" % op["uid"])
    assert len(upstream_saw(mock)) == 6


def test_vm_token_may_only_stop_itself(start_denvrd, mock, new_token, shared_dir_for_socket):
    token, line, _ = new_token("vm-7")
    d = start(start_denvrd, shared_dir_for_socket,
              '"token:vm-7" = ["servers/virtual/StopServer?id=vm-7"]', line)
    me = {"id": "vm-7", "namespace": "ns-1", "cluster": "Msc1"}
    for scheme in ("ApiKey", "Bearer"):
        st, js = send(d, "POST", STOP, me, {"Authorization": "%s %s" % (scheme, token)})
        assert 200 <= st < 300, js
    assert upstream_saw(mock) == [("POST", STOP), ("POST", STOP)]
    for rec in mock.api_requests():   # denvrd's own credential, never the token
        assert mock.header(rec, "Authorization") == "ApiKey " + H.DEFAULT_APIKEY
        assert token not in json.dumps(rec)
        assert json.loads(mock.body(rec))["id"] == "vm-7"

    auth = {"Authorization": "ApiKey " + token}
    bad = [
        ("POST", STOP, dict(me, id="vm-8")),
        ("POST", STOP, {"namespace": "ns-1", "cluster": "Msc1"}),   # no id at all
        ("POST", START, me),
        ("GET", GET_SERVERS, None),
        ("DELETE", DESTROY.replace("vm-1", "vm-7"), None),
    ]
    for method, path, body in bad:
        msg = refused(send(d, method, path, body, auth, via="tcp"), '[rights] "token:vm-7"')
        assert token not in msg
    # what upstream could read otherwise is refused before the rule is even asked
    unreadable = [
        (STOP, {"id": "vm-7", "Id": "vm-8", "namespace": "ns-1", "cluster": "Msc1"}, "given twice"),
        (STOP + "?id=vm-7", dict(me, id="vm-8"), "takes it in its JSON body"),
        (STOP + "?input.id=vm-7", dict(me, id="vm-8"), "dotted or bracketed"),
    ]
    for path, body, why in unreadable:
        refused(send(d, "POST", path, body, auth, via="tcp"), why, status=400)
    # over the socket, from the daemon's own uid: the token narrows it just the same
    refused(send(d, "POST", START, me, auth, via="unix"), '"token:vm-7"')
    assert len(upstream_saw(mock)) == 2
    # audit: the caller's uid, the token's name and the rule
    line_ = H.wait_until(lambda: [l for l in audit_lines(d) if "token=vm-7" in l], what="audit")[0]
    assert 'uid=%d' % os.getuid() in line_ and '(rule "token:vm-7")' in line_, line_
    assert token not in d.log_text()


# ---------------------------------------------------------------------------------------------
# unknown operations and which rule applies
# ---------------------------------------------------------------------------------------------
def test_unknown_operations_follow_their_method(start_denvrd, mock, people, shared_dir_for_socket):
    ci, op, ops = people["ci"], people["op"], people["ops"]
    d = start(start_denvrd, shared_dir_for_socket,
              '"uid:%s" = ["servers/virtual/GetServers"]\n'
              '"uid:%s" = ["read-only", "servers/virtual/StopServer"]\n'
              '"group:%s" = "read-only"' % (ci["name"], op["name"], ops["name"]))
    # a list without "read-only": not even reads outside the table
    refused(run_as(ci, d, "GET", UNKNOWN), "not an operation in denvrd's table", "counts as a read",
            'add "read-only"')
    # a known path with another method is not that operation: it counts by its method
    refused(run_as(ci, d, "POST", GET_SERVERS, {}), "counts as a write", 'only "full"')
    assert upstream_saw(mock) == []
    # "read-only" in a list: reads outside the table pass (and reach upstream), writes do not
    assert run_as(op, d, "GET", UNKNOWN)["status"] == 404
    assert run_as(op, d, "HEAD", UNKNOWN)["status"] == 404
    for m in ("POST", "PUT", "PATCH", "DELETE"):
        refused(run_as(op, d, m, UNKNOWN, {}), "counts as a write", 'only "full"')
    # the rule "read-only" alone
    other = dict(people["other"], gid=ops["gid"])
    assert run_as(other, d, "GET", UNKNOWN)["status"] == 404
    refused(run_as(other, d, "POST", UNKNOWN, {}), '"group:%s"' % ops["name"], '"read-only"')
    assert upstream_saw(mock) == [("GET", UNKNOWN), ("HEAD", UNKNOWN), ("GET", UNKNOWN)]


def test_most_specific_subject_decides(start_denvrd, mock, people, new_token,
                                       shared_dir_for_socket):
    """token > uid > the first group rule in file order; rules never add up."""
    op, ops, extra = people["op"], people["ops"], people["extra"]
    token, line, _ = new_token("narrow")
    d = start(start_denvrd, shared_dir_for_socket,
              '"group:%s" = ["servers/virtual/StopServer"]\n'
              '"group:%s" = ["servers/virtual/StartServer"]\n'
              '"token:narrow" = ["servers/virtual/GetServers"]\n' % (extra["name"], ops["name"]), line)
    both = [ops["gid"], extra["gid"]]
    # in both groups: the first rule in the file (extra: StopServer) decides, not the union
    assert ok(run_as(op, d, "POST", STOP, VM, groups=both))
    refused(run_as(op, d, "POST", START, VM, groups=both), '"group:%s"' % extra["name"])
    # in ops only: ops's rule
    assert ok(run_as(op, d, "POST", START, VM, groups=[ops["gid"]]))
    # a token beats the uid: root (denvrd's own user, full without a rule) is narrowed by it
    auth = {"Authorization": "ApiKey " + token}
    assert send(d, "GET", GET_SERVERS, None, auth, via="unix")[0] == 200
    refused(send(d, "POST", STOP, VM, auth, via="unix"), '"token:narrow"')
    assert ok(send(d, "POST", STOP, VM, via="unix"))
    # a token also beats a user's own group rules
    refused(run_as(op, d, "POST", STOP, VM, auth, groups=both), '"token:narrow"')
    assert [m for m, _ in upstream_saw(mock)] == ["POST", "POST", "GET", "POST"]

    # now a uid rule for op: it wins over both group rules
    d.stop()
    mock.reset()
    d = start(start_denvrd, shared_dir_for_socket,
              '"group:%s" = ["servers/virtual/StopServer"]\n'
              '"uid:%s" = ["servers/virtual/GetServers"]\n' % (extra["name"], op["name"]))
    refused(run_as(op, d, "POST", STOP, VM, groups=both), '"uid:%s"' % op["name"])
    assert run_as(op, d, "GET", GET_SERVERS, groups=both)["status"] == 200
    out = run_as(op, d, "GET", "/_denvrd/whoami", groups=both)
    who = json.loads(out["body"])
    assert who["rule"]["subject"] == "uid:%s" % op["name"] and who["allowed"] == ["servers/virtual/GetServers"]


def test_uid_rule_over_tcp(start_denvrd, mock, shared_dir_for_socket):
    """A TCP caller is named by the uid owning its socket, and held to that uid's rule."""
    d = start(start_denvrd, shared_dir_for_socket, '"uid:%d" = ["servers/virtual/GetServers"]' % os.getuid())
    st, who = send(d, "GET", "/_denvrd/whoami")
    assert st == 200 and who["caller"]["transport"] == "tcp" and who["caller"]["uid"] == os.getuid()
    assert who["rule"]["subject"] == "uid:%d" % os.getuid()
    assert send(d, "GET", GET_SERVERS)[0] == 200
    refused(send(d, "POST", START, VM), '"uid:%d"' % os.getuid(), 'add "servers/virtual/StartServer"')
    assert upstream_saw(mock) == [("GET", GET_SERVERS)]


def test_listener_level_is_a_ceiling(start_denvrd, mock, people, shared_dir_for_socket):
    ci = people["ci"]
    d = start(start_denvrd, shared_dir_for_socket, '"uid:%s" = "full"' % ci["name"],
              daemon={"socket_access": "read-only"})
    assert run_as(ci, d, "GET", GET_SERVERS)["status"] == 200
    refused(run_as(ci, d, "POST", STOP, VM), 'socket_access = "read-only"', 'socket_access = "full"')
    who = json.loads(run_as(ci, d, "GET", "/_denvrd/whoami?operation=servers/virtual/StopServer")["body"])
    assert who["can_i"]["allowed"] is False and "socket_access" in who["can_i"]["reason"]
    assert "servers/virtual/StopServer" not in who["allowed"] and "servers/virtual/GetServers" in who["allowed"]
    assert upstream_saw(mock) == [("GET", GET_SERVERS)]


def test_off_rule(start_denvrd, mock, people, shared_dir_for_socket):
    ci = people["ci"]
    d = start(start_denvrd, shared_dir_for_socket, '"uid:%s" = "off"' % ci["name"])
    for method, path in (("GET", GET_SERVERS), ("GET", "/_denvrd/status"),
                         ("POST", "/api/TokenAuth/Authenticate")):
        refused(run_as(ci, d, method, path, {} if method == "POST" else None),
                '"uid:%s" (line' % ci["name"], 'is "off"')
    assert run_as(ci, d, "GET", "/_denvrd/healthz")["status"] == 200
    who = json.loads(run_as(ci, d, "GET", "/_denvrd/whoami")["body"])
    assert who["rule"]["rights"] == "off" and who["allowed"] == []
    assert upstream_saw(mock) == []


# ---------------------------------------------------------------------------------------------
# a reload changes rights for the next request on an open connection
# ---------------------------------------------------------------------------------------------
def test_reload_applies_to_next_request_on_open_connection(start_denvrd, mock, new_token,
                                                          shared_dir_for_socket):
    token, line, _ = new_token("reloaded")
    d = start(start_denvrd, shared_dir_for_socket,
              '"token:reloaded" = ["servers/virtual/StopServer"]', line)
    auth = {"Authorization": "ApiKey " + token}
    tcp, unix = Conn(d, "tcp"), Conn(d, "unix")
    call = Conn.call

    assert ok(call(tcp, "POST", STOP, VM, auth))
    assert ok(call(unix, "POST", START, VM))
    socks = (tcp.sock, unix.sock)

    text = d.config_path.read_text()
    text = text.replace('"token:reloaded" = ["servers/virtual/StopServer"]',
                        '"token:reloaded" = "read-only"\n"uid:%d" = ["servers/virtual/GetServers"]' % os.getuid())
    H.write_private(d.config_path, text)
    d.reload()
    d.wait_for_log(r"configuration reloaded")

    # the next request on each open connection is judged by the new rules
    assert (tcp.sock, unix.sock) == socks, "the connections were not kept open"
    st, body = call(tcp, "GET", "/_denvrd/whoami", headers=auth)
    assert json.loads(body)["rule"] == {"subject": "token:reloaded", "line": line_of(d, "token:reloaded"),
                                        "rights": "read-only"}
    assert call(unix, "GET", GET_SERVERS)[0] == 200
    assert (tcp.sock, unix.sock) == socks
    st, body = call(tcp, "POST", STOP, VM, auth)
    refused((st, body.decode()), '"token:reloaded"', 'is "read-only"')
    st, body = call(unix, "POST", START, VM)
    refused((st, body.decode()), '"uid:%d"' % os.getuid())
    assert upstream_saw(mock) == [("POST", STOP), ("POST", START), ("GET", GET_SERVERS)]

    # a token removed by a reload stops working on a connection it opened
    tcp.close()
    tcp = Conn(d, "tcp")
    assert call(tcp, "GET", GET_SERVERS, headers=auth)[0] == 200
    s0 = tcp.sock
    text = re.sub(r'(?m)^"token:reloaded".*\n|^reloaded = .*\n', "", d.config_path.read_text())
    H.write_private(d.config_path, text)
    d.reload()
    H.wait_until(lambda: d.log_text().count("configuration reloaded") >= 2, what="second reload")
    assert tcp.sock is s0
    st, body = call(tcp, "GET", GET_SERVERS, headers=auth)
    refused((st, body.decode()), "matches no entry of [tokens]", status=401)
    assert len(upstream_saw(mock)) == 4
    tcp.close()
    unix.close()


# ---------------------------------------------------------------------------------------------
# tokens
# ---------------------------------------------------------------------------------------------
def test_new_token_output_and_only_the_hash_in_the_config(start_denvrd, mock, new_token, tmp_path):
    token, line, out = new_token("ci-7")
    assert re.fullmatch(r"denvrd_[A-Za-z0-9_-]{43}", token), token
    assert line == 'ci-7 = "sha256:%s"' % hashlib.sha256(token.encode()).hexdigest()
    assert "[tokens]" in out and '"token:ci-7" = ' in out and out.count(token) == 1
    # the printed lines are a valid config as they are, and hold no token
    cfg = tmp_path / "denvr.toml"
    text = '[credentials]\napikey = "k"\n\n' + out.split("\n", 1)[1]
    H.write_private(cfg, text)
    doc = tomllib.loads(text)
    assert doc["tokens"]["ci-7"].startswith("sha256:") and doc["rights"]["token:ci-7"] == "read-only"
    assert token not in text
    p = subprocess.run([str(H.denvrd_binary()), "--check-config", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    js = json.loads(p.stdout)
    assert js["tokens"] == {"ci-7": doc["tokens"]["ci-7"]}
    assert js["rights"]["rules"] == [{"subject": "token:ci-7", "rights": "read-only"}]
    assert token not in p.stdout + p.stderr
    # a second token differs; a bad name is refused
    assert new_token("ci-7")[0] != token
    p = subprocess.run([str(H.denvrd_binary()), "--new-token", "a.b"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and p.stdout == "" and "token name" in p.stderr
    # pasting the token itself into [tokens] is refused without quoting it
    H.write_private(cfg, '[credentials]\napikey = "k"\n[rights]\n"token:x" = "full"\n[tokens]\nx = "%s"\n' % token)
    p = subprocess.run([str(H.denvrd_binary()), "--check-config", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "this is a token itself" in p.stderr and token not in p.stderr


def test_wrong_token_is_401_and_dummy_keys_are_not_tokens(start_denvrd, mock, new_token,
                                                         shared_dir_for_socket):
    token, line, _ = new_token("good")
    d = start(start_denvrd, shared_dir_for_socket, '"token:good" = "full"', line)
    wrong = "denvrd_" + secrets.token_urlsafe(32)
    for auth in ("ApiKey " + wrong, "Bearer " + wrong, "apikey " + token[:-1], "ApiKey denvrd_"):
        for via in ("tcp", "unix"):
            st, js = send(d, "GET", GET_SERVERS, None, {"Authorization": auth}, via=via)
            assert st == 401, (auth, st, js)
            assert "matches no entry of [tokens]" in message(js) and wrong not in message(js)
    assert upstream_saw(mock) == []
    assert wrong not in d.log_text()
    d.wait_for_log(r"refused GET %s from 127\.0\.0\.1:\d+: a local token that matches no \[tokens\] entry"
                   % re.escape(GET_SERVERS))
    # the dummy credentials SDK users give are no token claim: the caller is its uid, as before
    for auth in ("ApiKey local", "Bearer denvrd-local-session", "Bearer client-supplied-xyz"):
        assert send(d, "GET", GET_SERVERS, None, {"Authorization": auth})[0] == 200
    # the right one, case-insensitive scheme
    assert send(d, "GET", GET_SERVERS, None, {"Authorization": "apikey " + token})[0] == 200
    for rec in mock.api_requests():
        assert mock.header(rec, "Authorization") == "ApiKey " + H.DEFAULT_APIKEY


# What the Denvr Python SDK does (denvr/config.py, denvr/auth.py, denvr/session.py), with the
# standard library: read its own denvr.toml, then with `apikey` send "Authorization: ApiKey
# KEY" on every call; with username/password log in at /api/TokenAuth/Authenticate and send
# "Bearer <accessToken>".
SDK_CLIENT = r"""
import json, sys, tomllib, urllib.request, urllib.error

cfg = tomllib.load(open(sys.argv[1], "rb"))
server = cfg["defaults"]["server"].rstrip("/")
creds = cfg["credentials"]

def call(method, path, params=None, body=None, auth=None):
    url = server + path
    if params:
        url += "?" + "&".join("%s=%s" % kv for kv in params.items())
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")

if creds.get("apikey"):
    auth = "ApiKey " + creds["apikey"]
else:
    st, js = call("POST", "/api/TokenAuth/Authenticate",
                  body={"userNameOrEmailAddress": creds["username"], "password": creds["password"]})
    if st != 200:
        print(json.dumps({"login": st, "body": js}))
        sys.exit(0)
    auth = "Bearer " + js["result"]["accessToken"]
    # the SDK refreshes with the refresh token when the access token expires
    st, ref = call("GET", "/api/TokenAuth/RefreshToken", params={"refreshToken": js["result"]["refreshToken"]})
    assert st == 200 and ref["result"]["accessToken"] == js["result"]["accessToken"], ref

out = {}
out["servers"] = call("GET", "/api/v1/servers/virtual/GetServers", params={"Cluster": "Msc1"}, auth=auth)
out["stop_self"] = call("POST", "/api/v1/servers/virtual/StopServer",
                        body={"id": "vm-7", "namespace": "ns-1", "cluster": "Msc1"}, auth=auth)
out["stop_other"] = call("POST", "/api/v1/servers/virtual/StopServer",
                         body={"id": "vm-8", "namespace": "ns-1", "cluster": "Msc1"}, auth=auth)
out["destroy"] = call("DELETE", "/api/v1/servers/virtual/DestroyServer",
                      params={"Id": "vm-7", "Namespace": "ns-1", "Cluster": "Msc1"}, auth=auth)
print(json.dumps(out))
"""


def run_sdk(d, where, credentials, user=None):
    cfg = Path(where) / ("sdk-%s.toml" % secrets.token_hex(3))
    lines = ['[defaults]', 'server = "http://127.0.0.1:%d"' % d.port, 'cluster = "Msc1"', '',
             '[credentials]'] + ['%s = "%s"' % kv for kv in credentials.items()]
    H.write_private(cfg, "\n".join(lines) + "\n")
    cmd = [sys.executable, "-I", "-c", SDK_CLIENT, str(cfg)]
    if user:
        os.chown(cfg, user["uid"], user["gid"])
        cmd = ["setpriv", "--reuid=%d" % user["uid"], "--regid=%d" % user["gid"], "--clear-groups"] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=H.scaled(60), cwd="/",
                       env={"PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_sdk_like_client_with_apikey_token(start_denvrd, mock, new_token, people,
                                           shared_dir_for_socket):
    where = shared_dir_for_socket   # the SDK's own config, readable by the other user
    token, line, _ = new_token("sdk-vm-7")
    d = start(start_denvrd, shared_dir_for_socket,
              '"token:sdk-vm-7" = ["servers/virtual/GetServers", "servers/virtual/StopServer?id=vm-7"]',
              line)
    # apikey = the token, from the daemon's own uid and from a user no rule names
    for user in (None, people["other"]):
        mock.reset()
        out = run_sdk(d, where, {"apikey": token}, user)
        assert out["servers"][0] == 200 and out["servers"][1]["success"] is True, out
        assert 200 <= out["stop_self"][0] < 300, out
        assert out["stop_other"][0] == 403 and '"token:sdk-vm-7"' in out["stop_other"][1]["error"]["message"]
        assert out["destroy"][0] == 403
        assert upstream_saw(mock) == [("GET", GET_SERVERS), ("POST", STOP)], upstream_saw(mock)
        for rec in mock.api_requests():
            assert mock.header(rec, "Authorization") == "ApiKey " + H.DEFAULT_APIKEY
            assert token not in json.dumps(rec)
    # username/password with the token as password: the login shim hands back the token
    # itself, so the Bearer the SDK then sends carries exactly the token's rights
    mock.reset()
    out = run_sdk(d, where, {"username": "vm-7", "password": token}, people["other"])
    assert out["servers"][0] == 200 and 200 <= out["stop_self"][0] < 300, out
    assert out["stop_other"][0] == 403 and out["destroy"][0] == 403, out
    assert [m for m, _ in upstream_saw(mock)] == ["GET", "POST"]
    # a wrong token as password: the login itself is a 401
    out = run_sdk(d, where, {"username": "vm-7", "password": "denvrd_" + "A" * 43}, people["other"])
    assert out["login"] == 401
    assert token not in d.log_text()


def test_login_shim_with_token_from_a_peer_no_rule_names(start_denvrd, mock, new_token, people,
                                                         shared_dir_for_socket):
    """On the socket, a uid that may not use denvrd can still log in with a local token as the
    password (the shim judges the peer once it has read the body), and then acts as the token;
    with any other password it is refused at the login already."""
    token, line, _ = new_token("shim")
    other = people["other"]
    d = start(start_denvrd, shared_dir_for_socket, '"token:shim" = ["servers/virtual/GetServers"]', line)
    login = "/api/TokenAuth/Authenticate"
    out = run_as(other, d, "POST", login, {"userNameOrEmailAddress": "vm", "password": token})
    assert out["status"] == 200, out
    res = json.loads(out["body"])["result"]
    assert res["accessToken"] == token and res["refreshToken"] == token
    out = run_as(other, d, "GET", "/api/TokenAuth/RefreshToken?refreshToken=" + token)
    assert out["status"] == 200 and json.loads(out["body"])["result"]["accessToken"] == token
    bearer = {"Authorization": "Bearer " + res["accessToken"]}
    assert run_as(other, d, "GET", GET_SERVERS, headers=bearer)["status"] == 200
    refused(run_as(other, d, "POST", STOP, VM, headers=bearer), '"token:shim"')
    # a dummy password, a refresh or a logout without the token: the peer gate, at the shim
    for method, path, body in (("POST", login, {"userNameOrEmailAddress": "x", "password": "local"}),
                               ("GET", "/api/TokenAuth/RefreshToken?refreshToken=x", None),
                               ("GET", "/api/TokenAuth/LogOut", None)):
        refused(run_as(other, d, method, path, body), "uid %d" % other["uid"], "[rights]")
    # a wrong token as the password
    out = run_as(other, d, "POST", login, {"userNameOrEmailAddress": "x", "password": "denvrd_" + "B" * 43})
    refused(out, "matches no entry of [tokens]", status=401)
    assert upstream_saw(mock) == [("GET", GET_SERVERS)]
    assert token not in d.log_text()


# ---------------------------------------------------------------------------------------------
# whoami
# ---------------------------------------------------------------------------------------------
def test_whoami(start_denvrd, mock, people, new_token, shared_dir_for_socket):
    ci, extra = people["ci"], people["extra"]
    token, line, _ = new_token("who")
    d = start(start_denvrd, shared_dir_for_socket,
              '"uid:%s" = ["servers/virtual/Get*", "servers/virtual/StopServer"]\n'
              '"token:who" = ["servers/virtual/StopServer?id=vm-7"]' % ci["name"], line)
    out = run_as(ci, d, "GET", "/_denvrd/whoami", groups=[extra["gid"]])
    assert out["status"] == 200
    who = json.loads(out["body"])
    c = who["caller"]
    assert c["transport"] == "unix" and c["uid"] == ci["uid"] and c["user"] == ci["name"]
    assert c["pid"] == out["pid"] and c["token"] is None
    assert c["group"] == {"gid": ci["gid"], "name": ci["name"]}
    assert {"gid": extra["gid"], "name": extra["name"]} in c["groups"]
    assert who["rule"] == {"subject": "uid:%s" % ci["name"], "line": line_of(d, "uid:" + ci["name"]),
                           "rights": ["servers/virtual/Get*", "servers/virtual/StopServer"]}
    assert "servers/virtual/StopServer" in who["allowed"] and "servers/virtual/GetServers" in who["allowed"]
    assert "servers/virtual/StartServer" not in who["allowed"]
    assert all(a.startswith("servers/virtual/") for a in who["allowed"]), who["allowed"]
    assert who["reads_outside_table"] is False and who["writes_outside_table"] is False
    assert who["listener"]["kind"] == "unix" and who["listener"]["access"] == "full"

    can = json.loads(run_as(ci, d, "GET", "/_denvrd/whoami?operation=servers/virtual/StopServer")["body"])
    assert can["can_i"] == {"operation": "servers/virtual/StopServer", "method": "POST", "allowed": True,
                            "only_as": None, "reason": None}
    can = json.loads(run_as(ci, d, "GET", "/_denvrd/whoami?operation=servers%2Fvirtual%2FDestroyServer")["body"])
    assert can["can_i"]["allowed"] is False and 'add "servers/virtual/DestroyServer"' in can["can_i"]["reason"]
    out = run_as(ci, d, "GET", "/_denvrd/whoami?operation=servers/virtual/Nope")
    refused(out, "no operation", status=400)

    # a token over TCP, from the daemon's own uid
    st, who = send(d, "GET", "/_denvrd/whoami?operation=servers/virtual/StopServer", None,
                   {"Authorization": "Bearer " + token})
    assert st == 200 and who["caller"]["token"] == "who" and who["caller"]["transport"] == "tcp"
    assert who["caller"]["uid"] == os.getuid()
    assert who["allowed"] == ["servers/virtual/StopServer?id=vm-7"]
    assert who["can_i"]["allowed"] == "conditional" and who["can_i"]["only_as"] == "servers/virtual/StopServer?id=vm-7"
    # no rule: the default, and everything in the table
    st, who = send(d, "GET", "/_denvrd/whoami", via="unix")
    assert who["rule"] is None and "no rule in [rights]" in who["decided_by"]
    assert who["writes_outside_table"] is True and "servers/virtual/DestroyServer" in who["allowed"]
    assert upstream_saw(mock) == []


# ---------------------------------------------------------------------------------------------
# /_denvrd/wait reads its inner operation, so that operation's rule decides
# ---------------------------------------------------------------------------------------------
def test_wait_is_judged_as_a_get_of_its_inner_operation(start_denvrd, mock, new_token,
                                                        shared_dir_for_socket):
    stop_only, stop_line, _ = new_token("stopper")
    own_vm, own_line, _ = new_token("vm-7")
    d = start(start_denvrd, shared_dir_for_socket,
              '"token:stopper" = ["servers/virtual/StopServer"]\n'
              '"token:vm-7" = ["servers/virtual/GetServer?id=vm-7"]',
              stop_line + "\n" + own_line)
    until = "&namespace=ns-1&until=status:ONLINE&timeout=5"
    # every spelling of the wait path reaches the same rule
    for path in ("/_denvrd/wait/api/v1/servers/virtual/GetServer?id=vm-7" + until,
                 "/_denvrd/wait/servers/virtual/GetServer?id=vm-7" + until,
                 "/_denvrd/WAIT/API/v1/Servers/Virtual/getserver?id=vm-7" + until):
        refused(send(d, "GET", path, headers={"Authorization": "ApiKey " + stop_only}),
                '[rights] "token:stopper"')
    assert upstream_saw(mock) == []
    auth = {"Authorization": "ApiKey " + own_vm}
    # its own VM: the condition holds for the wait's query too
    st, js = send(d, "GET", "/_denvrd/wait/servers/virtual/GetServer?id=vm-7" + until, headers=auth)
    assert st == 200, js
    refused(send(d, "GET", "/_denvrd/wait/servers/virtual/GetServer?id=vm-8" + until, headers=auth),
            '[rights] "token:vm-7"')
    assert [p for _, p in upstream_saw(mock)] == [V + "GetServer"]
