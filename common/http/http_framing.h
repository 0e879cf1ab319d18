/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Header hygiene: what a request's head may hold before denvrd acts on it
 * (RFC 9110 and RFC 9112).  A proxy that passes on what another parser reads
 * differently lets a second request ride inside the first with the real
 * Authorization; denvrd refuses instead:
 *
 *  - a field name that is not an RFC 9110 token (this includes whitespace
 *    before the colon);
 *  - a control character in a value, HTAB excepted (a bare CR, LF or NUL
 *    among them);
 *  - obs-fold: a line that starts with SP or HTAB and continues the previous
 *    field;
 *  - Content-Length together with Transfer-Encoding, Content-Length given
 *    twice or not 1*DIGIT, a transfer coding other than "chunked" alone.
 *
 * Two views are checked: the raw head as it arrived (http_head_problem(), for
 * what a parser repairs silently: bare CR, obs-fold), and the fields as
 * parsed (http_field_problem() and struct http_framing).  Pure functions.
 */

#include <stdbool.h>
#include <stddef.h>

/* Why the raw head (its complete lines only, up to the empty line) is refused, or NULL. */
const char *http_head_problem(const char *head, size_t len);

/* Why one parsed field is refused, or NULL. */
const char *http_field_problem(const char *name, const char *value);

/* The framing fields of one request, gathered field by field. */
struct http_framing {
        unsigned n_content_length;
        bool content_length_bad;
        bool transfer_encoding;
        bool transfer_encoding_bad;     /* not "chunked" alone */
};

void http_framing_add(struct http_framing *f, const char *name, const char *value);

/* Why the framing is refused, or NULL. */
const char *http_framing_problem(const struct http_framing *f);

/* RFC 9110 tchar. */
bool http_is_tchar(char c);
