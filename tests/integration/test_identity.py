# SPDX-License-Identifier: MIT
"""Who may use denvrd, the same rule on TCP and the unix socket (issue 11, items 2 and 3).

Every caller is identified by the kernel when it connects: SO_PEERCRED on the socket, the owner
of the client's socket (NETLINK_SOCK_DIAG) over TCP.  Then the daemon's own uid and root, plus
allowed_uids and allowed_groups (primary and supplementary), decide on both transports; a caller
that cannot be identified is refused; trust_local_users = true is the opt-out.

The tests run as root and create real users and groups (prefix dvid-), removed at teardown even
on failure.  The daemon runs as one of them, as its units run it:
  - "user configuration": the per-user unit, denvrd running as its user (dvid-u);
  - "system configuration": the system unit, denvrd running as a service user (dvid-s) whose
    primary group (dvid-gd) plays `denvr`, with allowed_groups = [that group] and a 0660 socket.
Clients run under other users with setpriv --init-groups, as after a login.
"""

import json
import os
import re
import resource
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

import pytest

import denvrd_harness as H
import peers as P

GET_PATH = "/api/v1/clusters/GetAll"
POST_PATH = "/api/v1/servers/virtual/StartServer"
POST_BODY = {"id": "vm-1", "namespace": "ns-1", "cluster": "Msc1"}
VIAS = ["tcp", "unix"]

# Runs denvrd as another user: copies the config where that user can read it, then
# setpriv (with that user's groups, as systemd's User= gives them) and exec.
AS_USER = r"""
import os, shutil, sys
uid, gid, workdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
args = sys.argv[4:]
i = args.index("--config") + 1
dst = os.path.join(workdir, "denvr.toml")
shutil.copyfile(args[i], dst)
os.chown(dst, uid, gid)
os.chmod(dst, 0o600)
args[i] = dst
os.execvp("setpriv", ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--init-groups",
                      "--"] + args)
"""


# ---------------------------------------------------------------------------------------------
# users, groups, clients
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def people():
    """Groups g1, g2, gd and users:
    u  the user running denvrd in the user configuration
    s  the service user of the system configuration, primary group gd ("denvr")
    a  own group, supplementary member of g1 and gd
    b  primary group g2, nothing else
    c  own group only: nobody's friend
    d  primary group gd
    Each entry: {"name", "uid", "gid", "groups"}; groups: {"g1": {"name", "gid"}, ...}."""
    plan = {"u": {}, "s": {"primary": "gd"}, "a": {"supplementary": ["g1", "gd"]},
            "b": {"primary": "g2"}, "c": {}, "d": {"primary": "gd"}}
    with P.system_users("dvid-", plan, groups=["g1", "g2", "gd"]) as made:
        users, groups = made["users"], made["groups"]
        assert groups["g1"]["gid"] in users["a"]["groups"]
        assert users["b"]["gid"] == groups["g2"]["gid"]
        yield made


def run_as(user, kind, addr, method="GET", path=GET_PATH):
    """One request as `user` (with the groups a login gives it) -> the client's JSON."""
    return P.run_as(user, kind, addr, method, path, POST_BODY if method == "POST" else None,
                    groups=P.LOGIN)


address = P.address


def envelope_message(text):
    env = json.loads(text)
    assert env["success"] is False and env["__abp"] is True, env
    return env["error"]["message"]


def assert_refused(out, *words):
    assert out.get("status") == 403, out
    msg = envelope_message(out["body"])
    for w in words:
        assert w in msg, (w, msg)
    return msg


def assert_served(out):
    assert "status" in out and 200 <= out["status"] < 300, out
    return out


def nothing_reached(mock):
    reqs = mock.api_requests()
    assert reqs == [], [(r["method"], r["path"]) for r in reqs]


def audit_lines(d):
    return [l for l in d.log_text().splitlines() if "audit: " in l]


def wait_audit(d, uid, via):
    """The audit line of a POST by uid over via."""
    tail = r"\(owner of client socket [^)]+\) via tcp" if via != "unix" else r"pid=\d+ exe=\S+ via unix"
    rx = re.compile(r"POST %s by uid=%d %s" % (re.escape(POST_PATH), uid, tail))
    return H.wait_until(lambda: [l for l in audit_lines(d) if rx.search(l)],
                        what="an audit line naming uid %d via %s" % (uid, via))


