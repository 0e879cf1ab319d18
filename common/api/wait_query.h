/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The query of GET /_denvrd/wait/...: denvrd's own parameters "until" and
 * "timeout" taken out, everything else kept byte for byte for the polled
 * GET; and the test of an answer's "result" against the conditions.
 *
 *   until=FIELD:VALUE   FIELD a member of the answer's result, dotted for
 *                       nested members ([A-Za-z0-9_-] segments); VALUE is
 *                       compared with the member's JSON value as text
 *                       (strings unquoted, exact).  Repeatable: any one
 *                       ends the wait.
 *   until=gone          upstream says the entity does not exist (any until
 *                       may be combined with it).
 *   timeout=SECONDS     1 to WAIT_TIMEOUT_MAX, default WAIT_TIMEOUT_DEFAULT.
 *
 * Parameter names match ASCII case-insensitively after percent-decoding,
 * as ASP.NET would bind them; values are percent-decoded ('+' a space).
 * Pure functions, no logging.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define WAIT_MAX_CONDITIONS 8
#define WAIT_TIMEOUT_DEFAULT 600u
#define WAIT_TIMEOUT_MAX 3600u
#define WAIT_FIELD_MAX 128u
#define WAIT_VALUE_MAX 256u

struct wait_condition {
        char *field;            /* "status", "a.b" */
        char *value;
};

struct wait_query {
        struct wait_condition conditions[WAIT_MAX_CONDITIONS];
        size_t n_conditions;
        bool gone;              /* until=gone given */
        unsigned timeout_sec;

        /* The query to poll with (no '?'): the other parameters, each byte for
         * byte and in order, joined by '&'; NULL when there are none. */
        char *rest;
        size_t rest_len;
        size_t n_kept;          /* parameters in rest */

        char error[200];        /* why parsing failed, for the 400 envelope */
};

/*
 * Parses query (query_len bytes, no leading '?', may be NULL).  Returns 0,
 * -EINVAL with q->error set (the input is malformed), or -ENOMEM.  q is
 * always initialised; free with wait_query_done().
 */
int wait_query_parse(const char *query, size_t query_len, struct wait_query *q);
void wait_query_done(struct wait_query *q);

/*
 * The member FIELD (dotted) of result as text: a string's own text, numbers,
 * true, false and null as JSON writes them, objects and arrays compact.
 * Returns 0 and a malloc'ed text, -ENOENT when absent, -ENOMEM.
 */
int wait_member_text(json_t *result, const char *field, char **ret);

/* The index of the first condition that result meets, or -1. */
int wait_query_match(const struct wait_query *q, json_t *result);

/*
 * Whether an error answer says the entity does not exist: HTTP 404, or an
 * ABP error envelope whose message says "no such" or "not found" (ABP's
 * EntityNotFoundException: "There is no such an entity...").
 */
bool wait_answer_is_gone(long status, json_t *body);
