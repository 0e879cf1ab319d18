# SPDX-License-Identifier: MIT
"""Differential tests of denvrd's config loader against Python's tomllib.

Every file in tests/config-corpus/valid must be accepted by
`denvrd --check-config`, and each value it prints must equal what tomllib
reads from the same file, with the SDK defaults applied here (independently
of denvrd).  Every file in tests/config-corpus/invalid must be refused with
exit status 1 and an error naming PATH:LINE.  See tests/config-corpus/README.md.

Needs only the standard library and pytest; DENVRD_BIN names the binary.
"""

import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parent.parent / "config-corpus"
VALID = sorted((CORPUS / "valid").glob("*.toml"))
INVALID = sorted((CORPUS / "invalid").glob("*.toml"))

# What the Denvr SDKs use when [defaults] leaves a key out (their Config class).
SDK_DEFAULTS = {
    "server": "https://api.cloud.denvrdata.com",
    "api": "v1",
    "cluster": "Msc1",
    "rpool": "on-demand",
    "retries": 3,
}
DEFAULT_LISTEN = ["127.0.0.1:3368"]

# Files that relative paths in the corpus refer to.
SIDE_FILES = {
    "ca.pem": ("-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n", 0o644),
    "apikey.txt": ("corpus-FILE-APIKEY\n", 0o600),
    "password.txt": ("corpus-FILE-PASSWORD\n", 0o600),
}


def denvrd_bin():
    b = os.environ.get("DENVRD_BIN")
    if not b:
        pytest.fail("DENVRD_BIN is not set: it must name the denvrd binary to test")
    return b


def clean_env(home):
    """The environment without anything that would override the file."""
    drop = {"CREDENTIALS_DIRECTORY", "XDG_RUNTIME_DIR", "JOURNAL_STREAM"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("DENVR_") and k not in drop}
    env["HOME"] = str(home)
    return env


def stage(src, tmp_path, mode=0o600):
    """Copies a corpus file into tmp_path beside its side files; returns the copy's path."""
    for name, (content, fmode) in SIDE_FILES.items():
        p = tmp_path / name
        p.write_text(content)
        p.chmod(fmode)
    dst = tmp_path / src.name
    shutil.copyfile(src, dst)
    dst.chmod(mode)
    return dst


def check_config(path, env, *extra):
    return subprocess.run(
        [denvrd_bin(), "--check-config", "--config", str(path), *extra],
        env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=30)


def resolve_path(p, cfgdir, home):
    """How denvrd resolves a path from the file: ~/ is $HOME, relative is beside the file."""
    if p is None:
        return None
    if p.startswith("~/"):
        return str(home) + p[1:]
    if p.startswith("/"):
        return p
    return str(cfgdir / p)


def ids(values, lookup):
    out = []
    for v in values:
        if isinstance(v, int):
            out.append(v)
        elif v.isdigit():
            out.append(int(v))
        else:
            out.append(lookup(v))
    return out


