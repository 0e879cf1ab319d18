/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The slice of TOML that people write in denvr.toml, decoded from the raw
 * value text of one line: basic strings (with escapes), literal strings,
 * integers (decimal with sign and '_', 0x/0o/0b), booleans and single-line
 * arrays of those, followed by an optional '#' comment.  Everything else TOML
 * allows (multi-line strings and arrays, inline tables, floats, dates and
 * times, nested arrays) is rejected with a message saying what it is, so a
 * value is never silently misread.
 *
 * Error messages never quote the value text: it may be a password.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/cleanup.h"
#include "common/base/utf8.h"

enum toml_type {
        TOML_STRING,
        TOML_INTEGER,
        TOML_BOOLEAN,
        TOML_ARRAY,
};

struct toml_value {
        enum toml_type type;
        union {
                struct {
                        char *str;    /* NUL-terminated; never contains NUL */
                        size_t len;
                } s;
                int64_t i;
                bool b;
                struct {
                        struct toml_value *items;
                        size_t n;
                } a;
        };
};

/* Where decoding failed: a 1-based column within the text given, and why. */
struct toml_error {
        size_t column;
        char message[160];
};

/*
 * Decodes one value: leading blanks, the value, trailing blanks and an
 * optional comment.  Returns 0 and fills *ret (free with toml_value_done()),
 * -EINVAL with *err filled, or -ENOMEM.
 */
int toml_value_decode(const char *text, struct toml_value *ret, struct toml_error *err);

/* Wipes strings (a value may be a secret) and frees everything.  Idempotent. */
void toml_value_done(struct toml_value *v);

/*
 * Finds where a value of any TOML type ends on its line without decoding it,
 * so that keys we do not know (SDK users keep their own) may hold any
 * single-line value.  Fails only for text that cannot be one value on one
 * line (multi-line strings, arrays or inline tables, unterminated strings,
 * a missing value).  On success *ret_len is the value's length without the
 * comment and trailing blanks.
 */
int toml_value_scan(const char *text, size_t *ret_len, struct toml_error *err);

/*
 * Parses a key: bare (A-Za-z0-9_-), "basic" or 'literal', possibly dotted.
 * Stops after the key and the blanks following it; *ret_end points there.
 * *ret_parts is the NULL-terminated list of decoded parts (more than one
 * for a dotted key).  Returns 0, -EINVAL (with *err) or -ENOMEM.
 */
int toml_key_parse(const char *text, const char **ret_end, char ***ret_parts, struct toml_error *err);

/* Whether s[0..n) is well-formed UTF-8 (no overlongs, no surrogates). */
static inline bool toml_utf8_valid(const char *s, size_t n) {
        return utf8_valid_len(s, n);
}

const char *toml_type_to_string(enum toml_type t);
