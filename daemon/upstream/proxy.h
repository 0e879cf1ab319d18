/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Forwarding: {server}{path}?{query} byte-exact, same method and body, the
 * credential's Authorization added, hop-by-hop headers dropped both ways.
 * Known operations get their absent parameters from [defaults] first.  The
 * call itself, with its retries and 401 replay, is the upstream engine's
 * (engine.h); before it, the cache and coalescing (proxy_cache.c) and the
 * failure memory may answer.
 */

struct answer;
struct request;

/* Forwards r; the proxy is r's handler (request.h) until r ends. */
void proxy_start(struct request *r);

/*
 * One who must know upstream's answer to a request it let through (a lease
 * set on CreateServer): answered() runs once, after the answer is the
 * reply, so it may add headers to it (request_reply_header()); free() runs
 * when the request ends, answered or not.
 */
struct proxy_observer {
        void (*answered)(struct request *r, const struct answer *a, void *data);
        void (*free)(void *data);
};

/* proxy_start() with an observer; data is the observer's, freed through it in any case. */
void proxy_start_observed(struct request *r, const struct proxy_observer *o, void *data);
