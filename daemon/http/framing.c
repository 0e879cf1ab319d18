/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "framing"
#include "daemon/http/framing.h"

#include <microhttpd.h>
#include <string.h>
#include <sys/socket.h>

#include "common/base/log.h"
#include "common/http/http_framing.h"
#include "daemon/core/daemon.h"
#include "daemon/http/request.h"

/*
 * The head of the next request as it arrived, before libmicrohttpd parses (and
 * silently repairs) it: a bare CR or a folded line is refused on these raw
 * bytes (http_framing.h).  Peeked while no request is in progress, from a
 * watch that runs before libmicrohttpd's; a head split over several writes is
 * checked on its first part, and whatever passes reaches upstream only as the
 * fields denvrd parsed and judged, written anew.
 */
/* The request line and headers denvrd accepts at most (request.c), and a margin. */
#define HEAD_PEEK_BYTES (8192u + 16384u + 1024u)
void framing_peek_head(struct conn_ctx *ctx) {
        char buf[HEAD_PEEK_BYTES];
        ssize_t n;

        /* Only a head's first part starts at its request line. */
        if (ctx->request || ctx->head_seen || ctx->fd < 0)
                return;
        n = recv(ctx->fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
        if (n <= 0)
                return;
        ctx->head_seen = true;
        ctx->head_problem = http_head_problem(buf, (size_t) n);
}

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
