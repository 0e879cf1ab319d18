/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Where each top-level member of a JSON object sits in its text, so that one
 * value can be replaced while every other byte stays the client's (big
 * numbers, key order, escapes, whitespace).  The text must already be valid
 * JSON (jansson said so): this walks it, it does not validate it.
 */

#include <stddef.h>

struct json_span {
        char key[128];          /* decoded member name (truncated past 127 bytes) */
        size_t key_len;         /* its full decoded length */
        size_t value_start;     /* offset of the value's first byte */
        size_t value_end;       /* one past its last byte */
};

/*
 * Calls fn for each top-level member of the object whose '{' is at text[brace],
 * in text order.  Stops early when fn returns non-zero and returns that value;
 * returns 0 after the last member.
 */
int json_span_members(const char *text, size_t len, size_t brace,
                      int (*fn)(const struct json_span *s, void *userdata), void *userdata);
