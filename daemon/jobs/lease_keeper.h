/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The lease keeper: the leases denvrd holds (common/api/lease.h), kept in
 * their state file (common/api/lease_store.h) and carried out on time.
 *
 * Every change is written to the file before it is answered, so a lease a
 * client was told about survives a crash.  Deadlines are wall-clock times:
 * one CLOCK_REALTIME timer is armed for the earliest deadline (or warning),
 * so a deadline that passed while denvrd was stopped, or the host was down
 * or asleep, is acted on as soon as the loop runs.  Acting goes through the
 * upstream engine (lease_act.c), once per lease: a lease in state "done" is
 * never acted on again.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/api/lease.h"

struct daemon;
struct lease_keeper;

/* Warned this long before a deadline (at once for a shorter lease). */
#define LEASE_WARNING_DEFAULT_SEC (10 * 60)

/*
 * The state file's path: $STATE_DIRECTORY/leases.json under systemd's
 * StateDirectory=, else $XDG_STATE_HOME/denvrd/leases.json, else
 * ~/.local/state/denvrd/leases.json.  0 or -ENOMEM / -ENOENT (no home).
 */
int lease_keeper_path(char **ret);

/* Loads the state file at path: a file that cannot be read is an error
 * (in err), never an empty list. */
int lease_keeper_new(struct daemon *d, const char *path, struct lease_keeper **ret, char *err, size_t err_size);
struct lease_keeper *lease_keeper_free(struct lease_keeper *k);
/* Arms the timer (after the event loop exists): overdue leases are acted on at once. */
int lease_keeper_start(struct lease_keeper *k);
/* Shutting down: nothing more is started, calls in flight are dropped.  NULL is fine. */
void lease_keeper_stop(struct lease_keeper *k);

const char *lease_keeper_file(const struct lease_keeper *k);
size_t lease_keeper_count(const struct lease_keeper *k);
const struct lease *lease_keeper_at(const struct lease_keeper *k, size_t i);
/* The lease on one machine, or NULL (cluster compared case-insensitively). */
const struct lease *lease_keeper_find(const struct lease_keeper *k, enum lease_service s, const char *cluster,
                                      const char *id);

/* Sets or replaces the lease on l's machine, taking l over (zeroed) and
 * saving: 0, or a negative errno with nothing changed (l stays the caller's). */
int lease_keeper_set(struct lease_keeper *k, struct lease *l);
/* Removes the lease on one machine and saves: 0, -ENOENT, or another negative errno. */
int lease_keeper_remove(struct lease_keeper *k, enum lease_service s, const char *cluster, const char *id);

/* The call that tells whether l's machine exists (and its status):
 * GetServer?id=&namespace=&cluster= or GetApplicationDetails?id=&cluster=. */
char *lease_check_target(struct daemon *d, const struct lease *l);

struct lease_keeper_stats {
        uint64_t warnings;              /* warnings logged ahead of a deadline */
        uint64_t acted_ok, acted_failed;
};
void lease_keeper_stats(const struct lease_keeper *k, struct lease_keeper_stats *ret);

/* Wall-clock now, in seconds since the epoch. */
int64_t lease_keeper_now(const struct lease_keeper *k);

#ifdef DENVRD_TEST_HOOKS
/* The test build's clock for leases: moves seconds on, and acts on what is then due. */
void lease_keeper_advance_clock(struct lease_keeper *k, int64_t seconds);
#endif
