/* SPDX-License-Identifier: MIT */
/* The proxy's cache and coalescing: answers from the cache, followers of an identical request in flight. */
#include "daemon/upstream/proxy-internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/http/canon_path.h"
#include "daemon/core/daemon.h"
#include "daemon/http/request.h"
#include "daemon/upstream/cache.h"
#include "daemon/upstream/forward_headers.h"

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

/*
 * The cache and coalescing key: everything sent upstream that can change the
 * answer: the canonical path, the query as forwarded (defaults included) and
 * every forwarded header, in order.  A request with a body is never shared.
 */
char *proxy_key(struct proxy *p) {
        struct request *r = p->r;
        const char *query = p->target + strlen(r->path);
        char *key = NULL;
        size_t len = 0;
        FILE *f;

        assert(strlen(p->target) >= strlen(r->path));
        if (p->req.body_len > 0)
                return NULL;
        f = open_memstream(&key, &len);
        if (!f)
                return NULL;
        fprintf(f, "%s%s%s", r->daemon->config->server, r->canon_path, query);
        forward_headers_key(r, f);
        if (fclose(f) != 0) {
                free(key);
                return NULL;
        }
        return key;
}

static bool client_says_no_cache(const struct request *r) {
        const char *cc = request_header(r, "Cache-Control");
        const char *pragma = request_header(r, "Pragma");

        return (cc && (strcasestr(cc, "no-cache") || strcasestr(cc, "no-store"))) ||
               (pragma && strcasestr(pragma, "no-cache"));
}

static bool answer_from_cache(struct proxy *p) {
        struct daemon *d = p->r->daemon;
        const struct answer *hit;
        struct answer copy;
        unsigned age;

        hit = cache_lookup(d->cache, p->cache_key, daemon_boottime(d), &age);
        if (!hit || answer_copy(hit, &copy) < 0)
                return false;
        p->r->upstream_status = -1;
        proxy_reply_answer(p, &copy, "HIT", age);
        answer_done(&copy);
        return true;
}

int proxy_cache_step(struct proxy *p) {
        struct request *r = p->r;
        struct daemon *d = r->daemon;
        const struct cache_rule *rule;
        struct cache_flight *f;

        if (strcmp(r->method, "GET") != 0) {
                if (strcmp(r->method, "HEAD") != 0)
                        cache_invalidate_service(d->cache, r->canon_path);
                return 0;
        }
        rule = cache_rule_for(d->config, r->canon_path);
        if (!rule || client_says_no_cache(r))
                return 0;

        p->cache_key = proxy_key(p);
        if (!p->cache_key)
                return 0;   /* just not cached */
        p->cache_ttl = rule->ttl_sec;
        if (answer_from_cache(p))
                return 1;
        f = cache_flight_find(d->cache, p->cache_key);
        if (f && cache_flight_join(f, p) == 0) {
                p->flight = f;
                p->waiting = true;
                return 1;
        }
        p->flight = cache_flight_begin(d->cache, p->cache_key, p);
        return 0;
}

static void follower_answer(struct proxy *f, const struct answer *a) {
        struct answer copy;

        if (answer_copy(a, &copy) < 0) {
                request_reply_error(f->r, 502, NULL, "the shared upstream request for %s failed", f->r->path);
                return;
        }
        f->r->upstream_status = (long) a->status;
        proxy_reply_answer(f, &copy, "MISS", 0);
        answer_done(&copy);
}

/*
 * Ends this leader's flight: a 2xx answer is stored and every follower gets a
 * copy.  Any other answer may have been caused by something of the leader's
 * own, so each follower then asks upstream for itself.  A transfer that got
 * no answer at all is the same verdict for all: followers get it too, not one
 * failing attempt each.
 */
void proxy_flight_finish(struct proxy *p, const struct answer *a, const struct engine_result *failure) {
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

                f->flight = NULL;
                f->waiting = false;
                if (share)
                        follower_answer(f, a);
                else if (failure)
                        proxy_reply_failure(f, failure);
                else
                        proxy_go(f);
        }
        free(waiters);
}

void proxy_flight_leave(struct proxy *p) {
        struct proxy *next;

        if (!p->flight)
                return;
        if (p->waiting) {
                cache_flight_leave(p->flight, p);
                p->flight = NULL;
                p->waiting = false;
                return;
        }
        next = cache_flight_promote(p->flight);
        if (!next) {
                free(cache_flight_end(p->r->daemon->cache, p->flight));
                p->flight = NULL;
                return;
        }
        p->flight = NULL;
        next->waiting = false;
        proxy_go(next);
}
