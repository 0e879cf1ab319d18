# SPDX-License-Identifier: MIT
"""[defaults] fill-in, early validation and the service shorthand, seen from upstream.

Every test looks at what the mock upstream actually received (byte-exact path and body,
ordered headers), or checks that it received nothing at all.

The operations and their defaults come from tests/denvr-api/operations.tsv, parsed here,
so every operation that has defaults is exercised; what denvrd is expected to add:
  * query: "&Name=value" appended after the client's query, byte-exact (value percent-encoded,
    RFC 3986 unreserved characters as they are), in the order of operations.tsv;
  * body: "name":"value" members inserted right after the opening '{' (followed by ',' when
    the client's object has members), in the order of operations.tsv, every other byte of the
    client's JSON kept.
A parameter the client sent, in any case spelling, even empty ("Cluster=", bare "Cluster") or
null / "", is left alone.  A default that is not configured adds nothing; a required
parameter that is then still missing gets ABP's 400 validation envelope from denvrd itself.
"""

import json
import re
import shutil
import subprocess
import urllib.parse

import pytest

import denvrd_harness as H
from denvrd_harness import wait_until

TSV_NAME = "operations.tsv"

# What [defaults] holds in most tests.  vpcid is set (and differs from tenant) so that it is
# visible which of the two fills vpc / namespace / vpcId.
CONFIG = {"cluster": "Msc1", "tenant": "acme-tenant", "vpcid": "vpc-7", "rpool": "reserved-a"}
# operations.tsv "source" -> the value denvrd should use with CONFIG
VALUES = {"cluster": "Msc1", "vpcid": "vpc-7", "rpool": "reserved-a"}

JSON_CT = "application/json"
FORM_CT = "application/x-www-form-urlencoded"
OK = "2xx"


# ---------------------------------------------------------------------------------------------
# operations.tsv
# ---------------------------------------------------------------------------------------------
class Op:
    def __init__(self, method, path, query, body, defaults):
        self.method, self.path = method, path
        self.query = query          # [(name, required)] in file order
        self.body = body
        self.defaults = defaults    # {name: source}

    def __repr__(self):
        return "%s %s" % (self.method, self.path)

    @property
    def has_body(self):
        return bool(self.body)

    @property
    def params(self):
        return self.body if self.has_body else self.query

    def defaulted(self):
        """[(name, source, required)] of this operation's defaulted parameters, file order."""
        return [(n, self.defaults[n], req) for n, req in self.params if n in self.defaults]

    def client_required(self):
        """[(name, value)]: required parameters without a default (the client sends them)."""
        return [(n, client_value(n)) for n, req in self.params
                if req and n not in self.defaults]


def _names(spec):
    if spec.strip() in ("", "-"):
        return []
    return [(p.strip().rstrip("*"), p.strip().endswith("*")) for p in spec.split(",")]


def parse_operations(path):
    ops = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split("\t")
        if f[0] == "method":
            continue
        assert len(f) == 5, "bad operations.tsv line %r" % line
        defaults = {}
        if f[4].strip() not in ("", "-"):
            for d in f[4].split(","):
                name, _, src = d.strip().partition("=")
                defaults[name] = src
        ops.append(Op(f[0], f[1], _names(f[2]), _names(f[3]), defaults))
    return ops


def _collect():
    try:
        return parse_operations(H.API_DIR / TSV_NAME)
    except OSError:
        return []   # test_operations_tsv_is_there fails (never skips) then


OPERATIONS = _collect()
WITH_DEFAULTS = [op for op in OPERATIONS if op.defaults]
# When the file is missing, one placeholder so the parametrized tests fail loudly too.
PARAMS = WITH_DEFAULTS or [None]
IDS = [op.path.rsplit("/", 2)[-2] + "/" + op.path.rsplit("/", 1)[-1] if op else "missing-tsv"
       for op in PARAMS]


def _need(op, api_dir):
    if op is None:
        pytest.fail("%s has no operation with defaults" % (api_dir / TSV_NAME))
    return op


def client_value(name):
    if name.lower() in ("ssh_keys", "sshkeys"):
        return ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG5vdGFyZWFsa2V5 test"]
    if name.lower() == "id":
        return "vm-1"
    return "x-" + name.lower()


# ---------------------------------------------------------------------------------------------
# expected bytes
# ---------------------------------------------------------------------------------------------
def qenc(value):
    """How denvrd percent-encodes an added query value: all but unreserved characters."""
    return urllib.parse.quote(value, safe="-._~")


def qstr(pairs):
    return "&".join("%s=%s" % (n, v) for n, v in pairs)


def query_additions(op, values, present=()):
    """Expected '&'-joined additions for the defaulted query parameters not in `present`."""
    low = {p.lower() for p in present}
    return [(n, qenc(values[src])) for n, src, _ in op.defaulted()
            if n.lower() not in low and values.get(src)]


def member(name, value):
    return b'"%s":%s' % (name.encode(), json.dumps(value, ensure_ascii=False).encode())


