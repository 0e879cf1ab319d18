/* SPDX-License-Identifier: MIT */
/*
 * The sockets curl opens, tracked: their count (the connections curl holds)
 * and their sd-event watches, kept while a connection idles in curl's pool.
 */
#define LOG_MODULE "upstream"
#include "common/client/upstream-internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/log.h"

static struct tracked_socket *tracked_find(struct upstream *u, int fd) {
        if (fd < 0 || (size_t) fd >= u->n_slots || u->slot_of_fd[fd] == 0)
                return NULL;
        return &u->sockets[u->slot_of_fd[fd] - 1];
}

/* Records that fd's entry is at index i; false without memory (the entry is then not kept). */
static bool slot_set(struct upstream *u, int fd, size_t i) {
        if ((size_t) fd >= u->n_slots) {
                size_t want = (size_t) fd + 64;
                unsigned *m = reallocarray(u->slot_of_fd, want, sizeof *m);

                if (!m)
                        return false;
                memset(m + u->n_slots, 0, (want - u->n_slots) * sizeof *m);
                u->slot_of_fd = m;
                u->n_slots = want;
        }
        u->slot_of_fd[fd] = (unsigned) i + 1;
        return true;
}

static int on_socket_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct upstream *u = userdata;
        struct tracked_socket *ts = tracked_find(u, fd);
        int flags = 0, running;

        if (ts && ts->idle) {
                /* The peer closed (or spoke) on a connection curl keeps idle: curl finds
                 * out when it next picks it; until then no wake-ups (level-triggered). */
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return 0;
        }
        if (revents & EPOLLIN)
                flags |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                flags |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                flags |= CURL_CSELECT_ERR;

        (void) curl_multi_socket_action(u->multi, fd, flags, &running);
        upstream_check_done(u);
        return 0;
}

/* curl is done with fd for now: a pooled connection keeps its watch, anything else loses it. */
static void socket_unwatch(struct upstream *u, struct tracked_socket *ts, curl_socket_t fd, sd_event_source *src) {
        if (ts && ts->io && ts->answered) {
                ts->idle = true;
                return;
        }
        if (ts && ts->io) {
                src = ts->io;
                ts->io = NULL;
        } else if (src)
                curl_multi_assign(u->multi, fd, NULL);
        sd_event_source_disable_unref(src);
}

int upstream_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        struct upstream *u = userp;
        struct tracked_socket *ts = tracked_find(u, fd);
        sd_event_source *src = ts && ts->io ? ts->io : socketp;
        uint32_t events = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                socket_unwatch(u, ts, fd, src);
                return 0;
        }
        if (what & CURL_POLL_IN)
                events |= EPOLLIN;
        if (what & CURL_POLL_OUT)
                events |= EPOLLOUT;
        if (ts) {
                ts->idle = false;
                ts->answered |= (what & CURL_POLL_IN) != 0;
        }
        if (src) {
                /* Both are no-ops (no system call) for a kept watch that wants what it had. */
                r = sd_event_source_set_io_events(src, events);
                if (r >= 0)
                        r = sd_event_source_set_enabled(src, SD_EVENT_ON);
        } else {
                r = sd_event_add_io(u->event, &src, fd, events, on_socket_io, u);
                if (r >= 0 && ts)
                        ts->io = src;
                else if (r >= 0)
                        curl_multi_assign(u->multi, fd, src);
        }
        if (r < 0) {
                log_debug_errno(r, "cannot watch socket %d", fd);
                return -1;
        }
        return 0;
}

/*
 * Counting sockets is the only way to know how many connections curl holds.
 * curl closes some sockets (failed connects) without the close callback, so
 * each socket is remembered with its inode and checked when counted.
 */
static bool socket_is(int fd, const struct tracked_socket *t) {
        struct stat st;

        return fstat(fd, &st) == 0 && st.st_dev == t->dev && st.st_ino == t->ino;
}

/* Forgets tracked socket i; fd_is_ours says whether its fd is still that socket
 * (its watch is then unregistered) or may be another's (the watch is orphaned). */
static void sockets_forget(struct upstream *u, size_t i, bool fd_is_ours) {
        sd_event_source *io = u->sockets[i].io;

        if (io && fd_is_ours)
                sd_event_source_disable_unref(io);
        else if (io) {
                sd_event_source **m = reallocarray(u->orphans, u->n_orphans + 1, sizeof *m);

                if (m) {
                        u->orphans = m;
                        u->orphans[u->n_orphans++] = io;
                }
        }
        u->slot_of_fd[u->sockets[i].fd] = 0;
        u->sockets[i] = u->sockets[--u->n_sockets];
        if (i < u->n_sockets)
                u->slot_of_fd[u->sockets[i].fd] = (unsigned) i + 1;
}

curl_socket_t upstream_open_socket_cb(void *userp, curlsocktype purpose, struct curl_sockaddr *a) {
        struct upstream *u = userp;
        struct tracked_socket *stale;
        struct stat st;
        int fd;

        fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
        if (fd < 0)
                return CURL_SOCKET_BAD;
        u->sockets_opened++;
        /* The kernel handed out the number of a socket curl closed without telling us:
         * that one's watch is unregistered now (this fd is nobody's yet). */
        stale = tracked_find(u, fd);
        if (stale)
                sockets_forget(u, (size_t) (stale - u->sockets), true);
        if (u->n_sockets == u->sockets_alloc) {
                size_t want = u->sockets_alloc ? u->sockets_alloc * 2 : 16;
                struct tracked_socket *m = reallocarray(u->sockets, want, sizeof *m);

                if (!m)
                        return fd;   /* only the count suffers */
                u->sockets = m;
                u->sockets_alloc = want;
        }
        if (fstat(fd, &st) == 0 && slot_set(u, fd, u->n_sockets))
                u->sockets[u->n_sockets++] = (struct tracked_socket) { fd, st.st_dev, st.st_ino, NULL, false, false };
        return fd;
}

int upstream_close_socket_cb(void *userp, curl_socket_t fd) {
        struct upstream *u = userp;
        struct tracked_socket *ts = tracked_find(u, fd);

        if (ts)
                sockets_forget(u, (size_t) (ts - u->sockets), socket_is(fd, ts));
        return close(fd);
}

long upstream_connections_open(struct upstream *u) {
        for (size_t i = 0; i < u->n_sockets;)
                if (socket_is(u->sockets[i].fd, &u->sockets[i]))
                        i++;
                else
                        sockets_forget(u, i, false);
        return (long) u->n_sockets;
}

void upstream_sockets_free(struct upstream *u) {
        /* curl_multi_cleanup() closed the connections (upstream_close_socket_cb() dropped
         * their watches); what is left lost its socket behind our back. */
        for (size_t i = 0; i < u->n_sockets; i++)
                sd_event_source_unref(u->sockets[i].io);
        for (size_t i = 0; i < u->n_orphans; i++)
                sd_event_source_unref(u->orphans[i]);
        free(u->orphans);
        free(u->sockets);
        free(u->slot_of_fd);
}
