/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A client connection: who is on the other end (its peer, asked of the kernel
 * once), its hang-up watch and what the next request's head looked like.
 * libmicrohttpd's socket context; made in server.c, one request at a time.
 */

#include <stdbool.h>

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
        /* In the listener's watch set (conn_watch.h) for the connection's whole
         * life, for its heads and the peer's FIN/RST: edge-triggered, so it
         * costs no system call per request. */
        bool watched;
        struct conn_ctx *prev, *next;   /* the listener's watched connections */
        bool peer_closed;       /* seen by the watch */
        bool hangup_level;      /* the watch is level-triggered for now (request.c) */
        bool linger;            /* answered with the body unread: close lingering (linger.c) */
        bool head_seen;         /* the next request's head was peeked at (request.c) */
        const char *head_problem;   /* ... and refused for this (static text), or NULL */
        struct request *request;   /* the one in progress on it, if any */
        /* Its last request is done and no next one has begun (server.c): all
         * libmicrohttpd may still owe it is a read, which can wait until the
         * socket has something to read. */
        bool between_requests;
        struct fair_conn fair;     /* fairness.c: its caller's count, header and idle deadlines */
};

/* Peeks at the next request's head on ctx, before libmicrohttpd reads it: its
 * raw problem, if any, is kept for the framing phase (framing.h).  True when
 * the peek found the peer gone instead (end of stream or reset). */
bool conn_peek_head(struct conn_ctx *ctx);