def body_members(op, values, present=()):
    low = {p.lower() for p in present}
    return [member(n, values[src]) for n, src, _ in op.defaulted()
            if n.lower() not in low and values.get(src)]


def insert_after_brace(body, members):
    """body with members inserted after its first '{' (and ',' when the object is not empty)."""
    if not members:
        return body
    i = body.index(b"{")
    rest = body[i + 1:]
    empty = rest.lstrip(b" \t\r\n").startswith(b"}")
    return body[:i + 1] + b",".join(members) + (b"" if empty else b",") + rest


def json_text(pairs):
    """A JSON object as text with the client's spacing (", " and ": ")."""
    return ("{" + ", ".join("%s: %s" % (json.dumps(n), json.dumps(v)) for n, v in pairs)
            + "}").encode()


# ---------------------------------------------------------------------------------------------
# talking to denvrd and looking at the mock
# ---------------------------------------------------------------------------------------------
def last_seq(mock):
    recs = mock.requests()
    return recs[-1]["seq"] if recs else 0


def upstream_since(mock, since):
    return [r for r in mock.api_requests(since) if not r["path"].startswith("/api/TokenAuth/")]


def send(d, mock, method, target, body=None, headers=None, via="tcp"):
    """-> (status, response body bytes, [records the mock got for it])"""
    since = last_seq(mock)
    st, _, data = d.request(method, target, body, headers, via=via)
    return st, data, upstream_since(mock, since)


def forwarded(d, mock, method, target, body=None, headers=None, via="tcp"):
    """Send; assert exactly one upstream request; -> (status, response bytes, record)."""
    st, data, recs = send(d, mock, method, target, body, headers, via)
    assert len(recs) == 1, "expected one upstream request for %s %s, got %r (denvrd: %d %r)" % (
        method, target, [r["path"] for r in recs], st, data[:300])
    rec = recs[0]
    assert rec["method"] == method
    return st, data, rec


def assert_forwarded(d, mock, method, target, exp_path, body=None, exp_body=None,
                     headers=None, via="tcp", status=None):
    st, data, rec = forwarded(d, mock, method, target, body, headers, via)
    assert rec["path"] == exp_path
    got = mock.body(rec)
    want = exp_body if exp_body is not None else (body or b"")
    assert got == want, "upstream body differs:\n got  %r\n want %r" % (got, want)
    if status == OK:
        assert 200 <= st < 300, (st, data[:500])   # upstream took it (some answer 202)
    elif status is not None:
        assert st == status, (st, data[:500])
    return st, data, rec


def post(d, mock, path, body, exp_body, ct=JSON_CT, via="tcp", status=None, exp_path=None):
    """POST body to path (Content-Type ct, None for none); upstream must get exp_body."""
    return assert_forwarded(d, mock, "POST", path, exp_path or path, body, exp_body,
                            {"Content-Type": ct} if ct else {}, via=via, status=status)


def content_types(rec):
    return [v for k, v in rec["headers"] if k.lower() == "content-type"]


def assert_validation_400(st, data, members):
    assert st == 400, (st, data[:500])
    env = json.loads(data)
    assert env["success"] is False and env["__abp"] is True and env["result"] is None
    assert env["unAuthorizedRequest"] is False
    err = env["error"]
    assert err["message"] == "Your request is not valid!"
    got = [m for v in err["validationErrors"] for m in v["members"]]
    assert got == members, (got, members, err)
    for v in err["validationErrors"]:
        assert isinstance(v["message"], str) and "required" in v["message"], v
    return env


def assert_body_error_400(st, data, pattern):
    assert st == 400, (st, data[:500])
    env = json.loads(data)
    assert env["success"] is False and env["__abp"] is True
    assert not env["error"].get("validationErrors"), env
    m = re.search(pattern, env["error"]["message"])
    assert m, (pattern, env["error"]["message"])
    return m


def camel(name):
    return name[:1].lower() + name[1:]


def upstream_members(mock, method, path, query, body):
    """The validationErrors members upstream (the mock) itself answers for this request."""
    target = path + ("?" + query if query else "")
    headers = {"Content-Type": JSON_CT} if body is not None else None
    st, _, data = mock.call(method, target, body, headers, auth="apikey")
    assert st == 400, (st, data[:300])
    return [m for v in json.loads(data)["error"]["validationErrors"] for m in v["members"]]


def client_request(op, extra=()):
    """(target, body bytes or None, headers) for op with the client-required parameters
    plus `extra` [(name, raw value)]: query values are put in verbatim, body values are
    JSON values."""
    pairs = op.client_required()
    if op.has_body:
        return op.path, json_text(list(pairs) + list(extra)), {"Content-Type": JSON_CT}
    q = qstr([(n, v) for n, v in pairs] + list(extra))
    return op.path + ("?" + q if q else ""), None, None


def expected_path(op, target, values, present=()):
    adds = query_additions(op, values, present) if not op.has_body else []
    if not adds:
        return target
    base, sep, q = target.partition("?")
    return base + "?" + q + ("&" if q else "") + qstr(adds)


