# SPDX-License-Identifier: MIT
"""tests/refresh-api.py: the project's copy of Denvr's API reference and its refresh.

The copy in the tree must be what the tool derives from it (the meson test denvr-api checks
that too); a newer document, made here from the current one with known edits, must give the
expected table diff, file and notes about sdk-delta.tsv.
"""

import copy
import json
import shutil
import subprocess
import sys

import denvrd_harness as H

TOOL = H.TESTS_DIR / "refresh-api.py"


def run(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True,
                          text=True, timeout=60)


def body_schema(name):
    return {"requestBody": {"content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/%s" % name}}}}}


def test_check_reproduces_the_table_in_the_tree(api_dir):
    r = run("--check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "reproduces" in r.stdout and "(35 operations)" in r.stdout
    assert r.stdout.count("\n") == 1, r.stdout   # no changes, no notes


def newer_document(api_dir):
    doc = json.loads((api_dir / "openapi.json").read_text())
    new = copy.deepcopy(doc)
    paths, schemas = new["paths"], new["components"]["schemas"]
    # removed
    del paths["/api/v1/vpcs/DestroyVpc"]
    # changed: Cluster now required, a new optional Limit
    get_hosts = paths["/api/v1/servers/metal/GetHosts"]["get"]
    get_hosts["parameters"][0]["required"] = True
    get_hosts["parameters"].append({"name": "Limit", "in": "query", "schema": {"type": "integer"}})
    # added: a new operation, body through $ref and allOf, path-level parameter ignored as none
    schemas["PowerOffHostInput"] = {"allOf": [{"$ref": "#/components/schemas/ApiCommandInput"}],
                                    "properties": {"force": {"type": "boolean"}}}
    paths["/api/v1/servers/metal/PowerOffHost"] = {"post": body_schema("PowerOffHostInput")}
    # added as the SDKs already have it: sdk-delta.tsv's "add" entry becomes redundant
    schemas["ReprovisionInput"] = {"type": "object", "required": ["cluster", "id"], "properties": {
        n: {"type": "string"} for n in ("id", "cluster", "imageUrl", "imageChecksum", "cloudInitBase64")}}
    paths["/api/v1/servers/metal/ReprovisionHost"] = {"post": body_schema("ReprovisionInput")}
    return new


def test_refresh_from_a_newer_document(api_dir, tmp_path):
    work = tmp_path / "denvr-api"
    shutil.copytree(api_dir, work)
    newer = tmp_path / "openapi-newer.json"
    newer.write_text(json.dumps(newer_document(api_dir), indent=2))
    before = (work / "operations.tsv").read_text()

    # -n: the diff, nothing written
    r = run("-n", newer, "--dir", work)
    assert r.returncode == 0, r.stderr
    assert (work / "operations.tsv").read_text() == before
    assert (work / "openapi.json").read_bytes() == (api_dir / "openapi.json").read_bytes()
    dry = r.stdout

    r = run(newer, "--dir", work)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(dry)
    lines = r.stdout.splitlines()
    assert "+ POST  /api/v1/servers/metal/PowerOffHost  -  id*,cluster*,force  cluster=cluster" in lines
    assert "- DELETE  /api/v1/vpcs/DestroyVpc  Id*,Cluster*  -  Cluster=cluster" in lines
    assert ("~ GET /api/v1/servers/metal/GetHosts: query +Limit; query Cluster now required"
            in lines)
    assert ("sdk-delta.tsv: add POST /api/v1/servers/metal/ReprovisionHost: the document has it "
            "now (the same); make it a change entry or remove it") in lines
    assert ("operation table: 35 operations (was 35): 1 added, 1 removed, 1 changed"
            in lines), r.stdout
    assert len([ln for ln in lines if ln[:2] in ("+ ", "- ", "~ ")]) == 3, r.stdout

    # the files: the document byte for byte, the table in the old order plus the new line
    assert (work / "openapi.json").read_bytes() == newer.read_bytes()
    after = (work / "operations.tsv").read_text().splitlines()
    old = before.splitlines()
    assert after[:4] == old[:4]     # comments and header kept
    gone = [ln for ln in old if "/DestroyVpc\t" in ln]
    assert len(gone) == 1 and gone[0] not in after
    rows = [ln.split("\t")[1] for ln in after[4:]]
    assert rows.index("/api/v1/servers/metal/PowerOffHost") == \
        rows.index("/api/v1/servers/metal/RemoveHostVpc") + 1
    assert "GET\t/api/v1/servers/metal/GetHosts\tCluster*,Limit\t-\tCluster=cluster" in after
    unchanged = [ln for ln in old if "/DestroyVpc\t" not in ln and "/GetHosts\t" not in ln]
    assert [ln for ln in after if ln in unchanged] == unchanged

    # --check now fails, because of the stale sdk-delta.tsv entry
    r = run("--check", "--dir", work)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "ReprovisionHost: the document has it now" in r.stdout


def test_check_fails_on_a_hand_edited_table(api_dir, tmp_path):
    work = tmp_path / "denvr-api"
    shutil.copytree(api_dir, work)
    tsv = work / "operations.tsv"
    tsv.write_text(tsv.read_text().replace("Id*,Cluster*,Limit\t", "Id*,Cluster*\t"))
    r = run("--check", "--dir", work)
    assert r.returncode == 1
    assert "~ GET /api/v1/servers/applications/GetApplicationRuntimeLogs: query +Limit" in r.stdout


def test_bad_document_is_refused(api_dir, tmp_path):
    work = tmp_path / "denvr-api"
    shutil.copytree(api_dir, work)
    bad = tmp_path / "bad.json"
    bad.write_text('{"openapi": "3.0.1", "paths": ')
    r = run(bad, "--dir", work)
    assert r.returncode == 2
    assert "cannot read the OpenAPI document" in r.stderr
    bad.write_text('{"openapi": "3.0.1"}')
    r = run(bad, "--dir", work)
    assert r.returncode == 2 and 'no "paths" object' in r.stderr
    assert (work / "openapi.json").read_bytes() == (api_dir / "openapi.json").read_bytes()
    r = run()
    assert r.returncode == 2
