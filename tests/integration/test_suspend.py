# SPDX-License-Identifier: MIT
"""A laptop that sleeps: token lives counted on CLOCK_BOOTTIME, which counts a suspend.

A real suspend cannot be produced here, so it is simulated at both ends:
  * upstream (the mock): every token it issued becomes N s older (/_mock/advance_clock);
  * denvrd: the test-hooks build (daemon/denvrd-test-hooks, never installed) answers
    /_denvrd/test/sleep?seconds=N by doing what a resume does to a process: CLOCK_BOOTTIME is
    N s ahead (CLOCK_MONOTONIC is not), and the timers on CLOCK_BOOTTIME whose time came
    meanwhile are due at once; with timers=0 they are not yet (a request that the event loop
    handles before them after a wake-up).
Token time on CLOCK_MONOTONIC (the old way) does not see the simulated suspend either, and
these tests then fail with a 401 at the mock.  What is not tested: the kernel itself (that a
CLOCK_BOOTTIME timerfd fires after a resume), which sd-event and Linux document.
"""

import os
import re
import time

import denvrd_harness as H
from denvrd_harness import scaled, wait_until

API = "/api/v1/clusters/GetAll"
AUTH = "/api/TokenAuth/"


def _hooks(start_denvrd, **kw):
    d = start_denvrd(credentials="password", binary=H.denvrd_test_hooks_binary(), **kw)
    wait_until(lambda: d.request("GET", "/_denvrd/readyz")[0] == 200, 10, what="ready")
    return d


def _sleep(d, mock, seconds, timers=True):
    mock.advance_clock(seconds)
    st, _, body = d.request("GET", "/_denvrd/test/sleep?seconds=%d%s" % (
        seconds, "" if timers else "&timers=0"), via="unix")
    assert st == 200, body


def _bearer_of_last_api_request(mock):
    recs = [r for r in mock.requests() if r["path"].startswith("/api/v1/")]
    assert recs, "nothing forwarded"
    return recs[-1], mock.header(recs[-1], "Authorization")


def _first_request_after_wake(d, mock, before_tokens):
    st, _, body = d.request("GET", API, timeout=scaled(20))
    assert st == 200, body[:300]
    rec, authz = _bearer_of_last_api_request(mock)
    assert rec["status"] == 200, rec
    fresh = mock.tokens()["access"][-1]
    assert authz == "Bearer " + fresh, "not the newest token"
    assert fresh not in before_tokens, "the token from before the suspend was sent"
    assert mock.stats()["unauthorized"] == 0, "upstream saw an expired token"
    return rec


def test_wake_after_suspend_longer_than_the_token_renews_before_any_request(start_denvrd,
                                                                           mock):
    mock.config(access_lifetime=60, refresh_lifetime=3600)   # renewal due at 48 s
    d = _hooks(start_denvrd)
    assert d.request("GET", API)[0] == 200
    before = set(mock.tokens()["access"])
    _sleep(d, mock, 120)
    # the wake-up renews the token by itself: no request is needed for it
    mock.wait_for(lambda s: s["refreshes"] >= 1, timeout=scaled(10), what="a refresh on wake-up")
    refreshed_at = [r for r in mock.requests() if r["path"].startswith(AUTH + "RefreshToken")][-1]
    rec = _first_request_after_wake(d, mock, before)
    assert rec["t_start"] > refreshed_at["t_end"]
    s = mock.stats()
    assert s["logins_ok"] == 1 and s["refreshes"] == 1, s


def test_request_handled_before_the_wake_up_timer_waits_for_a_fresh_token(start_denvrd, mock):
    """The request path itself never sends a token whose CLOCK_BOOTTIME life is over."""
    mock.config(access_lifetime=60, refresh_lifetime=3600)
    d = _hooks(start_denvrd)
    assert d.request("GET", API)[0] == 200
    before = set(mock.tokens()["access"])
    _sleep(d, mock, 120, timers=False)
    assert mock.stats()["refresh_attempts"] == 0   # the renewal timer is not due yet
    rec = _first_request_after_wake(d, mock, before)
    refreshes = [r for r in mock.requests() if r["path"].startswith(AUTH + "RefreshToken")]
    assert len(refreshes) == 1 and refreshes[0]["status"] == 200, refreshes
    assert rec["t_start"] > refreshes[0]["t_end"]


