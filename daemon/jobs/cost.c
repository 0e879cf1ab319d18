/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "cost"
#include "daemon/jobs/cost.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base/clock.h"
#include "common/base/list.h"
#include "common/base/log.h"
#include "common/http/canon_path.h"
#include "daemon/core/daemon.h"
#include "daemon/jobs/cost-internal.h"
#include "daemon/upstream/cache.h"
#include "daemon/upstream/engine.h"

/* One of the four reads of a fetch. */
struct cost_read {
        struct cost_fetch *fetch;
        enum cost_read_kind kind;
        char *target;                   /* /api/VERSION/...: what the engine sends */
        char *canon;                    /* its canonical path: the cache's service */
        char *key;                      /* the cache key a proxied GET of it gets */
        struct engine_call *call;       /* NULL: not needed (cached) or answered */
        struct engine_request req;
        struct answer answer;
        bool have;                      /* answer holds a 2xx answer */
        bool fetched;                   /* ... from upstream just now: to be cached */
        uint64_t at_usec;               /* CLOCK_BOOTTIME when upstream gave the answer */
};

/* The reads in flight, shared by every asker (d->cost_fetch). */
struct cost_fetch {
        struct daemon *daemon;
        struct cost_read reads[_COST_READ_MAX];
        struct curl_slist *headers;
        struct cost_ask *askers;
        unsigned pending;
        /* While the reads are being started, an end is noted here, not acted on. */
        bool starting, failed;
        struct cost_failure failure;
        bool kept;                      /* an asker left it running: it ends on its own */
};

struct cost_ask {
        struct cost_fetch *fetch;
        struct cost_ask *prev, *next;
        cost_done_t done;
        void *userdata;
};

static void fetch_free(struct cost_fetch *f) {
        if (!f)
                return;
        assert(!f->askers);
        for (size_t i = 0; i < _COST_READ_MAX; i++) {
                struct cost_read *rd = &f->reads[i];

                engine_call_free(rd->call);
                answer_done(&rd->answer);
                free(rd->target);
                free(rd->canon);
                free(rd->key);
        }
        curl_slist_free_all(f->headers);
        if (f->daemon->cost_fetch == f)
                f->daemon->cost_fetch = NULL;
        free(f);
}