def refusal_logged(d, user, via):
    transport = "unix socket" if via == "unix" else "tcp"
    d.wait_for_log(r"refused %s peer uid=%d gid=%d\b" % (transport, user["uid"], user["gid"]))


# ---------------------------------------------------------------------------------------------
# denvrd run as a given user
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def start_as(start_denvrd, mock):
    """start_as(user, group=None, socket_mode="0666", **start_denvrd kwargs): denvrd running
    as user (primary group `group` if given), its socket and config in a directory of its own."""
    dirs = []

    def _start(user, group=None, socket_mode="0666", daemon=None, **kw):
        gid = group["gid"] if group else user["gid"]
        d = tempfile.mkdtemp(prefix="dvid-")
        dirs.append(d)
        os.chown(d, user["uid"], gid)
        os.chmod(d, 0o755)
        ca = os.path.join(d, "ca.pem")
        shutil.copyfile(mock.ca_file, ca)
        os.chmod(ca, 0o644)
        dm = {"socket_mode": socket_mode}
        dm.update(daemon or {})
        wrapper = [sys.executable, "-I", "-c", AS_USER, str(user["uid"]), str(gid), d]
        # A user's denvrd keeps its leases in a directory of its own (as under its own home).
        env = dict(kw.pop("env", None) or {}, XDG_STATE_HOME=os.path.join(d, "state"))
        return start_denvrd(socket=os.path.join(d, "denvrd.sock"), ca_file=ca, daemon=dm,
                            wrapper=wrapper, env=env, **kw)

    yield _start
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def daemon_uid(d):
    with open("/proc/%d/status" % d.pid) as f:
        return int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))


# ---------------------------------------------------------------------------------------------
# the user configuration: denvrd runs as its user
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("via", ["tcp", "tcp6", "tcp-mapped", "unix"])
def test_user_config_other_uid_refused_by_default(start_as, mock, people, via):
    u, c = people["users"]["u"], people["users"]["c"]
    d = start_as(u, listen=["127.0.0.1:0", "[::1]:0"])
    assert daemon_uid(d) == u["uid"]
    for method, path in (("GET", GET_PATH), ("POST", POST_PATH)):
        out = run_as(c, via, address(d, via), method, path)
        assert_refused(out, "uid %d may not use denvrd" % c["uid"],
                             "own user (uid %d)" % u["uid"], "allowed_uids", "allowed_groups")
    refusal_logged(d, c, via)
    nothing_reached(mock)
    # denvrd's own user and root are served
    assert_served(run_as(u, via, address(d, via)))
    st, _, _ = d.request("GET", GET_PATH, via="unix" if via == "unix" else "tcp")
    assert st == 200
    assert len(mock.api_requests()) == 2


@pytest.mark.parametrize("via", VIAS)
def test_user_config_allowed_by_uid(start_as, mock, people, via):
    u, c = people["users"]["u"], people["users"]["c"]
    d = start_as(u, daemon={"allowed_uids": [c["name"]]})
    assert_served(run_as(c, via, address(d, via)))
    assert_served(run_as(c, via, address(d, via), "POST", POST_PATH))
    assert [r["method"] for r in mock.api_requests()] == ["GET", "POST"]
    wait_audit(d, c["uid"], via)
    # another uid is still refused
    assert_refused(run_as(people["users"]["b"], via, address(d, via)), "allowed_uids")
    assert len(mock.api_requests()) == 2


@pytest.mark.parametrize("via", VIAS)
def test_user_config_allowed_by_primary_group(start_as, mock, people, via):
    u, b, c = (people["users"][k] for k in "ubc")
    g2 = people["groups"]["g2"]
    d = start_as(u, daemon={"allowed_groups": [g2["name"]]})
    out = assert_served(run_as(b, via, address(d, via), "POST", POST_PATH))
    assert g2["gid"] == b["gid"] and out["groups"] == [b["gid"]], out
    wait_audit(d, b["uid"], via)
    assert_refused(run_as(c, via, address(d, via)), "uid %d" % c["uid"], "allowed_groups")
    refusal_logged(d, c, via)
    assert [r["method"] for r in mock.api_requests()] == ["POST"]


