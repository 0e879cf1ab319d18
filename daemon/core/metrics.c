/* SPDX-License-Identifier: MIT */
#include "daemon/core/metrics.h"

#include <string.h>

#include "common/base/cleanup.h"

const double metrics_latency_bounds[METRICS_LATENCY_BUCKETS] = {
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};

static const char *const method_names[_METHOD_MAX] = {
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
};

enum metrics_method metrics_method_from_string(const char *m) {
        for (unsigned i = 0; i < METHOD_OTHER; i++)
                if (strcmp(m, method_names[i]) == 0)
                        return (enum metrics_method) i;
        return METHOD_OTHER;
}

const char *metrics_method_to_string(enum metrics_method m) {
        return m < _METHOD_MAX ? method_names[m] : "other";
}

void metrics_count_request(struct metrics *m, const char *method, unsigned status) {
        unsigned class = status / 100;

        if (class > 5)
                class = 0;
        m->requests[metrics_method_from_string(method)][class]++;
        m->requests_total++;
}

void metrics_observe_upstream(struct metrics *m, double seconds) {
        for (unsigned i = 0; i < METRICS_LATENCY_BUCKETS; i++)
                if (seconds <= metrics_latency_bounds[i]) {
                        m->latency_buckets[i]++;
                        break;
                }
        m->latency_count++;
        m->latency_sum_sec += seconds;
}
