/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "engine"
#include "daemon/upstream/engine.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/log.h"
#include "common/base/secret.h"
#include "common/client/auth.h"
#include "common/client/upstream.h"
#include "daemon/core/daemon.h"
#include "daemon/upstream/engine-internal.h"
#include "daemon/upstream/failure_memory.h"
#include "denvrd-version.h"

#define RETRY_BASE_MS 500u
#define RETRY_CAP_MS 8000u

struct engine_call {
        struct daemon *daemon;
        engine_done_t done;
        void *userdata;
        const struct engine_request *req;

        struct upstream_transfer *t;
        char *url;
        struct curl_slist *auth_node;   /* Authorization, prepended per attempt */
        struct auth_waiter auth_wait;
        uint64_t auth_generation;
        bool replayed_401;
        unsigned attempts;
        sd_event_source *retry_timer;
};

static void attempt(struct engine_call *c);

void engine_call_free(struct engine_call *c) {
        if (!c)
                return;
        if (c->req && c->req->release)
                c->req->release(c->req->gate);   /* its turn, or its place in the queue */
        c->retry_timer = sd_event_source_disable_unref(c->retry_timer);
        auth_unwait(c->daemon->auth, &c->auth_wait);
        upstream_transfer_free(c->t);
        upstream_secret_header_free(&c->auth_node);
        free(c->url);
        free(c);
}

unsigned engine_call_attempts(const struct engine_call *c) {
        return c->attempts;
}

static void finish(struct engine_call *c, struct engine_result *res) {
        c->retry_timer = sd_event_source_disable_unref(c->retry_timer);
        c->done(c, res, c->userdata);
}

static void fail(struct engine_call *c, enum engine_end end, unsigned status, const char *fmt, ...)
        _printf_(4, 5);
static void fail(struct engine_call *c, enum engine_end end, unsigned status, const char *fmt, ...) {
        struct engine_result res = { .end = end, .status = status };
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(res.message, sizeof res.message, fmt, ap);
        va_end(ap);
        finish(c, &res);
}

void engine_not_logged_in(struct daemon *d, const char *fallback, struct engine_result *res) {
        const char *why = auth_failure(d->auth);
        bool permanent = auth_failure_is_permanent(d->auth);

        /* What no retry can cure is a 4xx: retrying clients (go-retryablehttp, the
         * Python SDK) give up on it at once and show its message, where a 503 would
         * have them retry for a quarter of a minute and then drop the reason. */
        *res = (struct engine_result) {
                .end = ENGINE_NOT_SENT,
                .status = permanent ? 424 : 503,
                .retry_after = permanent ? 0 : 5,
        };
        snprintf(res->message, sizeof res->message, "not logged in: %s", why ? why : fallback);
}

static void fail_not_logged_in(struct engine_call *c, const char *fallback) {
        struct engine_result res;

        engine_not_logged_in(c->daemon, fallback, &res);
        finish(c, &res);
}

/* --- retries ---------------------------------------------------------------------- */

static void retry_tokens_count(struct daemon *d, bool success) {
        d->retry_tokens += success ? 0.1 : -1.0;
        if (d->retry_tokens > RETRY_TOKENS_MAX)
                d->retry_tokens = RETRY_TOKENS_MAX;
        if (d->retry_tokens < 0)
                d->retry_tokens = 0;
}

static int on_retry_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct engine_call *c = userdata;

        c->retry_timer = sd_event_source_disable_unref(c->retry_timer);
        attempt(c);
        return 0;
}

static usec_t backoff(unsigned attempts, long retry_after_sec) {
        unsigned shift = attempts - 1 < 5 ? attempts - 1 : 5;
        uint64_t ms = (uint64_t) RETRY_BASE_MS << shift;

        if (retry_after_sec >= 0)
                return (usec_t) retry_after_sec * USEC_PER_SEC;
        return (ms < RETRY_CAP_MS ? ms : RETRY_CAP_MS) * USEC_PER_MSEC;
}

