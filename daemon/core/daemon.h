/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The daemon context: one instance, created in main() and passed explicitly
 * to everything.  There is no other global state except signal handling,
 * which sd-event turns into ordinary events.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "common/base/clock.h"
#include "common/base/sock_diag.h"
#include "common/config/config.h"
#include "daemon/core/metrics.h"
#include "daemon/core/peer.h"

struct listener;
struct pipeline;
struct request;
struct upstream;
struct auth;
struct cache;
struct failure_memory;
struct lingering_conn;
struct wait_loop;
struct fairness;
struct lease_keeper;

struct daemon {
        sd_event *event;
        struct denvr_config *config;
        struct config_overrides overrides;   /* from the command line, for reloads */

        struct listener **listeners;
        size_t n_listeners;
        bool socket_activated;               /* listeners came from systemd */

        struct upstream *upstream;
        struct auth *auth;
        struct cache *cache;
        struct failure_memory *failures;     /* given-up idempotent requests, replayed (failure_memory.h) */
        /* Retry throttling, as gRPC's: a failure takes a token, a success gives back a tenth;
         * denvrd retries only while more than half of RETRY_TOKENS_MAX are left. */
        double retry_tokens;
        const struct pipeline *pipeline;     /* the request's phases (http/phase.h, handlers/pipeline.c) */
        struct wait_loop *wait_loops;        /* wait.c: one per upstream GET being polled */
        struct fairness *fairness;           /* fairness.c: what each caller holds */
        struct lease_keeper *leases;         /* jobs/lease_keeper.c: the leases carried out on time */

        struct request *requests;            /* in flight, for shutdown and stats */
        unsigned n_requests;
        struct lingering_conn *lingering;    /* connections closing lingering (linger.c) */
        unsigned n_lingering;

        struct metrics metrics;
        uint64_t started_usec;               /* CLOCK_MONOTONIC */
        uint64_t started_realtime_usec;
        bool quitting;
        uid_t euid;                          /* ours, for the peer checks */
        struct sock_diag sock_diag;          /* asks the kernel who owns TCP clients' sockets */
        struct peer_cache peer_cache;        /* peer.c: the user database's recent answers */

        sd_event_source *status_timer;       /* keeps STATUS= current (only under systemd) */
        char status_sent[512];               /* the last STATUS= text sent */
        bool idle_trim_pending;              /* request.c gives freed memory back when idle */
};

#define RETRY_TOKENS_MAX 10.0

/* Monotonic "now" of the event loop (its wake-up time), in microseconds. */
uint64_t daemon_now(const struct daemon *d);
/* The same on CLOCK_BOOTTIME, which counts a suspend: for lifetimes in the
 * world outside (cached answers), as auth.c keeps token lives. */
uint64_t daemon_boottime(const struct daemon *d);
/* CLOCK_MONOTONIC read now, for durations shorter than one loop iteration. */
uint64_t clock_now_usec(void);

/* Takes ownership of config; *ret is set even on failure (free it with daemon_free). */
int daemon_new(struct denvr_config *config, const struct config_overrides *o, struct daemon **ret);
int daemon_run(struct daemon *d);
struct daemon *daemon_free(struct daemon *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct daemon *, daemon_free)

/* Opens the configuration's TCP and unix listeners that *list lacks and appends
 * them (not started); on failure *list is as it was. */
int daemon_open_listeners(struct daemon *d, const struct denvr_config *c,
                          struct listener ***list, size_t *n);
/* Whether the configuration asks for listener l (same entry, same options). */
bool daemon_config_wants(const struct denvr_config *c, const struct listener *l);
/* Aborts the requests of one listener, stops and frees it. */
void daemon_drop_listener(struct daemon *d, struct listener *l);
/* Stops every listener and aborts requests in flight. */
void daemon_stop_listeners(struct daemon *d);
/* SIGTERM: stop listening, log out (bounded), leave the loop. */
void daemon_begin_shutdown(struct daemon *d);
