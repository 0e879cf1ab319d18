/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One HTTP request from a local client, from its headers to the moment
 * libmicrohttpd reports it complete.  A request that waits (for upstream or
 * for a token) suspends its connection; whoever finishes it calls one of the
 * request_reply_*() functions, which resumes the connection.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "common/base/cleanup.h"
#include "common/base/fair_ledger.h"
#include "common/config/local_token.h"
#include "daemon/http/conn.h"
#include "daemon/http/route.h"

struct daemon;
struct listener;
struct MHD_Connection;
struct MHD_Response;
struct api_read;
struct http_method;
struct wait_query;

struct request {
        struct daemon *daemon;
        struct listener *listener;
        struct conn_ctx *conn_ctx;
        struct MHD_Connection *conn;
        struct request *prev, *next;

        char *raw_uri;          /* path?query exactly as the client sent it */
        char *path;             /* raw path part (not percent-decoded) */
        /* The one form every decision on the path uses (common/http/canon_path.h):
         * routing, login shim, shorthand, operation table, cache, access, audit.
         * Set by request_begin() before the access checks; NULL until then and
         * for a refused path.  Lowercase: compare with strcmp() to lowercase
         * constants, or case-insensitively. */
        char *canon_path;
        struct route route;     /* where it goes (route.h): set by the route phase */
        const char *query;      /* into raw_uri after '?', or NULL */
        char method[16];
        const struct http_method *method_info;   /* http_method.h; NULL: not served (405) */
        char id[129];
        const char *head_problem;   /* the raw head's problem (http_framing.h), or NULL */
        uint64_t start_usec;

        char *body;
        size_t body_len, body_alloc;
        bool body_too_large;
        size_t body_discarded;  /* bytes read and dropped after a 413 */
        char *now_buf;          /* the reply as written by request_send_now() */
        size_t now_len, now_sent;
        bool sent_now;          /* ... and all of it is written */
        bool dispatched;

        /* reading.c: the request as upstream will bind it (API paths and waits), and a
         * wait's own parameters; NULL elsewhere. */
        struct api_read *reading;
        struct wait_query *wait_query;

        /* What answers it over time (the proxy, a wait), reached only through these ops. */
        const struct request_handler *handler;
        void *handler_data;
        bool forwarded;         /* the proxy took it: audited as a change sent upstream */

        struct MHD_Response *response;
        const char *response_body;   /* owned by response */
        unsigned status;
        long upstream_status;
        size_t response_bytes;
        unsigned retries;

        /* rights.c: the caller's local token (its name in [tokens], "" for none), the
         * [rights] key that decided ("" for no rule), conditions still to check. */
        char token[LOCAL_TOKEN_NAME_MAX + 1];
        char rule[LOCAL_TOKEN_NAME_MAX + 16];
        bool rights_pending;
        bool rights_list;       /* held to an operation list: read strictly (reading.c) */

        struct fair_hold fair;  /* fairness.c: what it holds of its caller's limits */

        bool suspended;
        bool aborted;           /* client went away */
        bool watch_hangup;      /* a hangup now aborts this request */
};

/* How a request ends: answered, the client went away, or denvrd stopped it. */
enum request_end {
        REQUEST_END_DONE,
        REQUEST_END_HANGUP,
        REQUEST_END_ABORTED,
};

/*
 * A handler that answers a request later (the proxy, a wait) registers this
 * with request_set_handler(); the request ends it exactly once, through
 * end(data, how): on REQUEST_END_DONE after its answer was sent, else it must
 * drop whatever it waits for (and may hand shared work to another request),
 * and it must not reply.
 */
struct request_handler {
        const char *name;
        void (*end)(void *data, enum request_end how);
};

void request_set_handler(struct request *r, const struct request_handler *h, void *data);
/* The handler ended on its own (it answered): end() will not be called. */
void request_clear_handler(struct request *r);
/* The one abort path: ends the handler, marks the request aborted, resumes and wakes
 * its connection so that libmicrohttpd closes it.  Safe to call twice. */
void request_abort(struct request *r, enum request_end how);

/* Lifecycle, driven by server.c. */
struct request *request_new(struct listener *l, struct conn_ctx *ctx, struct MHD_Connection *conn,
                            const char *method, const char *url);
void request_free(struct request *r, bool completed_ok);
/* Runs the header phases (phase.h) once the headers are in. */
void request_begin(struct request *r);
/* Phases of the http layer: the target's length; the head's size and method;
 * the canonical path; the announced body's size.  Each is false once it has
 * answered. */
bool request_check_target(struct request *r);
bool request_check_head(struct request *r);
bool request_canonicalise(struct request *r);
bool request_check_length(struct request *r);
/* Appends a body chunk; enforces max_body_bytes. */
void request_append_body(struct request *r, const char *data, size_t len);
/* Whether the request announces a body (Content-Length > 0 or Transfer-Encoding). */
bool request_has_body(const struct request *r);
/*
 * Writes the pending reply on the connection now, with "Connection: close":
 * libmicrohttpd sends replies only before the body (first call) or after all
 * of it.  Returns 0 once it is all written (the connection must then be
 * closed, lingering), -EAGAIN when part of it waits for the next call, or
 * another negative errno.
 */
int request_send_now(struct request *r);
/* Runs the body phases (phase.h) once the whole body is in. */
void request_dispatch(struct request *r);
/* A new connection's watch (its heads and hangup), for all its requests, in its
 * listener's watch set (conn_watch.h); conn_watch_remove() before it closes. */
int request_conn_watch(struct conn_ctx *ctx);
/* What the watch saw on ctx's socket (epoll events). */
void request_conn_event(struct conn_ctx *ctx, uint32_t revents);
/* Stops watching for the client going away. */
void request_unwatch_hangup(struct request *r);
/* Suspends the connection until a reply is set. */
void request_suspend(struct request *r);
/* Watches for the client going away (until a reply or the end): aborts the
 * request, also while its body is still being read. */
void request_watch_hangup(struct request *r);

/* What the access log and the audit say of a finished request, as text. */
struct request_facts {
        char status[8];         /* what the client got: 499 when it went away */
        char up[8];             /* upstream's status ... */
        const char *upstream;   /* ... or NULL when upstream never answered */
        char uid[16];           /* the peer's uid, "" when not identified */
};
void request_facts(const struct request *r, bool completed_ok, struct request_facts *ret);

/* The journal fields every log line of a request carries. */
#define REQUEST_LOG_FIELDS(r, path, facts)                                \
        { "REQUEST_ID", (r)->id },                                        \
        { "METHOD", (r)->method },                                        \
        { "PATH", (path) },                                               \
        { "STATUS", (facts)->status },                                    \
        { "UPSTREAM_STATUS", (facts)->upstream },                         \
        { "PEER_UID", (facts)->uid[0] ? (facts)->uid : NULL }

/* Headers of the client's request (case-insensitive). */
const char *request_header(const struct request *r, const char *name);

/* Replies; each takes ownership of body (malloc'ed) and resumes if suspended. */
int request_reply(struct request *r, unsigned status, const char *content_type, char *body, size_t len);
int request_reply_json(struct request *r, unsigned status, char *json);
int request_reply_error(struct request *r, unsigned status, const char *details,
                        const char *format, ...) _printf_(4, 5);
/* Adds a header to the pending reply (after request_reply*). */
int request_reply_header(struct request *r, const char *name, const char *value);
