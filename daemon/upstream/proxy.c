/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "proxy"
#include "daemon/upstream/proxy.h"

#include <assert.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/client/auth.h"
#include "daemon/upstream/cache.h"
#include "common/http/canon_path.h"
#include "daemon/core/daemon.h"
#include "daemon/upstream/failure_memory.h"
#include "daemon/http/fairness.h"
#include "common/api/fillin.h"
#include "common/api/optable.h"
#include "denvrd-version.h"
#include "common/http/http_headers.h"
#include "common/base/log.h"
#include "daemon/http/request.h"
#include "common/base/secret.h"
#include "common/client/upstream.h"

#define RETRY_BASE_MS 500u
#define RETRY_CAP_MS 8000u

struct proxy {
        struct request *r;
        struct upstream_transfer *t;
        char *url;
        struct curl_slist *headers;     /* client's forwardable headers + ours */
        struct curl_slist *auth_node;   /* Authorization, prepended per attempt */
        const char *body;
        size_t body_len;
        char *owned_body;               /* when the body was rewritten */
        uint64_t deadline_usec;
        unsigned attempts;
        bool replayed_401;
        uint64_t auth_generation;
        struct auth_waiter waiter;
        sd_event_source *retry_timer;

        /* GET cache and coalescing (cache.h); NULL key: not cacheable. */
        char *cache_key;
        unsigned cache_ttl;
        struct cache_flight *flight;
        bool waiting;                   /* a follower of another request's flight */
};

static void proxy_attempt(struct proxy *p);
static bool status_is_retryable(long s);

static void flight_leader_gone(struct proxy *p);

void proxy_free(struct proxy *p) {
        if (!p)
                return;
        if (p->flight) {
                if (p->waiting)
                        cache_flight_leave(p->flight, p);
                else
                        flight_leader_gone(p);
        }
        free(p->cache_key);
        fairness_upstream_release(p->r);
        p->retry_timer = sd_event_source_disable_unref(p->retry_timer);
        auth_unwait(p->r->daemon->auth, &p->waiter);
        upstream_transfer_free(p->t);
        upstream_secret_header_free(&p->auth_node);
        curl_slist_free_all(p->headers);
        free(p->owned_body);
        free(p->url);
        free(p);
}

static bool method_is_idempotent(const char *m) {
        return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "PUT") == 0 ||
               strcmp(m, "DELETE") == 0 || strcmp(m, "OPTIONS") == 0;
}

static const char *upstream_host(const struct daemon *d) {
        const char *s = d->config->server;
        const char *h = strstr(s, "://");

        return h ? h + 3 : s;
}

/* --- building the upstream request ------------------------------------ */

struct header_walk {
        struct curl_slist *list;
        char *connection;               /* every Connection value, joined */
        bool failed;
        bool has_content_type;
        bool json_content_type;   /* replace the client's Content-Type */
        unsigned dropped;         /* client headers not on the forwarded list */
};

static enum MHD_Result add_forwarded_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                            const char *value) {
        struct header_walk *w = cls;
        _cleanup_free_ char *line = NULL;
        struct curl_slist *n;

        if (!http_header_forward_request(key, w->connection)) {
                if (!http_header_is_denvrds(key))
                        w->dropped++;
                return MHD_YES;
        }
        if (strcasecmp(key, "Content-Type") == 0) {
                if (w->json_content_type)
                        return MHD_YES;
                w->has_content_type = true;
        }
        /* "Name;" is curl's way to send a header with an empty value. */
        if ((value && *value ? asprintf(&line, "%s: %s", key, value) : asprintf(&line, "%s;", key)) < 0) {
                w->failed = true;
                return MHD_NO;
        }
        n = curl_slist_append(w->list, line);
        if (!n) {
                w->failed = true;
                return MHD_NO;
        }
        w->list = n;
        return MHD_YES;
}

static int slist_add_const(struct curl_slist **l, const char *line) {
        struct curl_slist *n = curl_slist_append(*l, line);

        if (!n)
                return -ENOMEM;
        *l = n;
        return 0;
}

