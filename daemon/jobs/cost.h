/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What the machines that are not offline cost: one snapshot built from four
 * upstream reads (virtual servers and their configurations, applications
 * and their hardware packages), on demand only.  Each read is kept in the
 * daemon's cache under the key a proxied GET of its path gets, for
 * [daemon] cost_interval seconds, so a change sent through denvrd to the
 * service drops it (cache_invalidate_service()); nothing is read while
 * nobody asks.  Askers while a fetch is in flight join it: one fetch.  When
 * any read fails, every asker gets that failure and nothing is cached.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct daemon;
struct cost_ask;

struct cost_report {
        /* [{"service","id","cluster","namespace","configuration","status","price_per_hour","lease"}] */
        json_t *machines;
        double total_per_hour;          /* of the priced machines */
        unsigned unpriced;              /* machines whose price is not known */
        char *currency;                 /* NULL: upstream did not say, or said two */
        int64_t as_of;                  /* wall clock of the oldest read, seconds since the epoch */
        unsigned age_sec;
};

struct cost_failure {
        unsigned status;                /* what denvrd answers */
        unsigned retry_after;           /* seconds, 0: none */
        char message[480];
};

/* Exactly one of report and failure is set; both are valid during the call only. */
typedef void (*cost_done_t)(const struct cost_report *report, const struct cost_failure *failure,
                            void *userdata);

/*
 * The figures: 1 when done was called before returning (fresh reads in the
 * cache), 0 when it will be called later (*ret: the ask, to cancel), or
 * -ENOMEM (done not called).
 */
int cost_get(struct daemon *d, cost_done_t done, void *userdata, struct cost_ask **ret);
/* The asker goes away: done is not called.  The last one cancels the fetch.  NULL is fine. */
void cost_ask_cancel(struct cost_ask *a);
/* The asker stops waiting (done is not called), but the reads go on to the end and are
 * cached for the next asker, however many others leave or go away.  NULL is fine. */
void cost_ask_leave(struct cost_ask *a);
/* At exit, after every request: drops reads still under way. */
void cost_stop(struct daemon *d);