# ---------------------------------------------------------------------------------------------
# operations.tsv itself
# ---------------------------------------------------------------------------------------------
def test_operations_tsv_is_there(api_dir):
    ops = parse_operations(api_dir / TSV_NAME)
    assert [repr(o) for o in ops] == [repr(o) for o in OPERATIONS]
    assert len(WITH_DEFAULTS) >= 25, "operations.tsv lost its defaults? %r" % WITH_DEFAULTS
    sources = {src for op in WITH_DEFAULTS for src in op.defaults.values()}
    assert sources == {"cluster", "vpcid", "rpool"}, sources


# ---------------------------------------------------------------------------------------------
# every operation with defaults: absent, supplied, empty/null, other case, partly supplied
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", PARAMS, ids=IDS)
def test_defaults_filled_for_every_operation(op, api_dir, mock, start_denvrd):
    op = _need(op, api_dir)
    d = start_denvrd(defaults=CONFIG)
    defaulted = op.defaulted()

    # 1. nothing supplied: every defaulted parameter is added with the configured value
    target, body, headers = client_request(op)
    if op.has_body:
        exp = insert_after_brace(body, body_members(op, VALUES))
        assert exp != body
        _, _, rec = assert_forwarded(d, mock, op.method, target, target, body, exp, headers,
                                     status=OK)
        assert content_types(rec) == [JSON_CT]
        # the result is the client's members plus ours, nothing else
        assert json.loads(mock.body(rec)) == dict(
            json.loads(body), **{n: VALUES[src] for n, src, _ in defaulted})
    else:
        exp_path = expected_path(op, target, VALUES)
        assert exp_path != target
        assert_forwarded(d, mock, op.method, target, exp_path, status=OK)
        if "?" not in target:
            # also after a client query that has nothing to do with it
            t2 = target + "?x=1&y="
            assert_forwarded(d, mock, op.method, t2, expected_path(op, t2, VALUES))

    # 2. every defaulted parameter supplied by the client: forwarded as sent
    mine = [(n, "client-" + n.lower()) for n, _, _ in defaulted]
    target, body, headers = client_request(op, mine)
    assert_forwarded(d, mock, op.method, target, target, body, body, headers, status=OK)

    # 3. present but empty / null: a required one takes its default in place (generated
    #    clients send every field, empty when unset); an optional one stays: "none here"
    if op.has_body:
        for v in (None, ""):
            target, body, headers = client_request(op, [(n, v) for n, _, _ in defaulted])
            st, data, rec = forwarded(d, mock, op.method, target, body, headers, "tcp")
            assert rec["path"] == target
            sent, got = json.loads(body), json.loads(mock.body(rec))
            want = dict(sent, **{n: VALUES[src] for n, src, req in defaulted if req})
            assert got == want, (got, want)
    else:
        for form in ("%s=", "%s"):       # "Cluster=" and a bare "Cluster"
            q = "&".join(form % n for n, _, _ in defaulted)
            target, _, _ = client_request(op)
            target += ("&" if "?" in target else "?") + q
            exp = "&".join("%s=%s" % (n, qenc(VALUES[src])) if req else form % n
                           for n, src, req in defaulted)
            assert_forwarded(d, mock, op.method, target, target[:-len(q)] + exp)

    # 4. a differently cased name counts as present (ASP.NET binds case-insensitively)
    if op.has_body:
        other = [(n.swapcase(), "Hou1") for n, _, _ in defaulted]
        target, body, headers = client_request(op, other)
        assert_forwarded(d, mock, op.method, target, target, body, body, headers)
    else:
        for spell in (str.swapcase, str.lower, str.upper):
            other = [(spell(n), "Hou1") for n, _, _ in defaulted]
            target, _, _ = client_request(op, other)
            if any(s == n for (s, _), (n, _, _) in zip(other, defaulted)):
                continue   # e.g. lower() of "cluster": not a different spelling
            assert_forwarded(d, mock, op.method, target, target)

    # 5. only the last defaulted parameter supplied: the others are still added
    if len(defaulted) > 1:
        last = defaulted[-1][0]
        if op.has_body:
            target, body, headers = client_request(op, [(last, "Hou1")])
            exp = insert_after_brace(body, body_members(op, VALUES, present=[last]))
            assert_forwarded(d, mock, op.method, target, target, body, exp, headers)
        else:
            target, _, _ = client_request(op, [(last, "Hou1")])
            assert_forwarded(d, mock, op.method, target,
                             expected_path(op, target, VALUES, present=[last]))


@pytest.mark.parametrize("op", PARAMS, ids=IDS)
def test_unconfigured_defaults_add_nothing(op, api_dir, mock, start_denvrd):
    """cluster and rpool set to "" (they have built-in values otherwise), no tenant, no vpcid:
    nothing is added; what is then missing and required is refused by denvrd with upstream's
    validation members, without a round trip."""
    op = _need(op, api_dir)
    d = start_denvrd(defaults={"cluster": "", "rpool": ""})
    target, body, headers = client_request(op)
    missing = [n for n, _, req in op.defaulted() if req]
    st, data, recs = send(d, mock, op.method, target, body, headers)
    if missing:
        assert recs == [], "denvrd forwarded a request it should have refused"
        assert_validation_400(st, data, [camel(n) for n in missing])
        q = target.partition("?")[2]
        assert upstream_members(mock, op.method, op.path, q, body) == \
            [m for v in json.loads(data)["error"]["validationErrors"] for m in v["members"]]
    else:
        # only optional defaults (e.g. GetServers' Cluster): forwarded exactly as sent
        assert len(recs) == 1 and recs[0]["path"] == target, recs
        assert mock.body(recs[0]) == (body or b"")