static int slist_add(struct curl_slist **l, const char *fmt, ...) _printf_(2, 3);
static int slist_add(struct curl_slist **l, const char *fmt, ...) {
        _cleanup_free_ char *line = NULL;
        struct curl_slist *n;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&line, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        n = curl_slist_append(*l, line);
        if (!n)
                return -ENOMEM;
        *l = n;
        return 0;
}

/* Every Connection header line counts, not only the first: "a, b" joined. */
static int connection_join(char **joined, const char *value) {
        char *n;

        if (!value || !*value)
                return 0;
        if (asprintf(&n, "%s%s%s", *joined ? *joined : "", *joined ? ", " : "", value) < 0)
                return -ENOMEM;
        free(*joined);
        *joined = n;
        return 0;
}

static enum MHD_Result collect_connection(void *cls, enum MHD_ValueKind kind, const char *key,
                                          const char *value) {
        struct header_walk *w = cls;

        if (strcasecmp(key, "Connection") == 0 && connection_join(&w->connection, value) < 0) {
                w->failed = true;
                return MHD_NO;
        }
        return MHD_YES;
}

static int proxy_build_headers(struct proxy *p, bool json_content_type) {
        struct request *r = p->r;
        struct header_walk w = {
                .json_content_type = json_content_type,
        };
        const char *ua = request_header(r, "User-Agent");

        (void) MHD_get_connection_values(r->conn, MHD_HEADER_KIND, collect_connection, &w);
        if (!w.failed)
                (void) MHD_get_connection_values(r->conn, MHD_HEADER_KIND, add_forwarded_header, &w);
        free(w.connection);
        p->headers = w.list;
        r->daemon->metrics.headers_dropped += w.dropped;
        if (w.failed)
                return -ENOMEM;

        if (slist_add(&p->headers, "User-Agent: %s%sdenvrd/%s", ua && *ua ? ua : "", ua && *ua ? " " : "",
                      DENVRD_VERSION) < 0 ||
            slist_add(&p->headers, "X-Request-Id: %s", r->id) < 0)
                return -ENOMEM;
        if (json_content_type)
                return slist_add_const(&p->headers, "Content-Type: application/json");
        /* Only a request with a body needs these (curl would add "Expect:
         * 100-continue" for a big one and a form Content-Type to one without
         * its own); every header costs curl a scan per header it may add. */
        if (!p->body && strcmp(r->method, "POST") != 0 && strcmp(r->method, "PUT") != 0 &&
            strcmp(r->method, "PATCH") != 0)
                return 0;
        if (slist_add_const(&p->headers, "Expect:") < 0)
                return -ENOMEM;
        if (!w.has_content_type && slist_add_const(&p->headers, "Content-Type:") < 0)
                return -ENOMEM;
        return 0;
}

/* --- answering the client --------------------------------------------- */

/* Sends an answer (taking its body) with the cache's headers when it applies. */
static void reply_answer(struct proxy *p, struct cache_answer *a, const char *x_cache, unsigned age) {
        struct request *r = p->r;
        char agebuf[16];

        if (request_reply(r, a->status, NULL, TAKE_PTR(a->body), a->body_len) < 0)
                return;
        for (size_t i = 0; i < a->n_headers; i++)
                (void) request_reply_header(r, a->headers[i].name, a->headers[i].value);
        if (x_cache) {
                snprintf(agebuf, sizeof agebuf, "%u", age);
                (void) request_reply_header(r, "X-Cache", x_cache);
                (void) request_reply_header(r, "Age", agebuf);
        }
}