def expected_config(doc, path, home):
    """The effective configuration denvrd should report, computed from tomllib's reading."""
    cfgdir = path.parent
    d = doc.get("defaults", {})
    c = doc.get("credentials", {})
    dm = doc.get("daemon", {})

    tenant = d.get("tenant")
    defaults = {
        "server": d.get("server", SDK_DEFAULTS["server"]).rstrip("/"),
        "api": d.get("api", SDK_DEFAULTS["api"]),
        "cluster": d.get("cluster", SDK_DEFAULTS["cluster"]),
        "tenant": tenant,
        "vpcid": d.get("vpcid", tenant),
        "rpool": d.get("rpool", SDK_DEFAULTS["rpool"]),
        "retries": d.get("retries", SDK_DEFAULTS["retries"]),
    }

    # An API key wins over username/password; "" is no key (the SDKs test truth).
    apikey_file = resolve_path(c.get("apikey_file"), cfgdir, home)
    password_file = resolve_path(c.get("password_file"), cfgdir, home)
    username = c.get("username")
    mode, source, spath = "none", None, None
    if c.get("apikey"):
        mode, source = "apikey", "config"
    elif apikey_file:
        mode, source, spath = "apikey", "file", apikey_file
    elif username and c.get("password"):
        mode, source = "password", "config"
    elif username and password_file:
        mode, source, spath = "password", "file", password_file
    credentials = {
        "mode": mode,
        "username": username,
        "apikey": "***" if mode == "apikey" else None,
        "password": "***" if mode == "password" else None,
        "apikey_file": apikey_file,
        "password_file": password_file,
        "secret_source": source,
        "secret_path": spath,
    }

    listen = dm.get("listen", DEFAULT_LISTEN)
    if isinstance(listen, str):
        listen = [listen]
    socket = dm.get("socket")
    daemon = {
        "listen": listen,
        "socket": resolve_path(socket, cfgdir, home) if socket else None,
        "socket_mode": "%04o" % int(dm.get("socket_mode", "0600"), 8),
        "ca_file": resolve_path(dm.get("ca_file"), cfgdir, home),
        "log_level": dm.get("log_level", "info"),
        "request_timeout": dm.get("request_timeout", 60),
        "max_body_bytes": dm.get("max_body_bytes", 1048576),
        "max_upstream_connections": dm.get("max_upstream_connections", 64),
        "allow_remote": dm.get("allow_remote", False),
        "allowed_hosts": dm.get("allowed_hosts", []),
        "cors_origins": dm.get("cors_origins", []),
        "allowed_uids": ids(dm.get("allowed_uids", []), lambda n: pwd.getpwnam(n).pw_uid),
        "allowed_groups": ids(dm.get("allowed_groups", []), lambda n: grp.getgrnam(n).gr_gid),
        "tcp_access": dm.get("tcp_access", "full"),
        "socket_access": dm.get("socket_access", "full"),
        "wait_poll_max_seconds": dm.get("wait_poll_max_seconds", 10),
        "cost_interval": dm.get("cost_interval", 60),
        "trust_local_users": dm.get("trust_local_users", False),
        "failure_memory_seconds": dm.get("failure_memory_seconds", 20),
        "max_connections_per_caller": dm.get("max_connections_per_caller", 256),
        "max_requests_per_caller": dm.get("max_requests_per_caller", 128),
        "max_waits_per_caller": dm.get("max_waits_per_caller", 32),
        # 64 MiB, or max_body_bytes when that is larger
        "max_buffered_bytes_per_caller": dm.get("max_buffered_bytes_per_caller",
                                                max(64 * 1024 * 1024, dm.get("max_body_bytes", 1048576))),
        "upstream_share_percent": dm.get("upstream_share_percent", 50),
        "header_timeout": dm.get("header_timeout", 10),
        "idle_timeout": dm.get("idle_timeout", 60),
    }

    return {
        "config_path": str(path),
        "defaults": defaults,
        "credentials": credentials,
        "daemon": daemon,
        "cache": dict(doc.get("cache", {})),
        "rights": expected_rights(doc.get("rights", {})),
        "tokens": {k: v.lower() for k, v in doc.get("tokens", {}).items()},
        "leases": {k: expected_lease(v) for k, v in doc.get("leases", {}).items()},
    }


def expected_lease(value):
    """A [leases] value, "DURATION [ACTION]", as --check-config shows it."""
    duration, _, action = value.strip().partition(" ")
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    seconds = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", duration))
    return {"seconds": seconds, "action": action.strip() or "stop"}


def expected_rights(rights):
    """[rights] in evaluation order: token rules, then uid rules, then group rules, each in file order."""
    rules = []
    for kind in ("token", "uid", "group"):
        for key, value in rights.items():
            subject, _, name = key.partition(":")
            if subject != kind:
                continue
            rule = {"subject": key, "rights": value}
            if kind == "uid":
                rule["uid"] = ids([name], lambda n: pwd.getpwnam(n).pw_uid)[0]
            elif kind == "group":
                rule["gid"] = ids([name], lambda n: grp.getgrnam(n).gr_gid)[0]
            rules.append(rule)
    return {"evaluation": EVALUATION, "rules": rules}


