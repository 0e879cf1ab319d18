#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A faithful mock of the Denvr Cloud REST API, for testing denvrd.

Python 3.11 standard library only.  Serves HTTP or HTTPS on loopback:

  * the login protocol: POST /api/TokenAuth/Authenticate, /api/TokenAuth/RefreshToken
    (POST or GET), GET /api/TokenAuth/LogOut, with configurable token lifetimes;
  * every /api/v1 operation the Denvr SDKs know (the table OPERATIONS below), each answering
    realistic data in the ASP.NET Boilerplate (ABP) envelope, with ABP's 400 validation error
    when a required parameter is missing and a 401 envelope without valid credentials
    (`Authorization: Bearer <access token>` or `Authorization: ApiKey <key>`);
  * a control API under /_mock/ (no authentication) to inspect every request received and to
    inject faults (see CONTROL API below).

Error choices (documented, as ABP does them):
  * wrong user name or password: HTTP 500, error.message "Login failed!",
    error.details "Invalid user name or password" (ABP's UserFriendlyException).
  * refresh with an unknown refresh token: HTTP 400 "Refresh token is not valid!";
    with an expired or revoked one: HTTP 401 with unAuthorizedRequest true.
  * missing/invalid/expired credentials on /api/v1: HTTP 401, unAuthorizedRequest true.
  * unknown path: 404 with an empty body (as ASP.NET Core); known path, wrong method:
    405 with an empty body and an Allow header.  HEAD is answered like GET without a body.

The log (stderr) has one line per request with method, path WITHOUT query, status and
fault; never headers, bodies, queries, tokens or passwords.

CLI:  mock_denvr.py [--host 127.0.0.1|::1] [--port 0] [--tls --certdir DIR [--untrusted]]
                    [--apikey KEY] [--user USER] [--password PASS]
                    [--access-lifetime SEC] [--refresh-lifetime SEC] [--token-log FILE]
Prints "PORT <n>" on stdout once listening.  With --tls, DIR gets (if absent) ca.pem/ca.key
(a test CA), server.pem/server.key (signed by it, for 127.0.0.1, ::1 and localhost) and,
with --untrusted, untrusted.pem/untrusted.key (self-signed, same names) which is then served.

CONTROL API (JSON in and out):
  GET  /_mock/requests[?since=SEQ&path=PREFIX]  every recorded (non-control) request; each
                               has t_start (headers read) and t_end (answer complete, about to
                               be written; None when dropped), both time.monotonic(), which is
                               CLOCK_MONOTONIC: comparable with other processes' clocks
  POST /_mock/reset            clear records, knobs, stats; restore the startup config
  GET  /_mock/stats            counters
  GET  /_mock/tokens           every token ever issued, and every secret ever configured
  POST /_mock/expire_tokens    expire every access and refresh token now
  POST /_mock/advance_clock {seconds}  the upstream's view of a client's suspend: every
                               token issued so far is `seconds` older (expires that much sooner)
  GET|POST /_mock/config       {access_lifetime, refresh_lifetime, apikey, user, password,
                                refresh_post_405, refresh_post_status}
  POST /_mock/fail    {count, status, retry_after, body, body_b64, size, content_type, headers}
  POST /_mock/respond (alias of fail: a canned answer for the next N matching requests)
  POST /_mock/delay   {count, seconds, phase: "before_response"|"mid_body"}
  POST /_mock/drop    {count, mode: "before_response"|"reset"|"mid_body"|"tls_corrupt"}
  POST /_mock/garbage {count}
  POST /_mock/reject_logins {mode: "password"|"two_factor"|"reset_password"|"off"}
  POST /_mock/chaos   {enabled, seed, rate, tls_rate}  random faults on /api/v1/ requests:
                       with probability rate a delay (0.05-2 s, before the answer or in the
                       middle of its body), a 500/502/503/504, a reset, a drop mid-body or
                       before the answer, garbage, or a corrupt TLS record; with probability
                       tls_rate (default 0: off) a NEW connection's TLS handshake is dropped
                       (RST at once, or FIN after reading the ClientHello). Handshake drops
                       hit any client, the control API included: a test that turns them on
                       retries its own control calls and uses a mock of its own.
  POST /_mock/close_idle {rst: bool}  close every kept-alive connection waiting for a request
                       (the upstream dropping pooled connections: a proxy's next request on
                       one fails before any byte of it is answered)
  GET  /_mock/ping
  GET  /_mock/acted[?since=SEQ]  what each /api/v1 operation acted on, as ASP.NET would have
                               bound it (see MODEL BINDING): {seq, method, op (the table's
                               path), id, namespace, cluster, status, bound (the bound query
                               names, folded to upper case, or the JSON body), request {path,
                               headers, body (base64)}}; cleared by reset
  POST /_mock/clear_acted      clear that list only
  GET  /_mock/vms              the virtual machines in transition (see VM STATES), each with its
                               from/to status, "at" (time.monotonic() of the change) and the
                               number of GetServer polls it answered
VM STATES: StartServer, StopServer and DestroyServer put the VM (by cluster and id) in
STARTING, STOPPING or DELETING; transition_seconds later (a /_mock/config key, default 3)
GetServer says ONLINE, OFFLINE, or for a destroyed VM answers 404 with ABP's "There is no such
an entity" envelope.  VMs never touched answer ONLINE as before.  Each GetServer record has
"vm_status" (the status answered, "gone" for the 404).  GetServers lists its VMs the same way:
one in transition with its from-status, a started one ONLINE, a stopped one OFFLINE, a
destroyed one not at all (listing does not count as a GetServer poll).
MODEL BINDING, as ASP.NET Core with ABP does it: a query operation's `input` binds from the
form fields (when the Content-Type is application/x-www-form-urlencoded or multipart/form-data,
whatever the method), then the query; names match case-insensitively (.NET OrdinalIgnoreCase);
the first value wins; when any name starts with "input." only those bind (prefix stripped);
"name[...]" binds name.  A body operation's input is [FromBody]: a Content-Type other than
JSON (application/json, text/json, application/*+json) is a 415 (no Content-Type is read as
JSON); property names are case-insensitive, a duplicate's last value wins; a non-object body or
a non-string id/namespace/cluster is ABP's 400.  The operation acts on the values so bound.
Fault knobs (fail/respond/delay/drop/garbage) take count (-1 = until reset), and the filters
path (a prefix of the path), query (a substring of the raw query), method, exclude_auth (skip
/api/TokenAuth/).  They apply to
/api/ requests only, never to /_mock/.
"""

import argparse
import base64
import email.parser
import email.policy
import hashlib
import http.server
import json
import os
import random
import secrets
import select
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

DEFAULT_USER = "alice@example.com"
DEFAULT_PASSWORD = "Mock-Pw#denvrd-7f3c9e!q"
DEFAULT_APIKEY = "dvr-mockkey-5b2f0c9e7a1d4e38b6c1a9f04d7e2c55"
DEFAULT_ACCESS_LIFETIME = 86400          # ABP's default: one day
DEFAULT_REFRESH_LIFETIME = 365 * 86400   # ABP's default: one year
TENANT = "denvr-test"

# ---------------------------------------------------------------------------------------------
# The operations the Denvr SDKs know (late 2025).  method, path, query params, body fields,
# defaults; a trailing * marks a required parameter.  tests/integration/test_mock.py checks this
# table against tests/denvr-api/operations.tsv.
# ---------------------------------------------------------------------------------------------
OPERATIONS = [
    ("GET", "/api/v1/clusters/GetAll", "", "", ""),
    ("GET", "/api/v1/servers/images/GetOperatingSystemImages", "", "", ""),
    ("GET", "/api/v1/servers/virtual/GetServers", "Cluster", "", "Cluster=cluster"),
    ("GET", "/api/v1/servers/virtual/GetServer", "Id*,Namespace*,Cluster*", "",
     "Namespace=vpcid,Cluster=cluster"),
    ("POST", "/api/v1/servers/virtual/CreateServer", "",
     "name,rpool,vpc*,configuration*,cluster*,ssh_keys*,snapshotName,operatingSystemImage,"
     "personalStorageMountPath,tenantSharedAdditionalStorage,persistStorage,"
     "directStorageMountPath,rootDiskSize,selectedNode",
     "rpool=rpool,vpc=vpcid,cluster=cluster"),
    ("POST", "/api/v1/servers/virtual/StartServer", "", "id*,namespace*,cluster*",
     "namespace=vpcid,cluster=cluster"),
    ("POST", "/api/v1/servers/virtual/StopServer", "", "id*,namespace*,cluster*",
     "namespace=vpcid,cluster=cluster"),
    ("DELETE", "/api/v1/servers/virtual/DestroyServer", "DeleteSnapshots,Id*,Namespace*,Cluster*",
     "", "Namespace=vpcid,Cluster=cluster"),
    ("GET", "/api/v1/servers/virtual/GetConfigurations", "", "", ""),
    ("GET", "/api/v1/servers/virtual/GetAvailability", "cluster*,resourcePool,reportNodes", "",
     "cluster=cluster,resourcePool=rpool"),
    ("GET", "/api/v1/servers/virtual/GetVirtualMachineBootLogs", "Id*,Namespace*,Cluster*,Limit",
     "", "Namespace=vpcid,Cluster=cluster"),
    ("GET", "/api/v1/servers/applications/GetApplications", "", "", ""),
    ("GET", "/api/v1/servers/applications/GetApplicationDetails", "Id*,Cluster*", "",
     "Cluster=cluster"),
    ("GET", "/api/v1/servers/applications/GetApplicationRuntimeLogs", "Id*,Cluster*,Limit", "",
     "Cluster=cluster"),
    ("GET", "/api/v1/servers/applications/GetConfigurations", "", "", ""),
    ("GET", "/api/v1/servers/applications/GetAvailability", "cluster*,resourcePool*", "",
     "cluster=cluster,resourcePool=rpool"),
    ("GET", "/api/v1/servers/applications/GetApplicationCatalogItems", "", "", ""),
    ("POST", "/api/v1/servers/applications/CreateCatalogApplication", "",
     "name*,cluster*,hardwarePackageName*,applicationCatalogItemName*,"
     "applicationCatalogItemVersion*,resourcePool,sshKeys,persistDirectAttachedStorage,"
     "personalSharedStorage,tenantSharedStorage,selectedNode,jupyterToken,startupCommands,"
     "environmentVariables,proxyPort,proxyApiKeys",
     "cluster=cluster,resourcePool=rpool"),
    ("POST", "/api/v1/servers/applications/CreateCustomApplication", "",
     "name*,cluster*,hardwarePackageName*,imageUrl*,imageCmdOverride,environmentVariables,"
     "imageRepository,resourcePool,readinessWatcherPort,proxyPort,proxyApiKeys,"
     "persistDirectAttachedStorage,personalSharedStorage,tenantSharedStorage,selectedNode,"
     "userScripts,securityContext",
     "cluster=cluster,resourcePool=rpool"),
    ("POST", "/api/v1/servers/applications/StartApplication", "", "id*,cluster*",
     "cluster=cluster"),
    ("POST", "/api/v1/servers/applications/StopApplication", "", "id*,cluster*",
     "cluster=cluster"),
    ("DELETE", "/api/v1/servers/applications/DestroyApplication", "Id*,Cluster*", "",
     "Cluster=cluster"),
    ("GET", "/api/v1/servers/metal/GetHosts", "Cluster", "", "Cluster=cluster"),
    ("GET", "/api/v1/servers/metal/GetHost", "Id*,Cluster*", "", "Cluster=cluster"),
    ("POST", "/api/v1/servers/metal/RebootHost", "", "id*,cluster*", "cluster=cluster"),
    ("POST", "/api/v1/servers/metal/ReprovisionHost", "",
     "id*,cluster*,imageUrl,imageChecksum,cloudInitBase64", "cluster=cluster"),
    ("POST", "/api/v1/servers/metal/AddHostVpc", "", "id*,cluster*,vpcId*",
     "cluster=cluster,vpcId=vpcid"),
    ("POST", "/api/v1/servers/metal/RemoveHostVpc", "", "id*,cluster*,vpcId*",
     "cluster=cluster,vpcId=vpcid"),
    ("GET", "/api/v1/vpcs/GetVpcs", "Cluster", "", "Cluster=cluster"),
    ("GET", "/api/v1/vpcs/GetVpc", "Id*,Cluster*", "", "Cluster=cluster"),
    ("POST", "/api/v1/vpcs/CreateVpc", "", "id*,cluster*", "cluster=cluster"),
    ("DELETE", "/api/v1/vpcs/DestroyVpc", "Id*,Cluster*", "", "Cluster=cluster"),
    ("POST", "/api/TokenAuth/Authenticate", "",
     "userNameOrEmailAddress*,password*,twoFactorVerificationCode,rememberClient", ""),
    ("POST", "/api/TokenAuth/RefreshToken", "refreshToken", "", ""),
    ("GET", "/api/TokenAuth/LogOut", "", "", ""),
]

AUTH_PREFIX = "/api/TokenAuth/"
ECHO_PATH = "/api/v1/mock/Echo"   # not a Denvr path: echoes any method (auth required)


def _params(spec):
    """'Id*,Cluster' -> [("Id", True), ("Cluster", False)]"""
    out = []
    for p in spec.split(","):
        p = p.strip()
        if p and p != "-":
            out.append((p.rstrip("*"), p.endswith("*")))
    return out


OPS_BY_PATH = {}
for _m, _p, _q, _b, _d in OPERATIONS:
    OPS_BY_PATH.setdefault(_p.lower(), {})[_m] = {
        "method": _m, "path": _p, "query": _params(_q), "body": _params(_b)}
# The Python SDK refreshes with GET although the spec says POST; the real upstream takes both.
_rt = OPS_BY_PATH["/api/tokenauth/refreshtoken"]
_rt["GET"] = _rt["POST"]


# ---------------------------------------------------------------------------------------------
# Certificates
# ---------------------------------------------------------------------------------------------
def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, check=False)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr.decode(errors="replace")))


_SAN = "subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost\n"


def ensure_certs(certdir, untrusted=False):
    """Create ca.pem/ca.key, server.pem/server.key (and untrusted.pem/key) in certdir if absent.
    Safe against concurrent callers (a lock file, and files renamed into place)."""
    import fcntl
    os.makedirs(certdir, exist_ok=True)
    with open(os.path.join(certdir, ".lock"), "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        need = ["ca.pem", "ca.key", "server.pem", "server.key"]
        if untrusted:
            need += ["untrusted.pem", "untrusted.key"]
        if all(os.path.exists(os.path.join(certdir, n)) for n in need):
            return
        with tempfile.TemporaryDirectory(dir=certdir) as work:
            with open(os.path.join(work, "ca.cnf"), "w") as f:
                f.write("[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = ext\n"
                        "[dn]\nCN = denvrd test CA\nO = denvrd tests\n"
                        "[ext]\nbasicConstraints = critical, CA:TRUE\n"
                        "keyUsage = critical, keyCertSign, cRLSign\n"
                        "subjectKeyIdentifier = hash\n")
            with open(os.path.join(work, "server.cnf"), "w") as f:
                f.write("[req]\ndistinguished_name = dn\nprompt = no\n"
                        "[dn]\nCN = localhost\nO = denvrd tests\n")
            with open(os.path.join(work, "server.ext"), "w") as f:
                f.write("basicConstraints = critical, CA:FALSE\n"
                        "keyUsage = critical, digitalSignature, keyEncipherment\n"
                        "extendedKeyUsage = serverAuth\n"
                        "subjectKeyIdentifier = hash\n"
                        "authorityKeyIdentifier = keyid:always\n" + _SAN)
            with open(os.path.join(work, "untrusted.cnf"), "w") as f:
                f.write("[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = ext\n"
                        "[dn]\nCN = localhost\nO = untrusted self-signed\n"
                        "[ext]\nbasicConstraints = critical, CA:FALSE\n"
                        "keyUsage = critical, digitalSignature, keyEncipherment\n"
                        "extendedKeyUsage = serverAuth\nsubjectKeyIdentifier = hash\n" + _SAN)
            ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
            made = []
            if not all(os.path.exists(os.path.join(certdir, n)) for n in
                       ("ca.pem", "ca.key", "server.pem", "server.key")):
                _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem",
                         "-days", "3650", "-config", "ca.cnf", cwd=work)
                _openssl("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr",
                         "-config", "server.cnf", cwd=work)
                _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                         "-CAcreateserial", "-out", "server.pem", "-days", "825",
                         "-extfile", "server.ext", cwd=work)
                made += ["ca.key", "server.key", "server.pem", "ca.pem"]
            if untrusted and not all(os.path.exists(os.path.join(certdir, n)) for n in
                                     ("untrusted.pem", "untrusted.key")):
                _openssl("req", "-x509", *ec, "-keyout", "untrusted.key", "-out",
                         "untrusted.pem", "-days", "825", "-config", "untrusted.cnf", cwd=work)
                made += ["untrusted.key", "untrusted.pem"]
            for n in made:   # ca.pem last: its presence means the set is complete
                os.chmod(os.path.join(work, n), 0o600 if n.endswith(".key") else 0o644)
                os.replace(os.path.join(work, n), os.path.join(certdir, n))


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def envelope(result=None, success=True, error=None, unauthorized=False):
    return {"result": result, "targetUrl": None, "success": success, "error": error,
            "unAuthorizedRequest": unauthorized, "__abp": True}


def error_envelope(message, details=None, validation=None, unauthorized=False, code=0):
    return envelope(None, False, {"code": code, "message": message, "details": details,
                                  "validationErrors": validation}, unauthorized)


def validation_envelope(missing_names):
    msgs = ["The %s field is required." % (n[:1].upper() + n[1:]) for n in missing_names]
    details = "The following errors were detected during validation.\r\n" + "".join(
        " - %s\r\n" % m for m in msgs)
    return error_envelope("Your request is not valid!", details,
                          [{"message": m, "members": [n[:1].lower() + n[1:]]}
                           for m, n in zip(msgs, missing_names)])


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_jwt(kind, user, lifetime):
    """A JWT-shaped random token; the signature part is random and unique."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    now = int(time.time())
    payload = _b64url(json.dumps({
        "sub": "2", "name": user, "jti": secrets.token_hex(16), "token_type": kind,
        "iat": now, "nbf": now, "exp": now + int(lifetime), "iss": "DenvrDashboard",
        "aud": "DenvrDashboard"}, separators=(",", ":")).encode())
    return "%s.%s.%s" % (header, payload, _b64url(secrets.token_bytes(32)))


def _truthy(v):
    return str(v).strip().lower() in ("1", "true", "yes", "on")


def _stable_int(*parts, mod=1000):
    h = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:4], "big") % mod


# ---------------------------------------------------------------------------------------------
# Realistic data
# ---------------------------------------------------------------------------------------------
CLUSTERS = ["Msc1", "Hou1"]


def server_item(user, sid, namespace=TENANT, cluster="Msc1", status="ONLINE",
                configuration="A100_40GB_PCIe_1x", rpool="on-demand"):
    n = _stable_int(sid, cluster, mod=200)
    gpus = 8 if "8x" in configuration else (0 if configuration.startswith("CPU") else 1)
    return {
        "username": user, "tenancy_name": TENANT, "rpool": rpool,
        "directAttachedStoragePersisted": False, "id": sid, "namespace": namespace,
        "configuration": configuration, "storage": 1700 if gpus else 200,
        "gpu_type": "nvidia.com/A100PCIE40GB" if gpus else "", "gpus": gpus,
        "vcpus": 14 * max(gpus, 1), "memory": 112 * max(gpus, 1),
        "ip": "130.250.171.%d" % (10 + n % 200),
        "privateIp": "172.16.%d.%d" % (n % 8, 10 + n % 200),
        "image": "Ubuntu_22.04.4_LTS", "cluster": cluster, "status": status,
        "storageType": "local"}


SERVER_CONFIGS = [
    {"id": 1, "user_friendly_name": "A100 40GB PCIe x1", "name": "A100_40GB_PCIe_1x",
     "description": "1x NVIDIA A100 40GB PCIe, 14 vCPU, 112 GiB", "os_version": "22.04",
     "os_type": "Ubuntu", "storage": 1700, "gpu_type": "nvidia.com/A100PCIE40GB",
     "gpu_family": "A100", "gpu_brand": "NVIDIA", "gpu_name": "A100 40GB PCIe", "type": "gpu",
     "brand_family": "NVIDIA A100", "brand": "NVIDIA", "text_name": "A100 40GB PCIe x1",
     "gpus": 1, "vcpus": 14, "memory": 112, "price": 1.3, "compute_network": "ethernet",
     "is_gpu_platform": True, "clusters": ["Msc1", "Hou1"]},
    {"id": 2, "user_friendly_name": "A100 40GB PCIe x8", "name": "A100_40GB_PCIe_8x",
     "description": "8x NVIDIA A100 40GB PCIe, 112 vCPU, 896 GiB", "os_version": "22.04",
     "os_type": "Ubuntu", "storage": 13600, "gpu_type": "nvidia.com/A100PCIE40GB",
     "gpu_family": "A100", "gpu_brand": "NVIDIA", "gpu_name": "A100 40GB PCIe", "type": "gpu",
     "brand_family": "NVIDIA A100", "brand": "NVIDIA", "text_name": "A100 40GB PCIe x8",
     "gpus": 8, "vcpus": 112, "memory": 896, "price": 10.4, "compute_network": "ethernet",
     "is_gpu_platform": True, "clusters": ["Msc1"]},
    {"id": 3, "user_friendly_name": "H100 80GB SXM x8", "name": "H100_80GB_SXM_8x",
     "description": "8x NVIDIA H100 80GB SXM5, 208 vCPU, 1800 GiB", "os_version": "22.04",
     "os_type": "Ubuntu", "storage": 28000, "gpu_type": "nvidia.com/H100SXM80GB",
     "gpu_family": "H100", "gpu_brand": "NVIDIA", "gpu_name": "H100 80GB SXM5", "type": "gpu",
     "brand_family": "NVIDIA H100", "brand": "NVIDIA", "text_name": "H100 80GB SXM x8",
     "gpus": 8, "vcpus": 208, "memory": 1800, "price": 23.92, "compute_network": "infiniband",
     "is_gpu_platform": True, "clusters": ["Hou1"]},
    {"id": 4, "user_friendly_name": "CPU x8", "name": "CPU_8x",
     "description": "8 vCPU, 32 GiB", "os_version": "22.04", "os_type": "Ubuntu",
     "storage": 200, "gpu_type": "", "gpu_family": "", "gpu_brand": "", "gpu_name": "",
     "type": "cpu", "brand_family": "AMD EPYC", "brand": "AMD", "text_name": "CPU x8",
     "gpus": 0, "vcpus": 8, "memory": 32, "price": 0.25, "compute_network": "ethernet",
     "is_gpu_platform": False, "clusters": ["Msc1", "Hou1"]},
]

HARDWARE_PACKAGES = [
    {"name": "g-nvidia-1xa100-40gb-pcie-14vcpu-112gb", "displayName": "1x A100 40GB PCIe",
     "description": "1x NVIDIA A100 40GB PCIe, 14 vCPU, 112 GB RAM",
     "logoUrl": "https://cdn.denvrdata.com/logos/nvidia.svg", "gpuCount": 1,
     "gpuType": "nvidia.com/A100PCIE40GB", "gpuBrand": "NVIDIA", "gpuName": "A100 40GB PCIe",
     "vcpusCount": 14, "memoryByte": 120259084288, "operatingSystemStorageSize": 100,
     "operatingSystemStorageUnit": "GB", "directAttachedStorageSize": 1700,
     "directAttachedStorageUnit": "GB", "pricePerHour": 1.3, "deploymentJson": None,
     "available": True, "availableCount": 12, "maxCount": 64, "id": 11},
    {"name": "g-nvidia-8xh100-80gb-sxm-208vcpu-1800gb", "displayName": "8x H100 80GB SXM",
     "description": "8x NVIDIA H100 80GB SXM5, 208 vCPU, 1800 GB RAM",
     "logoUrl": "https://cdn.denvrdata.com/logos/nvidia.svg", "gpuCount": 8,
     "gpuType": "nvidia.com/H100SXM80GB", "gpuBrand": "NVIDIA", "gpuName": "H100 80GB SXM5",
     "vcpusCount": 208, "memoryByte": 1932735283200, "operatingSystemStorageSize": 200,
     "operatingSystemStorageUnit": "GB", "directAttachedStorageSize": 28000,
     "directAttachedStorageUnit": "GB", "pricePerHour": 23.92, "deploymentJson": None,
     "available": False, "availableCount": 0, "maxCount": 8, "id": 12},
]

CATALOG = [
    {"name": "jupyter-notebook",
     "applicationSourceDetailsUrl": "https://hub.docker.com/r/jupyter/base-notebook",
     "versions": [
         {"name": "python-3.11", "imageUrl": "docker.io/jupyter/base-notebook:python-3.11",
          "imageLastPushDate": "2025-03-02T10:11:12Z", "platform": "linux/amd64",
          "launchType": "web", "releaseNotesUrl": "https://jupyter.org/releases"}]},
    {"name": "vllm", "applicationSourceDetailsUrl": "https://github.com/vllm-project/vllm",
     "versions": [
         {"name": "v0.8.4", "imageUrl": "docker.io/vllm/vllm-openai:v0.8.4",
          "imageLastPushDate": "2025-04-15T08:00:00Z", "platform": "linux/amd64",
          "launchType": "api",
          "releaseNotesUrl": "https://github.com/vllm-project/vllm/releases"}]},
    {"name": "ollama", "applicationSourceDetailsUrl": "https://ollama.com",
     "versions": [
         {"name": "0.6.5", "imageUrl": "docker.io/ollama/ollama:0.6.5",
          "imageLastPushDate": "2025-04-10T12:00:00Z", "platform": "linux/amd64",
          "launchType": "api", "releaseNotesUrl": "https://github.com/ollama/ollama/releases"}]},
]

OS_IMAGES = [
    {"id": 1, "name": "Ubuntu_22.04.4_LTS", "distribution": "Ubuntu", "version": "22.04.4"},
    {"id": 2, "name": "Ubuntu_24.04.1_LTS", "distribution": "Ubuntu", "version": "24.04.1"},
    {"id": 3, "name": "Rocky_Linux_9.4", "distribution": "Rocky Linux", "version": "9.4"},
]


def host_item(user, hid, cluster="Msc1", vpc=None, status="ONLINE"):
    n = _stable_int(hid, cluster, mod=200)
    return {"id": hid, "cluster": cluster, "hostType": "baremetal", "username": user,
            "tenancyName": TENANT, "gpuType": "nvidia.com/H100SXM80GB", "gpus": 8,
            "vcpus": 208, "vcpuType": "Intel Xeon Platinum 8480+", "memory": 2048,
            "ip": "130.250.172.%d" % (10 + n), "privateIp": "10.10.0.%d" % (10 + n),
            "imageId": "img-ubuntu-2204", "image": "Ubuntu_22.04.4_LTS", "storage": 30000,
            "storageClass": "nvme", "vpcId": vpc if vpc is not None else TENANT,
            "reservation": "res-%s-2025" % TENANT, "reservationExpiry": "2026-06-30T00:00:00Z",
            "status": status}


def vpc_item(vid, cluster="Msc1", name=None, default=False):
    n = _stable_int(vid, cluster, mod=200)
    return {"id": vid, "name": name or vid, "cluster": cluster, "tenancyName": TENANT,
            "ipRange": "10.%d.0.0/16" % (n % 250), "createdAt": "2025-01-15T09:30:00Z",
            "blockIntraVpcComms": False, "isDefault": default}


def app_instance(user, aid, cluster="Msc1", status="ONLINE", rpool="on-demand"):
    n = _stable_int(aid, cluster, mod=200)
    return {"id": aid, "cluster": cluster, "status": status,
            "privateIp": "172.20.0.%d" % (10 + n), "publicIp": "130.250.173.%d" % (10 + n),
            "createdBy": user, "tenant": TENANT, "resourcePool": rpool,
            "creationTime": "2025-04-01T12:00:00Z", "lastUpdated": "2025-04-01T12:05:00Z",
            "dns": "%s.%s.apps.%s.denvrdata.com" % (aid, TENANT, cluster.lower()),
            "persistedDirectAttachedStorage": False, "personalSharedStorage": True,
            "tenantSharedStorage": False}


def app_details(user, aid, cluster="Msc1", status="ONLINE", hw=None, catalog=None,
                image_url=None, rpool="on-demand", kind="catalog"):
    inst = app_instance(user, aid, cluster, status, rpool)
    hwp = dict(HARDWARE_PACKAGES[0])
    if hw:
        hwp["name"] = hw
    cat = {"name": catalog or "jupyter-notebook", "applicationSourceDetailsUrl":
           "https://hub.docker.com/r/jupyter/base-notebook"}
    return {"name": aid, "cluster": cluster, "status": status, "privateIp": inst["privateIp"],
            "publicIp": inst["publicIp"], "createdBy": user, "tenant": TENANT,
            "resourcePool": rpool, "applicationCatalogItem": cat, "hardwarePackage": hwp,
            "imageUrl": image_url or "docker.io/jupyter/base-notebook:python-3.11",
            "creationTime": inst["creationTime"], "lastUpdated": inst["lastUpdated"],
            "imageRepositoryHostname": None, "imageRepositoryUsername": None,
            "imageRepositoryPassword": None, "sshUsername": "ubuntu", "sshKeys": [],
            "commandOverride": None, "ports": [8888], "environmentVariables": {},
            "dns": inst["dns"], "createdByTenantId": "17", "createdByUserId": "2",
            "applicationCatalogItemType": kind, "readinessWatcherPort": "8888",
            "persistedDirectAttachedStorage": False, "personalSharedStorage": True,
            "tenantSharedStorage": False}


def log_lines(kind, ident, limit):
    base = ([
        "[    0.000000] Linux version 5.15.0-131-generic (buildd@lcy02-amd64-010)",
        "[    0.412311] PCI: Using configuration type 1 for base access",
        "[    2.118402] nvidia: module license 'NVIDIA' taints kernel.",
        "[    4.902113] cloud-init[812]: Cloud-init v. 24.4 running 'init'",
        "[    6.003201] systemd[1]: Reached target Multi-User System.",
        "[    6.204899] %s login: " % ident,
    ] if kind == "boot" else [
        "%s: starting container" % ident,
        "%s: [I 12:00:01.123 ServerApp] Jupyter Server 2.14.2 is running" % ident,
        "%s: [I 12:00:01.124 ServerApp] http://0.0.0.0:8888/lab" % ident,
        "%s: readiness probe succeeded" % ident,
    ])
    lines = [base[i % len(base)] for i in range(max(limit, 0))]
    return lines


def _q(query, name, default=None):
    for k, v in query:
        if fold(k) == fold(name):
            return v
    return default


def _b(body, name, default=None):
    if isinstance(body, dict):
        for k, v in body.items():
            if fold(k) == fold(name):
                return v
    return default


# ---------------------------------------------------------------------------------------------
# Model binding as ASP.NET Core (with ABP) does it
# ---------------------------------------------------------------------------------------------
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def media_type(content_type):
    """'Application/JSON; charset=x' -> 'application/json' ('' for none)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json_type(content_type):
    """What ASP.NET's SystemTextJsonInputFormatter reads: application/json, text/json and
    application/*+json, with any parameters."""
    mt = media_type(content_type)
    return mt in ("application/json", "text/json") or \
        (mt.startswith("application/") and mt.endswith("+json"))


def fold(name):
    """Case folding as .NET's OrdinalIgnoreCase does it: each character by its simple upper
    case mapping (so U+0131 dotless i and U+017F long s fold onto I and S, fullwidth letters
    stay themselves)."""
    return "".join(c.upper() if len(c.upper()) == 1 else c for c in name)


def form_fields(content_type, body):
    """The (name, value) pairs ASP.NET's FormValueProvider sees, in order; [] when the body is
    not a form."""
    mt = media_type(content_type)
    if mt == "application/x-www-form-urlencoded":
        return urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    if mt == "multipart/form-data":
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + body)
        out = []
        if msg.is_multipart():
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name is None or part.get_filename() is not None:
                    continue
                payload = part.get_payload(decode=True) or b""
                out.append((str(name), payload.decode("utf-8", "replace")))
        return out
    return []


def bind_simple(pairs, prefix="input"):
    """Model binding of a complex action parameter named `prefix` from (name, value) pairs in
    value-provider order (form, then route, then query): names match case-insensitively, the
    first value wins; when any name starts with "prefix." only those names bind (prefix
    stripped); name[...] binds name (a collection's first element).  -> [(name, value)] with
    the names as bound (folded), first value of each."""
    pfx = fold(prefix + ".")
    prefixed = any(fold(k).startswith(pfx) for k, _ in pairs)
    out, seen = [], set()
    for k, v in pairs:
        f = fold(k)
        if prefixed:
            if not f.startswith(pfx):
                continue
            f = f[len(pfx):]
        b = f.find("[")
        if b > 0:
            f = f[:b]
        if not f or f in seen:
            continue
        seen.add(f)
        out.append((f, v))
    return out


def json_object_pairs(pairs):
    """System.Text.Json with PropertyNameCaseInsensitive: of a property given twice (in any
    case), the last value wins."""
    out = {}
    for k, v in pairs:
        for old in [o for o in out if fold(o) == fold(k)]:
            del out[old]
        out[k] = v
    return out


def parse_json_body(body):
    """-> the JSON value as System.Text.Json binds it (None for an empty body); raises
    ValueError / UnicodeDecodeError when it is not JSON."""
    text = body.decode("utf-8-sig")   # System.Text.Json skips a UTF-8 byte order mark
    if not text.strip():
        return None
    return json.loads(text, object_pairs_hook=json_object_pairs)


def operation_result(path, query, body, user):
    """(status, result) for a valid call of a known operation."""
    p = path.lower()
    cl = _q(query, "cluster") or _b(body, "cluster")
    ident = _q(query, "id") or _b(body, "id")
    ns = _q(query, "namespace") or _b(body, "namespace") or TENANT
    if p == "/api/v1/clusters/getall":
        return 200, list(CLUSTERS)
    if p == "/api/v1/servers/images/getoperatingsystemimages":
        return 200, {"items": OS_IMAGES}
    if p == "/api/v1/servers/virtual/getservers":
        clusters = [cl] if cl else CLUSTERS
        items = []
        for c in clusters:
            items.append(server_item(user, "vm-%s-01" % c.lower(), TENANT, c))
            items.append(server_item(user, "vm-%s-02" % c.lower(), TENANT, c, status="OFFLINE",
                                     configuration="A100_40GB_PCIe_8x"))
        return 200, {"items": items}
    if p == "/api/v1/servers/virtual/getserver":
        return 200, server_item(user, ident, ns, cl)
    if p == "/api/v1/servers/virtual/createserver":
        name = _b(body, "name") or "vm-%08d" % _stable_int(json.dumps(body, sort_keys=True),
                                                           mod=10 ** 8)
        return 202, server_item(user, name, _b(body, "vpc"), cl, status="PENDING",
                                configuration=_b(body, "configuration") or "A100_40GB_PCIe_1x",
                                rpool=_b(body, "rpool") or "on-demand")
    if p == "/api/v1/servers/virtual/startserver":
        return 202, server_item(user, ident, ns, cl, status="STARTING")
    if p == "/api/v1/servers/virtual/stopserver":
        return 202, server_item(user, ident, ns, cl, status="STOPPING")
    if p == "/api/v1/servers/virtual/destroyserver":
        return 202, server_item(user, ident, ns, cl, status="DELETING")
    if p == "/api/v1/servers/virtual/getconfigurations":
        return 200, {"items": SERVER_CONFIGS}
    if p == "/api/v1/servers/virtual/getavailability":
        rp = _q(query, "resourcePool") or "on-demand"
        items = []
        for i, c in enumerate(SERVER_CONFIGS):
            it = {"configuration": c["name"], "cluster": cl, "rpool": rp, "type": c["type"],
                  "price": c["price"], "available": i % 3 != 2, "count": (7 * i + 3) % 11,
                  "maxCount": 16}
            if _truthy(_q(query, "reportNodes", "true")):
                it["nodes_available"] = (i + 2) % 5
                it["nodes_max_capacity"] = 8
            items.append(it)
        return 200, {"items": items}
    if p == "/api/v1/servers/virtual/getvirtualmachinebootlogs":
        lim = _q(query, "Limit")
        lim = int(lim) if lim and lim.strip().lstrip("-").isdigit() else 100
        return 200, {"id": ident, "namespace": ns, "cluster": cl,
                     "logs": log_lines("boot", ident, min(lim, 1000))}
    if p == "/api/v1/servers/applications/getapplications":
        items = []
        for i, c in enumerate(CLUSTERS):
            aid = "jupyter-%s" % c.lower()
            items.append({"instanceDetails": app_instance(user, aid, c),
                          "applicationCatalogItem": CATALOG[i % len(CATALOG)],
                          "hardwarePackage": {
                              "name": HARDWARE_PACKAGES[0]["name"],
                              "description": HARDWARE_PACKAGES[0]["description"],
                              "gpuCount": 1, "gpuType": "nvidia.com/A100PCIE40GB",
                              "gpuBrand": "NVIDIA", "gpuName": "A100 40GB PCIe",
                              "vcpusCount": 14, "memoryGb": 112, "operatingSystemStorageGb": 100,
                              "directAttachedStorageGb": 1700, "pricePerHour": 1.3,
                              "clusters": CLUSTERS}})
        return 200, {"items": items}
    if p == "/api/v1/servers/applications/getapplicationdetails":
        return 200, app_details(user, ident, cl)
    if p == "/api/v1/servers/applications/getapplicationruntimelogs":
        lim = _q(query, "Limit")
        lim = int(lim) if lim and lim.strip().lstrip("-").isdigit() else 100
        return 200, {"id": ident, "cluster": cl, "logs": log_lines("app", ident, min(lim, 1000))}
    if p == "/api/v1/servers/applications/getconfigurations":
        return 200, {"items": HARDWARE_PACKAGES}
    if p == "/api/v1/servers/applications/getavailability":
        return 200, {"items": HARDWARE_PACKAGES}
    if p == "/api/v1/servers/applications/getapplicationcatalogitems":
        return 200, {"items": CATALOG}
    if p == "/api/v1/servers/applications/createcatalogapplication":
        d = app_details(user, _b(body, "name"), cl, "PENDING", _b(body, "hardwarePackageName"),
                        _b(body, "applicationCatalogItemName"),
                        rpool=_b(body, "resourcePool") or "on-demand")
        d["applicationCatalogItemVersion"] = _b(body, "applicationCatalogItemVersion")
        return 202, d
    if p == "/api/v1/servers/applications/createcustomapplication":
        return 202, app_details(user, _b(body, "name"), cl, "PENDING",
                                _b(body, "hardwarePackageName"), "custom",
                                _b(body, "imageUrl"), _b(body, "resourcePool") or "on-demand",
                                kind="custom")
    if p in ("/api/v1/servers/applications/startapplication",
             "/api/v1/servers/applications/stopapplication",
             "/api/v1/servers/applications/destroyapplication"):
        return 202, {"id": ident, "cluster": cl}
    if p == "/api/v1/servers/metal/gethosts":
        clusters = [cl] if cl else CLUSTERS
        return 200, {"items": [host_item(user, "denvrbm-%d" % (128 + i + 10 * j), c)
                               for j, c in enumerate(clusters) for i in range(2)]}
    if p == "/api/v1/servers/metal/gethost":
        return 200, host_item(user, ident, cl)
    if p == "/api/v1/servers/metal/reboothost":
        return 202, host_item(user, ident, cl, status="REBOOTING")
    if p == "/api/v1/servers/metal/reprovisionhost":
        h = host_item(user, ident, cl, status="REPROVISIONING")
        if _b(body, "imageUrl"):
            h["image"] = _b(body, "imageUrl")
        return 202, h
    if p == "/api/v1/servers/metal/addhostvpc":
        return 202, host_item(user, ident, cl, vpc=_b(body, "vpcId"))
    if p == "/api/v1/servers/metal/removehostvpc":
        return 202, host_item(user, ident, cl, vpc="")
    if p == "/api/v1/vpcs/getvpcs":
        clusters = [cl] if cl else CLUSTERS
        return 200, {"items": [vpc_item(TENANT, c, default=True) for c in clusters] +
                     [vpc_item("%s-dev" % TENANT, c) for c in clusters]}
    if p == "/api/v1/vpcs/getvpc":
        return 200, vpc_item(ident, cl, default=(ident == TENANT))
    if p == "/api/v1/vpcs/createvpc":
        v = vpc_item(ident, cl, name=_b(body, "name"), default=bool(_b(body, "isDefault")))
        v["blockIntraVpcComms"] = bool(_b(body, "blockIntraVpcComms"))
        return 200, v
    if p == "/api/v1/vpcs/destroyvpc":
        return 200, vpc_item(ident, cl)
    raise KeyError(path)


# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------
KNOB_KINDS = ("fail", "delay", "drop", "garbage")


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.start_config = {
            "user": args.user, "password": args.password, "apikey": args.apikey,
            "access_lifetime": float(args.access_lifetime),
            "refresh_lifetime": float(args.refresh_lifetime),
            "refresh_post_405": False, "refresh_post_status": 405,
            "transition_seconds": 3.0}
        self.config = dict(self.start_config)
        self.token_log = args.token_log
        self.access = {}    # token -> {"exp": t, "revoked": bool, "refresh": rt}
        self.refresh = {}   # token -> {"exp": t, "revoked": bool}
        self.issued = {"access": [], "refresh": [], "encrypted": []}
        self.secrets_seen = []
        self._note_secret(args.password)
        self._note_secret(args.apikey)
        self.conn_seq = 0
        self.handlers = {}   # conn id -> live Handler
        self.reset()

    def _note_secret(self, s):
        if s and s not in self.secrets_seen:
            self.secrets_seen.append(s)
            self._log_token("secret", s)

    def _log_token(self, kind, tok):
        if self.token_log:
            try:
                with open(self.token_log, "a") as f:
                    f.write("%s %s\n" % (kind, tok))
            except OSError:
                pass

    def reset(self):
        with self.lock:
            self.config = dict(self.start_config)
            self.records = []
            self.acted = []   # what each operation acted on, as bound (GET /_mock/acted)
            self.req_seq = 0
            self.knobs = []
            self.reject_mode = "off"
            self.chaos = None
            self.vms = {}   # (cluster, id) -> {"from", "to", "at", "polls"}
            self.stats = {"logins_ok": 0, "logins_failed": 0, "login_attempts": 0,
                          "refreshes": 0, "refreshes_failed": 0, "refresh_attempts": 0,
                          "logouts": 0, "logout_attempts": 0,
                          "connections": 0, "active_connections": 0,
                          "max_active_connections": 0, "tls_handshake_failures": 0,
                          "requests": 0, "api_v1_requests": 0, "unauthorized": 0,
                          "faults": 0, "client_aborts": 0, "chaos_tls_drops": 0,
                          "by_path": {}}
            # active_connections must survive a reset: recount from live handlers
            self.stats["active_connections"] = getattr(self, "_live", 0)
            self.stats["max_active_connections"] = self.stats["active_connections"]

    # tokens ------------------------------------------------------------------------------
    def issue_login(self, user):
        with self.lock:
            at = new_jwt("access", user, self.config["access_lifetime"])
            rt = new_jwt("refresh", user, self.config["refresh_lifetime"])
            enc = base64.b64encode(secrets.token_bytes(48)).decode()
            now = time.monotonic()
            self.refresh[rt] = {"exp": now + self.config["refresh_lifetime"], "revoked": False}
            self.access[at] = {"exp": now + self.config["access_lifetime"], "revoked": False,
                               "refresh": rt}
            self.issued["access"].append(at)
            self.issued["refresh"].append(rt)
            self.issued["encrypted"].append(enc)
            al, rl = self.config["access_lifetime"], self.config["refresh_lifetime"]
        for k, t in (("access", at), ("refresh", rt), ("encrypted", enc)):
            self._log_token(k, t)
        return at, rt, enc, al, rl

    def refresh_access(self, rt, user):
        """-> (status, token_or_reason)"""
        with self.lock:
            info = self.refresh.get(rt)
            if info is None:
                return 400, "unknown"
            if info["revoked"] or time.monotonic() >= info["exp"]:
                return 401, "expired"
            at = new_jwt("access", user, self.config["access_lifetime"])
            enc = base64.b64encode(secrets.token_bytes(48)).decode()
            self.access[at] = {"exp": time.monotonic() + self.config["access_lifetime"],
                               "revoked": False, "refresh": rt}
            self.issued["access"].append(at)
            self.issued["encrypted"].append(enc)
            al = self.config["access_lifetime"]
        self._log_token("access", at)
        self._log_token("encrypted", enc)
        return 200, (at, enc, al)

    def access_valid(self, at):
        with self.lock:
            info = self.access.get(at)
            return bool(info and not info["revoked"] and time.monotonic() < info["exp"])

    def logout(self, at):
        with self.lock:
            info = self.access.get(at)
            if not info or info["revoked"] or time.monotonic() >= info["exp"]:
                return False
            info["revoked"] = True
            r = self.refresh.get(info["refresh"])
            if r:
                r["revoked"] = True
            return True

    def expire_all(self):
        with self.lock:
            now = time.monotonic()
            for d in (self.access, self.refresh):
                for info in d.values():
                    info["exp"] = min(info["exp"], now)

    def advance_clock(self, seconds):
        with self.lock:
            for d in (self.access, self.refresh):
                for info in d.values():
                    info["exp"] -= seconds

    def set_config(self, cfg):
        with self.lock:
            for k in ("access_lifetime", "refresh_lifetime", "transition_seconds"):
                if k in cfg:
                    self.config[k] = float(cfg[k])
            for k in ("apikey", "user", "password"):
                if k in cfg:
                    self.config[k] = None if cfg[k] is None else str(cfg[k])
            if "refresh_post_405" in cfg:
                self.config["refresh_post_405"] = bool(cfg["refresh_post_405"])
            if "refresh_post_status" in cfg:
                self.config["refresh_post_status"] = int(cfg["refresh_post_status"])
            out = dict(self.config)
        for k in ("apikey", "password"):
            if k in cfg:
                self._note_secret(cfg[k])
        return out

    # VM state changes that take time --------------------------------------------------------
    TRANSITIONS = {"/api/v1/servers/virtual/startserver": ("STARTING", "ONLINE"),
                   "/api/v1/servers/virtual/stopserver": ("STOPPING", "OFFLINE"),
                   "/api/v1/servers/virtual/destroyserver": ("DELETING", None)}

    def vm_begin(self, path, cluster, ident):
        """A start/stop/destroy was accepted: the VM is in transition from now on."""
        frm, to = self.TRANSITIONS[path.lower()]
        with self.lock:
            at = time.monotonic() + self.config["transition_seconds"]
            self.vms[(str(cluster).lower(), str(ident))] = {
                "from": frm, "to": to, "at": at, "polls": 0}

    def vm_status(self, cluster, ident, poll=True):
        """-> None (never touched), a status string, or "gone"."""
        with self.lock:
            vm = self.vms.get((str(cluster).lower(), str(ident)))
            if vm is None:
                return None
            if poll:
                vm["polls"] += 1
            if time.monotonic() < vm["at"]:
                return vm["from"]
            return vm["to"] or "gone"

    # knobs -------------------------------------------------------------------------------
    def add_knob(self, kind, spec):
        count = int(spec.get("count", 1))
        knob = {"kind": kind, "remaining": count, "path": spec.get("path"),
                "query": spec.get("query"),
                "method": (spec.get("method") or "").upper() or None,
                "exclude_auth": bool(spec.get("exclude_auth", False)), "spec": spec}
        with self.lock:
            self.knobs.append(knob)

    def take_knobs(self, method, path, rawq=""):
        """Consume matching knobs: returns (delays, terminal) where delays is a list of delay
        specs and terminal is at most one fail/drop/garbage knob (kind, spec)."""
        delays, terminal = [], None
        with self.lock:
            for k in self.knobs:
                if k["remaining"] == 0:
                    continue
                if k["path"] and not path.startswith(k["path"]):
                    continue
                if k["query"] and k["query"] not in rawq:
                    continue
                if k["method"] and k["method"] != method:
                    continue
                if k["exclude_auth"] and path.startswith(AUTH_PREFIX):
                    continue
                if k["kind"] == "delay":
                    delays.append(k["spec"])
                elif terminal is None:
                    terminal = (k["kind"], k["spec"])
                else:
                    continue
                if k["remaining"] > 0:
                    k["remaining"] -= 1
            self.knobs = [k for k in self.knobs if k["remaining"] != 0]
            if terminal is None and self.chaos and path.startswith("/api/v1/"):
                terminal, d = self._chaos_pick()
                if d:
                    delays.append(d)
        return delays, terminal

    def _chaos_pick(self):
        r = self.chaos["rng"]
        if r.random() >= self.chaos["rate"]:
            return None, None
        x = r.random()
        if x < 0.2:
            secs = r.uniform(0.05, 2.0)
            # the phase from the draw itself: the seeded sequence stays what it was
            return None, {"seconds": secs,
                          "phase": "mid_body" if int(secs * 1000) % 2 else "before_response"}
        if x < 0.4:
            return ("fail", {"status": r.choice([500, 502, 503, 504])}), None
        if x < 0.55:
            return ("drop", {"mode": "reset"}), None
        if x < 0.7:
            return ("drop", {"mode": "mid_body"}), None
        if x < 0.8:
            return ("drop", {"mode": "before_response"}), None
        if x < 0.9:
            return ("garbage", {}), None
        return ("drop", {"mode": "tls_corrupt"}), None

    def chaos_tls_drop(self):
        """For a new TLS connection: None, or how chaos drops its handshake ("rst"/"fin")."""
        with self.lock:
            c = self.chaos
            if not c or c["tls_rate"] <= 0 or c["rng"].random() >= c["tls_rate"]:
                return None
            self.stats["chaos_tls_drops"] += 1
            self.stats["faults"] += 1
            return c["rng"].choice(("rst", "fin"))


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------
MAX_BODY = 256 * 1024 * 1024


class _Abort(Exception):
    """The connection was deliberately dropped: stop handling it."""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Kestrel"
    sys_version = ""
    timeout = 300   # idle keep-alive connections are closed after this

    def version_string(self):
        return "Kestrel"

    # -- connection lifecycle ------------------------------------------------------------
    def setup(self):
        st = self.server.state
        with st.lock:
            st.conn_seq += 1
            self.conn_id = st.conn_seq
            st._live = getattr(st, "_live", 0) + 1
            st.stats["connections"] += 1
            st.stats["active_connections"] += 1
            st.stats["max_active_connections"] = max(st.stats["max_active_connections"],
                                                     st.stats["active_connections"])
        self._counted = True
        self._idle = True
        with st.lock:
            st.handlers[self.conn_id] = self
        self.is_tls = isinstance(self.request, ssl.SSLSocket)
        drop = st.chaos_tls_drop() if self.is_tls else None
        if drop:
            self.drop_handshake(drop)
            self._handshake_failed = True
        elif self.is_tls:
            try:
                self.request.settimeout(10)
                self.request.do_handshake()
            except (OSError, ssl.SSLError, ValueError) as e:
                with st.lock:
                    st.stats["tls_handshake_failures"] += 1
                self.server.log("conn=%d tls handshake failed: %s" % (
                    self.conn_id, type(e).__name__))
                self._handshake_failed = True
        super().setup()

    def drop_handshake(self, how):
        """Chaos: drop a TLS connection in its handshake, with a RST at once or with a FIN
        after reading the ClientHello (the socket itself is closed by the server later)."""
        sock = self.request
        self.server.log("conn=%d chaos: tls handshake dropped (%s)" % (self.conn_id, how))
        try:
            if how == "rst":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if select.select([sock.fileno()], [], [], 2)[0]:
                try:
                    os.read(sock.fileno(), 16384)
                except (BlockingIOError, InterruptedError):
                    pass
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass

    def handle(self):
        if getattr(self, "_handshake_failed", False):
            return
        try:
            super().handle()
        except _Abort:
            pass
        except (OSError, ssl.SSLError, ValueError):
            pass

    def finish(self):
        try:
            super().finish()
        except (OSError, ssl.SSLError, ValueError):
            pass
        if self._counted:
            st = self.server.state
            with st.lock:
                st._live -= 1
                st.stats["active_connections"] = max(0, st.stats["active_connections"] - 1)
                st.handlers.pop(self.conn_id, None)
            self._counted = False

    # -- logging: never the request line (its query may carry a refresh token) -----------
    def log_request(self, code="-", size="-"):
        pass

    def log_error(self, fmt, *args):
        self.server.log("conn=%d protocol error" % self.conn_id)

    def log_message(self, fmt, *args):
        pass

    # -- dispatch ------------------------------------------------------------------------
    def do_GET(self):
        self.dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def __getattr__(self, name):
        # Any other method token (TRACE, PROPFIND, ...) is dispatched too.
        if name.startswith("do_"):
            return self.dispatch
        raise AttributeError(name)

    def handle_one_request(self):
        self._idle = True    # waiting for a request line on a kept-alive connection
        self.rec = None
        super().handle_one_request()
        self._idle = True
        self.stamp_end()

    def stamp_end(self):
        """t_end of the current request: its answer is complete and being written."""
        rec = getattr(self, "rec", None)
        if rec is not None and rec["t_end"] is None:
            rec["t_end"] = time.monotonic()

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            total = 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise _Abort()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:   # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                data = self.rfile.read(size)
                if len(data) < size:
                    raise _Abort()
                chunks.append(data)
                self.rfile.readline(3)
            return b"".join(chunks), True
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b"", False
        n = int(cl.strip())
        if n < 0 or n > MAX_BODY:
            raise ValueError("bad content-length")
        data = self.rfile.read(n)
        if len(data) < n:
            raise _Abort()
        return data, False

    def dispatch(self):
        self._idle = False
        t_start = time.monotonic()   # request line and headers read; CLOCK_MONOTONIC
        # byte-exact target from the request line (self.path collapses a leading '//')
        words = self.raw_requestline.decode("iso-8859-1").rstrip("\r\n").split()
        raw_path = words[1] if len(words) >= 2 else self.path
        path, _, rawq = raw_path.partition("?")
        method = self.command
        st = self.server.state
        try:
            body, chunked = self.read_body()
        except (ValueError, OverflowError):
            self.close_connection = True
            self.send_plain(400, b"", {})
            self.server.log("conn=%d %s %s -> 400 (unreadable body)" % (
                self.conn_id, method, path[:200]))
            return
        if path.startswith("/_mock/") or path == "/_mock":
            return self.control(method, path, rawq, body)

        with st.lock:
            st.req_seq += 1
            seq = st.req_seq
            rec = {"seq": seq, "conn": self.conn_id, "client_port": self.client_address[1],
                   "client_addr": self.client_address[0], "tls": self.is_tls,
                   "time": time.time(), "t_start": t_start, "t_end": None,
                   "method": method, "path": raw_path,
                   "version": self.request_version,
                   "headers": [[k, v] for k, v in self.headers.items()],
                   "body": base64.b64encode(body).decode(), "chunked": chunked,
                   "status": None, "fault": None, "client_aborted": False}
            st.records.append(rec)
            st.stats["requests"] += 1
            if path.startswith("/api/v1/"):
                st.stats["api_v1_requests"] += 1
            bp = st.stats["by_path"]
            bp[path] = bp.get(path, 0) + 1
        self.seq = seq
        self.rec = rec

        delays, terminal = ([], None)
        if path.startswith("/api/"):
            delays, terminal = st.take_knobs(method, path, rawq)
        mid_delay = None
        for d in delays:
            if d.get("phase") == "mid_body":
                mid_delay = float(d.get("seconds", 1))
            else:
                self.fault_note("delay")
                self.wait_or_abort(float(d.get("seconds", 1)))
        if terminal:
            kind, spec = terminal
            with st.lock:
                st.stats["faults"] += 1
            self.fault_note(kind + (":" + spec["mode"] if kind == "drop" and "mode" in spec
                                    else ""))
            if kind == "fail":
                return self.canned(method, path, spec)
            if kind == "garbage":
                self.logline(method, path, "garbage")
                try:
                    self.wfile.write(b"SSH-2.0-OpenSSH_9.2p1 mock garbage\r\n\x00\xff\xfe" +
                                     secrets.token_bytes(64) + b"\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass
                self.abort_connection(rst=False)
            if kind == "drop":
                mode = spec.get("mode", "before_response")
                if mode == "mid_body":
                    status, hdrs, payload = self.compute(method, path, rawq, body)
                    if len(payload) < 2:
                        payload = payload + b" " * 64
                    self.logline(method, path, "drop mid_body", status)
                    self.send_full(status, hdrs, payload, cut=len(payload) // 2)
                    self.abort_connection(rst=False)
                self.logline(method, path, "drop " + mode)
                if mode == "tls_corrupt":
                    self.corrupt_tls()
                self.abort_connection(rst=(mode in ("reset", "tls_corrupt")))
        status, hdrs, payload = self.compute(method, path, rawq, body)
        self.logline(method, path, None, status)
        if mid_delay is not None:
            self.send_full(status, hdrs, payload, cut=len(payload) // 2)
            self.wait_or_abort(mid_delay)
            try:
                self.stamp_end()
                self.wfile.write(payload[len(payload) // 2:] if method != "HEAD" else b"")
                self.wfile.flush()
            except OSError:
                raise _Abort()
        else:
            self.send_full(status, hdrs, payload)

    def fault_note(self, what):
        with self.server.state.lock:
            self.rec["fault"] = what if not self.rec["fault"] else self.rec["fault"] + "," + what

    def logline(self, method, path, fault, status=None):
        with self.server.state.lock:
            if status is not None:
                self.rec["status"] = status
        self.server.log("#%d conn=%d %s %s -> %s%s" % (
            self.seq, self.conn_id, method, path[:200], status if status is not None else "-",
            " (%s)" % fault if fault else ""))

    # -- faults --------------------------------------------------------------------------
    def _peer_gone(self):
        try:
            fd = self.request.fileno()
            # POLLRDHUP: the peer closed its side even when unread bytes wait before the EOF
            # (a TLS client's close_notify alert, or a request it had pipelined)
            p = select.poll()
            p.register(fd, select.POLLRDHUP)
            if any(ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR)
                   for _, ev in p.poll(0)):
                return True
            s = socket.socket(fileno=os.dup(fd))
        except (OSError, ValueError):
            return True
        try:
            r, _, _ = select.select([s], [], [], 0)
            if not r:
                return False
            try:
                data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return False
            except OSError:
                return True
            return data == b""
        finally:
            s.close()

    def wait_or_abort(self, seconds):
        end = time.monotonic() + max(0.0, seconds)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            if self._peer_gone():
                with self.server.state.lock:
                    self.rec["client_aborted"] = True
                    self.server.state.stats["client_aborts"] += 1
                self.server.log("#%d conn=%d client went away during delay" % (
                    self.seq, self.conn_id))
                self.abort_connection(rst=False)
            time.sleep(min(left, 0.02))

    def corrupt_tls(self):
        try:
            fd = os.dup(self.request.fileno())
            try:
                os.write(fd, b"\x17\x03\x03\x00\x20" + secrets.token_bytes(32))
            finally:
                os.close(fd)
        except OSError:
            pass

    def abort_connection(self, rst):
        self.close_connection = True
        sock = self.request
        try:
            if rst:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            fd = sock.detach()
            if fd is not None and fd >= 0:
                os.close(fd)
        except OSError:
            pass
        raise _Abort()

    def canned(self, method, path, spec):
        status = int(spec.get("status", 503))
        hdrs = [["Content-Type", spec.get("content_type", "application/json; charset=utf-8")]]
        if spec.get("retry_after") is not None:
            hdrs.append(["Retry-After", str(spec["retry_after"])])
        for h in spec.get("headers") or []:
            hdrs.append([str(h[0]), str(h[1])])
        if spec.get("body_b64") is not None:
            payload = base64.b64decode(spec["body_b64"])
        elif spec.get("body") is not None:
            payload = spec["body"].encode() if isinstance(spec["body"], str) else \
                json.dumps(spec["body"]).encode()
        elif spec.get("size") is not None:
            n = int(spec["size"])
            filler = max(0, n - 80)
            payload = json.dumps(envelope({"filler": "x" * filler}),
                                 separators=(",", ":")).encode()
        elif 200 <= status < 300:
            payload = json.dumps(envelope(None)).encode()
        else:
            msg = {401: "Current user did not login to the application!",
                   429: "Too many requests", 500: "An internal error occurred during your request!",
                   502: "Bad gateway", 503: "Service unavailable", 504: "Gateway timeout"}.get(
                status, "Mock fault %d" % status)
            payload = json.dumps(error_envelope(msg, "injected by mock_denvr /_mock/fail",
                                                unauthorized=(status == 401))).encode()
        self.logline(method, path, "fail %d" % status, status)
        self.send_full(status, hdrs, payload)

    # -- responses -----------------------------------------------------------------------
    def send_plain(self, status, payload, extra):
        try:
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            if not hasattr(self, "_headers_buffer"):   # HTTP/0.9
                self._headers_buffer = []
            self._headers_buffer.append(b"\r\n")
            if self.command != "HEAD":
                self._headers_buffer.append(payload)
            self.flush_headers()
            self.wfile.flush()
        except OSError:
            raise _Abort()

    def send_full(self, status, hdrs, payload, cut=None):
        try:
            self.send_response(status)
            for k, v in hdrs:
                self.send_header(k, v)
            if status not in (204, 304) and not (100 <= status < 200):
                self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Mock-Request-Seq", str(self.seq))
            if self.close_connection:
                self.send_header("Connection", "close")
            # headers and body in one write: no Nagle / delayed-ACK stall between them
            if not hasattr(self, "_headers_buffer"):   # HTTP/0.9
                self._headers_buffer = []
            self._headers_buffer.append(b"\r\n")
            if self.command != "HEAD" and status not in (204, 304):
                self._headers_buffer.append(payload if cut is None else payload[:cut])
            if cut is None:
                self.stamp_end()
            self.flush_headers()
            self.wfile.flush()
        except OSError:
            raise _Abort()

    def compute(self, method, path, rawq, body):
        """-> (status, [[header, value]...], payload); never raises."""
        try:
            return self._compute(method, path, rawq, body)
        except Exception as e:   # noqa: BLE001 - a bug in the mock must not kill the connection
            self.server.log("#%d internal error %s" % (self.seq, type(e).__name__))
            return 500, [["Content-Type", "application/json; charset=utf-8"]], json.dumps(
                error_envelope("An internal error occurred during your request!",
                               "mock_denvr: %s" % type(e).__name__)).encode()

    def _compute(self, method, path, rawq, body):
        json_ct = "application/json; charset=utf-8"
        status, result = self.route(method, path, rawq, body)
        if status == 404 and result is None:
            return 404, [], b""
        if status == 405:
            return 405, [["Allow", result]], b""
        payload = json.dumps(result, separators=(",", ":")).encode()
        hdrs = [["Content-Type", json_ct], ["Cache-Control", "no-cache"]]
        if method in ("GET", "HEAD") and 200 <= status < 300:
            hdrs.append(["ETag", '"%s"' % hashlib.sha256(payload).hexdigest()[:32]])
        if path.startswith("/api/"):
            hdrs.append(["Set-Cookie", "Abp.Mock.Session=%s; path=/; secure; samesite=lax; httponly"
                         % secrets.token_hex(8)])
        return status, hdrs, payload

    def auth_user(self):
        """-> user for a valid Bearer token or ApiKey, else None."""
        st = self.server.state
        a = self.headers.get("Authorization") or ""
        scheme, _, cred = a.strip().partition(" ")
        cred = cred.strip()
        if scheme.lower() == "bearer" and cred and st.access_valid(cred):
            return st.config["user"]
        if scheme.lower() == "apikey" and cred and st.config["apikey"] and \
                secrets.compare_digest(cred.encode("utf-8", "surrogateescape"),
                                       st.config["apikey"].encode("utf-8", "surrogateescape")):
            return st.config["user"]
        return None

    def route(self, method, path, rawq, body):
        """-> (status, envelope) or (404, None) or (405, allow)"""
        try:
            query = urllib.parse.parse_qsl(rawq, keep_blank_values=True, errors="replace")
        except ValueError:
            query = []
        # routed like ASP.NET: decoded once (but %2F), case-insensitive, one trailing '/' ignored
        key = urllib.parse.unquote(path.replace("%2F", "%252F").replace("%2f", "%252f"),
                                   errors="replace").lower()
        if len(key) > 1 and key.endswith("/"):
            key = key[:-1]
        if key == ECHO_PATH.lower():
            if not self.auth_user():
                return self.unauthorized()
            return 200, envelope({"method": method, "path": self.rec["path"],
                                  "headers": [[k, v] for k, v in self.headers.items()],
                                  "body_b64": base64.b64encode(body).decode(),
                                  "body_sha256": hashlib.sha256(body).hexdigest()})
        ops = OPS_BY_PATH.get(key)
        if ops is None:
            return 404, None
        m = "GET" if method == "HEAD" else method
        if m == "OPTIONS":
            return 405, ", ".join(sorted(ops))
        if m not in ops:
            return 405, ", ".join(sorted(ops))
        op = ops[m]
        if key.startswith("/api/tokenauth/"):
            return self.tokenauth(op, method, query, body)
        # ABP: authorization runs before validation
        user = self.auth_user()
        if user is None:
            return self.unauthorized()
        # Model binding (see bind_simple): a body operation's input is [FromBody], read by the
        # JSON input formatter only; a query operation's input binds from the form (when the
        # body is labelled as one, whatever the method), then the query.
        ctype = self.headers.get("Content-Type")
        jbody = None
        if op["body"]:
            query = []
            if ctype is not None and not is_json_type(ctype):
                return 415, error_envelope(
                    "Unsupported Media Type",
                    "The request's Content-Type %r is not read by the JSON input formatter."
                    % media_type(ctype)[:100])
            try:
                jbody = parse_json_body(body)
            except (ValueError, UnicodeDecodeError):
                return 400, error_envelope(
                    "Your request is not valid!",
                    "The following errors were detected during validation.\r\n"
                    " - The input was not valid JSON.\r\n",
                    [{"message": "The input was not valid JSON.", "members": ["input"]}])
            bad = None
            if jbody is not None and not isinstance(jbody, dict):
                bad = "input"
            else:
                for name in ("id", "namespace", "cluster"):
                    v = _b(jbody, name)
                    if v is not None and not isinstance(v, str):
                        bad = name
                        break
            if bad:
                msg = "The JSON value could not be converted to System.String. Path: $.%s" % bad
                return 400, error_envelope(
                    "Your request is not valid!",
                    "The following errors were detected during validation.\r\n"
                    " - %s\r\n" % msg, [{"message": msg, "members": [bad]}])
        else:
            pairs = form_fields(ctype, body) if media_type(ctype) in FORM_TYPES else []
            query = bind_simple(pairs + query)
        missing = self.missing(op, query, jbody)
        if missing:
            return 400, validation_envelope(missing)
        status, result = operation_result(op["path"], query, jbody, user)
        status, result = self.vm_state_step(op["path"], status, result)
        self.note_acted(method, op, query, jbody, status)
        return status, result

    def note_acted(self, method, op, query, jbody, status):
        """Record what the operation acted on, as bound (GET /_mock/acted)."""
        st = self.server.state

        def val(name):
            v = _q(query, name)
            return v if v is not None else _b(jbody, name)
        rec = {"seq": self.seq, "method": method, "op": op["path"], "id": val("id"),
               "namespace": val("namespace"), "cluster": val("cluster"), "status": status,
               "bound": dict(query) if not op["body"] else jbody,
               "request": {"path": self.rec["path"], "headers": self.rec["headers"],
                           "body": self.rec["body"]}}
        with st.lock:
            st.acted.append(rec)

    def vm_state_step(self, path, status, result):
        """The VM state machine (VM STATES) on top of operation_result()."""
        st = self.server.state
        key = path.lower()
        if key in st.TRANSITIONS:
            st.vm_begin(key, result.get("cluster"), result.get("id"))
        elif key == "/api/v1/servers/virtual/getserver":
            vs = st.vm_status(result.get("cluster"), result.get("id"))
            self.rec["vm_status"] = vs or result["status"]
            if vs == "gone":
                return 404, error_envelope(
                    "There is no such an entity. Entity type: VirtualServer, id: %s"
                    % result.get("id"))
            if vs:
                result["status"] = vs
        elif key == "/api/v1/servers/virtual/getservers":
            items = []
            for it in result["items"]:
                vs = st.vm_status(it.get("cluster"), it.get("id"), poll=False)
                if vs == "gone":
                    continue
                if vs:
                    it["status"] = vs
                items.append(it)
            result["items"] = items
        return status, envelope(result)

    @staticmethod
    def missing(op, query, jbody):
        out = []
        for name, req in op["query"]:
            if req and not (_q(query, name) or "").strip():
                out.append(name)
        for name, req in op["body"]:
            if not req:
                continue
            v = _b(jbody, name)
            if v is None or (isinstance(v, str) and not v.strip()) or \
                    (isinstance(v, list) and not v):
                out.append(name)
        return out

    def unauthorized(self):
        with self.server.state.lock:
            self.server.state.stats["unauthorized"] += 1
        return 401, error_envelope("Current user did not login to the application!",
                                   unauthorized=True)

    def tokenauth(self, op, method, query, body):
        st = self.server.state
        name = op["path"].rsplit("/", 1)[1]
        if name == "Authenticate":
            with st.lock:
                st.stats["login_attempts"] += 1
            try:
                jbody = json.loads(body.decode("utf-8")) if body.strip() else None
            except (ValueError, UnicodeDecodeError):
                jbody = None
            missing = self.missing(op, query, jbody)
            if missing:
                with st.lock:
                    st.stats["logins_failed"] += 1
                return 400, validation_envelope(missing)
            user = str(_b(jbody, "userNameOrEmailAddress"))
            pw = str(_b(jbody, "password"))
            cfg = st.config
            ok = (cfg["user"] is not None and cfg["password"] is not None and
                  user.lower() == cfg["user"].lower() and
                  secrets.compare_digest(pw.encode("utf-8", "surrogatepass"),
                                         cfg["password"].encode("utf-8", "surrogatepass")))
            mode = st.reject_mode
            if not ok or mode == "password":
                with st.lock:
                    st.stats["logins_failed"] += 1
                return 500, error_envelope("Login failed!", "Invalid user name or password")
            if mode in ("two_factor", "reset_password"):
                with st.lock:
                    st.stats["logins_failed"] += 1
                return 200, envelope({
                    "accessToken": None, "encryptedAccessToken": None, "expireInSeconds": 0,
                    "shouldResetPassword": mode == "reset_password",
                    "passwordResetCode": secrets.token_hex(8) if mode == "reset_password"
                    else None,
                    "userId": 2, "requiresTwoFactorVerification": mode == "two_factor",
                    "twoFactorAuthProviders": ["Email", "GoogleAuthenticator"]
                    if mode == "two_factor" else None,
                    "twoFactorRememberClientToken": None, "returnUrl": None,
                    "refreshToken": None, "refreshTokenExpireInSeconds": 0, "c": None})
            at, rt, enc, al, rl = st.issue_login(cfg["user"])
            with st.lock:
                st.stats["logins_ok"] += 1
            return 200, envelope({
                "accessToken": at, "encryptedAccessToken": enc, "expireInSeconds": int(al),
                "shouldResetPassword": False, "passwordResetCode": None, "userId": 2,
                "requiresTwoFactorVerification": False, "twoFactorAuthProviders": None,
                "twoFactorRememberClientToken": None, "returnUrl": None,
                "refreshToken": rt, "refreshTokenExpireInSeconds": int(rl), "c": None})
        if name == "RefreshToken":
            with st.lock:
                st.stats["refresh_attempts"] += 1
            if method == "POST" and st.config["refresh_post_405"]:
                with st.lock:
                    st.stats["refreshes_failed"] += 1
                code = st.config.get("refresh_post_status", 405)
                return (405, "GET") if code == 405 else (404, None)
            rt = _q(query, "refreshToken")
            if not rt:
                try:
                    rt = _b(json.loads(body.decode("utf-8")), "refreshToken") if body.strip() \
                        else None
                except (ValueError, UnicodeDecodeError):
                    rt = None
            if not rt:
                with st.lock:
                    st.stats["refreshes_failed"] += 1
                return 400, validation_envelope(["refreshToken"])
            code, res = st.refresh_access(str(rt), st.config["user"])
            if code == 400:
                with st.lock:
                    st.stats["refreshes_failed"] += 1
                return 400, error_envelope("Refresh token is not valid!", None,
                                           [{"message": "Refresh token is not valid!",
                                             "members": ["refreshToken"]}])
            if code == 401:
                with st.lock:
                    st.stats["refreshes_failed"] += 1
                return 401, error_envelope("Refresh token is not valid!",
                                           "The refresh token has expired or was revoked.",
                                           unauthorized=True)
            at, enc, al = res
            with st.lock:
                st.stats["refreshes"] += 1
            return 200, envelope({"accessToken": at, "encryptedAccessToken": enc,
                                  "expireInSeconds": int(al)})
        if name == "LogOut":
            a = self.headers.get("Authorization") or ""
            scheme, _, cred = a.strip().partition(" ")
            ok = scheme.lower() == "bearer" and st.logout(cred.strip())
            with st.lock:
                st.stats["logout_attempts"] += 1
                if ok:
                    st.stats["logouts"] += 1
            return 200, envelope(None)
        return 404, None

    # -- control API ---------------------------------------------------------------------
    def control(self, method, path, rawq, body):
        st = self.server.state
        name = path[len("/_mock/"):].strip("/")
        try:
            spec = json.loads(body.decode("utf-8")) if body.strip() else {}
            if not isinstance(spec, dict):
                raise ValueError("expected a JSON object")
            q = dict(urllib.parse.parse_qsl(rawq))
            res = self.control_op(st, method, name, spec, q)
            status = 200
            if res is None:
                status, res = 404, {"error": "unknown control endpoint %s %s" % (method, path)}
        except (ValueError, TypeError, KeyError) as e:
            status, res = 400, {"error": "%s: %s" % (type(e).__name__, e)}
        payload = json.dumps(res).encode()
        self.send_plain(status, payload, {"Content-Type": "application/json"})

    def control_op(self, st, method, name, spec, q):
        if name == "ping":
            return {"ok": True, "tls": self.is_tls}
        if name == "requests" and method == "GET":
            since = int(q.get("since", 0))
            prefix = q.get("path")
            with st.lock:
                out = [dict(r) for r in st.records
                       if r["seq"] > since and (not prefix or r["path"].startswith(prefix))]
            return out
        if name == "acted" and method == "GET":
            since = int(q.get("since", 0))
            with st.lock:
                return [dict(r) for r in st.acted if r["seq"] > since]
        if name == "clear_acted" and method == "POST":
            with st.lock:
                n = len(st.acted)
                st.acted = []
            return {"cleared": n}
        if name == "vms" and method == "GET":
            with st.lock:
                return [{"cluster": c, "id": i, **v} for (c, i), v in st.vms.items()]
        if name == "reset" and method == "POST":
            st.reset()
            self.server.log("---- reset ----")
            return {"ok": True}
        if name == "stats" and method == "GET":
            with st.lock:
                s = json.loads(json.dumps(st.stats))
                s["knobs_pending"] = len(st.knobs)
            return s
        if name == "tokens" and method == "GET":
            with st.lock:
                return {"access": list(st.issued["access"]),
                        "refresh": list(st.issued["refresh"]),
                        "encrypted": list(st.issued["encrypted"]),
                        "secrets": list(st.secrets_seen)}
        if name == "expire_tokens" and method == "POST":
            st.expire_all()
            return {"ok": True}
        if name == "advance_clock" and method == "POST":
            st.advance_clock(float(spec["seconds"]))
            return {"ok": True}
        if name == "config":
            if method == "POST":
                return st.set_config(spec)
            with st.lock:
                return dict(st.config)
        if name in ("fail", "respond", "delay", "drop", "garbage") and method == "POST":
            kind = "fail" if name == "respond" else name
            if kind == "drop" and spec.get("mode", "before_response") not in (
                    "before_response", "reset", "mid_body", "tls_corrupt"):
                raise ValueError("unknown drop mode")
            st.add_knob(kind, spec)
            return {"ok": True}
        if name == "reject_logins" and method == "POST":
            mode = spec.get("mode", "password")
            if mode not in ("password", "two_factor", "reset_password", "off"):
                raise ValueError("unknown mode")
            with st.lock:
                st.reject_mode = mode
            return {"ok": True}
        if name == "close_idle" and method == "POST":
            with st.lock:
                idle = [h for h in st.handlers.values() if h._idle and h is not self]
            for h in idle:
                try:
                    if spec.get("rst"):
                        h.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                             struct.pack("ii", 1, 0))
                    h.request.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            return {"closed": len(idle)}
        if name == "chaos" and method == "POST":
            with st.lock:
                if spec.get("enabled", True):
                    st.chaos = {"rng": random.Random(spec.get("seed", 1)),
                                "rate": float(spec.get("rate", 0.3)),
                                "tls_rate": float(spec.get("tls_rate", 0))}
                else:
                    st.chaos = None
            return {"ok": True}
        return None


class MockServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, addr, family, state, sslctx, quiet=False):
        self.address_family = family
        self.state = state
        self.sslctx = sslctx
        self.quiet = quiet
        self._log_lock = threading.Lock()
        super().__init__(addr, Handler)

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        socketserver.TCPServer.server_bind(self)   # skip HTTPServer's getfqdn()
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port

    def get_request(self):
        conn, addr = self.socket.accept()
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if self.sslctx is not None:
            # the handshake happens in the handler thread, not in the accept loop
            conn = self.sslctx.wrap_socket(conn, server_side=True,
                                           do_handshake_on_connect=False)
        return conn, addr

    def handle_error(self, request, client_address):
        self.log("internal error: %s" % (sys.exc_info()[0].__name__,))

    def log(self, msg):
        if self.quiet:
            return
        with self._log_lock:
            try:
                sys.stderr.write("mock_denvr: %s\n" % msg)
                sys.stderr.flush()
            except (OSError, ValueError):
                pass


def build_parser():
    ap = argparse.ArgumentParser(description="Mock Denvr Cloud API upstream for denvrd tests")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls", action="store_true", help="serve HTTPS")
    ap.add_argument("--certdir", help="directory for ca.pem, server.pem, server.key")
    ap.add_argument("--untrusted", action="store_true",
                    help="serve a self-signed certificate not issued by ca.pem")
    ap.add_argument("--apikey", default=DEFAULT_APIKEY)
    ap.add_argument("--user", default=DEFAULT_USER)
    ap.add_argument("--password", default=DEFAULT_PASSWORD)
    ap.add_argument("--access-lifetime", type=float, default=DEFAULT_ACCESS_LIFETIME)
    ap.add_argument("--refresh-lifetime", type=float, default=DEFAULT_REFRESH_LIFETIME)
    ap.add_argument("--token-log", help="append every issued token and configured secret to FILE")
    ap.add_argument("--quiet", action="store_true", help="no per-request log lines")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    sslctx = None
    if args.tls:
        if not args.certdir:
            print("mock_denvr: --tls needs --certdir DIR", file=sys.stderr)
            return 2
        ensure_certs(args.certdir, untrusted=args.untrusted)
        sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        stem = "untrusted" if args.untrusted else "server"
        sslctx.load_cert_chain(os.path.join(args.certdir, stem + ".pem"),
                               os.path.join(args.certdir, stem + ".key"))
        sslctx.set_alpn_protocols(["http/1.1"])
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    state = State(args)
    host = args.host.strip("[]")
    srv = MockServer((host, args.port), family, state, sslctx)
    port = srv.server_address[1]
    sys.stdout.write("PORT %d\n" % port)
    sys.stdout.flush()
    srv.log("listening on %s://%s:%d" % ("https" if sslctx else "http",
                                         "[%s]" % host if family == socket.AF_INET6 else host,
                                         port))
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    sys.exit(main())
