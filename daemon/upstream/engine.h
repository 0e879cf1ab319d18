/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The upstream engine: one object per call to the Denvr API, whoever makes
 * it (the proxy for a client, a wait's poll, a background job).  It alone
 *   - waits for a token and sends it (the Authorization line is wiped after
 *     each attempt);
 *   - replays once with a fresh token when upstream answers 401;
 *   - retries what upstream_status_is_transient() and a failed transfer call
 *     transient, with backoff (0.5 s doubling to 8 s, or upstream's
 *     Retry-After), within the call's deadline and `retries`, throttled as
 *     gRPC throttles while upstream keeps failing;
 *   - counts attempts, retries, errors and latency, and tells the login holder
 *     that upstream answered (readiness);
 *   - says why a call failed, in words a client can act on.
 * Freeing a call cancels what it waits for (transfer, timer, token, turn);
 * done is then not called.
 */

#include <stdbool.h>
#include <stddef.h>

#include "common/base/clock.h"
#include "daemon/upstream/answer.h"

struct curl_slist;
struct daemon;
struct engine_call;

struct engine_request {
        const char *method;
        const char *target;             /* path?query: [defaults] server is put before it per attempt */
        struct curl_slist *headers;     /* without Authorization; the caller's, kept until the end */
        const char *body;
        size_t body_len;
        usec_t deadline;                /* CLOCK_MONOTONIC: no attempt begins after it */
        unsigned retries;               /* at most this many retries */
        bool idempotent;                /* else retried only when no byte of it was sent */
        const char *log_id;
        const char *log_path;           /* what logs may name of the target (no query), or NULL */

        /* Optional: a turn to take before each attempt (fair shares).  acquire()
         * returns 0 when the call must wait; it then calls resume(resume_data). */
        int (*acquire)(void *gate, void (*resume)(void *resume_data), void *resume_data);
        void (*release)(void *gate);
        void *gate;

        /* Optional mirrors for the access log, kept current at every attempt:
         * upstream's last status (-1: none) and the retries so far. */
        long *last_status;
        unsigned *retries_done;
};

enum engine_end {
        ENGINE_ANSWERED,                /* upstream's answer is in answer */
        ENGINE_TRANSFER_FAILED,         /* attempts made, none answered */
        ENGINE_NOT_SENT,                /* no attempt could be made: no token, no time, no memory */
};

struct engine_result {
        enum engine_end end;
        struct answer answer;           /* ENGINE_ANSWERED; the done callback may take its parts */
        unsigned status;                /* otherwise, what denvrd answers: 502, 503, 504 or 424 */
        unsigned retry_after;           /* seconds to suggest with it, 0: none */
        const char *details;            /* curl's words, or NULL */
        char message[320];
};

/*
 * The request of denvrd's own calls (a wait's poll, a lease, the cost): method
 * and target, the configuration's deadline (request_timeout from now) and
 * retries, idempotent.  Callers change what differs after.
 */
struct engine_request engine_request_own(struct daemon *d, const char *method, const char *target,
                                         struct curl_slist *headers, const char *log_id);
/* Their header list: "User-Agent: denvrd/VERSION (who)", Accept JSON (and Content-Type JSON
 * for calls with a body), no Expect.  NULL: out of memory. */
struct curl_slist *engine_own_headers(const char *who, bool json_body);

typedef void (*engine_done_t)(struct engine_call *c, struct engine_result *res, void *userdata);

struct engine_call *engine_call_new(struct daemon *d, engine_done_t done, void *userdata);
/* Runs req (which must outlive the call); done is called once, perhaps before this returns. */
void engine_call_start(struct engine_call *c, const struct engine_request *req);
/* Cancels: done is not called.  NULL is fine. */
void engine_call_free(struct engine_call *c);

/* The number of attempts made so far. */
unsigned engine_call_attempts(const struct engine_call *c);

/* The words of a login failure, as every user of the engine answers it:
 * 424 when no retry can cure it, else 503 with Retry-After 5. */
void engine_not_logged_in(struct daemon *d, const char *fallback, struct engine_result *res);