/* Schedules another attempt if the budget allows; false when it does not. */
static bool schedule_retry(struct engine_call *c, long retry_after_sec) {
        struct daemon *d = c->daemon;
        /* The clock read now, not the loop's wake-up time: the answer may have been read
         * long after that (a slow machine, valgrind), and Retry-After counts from it. */
        usec_t now = clock_now_usec(), delay = backoff(c->attempts, retry_after_sec);

        if (c->attempts > c->req->retries)
                return false;
        /* Throttled while upstream keeps failing: one layer of retries, the clients'. */
        if (d->retry_tokens <= RETRY_TOKENS_MAX / 2) {
                log_debug("%s: not retried: upstream failing (retry throttling)", c->req->log_id);
                return false;
        }
        /* A retry that cannot finish before the deadline is pointless. */
        if (now + delay + 100000u >= c->req->deadline)
                return false;
        if (sd_event_add_time(d->event, &c->retry_timer, CLOCK_MONOTONIC, now + delay, 1000,
                              on_retry_timer, c) < 0)
                return false;
        d->metrics.retries++;
        if (c->req->retries_done)
                (*c->req->retries_done)++;
        log_debug("%s: retrying %s in %llu ms (attempt %u)", c->req->log_id,
                  c->req->log_path ? c->req->log_path : "the call", (unsigned long long) (delay / USEC_PER_MSEC),
                  c->attempts + 1);
        return true;
}