@pytest.mark.parametrize("op", PARAMS, ids=IDS)
def test_no_tenant_no_vpcid(op, api_dir, mock, start_denvrd):
    """cluster and rpool configured, neither tenant nor vpcid: vpc/namespace/vpcId are never
    added (they are required wherever they occur, so those operations get the 400)."""
    op = _need(op, api_dir)
    values = {"cluster": "Msc1", "rpool": "reserved-a"}
    d = start_denvrd(defaults=values)
    target, body, headers = client_request(op)
    missing = [n for n, src, req in op.defaulted() if req and src == "vpcid"]
    st, data, recs = send(d, mock, op.method, target, body, headers)
    if missing:
        assert recs == []
        assert_validation_400(st, data, [camel(n) for n in missing])
    else:
        assert len(recs) == 1, recs
        if op.has_body:
            assert mock.body(recs[0]) == insert_after_brace(body, body_members(op, values))
        else:
            assert recs[0]["path"] == expected_path(op, target, values)


def test_builtin_defaults(mock, start_denvrd):
    """Without the keys, cluster and rpool are the SDKs' built-in Msc1 and on-demand."""
    d = start_denvrd()
    assert_forwarded(d, mock, "GET", "/api/v1/servers/applications/GetAvailability",
                     "/api/v1/servers/applications/GetAvailability"
                     "?cluster=Msc1&resourcePool=on-demand", status=OK)


def test_vpcid_falls_back_to_tenant(mock, start_denvrd):
    d = start_denvrd(defaults={"cluster": "Msc1", "tenant": "acme-tenant"})
    assert_forwarded(d, mock, "GET", "/api/v1/servers/virtual/GetServer?Id=vm-1",
                     "/api/v1/servers/virtual/GetServer?Id=vm-1"
                     "&Namespace=acme-tenant&Cluster=Msc1", status=OK)
    post(d, mock, "/api/v1/servers/metal/AddHostVpc", b'{"id":"h-1"}',
         b'{"cluster":"Msc1","vpcId":"acme-tenant","id":"h-1"}', status=OK)
    # and vpcid, when set, wins over tenant
    d2 = start_denvrd(defaults=CONFIG)
    assert_forwarded(d2, mock, "GET", "/api/v1/servers/virtual/GetServer?Id=vm-1",
                     "/api/v1/servers/virtual/GetServer?Id=vm-1&Namespace=vpc-7&Cluster=Msc1")


def test_default_values_are_encoded(mock, start_denvrd):
    """Defaults with characters that need escaping: percent-encoded in the query, a JSON
    string in the body."""
    odd = 'Msc "1" \\ é/&=+?#%'
    d = start_denvrd(defaults={"cluster": odd, "vpcid": "vpc 7"})
    assert_forwarded(d, mock, "GET", "/api/v1/servers/virtual/GetServers",
                     "/api/v1/servers/virtual/GetServers?Cluster="
                     "Msc%20%221%22%20%5C%20%C3%A9%2F%26%3D%2B%3F%23%25")
    body = b'{"id":"vm-1"}'
    exp = '{"namespace":"vpc 7","cluster":"Msc \\"1\\" \\\\ é/&=+?#%","id":"vm-1"}'.encode()
    _, _, rec = post(d, mock, "/api/v1/servers/virtual/StartServer", body, exp)
    assert json.loads(mock.body(rec))["cluster"] == odd


def test_query_presence_rules(mock, start_denvrd):
    """Names are compared after percent-decoding and case-insensitively; the client's pieces
    stay byte-exact ('+', escapes, a trailing '&', a lone '?'; empty pieces, which ASP.NET
    skips, are left out once something is added).  A name twice or a bad escape is refused."""
    d = start_denvrd(defaults=CONFIG)
    p = "/api/v1/servers/virtual/GetServers"
    cases = [
        ("?%43luster=Hou1", "?%43luster=Hou1"),                  # %43 is 'C': present
        ("?CLUSTER", "?CLUSTER"),
        ("?Clusterx=1", "?Clusterx=1&Cluster=Msc1"),            # another name
        ("?x=Cluster", "?x=Cluster&Cluster=Msc1"),              # a value, not a name
        ("?a=%7a&b=+%2b", "?a=%7a&b=+%2b&Cluster=Msc1"),        # kept byte-exact
        ("?x=1&", "?x=1&Cluster=Msc1"),                          # no "&&"
        ("?", "?Cluster=Msc1"),
        ("?&&", "?Cluster=Msc1"),
        ("?Clu+ster=1", "?Clu+ster=1&Cluster=Msc1"),            # '+' is a space
    ]
    for q, exp in cases:
        assert_forwarded(d, mock, "GET", p + q, p + exp)
    for q in ("?cluster=&cluster=x", "?Cluster=a&%43LUSTER=b", "?a=%zz", "?input.Cluster=x"):
        st, data, recs = send(d, mock, "GET", p + q)
        assert st == 400 and recs == [], (q, st, data[:300])


