/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "proxy"
#include "daemon/upstream/proxy.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/api/fillin.h"
#include "common/api/optable.h"
#include "common/base/log.h"
#include "common/client/upstream.h"
#include "common/http/http_method.h"
#include "daemon/core/daemon.h"
#include "daemon/http/fairness.h"
#include "daemon/http/request.h"
#include "daemon/upstream/failure_memory.h"
#include "daemon/upstream/forward_headers.h"
#include "daemon/upstream/proxy-internal.h"

static void proxy_free(struct proxy *p) {
        /* Whatever ended it left its flight (proxy_end()): a destructor starts nothing. */
        assert(!p->flight);
        free(p->cache_key);
        engine_call_free(p->call);
        curl_slist_free_all(p->headers);
        free(p->owned_body);
        free(p->owned_target);
        if (p->observer)
                p->observer->free(p->observer_data);
        free(p);
}

/* The request ends: a flight it led passes to the next request waiting on it
 * when its client went away before the answer. */
static void proxy_end(void *data, enum request_end how) {
        struct proxy *p = data;

        proxy_flight_leave(p);
        proxy_free(p);
}

static const struct request_handler proxy_handler = {
        .name = "proxy",
        .end = proxy_end,
};

/* --- answering the client ------------------------------------------------------ */

void proxy_reply_answer(struct proxy *p, struct answer *a, const char *x_cache, unsigned age) {
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

void proxy_reply_failure(struct proxy *p, const struct engine_result *res) {
        char retry_after[16];

        request_reply_error(p->r, res->status, res->details, "%s", res->message);
        if (res->retry_after) {
                snprintf(retry_after, sizeof retry_after, "%u", res->retry_after);
                (void) request_reply_header(p->r, "Retry-After", retry_after);
        }
}

/* --- one layer of retries: failures denvrd gave up on are replayed --------- */

/* The request as sent, and who asked: one caller's retries, not another's first try. */
static char *failure_key(struct proxy *p) {
        const struct peer *who = &p->r->conn_ctx->peer;
        _cleanup_free_ char *sent = proxy_key(p);
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
static void remember_failure(struct proxy *p, bool transport) {
        struct request *r = p->r;
        struct daemon *d = r->daemon;
        _cleanup_free_ char *key = NULL;

        if (!r->method_info->idempotent || d->config->failure_memory_sec == 0 || !r->response)
                return;
        key = failure_key(p);
        if (!key)
                return;
        failure_memory_note(d->failures, key, r->status, transport,
                            MHD_get_response_header(r->response, "Content-Type"), r->response_body,
                            r->response_bytes, daemon_boottime(d),
                            (uint64_t) d->config->failure_memory_sec * USEC_PER_SEC);
}

/* Answers from a remembered failure: true when it did. */
static bool replay_failure(struct proxy *p) {
        struct request *r = p->r;
        struct daemon *d = r->daemon;
        const struct remembered_failure *f;
        _cleanup_free_ char *key = NULL;
        usec_t now = daemon_boottime(d);
        char note[200], *body;

        if (!r->method_info->idempotent || failure_memory_empty(d->failures))
                return false;
        key = failure_key(p);
        f = key ? failure_memory_lookup(d->failures, key, now) : NULL;
        if (!f || !(body = malloc(f->body_len ? f->body_len : 1)))
                return false;
        memcpy(body, f->body, f->body_len);
        snprintf(note, sizeof note, "upstream failure %llu s ago; not sent again for %llu s (failure_memory_seconds)",
                 (unsigned long long) ((now - f->noted_usec) / USEC_PER_SEC),
                 (unsigned long long) ((f->expires_usec - now + USEC_PER_SEC - 1) / USEC_PER_SEC));
        d->metrics.failures_replayed++;
        request_reply(r, f->status, f->content_type, body, f->body_len);
        /* A client that honours Retry-After comes back within the memory, not after it. */
        (void) request_reply_header(r, "Retry-After", "1");
        (void) request_reply_header(r, "X-Denvrd-Replayed", note);
        return true;
}

/* --- the upstream call ---------------------------------------------------------- */

/* After the reply is set, so that the observer may add headers: the body is the reply's now. */
static void observe(struct proxy *p, const struct answer *a) {
        struct request *r = p->r;
        struct answer seen = *a;

        if (!r->response)
                return;   /* out of memory replying: there is nothing to add to */
        seen.body = (char *) r->response_body;
        seen.body_len = r->response_bytes;
        p->observer->answered(r, &seen, p->observer_data);
}

static void on_call_done(struct engine_call *c, struct engine_result *res, void *userdata) {
        struct proxy *p = userdata;

        switch (res->end) {
        case ENGINE_ANSWERED:
                proxy_flight_finish(p, &res->answer, NULL);
                proxy_reply_answer(p, &res->answer, p->cache_key ? "MISS" : NULL, 0);
                if (p->observer)
                        observe(p, &res->answer);
                if (upstream_status_is_transient(p->r->status))
                        remember_failure(p, false);
                break;
        case ENGINE_TRANSFER_FAILED:
                proxy_flight_finish(p, NULL, res);
                proxy_reply_failure(p, res);
                if (p->r->status != 424)
                        remember_failure(p, true);
                break;
        case ENGINE_NOT_SENT:
                /* Nothing was learnt of upstream: the next follower asks it. */
                proxy_flight_leave(p);
                proxy_reply_failure(p, res);
                break;
        }
}

static int gate_acquire(void *gate, void (*resume)(void *), void *resume_data) {
        return fairness_upstream_acquire(gate, resume, resume_data);
}

static void gate_release(void *gate) {
        fairness_upstream_release(gate);
}

void proxy_go(struct proxy *p) {
        struct request *r = p->r;

        if (!p->call && !(p->call = engine_call_new(r->daemon, on_call_done, p))) {
                request_reply_error(r, 503, NULL, "out of memory preparing the upstream request");
                return;
        }
        engine_call_start(p->call, &p->req);
}

/*
 * Known operations get their absent parameters filled from [defaults] and
 * are validated before any round trip.  Returns 1 when a reply (400) was
 * sent, 0 to go on, or a negative errno.
 */
static int fill_in(struct proxy *p, bool *ret_json) {
        struct request *r = p->r;
        const struct denvr_config *c = r->daemon->config;
        const struct fillin_defaults defaults = config_fillin_defaults(c);
        struct fillin_result fr = { .query = NULL };
        char *envelope = NULL;
        int k;

        *ret_json = false;
        if (!r->reading || !r->reading->op)
                return 0;   /* unknown operations pass through untouched */
        k = fillin_apply_read(r->reading, &defaults, r->query ? r->query : "", r->query ? strlen(r->query) : 0,
                              r->body, r->body_len, &fr);
        if (k >= 0)
                k = fillin_result_envelope(&fr, &envelope);
        if (k > 0)
                request_reply_json(r, 400, envelope);
        if (k == 0 && fr.query &&
            asprintf(&p->owned_target, "%s?%.*s", r->path, (int) fr.query_len, fr.query) < 0) {
                p->owned_target = NULL;
                k = -ENOMEM;
        }
        if (k == 0 && fr.body) {
                p->owned_body = TAKE_PTR(fr.body);
                p->req.body = p->owned_body;
                p->req.body_len = fr.body_len;
        }
        if (k == 0 && fr.n_added_query + fr.n_added_body > 0)
                log_debug("%s: filled in %zu query and %zu body default(s)", r->id, fr.n_added_query,
                          fr.n_added_body);
        *ret_json = fr.content_type_json;
        fillin_result_done(&fr);
        return k;
}

static int prepare(struct proxy *p) {
        struct request *r = p->r;
        struct daemon *d = r->daemon;
        bool json = false;
        int k;

        p->req = (struct engine_request) {
                .method = r->method,
                .body = r->body,
                .body_len = r->body_len,
                .deadline = r->start_usec + (usec_t) d->config->request_timeout_sec * USEC_PER_SEC,
                .retries = d->config->retries,
                .idempotent = r->method_info->idempotent,
                .log_id = r->id,
                .log_path = r->path,
                .acquire = gate_acquire,
                .release = gate_release,
                .gate = r,
                .last_status = &r->upstream_status,
                .retries_done = &r->retries,
        };
        k = fill_in(p, &json);
        if (k != 0)
                return k;
        p->target = p->owned_target ? p->owned_target : r->raw_uri;
        if (forward_headers_build(r, p->req.body || r->method_info->body, json, &p->headers) < 0)
                return -ENOMEM;
        p->req.target = p->target;
        p->req.headers = p->headers;
        return 0;
}

void proxy_start(struct request *r) {
        proxy_start_observed(r, NULL, NULL);
}

void proxy_start_observed(struct request *r, const struct proxy_observer *o, void *data) {
        struct proxy *p;
        int k;

        assert(!r->handler);
        p = calloc(1, sizeof *p);
        if (!p) {
                if (o)
                        o->free(data);
                request_reply_error(r, 503, NULL, "out of memory");
                return;
        }
        p->r = r;
        p->observer = o;
        p->observer_data = data;
        request_set_handler(r, &proxy_handler, p);
        r->forwarded = true;
        k = prepare(p);
        if (k > 0)
                return;   /* answered */
        if (k < 0) {
                request_reply_error(r, 503, NULL, "out of memory preparing the upstream request");
                return;
        }
        if (replay_failure(p) || proxy_cache_step(p) > 0)
                return;
        proxy_go(p);
}
