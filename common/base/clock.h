/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One time type: microseconds in a uint64_t, as sd-event counts them, on
 * whichever clock the caller names (CLOCK_MONOTONIC for durations inside the
 * loop, CLOCK_BOOTTIME for lifetimes that a suspend must shorten,
 * CLOCK_REALTIME for deadlines in the world outside).
 */

#include <stdint.h>
#include <time.h>

typedef uint64_t usec_t;

#define USEC_PER_SEC ((usec_t) 1000000u)
#define USEC_PER_MSEC ((usec_t) 1000u)
#define USEC_INFINITY ((usec_t) UINT64_MAX)

static inline usec_t timespec_usec(const struct timespec *ts) {
        return (usec_t) ts->tv_sec * USEC_PER_SEC + (usec_t) ts->tv_nsec / 1000u;
}

/* The clock read now. */
static inline usec_t clock_usec(clockid_t id) {
        struct timespec ts;

        (void) clock_gettime(id, &ts);
        return timespec_usec(&ts);
}

/* a + b, saturating at USEC_INFINITY. */
static inline usec_t usec_add(usec_t a, usec_t b) {
        return a > USEC_INFINITY - b ? USEC_INFINITY : a + b;
}

/* a - b, or 0 when b is later. */
static inline usec_t usec_sub(usec_t a, usec_t b) {
        return a > b ? a - b : 0;
}