@pytest.mark.parametrize("via", VIAS)
def test_user_config_allowed_by_supplementary_group(start_as, mock, people, via):
    u, a, b, c = (people["users"][k] for k in "uabc")
    g1 = people["groups"]["g1"]
    d = start_as(u, daemon={"allowed_groups": [g1["name"]]})
    out = assert_served(run_as(a, via, address(d, via), "POST", POST_PATH))
    assert a["gid"] != g1["gid"] and g1["gid"] in out["groups"], out
    wait_audit(d, a["uid"], via)
    for other in (b, c):
        assert_refused(run_as(other, via, address(d, via)), "uid %d" % other["uid"])
        refusal_logged(d, other, via)
    assert [r["method"] for r in mock.api_requests()] == ["POST"]


# ---------------------------------------------------------------------------------------------
# the system configuration: a service user, group "denvr" allowed, socket 0660 for that group
# ---------------------------------------------------------------------------------------------
def start_system(start_as, people, **daemon):
    s, gd = people["users"]["s"], people["groups"]["gd"]
    dm = {"allowed_groups": [gd["name"]]}
    dm.update(daemon)
    d = start_as(s, group=gd, socket_mode="0660", daemon=dm)
    assert daemon_uid(d) == s["uid"]
    st = os.stat(d.socket_path)
    assert st.st_gid == gd["gid"] and st.st_mode & 0o777 == 0o660
    return d


def test_system_config_group_members_served(start_as, mock, people):
    a, d_, s = (people["users"][k] for k in "ads")
    gd = people["groups"]["gd"]
    d = start_system(start_as, people)
    # a member by supplementary group (a) and by primary group (d): served on both
    assert a["gid"] != gd["gid"] and d_["gid"] == gd["gid"]
    for member in (a, d_):
        for via in VIAS:
            assert_served(run_as(member, via, address(d, via), "POST", POST_PATH))
            wait_audit(d, member["uid"], via)
    assert len(mock.api_requests()) == 4
    # root, and the service user itself
    st, _, _ = d.request("GET", GET_PATH)
    assert st == 200
    assert_served(run_as(dict(s, gid=gd["gid"]), "tcp", address(d, "tcp")))
    assert len(mock.api_requests()) == 6


def test_system_config_others_refused(start_as, mock, people):
    b, c = people["users"]["b"], people["users"]["c"]
    d = start_system(start_as, people)
    for other in (b, c):
        # over TCP denvrd refuses them; the socket's mode keeps them off it
        for method, path in (("GET", GET_PATH), ("POST", POST_PATH)):
            assert_refused(run_as(other, "tcp", address(d, "tcp"), method, path),
                           "uid %d may not use denvrd" % other["uid"], "allowed_groups")
        refusal_logged(d, other, "tcp")
        out = run_as(other, "unix", address(d, "unix"))
        assert out.get("error") == "EACCES", out
    nothing_reached(mock)
    assert audit_lines(d) == []


def test_system_config_allowed_uid(start_as, mock, people):
    b, c = people["users"]["b"], people["users"]["c"]
    d = start_system(start_as, people, allowed_uids=[c["name"]])
    assert_served(run_as(c, "tcp", address(d, "tcp"), "POST", POST_PATH))
    wait_audit(d, c["uid"], "tcp")
    # the socket still needs its mode to let c in as well
    assert run_as(c, "unix", address(d, "unix")).get("error") == "EACCES"
    assert_refused(run_as(b, "tcp", address(d, "tcp")), "uid %d" % b["uid"])
    assert [r["method"] for r in mock.api_requests()] == ["POST"]


# ---------------------------------------------------------------------------------------------
# callers the kernel cannot name; the opt-out
# ---------------------------------------------------------------------------------------------
def test_unidentifiable_tcp_peer_refused(start_denvrd, mock):
    """A client that sends a request and closes its socket before denvrd accepts the connection
    leaves no owner to name (the kernel may even report uid 0): refused, fail closed."""
    d = start_denvrd()
    os.kill(d.pid, 19)   # SIGSTOP: denvrd cannot accept while the client comes and goes
    try:
        s = socket.create_connection(("127.0.0.1", d.port))
        port = s.getsockname()[1]
        body = json.dumps(POST_BODY).encode()
        s.sendall(("POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n" % (POST_PATH, len(body))).encode() + body)
        s.close()
    finally:
        os.kill(d.pid, 18)   # SIGCONT
    d.wait_for_log(r"refused a tcp peer 127\.0\.0\.1:%d: the client closed its socket before "
                   r"denvrd could tell whose it is" % port)
    d.wait_for_log(r"refused POST %s from 127\.0\.0\.1:%d \(uid=\?\): denvrd cannot tell who is "
                   r"on the other end of this TCP connection \(the client closed its socket" % (
                       re.escape(POST_PATH), port))
    nothing_reached(mock)
    assert audit_lines(d) == []
    # an ordinary client of the same uid is fine
    st, _, _ = d.request("GET", GET_PATH)
    assert st == 200


