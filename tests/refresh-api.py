#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Keeps the project's copy of Denvr's API reference (tests/denvr-api/) in step with upstream.

  tests/refresh-api.py NEW_OPENAPI.json   copy NEW_OPENAPI.json over denvr-api/openapi.json,
                                          regenerate denvr-api/operations.tsv from it and print
                                          how the operation table changed
  tests/refresh-api.py -n NEW_OPENAPI.json   the same, writing nothing
  tests/refresh-api.py --check            regenerate from the copy in the tree; exit 1 unless
                                          that reproduces operations.tsv byte for byte

operations.tsv is derived from the OpenAPI document:
  * one line per operation (path x method), in the order of the current operations.tsv; a new
    operation goes after the last one in the same service directory (else at the end);
  * query: the operation's "in": "query" parameters (path-level ones first), in document order,
    with "*" when "required": true;
  * body: the properties of the request body's object schema ($ref and allOf resolved), in
    document order, with "*" for those in its "required" list;
  * defaults: every query or body parameter whose name is, ignoring case, cluster (filled from
    [defaults] cluster), namespace, vpc or vpcId (vpcid) or rpool or resourcePool (rpool);
  * then sdk-delta.tsv, the places where the Denvr SDKs' operation list differs from the
    document: "add" an operation the document lacks, "change" the parameters of one it has,
    "drop" one the SDKs do not offer.  After a refresh the script says which of those entries
    the new document has made redundant.
The comment lines at the top of operations.tsv are kept as they are.

Standard library only.  Exit status: 0 done (or --check: identical), 1 differences in --check
or a delta entry that no longer fits, 2 bad usage or an unreadable document.
"""

import argparse
import json
import os
import sys
from pathlib import Path

HEADER = "method\tpath\tquery\tbody\tdefaults"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
# parameter name (lower case) -> the [defaults] key of denvr.toml that fills it
DEFAULT_SOURCES = {
    "cluster": "cluster",
    "namespace": "vpcid", "vpc": "vpcid", "vpcid": "vpcid",
    "rpool": "rpool", "resourcepool": "rpool",
}
DEFAULT_DIR = Path(__file__).resolve().parent / "denvr-api"


class RefreshError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# operations: (method, path) -> {"query": [(name, required)], "body": [...]}
# ---------------------------------------------------------------------------------------------
def _resolve(doc, node, seen=()):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/") or ref in seen:
            raise RefreshError("unsupported or circular $ref %s" % ref)
        seen = seen + (ref,)
        target = doc
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _object_fields(doc, schema):
    """(name, required) of an object schema's properties, allOf members merged in order."""
    schema = _resolve(doc, schema)
    fields = []
    for part in schema.get("allOf", []):
        fields += _object_fields(doc, part)
    required = set(schema.get("required", []))
    for name in schema.get("properties", {}):
        fields.append((name, name in required))
    return fields


def _body_fields(doc, op, where):
    body = op.get("requestBody")
    if not body:
        return []
    content = _resolve(doc, body).get("content", {})
    if not content:
        return []
    media = content.get("application/json") or next(iter(content.values()))
    schema = _resolve(doc, media.get("schema", {}))
    if schema.get("type", "object") != "object":
        raise RefreshError("%s: the request body is a %s, not an object; operations.tsv cannot "
                           "describe it" % (where, schema.get("type")))
    return _object_fields(doc, schema)


def _query_params(doc, item, op, where):
    params = {}
    for p in [_resolve(doc, p) for p in item.get("parameters", []) + op.get("parameters", [])]:
        if p.get("in") == "query":
            params[p["name"]] = bool(p.get("required", False))
        elif p.get("in") in ("path", "header"):
            raise RefreshError("%s: a %s parameter (%s); operations.tsv has no column for it"
                               % (where, p["in"], p["name"]))
    return list(params.items())


def operations_from_openapi(doc):
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
        raise RefreshError("not an OpenAPI document: no \"paths\" object")
    ops = {}
    for path, item in doc["paths"].items():
        item = _resolve(doc, item)
        for method in METHODS:
            if method not in item:
                continue
            where = "%s %s" % (method.upper(), path)
            op = item[method]
            ops[(method.upper(), path)] = {"query": _query_params(doc, item, op, where),
                                           "body": _body_fields(doc, op, where)}
    return ops