int proxy_answer_from_transfer(struct upstream_transfer *t, struct cache_answer *a) {
        _cleanup_free_ char *connection = NULL;

        *a = (struct cache_answer) {
                .status = (unsigned) t->status,
                .body_len = t->resp_body_len,
        };
        for (size_t i = 0; i < t->n_resp_headers; i++)
                if (strcasecmp(t->resp_headers[i].name, "Connection") == 0 &&
                    connection_join(&connection, t->resp_headers[i].value) < 0)
                        return -ENOMEM;
        a->headers = calloc(t->n_resp_headers ? t->n_resp_headers : 1, sizeof *a->headers);
        if (!a->headers)
                return -ENOMEM;
        /* The transfer is over: its headers move into the answer, uncopied. */
        for (size_t i = 0; i < t->n_resp_headers; i++) {
                struct upstream_header *h = &t->resp_headers[i];

                if (!http_header_forward_response(h->name, connection) ||
                    !http_header_value_is_safe(h->value, strlen(h->value)))
                        continue;
                a->headers[a->n_headers].name = TAKE_PTR(h->name);
                a->headers[a->n_headers].value = TAKE_PTR(h->value);
                a->n_headers++;
        }
        a->body = TAKE_PTR(t->resp_body);
        t->resp_body_len = 0;
        if (!a->body)
                a->body_len = 0;
        return 0;
}

/* Ends this leader's flight: stores a 2xx answer, and answers every follower with a copy. */
/*
 * The leader's answer goes to its followers only when it is a success: an
 * error may have been caused by something of the leader's own, so each
 * follower then asks upstream for itself.
 */
static void flight_finish(struct proxy *p, const struct cache_answer *a) {
        struct daemon *d = p->r->daemon;
        bool share = a && a->status >= 200 && a->status <= 299;
        void **waiters;

        if (!p->flight)
                return;
        if (a)
                cache_store(d->cache, p->cache_key, p->r->canon_path, p->cache_ttl, a, daemon_boottime(d));
        waiters = cache_flight_end(d->cache, p->flight);
        p->flight = NULL;
        for (void **w = waiters; w && *w; w++) {
                struct proxy *f = *w;
                struct cache_answer copy;

                f->flight = NULL;
                f->waiting = false;
                if (!share) {
                        proxy_attempt(f);
                        continue;
                }
                if (cache_answer_copy(a, &copy) < 0) {
                        request_reply_error(f->r, 502, NULL, "the shared upstream request for %s failed",
                                            f->r->path);
                        continue;
                }
                f->r->upstream_status = (long) a->status;
                reply_answer(f, &copy, "MISS", 0);
                cache_answer_done(&copy);
        }
        free(waiters);
}

/* The leader ends without an answer to share: the next follower takes over. */
static void flight_leader_gone(struct proxy *p) {
        struct proxy *next = cache_flight_promote(p->flight);

        if (!next) {
                free(cache_flight_end(p->r->daemon->cache, p->flight));
                p->flight = NULL;
                return;
        }
        p->flight = NULL;
        next->waiting = false;
        proxy_attempt(next);
}

static void proxy_remember_failure(struct proxy *p, bool transport);

static void proxy_deliver(struct proxy *p) {
        struct cache_answer a;

        if (proxy_answer_from_transfer(p->t, &a) < 0) {
                request_reply_error(p->r, 503, NULL, "out of memory");
                return;
        }
        flight_finish(p, &a);
        reply_answer(p, &a, p->cache_key ? "MISS" : NULL, 0);
        cache_answer_done(&a);
        if (status_is_retryable(p->r->status))
                proxy_remember_failure(p, false);
}

static void proxy_fail_reply(struct proxy *p);

static void proxy_fail(struct proxy *p) {
        proxy_fail_reply(p);
        if (p->r->status != 424)
                proxy_remember_failure(p, true);
}

/* No answer at all: followers get the same verdict, not one failing attempt each. */
static void flight_fail_followers(struct proxy *p) {
        void **waiters;

        if (!p->flight)
                return;
        waiters = cache_flight_end(p->r->daemon->cache, p->flight);
        p->flight = NULL;
        for (void **w = waiters; w && *w; w++) {
                struct proxy *f = *w;
                struct upstream_transfer *own = f->t;

                f->flight = NULL;
                f->waiting = false;
                f->t = p->t;   /* borrowed for the message only */
                proxy_fail_reply(f);
                f->t = own;
        }
        free(waiters);
}

