/* SPDX-License-Identifier: MIT */
#pragma once

/* What access.c and access_preflight.c share. */

#include <stdbool.h>

#include "common/base/cleanup.h"
#include "common/config/config.h"
#include "daemon/policy/access.h"

struct request;

/* The methods denvrd forwards; OPTIONS is never preflighted, so not listed. */
#define CORS_METHODS_FULL "GET, HEAD, POST, PUT, PATCH, DELETE"
#define CORS_METHODS_READ_ONLY "GET, HEAD"
#define CORS_MAX_AGE "600"
/* Bounds on the Access-Control-Request-Headers we echo. */
#define CORS_MAX_HEADER_NAMES 32u
#define CORS_MAX_HEADER_NAME_LEN 64u

/* How much of a client-chosen value a message or log line quotes. */
#define QUOTE_MAX 100

/* Refuses r: a 403 envelope carrying the message, an info log line, the denied counter.
 * Returns false, for "return access_deny(...)". */
bool access_deny(struct request *r, const char *format, ...) _printf_(2, 3);
/* The listener's key ("tcp_access" or "socket_access") and level. */
const char *access_key(const struct request *r);
enum access_level access_listener_level(const struct request *r);
/* Answers a CORS preflight (204 with the allowed methods and headers, or a refusal). */
void access_answer_preflight(struct request *r, const char *origin, bool listed);
