/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "server"
#include "daemon/http/server.h"

#include <assert.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "common/base/log.h"
#include "common/client/upstream.h"
#include "daemon/core/daemon.h"
#include "daemon/core/peer.h"
#include "daemon/core/peer_gate.h"
#include "daemon/http/conn_watch.h"
#include "daemon/http/fairness.h"
#include "daemon/http/linger.h"
#include "daemon/http/listener.h"
#include "daemon/http/request.h"

/* Large enough that our own 16 KiB header and 8 KiB URL checks see the
 * request and answer with an envelope (beyond about 30 KiB libmicrohttpd
 * answers 431/414 itself).  libmicrohttpd touches the whole pool of every
 * connection, so this is resident memory per client: 500 keep-alive clients
 * cost 16 MiB at 32 KiB (and did 32 MiB at 64 KiB). */
#define CONNECTION_MEMORY_LIMIT (32u * 1024u)
#define CONNECTION_LIMIT 8192u
/* Until fairness.c sets [daemon] idle_timeout on each new connection. */
#define CONNECTION_IDLE_TIMEOUT_SEC 120u
/* How much of a too large chunked body is read (and dropped) to answer 413
 * as usual, on a connection that stays open; beyond it the answer is written
 * at once and the connection closed lingering. */
#define BODY_DRAIN_MAX_BYTES (4u * 1024u * 1024u)

/*
 * One connection, between requests.  After a reply libmicrohttpd takes the
 * socket as readable whatever it holds (a resumed connection always), so it
 * asks to run at once: it would read, find nothing, put the socket back in its
 * epoll set and take that change's own event, four system calls a request.
 * What it may hold unread is at most the start of a request line: a whole one
 * would have begun a request (on_uri()) when the last one ended.  The rest of
 * that line, like any next request or hangup, reaches the socket, which the
 * watch set reports (conn_watch.h), and only then does libmicrohttpd run.  Any
 * run for another reason, or the fallback timer, does the read as before.
 */
#define PARKED_FALLBACK_MS 1000u

static bool server_parked(struct listener *l) {
        const struct conn_ctx *ctx = conn_watch_lone_idle(l);
        const union MHD_DaemonInfo *di;

        if (!ctx || !ctx->between_requests)
                return false;
        /* Every connection libmicrohttpd has, not only the watched ones. */
        di = MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        return di && di->num_connections == 1;
}

/* Whether the timer is set to fire by at anyway.  A later deadline leaves it
 * alone: it fires early, libmicrohttpd runs and says its deadline again.  The
 * parked fallback and the in-flight deadline would otherwise take turns, and
 * move the timerfd on every request. */
static bool timer_due_by(struct listener *l, uint64_t at) {
        uint64_t armed;
        int enabled;

        return sd_event_source_get_enabled(l->timer_source, &enabled) >= 0 && enabled != SD_EVENT_OFF &&
               sd_event_source_get_time(l->timer_source, &armed) >= 0 && armed <= at;
}

static void server_rearm_timer(struct listener *l) {
        MHD_UNSIGNED_LONG_LONG ms;
        uint64_t now;

        /* No deadline (a request in flight has none): one still set is left to fire. */
        if (MHD_get_timeout(l->mhd, &ms) != MHD_YES)
                return;
        if (ms == 0 && server_parked(l))
                ms = PARKED_FALLBACK_MS;
        /* libmicrohttpd says 0 whenever it has work left (e.g. a request already
         * buffered): run it on the next iteration, from the defer source, which
         * unlike a timer costs no system call. */
        if (ms == 0) {
                (void) sd_event_source_set_enabled(l->timer_source, SD_EVENT_OFF);
                listener_wake(l);
                return;
        }
        if (sd_event_now(l->daemon->event, CLOCK_MONOTONIC, &now) < 0 || timer_due_by(l, now + ms * 1000))
                return;
        /* Its other timeouts are idle connections' (seconds): a coarse timer
         * lets sd-event leave the timerfd alone while requests come and go. */
        (void) sd_event_source_set_time_accuracy(l->timer_source, ms >= 1000 ? 250000 : 1000);
        (void) sd_event_source_set_time(l->timer_source, now + ms * 1000);
        (void) sd_event_source_set_enabled(l->timer_source, SD_EVENT_ONESHOT);
}

/* Rounds of MHD_run() per wake-up while libmicrohttpd has more to do at once. */
#define MHD_RUN_ROUNDS 4
/* Passes of server_run() over libmicrohttpd and the upstream while answers come back at once. */
#define SERVER_RUN_PASSES 4

