# SPDX-License-Identifier: MIT
"""Refusals the client reads: curl (the real binary) prints denvrd's answer to an upload it
refuses, whatever the upload's framing, over TCP and the unix socket.

The modes of a 10 MiB upload over max_body_bytes (1 MiB, the default):
  * Content-Length, curl's default (it sends "Expect: 100-continue" for bodies over 1 MiB):
    answered 413 before the body, instead of 100 Continue;
  * Content-Length without Expect: the body comes at once, unread; answered 413 at once and
    closed lingering (read and dropped until curl, having read the answer, stops and closes);
  * chunked with Expect: 100-continue (curl's default for chunked): the size is unknown
    until the limit is crossed, so 100 Continue is sent; the 413 comes once 4 MiB more have
    been dropped, written while curl is still sending, then a lingering close;
  * chunked without Expect: the same without 100 Continue.
Other refusals before the body (404, 405, 403) are answered and closed the same way.
After each: curl exited 0 and printed the envelope and the status, nothing reached upstream,
denvrd is healthy and its descriptors are back to where they were.
"""

import json
import select
import shutil
import subprocess
import time

import pytest

from denvrd_harness import scaled, wait_until

CREATE = "/api/v1/servers/virtual/CreateServer"
ECHO = "/api/v1/mock/Echo"
TEN_MIB = 10 * 1024 * 1024

MODES = {
    "content-length": [],
    "content-length-no-expect": ["-H", "Expect:"],
    "chunked-expect": ["-H", "Transfer-Encoding: chunked"],
    "chunked-no-expect": ["-H", "Transfer-Encoding: chunked", "-H", "Expect:"],
}


@pytest.fixture(scope="module")
def big_json(tmp_path_factory):
    """10 MiB of valid JSON, as a real (if silly) CreateServer body would be."""
    p = tmp_path_factory.mktemp("upload") / "10MiB.json"
    filler = "x" * (TEN_MIB - 64)
    p.write_text(json.dumps({"name": "big", "userData": filler})[:TEN_MIB - 1] + "}")
    return p


def curl(d, via, path, upload, extra=(), method=None):
    """Runs curl as a user would; -> (exit status, stdout, stderr)."""
    exe = shutil.which("curl")
    if not exe:
        pytest.fail("curl is needed for this test")
    cmd = [exe, "-sS", "-v", "-o", "-", "-w", "\n%{http_code}", "--max-time", str(scaled(30)),
           "-H", "Content-Type: application/json", "--data-binary", "@%s" % upload]
    if method:
        cmd += ["-X", method]
    cmd += list(extra)
    if via == "unix":
        cmd += ["--unix-socket", d.socket_path, "http://localhost" + path]
    else:
        cmd += ["http://127.0.0.1:%d%s" % (d.port, path)]
    res = subprocess.run(cmd, capture_output=True, timeout=scaled(60))
    return res.returncode, res.stdout.decode(errors="replace"), res.stderr.decode(errors="replace")


def envelope_and_status(out):
    body, _, code = out.rpartition("\n")
    return json.loads(body), int(code)


def baseline_fds(d):
    """denvrd's descriptors at rest: none lingering, no client connected."""
    return d.fd_count()


def settled(d, mock, fds):
    wait_until(lambda: d.fd_count() <= fds, 10, what="denvrd's descriptors back to %d" % fds)
    st, _, body = d.request("GET", "/_denvrd/healthz")
    assert st == 200, body
    reqs = [r for r in mock.api_requests() if r["path"].startswith("/api/v1/")]
    assert reqs == [], [(r["method"], r["path"]) for r in reqs]


def sent_header(err, name):
    return any(line.lower().startswith("> " + name.lower() + ":") for line in err.splitlines())