# ---------------------------------------------------------------------------------------------
# byte-exact bodies
# ---------------------------------------------------------------------------------------------
NS_CL = b'"namespace":"vpc-7","cluster":"Msc1"'
DEEP = 400
ROUND_TRIP = {
    "big-integers": b'{"id":"vm-1","big":12345678901234567890,'
                    b'"neg":-98765432109876543210987654321098765432109876543210,'
                    b'"arr":[18446744073709551616,-9223372036854775809]}',
    "long-decimals": b'{"id":"vm-1","d":0.1000000000000000055511151231257827,'
                     b'"e":1.0E+2,"f":-0.000000000000000000000000000000000001e-7,'
                     b'"g":2.2250738585072014e-308,"z":-0.0}',
    "huge-exponents": b'{"id":"vm-1","inf":1e400,"tiny":-1E-400,'
                      b'"digits":' + b"9" * 400 + b'}',
    "deep-nesting": b'{"id":"vm-1","deep":' + b'[{"a":' * DEEP + b'{"cluster":"x"}' +
                    b'}]' * DEEP + b'}',
    "unicode-escapes": b'{"id":"vm-1","n":"caf\\u00e9 \\u00E9 \\ud83d\\ude00 \\uD83D\\uDE00",'
                       b'"raw":"caf\xc3\xa9 \xf0\x9f\x98\x80","nul":"a\\u0000b",'
                       b'"esc":"\\"\\\\\\/\\b\\f\\n\\r\\t","\\u006e\\u0061me":1}',
    "duplicate-looking-keys": b'{"id":"vm-1","nameSpace ":"x"," cluster":"y","clusters":"z",'
                              b'"meta":{"cluster":"nested","namespace":"nested","id":"x"}}',
    "odd-whitespace": b' \r\n\t{ \n\t"id" \r\n:\t"vm-1"\n\n ,"x" : [ 1 ,\t2 ] }\r\n \t',
    "byte-order-mark": b'\xef\xbb\xbf{"id":"vm-1"}',
    "bom-and-blanks": b'\xef\xbb\xbf\n  {\n  "id": "vm-1"\n}\n',
    "empty-strings-and-nulls": b'{"id":"vm-1","a":"","b":null,"c":{},"d":[],"e":[[]],"f":{"":""}}',
    "large": b'{"id":"vm-1","blob":"' + b"A" * (300 * 1024) + b'"}',
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIP))
def test_round_trip_bytes(name, mock, start_denvrd):
    body = ROUND_TRIP[name]
    d = start_denvrd(defaults=CONFIG)
    i = body.index(b"{")
    exp = body[:i + 1] + NS_CL + b"," + body[i + 1:]
    _, _, rec = post(d, mock, "/api/v1/servers/virtual/StartServer", body, exp)
    assert len(mock.body(rec)) == len(body) + len(NS_CL) + 1
    # the same bytes arrive when the client names every default itself: untouched
    full = body[:i + 1] + b'"Namespace":"n","CLUSTER":"c",' + body[i + 1:]
    post(d, mock, "/api/v1/servers/virtual/StartServer", full, full)


def test_round_trip_escaped_key_names(mock, start_denvrd):
    """Keys are compared as JSON decodes them: "\\u0063luster" is cluster (present)."""
    d = start_denvrd(defaults=CONFIG)
    body = b'{"id":"vm-1","\\u0063luster":"Hou1"}'
    post(d, mock, "/api/v1/servers/virtual/StartServer", body,
         b'{"namespace":"vpc-7",' + body[1:])
    # sent null: a required member with a default takes it in place, escapes kept
    body = b'{"id":"vm-1","\\u0063luster":"Hou1","n\\u0061mespace":null}'
    post(d, mock, "/api/v1/servers/virtual/StartServer", body, body.replace(b"null", b'"vpc-7"'))
    # two spellings of one member: upstream would bind one of them, so refused
    for body in (b'{"id":"vm-1","ID":"vm-2"}', b'{"id":"vm-1","\\u0069d":"vm-2"}',
                 b'{"id":"vm-1","id":"vm-2"}'):
        st, data, recs = send(d, mock, "POST", "/api/v1/servers/virtual/StartServer", body,
                              {"Content-Type": JSON_CT})
        assert st == 400 and recs == [], (body, st, data[:300])