static void mhd_rounds(struct listener *l) {
        MHD_UNSIGNED_LONG_LONG ms;

        /* A connection advances one state per MHD_run(): a resumed one needs
         * a few (send the reply, finish the request, read the next) and would
         * otherwise take an event-loop iteration and a timer each. */
        for (unsigned i = 0; i < MHD_RUN_ROUNDS; i++) {
                (void) MHD_run(l->mhd);
                if (server_parked(l)) {
                        l->replied_resumed = false;
                        return;
                }
                if (MHD_get_timeout(l->mhd, &ms) != MHD_YES || ms > 0)
                        break;
        }
        /* libmicrohttpd takes a suspended connection out of its epoll set and puts
         * it back once the reply is out, which reports the socket writable at once:
         * one more round takes that news now rather than in a wake-up of its own. */
        if (l->replied_resumed) {
                l->replied_resumed = false;
                (void) MHD_run(l->mhd);
        }
}

static bool wake_pending(struct listener *l) {
        int enabled;

        return sd_event_source_get_enabled(l->wake_source, &enabled) >= 0 && enabled != SD_EVENT_OFF;
}

/* Other transfers in flight: their answers are due too, and the wake-up, after the
 * loop's other news (its lower priority), sends them together. */
static bool answers_due(struct daemon *d) {
        return upstream_running(d->upstream) > 0;
}

/* The watch set's news (conn_watch.h), handed out before libmicrohttpd runs:
 * each head is peeked at before it is read. */
static void server_take_watch(struct listener *l) {
        /* No run of libmicrohttpd (which may close connections) meanwhile. */
        l->running = true;
        conn_watch_take(l, request_conn_event);
        l->running = false;
}

static void server_run(struct listener *l) {
        /* The set was ready in this loop turn, and its turn has not come yet
         * (an upstream answer runs libmicrohttpd first): its news first. */
        if (sd_event_source_get_pending(l->io_source) > 0)
                server_take_watch(l);
        l->running = true;
        for (unsigned pass = 1;; pass++) {
                mhd_rounds(l);
                /* Requests this pass passed upstream go out now, not one iteration
                 * later; an answer already there resumes its request at once, and
                 * the next pass sends the reply (after the last, the wake-up does). */
                upstream_run_now(l->daemon->upstream);
                if (pass == SERVER_RUN_PASSES || !wake_pending(l) || answers_due(l->daemon))
                        break;
                (void) sd_event_source_set_enabled(l->wake_source, SD_EVENT_OFF);
        }
        server_rearm_timer(l);
        l->running = false;
}

static int on_mhd_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct listener *l = userdata;

        server_take_watch(l);
        server_run(l);
        return 0;
}

static int on_mhd_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        server_run(userdata);
        return 0;
}

static int on_mhd_wake(sd_event_source *s, void *userdata) {
        server_run(userdata);
        return 0;
}

void server_run_woken(struct daemon *d) {
        if (answers_due(d))
                return;
        for (size_t i = 0; i < d->n_listeners; i++) {
                struct listener *l = d->listeners[i];

                if (l->running || !l->wake_source || !wake_pending(l))
                        continue;
                (void) sd_event_source_set_enabled(l->wake_source, SD_EVENT_OFF);
                server_run(l);
        }
}

/* Who connected: asked of the kernel now, once for all the connection's requests. */
static void peer_fill(struct conn_ctx *ctx, struct MHD_Connection *conn) {
        const union MHD_ConnectionInfo *ci;

        if (ctx->listener->kind == LISTENER_UNIX) {
                peer_identify_unix(&ctx->peer, ctx->fd);
                return;
        }

        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
                const struct sockaddr *sa = ci->client_addr;
                char host[INET6_ADDRSTRLEN] = "?";

                if (sa->sa_family == AF_INET) {
                        const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
                        ctx->peer.port = ntohs(in->sin_port);
                        snprintf(ctx->peer.addr, sizeof ctx->peer.addr, "%s:%u", host, ctx->peer.port);
                } else if (sa->sa_family == AF_INET6) {
                        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
                        ctx->peer.port = ntohs(in6->sin6_port);
                        snprintf(ctx->peer.addr, sizeof ctx->peer.addr, "[%s]:%u", host, ctx->peer.port);
                }
        }
        peer_identify_tcp_cached(&ctx->peer, ctx->fd, &ctx->listener->daemon->sock_diag,
                                 &ctx->listener->daemon->peer_cache, daemon_now(ctx->listener->daemon));
}

