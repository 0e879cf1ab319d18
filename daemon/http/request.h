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
#include "daemon/http/fairness.h"
#include "common/config/local_token.h"

struct daemon;
struct listener;
struct MHD_Connection;
struct MHD_Response;
struct api_read;
struct proxy;
struct waiter;
struct wait_query;

/*
 * Who is on the other end of a connection: filled once when it is accepted
 * (peer.h), the same fields whatever the transport, so that the access
 * rules, rights, the audit and /_denvrd/whoami need not know it:
 *
 *   identified   the kernel named the caller: uid is exact.  Unix socket:
 *                SO_PEERCRED.  TCP: the uid owning the client's socket
 *                (NETLINK_SOCK_DIAG).  When false, `unidentified` says why
 *                and uid, gid and groups mean nothing.
 *   uid          the caller's uid.
 *   gid          its primary group, when gid_known: SO_PEERCRED's gid; for
 *                TCP the uid's user entry (false without one).
 *   groups       its supplementary groups (n_groups of them, malloc'ed),
 *                when groups_known: SO_PEERGROUPS; for TCP the user
 *                database's groups of that user (getgrouplist).
 *   pid          unix socket only (0 otherwise, or when unknown).
 */
struct peer {
        bool is_unix;
        bool identified;
        const char *unidentified;   /* static text: why not identified */
        uid_t uid;
        gid_t gid;
        bool gid_known;
        gid_t *groups;
        size_t n_groups;
        bool groups_known;
        pid_t pid;
        char addr[64];          /* TCP: "127.0.0.1:54321" */
        unsigned port;          /* TCP client port */

        /* access.c: the peer gate. */
        bool allowed;           /* verdict; re-evaluated per request, as a reload may change the rules */
        bool denial_logged;     /* the refusal was logged once for this connection */
        /* audit.c: the peer's executable, looked up once; NULL until then, "?" if unknown. */
        char *exe;
};

/* Per-connection state, libmicrohttpd's socket context. */
struct conn_ctx {
        struct listener *listener;
        int fd;
        struct peer peer;
        char *raw_uri;          /* request line's target, byte-exact, for the next request */
        /* Watches the socket for the peer's FIN/RST for the connection's whole
         * life: edge-triggered, so it costs no system call per request. */
        sd_event_source *hangup_watch;
        bool peer_closed;       /* seen by hangup_watch */
        bool hangup_level;      /* hangup_watch is level-triggered for now (request.c) */
        bool linger;            /* answered with the body unread: close lingering (linger.c) */
        bool head_seen;         /* the next request's head was peeked at (request.c) */
        const char *head_problem;   /* ... and refused for this (static text), or NULL */
        struct request *request;   /* the one in progress on it, if any */
        struct fair_conn fair;     /* fairness.c: its caller's count, header and idle deadlines */
};

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
        const char *query;      /* into raw_uri after '?', or NULL */
        char method[16];
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

        struct proxy *proxy;    /* for forwarded requests */
        struct waiter *wait;    /* for GET /_denvrd/wait/ (wait.c) */

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

/* Lifecycle, driven by server.c. */
struct request *request_new(struct listener *l, struct conn_ctx *ctx, struct MHD_Connection *conn,
                            const char *method, const char *url);
void request_free(struct request *r, bool completed_ok);
/* Checks run once the headers are in: limits, access rules, routing. */
void request_begin(struct request *r);
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
/* Called once the whole body is in: local answer, or start forwarding. */
void request_dispatch(struct request *r);
/* A new connection's hangup watch, for all its requests; removed before it closes. */
int request_conn_watch(struct conn_ctx *ctx, sd_event *e);
void request_conn_unwatch(struct conn_ctx *ctx);
/* Stops watching for the client going away. */
void request_unwatch_hangup(struct request *r);
/* Suspends the connection until a reply is set. */
void request_suspend(struct request *r);
/* Watches for the client going away (until a reply or the end): aborts the
 * request, also while its body is still being read. */
void request_watch_hangup(struct request *r);

/* Headers of the client's request (case-insensitive). */
const char *request_header(const struct request *r, const char *name);

/* Replies; each takes ownership of body (malloc'ed) and resumes if suspended. */
int request_reply(struct request *r, unsigned status, const char *content_type, char *body, size_t len);
int request_reply_json(struct request *r, unsigned status, char *json);
int request_reply_error(struct request *r, unsigned status, const char *details,
                        const char *format, ...) _printf_(4, 5);
/* Adds a header to the pending reply (after request_reply*). */
int request_reply_header(struct request *r, const char *name, const char *value);
