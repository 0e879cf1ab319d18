/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "server"
#include "daemon/http/conn_watch.h"

#include <assert.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/base/list.h"
#include "common/base/log.h"
#include "common/base/loop_turn.h"
#include "daemon/core/daemon.h"
#include "daemon/http/conn.h"
#include "daemon/http/listener.h"

int conn_watch_open(struct listener *l, int mhd_epoll_fd) {
        /* libmicrohttpd's fd is level-triggered: it stays ready until MHD_run() drains it. */
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

        assert(l->watch_fd < 0);
        l->watch_fd = epoll_create1(EPOLL_CLOEXEC);
        if (l->watch_fd < 0)
                return -errno;
        if (epoll_ctl(l->watch_fd, EPOLL_CTL_ADD, mhd_epoll_fd, &ev) < 0)
                return -errno;
        return 0;
}

void conn_watch_close(struct listener *l) {
        /* Every connection left the set when libmicrohttpd closed it. */
        if (l->watch_fd >= 0)
                (void) close(l->watch_fd);
        l->watch_fd = -1;
}

int conn_watch_add(struct conn_ctx *ctx, uint32_t events) {
        struct listener *l = ctx->listener;
        struct epoll_event ev = { .events = events, .data.ptr = ctx };

        assert(ctx->fd >= 0 && !ctx->watched);
        if (epoll_ctl(l->watch_fd, EPOLL_CTL_ADD, ctx->fd, &ev) < 0)
                return -errno;
        ctx->watched = true;
        LIST_PREPEND(l->watched, ctx);
        return 0;
}

void conn_watch_change(struct conn_ctx *ctx, uint32_t events) {
        struct epoll_event ev = { .events = events, .data.ptr = ctx };

        if (ctx->watched && epoll_ctl(ctx->listener->watch_fd, EPOLL_CTL_MOD, ctx->fd, &ev) < 0)
                log_debug_errno(-errno, "cannot change the watch of socket %d", ctx->fd);
}

void conn_watch_remove(struct conn_ctx *ctx) {
        struct listener *l = ctx->listener;

        if (!ctx->watched)
                return;
        if (epoll_ctl(l->watch_fd, EPOLL_CTL_DEL, ctx->fd, NULL) < 0)
                log_debug_errno(-errno, "cannot unwatch socket %d", ctx->fd);
        ctx->watched = false;
        LIST_REMOVE(l->watched, ctx);
}

struct conn_ctx *conn_watch_lone_idle(const struct listener *l) {
        struct conn_ctx *ctx = l->watched;

        if (!ctx || ctx->next || ctx->request || ctx->head_seen || ctx->peer_closed)
                return NULL;
        return ctx;
}

/*
 * One caller on one connection: between its requests the only news the set can
 * hold for that socket is the next request (libmicrohttpd's fd is woken by it
 * too, and runs next anyway) or its hangup, and the head's peek tells which
 * (conn_peek_head()): the set is not asked (loop_turn.h).
 */
static struct conn_ctx *lone_idle_conn(struct listener *l) {
        struct conn_ctx *ctx = conn_watch_lone_idle(l);

        return ctx && loop_turn_may_skip_ask(l->daemon->event, &l->ask_turn) ? ctx : NULL;
}

#define EVENTS_PER_TURN 64

void conn_watch_take(struct listener *l, void (*on_conn)(struct conn_ctx *ctx, uint32_t events)) {
        struct epoll_event ev[EVENTS_PER_TURN];
        struct conn_ctx *lone = lone_idle_conn(l);
        int n;

        if (lone) {
                on_conn(lone, EPOLLIN);
                return;
        }
        n = epoll_wait(l->watch_fd, ev, EVENTS_PER_TURN, 0);
        if (n < 0 && errno != EINTR)
                log_debug_errno(-errno, "epoll_wait on the connections of %s", l->address);
        for (int i = 0; i < n; i++)
                if (ev[i].data.ptr)
                        on_conn(ev[i].data.ptr, ev[i].events);
}
