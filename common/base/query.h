/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The one reader of query strings, for every part of denvrd that looks at
 * one (request reading, the login shim, whoami, waits, log redaction).
 *
 * It reads a query as ASP.NET Core does: pieces separated by '&' only (not
 * ';'), empty pieces skipped, a piece without '=' a name with an empty value,
 * '+' a space, "%XX" a byte.  Where ASP.NET is lenient and denvrd must not
 * be (a '%' not followed by two hex digits stays literal there), the decoder
 * says -EINVAL and the caller refuses the request: a name denvrd cannot read
 * exactly is a name it cannot judge.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* One piece of a query, as sent (nothing decoded). */
struct query_field {
        const char *raw;                /* the whole piece */
        size_t raw_len;
        const char *name;               /* == raw */
        size_t name_len;
        const char *value;              /* after '=', or "" without one */
        size_t value_len;
        bool has_value;                 /* there was an '=' */
};

/*
 * Steps over query[*pos..len): fills *f with the next non-empty piece and
 * returns true, or returns false at the end.  Start with *pos = 0.
 */
bool query_next(const char *query, size_t len, size_t *pos, struct query_field *f);

/*
 * Percent-decodes s[0..n) into out, which has room for n + 1 bytes ('+' is a
 * space).  Returns the decoded length (out is NUL-terminated; the value may
 * hold NUL bytes), or -EINVAL for a '%' not followed by two hex digits.
 */
ssize_t query_decode(const char *s, size_t n, char *out);

/* The same for a path segment too: '+' is a space only when plus_is_space. */
ssize_t percent_decode(const char *s, size_t n, bool plus_is_space, char *out);

/* Same, into a new allocation in *ret: -ENOMEM, -EINVAL, or the length. */
ssize_t query_decode_dup(const char *s, size_t n, char **ret);

/* Whether a raw name decodes to name, ASCII case-insensitively (false on bad escapes). */
bool query_name_is(const char *raw, size_t n, const char *name);

/*
 * The decoded value of the first piece whose name is name (as above), in a
 * new allocation.  Returns 1 when found, 0 when absent, -EINVAL for a bad
 * escape in that value, -ENOMEM.
 */
int query_get(const char *query, size_t len, const char *name, char **ret, size_t *ret_len);