@pytest.mark.parametrize("via", ["tcp", "unix"])
@pytest.mark.parametrize("mode", list(MODES))
def test_curl_prints_413_for_a_10mib_upload(start_denvrd, mock, big_json, mode, via):
    d = start_denvrd()
    fds = baseline_fds(d)
    rc, out, err = curl(d, via, CREATE, big_json, MODES[mode])
    assert rc == 0, (rc, err[-2000:])
    env, code = envelope_and_status(out)
    assert code == 413, out[-500:]
    assert env["success"] is False and env["__abp"] is True, env
    assert "max_body_bytes" in env["error"]["message"], env
    # the framing was the one the mode names
    assert sent_header(err, "Transfer-Encoding") == mode.startswith("chunked"), err[:2000]
    assert sent_header(err, "Expect") == (not mode.endswith("no-expect")), err[:2000]
    if mode == "content-length":
        assert "HTTP/1.1 100" not in err, "100 Continue sent for a body known to be too large"
    settled(d, mock, fds)
    # and an upload of the same kind that fits goes through
    small = big_json.parent / "small.json"
    small.write_text('{"name": "vm-1"}')
    rc, out, err = curl(d, via, ECHO, small, MODES[mode])
    assert rc == 0 and out.endswith("\n200"), (rc, out[-300:], err[-1500:])
    assert [r["path"] for r in mock.api_requests()] == [ECHO]


@pytest.mark.parametrize("mode", ["content-length-no-expect", "chunked-no-expect"])
@pytest.mark.parametrize("case", ["404", "405", "403"])
def test_curl_reads_other_refusals_before_the_body(start_denvrd, mock, big_json, mode, case):
    """Refusals decided from the headers, with a 10 MiB body on its way that is never read."""
    d = start_denvrd()
    fds = baseline_fds(d)
    path, method, extra = CREATE, None, []
    if case == "404":
        path = "/no/such/path"
    elif case == "405":
        method = "PROPFIND"
    else:   # DNS rebinding: a Host that is not denvrd's
        extra = ["-H", "Host: evil.example"]
    rc, out, err = curl(d, "tcp", path, big_json, MODES[mode] + extra, method=method)
    assert rc == 0, (rc, err[-2000:])
    env, code = envelope_and_status(out)
    assert code == int(case), out[-500:]
    assert env["success"] is False, env
    settled(d, mock, fds)


def test_client_that_never_stops_sending_is_cut_off(start_denvrd, mock):
    """Lingering is bounded: a client that ignores the answer and goes on sending gets the
    connection closed (a reset) after a bounded amount, and denvrd is fine after it."""
    d = start_denvrd(daemon={"max_body_bytes": 1024})
    fds = baseline_fds(d)
    s = d.connect_raw(timeout=20)
    chunk = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
    sent = 0
    try:
        s.sendall(b"POST /api/v1/mock/Echo HTTP/1.1\r\nHost: localhost\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            while sent < 256 * 1024 * 1024:
                s.sendall(chunk)
                sent += len(chunk)
    finally:
        s.close()
    assert sent < 64 * 1024 * 1024, sent
    settled(d, mock, fds)


def test_answer_is_readable_after_the_client_stops(start_denvrd, mock):
    """A client that watches for the answer while it sends (as curl does) finds the 413
    envelope, stops, and then reads the end of the connection: no reset."""
    d = start_denvrd(daemon={"max_body_bytes": 1024})
    fds = baseline_fds(d)
    s = d.connect_raw(timeout=20)
    chunk = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
    got = b""
    try:
        s.sendall(b"POST /api/v1/mock/Echo HTTP/1.1\r\nHost: localhost\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        deadline = time.monotonic() + scaled(20)
        while not select.select([s], [], [], 0)[0]:
            assert time.monotonic() < deadline, "no answer while sending"
            select.select([s], [s], [], 1)
            s.sendall(chunk)
        while True:   # the answer is in: stop sending and read to the end
            data = s.recv(65536)
            if not data:
                break
            got += data
    finally:
        s.close()
    top, _, body = got.partition(b"\r\n\r\n")
    assert top.startswith(b"HTTP/1.1 413 "), got[:300]
    assert b"connection: close" in top.lower(), top
    n = int([ln.split(b":", 1)[1] for ln in top.split(b"\r\n")
             if ln.lower().startswith(b"content-length:")][0])
    assert len(body) == n, (len(body), n)
    env = json.loads(body)
    assert env["success"] is False and "max_body_bytes" in env["error"]["message"], env
    settled(d, mock, fds)