static void proxy_fail_reply(struct proxy *p) {
        struct request *r = p->r;

        flight_fail_followers(p);
        struct upstream_transfer *t = p->t;
        const char *host = upstream_host(r->daemon);
        unsigned timeout = r->daemon->config->request_timeout_sec;

        r->daemon->metrics.upstream_errors++;
        if (t->headers_too_large) {
                request_reply_error(r, 502, NULL, "upstream %s sent more than %u KiB of response headers, "
                                    "which denvrd does not pass on", host, UPSTREAM_MAX_HEADER_BYTES >> 10);
                return;
        }
        if (t->too_large) {
                request_reply_error(r, 502, NULL, "upstream %s sent an answer larger than %u MiB, "
                                    "which denvrd does not buffer", host, UPSTREAM_MAX_BODY >> 20);
                return;
        }
        switch (t->result) {
        case CURLE_PEER_FAILED_VERIFICATION:
                /* No retry cures it: a 4xx, which retrying clients show at once (see above). */
                request_reply_error(r, 424, t->errbuf, "TLS certificate of %s not trusted: set ca_file "
                                    "in [daemon] if it uses a private CA", host);
                break;
        case CURLE_SSL_CONNECT_ERROR:
                request_reply_error(r, 502, t->errbuf, "TLS handshake with upstream %s failed", host);
                break;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                request_reply_error(r, 502, t->errbuf, "upstream %s unreachable: name not resolved "
                                    "(check [defaults] server and your network)", host);
                break;
        case CURLE_COULDNT_CONNECT:
                request_reply_error(r, 502, t->errbuf, "upstream %s unreachable: connection refused or "
                                    "no route (check [defaults] server and your network)", host);
                break;
        case CURLE_OPERATION_TIMEDOUT:
                /* The whole budget spent (waiting for a free connection counts):
                 * request_timeout; else the 5 s connect timeout struck. */
                if (t->request_sent || daemon_now(r->daemon) + 50000u >= p->deadline_usec)
                        request_reply_error(r, 504, t->errbuf, "upstream %s did not answer within %u s "
                                            "(request_timeout)", host, timeout);
                else
                        request_reply_error(r, 504, t->errbuf, "upstream %s did not accept a connection "
                                            "in time", host);
                break;
        case CURLE_WEIRD_SERVER_REPLY:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_BAD_CONTENT_ENCODING:
        case CURLE_HTTP2:
                request_reply_error(r, 502, t->errbuf, "upstream %s sent an invalid HTTP answer", host);
                break;
        default:
                request_reply_error(r, 502, t->errbuf, "upstream %s closed or reset the connection "
                                    "before answering completely", host);
                break;
        }
}

/* --- retries ------------------------------------------------------------ */

static bool result_is_retryable(const struct upstream_transfer *t) {
        if (t->too_large || t->headers_too_large)
                return false;
        switch (t->result) {
        case CURLE_OK:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_URL_MALFORMAT:
        case CURLE_OUT_OF_MEMORY:
                return false;
        default:
                return true;
        }
}

static bool status_is_retryable(long s) {
        return s == 429 || s == 502 || s == 503 || s == 504;
}

static void retry_tokens_count(struct daemon *d, bool success) {
        d->retry_tokens += success ? 0.1 : -1.0;
        if (d->retry_tokens > RETRY_TOKENS_MAX)
                d->retry_tokens = RETRY_TOKENS_MAX;
        if (d->retry_tokens < 0)
                d->retry_tokens = 0;
}

static int on_retry_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct proxy *p = userdata;

        p->retry_timer = sd_event_source_disable_unref(p->retry_timer);
        proxy_attempt(p);
        return 0;
}