def test_trust_local_users(start_as, mock, people, tmp_path):
    u, c = people["users"]["u"], people["users"]["c"]
    d = start_as(u, daemon={"trust_local_users": True})
    d.wait_for_log(r"warning access: trust_local_users = true: every local user and process that "
                   r"can reach a listener acts with this login")
    for via in VIAS:
        assert_served(run_as(c, via, address(d, via), "POST", POST_PATH))
        # still identified: the audit names the caller
        wait_audit(d, c["uid"], via)
    assert len(mock.api_requests()) == 2
    # shown by --check-config
    cfg = tmp_path / "check.toml"
    H.write_private(cfg, "[credentials]\napikey = \"k\"\n[daemon]\ntrust_local_users = true\n")
    p = subprocess.run([str(H.denvrd_binary()), "--check-config", "--config", str(cfg)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                       env=H.denvrd_env(tmp_path))
    out = p.stdout.decode() + p.stderr.decode()
    assert re.search(r'"trust_local_users":\s*true', out), out


# ---------------------------------------------------------------------------------------------
# 12,000 loopback TCP sockets open on the host
# ---------------------------------------------------------------------------------------------
N_SOCKETS = 12000
PROC_NET_TCP_OLD_CAP = 1024 * 1024   # what the former /proc/net/tcp scan read at most


# The listener's side, in a helper process: each process then holds n sockets, within the
# usual RLIMIT_NOFILE.  It accepts n connections, says so, and holds them until stdin closes.
HOLDER = r"""
import resource, socket, struct, sys
n = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lst.bind(("127.0.0.1", 0))
lst.listen(4096)
print(lst.getsockname()[1], flush=True)
held = []
for _ in range(n):
    s, _ = lst.accept()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    held.append(s)
print("held", len(held), flush=True)
sys.stdin.read()
"""


@pytest.fixture
def many_sockets():
    """N_SOCKETS established loopback connections (twice as many sockets) while the test runs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < N_SOCKETS + 512:
        pytest.fail("RLIMIT_NOFILE hard limit %d: %d connections need more" % (hard, N_SOCKETS))
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    holder = subprocess.Popen([sys.executable, "-I", "-c", HOLDER, str(N_SOCKETS)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    socks = []
    linger = struct.pack("ii", 1, 0)   # close with RST: no TIME_WAIT left behind
    deadline = time.monotonic() + H.scaled(120)
    try:
        port = int(holder.stdout.readline())
        for _ in range(N_SOCKETS):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(c)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            c.settimeout(H.scaled(10))
            c.connect(("127.0.0.1", port))
            assert time.monotonic() < deadline, "opening %d connections took too long" % N_SOCKETS
        assert holder.stdout.readline().split() == [b"held", str(N_SOCKETS).encode()]
        yield len(socks)
    finally:
        for c in socks:
            c.close()
        holder.stdin.close()
        try:
            holder.wait(H.scaled(30))
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
        holder.stdout.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_identification_with_12000_sockets_open(start_as, mock, people, many_sockets):
    u, b, c = (people["users"][k] for k in "ubc")
    # the host's socket table is now far beyond what a bounded scan would read
    with open("/proc/net/tcp", "rb") as f:
        assert len(f.read()) > PROC_NET_TCP_OLD_CAP
    d = start_as(u, daemon={"allowed_uids": [b["name"]]})
    assert many_sockets == N_SOCKETS
    for via in ("tcp", "tcp-mapped"):
        assert_refused(run_as(c, via, address(d, via), "POST", POST_PATH),
                       "uid %d may not use denvrd" % c["uid"])
        refusal_logged(d, c, "tcp")
        assert_served(run_as(b, via, address(d, via), "POST", POST_PATH))
        wait_audit(d, b["uid"], "tcp")
    assert [r["method"] for r in mock.api_requests()] == ["POST", "POST"]
    st, _, _ = d.request("GET", GET_PATH)
    assert st == 200
