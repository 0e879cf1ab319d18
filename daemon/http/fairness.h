/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Fair shares (issue 17): one local caller must not starve the others.
 *
 * The caller is the local token a request presents, else the uid the kernel
 * names, else (an unidentified peer) one bucket per listener.  Each caller
 * may hold at most [daemon] max_connections_per_caller connections (counted
 * by uid at connect), max_requests_per_caller requests, max_waits_per_caller
 * waits, max_buffered_bytes_per_caller bytes of request bodies, and
 * upstream_share_percent of max_upstream_connections upstream transfers at
 * once; its further upstream requests wait in its own queue here, not in
 * curl's, so that other callers' requests start at once.  Over a limit: 429
 * naming the key.  denvrd's own user and root without a token are not
 * counted: they can stop or reconfigure denvrd anyway.
 *
 * Every connection must send its request headers within header_timeout of
 * being opened (or of the request line of a later request), and is closed
 * after idle_timeout without one; a caller the rules refuse outright (no
 * local token could help it) is answered 403 and closed, within a second.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-event.h>

#include "common/base/fair_ledger.h"

struct conn_ctx;
struct daemon;
struct request;
struct MHD_Connection;

enum fair_refusal {
        FAIR_REFUSED_CONNECTIONS,
        FAIR_REFUSED_REQUESTS,
        FAIR_REFUSED_WAITS,
        FAIR_REFUSED_BODY_BYTES,
        _FAIR_REFUSED_MAX,
};

enum fair_close {
        FAIR_CLOSED_REFUSED_PEER,    /* refused outright, not gone within a second */
        FAIR_CLOSED_HEADER_TIMEOUT,
        FAIR_CLOSED_IDLE_TIMEOUT,
        _FAIR_CLOSED_MAX,
};

struct fairness {
        struct fair_ledger ledger;
        uint64_t refused[_FAIR_REFUSED_MAX];
        uint64_t closed[_FAIR_CLOSED_MAX];
        uint64_t upstream_queued_total;   /* requests that waited for their caller's share */
};

int fairness_new(struct fairness **ret);
struct fairness *fairness_free(struct fairness *f);

/* A new connection (peer and its verdict known): false when it was over the caller's
 * connection limit and is being closed (a 429 written first). */
bool fairness_conn_open(struct daemon *d, struct conn_ctx *ctx, struct MHD_Connection *conn);
/* The request line of a request arrived: the headers must follow within header_timeout. */
void fairness_conn_request_line(struct conn_ctx *ctx);
/* A request's headers are in; no deadline while it runs (its body has max_buffered_bytes). */
void fairness_conn_headers_done(struct conn_ctx *ctx);
/* A request ended: the connection is idle until the next one. */
void fairness_conn_request_end(struct conn_ctx *ctx);
void fairness_conn_close(struct conn_ctx *ctx);

/* Counts a request whose headers passed the checks; false when it was answered 429. */
bool fairness_request_admit(struct request *r);
/* Charges n more body bytes (beyond those announced); false when answered 429. */
bool fairness_request_body(struct request *r, size_t n);
/* Gives back everything the request held. */
void fairness_request_end(struct request *r);

/* Before an upstream transfer of r: 1 to start it now, 0 when it waits for a slot of
 * its caller (start(userdata) is called then). */
int fairness_upstream_acquire(struct request *r, void (*start)(void *userdata), void *userdata);
/* The transfer ended or was dropped: frees its slot (or place in the queue). */
void fairness_upstream_release(struct request *r);

void fairness_write_metrics(FILE *f, const struct fairness *fz);
