/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "fairness"
#include "daemon/http/fairness.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/base/log.h"
#include "common/config/config.h"
#include "common/http/envelope.h"
#include "daemon/core/daemon.h"
#include "daemon/core/peer_gate.h"
#include "daemon/http/listener.h"
#include "daemon/http/request.h"

/* A caller refused outright has this long to read its 403 before it is closed. */
#define REFUSED_PEER_USEC 1000000u
/* Every limit frees up as requests end, which takes seconds at most. */
#define RETRY_AFTER_SEC "1"
#define CALLER_KEY_MAX (LOCAL_TOKEN_NAME_MAX + 80)

#define container_of(ptr, type, member) ((type *) (void *) ((char *) (ptr) - offsetof(type, member)))

static const char *const refusal_key[_FAIR_REFUSED_MAX] = {
        [FAIR_REFUSED_CONNECTIONS] = "max_connections_per_caller",
        [FAIR_REFUSED_REQUESTS] = "max_requests_per_caller",
        [FAIR_REFUSED_WAITS] = "max_waits_per_caller",
        [FAIR_REFUSED_BODY_BYTES] = "max_buffered_bytes_per_caller",
};

static const char *const close_reason[_FAIR_CLOSED_MAX] = {
        [FAIR_CLOSED_REFUSED_PEER] = "refused_peer",
        [FAIR_CLOSED_HEADER_TIMEOUT] = "header_timeout",
        [FAIR_CLOSED_IDLE_TIMEOUT] = "idle_timeout",
};

int fairness_new(struct fairness **ret) {
        struct fairness *f = calloc(1, sizeof *f);

        if (!f)
                return -ENOMEM;
        *ret = f;
        return 0;
}

struct fairness *fairness_free(struct fairness *f) {
        if (!f)
                return NULL;
        fair_ledger_done(&f->ledger);
        free(f);
        return NULL;
}

/* --- who the caller is ------------------------------------------------------------- */

/* denvrd's own user and root could stop or reconfigure it: limiting them protects nobody. */
static bool peer_exempt(const struct daemon *d, const struct peer *p) {
        return p->identified && (p->uid == d->euid || p->uid == 0);
}

static void conn_key(const struct conn_ctx *ctx, char *buf, size_t n) {
        if (ctx->peer.identified)
                snprintf(buf, n, "uid:%u", (unsigned) ctx->peer.uid);
        else
                snprintf(buf, n, "listener:%s", ctx->listener->address);
}

/* The caller as a message names it. */
static void caller_name(const struct fair_caller *c, char *buf, size_t n) {
        if (strncmp(c->key, "token:", 6) == 0)
                snprintf(buf, n, "local token %s", c->key + 6);
        else if (strncmp(c->key, "uid:", 4) == 0)
                snprintf(buf, n, "uid %s", c->key + 4);
        else
                snprintf(buf, n, "the unidentified callers on %s", c->key + 9);
}

static uint64_t limit_of(const struct denvr_config *c, enum fair_refusal what) {
        switch (what) {
        case FAIR_REFUSED_CONNECTIONS:
                return c->max_connections_per_caller;
        case FAIR_REFUSED_REQUESTS:
                return c->max_requests_per_caller;
        case FAIR_REFUSED_WAITS:
                return c->max_waits_per_caller;
        case FAIR_REFUSED_BODY_BYTES:
                return c->max_buffered_bytes_per_caller;
        default:
                assert_not_reached();
        }
}

