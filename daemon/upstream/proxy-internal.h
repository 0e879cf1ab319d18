/* SPDX-License-Identifier: MIT */
#pragma once

/* What proxy.c and proxy_cache.c share. */

#include <stdbool.h>
#include <stddef.h>

#include "daemon/upstream/engine.h"
#include "daemon/upstream/proxy.h"

struct cache_flight;
struct request;

struct proxy {
        struct request *r;
        struct engine_call *call;
        struct engine_request req;
        const char *target;             /* path?query as forwarded: the client's, or owned_target */
        char *owned_target;             /* when defaults were filled into the query */
        struct curl_slist *headers;     /* client's forwardable headers + ours */
        char *owned_body;               /* when the body was rewritten */

        /* GET cache and coalescing (cache.h); NULL key: not cacheable. */
        char *cache_key;
        unsigned cache_ttl;
        struct cache_flight *flight;
        bool waiting;                   /* a follower of another request's flight */

        const struct proxy_observer *observer;
        void *observer_data;
};

/* Starts p's own upstream call. */
void proxy_go(struct proxy *p);
/* Sends an answer (taking its body), with the cache's headers when x_cache is set. */
void proxy_reply_answer(struct proxy *p, struct answer *a, const char *x_cache, unsigned age);
/* Sends the engine's failure. */
void proxy_reply_failure(struct proxy *p, const struct engine_result *res);

/* The key of everything sent upstream that can change the answer; NULL for a body. */
char *proxy_key(struct proxy *p);
/* 1 when the cache answered p or it follows an identical request in flight; 0 to go upstream. */
int proxy_cache_step(struct proxy *p);
/* p's call ended: an answer to share (2xx only) or NULL, or a failure for every follower. */
void proxy_flight_finish(struct proxy *p, const struct answer *a, const struct engine_result *failure);
/* p leaves its flight without an answer: the next follower goes upstream itself. */
void proxy_flight_leave(struct proxy *p);
