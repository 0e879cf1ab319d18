#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the upstream's answers for the benchmark: Denvr-like ABP envelopes.

servers.json  a GetServers answer of about 1 KB
big.json      an answer of about 20 KB (many servers)
"""
import json
import sys
from pathlib import Path


def server(i):
    return {
        "username": "bench@example.com",
        "tenancy_name": "bench",
        "rpool": "on-demand",
        "direct_attached_storage_persisted": False,
        "id": "bench-vm-%04d" % i,
        "namespace": "denvr-bench",
        "configuration": "H100_80GB_SXM_8x",
        "storage": 1700,
        "gpu_type": "nvidia.com/H100SXM5-80GB",
        "gpus": 8,
        "vcpus": 104,
        "memory": 940,
        "ip": "10.%d.%d.%d" % (i // 65536 % 256, i // 256 % 256, i % 256),
        "private_ip": "172.16.%d.%d" % (i // 256 % 256, i % 256),
        "image": "Ubuntu_22.04.4_LTS",
        "cluster": "Msc1",
        "status": "ONLINE",
        "storage_type": "nfs",
    }


def envelope(result):
    return {"result": result, "targetUrl": None, "success": True, "error": None,
            "unAuthorizedRequest": False, "__abp": True}


def answer(n):
    return json.dumps(envelope({"items": [server(i) for i in range(n)]}), separators=(",", ":"))


def main():
    out = Path(sys.argv[1])
    small = answer(2)
    big, n = answer(1), 1
    while len(big) < 20 * 1024:
        n += 1
        big = answer(n)
    (out / "servers.json").write_text(small)
    (out / "big.json").write_text(big)


if __name__ == "__main__":
    main()
