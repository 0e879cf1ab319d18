/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Fair shares: what each caller holds of denvrd (connections, requests,
 * waits, buffered body bytes, upstream transfers), counted against the
 * [daemon] limits, and a per-caller queue of requests waiting for one of
 * that caller's upstream slots.  A caller is named by a key ("token:NAME",
 * "uid:1000", "listener:127.0.0.1:3368"); the daemon glue (daemon/http/fairness.c)
 * decides who is which.  No I/O, no clock: unit-tested on its own.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

enum fair_resource {
        FAIR_CONNECTIONS,
        FAIR_REQUESTS,
        FAIR_WAITS,
        FAIR_BODY_BYTES,
        FAIR_UPSTREAM,
        _FAIR_RESOURCE_MAX,
};

/* One request's claim on an upstream slot of its caller. */
struct fair_ticket {
        struct fair_ticket *prev, *next;   /* in the caller's queue, while queued */
        bool queued;
        bool holding;                      /* holds one of the caller's slots */
};

struct fair_caller {
        struct fair_caller *prev, *next;
        char *key;
        unsigned refs;                     /* connections and requests pointing here */
        uint64_t used[_FAIR_RESOURCE_MAX];
        struct fair_ticket *queue_head, *queue_tail;
        size_t n_queued;
};

struct fair_ledger {
        struct fair_caller *callers;
        size_t n_callers;
        size_t n_queued;                   /* over every caller */
};

/* The caller named key, made on first use; a reference the caller gives back
 * with fair_ledger_unref().  0 or -ENOMEM. */
int fair_ledger_ref(struct fair_ledger *l, const char *key, struct fair_caller **ret);
struct fair_caller *fair_caller_ref(struct fair_caller *c);
/* Drops a reference; the caller is forgotten with its last one (it must hold nothing then). */
void fair_ledger_unref(struct fair_ledger *l, struct fair_caller *c);
/* Frees every caller (at shutdown, whatever they hold). */
void fair_ledger_done(struct fair_ledger *l);

/* Takes n of a resource when the caller stays within limit; false (nothing taken) otherwise. */
bool fair_take(struct fair_caller *c, enum fair_resource r, uint64_t n, uint64_t limit);
void fair_give(struct fair_caller *c, enum fair_resource r, uint64_t n);

/* The slots one caller may hold: percent of total, rounded up, at least 1. */
uint64_t fair_share(unsigned total, unsigned percent);

/* A slot for t: 1 held now, 0 queued behind the caller's earlier requests (t is given
 * one by fair_ticket_grant_next() once a slot of that caller frees).  Holding or
 * queued already: as it is. */
int fair_ticket_acquire(struct fair_ledger *l, struct fair_caller *c, struct fair_ticket *t, uint64_t share);
/* Gives up t's slot or its place in the queue; nothing when it has neither. */
void fair_ticket_release(struct fair_ledger *l, struct fair_caller *c, struct fair_ticket *t);
/* The caller's oldest queued ticket, now holding a slot, while it has one free; else NULL. */
struct fair_ticket *fair_ticket_grant_next(struct fair_ledger *l, struct fair_caller *c, uint64_t share);

/* What a connection and a request of a caller hold (the daemon's glue keeps them). */
/* In struct conn_ctx. */
struct fair_conn {
        struct fair_caller *caller;   /* counted against max_connections_per_caller; NULL: not */
        sd_event_source *timer;       /* the header or idle deadline */
        uint64_t deadline;            /* CLOCK_MONOTONIC usec; 0: none */
        uint64_t armed;               /* what timer is set for (may be earlier); 0: not set */
        bool refused;                 /* refused outright: answer, close */
        bool idle;                    /* between two requests */
};

/* In struct request. */
struct fair_hold {
        struct fair_caller *caller;   /* NULL: not counted (not admitted, or exempt) */
        uint64_t bytes;               /* body bytes charged */
        bool wait;
        struct fair_ticket ticket;    /* its upstream slot */
        void (*start)(void *userdata);   /* called when a queued ticket gets its slot */
        void *userdata;
};
