/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "request"
#include "daemon/http/request.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "common/base/format.h"
#include "common/base/list.h"
#include "common/base/log.h"
#include "common/client/upstream.h"
#include "common/http/canon_path.h"
#include "common/http/envelope.h"
#include "common/http/http_headers.h"
#include "common/http/http_method.h"
#include "daemon/core/daemon.h"
#include "daemon/core/heap.h"
#include "daemon/http/conn_watch.h"
#include "daemon/http/cors.h"
#include "daemon/http/listener.h"
#include "daemon/http/phase.h"
#include "denvrd-version.h"

#define MAX_URL_BYTES 8192u
#define MAX_HEADER_BYTES 16384u
/* What the per-connection watch asks for: data (to peek at a head) and hangups. */
#define CONN_EVENTS (EPOLLIN | EPOLLRDHUP)

/* Random bytes for request ids, fetched in batches: one getrandom() per 21
 * requests instead of one each.  Only uniqueness matters, not secrecy. */
static bool request_id_random(uint8_t *out, size_t n) {
        static uint8_t pool[252];
        static size_t left;

        assert(n <= sizeof pool);
        if (left < n) {
                if (getrandom(pool, sizeof pool, GRND_NONBLOCK) != (ssize_t) sizeof pool)
                        return false;
                left = sizeof pool;
        }
        memcpy(out, pool + sizeof pool - left, n);
        left -= n;
        return true;
}

static void request_make_id(struct request *r) {
        static const char hex[] = "0123456789abcdef";
        const char *given = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Request-Id");
        uint8_t raw[12];

        if (http_request_id_is_sane(given)) {
                snprintf(r->id, sizeof r->id, "%s", given);
                return;
        }
        if (!request_id_random(raw, sizeof raw)) {
                /* Fallback only: uniqueness matters here, not secrecy. */
                uint64_t x = (uint64_t) (uintptr_t) r ^ daemon_now(r->daemon);
                for (size_t i = 0; i < sizeof raw; i++, x >>= 5)
                        raw[i] = (uint8_t) (hex[x & 15] ^ i);
        }
        for (size_t i = 0; i < sizeof raw; i++) {
                r->id[2 * i] = hex[raw[i] >> 4];
                r->id[2 * i + 1] = hex[raw[i] & 15];
        }
        r->id[2 * sizeof raw] = 0;
}

struct request *request_new(struct listener *l, struct conn_ctx *ctx, struct MHD_Connection *conn,
                            const char *method, const char *url) {
        struct daemon *d = l->daemon;
        struct request *r;
        const char *q;

        r = calloc(1, sizeof *r);
        if (!r)
                return NULL;
        r->daemon = d;
        r->listener = l;
        r->conn_ctx = ctx;
        ctx->request = r;
        /* The next head is peeked afresh once this request is done. */
        r->head_problem = ctx->head_problem;
        ctx->head_problem = NULL;
        ctx->head_seen = false;
        r->conn = conn;
        r->start_usec = clock_now_usec();
        r->upstream_status = -1;
        snprintf(r->method, sizeof r->method, "%s", method);
        r->method_info = http_method_find(r->method);

        /* Prefer the raw target; fall back to MHD's (decoded) path if we missed it. */
        r->raw_uri = TAKE_PTR(ctx->raw_uri);
        if (!r->raw_uri)
                r->raw_uri = strdup(url);
        if (!r->raw_uri) {
                free(r);
                return NULL;
        }
        q = strchr(r->raw_uri, '?');
        r->query = q ? q + 1 : NULL;
        r->path = strndup(r->raw_uri, q ? (size_t) (q - r->raw_uri) : strlen(r->raw_uri));
        if (!r->path) {
                free(r->raw_uri);
                free(r);
                return NULL;
        }
        request_make_id(r);

        LIST_PREPEND(d->requests, r);
        d->n_requests++;
        return r;
}