static bool transfer_is_retryable(const struct engine_call *c) {
        const struct upstream_transfer *t = c->t;

        if (t->too_large || t->headers_too_large || !(c->req->idempotent || !t->request_sent))
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

/* --- an attempt's end ------------------------------------------------------------- */

/* What every attempt's end tells the daemon, whatever comes of it. */
static void note_attempt(struct engine_call *c) {
        struct daemon *d = c->daemon;
        struct upstream_transfer *t = c->t;
        bool answered = t->result == CURLE_OK;

        /* A retry or a replay takes its turn again, behind the caller's queued requests. */
        if (c->req->release)
                c->req->release(c->req->gate);
        upstream_secret_header_free(&c->auth_node);
        /* A status without a complete answer is not upstream's verdict. */
        if (c->req->last_status)
                *c->req->last_status = answered && t->status ? t->status : -1;
        if (answered)
                metrics_observe_upstream(&d->metrics, t->total_sec);
        auth_note_upstream_contact(d->auth, answered && t->status < 500);
        retry_tokens_count(d, answered && !upstream_status_is_transient(t->status) && t->status < 500);
        /* Upstream is reachable again: failures that were no answer at all are not replayed. */
        if (answered)
                failure_memory_forget_transport(d->failures);
}

static void deliver(struct engine_call *c) {
        struct engine_result res = { .end = ENGINE_ANSWERED };

        if (answer_from_transfer(c->t, &res.answer) < 0) {
                fail(c, ENGINE_NOT_SENT, 503, "out of memory");
                return;
        }
        finish(c, &res);
        answer_done(&res.answer);
}

static void on_transfer_done(struct upstream_transfer *t, void *userdata) {
        struct engine_call *c = userdata;
        struct daemon *d = c->daemon;
        struct engine_result res = { .end = ENGINE_TRANSFER_FAILED };

        note_attempt(c);
        if (t->result == CURLE_OK && t->status != 0) {
                if (t->status == 401 && !c->replayed_401 && auth_unauthorized(d->auth, c->auth_generation)) {
                        /* Our token was refused: replay once with a fresh one. */
                        c->replayed_401 = true;
                        log_info("%s: upstream answered 401; replaying with a fresh token", c->req->log_id);
                        attempt(c);
                        return;
                }
                if (c->req->idempotent && upstream_status_is_transient(t->status) &&
                    schedule_retry(c, upstream_parse_retry_after(upstream_transfer_header(t, "Retry-After"))))
                        return;
                deliver(c);
                return;
        }
        log_debug("%s: upstream transfer failed: %s", c->req->log_id, t->errbuf);
        if (transfer_is_retryable(c) && schedule_retry(c, -1))
                return;
        d->metrics.upstream_errors++;
        engine_describe_failure(d, t, c->req->deadline, &res);
        finish(c, &res);
}

/* --- an attempt ------------------------------------------------------------------- */

static void on_auth_ready(struct auth_waiter *w, int error, void *userdata) {
        struct engine_call *c = userdata;

        if (error < 0) {
                fail_not_logged_in(c, "login failed");
                return;
        }
        attempt(c);
}

static void resume(void *userdata) {
        attempt(userdata);
}

/* The request line's URL and the Authorization, for this attempt; false with done called. */
static bool prepare(struct engine_call *c, const char *authz) {
        const char *server = c->daemon->config->server;

        size_t ns = strlen(server), nt = strlen(c->req->target);

        /* Built per attempt, not once: a reload may have moved the server. */
        free(c->url);
        c->url = malloc(ns + nt + 1);
        if (c->url) {
                memcpy(c->url, server, ns);
                memcpy(c->url + ns, c->req->target, nt + 1);
        }
        upstream_secret_header_free(&c->auth_node);
        if (!c->url || !(c->auth_node = curl_slist_append(NULL, authz))) {
                fail(c, ENGINE_NOT_SENT, 503, "out of memory");
                return false;
        }
        c->auth_node->next = c->req->headers;
        c->t->method = c->req->method;
        c->t->url = c->url;
        c->t->headers = c->auth_node;
        c->t->body = c->req->body;
        c->t->body_len = c->req->body_len;
        return true;
}

static void attempt(struct engine_call *c) {
        struct daemon *d = c->daemon;
        _cleanup_(erase_and_freep) char *authz = NULL;
        usec_t now = daemon_now(d);
        int k;

        if (now >= c->req->deadline) {
                fail(c, ENGINE_NOT_SENT, 504, "no answer from upstream %s within %u s (request_timeout)",
                     engine_upstream_host(d), d->config->request_timeout_sec);
                return;
        }
        /* Beyond the caller's share it waits here, not in curl's queue ahead of others;
         * acquire() grants a turn already held. */
        if (c->req->acquire && c->req->acquire(c->req->gate, resume, c) == 0)
                return;
        k = auth_authorization(d->auth, &authz, &c->auth_generation);
        if (k == -EAGAIN) {
                auth_wait(d->auth, &c->auth_wait, on_auth_ready, c);
                return;
        }
        if (k < 0) {
                fail_not_logged_in(c, "no credentials");
                return;
        }
        if (!prepare(c, authz))
                return;
        c->t->timeout_ms = (unsigned long) ((c->req->deadline - now) / USEC_PER_MSEC) + 1;
        c->attempts++;
        d->metrics.upstream_requests++;
        if (upstream_transfer_start(c->t) < 0) {
                upstream_secret_header_free(&c->auth_node);
                fail(c, ENGINE_NOT_SENT, 503, "cannot start the upstream transfer");
        }
}

struct engine_call *engine_call_new(struct daemon *d, engine_done_t done, void *userdata) {
        struct engine_call *c = calloc(1, sizeof *c);

        if (!c)
                return NULL;
        c->daemon = d;
        c->done = done;
        c->userdata = userdata;
        c->t = upstream_transfer_new(d->upstream, on_transfer_done, c);
        if (!c->t) {
                free(c);
                return NULL;
        }
        return c;
}

void engine_call_start(struct engine_call *c, const struct engine_request *req) {
        assert(c && req && req->method && req->target && req->log_id);
        assert(!req->acquire == !req->release);
        c->req = req;
        c->replayed_401 = false;
        attempt(c);
}

struct engine_request engine_request_own(struct daemon *d, const char *method, const char *target,
                                         struct curl_slist *headers, const char *log_id) {
        return (struct engine_request) {
                .method = method,
                .target = target,
                .headers = headers,
                .deadline = daemon_now(d) + (usec_t) d->config->request_timeout_sec * USEC_PER_SEC,
                .retries = d->config->retries,
                .idempotent = true,
                .log_id = log_id,
        };
}

struct curl_slist *engine_own_headers(const char *who, bool json_body) {
        char ua[96];
        const char *const lines[] = { "Accept: application/json", ua,
                                      json_body ? "Content-Type: application/json" : NULL, "Expect:" };
        struct curl_slist *l = NULL;

        snprintf(ua, sizeof ua, "User-Agent: denvrd/%s (%s)", DENVRD_VERSION, who);
        for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
                struct curl_slist *n = lines[i] ? curl_slist_append(l, lines[i]) : l;

                if (!n) {
                        curl_slist_free_all(l);
                        return NULL;
                }
                l = n;
        }
        return l;
}
