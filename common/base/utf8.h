/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * Length of the valid UTF-8 sequence at p (strict: no overlongs, surrogates
 * or values past U+10FFFF, as JSON text needs), 0 if there is none.  Stops at
 * a NUL, which is never a continuation byte.
 */
size_t utf8_sequence_length(const unsigned char *p);

/* Whether the NUL-terminated s is valid UTF-8. */
bool utf8_valid(const char *s);

/* Replaces every byte that does not start a valid sequence with '?'. */
void utf8_sanitize(char *s);

/* Whether the n bytes at s are valid UTF-8 (the same strict rules; a NUL byte is valid). */
bool utf8_valid_len(const char *s, size_t n);