/* "uid 1000 has 128 requests in progress; the limit is [daemon] max_requests_per_caller = 128" */
static char *refusal_message(const struct denvr_config *c, const struct fair_caller *who,
                             enum fair_refusal what, uint64_t want) {
        static const char *const held[_FAIR_REFUSED_MAX] = {
                [FAIR_REFUSED_CONNECTIONS] = "connections open",
                [FAIR_REFUSED_REQUESTS] = "requests in progress",
                [FAIR_REFUSED_WAITS] = "waits in progress",
                [FAIR_REFUSED_BODY_BYTES] = "bytes of request bodies buffered",
        };
        static const enum fair_resource res[_FAIR_REFUSED_MAX] = {
                [FAIR_REFUSED_CONNECTIONS] = FAIR_CONNECTIONS,
                [FAIR_REFUSED_REQUESTS] = FAIR_REQUESTS,
                [FAIR_REFUSED_WAITS] = FAIR_WAITS,
                [FAIR_REFUSED_BODY_BYTES] = FAIR_BODY_BYTES,
        };
        char name[CALLER_KEY_MAX + 32];
        char *msg;

        caller_name(who, name, sizeof name);
        if (asprintf(&msg, "%s has %" PRIu64 " %s and this would add %" PRIu64 ": over the limit of "
                     "[daemon] %s = %" PRIu64 " in denvr.toml; retry once some have ended", name,
                     who->used[res[what]], held[what], want, refusal_key[what], limit_of(c, what)) < 0)
                return NULL;
        return msg;
}

/* --- connections: deadlines ---------------------------------------------------------- */

/*
 * Deadlines are lazy: a request moves ctx->fair.deadline, and the timer is
 * touched only when the new deadline is earlier than the one it is armed for.
 * It may therefore fire early, and is then armed again for the deadline in
 * force: a kept-alive request costs no timer call at all.
 */
static void conn_timer_set(struct conn_ctx *ctx, uint64_t at, uint64_t accuracy);

static int on_conn_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct conn_ctx *ctx = userdata;
        struct fairness *fz = ctx->listener->daemon->fairness;
        enum fair_close why = ctx->fair.refused ? FAIR_CLOSED_REFUSED_PEER :
                              ctx->fair.idle ? FAIR_CLOSED_IDLE_TIMEOUT : FAIR_CLOSED_HEADER_TIMEOUT;

        ctx->fair.armed = 0;
        if (ctx->fair.deadline == 0)
                return 0;   /* disarmed since */
        if (usec < ctx->fair.deadline) {
                conn_timer_set(ctx, ctx->fair.deadline, 250000);
                return 0;
        }
        ctx->fair.deadline = 0;
        fz->closed[why]++;
        log_debug("closing %s connection %s: %s", ctx->peer.is_unix ? "unix" : "tcp",
                  ctx->peer.is_unix ? ctx->listener->address : ctx->peer.addr, close_reason[why]);
        /* libmicrohttpd owns the socket: it sees the end on its next read and closes it. */
        (void) shutdown(ctx->fd, SHUT_RDWR);
        listener_wake(ctx->listener);
        return 0;
}

static void conn_timer_set(struct conn_ctx *ctx, uint64_t at, uint64_t accuracy) {
        sd_event *e = ctx->listener->daemon->event;

        if (!ctx->fair.timer) {
                /* Without it, libmicrohttpd's own idle timeout still closes the connection. */
                if (sd_event_add_time(e, &ctx->fair.timer, CLOCK_MONOTONIC, at, accuracy, on_conn_timer,
                                      ctx) < 0) {
                        ctx->fair.timer = NULL;
                        return;
                }
        } else {
                (void) sd_event_source_set_time(ctx->fair.timer, at);
                (void) sd_event_source_set_time_accuracy(ctx->fair.timer, accuracy);
                (void) sd_event_source_set_enabled(ctx->fair.timer, SD_EVENT_ONESHOT);
        }
        ctx->fair.armed = at;
}

static void conn_arm(struct conn_ctx *ctx, uint64_t deadline, uint64_t accuracy) {
        if (ctx->fd < 0)
                return;
        ctx->fair.deadline = deadline;
        if (ctx->fair.armed == 0 || deadline < ctx->fair.armed)
                conn_timer_set(ctx, deadline, accuracy);
}

/* Lazily: the armed timer finds no deadline when it fires. */
static void conn_disarm(struct conn_ctx *ctx) {
        ctx->fair.deadline = 0;
}

static uint64_t sec_usec(unsigned sec) {
        return (uint64_t) sec * 1000000u;
}

