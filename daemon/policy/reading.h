/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The request-reading phase: once the body is in, a request to the Denvr API
 * (or a wait on one) is read once, as upstream will bind it (common/api/api_read.h).
 * Rights conditions, defaults, waits and the cache all use that reading, and
 * what is forwarded is built from it, so upstream acts on nothing denvrd did
 * not judge.
 */

#include <stdbool.h>

struct request;

/* Reads r into r->reading; false with a 400 (or 503) reply set when refused. */
bool reading_run(struct request *r);

/* Frees what reading_run() kept on r. */
void reading_done(struct request *r);