def test_suspend_longer_than_the_refresh_token_logs_in_afresh(start_denvrd, mock):
    """The refresh token died in the night too: a login, not a refused refresh first."""
    mock.config(access_lifetime=60, refresh_lifetime=90)
    d = _hooks(start_denvrd)
    assert d.request("GET", API)[0] == 200
    before = set(mock.tokens()["access"])
    _sleep(d, mock, 8 * 3600)
    mock.wait_for(lambda s: s["logins_ok"] >= 2, timeout=scaled(10), what="a login on wake-up")
    _first_request_after_wake(d, mock, before)
    s = mock.stats()
    assert s["refresh_attempts"] == 0 and s["logins_ok"] == 2, s
    st, _, status = d.request_json("GET", "/_denvrd/status")
    assert st == 200 and status["auth"]["logged_in"], status["auth"]


def test_suspend_shorter_than_the_token_changes_nothing(start_denvrd, mock):
    mock.config(access_lifetime=600, refresh_lifetime=3600)   # renewal due at 480 s
    d = _hooks(start_denvrd)
    assert d.request("GET", API)[0] == 200
    token = mock.tokens()["access"][-1]
    _sleep(d, mock, 60)
    assert d.request("GET", API)[0] == 200
    assert _bearer_of_last_api_request(mock)[1] == "Bearer " + token
    s = mock.stats()
    assert s["logins_ok"] == 1 and s["refresh_attempts"] == 0 and s["unauthorized"] == 0, s


def _boottime_timers(pid):
    """Armed CLOCK_BOOTTIME (clockid 7) timerfds of a process, from /proc/PID/fdinfo."""
    armed = []
    for fd in os.listdir("/proc/%d/fdinfo" % pid):
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                info = f.read()
        except OSError:
            continue
        m = re.search(r"^it_value: \((\d+), (\d+)\)", info, re.M)
        if re.search(r"^clockid: 7$", info, re.M) and m and m.groups() != ("0", "0"):
            armed.append(int(m.group(1)) + int(m.group(2)) / 1e9)
    return armed


# The renewal timer's accuracy: common/client/auth.c arms its timers with
# sd_event_add_time(..., accuracy 10000 us, ...).  sd-event may fire a timer anywhere from its
# time to that time plus the accuracy (so that wake-ups coalesce): it sets the timerfd to a
# point of that window, mostly its end, the time plus 10 ms.
RENEWAL_ACCURACY = 0.010


def test_the_installed_denvrd_renews_on_a_boottime_timer(start_denvrd, mock):
    """The real daemon (not the test build) arms its renewal on a CLOCK_BOOTTIME timerfd,
    the kind the kernel fires on resume when its time came during the suspend."""
    mock.config(access_lifetime=600, refresh_lifetime=3600)   # renewal due at 480 s
    started = time.clock_gettime(time.CLOCK_BOOTTIME)
    d = start_denvrd(credentials="password")
    wait_until(lambda: d.request("GET", "/_denvrd/readyz")[0] == 200, 10, what="ready")
    timers = wait_until(lambda: _boottime_timers(d.pid), 5, what="an armed CLOCK_BOOTTIME timer")
    read = time.clock_gettime(time.CLOCK_BOOTTIME)
    # The login answer is handled at `now` (the event loop's CLOCK_BOOTTIME): the token lives
    # from the login request (op_started, after `started`) for 600 s, and the renewal is set
    # for now + 80% of what is left, at = 0.2 now + 0.8 op_started + 480 s, so
    # started + 480 <= op_started + 480 <= at <= now + 480.  The timerfd fires at E, with
    # at <= E <= at + RENEWAL_ACCURACY, and fdinfo shows what is left of it when it is read,
    # E - r, with now <= r <= read (it was read armed).  Hence
    # 480 - (read - started) <= E - r <= 480 + RENEWAL_ACCURACY.
    low, high = 480 - (read - started), 480 + RENEWAL_ACCURACY
    assert any(low <= t <= high for t in timers), (timers, low, high)


def test_the_installed_denvrd_has_no_test_hooks(start_denvrd, mock):
    d = start_denvrd(credentials="password")
    st, _, body = d.request("GET", "/_denvrd/test/sleep?seconds=120", via="unix")
    assert st == 404, body
    assert b"test/sleep" not in H.denvrd_binary().read_bytes()
