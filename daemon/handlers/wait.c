/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "wait"
#include "daemon/handlers/wait.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/api/fillin.h"
#include "common/api/optable.h"
#include "common/api/wait_query.h"
#include "common/base/list.h"
#include "common/base/log.h"
#include "common/base/secret.h"
#include "common/client/upstream.h"
#include "common/http/envelope.h"
#include "daemon/core/daemon.h"
#include "daemon/http/request.h"
#include "daemon/http/route.h"
#include "daemon/upstream/engine.h"

#define WAIT_PREFIX ROUTE_WAIT_PREFIX
/* A waiter joining a running loop gets a poll at most this long after the previous one. */
#define JOIN_POLL_USEC USEC_PER_SEC

/* One upstream GET being polled, shared by every waiter on it. */
struct wait_loop {
        struct daemon *daemon;
        struct wait_loop *prev, *next;
        char *target;                   /* path?query after defaults: the loop's key */
        char *shown;                    /* target for logs, secret-looking values redacted */
        struct waiter *waiters;
        unsigned n_waiters;

        struct engine_call *call;       /* the poll, through the upstream engine */
        struct engine_request req;
        struct curl_slist *headers;
        bool polling;                   /* a poll is in flight (or waits for a token) */
        bool busy;                      /* answering waiters: freed by loop_release() after */

        sd_event_source *timer;         /* the next poll */
        uint64_t next_poll_usec;
        unsigned pause_sec;             /* the pause after the next answer */
        uint64_t last_poll_usec;        /* when the last poll was sent */
        unsigned polls;

        /* What the last answer said, for the timeout message. */
        long last_status;               /* -1: none yet, 0: no answer (connection failed) */
        json_t *last_result;            /* its "result" member, when 2xx */
};

/* One waiting request. */
struct waiter {
        struct request *r;
        struct wait_loop *loop;
        struct waiter *prev, *next;
        struct wait_query q;
        sd_event_source *deadline;
        uint64_t start_usec;
        unsigned polls_at_join;
};

const char *wait_end_to_string(enum wait_end e) {
        static const char *const names[_WAIT_END_MAX] = {
                [WAIT_END_MATCH] = "match",
                [WAIT_END_TIMEOUT] = "timeout",
                [WAIT_END_HANGUP] = "hangup",
                [WAIT_END_UPSTREAM] = "upstream",
                [WAIT_END_ABORTED] = "aborted",
        };

        return e < _WAIT_END_MAX ? names[e] : "?";
}

static void loop_poll(struct wait_loop *l);

/* --- loops ------------------------------------------------------------------------- */

static void loop_free(struct wait_loop *l) {
        struct daemon *d = l->daemon;

        assert(!l->waiters);
        LIST_REMOVE(d->wait_loops, l);
        log_debug("%s: polling stopped after %u poll(s)", l->shown, l->polls);
        l->timer = sd_event_source_disable_unref(l->timer);
        engine_call_free(l->call);
        curl_slist_free_all(l->headers);
        json_decref(l->last_result);
        free(l->shown);
        free(l->target);
        free(l);
}

static struct wait_loop *loop_find(struct daemon *d, const char *target) {
        for (struct wait_loop *l = d->wait_loops; l; l = l->next)
                if (strcmp(l->target, target) == 0)
                        return l;
        return NULL;
}

static void on_poll_done(struct engine_call *c, struct engine_result *res, void *userdata);

/* Takes target. */
static struct wait_loop *loop_new(struct daemon *d, char *target) {
        struct wait_loop *l = calloc(1, sizeof *l);

        if (!l) {
                free(target);
                return NULL;
        }
        l->daemon = d;
        l->target = target;
        l->last_status = -1;
        l->pause_sec = 1;
        if (!(l->shown = redact_url(target)) ||
            !(l->call = engine_call_new(d, on_poll_done, l)) ||
            !(l->headers = engine_own_headers("wait", false))) {
                engine_call_free(l->call);
                curl_slist_free_all(l->headers);
                free(l->shown);
                free(l->target);
                free(l);
                return NULL;
        }
        LIST_PREPEND(d->wait_loops, l);
        return l;
}

