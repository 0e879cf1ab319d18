/* SPDX-License-Identifier: MIT */
/* The failure memory (daemon/upstream/failure_memory.h): remembered, replayed, expired, evicted, forgotten. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "daemon/upstream/failure_memory.h"

#define S 1000000u

static void note(struct failure_memory *m, const char *key, unsigned status, bool transport, uint64_t now) {
        failure_memory_note(m, key, status, transport, "application/json", "{\"x\":1}", 7, now, 20 * S);
}

int main(void) {
        struct failure_memory *m = failure_memory_new();
        const struct remembered_failure *f;
        char key[32];

        CHECK(m && failure_memory_empty(m), "new and empty");
        note(m, "a", 503, false, 0);
        f = failure_memory_lookup(m, "a", 5 * S);
        CHECK(f && f->status == 503 && f->body_len == 7 && strcmp(f->content_type, "application/json") == 0,
              "remembered");
        CHECK(!failure_memory_lookup(m, "b", 5 * S), "another key");
        CHECK(!failure_memory_lookup(m, "a", 20 * S) && failure_memory_empty(m), "expired and dropped");

        /* More than the slots: the oldest go; drops and reuse never share a pointer. */
        for (unsigned i = 0; i < 200; i++) {
                snprintf(key, sizeof key, "k%u", i);
                note(m, key, 502, i % 2, i);
                if (i % 7 == 0)
                        (void) failure_memory_lookup(m, key, 20 * S + i - 1);   /* expires the oldest */
        }
        CHECK(failure_memory_lookup(m, "k199", 200), "newest kept");
        CHECK(!failure_memory_lookup(m, "k0", 200), "oldest evicted");
        failure_memory_forget_transport(m);
        CHECK(!failure_memory_lookup(m, "k199", 200), "a transport failure is forgotten");
        CHECK(failure_memory_lookup(m, "k198", 200), "an upstream answer is kept");
        note(m, "k198", 504, true, 300);
        f = failure_memory_lookup(m, "k198", 301);
        CHECK(f && f->status == 504 && f->transport, "replaced in place");
        failure_memory_clear(m);
        CHECK(failure_memory_empty(m), "cleared");
        note(m, "again", 503, false, 0);
        CHECK(failure_memory_lookup(m, "again", 1), "usable after clear");
        failure_memory_note(m, "off", 503, false, NULL, "", 0, 0, 0);
        CHECK(!failure_memory_lookup(m, "off", 0), "ttl 0: not remembered");
        failure_memory_free(m);
        printf("failure-memory: %u checks, %u failures\n", checks, failures);
        return failures ? 1 : 0;
}
