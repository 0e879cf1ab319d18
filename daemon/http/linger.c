/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "linger"
#include "daemon/http/linger.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/base/list.h"
#include "common/base/log.h"
#include "daemon/core/daemon.h"

/* nginx lingers up to 30 s, 5 s without data.  A client that reads its answer
 * stops sending at once and closes within milliseconds; these bounds are for
 * those that do not, which then get the reset. */
#define LINGER_MAX_USEC (5u * 1000000u)
#define LINGER_IDLE_USEC (1u * 1000000u)
#define LINGER_MAX_BYTES (16u * 1024u * 1024u)
#define LINGER_MAX_CONNECTIONS 64u

struct lingering_conn {
        struct daemon *daemon;
        struct lingering_conn *prev, *next;
        int fd;
        sd_event_source *io, *timer;
        uint64_t deadline;      /* CLOCK_MONOTONIC: LINGER_MAX_USEC after the start */
        size_t dropped;
};

static void linger_free(struct lingering_conn *g) {
        struct daemon *d = g->daemon;

        LIST_REMOVE(d->lingering, g);
        d->n_lingering--;
        g->io = sd_event_source_disable_unref(g->io);
        g->timer = sd_event_source_disable_unref(g->timer);
        if (g->fd >= 0)
                (void) close(g->fd);
        free(g);
}

static void linger_rearm(struct lingering_conn *g) {
        uint64_t at = daemon_now(g->daemon) + LINGER_IDLE_USEC;

        (void) sd_event_source_set_time(g->timer, at < g->deadline ? at : g->deadline);
}

static int on_linger_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct lingering_conn *g = userdata;

        log_debug("closing a lingering connection after %zu dropped bytes: the client goes on sending",
                  g->dropped);
        linger_free(g);
        return 0;
}

static int on_linger_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct lingering_conn *g = userdata;
        char buf[16384];

        for (;;) {
                ssize_t n = recv(g->fd, buf, sizeof buf, MSG_DONTWAIT);

                if (n > 0) {
                        g->dropped += (size_t) n;
                        if (g->dropped > LINGER_MAX_BYTES) {
                                log_debug("closing a lingering connection: %zu bytes dropped", g->dropped);
                                linger_free(g);
                                return 0;
                        }
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                        linger_rearm(g);
                        return 0;
                }
                /* The client closed (or reset): done. */
                log_debug("lingering connection closed by the client after %zu dropped bytes", g->dropped);
                linger_free(g);
                return 0;
        }
}

bool linger_start(struct daemon *d, int fd) {
        struct lingering_conn *g;

        if (d->quitting || fd < 0 || d->n_lingering >= LINGER_MAX_CONNECTIONS)
                return false;
        g = calloc(1, sizeof *g);
        if (!g)
                return false;
        g->daemon = d;
        g->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        LIST_PREPEND(d->lingering, g);
        d->n_lingering++;
        g->deadline = daemon_now(d) + LINGER_MAX_USEC;
        if (g->fd < 0 ||
            sd_event_add_io(d->event, &g->io, g->fd, EPOLLIN | EPOLLRDHUP, on_linger_io, g) < 0 ||
            sd_event_add_time(d->event, &g->timer, CLOCK_MONOTONIC, daemon_now(d) + LINGER_IDLE_USEC,
                              100000, on_linger_timer, g) < 0) {
                linger_free(g);
                return false;
        }
        /* The answer is out: the client sees its end after it. */
        (void) shutdown(g->fd, SHUT_WR);
        return true;
}

void linger_stop_all(struct daemon *d) {
        while (d->lingering)
                linger_free(d->lingering);
}