static int on_poll_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct wait_loop *l = userdata;

        l->timer = sd_event_source_disable_unref(l->timer);
        loop_poll(l);
        return 0;
}

/* Arms the next poll for `at` (CLOCK_MONOTONIC usec); false if the timer cannot be set. */
static bool loop_schedule_at(struct wait_loop *l, uint64_t at) {
        struct daemon *d = l->daemon;

        l->timer = sd_event_source_disable_unref(l->timer);
        l->next_poll_usec = at;
        return sd_event_add_time(d->event, &l->timer, CLOCK_MONOTONIC, at, 10000, on_poll_timer, l) >= 0;
}

/* --- waiters ----------------------------------------------------------------------- */

static void waiter_free(struct waiter *w, enum wait_end why) {
        struct wait_loop *l = w->loop;
        struct daemon *d = w->r->daemon;

        if (l) {
                LIST_REMOVE(l->waiters, w);
                l->n_waiters--;
        }
        w->deadline = sd_event_source_disable_unref(w->deadline);
        request_clear_handler(w->r);
        wait_query_done(&w->q);
        d->metrics.waits_in_progress--;
        d->metrics.waits_ended[why]++;
        log_debug("%s: wait ended (%s)", w->r->id, wait_end_to_string(why));
        free(w);
        if (l && !l->busy && !l->waiters)
                loop_free(l);   /* the last one left: polling stops */
}

/* After answering waiters: the loop goes when none is left.  True if it went. */
static bool loop_release(struct wait_loop *l) {
        l->busy = false;
        if (l->waiters)
                return false;
        loop_free(l);
        return true;
}

/* The request ends before its wait answered: the waiter leaves its loop. */
static void wait_end(void *data, enum request_end how) {
        waiter_free(data, how == REQUEST_END_ABORTED ? WAIT_END_ABORTED : WAIT_END_HANGUP);
}

static const struct request_handler wait_handler = {
        .name = "wait",
        .end = wait_end,
};

static double waited_sec(const struct waiter *w) {
        return (double) (daemon_now(w->r->daemon) - w->start_usec) / USEC_PER_SEC;
}