def test_round_trip_empty_and_blank_objects(mock, start_denvrd):
    """No ',' after our members when the client's object is empty; an empty body counts as
    {} (here: on CreateVpc only the client-supplied id is then missing)."""
    d = start_denvrd(defaults=CONFIG)
    p = "/api/v1/servers/virtual/CreateServer"
    base = b'"rpool":"reserved-a","vpc":"vpc-7","cluster":"Msc1"'
    for body in (b'{"configuration":"c","ssh_keys":["k"]}',):
        post(d, mock, p, body, b"{" + base + b"," + body[1:], status=OK)
    # every required member defaulted but one: {} and { } get the 400 for that one
    for body in (b"{}", b"{ }", b"  {\n}\n", b""):
        st, data, recs = send(d, mock, "POST", "/api/v1/vpcs/CreateVpc", body,
                              {"Content-Type": JSON_CT})
        assert recs == []
        assert_validation_400(st, data, ["id"])


# ---------------------------------------------------------------------------------------------
# early validation: refused by denvrd, never sent upstream
# ---------------------------------------------------------------------------------------------
def test_invalid_json_gives_line_and_column(mock, start_denvrd):
    d = start_denvrd(defaults=CONFIG)
    p = "/api/v1/servers/virtual/StartServer"
    cases = [
        (b'{"id": "vm-1",}', 1, 15),
        (b'{\n  "id": "vm-1",\n  oops\n}', 3, 6),     # jansson: the column ending the token
        (b'{"id": "vm-1"} trailing', 1, 23),
        (b'{"id": "vm-1"', 1, 13),
        (b'{"id": 01}', 1, 8),
    ]
    for body, line, col in cases:
        for ct in (JSON_CT, FORM_CT, None):
            st, data, recs = send(d, mock, "POST", p, body, {"Content-Type": ct} if ct else {})
            assert recs == [], (body, ct)
            m = assert_body_error_400(st, data, r"not valid JSON: line (\d+), column (\d+)")
            assert (int(m.group(1)), int(m.group(2))) == (line, col), (body, m.group(0))


def test_body_that_is_not_an_object(mock, start_denvrd):
    d = start_denvrd(defaults=CONFIG)
    p = "/api/v1/servers/virtual/StartServer"
    for body, what in ((b'[{"id":"vm-1"}]', "an array"), (b'"vm-1"', "a string"),
                       (b"42", "a number"), (b"null", "null"), (b" true ", "true")):
        st, data, recs = send(d, mock, "POST", p, body, {"Content-Type": JSON_CT})
        assert recs == [], body
        assert_body_error_400(st, data, r"must be a JSON object, not %s$" % re.escape(what))


def test_missing_required_after_fill_in(mock, start_denvrd):
    """Required parameters nobody fills: 400 listing them (as upstream names them) in table
    order, nothing sent upstream."""
    d = start_denvrd(defaults={"cluster": "", "rpool": "reserved-a"})
    cases = [
        ("GET", "/api/v1/servers/virtual/GetServer", None, ["id", "namespace", "cluster"]),
        ("GET", "/api/v1/servers/virtual/GetServer?id=vm-1&namespace=n", None, ["cluster"]),
        ("DELETE", "/api/v1/vpcs/DestroyVpc?Cluster=Msc1", None, ["id"]),
        ("POST", "/api/v1/servers/virtual/StartServer", b'{"cluster":"c"}', ["id", "namespace"]),
        ("POST", "/api/v1/servers/virtual/CreateServer", b'{"name":"n"}',
         ["vpc", "configuration", "cluster", "ssh_keys"]),
        ("POST", "/api/v1/servers/applications/CreateCatalogApplication", b"",
         ["name", "cluster", "hardwarePackageName", "applicationCatalogItemName",
          "applicationCatalogItemVersion"]),
    ]
    for method, target, body, members in cases:
        headers = {"Content-Type": JSON_CT} if body is not None else None
        st, data, recs = send(d, mock, method, target, body, headers)
        assert recs == [], target
        env = assert_validation_400(st, data, members)
        # the same members upstream itself would list for the very same request
        path, _, q = target.partition("?")
        assert upstream_members(mock, method, path, q, body) == members
        if "cluster" in members:
            i = [v["members"] for v in env["error"]["validationErrors"]].index(["cluster"])
            assert "[defaults] cluster" in env["error"]["validationErrors"][i]["message"]
    # present but empty is the client's choice: not flagged by denvrd, upstream judges it
    t = "/api/v1/servers/virtual/GetServer?Id=vm-1&Namespace=&Cluster="
    st, data, _ = assert_forwarded(d, mock, "GET", t, t)
    assert st == 400 and json.loads(data)["error"]["validationErrors"], data   # from upstream
    # the cluster hint names the setting that would have filled it
    st, data, _ = send(d, mock, "GET", "/api/v1/servers/metal/GetHost?Id=h-1")
    env = assert_validation_400(st, data, ["cluster"])
    assert "[defaults] cluster" in env["error"]["validationErrors"][0]["message"]


def test_validation_over_unix_socket(mock, start_denvrd):
    d = start_denvrd(defaults={"cluster": ""})
    st, data, recs = send(d, mock, "POST", "/api/v1/servers/metal/RebootHost", b'{"id":"h-1"}',
                          {"Content-Type": JSON_CT}, via="unix")
    assert recs == []
    assert_validation_400(st, data, ["cluster"])


