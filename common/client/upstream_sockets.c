/* SPDX-License-Identifier: MIT */
/*
 * The sockets curl opens, tracked: their count (the connections curl holds)
 * and their registration in the upstream's epoll set, kept while a
 * connection idles in curl's pool.
 */
#define LOG_MODULE "upstream"
#include "common/client/upstream-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/log.h"
#include "common/base/loop_turn.h"

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

/* Takes ts (or untracked fd) out of the epoll set. */
static void epoll_forget(struct upstream *u, struct tracked_socket *ts, int fd) {
        if (epoll_ctl(u->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != ENOENT && errno != EBADF)
                log_debug_errno(-errno, "cannot unwatch socket %d", fd);
        if (ts)
                ts->events = 0;
}

static void socket_event(struct upstream *u, const struct epoll_event *ev) {
        int fd = ev->data.fd, flags = 0, running;
        struct tracked_socket *ts = tracked_find(u, fd);

        if (ts && ts->idle) {
                /* The peer closed (or spoke) on a connection curl keeps idle: curl finds
                 * out when it next picks it; until then no wake-ups (level-triggered). */
                epoll_forget(u, ts, fd);
                return;
        }
        if (ev->events & EPOLLIN)
                flags |= CURL_CSELECT_IN;
        if (ev->events & EPOLLOUT)
                flags |= CURL_CSELECT_OUT;
        if (ev->events & (EPOLLERR | EPOLLHUP))
                flags |= CURL_CSELECT_ERR;
        (void) curl_multi_socket_action(u->multi, fd, flags, &running);
}

#define EVENTS_PER_TURN 64

/* The one socket curl waits on, when a single transfer runs and every other
 * socket in the set is an idle connection's; else NULL. */
static const struct tracked_socket *lone_socket(const struct upstream *u) {
        const struct tracked_socket *lone = NULL;

        if (u->running != 1 || u->untracked_watched > 0)
                return NULL;
        for (size_t i = 0; i < u->n_sockets; i++) {
                const struct tracked_socket *ts = &u->sockets[i];

                if (ts->events == 0 || ts->idle)
                        continue;
                if (lone)
                        return NULL;
                lone = ts;
        }
        return lone;
}

/*
 * With one transfer running (one caller at a time), the set's news is that
 * transfer's socket, whose answer arrived: curl is told so without asking the
 * set (loop_turn.h).  Any other ready socket is an idle connection's, whose
 * news may wait.
 */
static bool take_lone_socket(struct upstream *u) {
        const struct tracked_socket *ts = lone_socket(u);

        if (!ts || !loop_turn_may_skip_ask(u->event, &u->ask_turn))
                return false;
        socket_event(u, &(struct epoll_event) { .events = ts->events, .data.fd = ts->fd });
        return true;
}

static int on_epoll(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct upstream *u = userdata;
        struct epoll_event ev[EVENTS_PER_TURN];
        int n;

        if (take_lone_socket(u)) {
                upstream_check_done(u);
                return 0;
        }
        n = epoll_wait(u->epfd, ev, EVENTS_PER_TURN, 0);
        if (n < 0 && errno != EINTR)
                log_debug_errno(-errno, "epoll_wait on curl's sockets");
        /* A socket that curl closes while an earlier one is handled may give its
         * number to a new one before its own event comes: curl takes that as a
         * readiness that is not there, finds nothing to read and waits on. */
        for (int i = 0; i < n; i++)
                socket_event(u, &ev[i]);
        if (n > 0)
                upstream_check_done(u);
        return 0;
}

int upstream_sockets_init(struct upstream *u) {
        u->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (u->epfd < 0)
                return -errno;
        return sd_event_add_io(u->event, &u->epoll_source, u->epfd, EPOLLIN, on_epoll, u);
}

/* curl is done with fd for now: a pooled connection stays in the set, anything else leaves it. */
static void socket_unwatch(struct upstream *u, struct tracked_socket *ts, curl_socket_t fd, void *socketp) {
        if (ts && ts->events && ts->answered)
                ts->idle = true;
        else if (ts && ts->events)
                epoll_forget(u, ts, fd);
        else if (!ts && socketp) {
                epoll_forget(u, NULL, fd);
                curl_multi_assign(u->multi, fd, NULL);
                u->untracked_watched--;
        }
}

/* Puts fd in the set for events; registered says whether our record has it there. */
static int socket_watch(struct upstream *u, curl_socket_t fd, uint32_t events, bool registered) {
        struct epoll_event ev = { .events = events, .data.fd = fd };

        if (epoll_ctl(u->epfd, registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) == 0)
                return 0;
        /* Our record and the kernel's disagree (the fd was closed and reused
         * behind our back): the kernel's is right. */
        if (errno == ENOENT || errno == EEXIST) {
                if (epoll_ctl(u->epfd, errno == ENOENT ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) == 0)
                        return 0;
        }
        return -errno;
}

int upstream_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        struct upstream *u = userp;
        struct tracked_socket *ts = tracked_find(u, fd);
        uint32_t events = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                socket_unwatch(u, ts, fd, socketp);
                return 0;
        }
        if (what & CURL_POLL_IN)
                events |= EPOLLIN;
        if (what & CURL_POLL_OUT)
                events |= EPOLLOUT;
        if (!ts) {
                /* Not a socket curl opened through us: its socketp says it is in the set. */
                r = socket_watch(u, fd, events, socketp != NULL);
                if (r >= 0 && !socketp) {
                        curl_multi_assign(u->multi, fd, u);
                        u->untracked_watched++;
                }
        } else {
                ts->idle = false;
                ts->answered |= (what & CURL_POLL_IN) != 0;
                /* A kept registration that wants what it had costs no system call. */
                r = ts->events == events ? 0 : socket_watch(u, fd, events, ts->events != 0);
                ts->events = r >= 0 ? events : 0;
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

/* Forgets tracked socket i.  Its registration in the epoll set went with its
 * close (curl's sockets are never dup()ed), or goes with it. */
static void sockets_forget(struct upstream *u, size_t i) {
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
         * that one's registration went with it. */
        stale = tracked_find(u, fd);
        if (stale)
                sockets_forget(u, (size_t) (stale - u->sockets));
        if (u->n_sockets == u->sockets_alloc) {
                size_t want = u->sockets_alloc ? u->sockets_alloc * 2 : 16;
                struct tracked_socket *m = reallocarray(u->sockets, want, sizeof *m);

                if (!m)
                        return fd;   /* only the count suffers */
                u->sockets = m;
                u->sockets_alloc = want;
        }
        if (fstat(fd, &st) == 0 && slot_set(u, fd, u->n_sockets))
                u->sockets[u->n_sockets++] = (struct tracked_socket) { fd, st.st_dev, st.st_ino, 0, false, false };
        return fd;
}

int upstream_close_socket_cb(void *userp, curl_socket_t fd) {
        struct upstream *u = userp;
        struct tracked_socket *ts = tracked_find(u, fd);

        if (ts)
                sockets_forget(u, (size_t) (ts - u->sockets));
        return close(fd);
}

long upstream_connections_open(struct upstream *u) {
        for (size_t i = 0; i < u->n_sockets;)
                if (socket_is(u->sockets[i].fd, &u->sockets[i]))
                        i++;
                else
                        sockets_forget(u, i);
        return (long) u->n_sockets;
}

void upstream_sockets_free(struct upstream *u) {
        /* curl_multi_cleanup() has closed the connections. */
        u->epoll_source = sd_event_source_disable_unref(u->epoll_source);
        if (u->epfd >= 0)
                (void) close(u->epfd);
        u->epfd = -1;
        free(u->sockets);
        free(u->slot_of_fd);
}
