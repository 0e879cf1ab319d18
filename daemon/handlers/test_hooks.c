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

/* name=N, 1 s to 10 years: 0, or -EINVAL once the 400 is answered. */
static int seconds_param(struct request *r, const char *name, unsigned long long *ret) {
        char buf[32];
        const char *v = query_value(r->query, name, buf, sizeof buf);
        char *end;

        errno = 0;
        *ret = v ? strtoull(v, &end, 10) : 0;
        if (!v || errno || *end || *ret == 0 || *ret > 10u * 365 * 86400) {
                request_reply_error(r, 400, NULL, "%s=N (1 s to 10 years) is required", name);
                return -EINVAL;
        }
        return 0;
}

/* GET /_denvrd/test/sleep?seconds=N[&timers=0]: see auth_test_sleep(). */
void test_hooks_sleep(struct request *r) {
        unsigned long long seconds;
        char buf[32];
        const char *v;
        bool timers;

        if (seconds_param(r, "seconds", &seconds) < 0)
                return;
        v = query_value(r->query, "timers", buf, sizeof buf);
        timers = !v || strcmp(v, "0") != 0;
        auth_test_sleep(r->daemon->auth, seconds * USEC_PER_SEC, timers);
        request_reply_json(r, 200, strdup("{\"slept\":true}\n"));
}

/* GET /_denvrd/test/lease-clock?advance=N: the leases' wall clock moves N seconds on. */
void test_hooks_lease_clock(struct request *r) {
        unsigned long long seconds;

        if (seconds_param(r, "advance", &seconds) < 0)
                return;
        lease_keeper_advance_clock(r->daemon->leases, (int64_t) seconds);
        request_reply_json(r, 200, strdup("{\"advanced\":true}\n"));
}
