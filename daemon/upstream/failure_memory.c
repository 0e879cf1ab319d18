/* SPDX-License-Identifier: MIT */
#include "daemon/upstream/failure_memory.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cleanup.h"

/* Failures are few and short-lived: a small array, scanned. */
#define FAILURE_MEMORY_SLOTS 64u

struct slot {
        char *key;
        struct remembered_failure f;
};

struct failure_memory {
        struct slot slots[FAILURE_MEMORY_SLOTS];
        size_t n;
};

struct failure_memory *failure_memory_new(void) {
        return calloc(1, sizeof(struct failure_memory));
}

static void slot_clear(struct slot *s) {
        free(s->key);
        free(s->f.content_type);
        free(s->f.body);
        *s = (struct slot) { .key = NULL };
}

void failure_memory_clear(struct failure_memory *m) {
        if (!m)
                return;
        for (size_t i = 0; i < m->n; i++)
                slot_clear(&m->slots[i]);
        m->n = 0;
}

struct failure_memory *failure_memory_free(struct failure_memory *m) {
        failure_memory_clear(m);
        free(m);
        return NULL;
}

bool failure_memory_empty(const struct failure_memory *m) {
        return !m || m->n == 0;
}

/* The last slot moves into i; the one it leaves holds nothing (slot_for() reuses it). */
static void slot_drop(struct failure_memory *m, size_t i) {
        slot_clear(&m->slots[i]);
        m->slots[i] = m->slots[--m->n];
        m->slots[m->n] = (struct slot) { .key = NULL };
}

static size_t slot_for(struct failure_memory *m, const char *key) {
        size_t oldest = 0;

        for (size_t i = 0; i < m->n; i++) {
                if (strcmp(m->slots[i].key, key) == 0)
                        return i;
                if (m->slots[i].f.noted_usec < m->slots[oldest].f.noted_usec)
                        oldest = i;
        }
        if (m->n < FAILURE_MEMORY_SLOTS)
                return m->n++;
        slot_clear(&m->slots[oldest]);
        return oldest;
}

void failure_memory_note(struct failure_memory *m, const char *key, unsigned status, bool transport,
                         const char *content_type, const char *body, size_t body_len, uint64_t now_usec,
                         uint64_t ttl_usec) {
        struct slot *s;

        assert(m && key);
        if (ttl_usec == 0)
                return;
        s = &m->slots[slot_for(m, key)];
        slot_clear(s);
        s->key = strdup(key);
        s->f = (struct remembered_failure) {
                .status = status,
                .transport = transport,
                .content_type = content_type ? strdup(content_type) : NULL,
                .body = malloc(body_len ? body_len : 1),
                .body_len = body_len,
                .noted_usec = now_usec,
                .expires_usec = now_usec + ttl_usec,
        };
        if (!s->key || !s->f.body || (content_type && !s->f.content_type)) {
                slot_drop(m, (size_t) (s - m->slots));   /* not remembered: just retried again */
                return;
        }
        memcpy(s->f.body, body, body_len);
}

void failure_memory_forget_transport(struct failure_memory *m) {
        for (size_t i = 0; m && i < m->n; i++)
                if (m->slots[i].f.transport)
                        slot_drop(m, i--);
}

const struct remembered_failure *failure_memory_lookup(struct failure_memory *m, const char *key,
                                                       uint64_t now_usec) {
        assert(m && key);
        for (size_t i = 0; i < m->n; i++) {
                if (m->slots[i].f.expires_usec <= now_usec) {
                        slot_drop(m, i--);
                        continue;
                }
                if (strcmp(m->slots[i].key, key) == 0)
                        return &m->slots[i].f;
        }
        return NULL;
}