# How denvrd says it applies [rights] (daemon/policy/rights.h); the text is part of the interface.
EVALUATION = ("a request with a local token: that token's rule alone; otherwise the rule for the caller's "
              "uid; otherwise the first group rule, in file order, for one of its groups; otherwise no rule "
              "(full for those [daemon] lets in). The listener's tcp_access or socket_access caps every rule.")


def secrets_in(doc):
    c = doc.get("credentials", {})
    out = [v for k in ("apikey", "password") if (v := c.get(k))]
    return out + [content.strip() for name, (content, _) in SIDE_FILES.items() if name != "ca.pem"]


def test_corpus_is_big_enough():
    assert len(VALID) >= 30, f"only {len(VALID)} valid corpus files"
    assert len(INVALID) >= 20, f"only {len(INVALID)} invalid corpus files"


@pytest.mark.parametrize("src", VALID, ids=lambda p: p.stem)
def test_valid_file_matches_tomllib(src, sock_dir):
    # sock_dir: the corpus has socket paths relative to the file and to $HOME.
    path = stage(src, sock_dir)
    with open(path, "rb") as f:
        doc = tomllib.load(f)

    r = check_config(path, clean_env(sock_dir))
    assert r.returncode == 0, f"denvrd refused {src.name}:\n{r.stderr}"
    actual = json.loads(r.stdout)
    expected = expected_config(doc, path, sock_dir)
    for section in expected:
        assert actual.get(section) == expected[section], f"[{section}] differs for {src.name}"
    assert actual == expected

    # No secret ever shows, in either stream.
    for secret in secrets_in(doc):
        assert secret not in r.stdout and secret not in r.stderr, f"a secret leaked for {src.name}"


def invalid_header(src):
    text = src.read_bytes().decode("utf-8", errors="replace")
    m = re.search(r"^# expect: (\d+): (.+)$", text, re.M)
    t = re.search(r"^# toml: (valid|invalid)$", text, re.M)
    mode = re.search(r"^# mode: ([0-7]+)$", text, re.M)
    assert m and t, f"{src.name} lacks its '# expect:' / '# toml:' header"
    return int(m.group(1)), m.group(2), t.group(1) == "valid", int(mode.group(1), 8) if mode else 0o600


@pytest.mark.parametrize("src", INVALID, ids=lambda p: p.stem)
def test_invalid_file_is_refused_with_its_line(src, tmp_path):
    line, needle, toml_valid, mode = invalid_header(src)
    path = stage(src, tmp_path, mode)

    # The corpus says whether the file is TOML at all; hold it to that.
    if toml_valid:
        with open(path, "rb") as f:
            tomllib.load(f)
    else:
        with pytest.raises((tomllib.TOMLDecodeError, UnicodeDecodeError)):
            with open(path, "rb") as f:
                tomllib.load(f)

    r = check_config(path, clean_env(tmp_path))
    assert r.returncode == 1, f"{src.name}: exit {r.returncode}, stderr:\n{r.stderr}"
    assert r.stdout == "", f"{src.name}: printed a configuration despite errors"
    located = [ln for ln in r.stderr.splitlines() if f"{path}:{line}:" in ln]
    assert located, f"{src.name}: no error naming {path}:{line}:\n{r.stderr}"
    assert any(needle in ln for ln in located), f"{src.name}: no '{needle}' at line {line}:\n{r.stderr}"
    assert "corpus-PASSWORD" not in r.stderr and "corpus-APIKEY" not in r.stderr


SDK_DOCUMENTED = """\
[defaults]
server = "https://api.cloud.denvrdata.com"
api = "v1"
cluster = "Hou1"
tenant = "denvr"
vpcid = "denvr"
rpool = "reserved-denvr"
retries = 5

[credentials]
username = "test@foobar.com"
password = "test.foo.bar.baz"
"""


