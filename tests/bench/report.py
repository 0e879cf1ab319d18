#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Parses wrk output and prints the benchmark table (stdlib only).

report.py parse TARGET WORKLOAD WRK-OUTPUT CPU-TICKS [ROUND]  -> one TSV line on stdout
report.py table RESULTS.tsv NOTES.tsv       -> the loopback table (medians of the
                                               rounds), ratios and targets
report.py wan WAN.tsv WAN-NOTES.tsv         -> the WAN table and its target
"""
import re
import statistics
import sys

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
WORKLOADS = [("c1", "1 conn, 1 KB"), ("c64", "64 conns, 1 KB"), ("big16", "16 conns, 20 KB")]
TARGETS = [
    ("direct", "direct (HTTPS upstream)"),
    ("nginx-1w", "nginx proxy, 1 worker"),
    ("nginx-auto", "nginx proxy, auto workers"),
    ("go-1p", "Go ReverseProxy, 1 core"),
    ("denvrd-h1", "denvrd, HTTP/1.1 upstream"),
    ("denvrd-h2", "denvrd, HTTP/2 upstream"),
    ("denvrd-info", "denvrd h2, log info"),
]
DENVRDS = ("denvrd-h1", "denvrd-h2", "denvrd-info")
# Proxies that keep their upstream connections: none opened while measured.
ANCHORS = (("nginx-1w", "nginx (1 worker)"), ("go-1p", "the Go proxy (GOMAXPROCS=1)"))
# Loopback targets, denvrd / nginx (1 worker): CPU per request at most, per workload.
CPU_TARGETS = {"c1": 1.5, "c64": 2.0, "big16": 2.0}
MIB = 1024


def ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")


def parse(target, workload, path, cpu_ticks="-1", rnd="1"):
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
                     str(errors), reqs.group(1) if reqs else "0", cpu_ticks, rnd]))


def table(results_path, notes_path):
    notes_all = {}
    for line in open(notes_path):
        k, _, v = line.rstrip("\n").partition("\t")
        notes_all.setdefault(k, []).append(v)
    # A target measured in several rounds noted its figures once per round.
    notes = {k: v[-1] for k, v in notes_all.items()}

    def note_ints(k):
        try:
            return [int(v) for v in notes_all.get(k, [])]
        except ValueError:
            return []

    def note_int(k):   # the largest of the rounds: the worst for counts and memory
        xs = note_ints(k)
        return max(xs) if xs else None

    tck = note_int("machine.clk_tck") or 100

    def cpu_us(r):
        return r["ticks"] * 1e6 / tck / r["n"] if r["n"] > 0 and r["ticks"] >= 0 else float("nan")

    # One line per target, workload and round; the table gives each figure's
    # median over the rounds (CPU per request per round beside it).
    per_round = {}
    for line in open(results_path):
        f = line.rstrip("\n").split("\t")
        if len(f) in (8, 9):
            r = {"rps": float(f[2]), "p50": float(f[3]), "p99": float(f[4]),
                 "err": int(f[5]), "n": int(f[6]), "ticks": int(f[7])}
            r["cpu"] = cpu_us(r)
            per_round.setdefault((f[0], f[1]), {})[int(f[8]) if len(f) == 9 else 1] = r
    res = {}
    for key, rounds in per_round.items():
        rs = [rounds[i] for i in sorted(rounds)]
        res[key] = {"rps": statistics.median(r["rps"] for r in rs), "p50": statistics.median(r["p50"] for r in rs),
                    "p99": statistics.median(r["p99"] for r in rs), "cpu": statistics.median(r["cpu"] for r in rs),
                    "err": sum(r["err"] for r in rs), "n": sum(r["n"] for r in rs), "rounds": rounds}
    nrounds = max((len(v["rounds"]) for v in res.values()), default=1)

    out = []
    out.append("denvrd benchmark: wrk on loopback, %s s per measurement after %s s warm-up, %s; "
               "%s CPUs, load average %s before, %s after" % (
                   notes.get("run.duration"), notes.get("run.warmup"),
                   "%d rounds (medians)" % nrounds if nrounds > 1 else "1 round",
                   notes.get("machine.cpus"), notes.get("machine.load_before"), notes.get("machine.load_after")))
    if notes.get("run.pinning"):
        out.append("CPU placement: %s (BENCH_PIN=0 leaves it to the scheduler)." % notes["run.pinning"])
    out.append("denvrd runs with log_level=warning (no per-request access log); "
               "'denvrd h2, log info' has the access log on, for reference.  nginx's proxy module speaks "
               "only HTTP/1.1 upstream; denvrd is measured with both.%s" % (
                   "  The Go proxy is httputil.ReverseProxy over a pooled http.Transport (GOMAXPROCS=1, "
                   "HTTP/1.1 upstream)." if any(t == "go-1p" for t, _ in res) else ""))
    out.append("")

    def cpu_list(t, w):
        rounds = res[(t, w)]["rounds"]
        return " ".join("%.0f" % rounds[i]["cpu"] for i in sorted(rounds))

    hdr = "%-27s %-17s %10s %9s %9s %7s %12s  %s" % ("target", "workload", "req/s", "p50 ms", "p99 ms", "errors",
                                                     "CPU us/req", "(per round)" if nrounds > 1 else "")
    out.append(hdr)
    out.append("-" * len(hdr))
    for t, tname in TARGETS:
        for w, wname in WORKLOADS:
            r = res.get((t, w))
            if r:
                out.append("%-27s %-17s %10.0f %9.3f %9.3f %7d %12.0f  %s" % (
                    tname, wname, r["rps"], r["p50"], r["p99"], r["err"], r["cpu"],
                    "(%s)" % cpu_list(t, w) if nrounds > 1 else ""))
    out.append("(CPU us/req: user + system time of the server's processes during the run, per request; "
               "for direct the upstream's)")
    out.append("")

    verdicts = []

    def verdict(ok, text):
        verdicts.append("%-4s %s" % ("PASS" if ok else "MISS", text))

    def ratio(a, b, key):
        return a[key] / b[key] if b[key] else float("nan")

    def round_ratios(a, b):   # CPU per request, round by round
        both = sorted(set(a["rounds"]) & set(b["rounds"]))
        return " ".join("%.2f" % ratio(a["rounds"][i], b["rounds"][i], "cpu") for i in both)

    for d in DENVRDS:
        if not any((d, w) in res for w, _ in WORKLOADS):
            continue
        out.append("ratios %s / nginx (1 worker):" % d)
        for w, wname in WORKLOADS:
            a, b = res.get((d, w)), res.get(("nginx-1w", w))
            if a and b:
                out.append("  %-17s req/s x%.2f   p99 x%.2f   CPU per request x%.2f (%.0f / %.0f us)%s" % (
                    wname, ratio(a, b, "rps"), ratio(a, b, "p99"), ratio(a, b, "cpu"), a["cpu"], b["cpu"],
                    "; per round x%s" % round_ratios(a, b) if nrounds > 1 else ""))
        out.append("")

    # The anchors side by side on the one HTTP/1.1 upstream, one core each.
    trio = [t for t in ("nginx-1w", "go-1p", "denvrd-h1") if any((t, w) in res for w, _ in WORKLOADS)]
    if "go-1p" in trio and len(trio) > 1:
        out.append("anchors, HTTP/1.1 upstream, CPU us per request (median of the rounds) and ratios:")
        out.append("  %-17s %9s %9s %10s %12s %15s %11s" % ("workload", "nginx-1w", "go-1p", "denvrd-h1",
                                                             "denvrd / go", "denvrd / nginx", "go / nginx"))
        for w, wname in WORKLOADS:
            n, g, d = res.get(("nginx-1w", w)), res.get(("go-1p", w)), res.get(("denvrd-h1", w))

            def fmt(r):
                return "%.0f" % r["cpu"] if r else "-"

            def rat(a, b):
                return "x%.2f" % ratio(a, b, "cpu") if a and b else "-"
            out.append("  %-17s %9s %9s %10s %12s %15s %11s" % (wname, fmt(n), fmt(g), fmt(d),
                                                              rat(d, g), rat(d, n), rat(g, n)))
            if nrounds > 1:
                out.append("  %-17s per round: %s" % ("", "; ".join(
                    "%s %s" % (name, round_ratios(a, b))
                    for name, a, b in (("denvrd/go", d, g), ("denvrd/nginx", d, n), ("go/nginx", g, n)) if a and b)))
        if nrounds > 1:
            out.append("  (a round's ratio compares two targets measured in that round, seconds apart: each workload is measured on every target in turn)")
        out.append("")

    out.append("upstream connections opened (accepted by the upstream nginx, stub_status; the upstream "
               "allows unlimited requests per connection), during the measured runs / in all, warm-ups included%s:"
               % (", per round" if nrounds > 1 else ""))
    for t, tname in TARGETS:
        if t == "direct":
            continue
        if not notes_all.get(t + ".upstream_conns"):
            continue
        extra = ""
        if t.startswith("denvrd"):
            extra = "  (denvrd's /_denvrd/status: connections_opened=%s)" % ", ".join(
                notes_all.get(t + ".status_conns_opened", ["?"]))
        out.append("  %-27s %9s / %s%s" % (tname, ", ".join(notes_all.get(t + ".upstream_conns_measured", ["?"])),
                                          ", ".join(notes_all[t + ".upstream_conns"]), extra))
    out.append("")

    for d in DENVRDS:
        start = note_int(d + ".rss_start_kib")
        if start is None:
            continue
        hwm = note_int(d + ".rss_hwm_kib") or 0
        samp = note_int(d + ".rss_sampled_peak_kib") or 0
        after = note_int(d + ".rss_after_kib") or 0
        out.append("%s RSS: idle after start %.1f MiB, peak under load %.1f MiB (VmHWM; sampled %.1f), "
                   "idle after the run %.1f MiB" % (d, start / MIB, max(hwm, samp) / MIB, samp / MIB,
                                                    after / MIB))
        out.append("  of it private (RssAnon): %.1f MiB after start, %.1f MiB peak under load (sampled every "
                   "0.1 s), %.1f MiB after the run; PSS %.1f / %.1f MiB (the rest is shared library pages: "
                   "libcrypto, libc, libgnutls via libmicrohttpd, libcurl...)"
                   % ((note_int(d + ".rss_start_anon_kib") or 0) / MIB, (note_int(d + ".anon_sampled_peak_kib") or 0) / MIB,
                      (note_int(d + ".rss_after_anon_kib") or 0) / MIB,
                      (note_int(d + ".rss_start_pss_kib") or 0) / MIB, (note_int(d + ".rss_after_pss_kib") or 0) / MIB))
    go_after = note_int("go-1p.rss_after_kib")
    if go_after is not None:
        out.append("go-1p RSS after the run %.1f MiB, of it private %.1f MiB (largest of the rounds)"
                   % (go_after / MIB, (note_int("go-1p.rss_after_anon_kib") or 0) / MIB))
    floor = note_int("floor.rss_start_kib")
    if floor is not None:
        out.append("library floor (tests/bench/floor.c: loads denvrd's libraries, curl_global_init(), waits): "
                   "RSS %.1f MiB, of it private %.1f MiB" % (floor / MIB, (note_int("floor.rss_start_anon_kib") or 0) / MIB))
    out.append("")

    # Targets (denvrd at log_level=warning against nginx with one worker).
    maxc = note_int("run.max_upstream_connections") or 64
    for d in ("denvrd-h1", "denvrd-h2"):
        for w, wname in WORKLOADS:
            a, b = res.get((d, w)), res.get(("nginx-1w", w))
            if a and b:
                verdict(ratio(a, b, "cpu") <= CPU_TARGETS[w], "%s CPU per request, %s: x%.2f of nginx's <= x%.1f"
                        % (d, wname, ratio(a, b, "cpu"), CPU_TARGETS[w]))
        a, b = res.get((d, "c64")), res.get(("nginx-1w", "c64"))
        if a and b:
            verdict(ratio(a, b, "rps") >= 0.5, "%s req/s at 64 connections: x%.2f of nginx's >= x0.5"
                    % (d, ratio(a, b, "rps")))
            verdict(ratio(a, b, "p99") <= 1.5, "%s p99 at 64 connections: x%.2f of nginx's <= x1.5"
                    % (d, ratio(a, b, "p99")))
    for t, tname in ANCHORS:
        n = note_int(t + ".upstream_conns_measured")
        if n is not None:
            verdict(n <= 1, "(anchor) %s opened no upstream connection during the measured runs: %d%s"
                    % (tname, n, " (most in a round)" if nrounds > 1 else ""))
    for d in DENVRDS:
        n = note_int(d + ".upstream_conns")
        if n is not None:
            verdict(n <= maxc, "%s upstream connections for the whole run: %d <= max_upstream_connections %d%s"
                    % (d, n, maxc, " (most in a round)" if nrounds > 1 else ""))
    for d in ("denvrd-h1", "denvrd-h2"):
        if note_int(d + ".rss_start_anon_kib") is None:
            continue
        idle = max(note_int(d + ".rss_start_anon_kib") or 0, note_int(d + ".rss_after_anon_kib") or 0)
        load = note_int(d + ".anon_sampled_peak_kib") or 0
        verdict(idle <= 2 * MIB, "%s private memory (RssAnon) idle, after start and after the run: %.1f MiB <= 2 MiB"
                % (d, idle / MIB))
        verdict(load <= 8 * MIB, "%s private memory (RssAnon) under load: %.1f MiB <= 8 MiB" % (d, load / MIB))
    errs = sum(r["err"] for (t, _), r in res.items())
    verdict(errs == 0, "no errors (non-2xx answers or socket errors) in any run: %d" % errs)
    out.append("targets:")
    out.extend("  " + v for v in verdicts)
    print("\n".join(out))


WAN_ROWS = [
    ("warm", "(ref) one kept-alive HTTPS connection: the call alone"),
    ("sdk-fresh", "(a) fresh process, SDK login: TLS + Authenticate + call"),
    ("apikey-fresh", "(a) fresh process, SDK with API key: TLS + call"),
    ("denvrd-fresh", "(a) fresh curl process -> denvrd"),
    ("sdk-conc", "(b) %s callers, SDK login per call"),
    ("denvrd-conc", "(b) %s callers -> denvrd, new connection per call"),
    ("denvrd-cache-fresh", "(c) fresh curl process -> denvrd, cached GET"),
]


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def wan(path, notes_path):
    lat = {}
    for line in open(path):
        k, _, v = line.rstrip("\n").partition("\t")
        try:
            lat.setdefault(k, []).append(float(v) * 1000.0)
        except ValueError:
            lat.setdefault(k, []).append(float("nan"))
    notes = dict(line.rstrip("\n").split("\t", 1) for line in open(notes_path) if "\t" in line)
    rtt = 2 * float(notes.get("delay_ms", "20"))
    out = ["WAN: relay delaying every chunk %s ms each way: one round trip (RTT) = %.0f ms; "
           "%s sequential calls per fresh-process row; load average %s after" % (
               notes.get("delay_ms"), rtt, notes.get("calls"), notes.get("load_after")), ""]
    hdr = "%-58s %6s %9s %9s %9s %9s" % ("caller", "calls", "mean ms", "p50 ms", "p99 ms", "mean/RTT")
    out += [hdr, "-" * len(hdr)]
    for k, name in WAN_ROWS:
        xs = [x for x in lat.get(k, []) if x == x]
        if not xs:
            continue
        if "%s" in name:
            name = name % notes.get("conc")
        mean = sum(xs) / len(xs)
        out.append("%-58s %6d %9.1f %9.1f %9.1f %9.2f" % (name, len(xs), mean, pct(xs, 0.5), pct(xs, 0.99),
                                                           mean / rtt))
    out.append("(latency inside the caller: from before its connect to the end of the answer; "
               "interpreter or curl start-up not included)")
    out.append("denvrd's upstream connections opened during the WAN run: %s" % notes.get("denvrd.upstream_conns_opened"))
    xs = lat.get("denvrd-fresh", [])
    bad = sum(1 for k in lat for x in lat[k] if x != x)
    if xs:
        m = sum(xs) / len(xs) / rtt
        out.append("")
        out.append("targets:")
        out.append("  %-4s denvrd from a fresh process: %.2f round trips per call <= 1.2" % ("PASS" if m <= 1.2 else "MISS", m))
        out.append("  %-4s no failed calls: %d" % ("PASS" if bad == 0 else "MISS", bad))
    print("\n".join(out))


def main():
    if sys.argv[1] == "parse":
        parse(*sys.argv[2:7])
    elif sys.argv[1] == "table":
        table(*sys.argv[2:4])
    elif sys.argv[1] == "wan":
        wan(*sys.argv[2:4])
    else:
        sys.exit("usage: report.py parse|table ...")


if __name__ == "__main__":
    main()
