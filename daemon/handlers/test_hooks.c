/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "test"
#include "daemon/handlers/test_hooks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/clock.h"
#include "common/base/log.h"
#include "common/base/query.h"
#include "common/client/auth.h"
#include "daemon/core/daemon.h"
#include "daemon/http/request.h"
#include "daemon/jobs/lease_keeper.h"


/* The value of name=VALUE in a query string, copied into buf; NULL if absent. */
static const char *query_value(const char *query, const char *name, char *buf, size_t size) {
        _cleanup_free_ char *v = NULL;
        size_t len = 0;

        if (!query || query_get(query, strlen(query), name, &v, &len) <= 0 || len >= size)
                return NULL;
        memcpy(buf, v, len + 1);
        return buf;
}

/* GET /_denvrd/test/sleep?seconds=N[&timers=0]: see auth_test_sleep(). */
void test_hooks_sleep(struct request *r) {
        char buf[32];
        const char *v = query_value(r->query, "seconds", buf, sizeof buf);
        unsigned long long seconds;
        bool timers;
        char *end;

        errno = 0;
        seconds = v ? strtoull(v, &end, 10) : 0;
        if (!v || errno || *end || seconds == 0 || seconds > 10u * 365 * 86400) {
                request_reply_error(r, 400, NULL, "seconds=N (1 to 10 years) is required");
                return;
        }
        v = query_value(r->query, "timers", buf, sizeof buf);
        timers = !v || strcmp(v, "0") != 0;
        auth_test_sleep(r->daemon->auth, seconds * USEC_PER_SEC, timers);
        request_reply_json(r, 200, strdup("{\"slept\":true}\n"));
}

/* GET /_denvrd/test/lease-clock?advance=N: the leases' wall clock moves N seconds on. */
void test_hooks_lease_clock(struct request *r) {
        char buf[32];
        const char *v = query_value(r->query, "advance", buf, sizeof buf);
        unsigned long long seconds;
        char *end;

        errno = 0;
        seconds = v ? strtoull(v, &end, 10) : 0;
        if (!v || errno || *end || seconds == 0 || seconds > 10u * 365 * 86400) {
                request_reply_error(r, 400, NULL, "advance=N (1 s to 10 years) is required");
                return;
        }
        lease_keeper_advance_clock(r->daemon->leases, (int64_t) seconds);
        request_reply_json(r, 200, strdup("{\"advanced\":true}\n"));
}