def sdk_effective_defaults(doc):
    """The Python SDK's Config properties, as it computes them."""
    d = doc["defaults"]
    return {
        "server": d.get("server", "https://api.cloud.denvrdata.com"),
        "api": d.get("api", "v1"),
        "cluster": d.get("cluster", "Msc1"),
        "tenant": d.get("tenant", None),
        "vpcid": d.get("vpcid", d.get("tenant", None)),
        "rpool": d.get("rpool", "on-demand"),
        "retries": d.get("retries", 3),
    }


@pytest.mark.parametrize("text", [
    SDK_DOCUMENTED,
    # The same file with only what the SDK requires: every default comes into play.
    '[defaults]\ntenant = "denvr"\n\n[credentials]\nusername = "test@foobar.com"\npassword = "test.foo.bar.baz"\n',
], ids=["documented", "minimal"])
def test_sdk_documented_config_gives_sdk_defaults(text, tmp_path):
    path = tmp_path / "denvr.toml"
    path.write_text(text)
    path.chmod(0o600)
    r = check_config(path, clean_env(tmp_path))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["defaults"] == sdk_effective_defaults(tomllib.loads(text))
    assert out["credentials"]["mode"] == "password"
    assert out["credentials"]["username"] == "test@foobar.com"
    assert out["credentials"]["password"] == "***"
    assert "test.foo.bar.baz" not in r.stdout + r.stderr


def test_check_config_requires_credentials(tmp_path):
    path = tmp_path / "denvr.toml"
    path.write_text('[defaults]\ntenant = "denvr"\n')
    r = check_config(path, clean_env(tmp_path))
    assert r.returncode == 1
    for name in ("apikey", "DENVR_APIKEY", "DENVR_USERNAME", "DENVR_PASSWORD"):
        assert name in r.stderr


def test_precedence_flag_env_file_default(tmp_path):
    path = tmp_path / "denvr.toml"
    path.write_text('[credentials]\nusername = "file-user"\npassword = "file-pw"\n\n'
                    '[daemon]\nlog_level = "debug"\nlisten = "127.0.0.1:4000"\nsocket = "/tmp/file.sock"\n')
    path.chmod(0o600)
    env = clean_env(tmp_path)

    out = json.loads(check_config(path, env).stdout)
    assert out["daemon"]["log_level"] == "debug"              # file > default
    assert out["daemon"]["listen"] == ["127.0.0.1:4000"]
    assert out["daemon"]["request_timeout"] == 60             # default

    r = check_config(path, env, "--log-level", "error", "--listen", "127.0.0.1:5000",
                     "--listen", "[::1]:5001", "--socket", "/tmp/flag.sock")
    out = json.loads(r.stdout)
    assert out["daemon"]["log_level"] == "error"              # flag > file
    assert out["daemon"]["listen"] == ["127.0.0.1:5000", "[::1]:5001"]
    assert out["daemon"]["socket"] == "/tmp/flag.sock"

    env2 = dict(env, DENVR_USERNAME="env-user", DENVR_PASSWORD="env-pw")
    out = json.loads(check_config(path, env2).stdout)
    assert out["credentials"]["username"] == "env-user"       # environment > file
    assert out["credentials"]["secret_source"] == "env"
    env3 = dict(env2, DENVR_APIKEY="env-key")
    out = json.loads(check_config(path, env3).stdout)
    assert out["credentials"]["mode"] == "apikey"             # an API key wins

    # $DENVR_CONFIG when there is no --config.
    r = subprocess.run([denvrd_bin(), "--check-config"], env=dict(env, DENVR_CONFIG=str(path)),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and json.loads(r.stdout)["config_path"] == str(path)


def test_unknown_flag_exits_2_with_usage(tmp_path):
    r = subprocess.run([denvrd_bin(), "--no-such-flag"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "Usage:" in r.stderr and "--check-config" in r.stderr
