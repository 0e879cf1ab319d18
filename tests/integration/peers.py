# SPDX-License-Identifier: MIT
"""Callers under other uids for the integration tests: temporary system users and groups,
a directory they can reach, and one request sent from a process running as one of them.

The tests run as root; users and groups made here are removed again, even on failure.
"""

import contextlib
import grp
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile

import pytest

import denvrd_harness as H

# run_as(..., groups=LOGIN): the groups a login gives the user (setpriv --init-groups)
LOGIN = "login"

# One request, Connection: close, sent in a single write.  kind: unix, tcp (IPv4), tcp6 or
# tcp-mapped (an AF_INET6 socket reaching the IPv4 listener as ::ffff:127.0.0.1).  body is
# sent as is (Content-Type: application/json when there is one); headers is a JSON object
# added last.  A failed connect is reported as {"uid", "error": errno name}.
CLIENT = r"""
import errno, json, os, socket, sys
kind, addr, method, path, body, headers = sys.argv[1:7]
try:
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(addr)
    else:
        host, port = addr.rsplit(":", 1)
        fam = socket.AF_INET if kind == "tcp" else socket.AF_INET6
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.connect((host.strip("[]"), int(port)))
except OSError as e:
    print(json.dumps({"uid": os.getuid(), "error": errno.errorcode.get(e.errno, str(e))}))
    sys.exit(0)
s.settimeout(20)
local = s.getsockname()
body = body.encode()
h = {"Host": "localhost", "Content-Length": str(len(body)), "Connection": "close"}
if body:
    h["Content-Type"] = "application/json"
h.update(json.loads(headers))
head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h.items())
s.sendall(head.encode() + b"\r\n" + body)
data = b""
while True:
    c = s.recv(65536)
    if not c:
        break
    data += c
print(json.dumps({"pid": os.getpid(), "uid": os.getuid(), "groups": os.getgroups(),
                  "local": list(local[:2]) if kind != "unix" else None,
                  "status": int(data.split(b" ", 2)[1]),
                  "body": data.split(b"\r\n\r\n", 1)[1].decode(errors="replace")}))
"""


def run_as(user, via, addr, method, path, body=None, headers=None, groups=None):
    """One request from a process with user's uid and gid -> the client's JSON.  groups: None
    for none at all, a list of gids, or LOGIN.  body is JSON-encoded unless None."""
    cmd = ["setpriv", "--reuid=%d" % user["uid"], "--regid=%d" % user["gid"]]
    if groups == LOGIN:
        cmd += ["--init-groups"]
    elif groups:
        cmd += ["--groups=" + ",".join(str(g) for g in groups)]
    else:
        cmd += ["--clear-groups"]
    cmd += [sys.executable, "-I", "-c", CLIENT, via, addr, method, path,
            json.dumps(body) if body is not None else "", json.dumps(headers or {})]
    p = subprocess.run(cmd, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env={"PATH": "/usr/bin:/bin"}, timeout=H.scaled(30))
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    out = json.loads(p.stdout)
    assert out["uid"] == user["uid"]
    return out


def address(d, via):
    """Where a client reaches denvrd d over via (see CLIENT)."""
    if via == "unix":
        return d.socket_path
    if via == "tcp6":
        return "[::1]:%d" % d.port6
    if via == "tcp-mapped":
        return "[::ffff:127.0.0.1]:%d" % d.port
    return "127.0.0.1:%d" % d.port


def _run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _quiet(cmd):
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def system_users(prefix, users, groups=()):
    """Temporary system users and groups, named prefix + key + "-" + a random tag, removed on
    exit.  groups: keys of groups to make.  users: {key: {"primary": group key (default: a
    group of its own), "supplementary": [group keys]}}.  Yields {"users": {key: {"name", "uid",
    "gid", "groups"}}, "groups": {key: {"name", "gid"}}}; a user's "groups" is what a login
    gives it, sorted."""
    if os.geteuid() != 0:
        pytest.fail("these tests create temporary users and groups and must run as root")
    for tool in ("useradd", "userdel", "groupadd", "groupdel", "setpriv"):
        if not shutil.which(tool):
            pytest.fail("%s is needed to create the test users" % tool)
    tag = secrets.token_hex(3)
    made_users, made_groups = [], []
    try:
        gs = {}
        for g in groups:
            name = "%s%s-%s" % (prefix, g, tag)
            _run(["groupadd", "--system", name])
            made_groups.append(name)
            gs[g] = {"name": name, "gid": grp.getgrnam(name).gr_gid}
        us = {}
        for who, spec in users.items():
            name = "%s%s-%s" % (prefix, who, tag)
            primary = spec.get("primary")
            opts = ["--no-user-group", "--gid", gs[primary]["name"]] if primary else ["--user-group"]
            if spec.get("supplementary"):
                opts += ["--groups", ",".join(gs[g]["name"] for g in spec["supplementary"])]
            _run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"] +
                 opts + [name])
            made_users.append(name)
            pw = pwd.getpwnam(name)
            us[who] = {"name": name, "uid": pw.pw_uid, "gid": pw.pw_gid,
                       "groups": sorted(os.getgrouplist(name, pw.pw_gid))}
        yield {"users": us, "groups": gs}
    finally:
        for name in made_users:
            _quiet(["userdel", name])
        for name in made_groups:
            _quiet(["groupdel", name])


@contextlib.contextmanager
def shared_dir(prefix):
    """A directory other users can traverse (a test's tmp dir is private to root)."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o711)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def new_token(name, token_log):
    """denvrd --new-token name -> (token, its [tokens] line, the whole output); the token is
    added to the session's secret list (token_log), which test_zz_log_hygiene.py searches the
    logs for."""
    p = subprocess.run([str(H.denvrd_binary()), "--new-token", name], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    token = p.stdout.splitlines()[0]
    with open(token_log, "a") as f:
        f.write("local %s\n" % token)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith(name + " = ")]
    assert len(line) == 1, p.stdout
    return token, line[0], p.stdout


def start_with_rights(start_denvrd, sockdir, rights="", tokens="", daemon=None):
    """denvrd with these [rights] and [tokens] lines, its socket in the shared sockdir (mode
    0666, so that only denvrd's own checks decide who gets in)."""
    dm = {"socket_mode": "0666"}
    dm.update(daemon or {})
    extra = ""
    if rights:
        extra += "[rights]\n" + rights.strip("\n") + "\n"
    if tokens:
        extra += "\n[tokens]\n" + tokens.strip("\n") + "\n"
    return start_denvrd(extra, socket=os.path.join(sockdir, "denvrd.sock"), daemon=dm)

