# SPDX-License-Identifier: MIT
"""The GET cache and request coalescing ([cache]) cannot be poisoned (issue 17):

  (a) a GET carrying a body (which upstream would bind before the query: a form `Id=vm-2`
      on `GetServer?Id=vm-1`) is refused, so it can never fill the entry another caller's
      plain GET is then answered from;
  (b) the cache key is everything that is sent upstream and can change the answer: two GETs
      that differ in a forwarded header (Accept, Accept-Language, If-None-Match, ...) never
      share an answer, cached or coalesced; trace context (traceparent, tracestate) is
      forwarded but changes no answer, so it does not split the entry; a header that is not
      forwarded changes nothing upstream;
  (c) a follower coalesced onto a leader's in-flight request gets the leader's answer only if
      it is a 2xx: a leader ending in 400 or 500 leaves the follower to its own upstream call,
      and a different request is never coalesced onto it;
      the same for denvrd's failure memory: one caller's failure is never another's answer;
  (d) a caller whose rights refuse the operation never gets a cached answer (403, no X-Cache,
      nothing of the entry in the answer).

The mock records what each operation acted on, as ASP.NET binds it (GET /_mock/acted).
"""

import json
import threading

import pytest

import denvrd_harness as H
from binding_client import Answer, build, new_token

V = "/api/v1/servers/virtual/"
GET1 = V + "GetServer"
LIST = V + "GetServers"
Q1 = "?Id=vm-1&Namespace=ns-1&Cluster=Msc1"
Q2 = "?Id=vm-2&Namespace=ns-1&Cluster=Msc1"
FORM = "application/x-www-form-urlencoded"
CACHE = '[cache]\n"%s" = 300\n"%s" = 300\n' % (GET1, LIST)


def start(start_denvrd, harness_token_log, rights=None, retries=None):
    """denvrd caching GetServer and GetServers; rights: {token name: rule (TOML text)}.
    -> (denvrd, {token name: token})."""
    extra, tokens, lines = CACHE, {}, []
    if rights:
        extra += "[rights]\n"
        for name, rule in rights.items():
            tokens[name], line = new_token(name, harness_token_log)
            lines.append(line)
            extra += '"token:%s" = %s\n' % (name, rule)
        extra += "[tokens]\n" + "\n".join(lines) + "\n"
    defaults = {"retries": retries} if retries is not None else None
    return start_denvrd(config_text_extra=extra, defaults=defaults), tokens


def raw(d, method, target, headers=(), body=None, token=None, via="tcp", chunk=False):
    return Answer(d.raw(build(method, target, headers, body, chunk=chunk,
                              auth="Bearer " + token if token else None),
                        via=via, timeout=H.scaled(20)))


def result_id(ans):
    return json.loads(ans.body)["result"]["id"]


def upstream(mock, path=GET1):
    return [r for r in mock.api_requests() if r["path"].split("?")[0] == path]


def assert_refused(ans, mock, before):
    assert 400 <= ans.status < 500, ans
    ans.envelope_message()
    assert ans.header("X-Cache") is None, ans.headers
    assert len(mock.api_requests()) == before, "a refusal reached upstream"


# ---------------------------------------------------------------------------------------------
# (a) a GET with a body never fills the cache
# ---------------------------------------------------------------------------------------------
POISON_BODIES = [
    ("form", "Id=vm-2", FORM, False),
    ("form-charset", "Id=vm-2&Namespace=ns-1", FORM + "; charset=utf-8", False),
    ("form-input-prefix", "input.Id=vm-2&input.Namespace=ns-1&input.Cluster=Msc1", FORM, False),
    ("form-chunked", "Id=vm-2", FORM, True),
    ("multipart", '--b\r\nContent-Disposition: form-data; name="Id"\r\n\r\nvm-2\r\n--b--\r\n',
     "multipart/form-data; boundary=b", False),
    ("json", '{"Id":"vm-2"}', "application/json", False),
    ("text", "Id=vm-2", "text/plain", False),
    ("untyped", "Id=vm-2", None, False),
]


@pytest.mark.parametrize("via", ["tcp", "unix"])
@pytest.mark.parametrize("name,body,ctype,chunk", POISON_BODIES,
                         ids=[p[0] for p in POISON_BODIES])
