/* SPDX-License-Identifier: MIT */
/* Fair shares: per-caller counts against limits, and the per-caller upstream queue. */

#include <stdint.h>
#include <string.h>

#include "check.h"
#include "common/base/fair_ledger.h"

static void test_callers(void) {
        struct fair_ledger l = { 0 };
        struct fair_caller *a = NULL, *a2 = NULL, *b = NULL;

        CHECK(fair_ledger_ref(&l, "uid:1000", &a) == 0 && a, "make uid:1000");
        CHECK(fair_ledger_ref(&l, "uid:1000", &a2) == 0 && a2 == a, "the same key is the same caller");
        CHECK(fair_ledger_ref(&l, "token:vm-7", &b) == 0 && b && b != a, "another key, another caller");
        CHECK(l.n_callers == 2 && a->refs == 2, "two callers, %zu; refs %u", l.n_callers, a->refs);
        fair_ledger_unref(&l, a2);
        CHECK(l.n_callers == 2 && a->refs == 1, "still there after one unref");
        fair_ledger_unref(&l, a);
        CHECK(l.n_callers == 1 && l.callers == b, "forgotten with its last reference");
        fair_ledger_unref(&l, b);
        CHECK(l.n_callers == 0 && !l.callers, "empty");
}

static void test_take_give(void) {
        struct fair_ledger l = { 0 };
        struct fair_caller *a = NULL, *b = NULL;

        CHECK(fair_ledger_ref(&l, "a", &a) == 0 && fair_ledger_ref(&l, "b", &b) == 0, "make a, b");
        for (unsigned i = 0; i < 3; i++)
                CHECK(fair_take(a, FAIR_REQUESTS, 1, 3), "request %u of 3", i + 1);
        CHECK(!fair_take(a, FAIR_REQUESTS, 1, 3), "the 4th of 3 is refused");
        CHECK(a->used[FAIR_REQUESTS] == 3, "a refusal takes nothing");
        CHECK(fair_take(b, FAIR_REQUESTS, 1, 3), "another caller is not affected");
        fair_give(a, FAIR_REQUESTS, 1);
        CHECK(fair_take(a, FAIR_REQUESTS, 1, 3), "given back, taken again");

        CHECK(fair_take(a, FAIR_BODY_BYTES, 60, 100), "60 of 100 bytes");
        CHECK(!fair_take(a, FAIR_BODY_BYTES, 41, 100), "41 more would be 101");
        CHECK(fair_take(a, FAIR_BODY_BYTES, 40, 100), "40 more is exactly 100");
        CHECK(!fair_take(b, FAIR_BODY_BYTES, UINT64_MAX, 100), "no overflow on a huge amount");
        CHECK(!fair_take(b, FAIR_BODY_BYTES, 101, 100), "more than the limit at once");
        fair_give(a, FAIR_BODY_BYTES, 100);
        fair_give(a, FAIR_REQUESTS, 3);
        fair_give(b, FAIR_REQUESTS, 1);
        fair_ledger_unref(&l, a);
        fair_ledger_unref(&l, b);
        CHECK(l.n_callers == 0, "empty");
}

static void test_share(void) {
        CHECK(fair_share(64, 50) == 32, "half of 64: %llu", (unsigned long long) fair_share(64, 50));
        CHECK(fair_share(1, 50) == 1, "never 0");
        CHECK(fair_share(3, 50) == 2, "rounded up");
        CHECK(fair_share(1024, 100) == 1024, "all");
        CHECK(fair_share(10, 1) == 1, "1%% of 10 is still one slot");
}

static void test_queue(void) {
        struct fair_ledger l = { 0 };
        struct fair_caller *a = NULL, *b = NULL;
        struct fair_ticket t[5], u = { 0 };

        memset(t, 0, sizeof t);
        CHECK(fair_ledger_ref(&l, "a", &a) == 0 && fair_ledger_ref(&l, "b", &b) == 0, "make a, b");
        CHECK(fair_ticket_acquire(&l, a, &t[0], 2) == 1, "first slot");
        CHECK(fair_ticket_acquire(&l, a, &t[0], 2) == 1, "holding already: as it is");
        CHECK(fair_ticket_acquire(&l, a, &t[1], 2) == 1, "second slot");
        CHECK(fair_ticket_acquire(&l, a, &t[2], 2) == 0, "third queued");
        CHECK(fair_ticket_acquire(&l, a, &t[3], 2) == 0, "fourth queued");
        CHECK(fair_ticket_acquire(&l, a, &t[2], 2) == 0, "queued already: as it is");
        CHECK(a->n_queued == 2 && l.n_queued == 2, "two queued");
        CHECK(fair_ticket_acquire(&l, b, &u, 2) == 1, "another caller starts at once");
        CHECK(!fair_ticket_grant_next(&l, a, 2), "no slot free: nothing granted");

        fair_ticket_release(&l, a, &t[0]);
        CHECK(fair_ticket_grant_next(&l, a, 2) == &t[2], "the oldest queued gets the freed slot");
        CHECK(t[2].holding && !t[2].queued, "and holds it");
        CHECK(!fair_ticket_grant_next(&l, a, 2), "one slot freed, one granted");

        /* A newcomer waits behind the queue even when a slot is free. */
        fair_ticket_release(&l, a, &t[1]);
        CHECK(fair_ticket_acquire(&l, a, &t[4], 2) == 0, "behind t[3], not ahead of it");
        CHECK(fair_ticket_grant_next(&l, a, 2) == &t[3], "t[3] first");
        CHECK(!fair_ticket_grant_next(&l, a, 2), "share reached");

        /* Leaving the queue. */
        fair_ticket_release(&l, a, &t[4]);
        CHECK(!t[4].queued && a->n_queued == 0 && l.n_queued == 0, "left the queue");
        fair_ticket_release(&l, a, &t[4]);
        CHECK(a->used[FAIR_UPSTREAM] == 2, "releasing twice gives nothing back twice");

        /* A larger share after a reload lets more run. */
        CHECK(fair_ticket_acquire(&l, a, &t[0], 2) == 0, "queued at share 2");
        CHECK(fair_ticket_grant_next(&l, a, 3) == &t[0], "granted at share 3");

        fair_ticket_release(&l, a, &t[0]);
        fair_ticket_release(&l, a, &t[2]);
        fair_ticket_release(&l, a, &t[3]);
        fair_ticket_release(&l, b, &u);
        CHECK(a->used[FAIR_UPSTREAM] == 0 && b->used[FAIR_UPSTREAM] == 0, "all given back");
        fair_ledger_unref(&l, a);
        fair_ledger_unref(&l, b);
        fair_ledger_done(&l);
}

int main(void) {
        test_callers();
        test_take_give();
        test_share();
        test_queue();
        printf("fair-ledger: %u checks, %u failures\n", checks, failures);
        return failures ? 1 : 0;
}
