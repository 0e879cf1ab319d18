# SPDX-License-Identifier: MIT
"""Runs last (file order): searches every denvrd and mock log of the whole test session for
the test password, the API key, every other secret a mock was configured with, and every
token any mock ever issued.  Any hit fails.  The failure names the file, the line and the
kind of secret, never the secret itself."""

import http.client
import re

import denvrd_harness as H

MIN_LEN = 12


def collect_secrets(mock_server, token_log):
    """-> {secret: kind}"""
    found = {H.DEFAULT_PASSWORD: "test password", H.DEFAULT_APIKEY: "test API key"}
    t = mock_server.tokens()
    for kind in ("access", "refresh", "encrypted"):
        for tok in t[kind]:
            found[tok] = kind + " token"
    for s in t["secrets"]:
        found.setdefault(s, "configured secret")
    if token_log.exists():   # tokens of every extra mock started during the session
        for line in token_log.read_text().splitlines():
            kind, _, tok = line.partition(" ")
            if tok:
                found.setdefault(tok, kind + " token" if kind != "secret" else
                                 "configured secret")
    needles = {}
    for s, kind in found.items():
        if len(s) >= MIN_LEN:
            needles[s] = kind
        # a JWT's signature part is unique by itself: catches a token cut at a dot
        if s.count(".") == 2:
            sig = s.rsplit(".", 1)[1]
            if len(sig) >= 20:
                needles.setdefault(sig, kind + " (signature part)")
    return needles


def scan(paths, needles):
    """-> list of "file:line: kind" for every needle found."""
    hits = []
    rx = re.compile("|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True)))
    for p in paths:
        text = p.read_bytes().decode("utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            for m in rx.finditer(line):
                hits.append("%s:%d: %s" % (p.name, lineno, needles[m.group(0)]))
    return hits


def generate_traffic(start_denvrd, mock):
    """Make this test meaningful when run alone: denvrd in both credential modes at debug
    level, with logins, refreshes, expired tokens and errors.  Status codes do not matter
    here; only what reaches the logs does."""
    def req(d, method, path, body=None):
        try:
            d.request(method, path, body, timeout=5)
        except (OSError, http.client.HTTPException):
            pass   # other tests judge the answers

    mock.config(access_lifetime=2, refresh_lifetime=4)
    for creds in ("password", "apikey"):
        d = start_denvrd(credentials=creds)
        for path in ("/api/v1/servers/virtual/GetServers?Cluster=Msc1",
                     "/api/v1/servers/virtual/GetServer?Id=x",
                     "/api/TokenAuth/RefreshToken?refreshToken=" + H.DEFAULT_PASSWORD):
            req(d, "GET", path)
        mock.expire_tokens()
        req(d, "GET", "/api/v1/clusters/GetAll")
        req(d, "POST", "/api/v1/vpcs/CreateVpc", {"id": "v", "cluster": "Msc1",
                                                 "password": H.DEFAULT_PASSWORD})
        req(d, "GET", "/_denvrd/status")
        d.stop()
    # the mock issues tokens itself too, so the search below always has tokens to look for
    r = mock.login()
    mock.call("GET", "/api/TokenAuth/RefreshToken?refreshToken=" + r["refreshToken"])
    mock.call("GET", "/api/TokenAuth/LogOut", auth="bearer:" + r["accessToken"])


def test_scanner_finds_planted_secret(tmp_path, mock):
    tok = mock.login()["accessToken"]
    sig = tok.rsplit(".", 1)[1]
    f = tmp_path / "planted.log"
    f.write_text("line one\nAuthorization: Bearer %s\ncut at a dot: ...%s\n" % (tok, sig))
    hits = scan([f], {tok: "access token", sig: "access token (signature part)"})
    assert hits == ["planted.log:2: access token",
                    "planted.log:3: access token (signature part)"]


def test_no_secret_in_any_log(start_denvrd, mock, mock_server, harness_logdir,
                              harness_token_log):
    generate_traffic(start_denvrd, mock)
    logs = sorted(p for p in harness_logdir.rglob("*") if p.is_file())
    assert any(p.name.startswith("denvrd-") for p in logs), "no denvrd log to search"
    assert any(p.name.startswith("mock-") for p in logs), "no mock log to search"
    needles = collect_secrets(mock_server, harness_token_log)
    assert sum(1 for k in needles.values() if "token" in k) >= 2, "no tokens to search for"
    hits = scan(logs, needles)
    assert not hits, "secrets found in logs (%d hits):\n%s" % (len(hits), "\n".join(hits[:50]))