def test_get_with_body_cannot_poison(start_denvrd, mock, harness_token_log, via, name, body,
                                     ctype, chunk):
    d, tok = start(start_denvrd, harness_token_log, {"ro": '"read-only"'})
    headers = [("Content-Type", ctype)] if ctype else []
    ans = raw(d, "GET", GET1 + Q1, headers, body, token=tok["ro"], via=via, chunk=chunk)
    assert ans.status == 400, ans
    assert_refused(ans, mock, 0)
    assert mock.acted() == []
    # the owner's plain GET: fetched from upstream, and about vm-1
    owner = raw(d, "GET", GET1 + Q1, via=via)
    assert owner.status == 200 and owner.header("X-Cache") == "MISS", owner.headers
    assert result_id(owner) == "vm-1"
    assert [a["id"] for a in mock.acted()] == ["vm-1"]
    again = raw(d, "GET", GET1 + Q1, token=tok["ro"], via=via)
    assert again.status == 200 and again.header("X-Cache") == "HIT" and result_id(again) == "vm-1"
    assert len(upstream(mock)) == 1


def test_owner_with_body_is_refused_too(start_denvrd, mock, harness_token_log):
    """Full rights do not make a GET body harmless: it would be the entry everyone reads."""
    d, _ = start(start_denvrd, harness_token_log)
    ans = raw(d, "GET", GET1 + Q1, [("Content-Type", FORM)], "Id=vm-2")
    assert ans.status == 400
    assert_refused(ans, mock, 0)
    ok = raw(d, "GET", GET1 + Q1)
    assert ok.header("X-Cache") == "MISS" and result_id(ok) == "vm-1"


# ---------------------------------------------------------------------------------------------
# (b) the cache key is everything sent
# ---------------------------------------------------------------------------------------------
FORWARDED = [
    ("Accept", "application/json"),
    ("Accept", "text/plain"),
    ("Accept-Encoding", "identity"),
    ("Accept-Language", "de-DE"),
    ("If-Match", '"abc"'),
    ("If-None-Match", '"abc"'),
    ("If-Modified-Since", "Tue, 01 Dec 2026 10:00:00 GMT"),
    ("If-Unmodified-Since", "Tue, 01 Dec 2026 10:00:00 GMT"),
]
TRACE = [
    ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ("tracestate", "congo=t61rcWkgMzE"),
]


@pytest.mark.parametrize("order", ["plain-first", "header-first"])
@pytest.mark.parametrize("name,value", FORWARDED,
                         ids=["%s-%d" % (f[0], i) for i, f in enumerate(FORWARDED)])
def test_forwarded_header_is_part_of_the_key(start_denvrd, mock, harness_token_log, name, value,
                                             order):
    d, _ = start(start_denvrd, harness_token_log)
    first, second = ((), ((name, value),)) if order == "plain-first" else (((name, value),), ())
    a = raw(d, "GET", LIST, first)
    b = raw(d, "GET", LIST, second)
    assert a.status == 200, a
    assert b.header("X-Cache") != "HIT", "answered from an entry fetched with other headers"
    recs = upstream(mock, LIST)
    assert len(recs) == 2, [r["headers"] for r in recs]
    # each upstream call carried its caller's header (the plain one: none, or denvrd's own
    # default, such as libcurl's Accept: */*)
    sent = [mock.header(r, name) for r in recs]
    with_it = 1 if order == "plain-first" else 0
    assert sent[with_it] == value and sent[1 - with_it] != value, sent


@pytest.mark.parametrize("name,value", TRACE, ids=[t[0] for t in TRACE])
def test_trace_context_is_forwarded_but_does_not_split_the_entry(start_denvrd, mock,
                                                                 harness_token_log, name, value):
    d, _ = start(start_denvrd, harness_token_log)
    a = raw(d, "GET", LIST, [(name, value)])
    b = raw(d, "GET", LIST)
    assert a.status == 200 and b.status == 200 and b.header("X-Cache") == "HIT", b
    recs = upstream(mock, LIST)
    assert len(recs) == 1 and mock.header(recs[0], name) == value, [r["headers"] for r in recs]


@pytest.mark.parametrize("name,value", [("Accept-Language", "fr"), ("Accept", "text/csv")],
                         ids=["Accept-Language", "Accept"])
def test_different_forwarded_values_do_not_share(start_denvrd, mock, harness_token_log, name,
                                                 value):
    d, _ = start(start_denvrd, harness_token_log)
    other = {"Accept-Language": "de", "Accept": "application/json"}[name]
    raw(d, "GET", LIST, [(name, other)])
    b = raw(d, "GET", LIST, [(name, value)])
    assert b.header("X-Cache") != "HIT"
    assert [mock.header(r, name) for r in upstream(mock, LIST)] == [other, value]


