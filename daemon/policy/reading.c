/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "reading"
#include "daemon/policy/reading.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/api/api_read.h"
#include "common/api/optable.h"
#include "common/api/wait_query.h"
#include "common/base/log.h"
#include "common/config/config.h"
#include "daemon/core/daemon.h"
#include "daemon/http/request.h"
#include "daemon/http/route.h"

/* Callers held to an operation list (the access phase said so) send only what the operation has. */
static enum api_read_mode mode_for(const struct request *r) {
        return r->rights_list ? API_READ_STRICT : API_READ_OPEN;
}

static bool refuse(struct request *r, int k, const char *why) {
        if (k == -ENOMEM || !why) {
                request_reply_error(r, 503, NULL, "out of memory reading the request");
                return false;
        }
        log_debug("%s: refused by the reading: %s", r->id, why);
        r->daemon->metrics.refused_reading++;
        request_reply_error(r, 400, NULL, "%s", why);
        return false;
}

/* A wait reads its inner GET, with the wait's own parameters taken out. */
static bool read_wait(struct request *r, const char *inner) {
        _cleanup_free_ struct wait_query *q = NULL;
        int k;

        q = calloc(1, sizeof *q);
        if (!q)
                return refuse(r, -ENOMEM, NULL);
        k = wait_query_parse(r->query, r->query ? strlen(r->query) : 0, q);
        if (k < 0) {
                bool ok = refuse(r, k, q->error);

                wait_query_done(q);
                return ok;
        }
        r->wait_query = TAKE_PTR(q);
        k = api_read(optable_lookup("GET", inner), mode_for(r), r->wait_query->rest, r->wait_query->rest_len,
                     NULL, NULL, 0, r->reading);
        return k < 0 ? refuse(r, k, r->reading->error) : true;
}

bool reading_run(struct request *r) {
        const char *inner = r->route.inner;
        const char *ct;
        int k;

        assert(r && r->canon_path && !r->reading);
        if (!inner && r->route.kind != ROUTE_API)
                return true;   /* denvrd's own endpoints and the login shim read their own input */

        r->reading = calloc(1, sizeof *r->reading);
        if (!r->reading)
                return refuse(r, -ENOMEM, NULL);
        if (inner)
                return read_wait(r, inner);
        ct = request_header(r, "Content-Type");
        k = api_read(optable_lookup(r->method, r->canon_path), mode_for(r), r->query,
                     r->query ? strlen(r->query) : 0, ct, r->body, r->body_len, r->reading);
        return k < 0 ? refuse(r, k, r->reading->error) : true;
}

void reading_done(struct request *r) {
        if (r->reading) {
                api_read_done(r->reading);
                free(r->reading);
                r->reading = NULL;
        }
        if (r->wait_query) {
                wait_query_done(r->wait_query);
                free(r->wait_query);
                r->wait_query = NULL;
        }
}
