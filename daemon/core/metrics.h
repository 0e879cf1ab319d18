/* SPDX-License-Identifier: MIT */
#pragma once

/* Counters behind /_denvrd/status and /_denvrd/metrics. */

#include <stdint.h>

#include "common/client/auth.h"

enum metrics_method {
        METHOD_GET, METHOD_HEAD, METHOD_POST, METHOD_PUT, METHOD_PATCH,
        METHOD_DELETE, METHOD_OPTIONS, METHOD_OTHER, _METHOD_MAX,
};

#define METRICS_LATENCY_BUCKETS 12

/* How a wait ended. */
enum wait_end {
        WAIT_END_MATCH,         /* a condition was met (until=gone included) */
        WAIT_END_TIMEOUT,
        WAIT_END_HANGUP,        /* the client went away */
        WAIT_END_UPSTREAM,      /* an upstream answer that ends it (4xx) passed through */
        WAIT_END_ABORTED,       /* shutdown, its listener dropped, out of memory, no login */
        _WAIT_END_MAX,
};

struct metrics {
        uint64_t requests[_METHOD_MAX][6];     /* by method and status class 0..5 (0: none) */
        uint64_t requests_total;
        uint64_t upstream_requests;
        uint64_t retries;
        uint64_t upstream_errors;
        uint64_t latency_buckets[METRICS_LATENCY_BUCKETS]; /* cumulative is computed on output */
        uint64_t latency_count;
        double latency_sum_sec;
        uint64_t auth_events[_AUTH_EVENT_MAX];   /* by enum auth_event: logins and refreshes, ok or failed */
        uint64_t denied;                        /* refused by the access rules */
        uint64_t refused_reading;               /* refused: upstream could read them otherwise (reading.c) */
        uint64_t refused_framing;               /* refused: headers or framing (request.c) */
        uint64_t headers_dropped;               /* client headers not on the forwarded list */
        uint64_t failures_replayed;             /* answered from a remembered failure (failure_memory.h) */

        /* GET /_denvrd/wait/ (wait.c) */
        uint64_t waits_in_progress;
        uint64_t wait_polls;
        uint64_t waits_ended[_WAIT_END_MAX];
};

extern const double metrics_latency_bounds[METRICS_LATENCY_BUCKETS];

enum metrics_method metrics_method_from_string(const char *m);
const char *metrics_method_to_string(enum metrics_method m);
void metrics_count_request(struct metrics *m, const char *method, unsigned status);
void metrics_observe_upstream(struct metrics *m, double seconds);
