/* SPDX-License-Identifier: MIT */
#include "common/base/fair_ledger.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/list.h"

/*
 * Callers live in one list: a workstation has a few uids and tokens, and a
 * caller is looked up once per connection or request, so a scan costs less
 * than a hash table would to keep.
 */
static struct fair_caller *ledger_find(struct fair_ledger *l, const char *key) {
        for (struct fair_caller *c = l->callers; c; c = c->next)
                if (strcmp(c->key, key) == 0)
                        return c;
        return NULL;
}

int fair_ledger_ref(struct fair_ledger *l, const char *key, struct fair_caller **ret) {
        struct fair_caller *c;

        assert(l && key && ret);
        c = ledger_find(l, key);
        if (c) {
                c->refs++;
                *ret = c;
                return 0;
        }
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->key = strdup(key);
        if (!c->key) {
                free(c);
                return -ENOMEM;
        }
        c->refs = 1;
        LIST_PREPEND(l->callers, c);
        l->n_callers++;
        *ret = c;
        return 0;
}

struct fair_caller *fair_caller_ref(struct fair_caller *c) {
        assert(c && c->refs > 0);
        c->refs++;
        return c;
}

static void caller_free(struct fair_ledger *l, struct fair_caller *c) {
        LIST_REMOVE(l->callers, c);
        l->n_callers--;
        free(c->key);
        free(c);
}

void fair_ledger_unref(struct fair_ledger *l, struct fair_caller *c) {
        if (!c)
                return;
        assert(c->refs > 0);
        if (--c->refs > 0)
                return;
        /* Whatever it held was held by a connection or request with a reference. */
        for (unsigned i = 0; i < _FAIR_RESOURCE_MAX; i++)
                assert(c->used[i] == 0);
        assert(c->n_queued == 0);
        caller_free(l, c);
}

void fair_ledger_done(struct fair_ledger *l) {
        while (l->callers)
                caller_free(l, l->callers);
        l->n_queued = 0;
}

bool fair_take(struct fair_caller *c, enum fair_resource r, uint64_t n, uint64_t limit) {
        assert(c && r < _FAIR_RESOURCE_MAX);
        if (n > limit || c->used[r] > limit - n)
                return false;
        c->used[r] += n;
        return true;
}

void fair_give(struct fair_caller *c, enum fair_resource r, uint64_t n) {
        assert(c && r < _FAIR_RESOURCE_MAX);
        assert(c->used[r] >= n);
        c->used[r] -= n;
}

uint64_t fair_share(unsigned total, unsigned percent) {
        uint64_t s = ((uint64_t) total * percent + 99) / 100;

        return s > 0 ? s : 1;
}

static void queue_remove(struct fair_ledger *l, struct fair_caller *c, struct fair_ticket *t) {
        if (t->prev)
                t->prev->next = t->next;
        else
                c->queue_head = t->next;
        if (t->next)
                t->next->prev = t->prev;
        else
                c->queue_tail = t->prev;
        t->prev = t->next = NULL;
        t->queued = false;
        c->n_queued--;
        l->n_queued--;
}

int fair_ticket_acquire(struct fair_ledger *l, struct fair_caller *c, struct fair_ticket *t, uint64_t share) {
        assert(l && c && t);
        if (t->holding)
                return 1;
        if (t->queued)
                return 0;
        /* Behind the caller's own queue, never ahead of it: first come, first served. */
        if (!c->queue_head && fair_take(c, FAIR_UPSTREAM, 1, share)) {
                t->holding = true;
                return 1;
        }
        t->queued = true;
        t->next = NULL;
        t->prev = c->queue_tail;
        if (c->queue_tail)
                c->queue_tail->next = t;
        else
                c->queue_head = t;
        c->queue_tail = t;
        c->n_queued++;
        l->n_queued++;
        return 0;
}

void fair_ticket_release(struct fair_ledger *l, struct fair_caller *c, struct fair_ticket *t) {
        assert(l && c && t);
        if (t->queued)
                queue_remove(l, c, t);
        if (t->holding) {
                t->holding = false;
                fair_give(c, FAIR_UPSTREAM, 1);
        }
}

struct fair_ticket *fair_ticket_grant_next(struct fair_ledger *l, struct fair_caller *c, uint64_t share) {
        struct fair_ticket *t = c->queue_head;

        if (!t || !fair_take(c, FAIR_UPSTREAM, 1, share))
                return NULL;
        queue_remove(l, c, t);
        t->holding = true;
        return t;
}