@pytest.mark.parametrize("name,value", [("X-Custom", "a"), ("Cookie", "session=x"),
                                        ("X-Forwarded-For", "10.0.0.1"), ("Forwarded", "for=x"),
                                        ("__tenant", "other"), ("Abp.TenantId", "7"),
                                        ("X-HTTP-Method-Override", "DELETE")],
                         ids=lambda v: v if isinstance(v, str) and len(v) < 24 else "v")
def test_header_not_forwarded_changes_nothing_upstream(start_denvrd, mock, harness_token_log,
                                                       name, value):
    """A header that is dropped is not sent, so it need not be in the key: whether or not the
    second answer is a HIT, upstream never saw the header."""
    d, _ = start(start_denvrd, harness_token_log)
    a = raw(d, "GET", GET1 + Q1)
    b = raw(d, "GET", GET1 + Q1, [(name, value)])
    assert (a.status, b.status) == (200, 200) and result_id(b) == "vm-1"
    for r in upstream(mock):
        assert mock.header(r, name) is None, r["headers"]
    assert {x["id"] for x in mock.acted()} == {"vm-1"}


# ---------------------------------------------------------------------------------------------
# (c) coalescing: only a 2xx leader is shared
# ---------------------------------------------------------------------------------------------
def in_background(fn):
    out = {}

    def run():
        try:
            out["answer"] = fn()
        except Exception as e:   # noqa: BLE001 - reported by the test
            out["error"] = e
    t = threading.Thread(target=run)
    t.start()
    return t, out


def leader_in_flight(mock, n=1):
    """Wait until upstream holds the leader's request (the mock records it before its delay)."""
    H.wait_until(lambda: len(mock.api_requests()) >= n, timeout=10,
                 what="the leader's request to reach upstream")


@pytest.mark.parametrize("status", [400, 404, 429, 500, 503])
def test_follower_of_a_failing_leader_gets_its_own_answer(start_denvrd, mock, harness_token_log,
                                                          status):
    d, _ = start(start_denvrd, harness_token_log, retries=0)
    mock.delay(1.5, count=1, path=GET1)
    mock.fail(count=1, status=status, path=GET1)
    t, lead = in_background(lambda: raw(d, "GET", GET1 + Q1))
    leader_in_flight(mock)
    follower = raw(d, "GET", GET1 + Q1)
    t.join()
    assert "error" not in lead, lead
    assert lead["answer"].status == status, lead["answer"]
    assert follower.status == 200, "the follower got the leader's %r" % follower
    assert result_id(follower) == "vm-1"
    assert len(upstream(mock)) == 2
    # the failure was not cached: a later identical request gets a 2xx about vm-1, or (429,
    # 5xx that denvrd gave up on) is answered from denvrd's failure memory, saying so
    third = raw(d, "GET", GET1 + Q1)
    if third.status == 200:   # fetched again, or the follower's own answer, cached
        assert result_id(third) == "vm-1"
    else:
        assert third.status == status and third.header("X-Denvrd-Replayed") is not None, third


@pytest.mark.parametrize("status", [200, 400, 500])
def test_different_request_is_never_coalesced(start_denvrd, mock, harness_token_log, status):
    d, _ = start(start_denvrd, harness_token_log, retries=0)
    mock.delay(1.5, count=1, path=GET1, query="Id=vm-1")
    if status != 200:
        mock.fail(count=1, status=status, path=GET1, query="Id=vm-1")
    t, lead = in_background(lambda: raw(d, "GET", GET1 + Q1))
    leader_in_flight(mock)
    follower = raw(d, "GET", GET1 + Q2)
    t.join()
    assert lead["answer"].status == status
    assert follower.status == 200 and result_id(follower) == "vm-2", follower
    assert sorted(a["id"] for a in mock.acted()) == (["vm-1", "vm-2"] if status == 200
                                                     else ["vm-2"])


def test_follower_with_other_forwarded_headers_is_not_coalesced(start_denvrd, mock,
                                                                harness_token_log):
    d, _ = start(start_denvrd, harness_token_log, retries=0)
    mock.delay(1.5, count=1, path=GET1)
    t, lead = in_background(lambda: raw(d, "GET", GET1 + Q1, [("Accept-Language", "de")]))
    leader_in_flight(mock)
    follower = raw(d, "GET", GET1 + Q1, [("Accept-Language", "fr")])
    t.join()
    assert lead["answer"].status == 200 and follower.status == 200
    assert [mock.header(r, "Accept-Language") for r in upstream(mock)] == ["de", "fr"]