/* Schedules another attempt if the budget allows; false when it does not. */
static bool proxy_schedule_retry(struct proxy *p, long retry_after_sec) {
        struct request *r = p->r;
        struct daemon *d = r->daemon;
        uint64_t now = daemon_now(d), delay_us;

        if (p->attempts > d->config->retries)
                return false;
        /* Throttled while upstream keeps failing: one layer of retries, the clients'. */
        if (d->retry_tokens <= RETRY_TOKENS_MAX / 2) {
                log_debug("%s: not retried: upstream failing (retry throttling)", r->id);
                return false;
        }
        if (retry_after_sec >= 0)
                delay_us = (uint64_t) retry_after_sec * 1000000u;
        else {
                unsigned shift = p->attempts - 1 < 5 ? p->attempts - 1 : 5;
                uint64_t ms = (uint64_t) RETRY_BASE_MS << shift;

                delay_us = (ms < RETRY_CAP_MS ? ms : RETRY_CAP_MS) * 1000u;
        }
        /* A retry that cannot finish before the deadline is pointless. */
        if (now + delay_us + 100000u >= p->deadline_usec)
                return false;
        if (sd_event_add_time(d->event, &p->retry_timer, CLOCK_MONOTONIC, now + delay_us, 1000,
                              on_retry_timer, p) < 0)
                return false;
        r->retries++;
        d->metrics.retries++;
        log_debug("%s: retrying %s in %llu ms (attempt %u)", r->id, r->path,
                  (unsigned long long) (delay_us / 1000), p->attempts + 1);
        return true;
}

static void on_transfer_done(struct upstream_transfer *t, void *userdata) {
        struct proxy *p = userdata;
        struct request *r = p->r;
        struct daemon *d = r->daemon;
        bool idempotent = method_is_idempotent(r->method);

        /* A retry or a replay takes its turn again, behind the caller's queued requests. */
        fairness_upstream_release(r);
        upstream_secret_header_free(&p->auth_node);
        /* A status without a complete answer is not the upstream's verdict. */
        r->upstream_status = t->result == CURLE_OK && t->status ? t->status : -1;
        if (t->result == CURLE_OK)
                metrics_observe_upstream(&d->metrics, t->total_sec);
        auth_note_upstream_contact(d->auth, t->result == CURLE_OK && t->status < 500);
        retry_tokens_count(d, t->result == CURLE_OK && !status_is_retryable(t->status) && t->status < 500);
        /* Upstream is reachable again: failures that were no answer at all are not replayed. */
        if (t->result == CURLE_OK)
                failure_memory_forget_transport(d->failures);

        if (t->result == CURLE_OK) {
                if (t->status == 401 && !p->replayed_401 &&
                    auth_unauthorized(d->auth, p->auth_generation)) {
                        /* Our token was refused: replay once with a fresh one. */
                        p->replayed_401 = true;
                        log_info("%s: upstream answered 401; replaying with a fresh token", r->id);
                        proxy_attempt(p);
                        return;
                }
                if (idempotent && status_is_retryable(t->status) &&
                    proxy_schedule_retry(p, upstream_parse_retry_after(upstream_transfer_header(t, "Retry-After"))))
                        return;
                proxy_deliver(p);
                return;
        }

        log_debug("%s: upstream transfer failed: %s", r->id, t->errbuf);
        if (result_is_retryable(t) && (idempotent || !t->request_sent) && proxy_schedule_retry(p, -1))
                return;
        proxy_fail(p);
}

/*
 * No token to send.  What no retry can cure (rejected credentials, an
 * untrusted certificate) is a 424: retrying clients (go-retryablehttp, the
 * Python SDK) give up on a 4xx at once and show its message, where a 503
 * would have them retry for a quarter of a minute and then drop the reason.
 */
void proxy_reply_not_logged_in(struct request *r, const char *fallback) {
        const char *why = auth_failure(r->daemon->auth);

        if (auth_failure_is_permanent(r->daemon->auth)) {
                request_reply_error(r, 424, NULL, "not logged in: %s", why ? why : fallback);
                return;
        }
        request_reply_error(r, 503, NULL, "not logged in: %s", why ? why : fallback);
        (void) request_reply_header(r, "Retry-After", "5");
}