/* Once no request has been running for a while, hand the heap's free pages
 * back to the system: a burst of load otherwise leaves the RSS at its peak. */
#define IDLE_TRIM_USEC (2u * 1000000u)
static int on_idle_trim(sd_event_source *s, uint64_t usec, void *userdata) {
        struct daemon *d = userdata;

        d->idle_trim_pending = false;
        if (d->n_requests == 0) {
                upstream_trim(d->upstream);
                heap_trim();
        }
        else if (sd_event_add_time_relative(d->event, NULL, CLOCK_MONOTONIC, IDLE_TRIM_USEC, 100000,
                                            on_idle_trim, d) >= 0)
                d->idle_trim_pending = true;
        return 0;
}

static void idle_trim_schedule(struct daemon *d) {
        if (d->idle_trim_pending)
                return;
        /* A floating source: the event loop owns it. */
        if (sd_event_add_time_relative(d->event, NULL, CLOCK_MONOTONIC, IDLE_TRIM_USEC, 100000,
                                       on_idle_trim, d) >= 0)
                d->idle_trim_pending = true;
}

void request_unwatch_hangup(struct request *r) {
        r->watch_hangup = false;
}

void request_facts(const struct request *r, bool completed_ok, struct request_facts *ret) {
        const struct peer *p = &r->conn_ctx->peer;

        snprintf(ret->status, sizeof ret->status, "%u", completed_ok ? r->status : 499u);
        snprintf(ret->up, sizeof ret->up, "%ld", r->upstream_status);
        ret->upstream = r->upstream_status >= 0 ? ret->up : NULL;
        ret->uid[0] = 0;
        if (p->identified)
                snprintf(ret->uid, sizeof ret->uid, "%u", (unsigned) p->uid);
}

static void request_log_access(struct request *r, bool completed_ok) {
        uint64_t us = clock_now_usec() - r->start_usec;
        const struct peer *p = &r->conn_ctx->peer;
        struct request_facts f;
        char dur[32], who[96], escaped[512];
        const char *path = r->path;

        if (log_get_max_level() < LOG_INFO)
                return;   /* not logged: skip the formatting too */

        /* A refused path may hold any byte; an accepted one is printable ASCII. */
        if (!r->canon_path) {
                canon_path_printable(r->path, escaped, sizeof escaped);
                path = escaped;
        }
        request_facts(r, completed_ok, &f);
        snprintf(dur, sizeof dur, "%" PRIu64 ".%03" PRIu64, us / 1000, us % 1000);
        if (p->is_unix)
                snprintf(who, sizeof who, "%s%s", p->identified ? "uid=" : "unix", f.uid);
        else if (p->identified)
                snprintf(who, sizeof who, "%s uid=%s", p->addr, f.uid);
        else
                snprintf(who, sizeof who, "%s", p->addr);

        const struct log_field fields[] = {
                REQUEST_LOG_FIELDS(r, path, &f),
                { "DURATION_MS", dur },
        };
        log_fields(LOG_INFO, fields, ELEMENTSOF(fields),
                   "%s %s %s %s %s upstream=%s bytes=%zu ms=%s retries=%u", r->id, who, r->method,
                   path, f.status, f.upstream ? f.upstream : "-", r->response_bytes, dur, r->retries);
}

void request_set_handler(struct request *r, const struct request_handler *h, void *data) {
        assert(!r->handler && h && h->end);
        r->handler = h;
        r->handler_data = data;
}

void request_clear_handler(struct request *r) {
        r->handler = NULL;
        r->handler_data = NULL;
}

static void request_end_handler(struct request *r, enum request_end how) {
        const struct request_handler *h = r->handler;

        if (!h)
                return;
        r->handler = NULL;
        h->end(TAKE_PTR(r->handler_data), how);
}

void request_abort(struct request *r, enum request_end how) {
        request_end_handler(r, how);
        r->aborted = true;
        if (!r->suspended)
                return;
        r->suspended = false;
        request_unwatch_hangup(r);
        MHD_resume_connection(r->conn);
        listener_wake(r->listener);
}