/* Whether the client sent what nobody read: libmicrohttpd closes after its own
 * refusals (431, 400 for broken chunks...) without reading on. */
static bool unread_bytes(int fd) {
        int n = 0;

        return ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

/*
 * Replies go out whole (one writev of headers and body): Nagle's algorithm
 * would only hold the last segment back for the client's delayed ACK.  Set
 * here rather than with the socket unit's NoDelay=, which systemd also tries
 * on the unix socket, and whatever libmicrohttpd does at accept.
 */
static void set_nodelay(int fd) {
        int one = 1;

        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
                log_debug("TCP_NODELAY on fd %d failed: %s", fd, strerror(errno));
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
        struct listener *l = cls;
        struct conn_ctx *ctx = *socket_context;

        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
                const union MHD_ConnectionInfo *ci;

                ctx = calloc(1, sizeof *ctx);
                if (!ctx)
                        return;   /* handled: requests on it get refused */
                ctx->listener = l;
                ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
                ctx->fd = ci ? ci->connect_fd : -1;
                /* libmicrohttpd does not watch suspended connections; this does,
                 * so a client that goes away aborts its upstream transfer at once.
                 * Without it (no memory) a hangup is seen when the reply is sent. */
                if (ctx->fd >= 0)
                        (void) request_conn_watch(ctx);
                /* The first head may be here already, before libmicrohttpd reads it. */
                (void) conn_peek_head(ctx);
                if (l->kind == LISTENER_TCP && ctx->fd >= 0)
                        set_nodelay(ctx->fd);
                peer_fill(ctx, conn);
                ctx->peer.allowed = peer_gate_allowed(&ctx->peer, l->daemon->config, l->daemon->euid);
                *socket_context = ctx;
                (void) fairness_conn_open(l->daemon, ctx, conn);
                return;
        }

        if (ctx) {
                /* Before libmicrohttpd closes the fd, whose number may be reused at once. */
                conn_watch_remove(ctx);
                fairness_conn_close(ctx);
                if (ctx->fd >= 0 && (ctx->linger || unread_bytes(ctx->fd)))
                        (void) linger_start(l->daemon, ctx->fd);
                peer_done(&ctx->peer);
                free(ctx->raw_uri);
                free(ctx);
                *socket_context = NULL;
        }
}

static struct conn_ctx *conn_ctx_of(struct MHD_Connection *conn) {
        const union MHD_ConnectionInfo *ci;

        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return ci ? ci->socket_context : NULL;
}

/* The only place the request target is seen before libmicrohttpd decodes it. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
        struct conn_ctx *ctx = conn_ctx_of(conn);

        if (ctx) {
                ctx->between_requests = false;
                free(ctx->raw_uri);
                ctx->raw_uri = strdup(uri);
                fairness_conn_request_line(ctx);
        }
        return NULL;
}

static enum MHD_Result queue_reply(struct request *r) {
        enum MHD_Result ret;

        /* A caller refused outright is answered once, then the connection ends. */
        if (r->conn_ctx->fair.refused)
                (void) MHD_add_response_header(r->response, MHD_HTTP_HEADER_CONNECTION, "close");
        ret = MHD_queue_response(r->conn, r->status, r->response);
        MHD_destroy_response(r->response);
        r->response = NULL;
        return ret;
}

/* The headers are in: a new request, its header phases run. */
static enum MHD_Result on_headers(struct listener *l, struct MHD_Connection *conn, const char *url,
                                  const char *method, void **con_cls) {
        struct conn_ctx *ctx = conn_ctx_of(conn);
        struct request *r;

        if (!ctx)
                return MHD_NO;
        fairness_conn_headers_done(ctx);
        r = request_new(l, ctx, conn, method, url);
        if (!r)
                return MHD_NO;
        *con_cls = r;
        request_begin(r);
        if (r->response) {
                /* Refused before the body: libmicrohttpd sends the answer
                 * (no 100 Continue) and closes without reading the body,
                 * which a client may be sending already. */
                if (request_has_body(r))
                        ctx->linger = true;
                return queue_reply(r);
        }
        request_watch_hangup(r);
        return MHD_YES;
}

