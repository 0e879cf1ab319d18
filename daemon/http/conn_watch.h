/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A listener's watch set: libmicrohttpd's epoll fd and every client socket of
 * the listener (for its next request's head and its hangups) in one epoll set,
 * which is the listener's one source in the event loop.  A request's arrival
 * wakes both the socket and libmicrohttpd; as two sources of the loop they
 * took two loop turns (an epoll_wait() each), as one they take one.
 */

#include <stdint.h>

struct conn_ctx;
struct listener;

/* Opens l's set with libmicrohttpd's epoll fd in it (l->watch_fd). */
int conn_watch_open(struct listener *l, int mhd_epoll_fd);
void conn_watch_close(struct listener *l);

/* Puts ctx's socket in its listener's set for events (edge-triggered unless
 * asked otherwise), changes them, takes it out (before its fd is closed). */
int conn_watch_add(struct conn_ctx *ctx, uint32_t events);
void conn_watch_change(struct conn_ctx *ctx, uint32_t events);
void conn_watch_remove(struct conn_ctx *ctx);

/* The listener's one watched connection when it is idle (no request, no next
 * head peeked at, its peer still there), else NULL. */
struct conn_ctx *conn_watch_lone_idle(const struct listener *l);

/* Hands the set's news to on_conn, connection by connection; libmicrohttpd's
 * own is left to the caller, which runs it next. */
void conn_watch_take(struct listener *l, void (*on_conn)(struct conn_ctx *ctx, uint32_t events));