/* "matched=status:ONLINE; polls=3; seconds=4.2" */
static void add_wait_header(struct waiter *w, const char *what, const char *cond) {
        char v[WAIT_FIELD_MAX + WAIT_VALUE_MAX + 96];
        unsigned polls = w->loop ? w->loop->polls - w->polls_at_join : 0;

        snprintf(v, sizeof v, "%s=%s; polls=%u; seconds=%.1f", what, cond, polls, waited_sec(w));
        /* Header values must not hold control characters; the value came from a URL. */
        for (char *p = v; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        (void) request_reply_header(w->r, "X-Denvrd-Wait", v);
}

/* Passes an upstream answer on (a copy), with the wait's header. */
static void waiter_answer(struct waiter *w, const struct answer *a, const char *what, const char *cond,
                          enum wait_end why) {
        struct request *r = w->r;
        struct answer copy;

        if (answer_copy(a, &copy) < 0) {
                request_reply_error(r, 503, NULL, "out of memory");
                waiter_free(w, WAIT_END_ABORTED);
                return;
        }
        r->upstream_status = (long) a->status;
        if (request_reply(r, copy.status, NULL, TAKE_PTR(copy.body), copy.body_len) == 0) {
                for (size_t i = 0; i < copy.n_headers; i++)
                        (void) request_reply_header(r, copy.headers[i].name, copy.headers[i].value);
                add_wait_header(w, what, cond);
        }
        answer_done(&copy);
        waiter_free(w, why);
}

static void waiter_gone(struct waiter *w, long status) {
        struct request *r = w->r;
        json_t *result = json_pack("{s:b, s:s, s:i}", "gone", 1, "target", w->loop->target,
                                   "upstreamStatus", (int) status);

        r->upstream_status = status;
        if (request_reply_json(r, 200, result ? envelope_success(result) : NULL) == 0) {
                (void) request_reply_header(r, "Cache-Control", "no-store");
                add_wait_header(w, "matched", "gone");
        }
        waiter_free(w, WAIT_END_MATCH);
}

/* What the waiter last saw, for the timeout message: "status still STARTING". */
static void describe_last(const struct waiter *w, char *buf, size_t n) {
        const struct wait_loop *l = w->loop;
        _cleanup_free_ char *text = NULL;

        if (l->last_status < 0)
                snprintf(buf, n, "no answer from upstream yet");
        else if (l->last_status == 0)
                snprintf(buf, n, "upstream unreachable at the last poll");
        else if (l->last_status / 100 != 2)
                snprintf(buf, n, "upstream answered %ld at the last poll", l->last_status);
        else if (w->q.n_conditions == 0)
                snprintf(buf, n, "still there");
        else if (wait_member_text(l->last_result, w->q.conditions[0].field, &text) == 0)
                snprintf(buf, n, "%s still %.120s", w->q.conditions[0].field, text);
        else
                snprintf(buf, n, "%s still absent from the result", w->q.conditions[0].field);
}

/* "waited for status:ONLINE or status:ERROR; 12 polls" */
static void describe_wanted(const struct waiter *w, char *buf, size_t n) {
        size_t k = 0, total = w->q.n_conditions + w->q.gone;
        unsigned polls = w->loop->polls - w->polls_at_join;

        k += (size_t) snprintf(buf, n, "waited for ");
        for (size_t i = 0; i < total && k < n; i++) {
                const char *sep = i == 0 ? "" : i + 1 == total ? " or " : ", ";

                if (i < w->q.n_conditions)
                        k += (size_t) snprintf(buf + k, n - k, "%s%s:%s", sep, w->q.conditions[i].field,
                                               w->q.conditions[i].value);
                else
                        k += (size_t) snprintf(buf + k, n - k, "%sgone", sep);
        }
        if (k < n)
                snprintf(buf + k, n - k, "; %u poll%s", polls, polls == 1 ? "" : "s");
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        struct waiter *w = userdata;
        char last[200], wanted[WAIT_MAX_CONDITIONS * (WAIT_FIELD_MAX + WAIT_VALUE_MAX + 4) + 64];

        describe_last(w, last, sizeof last);
        describe_wanted(w, wanted, sizeof wanted);
        if (request_reply_error(w->r, 504, wanted, "%s after %u s", last, w->q.timeout_sec) == 0)
                add_wait_header(w, "timeout", w->q.n_conditions ? w->q.conditions[0].field : "gone");
        waiter_free(w, WAIT_END_TIMEOUT);
        return 0;
}

/* --- polling ----------------------------------------------------------------------- */

/* Ends every wait of l with the same error; l is freed. */
static void loop_fail_all(struct wait_loop *l, unsigned status, const char *msg) {
        l->busy = true;
        while (l->waiters) {
                struct waiter *w = l->waiters;

                request_reply_error(w->r, status, NULL, "%s", msg);
                waiter_free(w, WAIT_END_ABORTED);
        }
        (void) loop_release(l);
}

static void loop_poll(struct wait_loop *l) {
        struct daemon *d = l->daemon;

        l->polling = true;
        l->req = engine_request_own(d, "GET", l->target, l->headers, l->shown);
        l->req.retries = 0;     /* the next poll is the retry */
        l->polls++;
        l->last_poll_usec = daemon_now(d);
        d->metrics.wait_polls++;
        engine_call_start(l->call, &l->req);
}

/* The pause before the next poll: 1, 2, 4 ... seconds up to the configured cap. */
static void loop_schedule_next(struct wait_loop *l) {
        unsigned cap = l->daemon->config->wait_poll_max_sec;
        unsigned pause = l->pause_sec < cap ? l->pause_sec : cap;

        if (l->pause_sec < cap)
                l->pause_sec *= 2;
        if (!loop_schedule_at(l, daemon_now(l->daemon) + (uint64_t) pause * USEC_PER_SEC))
                loop_fail_all(l, 503, "cannot arm the polling timer");
}

/* One answer, offered to every waiter: it may meet their conditions, say the
 * entity is gone, or end their wait.  Caller holds l busy. */
static void dispatch(struct wait_loop *l, const struct answer *a, json_t *body) {
        long s = (long) a->status;
        bool ok = s / 100 == 2, gone = !ok && wait_answer_is_gone(s, body);
        char st[16];

        snprintf(st, sizeof st, "%ld", s);
        for (struct waiter *w = l->waiters, *next; w; w = next) {
                next = w->next;
                if (ok) {
                        int m = wait_query_match(&w->q, l->last_result);
                        char cond[WAIT_FIELD_MAX + WAIT_VALUE_MAX + 2];

                        if (m < 0)
                                continue;
                        snprintf(cond, sizeof cond, "%s:%s", w->q.conditions[m].field,
                                 w->q.conditions[m].value);
                        waiter_answer(w, a, "matched", cond, WAIT_END_MATCH);
                } else if (w->q.gone && gone)
                        waiter_gone(w, s);
                else if (!upstream_status_is_transient(s))
                        waiter_answer(w, a, "ended", st, WAIT_END_UPSTREAM);
        }
}

static void on_poll_done(struct engine_call *c, struct engine_result *res, void *userdata) {
        struct wait_loop *l = userdata;
        json_t *body;

        l->polling = false;
        if (res->end == ENGINE_NOT_SENT) {
                loop_fail_all(l, res->status, res->message);
                return;
        }
        if (res->end == ENGINE_TRANSFER_FAILED) {
                /* Unreachable, reset, timed out: the next poll may do better. */
                log_debug("%s: poll %u failed: %s", l->shown, l->polls, res->message);
                l->last_status = 0;
                loop_schedule_next(l);
                return;
        }
        l->last_status = res->answer.status;
        body = json_loadb(res->answer.body ? res->answer.body : "", res->answer.body_len, JSON_DECODE_ANY, NULL);
        json_decref(l->last_result);
        l->last_result = res->answer.status / 100 == 2 ? json_incref(json_object_get(body, "result")) : NULL;

        l->busy = true;
        dispatch(l, &res->answer, body);
        json_decref(body);
        if (!loop_release(l))
                loop_schedule_next(l);
}

/* --- starting a wait ---------------------------------------------------------------- */

/*
 * The inner path in canonical form: decisions are made on it (as the access
 * rules did), and the poll is sent to the operation's own spelling.
 */
static const char *inner_path(struct request *r) {
        if (!r->route.inner)
                request_reply_error(r, 404, NULL, "%s names no API path: wait for a GET operation, e.g. "
                                    WAIT_PREFIX "/api/v1/servers/virtual/GetServer?id=...&until=status:ONLINE",
                                    r->path);
        return r->route.inner;
}

/* The operation to poll; NULL with a reply set when path is no GET operation. */
static const struct operation *inner_operation(struct request *r, const char *path) {
        static const char *const others[] = { "POST", "PUT", "PATCH", "DELETE" };
        const struct operation *op;

        if (route_is_login(path)) {
                request_reply_error(r, 400, NULL, "%s is a login endpoint, not something to wait for", path);
                return NULL;
        }
        op = optable_lookup("GET", path);
        if (op)
                return op;
        for (size_t i = 0; i < ELEMENTSOF(others); i++)
                if ((op = optable_lookup(others[i], path))) {
                        request_reply_error(r, 400, NULL, "%s is a %s operation: only GET operations can be "
                                            "waited for (send the %s, then wait for its Get...)",
                                            path, op->method, op->method);
                        return NULL;
                }
        request_reply_error(r, 404, NULL, "%s is not a Denvr API operation denvrd knows", path);
        return NULL;
}

/*
 * path?query to poll, in one canonical form (fillin_canonical_query()): two
 * waits that upstream would read alike share one loop, whatever junk or
 * spelling sets them apart.  NULL with a reply set on failure.
 */
static char *poll_target(struct request *r, const char *path) {
        const struct denvr_config *c = r->daemon->config;
        const struct fillin_defaults defaults = config_fillin_defaults(c);
        struct fillin_result fr = { .query = NULL };
        char *envelope = NULL, *target = NULL;
        int k;

        assert(r->reading && r->reading->op);
        k = fillin_canonical_query(r->reading, &defaults, &fr);
        if (k >= 0)
                k = fillin_result_envelope(&fr, &envelope);
        if (k > 0) {
                request_reply_json(r, 400, envelope);   /* a required parameter is missing */
                fillin_result_done(&fr);
                return NULL;
        }
        if (k < 0 || asprintf(&target, "%s%s%.*s", path, fr.query ? "?" : "", (int) fr.query_len,
                              fr.query ? fr.query : "") < 0) {
                target = NULL;
                request_reply_error(r, 503, NULL, "out of memory preparing the poll");
        }
        fillin_result_done(&fr);
        return target;
}

/* Joins (or starts) the loop for target; false with a reply set on failure. */
static bool waiter_join(struct waiter *w, char *target) {
        struct daemon *d = w->r->daemon;
        struct wait_loop *l = loop_find(d, target);
        uint64_t now = daemon_now(d);

        if (l)
                free(target);
        else if (!(l = loop_new(d, target))) {
                request_reply_error(w->r, 503, NULL, "out of memory preparing the poll");
                return false;
        }
        log_debug("%s: waiting up to %u s on %s (%s loop)", w->r->id, w->q.timeout_sec, l->shown,
                  l->waiters ? "joined its" : "a new");
        w->loop = l;
        w->polls_at_join = l->polls;
        LIST_PREPEND(l->waiters, w);
        l->n_waiters++;

        if (l->polling)
                return true;   /* its answer is fresh enough */
        if (l->polls == 0) {
                loop_poll(l);   /* the first poll at once */
                return true;
        }
        /* A new waiter does not sit out the loop's long pause: a poll within a second of the last. */
        if (l->next_poll_usec > l->last_poll_usec + JOIN_POLL_USEC) {
                uint64_t at = l->last_poll_usec + JOIN_POLL_USEC;
                if (!loop_schedule_at(l, at > now ? at : now)) {
                        request_reply_error(w->r, 503, NULL, "cannot arm the polling timer");
                        return false;
                }
        }
        return true;
}

void wait_start(struct request *r) {
        struct daemon *d = r->daemon;
        const char *path;
        const struct operation *op;
        struct waiter *w;
        char *target;

        assert(!r->handler);
        if (strcmp(r->method, "GET") != 0) {
                request_reply_error(r, 405, NULL, "%s accepts only GET", WAIT_PREFIX "/");
                (void) request_reply_header(r, "Allow", "GET");
                return;
        }
        if (!(path = inner_path(r)) || !(op = inner_operation(r, path)))
                return;
        w = calloc(1, sizeof *w);
        if (!w) {
                request_reply_error(r, 503, NULL, "out of memory");
                return;
        }
        w->r = r;
        w->start_usec = daemon_now(d);
        /* Read by reading.c, with the inner operation's parameters. */
        assert(r->wait_query && r->reading && r->reading->op == op);
        w->q = *r->wait_query;
        free(r->wait_query);
        r->wait_query = NULL;
        if (!(target = poll_target(r, op->path))) {
                wait_query_done(&w->q);
                free(w);
                return;
        }
        request_set_handler(r, &wait_handler, w);
        d->metrics.waits_in_progress++;
        if (sd_event_add_time(d->event, &w->deadline, CLOCK_MONOTONIC,
                              w->start_usec + (uint64_t) w->q.timeout_sec * USEC_PER_SEC, 100000,
                              on_deadline, w) < 0) {
                free(target);
                request_reply_error(r, 503, NULL, "cannot arm the wait's timer");
                waiter_free(w, WAIT_END_ABORTED);
                return;
        }
        /* server.c suspends the connection once this returns without a reply. */
        if (!waiter_join(w, target))
                waiter_free(w, WAIT_END_ABORTED);
}