def test_follower_of_a_2xx_leader_shares_it(start_denvrd, mock, harness_token_log):
    """The positive control: an identical request during a successful leader is coalesced."""
    d, _ = start(start_denvrd, harness_token_log, retries=0)
    mock.delay(1.5, count=1, path=GET1)
    t, lead = in_background(lambda: raw(d, "GET", GET1 + Q1))
    leader_in_flight(mock)
    follower = raw(d, "GET", GET1 + Q1)
    t.join()
    assert lead["answer"].status == 200 and follower.status == 200
    assert lead["answer"].body == follower.body
    assert len(upstream(mock)) == 1


def test_refused_follower_is_not_coalesced(start_denvrd, mock, harness_token_log):
    """A caller refused the operation is refused at once, even while an identical request is
    in flight (it is not parked behind it to be handed its answer)."""
    d, tok = start(start_denvrd, harness_token_log,
                   {"one": '["servers/virtual/GetServer?id=vm-1"]'}, retries=0)
    mock.delay(1.5, count=1, path=GET1)
    t, lead = in_background(lambda: raw(d, "GET", GET1 + Q2))
    leader_in_flight(mock)
    follower = raw(d, "GET", GET1 + Q2, token=tok["one"])
    t.join()
    assert follower.status == 403, follower
    follower.envelope_message()
    assert b"130.250" not in follower.body and follower.header("X-Cache") is None
    assert len(upstream(mock)) == 1 and lead["answer"].status == 200


@pytest.mark.parametrize("status", [429, 503])
def test_one_callers_failure_is_not_anothers_answer(start_denvrd, mock, harness_token_log,
                                                    status):
    """denvrd's failure memory (a failure it gave up on, replayed to the same request for a
    while) is no shared answer either: another caller's identical request goes upstream."""
    d, tok = start(start_denvrd, harness_token_log, {"ro": '"read-only"'}, retries=0)
    mock.fail(count=1, status=status, path=GET1)
    first = raw(d, "GET", GET1 + Q1, token=tok["ro"])
    assert first.status == status
    other = raw(d, "GET", GET1 + Q1)
    assert other.status == 200 and other.header("X-Denvrd-Replayed") is None, other
    assert result_id(other) == "vm-1" and len(upstream(mock)) == 2


# ---------------------------------------------------------------------------------------------
# (d) refused callers never get a cached answer
# ---------------------------------------------------------------------------------------------
RULES = {
    "vm1": '["servers/virtual/GetServer?id=vm-1"]',
    "stopper": '["servers/virtual/StopServer"]',
    "off": '"off"',
}
REFUSED = [
    ("vm1-other", "vm1", GET1 + Q2),                 # the condition says vm-1
    ("vm1-unknown", "vm1", GET1 + Q1 + "&Foo=1"),    # a name GetServer does not take
    ("stopper-get", "stopper", GET1 + Q1),           # GetServer not in its list
    ("stopper-list", "stopper", LIST),
    ("off-get", "off", GET1 + Q1),
    ("off-list", "off", LIST),
]


@pytest.mark.parametrize("via", ["tcp", "unix"])
@pytest.mark.parametrize("cid,who,target", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_caller_never_gets_a_cached_answer(start_denvrd, mock, harness_token_log, via,
                                                   cid, who, target):
    d, tok = start(start_denvrd, harness_token_log, RULES)
    for t in (GET1 + Q1, GET1 + Q2, LIST, GET1 + Q1 + "&Foo=1"):   # the owner fills the cache
        assert raw(d, "GET", t, via=via).status == 200
        assert raw(d, "GET", t, via=via).header("X-Cache") == "HIT"
    n = len(mock.api_requests())
    ans = raw(d, "GET", target, token=tok[who], via=via)
    assert ans.status in (400, 403), ans
    assert_refused(ans, mock, n)
    assert b"130.250" not in ans.body and b'"items"' not in ans.body, ans
    # the same caller's allowed read still works (and may be a HIT)
    if who == "vm1":
        ok = raw(d, "GET", GET1 + Q1, token=tok[who], via=via)
        assert ok.status == 200 and result_id(ok) == "vm-1"
