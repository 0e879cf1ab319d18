/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Opt-in GET cache with coalescing ([cache] in denvr.toml maps exact paths to
 * TTL seconds).  For those paths:
 *  - concurrent identical GETs (same path and query after defaults, same
 *    Accept and Accept-Encoding) share one upstream call: the first is the
 *    leader, the others wait for its answer ("flight");
 *  - 2xx answers are kept for the TTL and served with Age and X-Cache: HIT;
 *  - "Cache-Control: no-cache" (or "Pragma: no-cache") from the client
 *    bypasses both;
 *  - any other method on a service (/api/v1/servers/virtual/...) drops that
 *    service's entries;
 *  - entries belong to one credential: a reload with other credentials
 *    empties the cache.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/cleanup.h"

struct answer;
struct cache;
struct cache_entry;
struct cache_flight;

#define CACHE_MAX_BYTES (32u * 1024u * 1024u)

int cache_new(struct cache **ret);
struct cache *cache_free(struct cache *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cache *, cache_free)

/* Drops every entry (not flights in progress). */
void cache_clear(struct cache *c);
/* Drops the entries of the service that `path` belongs to. */
void cache_invalidate_service(struct cache *c, const char *path);

/* The fresh answer for key, or NULL; *ret_age is its age in seconds.  now_usec is
 * CLOCK_BOOTTIME, so an entry also ages while the machine sleeps. */
const struct answer *cache_lookup(struct cache *c, const char *key, uint64_t now_usec,
                                        unsigned *ret_age);
/* The same, with the age in microseconds (a time of its own can be worked out from it). */
const struct answer *cache_lookup_usec(struct cache *c, const char *key, uint64_t now_usec, uint64_t *ret_age_usec);
/* Stores a 2xx answer (copied); others are ignored. */
void cache_store(struct cache *c, const char *key, const char *path, unsigned ttl_sec,
                 const struct answer *a, uint64_t now_usec);

/* Flights: one leader per key, any number of waiters (opaque pointers). */
struct cache_flight *cache_flight_find(struct cache *c, const char *key);
struct cache_flight *cache_flight_begin(struct cache *c, const char *key, void *leader);
int cache_flight_join(struct cache_flight *f, void *waiter);
void cache_flight_leave(struct cache_flight *f, void *waiter);
/* Ends the flight; returns the waiters (NULL-terminated, malloc'ed) to answer. */
void **cache_flight_end(struct cache *c, struct cache_flight *f);
/* The leader went away: the first waiter (returned) becomes the leader. */
void *cache_flight_promote(struct cache_flight *f);
size_t cache_entries(const struct cache *c);

