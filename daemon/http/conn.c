/* SPDX-License-Identifier: MIT */
#include "daemon/http/conn.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "common/http/http_framing.h"

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
bool conn_peek_head(struct conn_ctx *ctx) {
        char buf[HEAD_PEEK_BYTES];
        ssize_t n;

        /* Only a head's first part starts at its request line. */
        if (ctx->request || ctx->head_seen || ctx->fd < 0)
                return false;
        n = recv(ctx->fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0)
                return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
        if (n == 0)
                return true;
        ctx->head_seen = true;
        ctx->head_problem = http_head_problem(buf, (size_t) n);
        return false;
}