/* Over the connection limit at connect: the 429 goes out before anything was asked, then the end. */
static void conn_refuse(struct daemon *d, struct conn_ctx *ctx, const struct fair_caller *who) {
        _cleanup_free_ char *msg = NULL, *body = NULL, *text = NULL;
        int n;

        d->fairness->refused[FAIR_REFUSED_CONNECTIONS]++;
        msg = refusal_message(d->config, who, FAIR_REFUSED_CONNECTIONS, 1);
        body = envelope_error(msg ? msg : "too many connections", NULL, false, NULL, 0);
        log_debug("refused a connection of %s: max_connections_per_caller", who->key);
        if (body) {
                n = asprintf(&text, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json; "
                             "charset=utf-8\r\nRetry-After: " RETRY_AFTER_SEC "\r\nContent-Length: %zu\r\n"
                             "Connection: close\r\n\r\n%s", strlen(body), body);
                /* Best effort: a new socket's buffer takes it whole. */
                if (n > 0)
                        (void) send(ctx->fd, text, (size_t) n, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        (void) shutdown(ctx->fd, SHUT_RDWR);
        listener_wake(ctx->listener);
}

bool fairness_conn_open(struct daemon *d, struct conn_ctx *ctx, struct MHD_Connection *conn) {
        const struct denvr_config *c = d->config;
        uint64_t now = daemon_now(d);
        struct fair_caller *who = NULL;
        char key[CALLER_KEY_MAX];

        /* libmicrohttpd's inactivity timeout: for a request body that stops coming.  A second
         * later than idle_timeout, so that between requests ours closes (and counts) first. */
        (void) MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
                                         (unsigned) c->idle_timeout_sec + 1);
        /* No local token could let it in: answer it (403) and close, never hold it. */
        ctx->fair.refused = peer_gate_refused_outright(&ctx->peer, c);
        if (ctx->fair.refused)
                conn_arm(ctx, now + REFUSED_PEER_USEC, 100000);
        else
                conn_arm(ctx, now + sec_usec(c->header_timeout_sec), 250000);

        if (ctx->fd < 0 || peer_exempt(d, &ctx->peer))
                return true;
        conn_key(ctx, key, sizeof key);
        if (fair_ledger_ref(&d->fairness->ledger, key, &who) < 0)
                return true;   /* out of memory: not counted, rather than refused */
        if (fair_take(who, FAIR_CONNECTIONS, 1, c->max_connections_per_caller)) {
                ctx->fair.caller = who;
                return true;
        }
        conn_refuse(d, ctx, who);
        fair_ledger_unref(&d->fairness->ledger, who);
        return false;
}

void fairness_conn_request_line(struct conn_ctx *ctx) {
        const struct denvr_config *c = ctx->listener->daemon->config;
        uint64_t want;

        if (ctx->fair.refused)
                return;   /* a second at most, whatever it sends */
        want = daemon_now(ctx->listener->daemon) + sec_usec(c->header_timeout_sec);
        ctx->fair.idle = false;
        if (ctx->fair.deadline == 0 || want < ctx->fair.deadline)
                conn_arm(ctx, want, 250000);
}

void fairness_conn_headers_done(struct conn_ctx *ctx) {
        ctx->fair.idle = false;
        if (!ctx->fair.refused)
                conn_disarm(ctx);
}

void fairness_conn_request_end(struct conn_ctx *ctx) {
        const struct denvr_config *c = ctx->listener->daemon->config;

        if (ctx->fair.refused)
                return;
        ctx->fair.idle = true;
        conn_arm(ctx, daemon_now(ctx->listener->daemon) + sec_usec(c->idle_timeout_sec), 250000);
}

void fairness_conn_close(struct conn_ctx *ctx) {
        struct fairness *fz = ctx->listener->daemon->fairness;

        ctx->fair.timer = sd_event_source_disable_unref(ctx->fair.timer);
        if (ctx->fair.caller) {
                fair_give(ctx->fair.caller, FAIR_CONNECTIONS, 1);
                fair_ledger_unref(&fz->ledger, ctx->fair.caller);
                ctx->fair.caller = NULL;
        }
}

/* --- requests ------------------------------------------------------------------------ */

static bool path_is_wait(const char *canon) {
        return canon && strncmp(canon, "/_denvrd/wait", 13) == 0 && (canon[13] == 0 || canon[13] == '/');
}

/* The announced Content-Length, charged before a byte of the body is read. */
static uint64_t announced_length(const struct request *r) {
        const char *cl = request_header(r, "Content-Length");
        unsigned long long n;
        char *end;

        if (!cl)
                return 0;
        errno = 0;
        n = strtoull(cl, &end, 10);
        return errno || *end || end == cl ? 0 : n;
}

static void refuse(struct request *r, struct fair_caller *who, enum fair_refusal what, uint64_t want) {
        _cleanup_free_ char *msg = refusal_message(r->daemon->config, who, what, want);

        r->daemon->fairness->refused[what]++;
        log_info("%s: refused %s %s from %s: %s", r->id, r->method, r->path, who->key, refusal_key[what]);
        request_reply_error(r, 429, NULL, "%s", msg ? msg : refusal_key[what]);
        (void) request_reply_header(r, "Retry-After", RETRY_AFTER_SEC);
}

bool fairness_request_admit(struct request *r) {
        struct daemon *d = r->daemon;
        const struct denvr_config *c = d->config;
        struct fair_ledger *ledger = &d->fairness->ledger;
        struct fair_hold *h = &r->fair;
        struct fair_caller *who = NULL;
        char key[CALLER_KEY_MAX];
        uint64_t bytes = announced_length(r);
        bool wait = path_is_wait(r->canon_path);
        enum fair_refusal over;

        assert(!h->caller);
        if (!r->token[0] && peer_exempt(d, &r->conn_ctx->peer))
                return true;
        if (r->token[0])
                snprintf(key, sizeof key, "token:%s", r->token);
        else
                conn_key(r->conn_ctx, key, sizeof key);
        if (fair_ledger_ref(ledger, key, &who) < 0)
                return true;   /* out of memory: not counted, rather than refused */

        if (!fair_take(who, FAIR_REQUESTS, 1, c->max_requests_per_caller)) {
                over = FAIR_REFUSED_REQUESTS;
                goto refused;
        }
        if (wait && !fair_take(who, FAIR_WAITS, 1, c->max_waits_per_caller)) {
                fair_give(who, FAIR_REQUESTS, 1);
                over = FAIR_REFUSED_WAITS;
                goto refused;
        }
        if (!fair_take(who, FAIR_BODY_BYTES, bytes, c->max_buffered_bytes_per_caller)) {
                fair_give(who, FAIR_REQUESTS, 1);
                if (wait)
                        fair_give(who, FAIR_WAITS, 1);
                over = FAIR_REFUSED_BODY_BYTES;
                goto refused;
        }
        h->caller = who;
        h->wait = wait;
        h->bytes = bytes;
        return true;

refused:
        refuse(r, who, over, over == FAIR_REFUSED_BODY_BYTES ? bytes : 1);
        fair_ledger_unref(ledger, who);
        return false;
}

bool fairness_request_body(struct request *r, size_t n) {
        struct fair_hold *h = &r->fair;
        uint64_t total = (uint64_t) r->body_len + n;

        /* Chunked, or more than announced (libmicrohttpd stops at Content-Length): charged as it grows. */
        if (!h->caller || total <= h->bytes)
                return true;
        if (fair_take(h->caller, FAIR_BODY_BYTES, total - h->bytes, r->daemon->config->max_buffered_bytes_per_caller)) {
                h->bytes = total;
                return true;
        }
        refuse(r, h->caller, FAIR_REFUSED_BODY_BYTES, total - h->bytes);
        return false;
}

void fairness_request_end(struct request *r) {
        struct fair_hold *h = &r->fair;

        if (!h->caller)
                return;
        fairness_upstream_release(r);
        fair_give(h->caller, FAIR_BODY_BYTES, h->bytes);
        if (h->wait)
                fair_give(h->caller, FAIR_WAITS, 1);
        fair_give(h->caller, FAIR_REQUESTS, 1);
        fair_ledger_unref(&r->daemon->fairness->ledger, h->caller);
        *h = (struct fair_hold) { .caller = NULL };
}

/* --- the upstream share -------------------------------------------------------------- */

static uint64_t upstream_share(const struct denvr_config *c) {
        return fair_share(c->max_upstream_connections, c->upstream_share_percent);
}

int fairness_upstream_acquire(struct request *r, void (*start)(void *userdata), void *userdata) {
        struct fair_hold *h = &r->fair;
        struct fairness *fz = r->daemon->fairness;
        bool was_queued = h->ticket.queued;
        int k;

        assert(start);
        if (!h->caller)
                return 1;
        h->start = start;
        h->userdata = userdata;
        k = fair_ticket_acquire(&fz->ledger, h->caller, &h->ticket, upstream_share(r->daemon->config));
        if (k == 0 && !was_queued) {
                fz->upstream_queued_total++;
                log_debug("%s: %s is at its share of upstream connections; queued", r->id, h->caller->key);
        }
        return k;
}

/* Starts the caller's queued requests while it has slots free. */
static void grant_queued(struct daemon *d, struct fair_caller *who) {
        struct fair_ledger *ledger = &d->fairness->ledger;
        struct fair_ticket *t;

        /* Shutting down aborts every request: none should start on its way out. */
        if (d->quitting)
                return;
        /* A start may end the last request that holds the caller. */
        fair_caller_ref(who);
        while ((t = fair_ticket_grant_next(ledger, who, upstream_share(d->config)))) {
                struct fair_hold *h = container_of(t, struct fair_hold, ticket);

                h->start(h->userdata);
        }
        fair_ledger_unref(ledger, who);
}

void fairness_upstream_release(struct request *r) {
        struct fair_hold *h = &r->fair;
        bool freed;

        if (!h->caller || (!h->ticket.holding && !h->ticket.queued))
                return;
        freed = h->ticket.holding;
        fair_ticket_release(&r->daemon->fairness->ledger, h->caller, &h->ticket);
        if (freed)
                grant_queued(r->daemon, h->caller);
}

/* --- metrics ------------------------------------------------------------------------- */

void fairness_write_metrics(FILE *f, const struct fairness *fz) {
        uint64_t buffered = 0;

        fprintf(f, "# HELP denvrd_caller_limit_refusals_total Requests and connections answered 429 "
                "because their caller was at a [daemon] limit, by limit.\n"
                "# TYPE denvrd_caller_limit_refusals_total counter\n");
        for (unsigned i = 0; i < _FAIR_REFUSED_MAX; i++)
                fprintf(f, "denvrd_caller_limit_refusals_total{limit=\"%s\"} %" PRIu64 "\n", refusal_key[i],
                        fz->refused[i]);
        fprintf(f, "# HELP denvrd_connections_closed_total Connections closed by denvrd's deadlines, by "
                "reason.\n# TYPE denvrd_connections_closed_total counter\n");
        for (unsigned i = 0; i < _FAIR_CLOSED_MAX; i++)
                fprintf(f, "denvrd_connections_closed_total{reason=\"%s\"} %" PRIu64 "\n", close_reason[i],
                        fz->closed[i]);
        for (const struct fair_caller *c = fz->ledger.callers; c; c = c->next)
                buffered += c->used[FAIR_BODY_BYTES];
        fprintf(f, "# HELP denvrd_request_body_bytes_held Bytes of request bodies charged to the callers "
                "that are counted, now.\n# TYPE denvrd_request_body_bytes_held gauge\n"
                "denvrd_request_body_bytes_held %" PRIu64 "\n", buffered);
        fprintf(f, "# HELP denvrd_upstream_queued Requests waiting for an upstream slot of their caller's "
                "share.\n# TYPE denvrd_upstream_queued gauge\ndenvrd_upstream_queued %zu\n",
                fz->ledger.n_queued);
        fprintf(f, "# HELP denvrd_upstream_queued_total Requests that waited for an upstream slot of their "
                "caller's share.\n# TYPE denvrd_upstream_queued_total counter\n"
                "denvrd_upstream_queued_total %" PRIu64 "\n", fz->upstream_queued_total);
}
