/* SPDX-License-Identifier: MIT */
#pragma once

/* What engine.c shares with engine_failure.c: why a call got no answer, in words a client can act on. */

#include "common/base/clock.h"

struct daemon;
struct engine_result;
struct upstream_transfer;

/* The host part of [defaults] server, for messages. */
const char *engine_upstream_host(const struct daemon *d);

/* Fills res (status, message, details) for t's failed transfer; deadline is the call's. */
void engine_describe_failure(const struct daemon *d, const struct upstream_transfer *t, usec_t deadline,
                             struct engine_result *res);