/* A piece of the body. */
static enum MHD_Result on_body(struct request *r, const char *data, size_t n) {
        if (!r->response)
                (void) fairness_request_body(r, n);
        request_append_body(r, data, n);
        if (!r->response)
                return MHD_YES;
        /* Answered (413) while the body is still arriving: libmicrohttpd
         * queues a reply only once the whole request is in, so the rest
         * is read and dropped, up to a bound.  Beyond it the answer is
         * written here and the connection closed, lingering so that the
         * client reads the answer rather than a reset. */
        r->body_discarded += n;
        if (r->body_discarded <= BODY_DRAIN_MAX_BYTES)
                return MHD_YES;
        if (request_send_now(r) == -EAGAIN && r->body_discarded <= 2 * BODY_DRAIN_MAX_BYTES)
                return MHD_YES;   /* the socket's buffer is full: more on the next call */
        return MHD_NO;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls) {
        struct request *r = *con_cls;
        size_t n = *upload_data_size;

        if (!r)
                return on_headers(cls, conn, url, method, con_cls);
        if (r->aborted)
                return MHD_NO;
        if (n > 0) {
                *upload_data_size = 0;
                return on_body(r, upload_data, n);
        }
        if (r->response) {
                r->listener->replied_resumed |= r->dispatched;
                return queue_reply(r);
        }
        if (r->dispatched)
                return MHD_YES;   /* woken without a reply yet; keep waiting */

        r->dispatched = true;
        request_dispatch(r);
        if (r->response)
                return queue_reply(r);
        request_suspend(r);
        return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
        struct request *r = *con_cls;
        struct conn_ctx *ctx = conn_ctx_of(conn);

        if (r) {
                request_free(r, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK || r->sent_now);
                *con_cls = NULL;
        }
        if (ctx) {
                ctx->between_requests = true;
                fairness_conn_request_end(ctx);
        }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) _printf_(2, 0);
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        char buf[512];
        size_t n;

        (void) vsnprintf(buf, sizeof buf, fmt, ap);
        n = strlen(buf);
        if (n > 0 && buf[n - 1] == '\n')
                buf[n - 1] = 0;
        log_debug("libmicrohttpd: %s", buf);
}

int server_start(struct listener *l) {
        struct daemon *d = l->daemon;
        const union MHD_DaemonInfo *di;
        int r;

        assert(l->fd >= 0);

        l->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
                                  0, NULL, NULL, on_access, l,
                                  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, l,
                                  MHD_OPTION_LISTEN_SOCKET, l->fd,
                                  MHD_OPTION_URI_LOG_CALLBACK, on_uri, l,
                                  MHD_OPTION_NOTIFY_CONNECTION, on_connection, l,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, l,
                                  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) CONNECTION_MEMORY_LIMIT,
                                  MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT,
                                  MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_IDLE_TIMEOUT_SEC,
                                  MHD_OPTION_END);
        if (!l->mhd)
                return log_error_errno(EIO, "cannot start HTTP server on %s", l->address);
        l->fd = -1;   /* libmicrohttpd owns and closes it now */

        di = MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        if (!di)
                return log_error_errno(EIO, "no epoll fd from libmicrohttpd for %s", l->address);

        r = conn_watch_open(l, di->epoll_fd);
        if (r < 0)
                return log_error_errno(r, "cannot watch the connections of %s", l->address);
        r = sd_event_add_io(d->event, &l->io_source, l->watch_fd, EPOLLIN, on_mhd_io, l);
        if (r < 0)
                return log_error_errno(r, "cannot watch HTTP server of %s", l->address);
        r = sd_event_add_time(d->event, &l->timer_source, CLOCK_MONOTONIC, UINT64_MAX, 1000,
                              on_mhd_timer, l);
        if (r < 0)
                return log_error_errno(r, "cannot add timer for %s", l->address);
        r = sd_event_add_defer(d->event, &l->wake_source, on_mhd_wake, l);
        if (r < 0)
                return log_error_errno(r, "cannot add wake-up source for %s", l->address);
        (void) sd_event_source_set_enabled(l->wake_source, SD_EVENT_OFF);
        /* After the news already pending (other answers, other requests), so that
         * one run of libmicrohttpd serves them all; its own epoll fd stays at the
         * normal priority, so a busy loop still sends replies. */
        (void) sd_event_source_set_priority(l->wake_source, SD_EVENT_PRIORITY_NORMAL + 1);
        server_rearm_timer(l);

        log_info("listening on %s %s%s", l->kind == LISTENER_UNIX ? "unix" : "tcp", l->address,
                 l->activated ? " (from systemd)" : "");
        return 0;
}

void server_stop(struct listener *l) {
        l->io_source = sd_event_source_disable_unref(l->io_source);
        l->timer_source = sd_event_source_disable_unref(l->timer_source);
        l->wake_source = sd_event_source_disable_unref(l->wake_source);
        if (l->mhd) {
                MHD_stop_daemon(l->mhd);
                l->mhd = NULL;
        }
        conn_watch_close(l);
}
