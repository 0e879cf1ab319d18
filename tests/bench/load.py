#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A fixed number of GETs on kept-alive connections (stdlib only), for profiles.

load.py CALLS CONCURRENCY PORT PATH: CALLS requests to 127.0.0.1:PORT, spread
over CONCURRENCY threads with one HTTP/1.1 connection each; any answer but
200 is an error.  wrk runs for a time; a profile wants a count.
"""
import http.client
import sys
import threading


def worker(port, path, n, errors):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(n):
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            errors.append("%d %s" % (r.status, body[:200]))
            return


def main():
    calls, conc, port, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    errors = []
    threads = [threading.Thread(target=worker, args=(port, path, calls // conc, errors)) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("load: %d errors, first: %s" % (len(errors), errors[0]))


if __name__ == "__main__":
    main()
