/* SPDX-License-Identifier: MIT */
#pragma once

/* What lease_keeper.c (the set, its file, its timer) and lease_act.c (carrying a lease out) share. */

#include <systemd/sd-event.h>

#include "common/api/lease_store.h"
#include "daemon/jobs/lease_keeper.h"

/* Journal MESSAGE_IDs, one per step of a lease's life. */
#define MESSAGE_ID_LEASE_SET     "3b0c6f1e8a2d4b7c9e5f1a3d6c8b0e24"
#define MESSAGE_ID_LEASE_WARNING "a41e7c2b9d0f4e68b3a5c7d9e1f20b46"
#define MESSAGE_ID_LEASE_ACTING  "5d2f8a0c1e3b4d69a7c9e0f2b4d6a813"
#define MESSAGE_ID_LEASE_DONE    "c6e0b2d4f6a84c1e9b3d5f7a9c1e3b57"
#define MESSAGE_ID_LEASE_FAILED  "e8a2c4e6b0d24f3a8c5e7b9d1f3a5c79"

struct lease_job;

struct lease_keeper {
        struct daemon *daemon;
        char *path;
        struct lease_set set;
        uint64_t next_serial;
        sd_event_source *timer;         /* CLOCK_REALTIME: the next deadline or warning */
        int64_t clock_offset;           /* seconds added to the wall clock: the test build's only */
        struct lease_job *jobs;         /* leases being carried out */
        /* Counters for the metrics. */
        uint64_t warnings, acted_ok, acted_failed;
};

/* Writes the set to the file; logs a failure (the set in memory stays as it is). */
int lease_keeper_save(struct lease_keeper *k);
struct lease *lease_keeper_by_serial(struct lease_keeper *k, uint64_t serial);
/* Re-arms the timer for the next deadline or warning. */
void lease_keeper_arm(struct lease_keeper *k);

/* lease_act.c: carries l out (state acting, saved); a job already running for it is kept. */
void lease_act_start(struct lease_keeper *k, struct lease *l, int64_t now);
/* Drops the job for serial (its lease was removed or replaced). */
void lease_act_cancel(struct lease_keeper *k, uint64_t serial);
void lease_act_cancel_all(struct lease_keeper *k);
/* "servers/virtual/vm-1 (cluster Msc1)", for log lines. */
void lease_describe(const struct lease *l, char *buf, size_t size);