/* The read's target, canonical path and cache key: 0 or -ENOMEM. */
static int read_init(struct daemon *d, struct cost_read *rd, enum cost_read_kind kind) {
        const char *why;
        int k;

        rd->kind = kind;
        if (asprintf(&rd->target, "/api/%s%s", d->config->api, cost_read_paths[kind]) < 0) {
                rd->target = NULL;
                return -ENOMEM;
        }
        k = canon_path_dup(rd->target, &rd->canon, &why);
        if (k < 0)
                return k == -ENOMEM ? -ENOMEM : -EINVAL;
        /* proxy_key() of a GET without query or forwarded headers: that request shares these reads. */
        if (asprintf(&rd->key, "%s%s", d->config->server, rd->canon) < 0) {
                rd->key = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* A fetch with every read set up and the fresh ones taken from the cache. */
static int fetch_new(struct daemon *d, struct cost_fetch **ret) {
        struct cost_fetch *f = calloc(1, sizeof *f);
        int k = 0;

        if (!f)
                return -ENOMEM;
        f->daemon = d;
        for (enum cost_read_kind i = 0; k >= 0 && i < _COST_READ_MAX; i++) {
                struct cost_read *rd = &f->reads[i];
                const struct answer *hit;
                uint64_t age = 0;

                rd->fetch = f;
                k = read_init(d, rd, i);
                if (k < 0)
                        break;
                hit = cache_lookup_usec(d->cache, rd->key, daemon_boottime(d), &age);
                if (hit && (k = answer_copy(hit, &rd->answer)) >= 0) {
                        rd->have = true;
                        rd->at_usec = daemon_boottime(d) - age;
                }
        }
        if (k < 0) {
                fetch_free(f);
                return k;
        }
        *ret = f;
        return 0;
}

/* Each answer's "result", parsed; false with failure set when one is not JSON. */
static bool parse_results(struct cost_fetch *f, json_t *results[static _COST_READ_MAX],
                          struct cost_failure *failure) {
        for (size_t i = 0; i < _COST_READ_MAX; i++) {
                const struct answer *a = &f->reads[i].answer;
                json_t *body = json_loadb(a->body ? a->body : "", a->body_len, 0, NULL);

                results[i] = json_incref(json_object_get(body, "result"));
                json_decref(body);
                if (!results[i]) {
                        failure->status = 502;
                        snprintf(failure->message, sizeof failure->message, "upstream's answer to GET %s "
                                 "is not a JSON envelope with a result", f->reads[i].target);
                        return false;
                }
        }
        return true;
}

/* The figures from every read, or why not: 0 (report set), or -EBADMSG / -ENOMEM (failure set). */
static int fetch_report(struct cost_fetch *f, struct cost_report *report, struct cost_failure *failure) {
        json_t *results[_COST_READ_MAX] = { NULL };
        uint64_t oldest = UINT64_MAX, now_bt = clock_usec(CLOCK_BOOTTIME), now_rt = clock_usec(CLOCK_REALTIME);
        uint64_t age;
        int k = -EBADMSG;

        *report = (struct cost_report) { .machines = NULL };
        for (size_t i = 0; i < _COST_READ_MAX; i++)
                if (f->reads[i].at_usec < oldest)
                        oldest = f->reads[i].at_usec;
        age = usec_sub(now_bt, oldest);
        if (parse_results(f, results, failure))
                k = cost_report_build(f->daemon, results, (unsigned) (age / USEC_PER_SEC), report, failure);
        for (size_t i = 0; i < _COST_READ_MAX; i++)
                json_decref(results[i]);
        if (k == -ENOMEM) {
                failure->status = 503;
                snprintf(failure->message, sizeof failure->message, "out of memory computing the cost");
        }
        /* The oldest read's wall-clock time, the same on every answer made from it: both
         * clocks read now, and the cache keeps each answer's own time (fetch_store()). */
        report->as_of = (int64_t) ((now_rt - age) / USEC_PER_SEC);
        return k;
}

/* Every fetched answer into the cache, for cost_interval: only once all four are in. */
static void fetch_store(struct cost_fetch *f) {
        struct daemon *d = f->daemon;

        for (size_t i = 0; i < _COST_READ_MAX; i++) {
                struct cost_read *rd = &f->reads[i];

                if (rd->fetched)
                        cache_store(d->cache, rd->key, rd->canon, d->config->cost_interval_sec, &rd->answer,
                                    rd->at_usec);
        }
}

/* Answers every asker (report or failure) and frees f. */
static void fetch_finish(struct cost_fetch *f, const struct cost_failure *failure) {
        struct cost_report report = { .machines = NULL };
        struct cost_failure why = { .status = 0 };
        const struct cost_failure *fail = failure;

        if (!fail && fetch_report(f, &report, &why) < 0)
                fail = &why;
        if (!fail)
                fetch_store(f);
        if (f->daemon->cost_fetch == f)
                f->daemon->cost_fetch = NULL;   /* askers from now on start afresh */
        while (f->askers) {
                struct cost_ask *a = f->askers;

                LIST_REMOVE(f->askers, a);
                a->done(fail ? NULL : &report, fail, a->userdata);
                free(a);
        }
        cost_report_done(&report);
        fetch_free(f);
}

/* upstream's error.message from an envelope, if it has one. */
static void upstream_words(const struct answer *a, char *buf, size_t size) {
        json_t *body = json_loadb(a->body ? a->body : "", a->body_len, 0, NULL);
        const char *m = json_string_value(json_object_get(json_object_get(body, "error"), "message"));

        snprintf(buf, size, "%s%.200s", m ? ": " : "", m ? m : "");
        json_decref(body);
}

/* A read that did not give a 2xx answer: what every asker is told. */
static void read_failure(const struct cost_read *rd, struct engine_result *res, struct cost_failure *ret) {
        char words[210];

        *ret = (struct cost_failure) { .status = res->status, .retry_after = res->retry_after };
        if (res->end != ENGINE_ANSWERED) {
                snprintf(ret->message, sizeof ret->message, "GET %s for the cost: %s", rd->target, res->message);
                return;
        }
        /* upstream's own 4xx and 5xx are passed on as such; anything else is a bad gateway. */
        ret->status = res->answer.status >= 400 && res->answer.status <= 599 ? res->answer.status : 502;
        ret->retry_after = 0;
        upstream_words(&res->answer, words, sizeof words);
        snprintf(ret->message, sizeof ret->message, "GET %s for the cost: upstream answered %u%s", rd->target,
                 res->answer.status, words);
}

static void on_read_done(struct engine_call *c, struct engine_result *res, void *userdata) {
        struct cost_read *rd = userdata;
        struct cost_fetch *f = rd->fetch;
        struct cost_failure failure;

        assert(c == rd->call);
        if (res->end != ENGINE_ANSWERED || res->answer.status / 100 != 2) {
                read_failure(rd, res, &failure);
                log_debug("%s", failure.message);
                if (!f->starting)
                        fetch_finish(f, &failure);   /* cancels the other reads */
                else if (!f->failed) {
                        f->failed = true;
                        f->failure = failure;
                }
                return;
        }
        rd->answer = res->answer;            /* taken */
        res->answer = (struct answer) { .body = NULL };
        rd->have = rd->fetched = true;
        rd->at_usec = daemon_boottime(f->daemon);
        if (--f->pending == 0 && !f->starting)
                fetch_finish(f, NULL);
}

/* Starts the reads the cache could not answer: 0 or -ENOMEM. */
static int fetch_start(struct cost_fetch *f) {
        struct daemon *d = f->daemon;

        if (!(f->headers = engine_own_headers("cost", false)))
                return -ENOMEM;
        for (size_t i = 0; i < _COST_READ_MAX; i++) {
                struct cost_read *rd = &f->reads[i];

                if (rd->have)
                        continue;
                rd->call = engine_call_new(d, on_read_done, rd);
                if (!rd->call)
                        return -ENOMEM;
                rd->req = engine_request_own(d, "GET", rd->target, f->headers, "cost");
                rd->req.log_path = rd->target;
                f->pending++;
        }
        /* A call may end before engine_call_start() returns: fetch_finish() waits for the loop. */
        f->starting = true;
        for (size_t i = 0; i < _COST_READ_MAX && !f->failed; i++)
                if (f->reads[i].call)
                        engine_call_start(f->reads[i].call, &f->reads[i].req);
        f->starting = false;
        return 0;
}

static struct cost_ask *ask_new(struct cost_fetch *f, cost_done_t done, void *userdata) {
        struct cost_ask *a = calloc(1, sizeof *a);

        if (!a)
                return NULL;
        *a = (struct cost_ask) { .fetch = f, .done = done, .userdata = userdata };
        LIST_PREPEND(f->askers, a);
        return a;
}

/* Answers at once from the cache: 1, or 0 when a read is missing there. */
static int answer_from_cache(struct cost_fetch *f, cost_done_t done, void *userdata) {
        struct cost_report report = { .machines = NULL };
        struct cost_failure failure = { .status = 0 };

        for (size_t i = 0; i < _COST_READ_MAX; i++)
                if (!f->reads[i].have)
                        return 0;
        if (fetch_report(f, &report, &failure) < 0)
                done(NULL, &failure, userdata);
        else
                done(&report, NULL, userdata);
        cost_report_done(&report);
        return 1;
}

int cost_get(struct daemon *d, cost_done_t done, void *userdata, struct cost_ask **ret) {
        struct cost_fetch *f;
        struct cost_ask *a;
        int k;

        assert(d && done && ret);
        *ret = NULL;
        if (d->cost_fetch) {
                a = ask_new(d->cost_fetch, done, userdata);
                if (!a)
                        return -ENOMEM;
                *ret = a;
                return 0;
        }
        k = fetch_new(d, &f);
        if (k < 0)
                return k;
        k = answer_from_cache(f, done, userdata);
        if (k != 0) {
                fetch_free(f);
                return k;
        }
        if (!(a = ask_new(f, done, userdata))) {
                fetch_free(f);
                return -ENOMEM;
        }
        d->cost_fetch = f;
        log_debug("reading the machines and their prices upstream");
        k = fetch_start(f);
        if (k < 0) {
                LIST_REMOVE(f->askers, a);
                free(a);
                fetch_free(f);
                return k;
        }
        /* Every read may have ended already (failed at once, for one): answered now. */
        if (f->failed || f->pending == 0) {
                fetch_finish(f, f->failed ? &f->failure : NULL);
                return 1;
        }
        *ret = a;
        return 0;
}

void cost_ask_cancel(struct cost_ask *a) {
        struct cost_fetch *f;

        if (!a)
                return;
        f = a->fetch;
        LIST_REMOVE(f->askers, a);
        free(a);
        /* Nobody asks any more: no traffic for nobody. */
        if (!f->askers && !f->kept) {
                log_debug("cost: every asker went away, the reads are cancelled");
                fetch_free(f);
        }
}

void cost_ask_leave(struct cost_ask *a) {
        if (!a)
                return;
        a->fetch->kept = true;
        LIST_REMOVE(a->fetch->askers, a);
        free(a);
}

void cost_stop(struct daemon *d) {
        if (!d->cost_fetch)
                return;
        assert(!d->cost_fetch->askers);   /* they were requests, all gone by now */
        fetch_free(d->cost_fetch);
}