# ---------------------------------------------------------------------------------------------
# what is not ours passes through untouched
# ---------------------------------------------------------------------------------------------
def test_unknown_operations_pass_through(mock, start_denvrd):
    d = start_denvrd(defaults=CONFIG)
    cases = [
        ("POST", "/api/v1/servers/virtual/SomethingNew?x=1", b'{"id": "vm-1"}', JSON_CT),
        ("POST", "/api/v1/servers/virtual/SomethingNew?x=1", b'{not json', JSON_CT),
        ("POST", "/api/v1/servers/virtual/SomethingNew", b'["array"]', None),
        ("GET", "/api/v1/servers/virtual/GetServersX", None, None),
        ("GET", "/api/v2/servers/virtual/GetServers", None, None),     # another api version
        ("GET", "/api/v1/servers/virtual/StartServer?x=1", None, None),  # known path, wrong method
        ("PUT", "/api/v1/servers/virtual/StartServer", b'{"id":"vm-1"}', JSON_CT),
        ("POST", "/api/v1/servers/virtual/GetServers", b"", JSON_CT),
        ("GET", "/api/v1/clusters/GetAll?Cluster=", None, None),        # no defaults at all
        ("GET", "/api/v1/clusters/GetAll", None, None),
    ]
    for method, target, body, ct in cases:
        headers = {"Content-Type": ct} if ct else {}
        _, _, rec = assert_forwarded(d, mock, method, target, target, body, body or b"", headers)
        assert content_types(rec) == ([ct] if ct else []), (target, rec["headers"])


def test_non_json_body_is_refused(mock, start_denvrd):
    """A body labelled as something else than JSON (and not curl's form label on a '{' body)
    is refused: upstream would bind a form's fields before the query.  An empty one counts as
    {} and goes as JSON."""
    d = start_denvrd(defaults=CONFIG)
    p = "/api/v1/servers/virtual/StartServer"
    for body, ct in ((b'{"id":"vm-1"}', "text/plain"), (b"id=vm-1", FORM_CT),
                     (b"--x\r\n", "multipart/form-data; boundary=x")):
        st, data, recs = send(d, mock, "POST", p, body, {"Content-Type": ct})
        assert st == 400 and recs == [], (ct, st, data[:300])
        assert "must be JSON" in json.loads(data)["error"]["message"]
    # no body at all: {} with the defaults, labelled JSON (here id is then missing: 400)
    st, data, recs = send(d, mock, "POST", p, b"", {"Content-Type": "text/plain"})
    assert st == 400 and recs == [] and "id" in json.loads(data)["error"]["validationErrors"][0]["members"]


# ---------------------------------------------------------------------------------------------
# curl -d: JSON labelled as a form is relabelled
# ---------------------------------------------------------------------------------------------
START_FILLED = b'{"namespace":"vpc-7","cluster":"Msc1","id":"vm-1"}'


def test_form_labelled_json_is_relabelled(mock, start_denvrd):
    d = start_denvrd(defaults=CONFIG)
    p = "/api/v1/servers/virtual/StartServer"
    for ct in (FORM_CT, "application/x-www-form-urlencoded; charset=utf-8", None):
        headers = {"Content-Type": ct} if ct else {}
        st, data, rec = assert_forwarded(d, mock, "POST", p, p, b'{"id":"vm-1"}', START_FILLED,
                                         headers, status=OK)
        assert content_types(rec) == [JSON_CT], rec["headers"]
        assert json.loads(data)["success"] is True
    # relabelled even when nothing needs adding (upstream refuses the form type)
    full = b'  {"id":"vm-1","namespace":"n","cluster":"c"}'
    _, _, rec = assert_forwarded(d, mock, "POST", p, p, full, full, {"Content-Type": FORM_CT})
    assert content_types(rec) == [JSON_CT]
    # JSON labelled as JSON keeps the client's exact label
    ct = "application/json; charset=UTF-8"
    _, _, rec = assert_forwarded(d, mock, "POST", p, p, b'{"id":"vm-1"}', START_FILLED,
                                 {"Content-Type": ct})
    assert content_types(rec) == [ct]


