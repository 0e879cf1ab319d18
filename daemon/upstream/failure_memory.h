/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One layer of retries.  SDKs retry 5xx and connection failures themselves
 * (go-retryablehttp three times, the Python SDK likewise); behind denvrd, which
 * also retries, each of their tries would cost a whole round of denvrd's, and
 * a persistent outage would cost the product of both.  So when denvrd has
 * given up on an idempotent request, it remembers the failure for a while
 * ([daemon] failure_memory_seconds), and the same request again from the same
 * caller (the same uid or local token, and the same in everything sent: the
 * cache key) is answered from that failure at once, with
 * Retry-After and X-Denvrd-Replayed, instead of a new round upstream.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct failure_memory;

struct remembered_failure {
        unsigned status;
        bool transport;         /* no answer from upstream (denvrd's own 502 or 504) */
        char *content_type;     /* NULL: none */
        char *body;
        size_t body_len;
        uint64_t noted_usec;    /* CLOCK_BOOTTIME */
        uint64_t expires_usec;
};

struct failure_memory *failure_memory_new(void);
struct failure_memory *failure_memory_free(struct failure_memory *m);

/* Whether anything is remembered: the common case costs no key. */
bool failure_memory_empty(const struct failure_memory *m);

/* Remembers (copies) a failure for key until now + ttl_usec; the oldest goes when full. */
void failure_memory_note(struct failure_memory *m, const char *key, unsigned status, bool transport,
                         const char *content_type, const char *body, size_t body_len, uint64_t now_usec,
                         uint64_t ttl_usec);

/* The failure remembered for key, or NULL; expired entries are dropped on the way. */
const struct remembered_failure *failure_memory_lookup(struct failure_memory *m, const char *key,
                                                       uint64_t now_usec);

/* Upstream answered something: the failures that were no answer at all are forgotten. */
void failure_memory_forget_transport(struct failure_memory *m);

/* Forgets everything (a reload with other credentials or another server). */
void failure_memory_clear(struct failure_memory *m);