static void on_auth_ready(struct auth_waiter *w, int error, void *userdata) {
        struct proxy *p = userdata;

        if (error < 0) {
                proxy_reply_not_logged_in(p->r, "login failed");
                return;
        }
        proxy_attempt(p);
}

static void proxy_resume(void *userdata) {
        proxy_attempt(userdata);
}

static void proxy_attempt(struct proxy *p) {
        struct request *r = p->r;
        struct daemon *d = r->daemon;
        _cleanup_(erase_and_freep) char *authz = NULL;
        uint64_t now = daemon_now(d);
        int k;

        if (now >= p->deadline_usec) {
                request_reply_error(r, 504, NULL, "no answer from upstream %s within %u s (request_timeout)",
                                    upstream_host(d), d->config->request_timeout_sec);
                return;
        }
        /* Beyond its caller's share of upstream connections it waits here, not in curl's
         * queue ahead of other callers (fairness.h); proxy_resume() comes back. */
        if (fairness_upstream_acquire(r, proxy_resume, p) == 0)
                return;

        k = auth_authorization(d->auth, &authz, &p->auth_generation);
        if (k == -EAGAIN) {
                auth_wait(d->auth, &p->waiter, on_auth_ready, p);
                return;
        }
        if (k < 0) {
                proxy_reply_not_logged_in(r, "no credentials");
                return;
        }

        upstream_secret_header_free(&p->auth_node);
        p->auth_node = curl_slist_append(NULL, authz);
        if (!p->auth_node) {
                request_reply_error(r, 503, NULL, "out of memory");
                return;
        }
        p->auth_node->next = p->headers;

        p->t->method = r->method;
        p->t->url = p->url;
        p->t->headers = p->auth_node;
        p->t->body = p->body;
        p->t->body_len = p->body_len;
        p->t->timeout_ms = (unsigned long) ((p->deadline_usec - now) / 1000) + 1;
        p->attempts++;
        d->metrics.upstream_requests++;
        if (upstream_transfer_start(p->t) < 0) {
                upstream_secret_header_free(&p->auth_node);
                request_reply_error(r, 503, NULL, "cannot start the upstream transfer");
        }
}

/*
 * Known operations get their absent parameters filled from [defaults] and
 * are validated before any round trip.  Returns 1 when a reply (400) was
 * sent, 0 to go on, or a negative errno.
 */
static int proxy_fill_in(struct proxy *p, bool *ret_json) {
        struct request *r = p->r;
        const struct denvr_config *c = r->daemon->config;
        const struct fillin_defaults defaults = {
                .cluster = c->cluster,
                .vpcid = config_vpcid(c),
                .rpool = c->rpool,
        };
        struct fillin_result fr = { .query = NULL };
        const struct operation *op;
        char *envelope = NULL;
        int k;

        *ret_json = false;
        op = r->reading ? r->reading->op : NULL;
        if (!op)
                return 0;   /* unknown operations pass through untouched */

        k = fillin_apply_read(r->reading, &defaults, r->query ? r->query : "", r->query ? strlen(r->query) : 0,
                              r->body, r->body_len, &fr);
        if (k < 0)
                return k;
        k = fillin_result_envelope(&fr, &envelope);
        if (k != 0) {
                fillin_result_done(&fr);
                if (k < 0)
                        return k;
                request_reply_json(r, 400, envelope);
                return 1;
        }
        if (fr.query) {
                k = asprintf(&p->url, "%s%s?%.*s", c->server, r->path, (int) fr.query_len, fr.query);
                if (k < 0) {
                        p->url = NULL;
                        fillin_result_done(&fr);
                        return -ENOMEM;
                }
        }
        if (fr.body) {
                p->owned_body = TAKE_PTR(fr.body);
                p->body = p->owned_body;
                p->body_len = fr.body_len;
        }
        if (fr.n_added_query + fr.n_added_body > 0)
                log_debug("%s: filled in %zu query and %zu body default(s)", r->id, fr.n_added_query,
                          fr.n_added_body);
        *ret_json = fr.content_type_json;
        fillin_result_done(&fr);
        return 0;
}

