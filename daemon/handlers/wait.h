/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * GET /_denvrd/wait/<a GET operation>?<its query>&until=...&timeout=...:
 * answers once the operation's answer meets a condition (wait_query.h).
 *
 * Every wait for the same upstream GET (same path and query after
 * defaults; there is one credential) shares one polling loop: the first
 * poll at once, then after 1, 2, 4 ... seconds up to [daemon]
 * wait_poll_max_seconds.  A waiter that joins a running loop gets a poll
 * within a second of the previous one, not the loop's current pause.
 * Upstream 5xx, 429 and connection failures are polled through; another
 * non-2xx answer ends the waits (passed through, or 200 for until=gone when
 * it says the entity is gone).  The cache is never asked.  Each poll is
 * built from the configuration in force when it is sent, so a reload
 * carries running waits over to the new server and credentials.
 */

#include "daemon/core/metrics.h"

struct request;

/*
 * The operation path a wait polls, from the request's canonical path:
 * 1 with *ret the canonical /api/... path (malloc'ed), 0 when canon_path is
 * no wait for an API path, -ENOMEM.  The access rules judge that path.
 */

/* From local_api.c: r is GET /_denvrd/wait or below. */
void wait_start(struct request *r);

const char *wait_end_to_string(enum wait_end e);
