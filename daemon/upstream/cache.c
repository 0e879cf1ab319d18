/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "cache"
#include "daemon/upstream/cache.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/log.h"
#include "daemon/upstream/answer.h"

#define BUCKETS 256u

struct cache_entry {
        struct cache_entry *next;
        char *key;
        char *path;
        uint64_t stored_usec;
        uint64_t expires_usec;
        struct answer answer;
};

struct cache_flight {
        struct cache_flight *next;
        char *key;
        void *leader;
        void **waiters;
        size_t n_waiters, alloc;
};

struct cache {
        struct cache_entry *buckets[BUCKETS];
        struct cache_flight *flights;
        size_t n_entries;
        size_t bytes;
};

static unsigned hash(const char *s) {
        unsigned h = 5381;

        while (*s)
                h = h * 33 + (unsigned char) *s++;
        return h % BUCKETS;
}

static size_t entry_bytes(const struct cache_entry *e) {
        size_t n = sizeof *e + strlen(e->key) + e->answer.body_len;

        for (size_t i = 0; i < e->answer.n_headers; i++)
                n += strlen(e->answer.headers[i].name) + strlen(e->answer.headers[i].value);
        return n;
}

static void entry_free(struct cache *c, struct cache_entry *e) {
        c->bytes -= entry_bytes(e);
        c->n_entries--;
        answer_done(&e->answer);
        free(e->key);
        free(e->path);
        free(e);
}

int cache_new(struct cache **ret) {
        *ret = calloc(1, sizeof **ret);
        return *ret ? 0 : -ENOMEM;
}

void cache_clear(struct cache *c) {
        for (unsigned b = 0; b < BUCKETS; b++)
                while (c->buckets[b]) {
                        struct cache_entry *e = c->buckets[b];
                        c->buckets[b] = e->next;
                        entry_free(c, e);
                }
}

struct cache *cache_free(struct cache *c) {
        if (!c)
                return NULL;
        cache_clear(c);
        /* Flights belong to requests, which are gone by now. */
        assert(!c->flights);
        free(c);
        return NULL;
}

size_t cache_entries(const struct cache *c) {
        return c->n_entries;
}

/* Drops entries matching pred (expired ones always). */
static void sweep(struct cache *c, uint64_t now, const char *service, size_t service_len) {
        for (unsigned b = 0; b < BUCKETS; b++)
                for (struct cache_entry **p = &c->buckets[b]; *p;) {
                        struct cache_entry *e = *p;

                        if (e->expires_usec <= now ||
                            (service && strncmp(e->path, service, service_len) == 0)) {
                                *p = e->next;
                                entry_free(c, e);
                        } else
                                p = &e->next;
                }
}

void cache_invalidate_service(struct cache *c, const char *path) {
        const char *slash = strrchr(path, '/');
        size_t before = c->n_entries;

        if (!slash || c->n_entries == 0)
                return;
        /* The service is everything up to the operation name, slash included. */
        sweep(c, 0, path, (size_t) (slash - path + 1));
        if (before != c->n_entries)
                log_debug("dropped %zu entr%s of %.*s", before - c->n_entries,
                          before - c->n_entries == 1 ? "y" : "ies", (int) (slash - path + 1), path);
}

const struct answer *cache_lookup_usec(struct cache *c, const char *key, uint64_t now, uint64_t *ret_age_usec) {
        for (struct cache_entry *e = c->buckets[hash(key)]; e; e = e->next)
                if (strcmp(e->key, key) == 0) {
                        if (e->expires_usec <= now)
                                return NULL;
                        *ret_age_usec = now - e->stored_usec;
                        return &e->answer;
                }
        return NULL;
}

const struct answer *cache_lookup(struct cache *c, const char *key, uint64_t now,
                                        unsigned *ret_age) {
        uint64_t age = 0;
        const struct answer *a = cache_lookup_usec(c, key, now, &age);

        *ret_age = (unsigned) (age / 1000000u);
        return a;
}

void cache_store(struct cache *c, const char *key, const char *path, unsigned ttl_sec,
                 const struct answer *a, uint64_t now) {
        struct cache_entry *e;
        unsigned b = hash(key);

        if (a->status < 200 || a->status > 299 || ttl_sec == 0)
                return;
        if (a->body_len > CACHE_MAX_BYTES / 4)
                return;   /* one answer must not push everything else out */

        /* Replace an older answer for the same key. */
        for (struct cache_entry **p = &c->buckets[b]; *p; p = &(*p)->next)
                if (strcmp((*p)->key, key) == 0) {
                        e = *p;
                        *p = e->next;
                        entry_free(c, e);
                        break;
                }
        if (c->bytes + a->body_len > CACHE_MAX_BYTES)
                sweep(c, now, NULL, 0);
        if (c->bytes + a->body_len > CACHE_MAX_BYTES)
                cache_clear(c);   /* still full of fresh entries: start over */

        e = calloc(1, sizeof *e);
        if (!e)
                return;
        e->key = strdup(key);
        e->path = strdup(path);
        if (!e->key || !e->path || answer_copy(a, &e->answer) < 0) {
                free(e->key);
                free(e->path);
                free(e);
                return;
        }
        e->stored_usec = now;
        e->expires_usec = now + (uint64_t) ttl_sec * 1000000u;
        e->next = c->buckets[b];
        c->buckets[b] = e;
        c->n_entries++;
        c->bytes += entry_bytes(e);
}

struct cache_flight *cache_flight_find(struct cache *c, const char *key) {
        for (struct cache_flight *f = c->flights; f; f = f->next)
                if (strcmp(f->key, key) == 0)
                        return f;
        return NULL;
}

struct cache_flight *cache_flight_begin(struct cache *c, const char *key, void *leader) {
        struct cache_flight *f = calloc(1, sizeof *f);

        if (!f)
                return NULL;
        f->key = strdup(key);
        if (!f->key) {
                free(f);
                return NULL;
        }
        f->leader = leader;
        f->next = c->flights;
        c->flights = f;
        return f;
}

int cache_flight_join(struct cache_flight *f, void *waiter) {
        if (f->n_waiters + 2 > f->alloc) {
                size_t want = f->alloc ? f->alloc * 2 : 8;
                void **w = reallocarray(f->waiters, want, sizeof *w);

                if (!w)
                        return -ENOMEM;
                f->waiters = w;
                f->alloc = want;
        }
        f->waiters[f->n_waiters++] = waiter;
        f->waiters[f->n_waiters] = NULL;
        return 0;
}

void cache_flight_leave(struct cache_flight *f, void *waiter) {
        for (size_t i = 0; i < f->n_waiters; i++)
                if (f->waiters[i] == waiter) {
                        memmove(f->waiters + i, f->waiters + i + 1, (f->n_waiters - i) * sizeof *f->waiters);
                        f->n_waiters--;
                        return;
                }
}

void *cache_flight_promote(struct cache_flight *f) {
        void *w;

        if (f->n_waiters == 0)
                return NULL;
        w = f->waiters[0];
        cache_flight_leave(f, w);
        f->leader = w;
        return w;
}

void **cache_flight_end(struct cache *c, struct cache_flight *f) {
        void **waiters = f->waiters;

        for (struct cache_flight **p = &c->flights; *p; p = &(*p)->next)
                if (*p == f) {
                        *p = f->next;
                        break;
                }
        free(f->key);
        free(f);
        return waiters;
}