/* The rule for a canonical path: a rule names its path in any spelling. */
static const struct cache_rule *cache_rule_for(const struct denvr_config *c, const char *canon) {
        for (size_t i = 0; i < c->n_cache; i++) {
                const char *path = c->cache[i].path;
                size_t n = strlen(path);
                char buf[512];

                if (n < sizeof buf && canon_path(path, n, buf, sizeof buf, NULL) >= 0 && strcmp(buf, canon) == 0)
                        return &c->cache[i];
        }
        return NULL;
}

/* Forwarded headers that may change an answer (trace context does not). */
static bool header_shapes_answer(const char *name) {
        return strcasecmp(name, "traceparent") != 0 && strcasecmp(name, "tracestate") != 0;
}

static enum MHD_Result key_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        FILE *f = cls;

        if (http_header_forward_request(key, NULL) && header_shapes_answer(key))
                fprintf(f, "\n%s:%s", key, value ? value : "");
        return MHD_YES;
}

/*
 * The cache and coalescing key: everything sent upstream that can change the
 * answer: the canonical path, the query as forwarded (defaults included) and
 * every forwarded header, in order.  A request with a body is never shared.
 */
static char *cache_key_of(struct proxy *p) {
        struct request *r = p->r;
        const char *server = r->daemon->config->server;
        const char *query = p->url + strlen(server) + strlen(r->path);
        char *key = NULL;
        size_t len = 0;
        FILE *f;

        assert(query <= p->url + strlen(p->url));
        if (p->body_len > 0)
                return NULL;
        f = open_memstream(&key, &len);
        if (!f)
                return NULL;
        fprintf(f, "%s%s%s", server, r->canon_path, query);
        (void) MHD_get_connection_values(r->conn, MHD_HEADER_KIND, key_header, f);
        if (fclose(f) != 0) {
                free(key);
                return NULL;
        }
        return key;
}

/* --- one layer of retries: failures denvrd gave up on are replayed --------- */

/* The request as sent, and who asked: one caller's retries, not another's first try. */
static char *failure_key(struct proxy *p) {
        const struct peer *who = &p->r->conn_ctx->peer;
        _cleanup_free_ char *sent = cache_key_of(p);
        char *key;

        if (!sent)
                return NULL;
        if (asprintf(&key, "%s:%u:%s\n%s %s", p->r->token[0] ? "token" : "uid",
                     who->identified ? (unsigned) who->uid : (unsigned) -1, p->r->token, p->r->method,
                     sent) < 0)
                return NULL;
        return key;
}

/* After denvrd's own retries: the same idempotent request is answered from this for a while. */
static void proxy_remember_failure(struct proxy *p, bool transport) {
        struct request *r = p->r;
        struct daemon *d = r->daemon;
        _cleanup_free_ char *key = NULL;

        if (!method_is_idempotent(r->method) || d->config->failure_memory_sec == 0 || !r->response || !p->url)
                return;
        key = failure_key(p);
        if (!key)
                return;
        failure_memory_note(d->failures, key, r->status, transport,
                            MHD_get_response_header(r->response, "Content-Type"), r->response_body,
                            r->response_bytes, daemon_boottime(d),
                            (uint64_t) d->config->failure_memory_sec * 1000000u);
}

