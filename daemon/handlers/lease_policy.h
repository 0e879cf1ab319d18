/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What a caller may do with leases, wherever it sets one (the header on
 * CreateServer and friends, PUT /_denvrd/leases/...):
 *   - the right to the lease's action on that machine, as [rights] would
 *     judge a StopServer or DestroyServer with its id, namespace and cluster;
 *   - its [leases] entry: no longer lease than that one;
 *   - it sees its own leases; a caller no rule holds, or held to "full", all.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/api/lease.h"

struct lease_default;
struct request;

/* Who sets it: uid (and user name), local token. 0 or -ENOMEM. */
int lease_policy_set_by(struct request *r, struct lease *l);
bool lease_policy_visible(struct request *r, const struct lease *l);
/* The caller's [leases] entry, or NULL. */
const struct lease_default *lease_policy_default(struct request *r);
/* 0, or -EPERM with msg naming the [leases] entry that allows no lease that long. */
int lease_policy_limit(struct request *r, int64_t seconds, char *msg, size_t size);
/* 0, or -EPERM with msg naming the [leases] entry that makes a lease a must for this caller. */
int lease_policy_may_remove(struct request *r, char *msg, size_t size);
/* 0, or -EPERM with msg naming the [rights] rule that refuses the action. */
int lease_policy_rights(struct request *r, const struct lease *l, char *msg, size_t size);
/* 0, or -EPERM with msg: the lease already on l's machine, if any and still to be carried out,
 * has an action the caller may not take (replacing it would undo it, as removing it would). */
int lease_policy_replace(struct request *r, const struct lease *l, char *msg, size_t size);
/* The operation that carries the action out, "/api/v1/servers/virtual/StopServer". */
const char *lease_policy_action_path(enum lease_service s, enum lease_action a, char *buf, size_t size,
                                     const char *api);
