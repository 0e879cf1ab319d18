/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The HTTP methods denvrd serves, and what each is to denvrd: safe (reads
 * only: the CSRF rules and the audit let it by), idempotent (RFC 9110: may be
 * retried after a failure), and whether a request of it usually has a body.
 */

#include <stdbool.h>

struct http_method {
        const char *name;
        bool safe;
        bool idempotent;
        bool body;
};

/* The entry for name (case-sensitive, as methods are), or NULL: not served. */
const struct http_method *http_method_find(const char *name);

/* Unknown methods are none of these. */
bool http_method_is_safe(const char *name);
bool http_method_is_idempotent(const char *name);
bool http_method_has_body(const char *name);

/* "GET, HEAD, ...": the methods served, for Allow. */
extern const char http_methods_allowed[];
