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

struct request;

/* Forwards r; the proxy is r's handler (request.h) until r ends. */
void proxy_start(struct request *r);
