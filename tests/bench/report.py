#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Parses wrk output and prints the benchmark table (stdlib only).

report.py parse TARGET WORKLOAD WRK-OUTPUT CPU-TICKS  -> one TSV line on stdout
report.py table RESULTS.tsv NOTES.tsv       -> the table, ratios and targets
"""
import re
import sys

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
WORKLOADS = [("c1", "1 conn, 1 KB"), ("c64", "64 conns, 1 KB"), ("big16", "16 conns, 20 KB")]
TARGETS = [
    ("direct", "direct (HTTPS upstream)"),
    ("nginx-1w", "nginx proxy, 1 worker"),
    ("nginx-auto", "nginx proxy, auto workers"),
    ("denvrd", "denvrd (log warning)"),
    ("denvrd-info", "denvrd (log info)"),
]
MIB = 1024


def ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")


def parse(target, workload, path, cpu_ticks="-1"):
    text = open(path, errors="replace").read()
    rps = re.search(r"Requests/sec:\s*([0-9.]+)", text)
    pct = dict(re.findall(r"^\s*(50|99)(?:\.0+)?%\s+(\S+)", text, re.M))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(x) for x in m.groups())
    reqs = re.search(r"(\d+) requests in", text)
    print("\t".join([target, workload, rps.group(1) if rps else "nan",
                     "%.3f" % ms(pct.get("50", "")), "%.3f" % ms(pct.get("99", "")),
                     str(errors), reqs.group(1) if reqs else "0", cpu_ticks]))


def table(results_path, notes_path):
    res = {}
    for line in open(results_path):
        f = line.rstrip("\n").split("\t")
        if len(f) == 8:
            res[(f[0], f[1])] = {"rps": float(f[2]), "p50": float(f[3]), "p99": float(f[4]),
                                 "err": int(f[5]), "n": int(f[6]), "ticks": int(f[7])}
    notes = {}
    for line in open(notes_path):
        k, _, v = line.rstrip("\n").partition("\t")
        notes[k] = v

    def note_int(k):
        try:
            return int(notes.get(k, ""))
        except ValueError:
            return None

    out = []
    out.append("denvrd benchmark: wrk on loopback, %s s per measurement after %s s warm-up; "
               "%s CPUs, load average %s before, %s after" % (
                   notes.get("run.duration"), notes.get("run.warmup"), notes.get("machine.cpus"),
                   notes.get("machine.load_before"), notes.get("machine.load_after")))
    out.append("denvrd runs with log_level=warning (no per-request access log); "
               "'denvrd (log info)' has the access log on, for reference.")
    out.append("")
    tck = note_int("machine.clk_tck") or 100

    def cpu_us(r):
        return r["ticks"] * 1e6 / tck / r["n"] if r["n"] > 0 and r["ticks"] >= 0 else float("nan")

    hdr = "%-27s %-17s %10s %9s %9s %7s %12s" % ("target", "workload", "req/s", "p50 ms", "p99 ms", "errors",
                                                 "CPU us/req")
    out.append(hdr)
    out.append("-" * len(hdr))
    for t, tname in TARGETS:
        for w, wname in WORKLOADS:
            r = res.get((t, w))
            if r:
                out.append("%-27s %-17s %10.0f %9.3f %9.3f %7d %12.0f" % (tname, wname, r["rps"], r["p50"],
                                                                         r["p99"], r["err"], cpu_us(r)))
    out.append("(CPU us/req: user + system time of the server's processes during the run, per request; "
               "for direct the upstream's)")
    out.append("")

    verdicts = []

    def verdict(ok, text):
        verdicts.append("%-4s %s" % ("PASS" if ok else "MISS", text))

    for d in ("denvrd", "denvrd-info"):
        if not any((d, w) in res for w, _ in WORKLOADS):
            continue
        out.append("ratios %s / nginx (1 worker):" % d)
        for w, wname in WORKLOADS:
            a, b = res.get((d, w)), res.get(("nginx-1w", w))
            if a and b:
                out.append("  %-17s req/s x%.2f   p99 x%.2f   CPU per request x%.2f" % (
                    wname, a["rps"] / b["rps"] if b["rps"] else 0, a["p99"] / b["p99"] if b["p99"] else 0,
                    cpu_us(a) / cpu_us(b) if cpu_us(b) > 0 else float("nan")))
        out.append("")

    out.append("upstream connections opened (accepted by the upstream nginx, stub_status; the upstream "
               "allows unlimited requests per connection):")
    for t, tname in TARGETS:
        if t == "direct":
            continue
        n = note_int(t + ".upstream_conns")
        if n is None:
            continue
        extra = ""
        if t.startswith("denvrd"):
            extra = "  (denvrd's /_denvrd/status: connections_opened=%s)" % notes.get(t + ".status_conns_opened")
        if t.startswith("nginx"):
            extra = "  (keepalive 16 caps idle connections only: nginx opens one per concurrent request)"
        out.append("  %-27s %5d%s" % (tname, n, extra))
    out.append("")

    for d in ("denvrd", "denvrd-info"):
        start = note_int(d + ".rss_start_kib")
        if start is None:
            continue
        hwm = note_int(d + ".rss_hwm_kib") or 0
        samp = note_int(d + ".rss_sampled_peak_kib") or 0
        after = note_int(d + ".rss_after_kib") or 0
        out.append("%s RSS: idle after start %.1f MiB, peak under load %.1f MiB (VmHWM; sampled %.1f), "
                   "idle after the run %.1f MiB" % (d, start / MIB, max(hwm, samp) / MIB, samp / MIB,
                                                    after / MIB))
        out.append("  of it private (RssAnon): %.1f MiB after start, %.1f MiB after the run; PSS %.1f / %.1f MiB "
                   "(the rest is shared library pages: libcrypto, libc, libgnutls via libmicrohttpd, libcurl...)"
                   % ((note_int(d + ".rss_start_anon_kib") or 0) / MIB, (note_int(d + ".rss_after_anon_kib") or 0) / MIB,
                      (note_int(d + ".rss_start_pss_kib") or 0) / MIB, (note_int(d + ".rss_after_pss_kib") or 0) / MIB))
    floor = note_int("floor.rss_start_kib")
    if floor is not None:
        out.append("library floor (tests/bench/floor.c: loads denvrd's libraries, curl_global_init(), waits): "
                   "RSS %.1f MiB, of it private %.1f MiB" % (floor / MIB, (note_int("floor.rss_start_anon_kib") or 0) / MIB))
    out.append("")

    # Targets (denvrd at log_level=warning against nginx with one worker).
    maxc = note_int("run.max_upstream_connections") or 16
    a, b = res.get(("denvrd", "c64")), res.get(("nginx-1w", "c64"))
    if a and b:
        verdict(a["rps"] >= b["rps"], "req/s at 64 connections: denvrd %.0f >= nginx(1 worker) %.0f"
                % (a["rps"], b["rps"]))
    for w, wname in WORKLOADS:
        a, b = res.get(("denvrd", w)), res.get(("nginx-1w", w))
        if a and b:
            verdict(a["p99"] <= b["p99"], "p99 %s: denvrd %.3f ms <= nginx(1 worker) %.3f ms"
                    % (wname, a["p99"], b["p99"]))
    for d in ("denvrd", "denvrd-info"):
        n = note_int(d + ".upstream_conns")
        if n is not None:
            verdict(n <= maxc, "%s upstream connections for the whole run: %d <= max_upstream_connections %d"
                    % (d, n, maxc))
    start = note_int("denvrd.rss_start_kib")
    if start is not None:
        peak = max(note_int("denvrd.rss_hwm_kib") or 0, note_int("denvrd.rss_sampled_peak_kib") or 0)
        after = note_int("denvrd.rss_after_kib") or 0
        verdict(peak <= 32 * MIB, "denvrd peak RSS under load %.1f MiB <= 32 MiB" % (peak / MIB))
        verdict(start <= 8 * MIB, "denvrd idle RSS after start %.1f MiB <= 8 MiB" % (start / MIB))
        verdict(after <= 8 * MIB, "denvrd idle RSS after the run %.1f MiB <= 8 MiB" % (after / MIB))
        anon = max(note_int("denvrd.rss_start_anon_kib") or 0, note_int("denvrd.rss_after_anon_kib") or 0)
        verdict(anon <= 8 * MIB, "(for reference) denvrd idle private memory (RssAnon) %.1f MiB <= 8 MiB"
                % (anon / MIB))
        if floor is not None:
            verdict(start - floor <= 2 * MIB, "(for reference) denvrd idle RSS after start above the library "
                    "floor: %.1f MiB <= 2 MiB" % ((start - floor) / MIB))
    errs = sum(r["err"] for (t, _), r in res.items())
    verdict(errs == 0, "no errors (non-2xx answers or socket errors) in any run: %d" % errs)
    out.append("targets:")
    out.extend("  " + v for v in verdicts)
    print("\n".join(out))


def main():
    if sys.argv[1] == "parse":
        parse(*sys.argv[2:6])
    elif sys.argv[1] == "table":
        table(*sys.argv[2:4])
    else:
        sys.exit("usage: report.py parse|table ...")


if __name__ == "__main__":
    main()