def _parse_names(column):
    if column == "-":
        return []
    return [(n[:-1], True) if n.endswith("*") else (n, False) for n in column.split(",")]


def _format_names(names):
    return ",".join(n + ("*" if req else "") for n, req in names) or "-"


def read_delta(path):
    """sdk-delta.tsv: [(change, method, path, params)]."""
    entries = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line or line.startswith("#") or line == "change\t" + HEADER.rsplit("\t", 1)[0]:
            continue
        f = line.split("\t")
        if len(f) != 5 or f[0] not in ("add", "change", "drop"):
            raise RefreshError("%s:%d: expected change (add, change or drop), method, path, "
                               "query, body separated by tabs" % (path, lineno))
        entries.append((f[0], f[1], f[2], {"query": _parse_names(f[3]), "body": _parse_names(f[4])}))
    return entries


def apply_delta(ops, delta):
    """Applies the SDKs' differences to ops in place; returns notes on entries that do not fit."""
    notes = []
    for change, method, path, params in delta:
        key = (method, path)
        name = "%s %s %s" % (change, method, path)
        if change == "drop":
            if key in ops:
                del ops[key]
            else:
                notes.append("%s: the document no longer has it; remove the entry" % name)
        elif change == "add" and key in ops:
            notes.append("%s: the document has it now (%s); make it a change entry or remove it"
                         % (name, "the same" if ops[key] == params else "different"))
            ops[key] = params
        elif change == "change" and key not in ops:
            notes.append("%s: the document does not have it; make it an add entry" % name)
            ops[key] = params
        elif change == "change" and ops[key] == params:
            notes.append("%s: the document agrees now; remove the entry" % name)
        else:
            ops[key] = params
    return notes


def defaults_of(params):
    return [(n, DEFAULT_SOURCES[n.lower()]) for n, _ in params["query"] + params["body"]
            if n.lower() in DEFAULT_SOURCES]


def format_row(key, params):
    d = ",".join("%s=%s" % nd for nd in defaults_of(params)) or "-"
    return "\t".join((key[0], key[1], _format_names(params["query"]),
                      _format_names(params["body"]), d))


# ---------------------------------------------------------------------------------------------
# operations.tsv
# ---------------------------------------------------------------------------------------------
def read_table(path):
    """(preamble lines, {(method, path): params} in file order)."""
    preamble, rows = [], {}
    header = False
    for line in path.read_text().splitlines():
        if not header:
            if line == HEADER:
                header = True
            elif line.startswith("#") or not line:
                preamble.append(line)
            else:
                raise RefreshError("%s: expected the header line %r" % (path, HEADER))
            continue
        if not line or line.startswith("#"):
            continue
        f = line.split("\t")
        if len(f) != 5:
            raise RefreshError("%s: not 5 tab-separated fields: %r" % (path, line))
        rows[(f[0], f[1])] = {"query": _parse_names(f[2]), "body": _parse_names(f[3])}
    if not header:
        raise RefreshError("%s: no header line %r" % (path, HEADER))
    return preamble, rows


def ordered(ops, old_order):
    """Keys of ops: the old file's order, each new one after the last of its directory."""
    keys = [k for k in old_order if k in ops]
    for k in ops:
        if k in keys:
            continue
        directory = k[1].rsplit("/", 1)[0] + "/"
        at = max((i + 1 for i, o in enumerate(keys) if o[1].startswith(directory)), default=len(keys))
        keys.insert(at, k)
    return keys


def render(preamble, ops, old_order):
    lines = preamble + [HEADER] + [format_row(k, ops[k]) for k in ordered(ops, old_order)]
    return "\n".join(lines) + "\n"