def test_raw_curl_request_bytes(mock, start_denvrd):
    """Exactly what `curl -X POST .../StartServer -d '{"id":"vm-1"}'` sends, curl or not."""
    d = start_denvrd(defaults=CONFIG)
    since = last_seq(mock)
    raw = (b"POST /api/v1/servers/virtual/StartServer HTTP/1.1\r\n"
           b"Host: 127.0.0.1:%d\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n"
           b"Content-Length: 13\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           b"Connection: close\r\n\r\n{\"id\":\"vm-1\"}" % d.port)
    out = d.raw(raw)
    assert re.match(rb"HTTP/1\.1 20[02] ", out), out[:300]
    recs = upstream_since(mock, since)
    assert len(recs) == 1 and mock.body(recs[0]) == START_FILLED
    assert content_types(recs[0]) == [JSON_CT]


def _curl(*args):
    curl = shutil.which("curl")
    if not curl:
        pytest.fail("curl is needed for this test (the README's examples use it)")
    res = subprocess.run([curl, "-sS", "--max-time", str(H.scaled(20))] + list(args),
                         capture_output=True, timeout=H.scaled(30))
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_curl_start_server_just_works(via, mock, start_denvrd):
    d = start_denvrd(defaults=CONFIG)
    since = last_seq(mock)
    if via == "tcp":
        out = _curl("-X", "POST",
                    "localhost:%d/api/v1/servers/virtual/StartServer" % d.port,
                    "-d", '{"id":"vm-1"}')
    else:
        out = _curl("--unix-socket", d.socket_path, "-X", "POST",
                    "http://localhost/api/v1/servers/virtual/StartServer", "-d",
                    '{"id":"vm-1"}')
    env = json.loads(out)
    assert env["success"] is True, env
    recs = upstream_since(mock, since)
    assert len(recs) == 1
    assert recs[0]["path"] == "/api/v1/servers/virtual/StartServer"
    assert mock.body(recs[0]) == START_FILLED
    assert content_types(recs[0]) == [JSON_CT]


# ---------------------------------------------------------------------------------------------
# service shorthand
# ---------------------------------------------------------------------------------------------
def test_service_shorthand(mock, start_denvrd):
    d = start_denvrd(defaults=CONFIG)
    for via in ("tcp", "unix"):
        assert_forwarded(d, mock, "GET", "/servers/virtual/GetServers",
                         "/api/v1/servers/virtual/GetServers?Cluster=Msc1", via=via, status=OK)
        assert_forwarded(d, mock, "GET", "/vpcs/GetVpcs?x=%20",
                         "/api/v1/vpcs/GetVpcs?x=%20&Cluster=Msc1", via=via, status=OK)
        assert_forwarded(d, mock, "GET", "/clusters/GetAll", "/api/v1/clusters/GetAll",
                         via=via, status=OK)
        post(d, mock, "/servers/virtual/StartServer", b'{"id":"vm-1"}', START_FILLED, FORM_CT,
             via=via, status=OK, exp_path="/api/v1/servers/virtual/StartServer")
        # an unknown operation of a known service: shorthand, untouched otherwise
        assert_forwarded(d, mock, "GET", "/servers/metal/SomethingNew?Cluster",
                         "/api/v1/servers/metal/SomethingNew?Cluster", via=via)
        # validation applies to the expanded path
        st, data, recs = send(d, mock, "GET", "/servers/metal/GetHost", via=via)
        assert recs == []
        assert_validation_400(st, data, ["id"])
        for bad in ("/nope/x", "/nope/servers/virtual/GetServers", "/servers",
                    "/GetServers", "/_denvrd"):
            st, data, recs = send(d, mock, "GET", bad, via=via)
            assert st == 404 and recs == [], (bad, st, data[:200])


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_service_shorthand_honours_api(api, mock, start_denvrd):
    d = start_denvrd(defaults=dict(CONFIG, api=api))
    if api == "v1":
        assert_forwarded(d, mock, "GET", "/servers/virtual/GetServers?Id=1",
                         "/api/v1/servers/virtual/GetServers?Id=1&Cluster=Msc1", status=OK)
    else:
        # /api/v2/... is not in the table: forwarded as it is, nothing added
        assert_forwarded(d, mock, "GET", "/servers/virtual/GetServers?Id=1",
                         "/api/v2/servers/virtual/GetServers?Id=1", status=404)
    # /api/ paths are never rewritten by the shorthand
    assert_forwarded(d, mock, "GET", "/api/v1/vpcs/GetVpcs",
                     "/api/v1/vpcs/GetVpcs?Cluster=Msc1", status=OK)


# ---------------------------------------------------------------------------------------------
# reload
# ---------------------------------------------------------------------------------------------
def test_reload_changes_defaults(mock, start_denvrd):
    d = start_denvrd(defaults=CONFIG)
    p = "/api/v1/servers/virtual/GetServers"
    assert_forwarded(d, mock, "GET", p, p + "?Cluster=Msc1")
    text = d.config_path.read_text()
    assert 'cluster = "Msc1"' in text and "\napi =" not in text
    text = text.replace('cluster = "Msc1"', 'cluster = "Hou1"')
    text = text.replace('vpcid = "vpc-7"\n', "").replace(
        "[defaults]\n", '[defaults]\napi = "v1"\n')
    H.write_private(d.config_path, text)
    n = d.log_text().count("configuration reloaded")
    d.reload()
    wait_until(lambda: d.log_text().count("configuration reloaded") > n, timeout=10,
               what="the reload to finish")
    assert_forwarded(d, mock, "GET", p, p + "?Cluster=Hou1")
    # vpcid removed: namespace falls back to tenant
    assert_forwarded(d, mock, "GET", "/servers/virtual/GetServer?Id=vm-1",
                     "/api/v1/servers/virtual/GetServer?Id=vm-1"
                     "&Namespace=acme-tenant&Cluster=Hou1")
    assert d.running()