void request_free(struct request *r, bool completed_ok) {
        struct daemon *d;

        if (!r)
                return;
        d = r->daemon;
        request_unwatch_hangup(r);
        if (r->conn_ctx->request == r)
                r->conn_ctx->request = NULL;
        request_end_handler(r, completed_ok ? REQUEST_END_DONE : REQUEST_END_HANGUP);
        d->pipeline->finish(r, completed_ok);

        request_log_access(r, completed_ok);
        metrics_count_request(&d->metrics, r->method, completed_ok ? r->status : 0);

        LIST_REMOVE(d->requests, r);
        d->n_requests--;
        if (d->n_requests == 0)
                idle_trim_schedule(d);

        if (r->response)
                MHD_destroy_response(r->response);
        free(r->now_buf);
        free(r->body);
        route_done(&r->route);
        free(r->canon_path);
        free(r->path);
        free(r->raw_uri);
        free(r);
}

const char *request_header(const struct request *r, const char *name) {
        return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static enum MHD_Result sum_header_bytes(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value) {
        size_t *sum = cls;

        *sum += strlen(key) + (value ? strlen(value) : 0) + 4;   /* ": " and CRLF */
        return MHD_YES;
}

/* The path's canonical form, or a 400 saying why there is none. */
bool request_canonicalise(struct request *r) {
        const char *why = NULL;
        int k;

        k = canon_path_dup(r->path, &r->canon_path, &why);
        if (k == -EINVAL) {
                log_debug("%s: path refused: %s", r->id, why);
                request_reply_error(r, 400, NULL, "path refused: %s", why);
                return false;
        }
        if (k < 0) {
                request_reply_error(r, 503, NULL, "out of memory");
                return false;
        }
        return true;
}

bool request_check_target(struct request *r) {
        if (strlen(r->raw_uri) <= MAX_URL_BYTES)
                return true;
        request_reply_error(r, 414, NULL, "URL longer than %u bytes", MAX_URL_BYTES);
        return false;
}

bool request_check_head(struct request *r) {
        size_t header_bytes = 0;

        (void) MHD_get_connection_values(r->conn, MHD_HEADER_KIND, sum_header_bytes, &header_bytes);
        if (header_bytes > MAX_HEADER_BYTES) {
                request_reply_error(r, 431, NULL, "request headers larger than %u bytes", MAX_HEADER_BYTES);
                return false;
        }
        if (!r->method_info) {
                request_reply_error(r, 405, NULL, "method %s is not supported by denvrd", r->method);
                (void) request_reply_header(r, "Allow", http_methods_allowed);
                return false;
        }
        return true;
}

bool request_check_length(struct request *r) {
        const struct denvr_config *c = r->daemon->config;
        const char *cl = request_header(r, "Content-Length");
        unsigned long long n;
        char *end;

        if (!cl)
                return true;
        errno = 0;
        n = strtoull(cl, &end, 10);
        if (errno || *end != 0 || n <= c->max_body_bytes)
                return true;
        r->body_too_large = true;
        request_reply_error(r, 413, NULL, "request body of %llu bytes is larger than max_body_bytes (%zu)",
                            n, c->max_body_bytes);
        return false;
}

/* Runs the phases of one point in the request's life, in order, until one answers. */
static void request_run_phases(struct request *r, enum phase_when when) {
        const struct pipeline *pl = r->daemon->pipeline;

        for (size_t i = 0; i < pl->n_phases; i++)
                if (pl->phases[i].when == when && !pl->phases[i].run(r))
                        return;
}

void request_begin(struct request *r) {
        request_run_phases(r, PHASE_HEADERS);
}

void request_append_body(struct request *r, const char *data, size_t len) {
        size_t max = r->daemon->config->max_body_bytes;

        if (r->body_too_large || r->response)
                return;   /* already answered; discard */
        if (len > max - r->body_len) {
                r->body_too_large = true;
                request_reply_error(r, 413, NULL, "request body is larger than max_body_bytes (%zu)", max);
                return;
        }
        if (r->body_len + len + 1 > r->body_alloc) {
                size_t want = r->body_alloc ? r->body_alloc : 4096;
                char *p;

                while (want < r->body_len + len + 1)
                        want *= 2;
                p = realloc(r->body, want);
                if (!p) {
                        request_reply_error(r, 503, NULL, "out of memory reading the request body");
                        return;
                }
                r->body = p;
                r->body_alloc = want;
        }
        memcpy(r->body + r->body_len, data, len);
        r->body_len += len;
        r->body[r->body_len] = 0;
}

bool request_has_body(const struct request *r) {
        const char *cl = request_header(r, "Content-Length");

        return request_header(r, "Transfer-Encoding") || (cl && strspn(cl, "0") != strlen(cl));
}

static enum MHD_Result put_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        FILE *f = cls;

        /* libmicrohttpd's own would say keep-alive; this connection ends after the reply. */
        if (strcasecmp(key, "Connection") != 0 && strcasecmp(key, "Content-Length") != 0)
                fprintf(f, "%s: %s\r\n", key, value ? value : "");
        return MHD_YES;
}

