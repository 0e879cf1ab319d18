/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Lingering close, as nginx's lingering_close.  A connection answered while
 * its client is still sending (a body over max_body_bytes, a refusal before
 * the body is read) must not simply be closed: closing a socket with unread
 * data makes the kernel send a reset, and the client, still writing, may get
 * "broken pipe" or "connection reset" before it reads the answer.  So the
 * answer is sent, the write side shut down (the client sees the end), and
 * whatever still arrives is read and dropped until the client closes, for a
 * bounded time and amount; only then is the socket closed.
 */

#include <stdbool.h>

struct daemon;

/* Takes over a duplicate of fd (whose owner closes its own at once); false
 * when it does not (shutting down, too many lingering, no memory). */
bool linger_start(struct daemon *d, int fd);
/* Closes every lingering connection (shutdown). */
void linger_stop_all(struct daemon *d);
