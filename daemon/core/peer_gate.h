/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Who may use denvrd at all: the same rule on every listener, judged on the
 * peer the kernel named (peer.h) when it connects, and again per request (a
 * reload may change the rule).  denvrd's own uid and root, allowed_uids and
 * allowed_groups, and callers a [rights] rule names; a local token is a
 * credential of its own (policy/access.c).
 */

#include <stdbool.h>
#include <sys/types.h>

struct denvr_config;
struct peer;

/* The peer rule, the same for both transports; self is the daemon's effective uid. */
bool peer_gate_allowed(const struct peer *p, const struct denvr_config *c, uid_t self);

/*
 * Whether a connection's peer is refused whatever it sends: the peer rule refuses it
 * and no local token could let it in (none configured, so neither an Authorization
 * header nor the login shim's password can).  fairness.c answers and closes it.
 */
bool peer_gate_refused_outright(const struct peer *p, const struct denvr_config *c);

/* A warning when c switches the peer rule off (trust_local_users); at start and reload. */
void peer_gate_warn_trust(const struct denvr_config *c);