/* Answers from a remembered failure: true when it did. */
static bool proxy_replay_failure(struct proxy *p) {
        struct request *r = p->r;
        struct daemon *d = r->daemon;
        const struct remembered_failure *f;
        _cleanup_free_ char *key = NULL;
        uint64_t now = daemon_boottime(d);
        char note[200], *body;

        if (!method_is_idempotent(r->method) || failure_memory_empty(d->failures))
                return false;
        key = failure_key(p);
        f = key ? failure_memory_lookup(d->failures, key, now) : NULL;
        if (!f || !(body = malloc(f->body_len ? f->body_len : 1)))
                return false;
        memcpy(body, f->body, f->body_len);
        snprintf(note, sizeof note, "upstream failure %llu s ago; not sent again for %llu s (failure_memory_seconds)",
                 (unsigned long long) ((now - f->noted_usec) / 1000000u),
                 (unsigned long long) ((f->expires_usec - now + 999999u) / 1000000u));
        d->metrics.failures_replayed++;
        request_reply(r, f->status, f->content_type, body, f->body_len);
        /* A client that honours Retry-After comes back within the memory, not after it. */
        (void) request_reply_header(r, "Retry-After", "1");
        (void) request_reply_header(r, "X-Denvrd-Replayed", note);
        return true;
}

static bool client_says_no_cache(const struct request *r) {
        const char *cc = request_header(r, "Cache-Control");
        const char *pragma = request_header(r, "Pragma");

        return (cc && (strcasestr(cc, "no-cache") || strcasestr(cc, "no-store"))) ||
               (pragma && strcasestr(pragma, "no-cache"));
}

/*
 * Cache and coalescing before going upstream.  Returns 1 when the request
 * is taken care of (answered from the cache, or waiting for an identical
 * request in flight), 0 to go upstream, negative errno on OOM.
 */
static int proxy_cache_step(struct proxy *p) {
        struct request *r = p->r;
        struct daemon *d = r->daemon;
        const struct cache_rule *rule;
        const struct cache_answer *hit;
        struct cache_flight *f;
        unsigned age;

        if (strcmp(r->method, "GET") != 0) {
                if (strcmp(r->method, "HEAD") != 0)
                        cache_invalidate_service(d->cache, r->canon_path);
                return 0;
        }
        rule = cache_rule_for(d->config, r->canon_path);
        if (!rule || client_says_no_cache(r))
                return 0;

        p->cache_key = cache_key_of(p);
        if (!p->cache_key)
                return 0;   /* just not cached */
        p->cache_ttl = rule->ttl_sec;

        hit = cache_lookup(d->cache, p->cache_key, daemon_boottime(d), &age);
        if (hit) {
                struct cache_answer copy;

                if (cache_answer_copy(hit, &copy) < 0)
                        return 0;
                r->upstream_status = -1;
                reply_answer(p, &copy, "HIT", age);
                cache_answer_done(&copy);
                return 1;
        }
        f = cache_flight_find(d->cache, p->cache_key);
        if (f && cache_flight_join(f, p) == 0) {
                p->flight = f;
                p->waiting = true;
                return 1;
        }
        p->flight = cache_flight_begin(d->cache, p->cache_key, p);
        return 0;
}

void proxy_start(struct request *r) {
        struct daemon *d = r->daemon;
        struct proxy *p;
        bool json = false;
        int k;

        assert(!r->proxy);
        p = calloc(1, sizeof *p);
        if (!p) {
                request_reply_error(r, 503, NULL, "out of memory");
                return;
        }
        p->r = r;
        r->proxy = p;
        p->deadline_usec = r->start_usec + (uint64_t) d->config->request_timeout_sec * 1000000u;
        p->body = r->body;
        p->body_len = r->body_len;

        k = proxy_fill_in(p, &json);
        if (k > 0)
                return;
        if (k >= 0 && !p->url && asprintf(&p->url, "%s%s", d->config->server, r->raw_uri) < 0) {
                p->url = NULL;   /* undefined after a failed asprintf() */
                k = -ENOMEM;
        }
        if (k < 0 || proxy_build_headers(p, json) < 0 ||
            !(p->t = upstream_transfer_new(d->upstream, on_transfer_done, p))) {
                request_reply_error(r, 503, NULL, "out of memory preparing the upstream request");
                return;
        }
        if (proxy_replay_failure(p) || proxy_cache_step(p) > 0)
                return;
        proxy_attempt(p);
}
