/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A client connection: who is on the other end (its peer, asked of the kernel
 * once), its hang-up watch and what the next request's head looked like.
 * libmicrohttpd's socket context; made in server.c, one request at a time.
 */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "common/base/fair_ledger.h"
#include "daemon/core/peer.h"

struct listener;
struct request;

/* Per-connection state, libmicrohttpd's socket context. */
struct conn_ctx {
        struct listener *listener;
        int fd;
        struct peer peer;
        char *raw_uri;          /* request line's target, byte-exact, for the next request */
        /* Watches the socket for the peer's FIN/RST for the connection's whole
         * life: edge-triggered, so it costs no system call per request. */
        sd_event_source *hangup_watch;
        bool peer_closed;       /* seen by hangup_watch */
        bool hangup_level;      /* hangup_watch is level-triggered for now (request.c) */
        bool linger;            /* answered with the body unread: close lingering (linger.c) */
        bool head_seen;         /* the next request's head was peeked at (request.c) */
        const char *head_problem;   /* ... and refused for this (static text), or NULL */
        struct request *request;   /* the one in progress on it, if any */
        struct fair_conn fair;     /* fairness.c: its caller's count, header and idle deadlines */
};

/* Peeks at the next request's head on ctx, before libmicrohttpd reads it: its
 * raw problem, if any, is kept for the framing phase (framing.h). */
void conn_peek_head(struct conn_ctx *ctx);
