/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "framing"
#include "daemon/http/framing.h"

#include <microhttpd.h>
#include <string.h>

#include "common/base/log.h"
#include "common/http/http_framing.h"
#include "daemon/core/daemon.h"
#include "daemon/http/request.h"

struct field_scan {
        struct http_framing framing;
        const char *problem;
};

static enum MHD_Result scan_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        struct field_scan *f = cls;

        f->problem = http_field_problem(key, value);
        if (f->problem)
                return MHD_NO;
        http_framing_add(&f->framing, key, value);
        return MHD_YES;
}

/*
 * Header hygiene (http_framing.h) and the target's '#': what another parser
 * could read otherwise is refused, with the connection closed, before any
 * other check looks at it.
 */
bool framing_check(struct request *r) {
        struct field_scan f = { .problem = NULL };
        const char *why = r->head_problem;

        if (!why && strchr(r->raw_uri, '#'))
                why = "a '#' in the request target (no client sends a fragment; what follows it would be lost "
                      "on the way upstream)";
        if (!why) {
                (void) MHD_get_connection_values(r->conn, MHD_HEADER_KIND, scan_field, &f);
                why = f.problem ? f.problem : http_framing_problem(&f.framing);
        }
        if (!why)
                return true;
        r->daemon->metrics.refused_framing++;
        log_debug("%s: refused: %s", r->id, why);
        request_reply_error(r, 400, NULL, "request refused: %s", why);
        (void) request_reply_header(r, "Connection", "close");
        return false;
}