static int reply_serialize(struct request *r) {
        const char *reason = MHD_get_reason_phrase_for(r->status);
        FILE *f;

        f = open_memstream(&r->now_buf, &r->now_len);
        if (!f)
                return -ENOMEM;
        fprintf(f, "HTTP/1.1 %u %s\r\n", r->status, reason && *reason ? reason : "Error");
        (void) MHD_get_response_headers(r->response, put_header, f);
        fprintf(f, "Content-Length: %zu\r\nConnection: close\r\n\r\n", r->response_bytes);
        fwrite(r->response_body, 1, r->response_bytes, f);
        if (fclose(f) != 0) {
                free(r->now_buf);
                r->now_buf = NULL;
                return -ENOMEM;
        }
        return 0;
}

int request_send_now(struct request *r) {
        int k;

        assert(r->response);
        if (r->sent_now)
                return 0;
        if (!r->now_buf) {
                k = reply_serialize(r);
                if (k < 0)
                        return k;
        }
        while (r->now_sent < r->now_len) {
                ssize_t n = send(r->conn_ctx->fd, r->now_buf + r->now_sent, r->now_len - r->now_sent,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
                r->now_sent += (size_t) n;
        }
        r->sent_now = true;
        r->conn_ctx->linger = true;
        return 0;
}

void request_dispatch(struct request *r) {
        request_run_phases(r, PHASE_BODY);
}

static void request_hangup(struct request *r) {
        request_unwatch_hangup(r);
        r->aborted = true;
        if (!r->suspended) {
                /* Still reading the request.  libmicrohttpd's edge-triggered
                 * epoll can miss an EOF that came right behind the last bytes
                 * it read, and would keep the connection until its idle
                 * timeout; shutting the socket down (it stays libmicrohttpd's
                 * to close) gives it an event and an EOF to see. */
                log_debug("%s: client closed the connection before its request was complete", r->id);
                (void) shutdown(r->conn_ctx->fd, SHUT_RDWR);
                listener_wake(r->listener);
                return;
        }
        log_debug("%s: client closed the connection; aborting", r->id);
        request_abort(r, REQUEST_END_HANGUP);
}

void request_conn_event(struct conn_ctx *ctx, uint32_t revents) {
        /* A peek that finds the peer gone is its hangup (conn_watch.c asks no more). */
        if ((revents & EPOLLIN) && conn_peek_head(ctx))
                revents |= EPOLLRDHUP;
        if (!(revents & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
                return;
        ctx->peer_closed = true;
        if (ctx->request && ctx->request->watch_hangup)
                request_hangup(ctx->request);
        /* Back to edge-triggered after request_watch_hangup() made it level-triggered;
         * only then: every change re-arms the edge, which would fire again at once. */
        if (ctx->hangup_level) {
                ctx->hangup_level = false;
                conn_watch_change(ctx, CONN_EVENTS | EPOLLET);
        }
}

int request_conn_watch(struct conn_ctx *ctx) {
        assert(ctx && ctx->fd >= 0);
        /* Edge-triggered: an idle connection the peer half-closed reports once,
         * not on every iteration until libmicrohttpd gets to closing it.  The
         * set is read before libmicrohttpd runs, so the head is peeked before
         * it is read. */
        return conn_watch_add(ctx, CONN_EVENTS | EPOLLET);
}

void request_watch_hangup(struct request *r) {
        struct conn_ctx *ctx = r->conn_ctx;

        if (r->watch_hangup)
                return;
        r->watch_hangup = true;
        /* The edge came before this request did (headers and FIN together):
         * level-triggered, the watch reports it again on the next iteration. */
        if (ctx->peer_closed && ctx->watched) {
                ctx->hangup_level = true;
                conn_watch_change(ctx, EPOLLRDHUP);
        }
}

void request_suspend(struct request *r) {
        assert(!r->suspended);
        MHD_suspend_connection(r->conn);
        r->suspended = true;

        /* libmicrohttpd does not watch suspended connections; we do, so a
         * client that goes away aborts its upstream transfer at once. */
        request_watch_hangup(r);
}

static void request_resume(struct request *r) {
        request_unwatch_hangup(r);
        if (r->suspended) {
                r->suspended = false;
                MHD_resume_connection(r->conn);
                listener_wake(r->listener);
        }
}

/* The CORS headers, when the request's Origin is listed (cors.h). */
static void request_reply_cors(struct request *r) {
        const char *origin = request_header(r, "Origin");

        if (!cors_origin_listed(r->daemon->config, origin))
                return;
        (void) request_reply_header(r, "Access-Control-Allow-Origin", origin);
        (void) request_reply_header(r, "Vary", "Origin");
        (void) request_reply_header(r, "Access-Control-Expose-Headers", "X-Request-Id");
}

int request_reply(struct request *r, unsigned status, const char *content_type, char *body, size_t len) {
        struct MHD_Response *resp;

        assert(r);
        if (r->response) {
                /* Already answered (e.g. 413 while reading): keep the first reply. */
                free(body);
                return -EALREADY;
        }

        r->response_body = len ? body : "";
        if (len == 0) {
                free(body);
                resp = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
        } else {
                resp = MHD_create_response_from_buffer_with_free_callback(len, body, free);
                if (!resp)
                        free(body);
        }
        if (!resp) {
                log_error("%s: out of memory creating a response", r->id);
                r->aborted = true;
                request_resume(r);
                return -ENOMEM;
        }
        if (content_type)
                (void) MHD_add_response_header(resp, "Content-Type", content_type);
        (void) MHD_add_response_header(resp, "X-Request-Id", r->id);
        r->response = resp;
        request_reply_cors(r);
        r->status = status;
        r->response_bytes = len;
        request_resume(r);
        return 0;
}

int request_reply_json(struct request *r, unsigned status, char *json) {
        if (!json) {
                r->aborted = true;
                request_resume(r);
                return -ENOMEM;
        }
        return request_reply(r, status, "application/json; charset=utf-8", json, strlen(json));
}

int request_reply_error(struct request *r, unsigned status, const char *details, const char *format, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, format);
        msg = vformat(format, ap);
        va_end(ap);
        return request_reply_json(r, status,
                                  envelope_error(msg ? msg : "denvrd error", details, status == 401, NULL, 0));
}

int request_reply_header(struct request *r, const char *name, const char *value) {
        if (!r->response)
                return -ENOENT;
        return MHD_add_response_header(r->response, name, value) == MHD_YES ? 0 : -EINVAL;
}