def describe_changes(old, new):
    """Human-readable lines: operations added, removed, and changed field by field."""
    out = []
    for k in new:
        if k not in old:
            out.append("+ %s" % format_row(k, new[k]).replace("\t", "  "))
    for k in old:
        if k not in new:
            out.append("- %s" % format_row(k, old[k]).replace("\t", "  "))
    for k in old:
        if k not in new or old[k] == new[k]:
            continue
        parts = []
        for col in ("query", "body"):
            o, n = dict(old[k][col]), dict(new[k][col])
            parts += ["%s +%s%s" % (col, x, "*" if n[x] else "") for x in n if x not in o]
            parts += ["%s -%s" % (col, x) for x in o if x not in n]
            parts += ["%s %s now %s" % (col, x, "required" if n[x] else "optional")
                      for x in n if x in o and o[x] != n[x]]
            if [x for x in n if x in o] != [x for x in o if x in n]:
                parts.append("%s order %s" % (col, _format_names(new[k][col])))
        od, nd = defaults_of(old[k]), defaults_of(new[k])
        if od != nd:
            parts.append("defaults %s (was %s)" % (",".join("%s=%s" % x for x in nd) or "-",
                                                   ",".join("%s=%s" % x for x in od) or "-"))
        out.append("~ %s %s: %s" % (k[0], k[1], "; ".join(parts)))
    return out


# ---------------------------------------------------------------------------------------------
def load_document(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
        return raw, json.loads(raw)
    except (OSError, ValueError) as e:
        raise RefreshError("cannot read the OpenAPI document %s: %s" % (path, e))


def regenerate(api_dir, doc):
    """(new operations.tsv text, old rows, new rows, delta notes)."""
    preamble, old = read_table(api_dir / "operations.tsv")
    ops = operations_from_openapi(doc)
    notes = apply_delta(ops, read_delta(api_dir / "sdk-delta.tsv"))
    return render(preamble, ops, list(old)), old, ops, notes


def write_atomically(path, data):
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def main(argv):
    ap = argparse.ArgumentParser(
        prog="refresh-api.py",
        description="Refresh tests/denvr-api/ from a newer Denvr OpenAPI document and show how "
                    "the operation table changes, or (--check) verify the copy in the tree.")
    ap.add_argument("openapi", nargs="?", help="the newer OpenAPI document (JSON)")
    ap.add_argument("--check", action="store_true",
                    help="regenerate from the copy in the tree and compare; write nothing")
    ap.add_argument("-n", "--dry-run", action="store_true", help="print the changes, write nothing")
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                    help="the reference directory (default: denvr-api beside this script)")
    a = ap.parse_args(argv)
    if a.check == bool(a.openapi):
        ap.error("give either NEW_OPENAPI.json or --check")

    current = a.dir / "operations.tsv"
    try:
        raw, doc = load_document(a.openapi or a.dir / "openapi.json")
        text, old, new, notes = regenerate(a.dir, doc)
    except (RefreshError, OSError) as e:
        print("refresh-api: %s" % e, file=sys.stderr)
        return 2

    changes = describe_changes(old, new)
    for line in changes:
        print(line)
    for n in notes:
        print("sdk-delta.tsv: %s" % n)

    if a.check:
        same = current.read_text() == text
        if same and not notes:
            print("refresh-api: %s reproduces %s (%d operations)" % (a.dir / "openapi.json",
                                                                   current, len(new)))
            return 0
        if not same and not changes:
            print("refresh-api: %s differs from what openapi.json and sdk-delta.tsv give in "
                  "order or layout only" % current)
        print("refresh-api: %s is not what %s and sdk-delta.tsv give; run tests/refresh-api.py "
              "on the document it came from" % (current, a.dir / "openapi.json"), file=sys.stderr)
        return 1

    print("operation table: %d operations (was %d): %d added, %d removed, %d changed"
          % (len(new), len(old), sum(k not in old for k in new), sum(k not in new for k in old),
             sum(k in new and old[k] != new[k] for k in old)))
    if a.dry_run:
        return 0
    write_atomically(a.dir / "openapi.json", raw)
    write_atomically(current, text.encode())
    if changes:
        print("wrote %s and %s; now bring common/api/operations.table (test optable-drift) and "
              "OPERATIONS in tests/mock_denvr.py (test_mock.py) in step, and say in %s which "
              "document this is" % (a.dir / "openapi.json", current, a.dir / "README.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
