/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Upstream HTTP client: one curl multi handle driven by an sd-event loop
 * (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION), so no thread ever
 * waits on the network.  Connections are kept alive and shared by every
 * transfer (HTTP/2 multiplexing when the server offers it), capped at
 * max_connections; transfers beyond the cap queue inside curl.
 *
 * A transfer is owned by its caller.  Fill in the request fields, call
 * upstream_transfer_start(); the done callback runs from the event loop
 * with the response fields set.  A transfer may be started again after it
 * finished (retries reuse it).  upstream_transfer_free() aborts a running
 * transfer without calling done.
 */

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#include "common/base/cleanup.h"

/*
 * Cap on the response headers: they must fit, with the largest request
 * denvrd accepts, in libmicrohttpd's per-connection memory when the answer
 * is passed on.  Beyond it the transfer fails with headers_too_large.
 */
#define UPSTREAM_MAX_HEADER_BYTES (8u * 1024u)

/* Cap on a buffered upstream body; beyond it the transfer fails with too_large. */
#define UPSTREAM_MAX_BODY (64u * 1024u * 1024u)
#define UPSTREAM_CONNECT_TIMEOUT_MS 5000

struct upstream;
struct upstream_transfer;

struct upstream_options {
        const char *ca_file;          /* extra CA bundle, or NULL */
        unsigned max_connections;     /* total cap, >= 1 */
};

struct upstream_header {
        char *name;
        char *value;
};

typedef void (*upstream_done_t)(struct upstream_transfer *t, void *userdata);

struct upstream_transfer {
        /* Request, set by the caller (the transfer does not copy them). */
        const char *method;           /* "GET", "POST", ... */
        const char *url;              /* absolute, already encoded */
        struct curl_slist *headers;   /* owned by the caller */
        const char *body;             /* may be NULL */
        size_t body_len;
        unsigned long timeout_ms;     /* whole transfer, queueing for a connection included; 0 = none */

        /* Response, valid in the done callback. */
        CURLcode result;
        long status;                  /* 0 when no answer */
        struct upstream_header *resp_headers;
        size_t n_resp_headers;
        char *resp_body;
        size_t resp_body_len;
        bool too_large;               /* body exceeded UPSTREAM_MAX_BODY */
        bool headers_too_large;       /* headers exceeded UPSTREAM_MAX_HEADER_BYTES */
        size_t resp_header_bytes;
        bool request_sent;            /* any byte of the request went out */
        char errbuf[CURL_ERROR_SIZE];
        double total_sec;             /* curl's total time */

        /* Private. */
        struct upstream *upstream;
        CURL *easy;
        unsigned generation;          /* of the upstream options easy was prepared with */
        bool running;
        size_t resp_body_alloc;
        size_t resp_headers_alloc;
        upstream_done_t done;
        void *userdata;
        sd_event_source *deadline;    /* timeout_ms enforced while queued for a connection */
};

int upstream_new(sd_event *e, const struct upstream_options *o, struct upstream **ret);
struct upstream *upstream_free(struct upstream *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct upstream *, upstream_free)

/* Applies new options to transfers started from now on. */
int upstream_reconfigure(struct upstream *u, const struct upstream_options *o);

/*
 * Frees *node, one header line holding a credential (Authorization) that was
 * prepended to a longer list: wiped first, and the rest of the list is left
 * alone.  *node becomes NULL; NULL is fine.
 */
void upstream_secret_header_free(struct curl_slist **node);

/*
 * Work finished by an event of the upstream's (a socket, a timer) may make
 * work elsewhere ready at once, such as a reply to send: fn runs after each
 * such event is handled, so the caller can do that work in the same loop
 * iteration instead of the next (sd-event dispatches one source per
 * iteration, each with its own epoll_wait()).  NULL turns it off.
 */
void upstream_set_after_events(struct upstream *u, void (*fn)(void *userdata), void *userdata);

/* Runs what curl asked to run "now" (a transfer just added) at once rather
 * than from the next loop iteration; a no-op when nothing is waiting. */
void upstream_run_now(struct upstream *u);

/* Frees what is kept only to make the next requests cheaper (idle handles). */
void upstream_trim(struct upstream *u);

/* Number of transfers running and connections curl holds open. */
unsigned upstream_running(const struct upstream *u);
long upstream_connections_open(struct upstream *u);
unsigned long upstream_connections_opened(const struct upstream *u);

struct upstream_transfer *upstream_transfer_new(struct upstream *u, upstream_done_t done, void *userdata);
int upstream_transfer_start(struct upstream_transfer *t);
/* Aborts a running transfer (done is not called). */
void upstream_transfer_cancel(struct upstream_transfer *t);
void upstream_transfer_free(struct upstream_transfer *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct upstream_transfer *, upstream_transfer_free)

/* Case-insensitive lookup in the response headers; NULL if absent. */
const char *upstream_transfer_header(const struct upstream_transfer *t, const char *name);

/* Parses a Retry-After value (delta seconds or HTTP date) into seconds from now; -1 if invalid. */
long upstream_parse_retry_after(const char *v);

/*
 * The one transient rule: an answer that another attempt a little later may
 * well not get (429 Too Many Requests, 502, 503, 504: a gateway or the server
 * overloaded or restarting).  Other statuses are the server's verdict, 500
 * included: its bug is not cured by asking again.  The proxy's retries, the
 * waits' polls and the login holder all go by it.
 */
bool upstream_status_is_transient(long status);
