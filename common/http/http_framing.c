/* SPDX-License-Identifier: MIT */
#include "common/http/http_framing.h"

#include <string.h>
#include <strings.h>

bool http_is_tchar(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_ctl(unsigned char c) {
        return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* One complete field line (without its line end). */
static const char *line_problem(const char *line, size_t len) {
        size_t i = 0;

        if (line[0] == ' ' || line[0] == '\t')
                return "a folded header line (obs-fold)";
        while (i < len && http_is_tchar(line[i]))
                i++;
        if (i == len || line[i] != ':')
                return i < len && (line[i] == ' ' || line[i] == '\t')
                        ? "whitespace between a header name and its colon"
                        : "a header name that is not an RFC 9110 token";
        if (i == 0)
                return "an empty header name";
        for (i++; i < len; i++) {
                if (line[i] == '\r')
                        return "a bare CR inside a header";
                if (is_ctl((unsigned char) line[i]))
                        return "a control character in a header value";
        }
        return NULL;
}

const char *http_head_problem(const char *head, size_t len) {
        const char *p = head, *end = head + len;
        bool first = true;

        while (p < end) {
                const char *lf = memchr(p, '\n', (size_t) (end - p));
                size_t n;
                const char *why;

                if (!lf)
                        return NULL;   /* the rest has not arrived yet */
                n = (size_t) (lf - p);
                /* RFC 9112 lets a recipient take a bare LF as a line end; a hop behind may not. */
                if (n == 0 || p[n - 1] != '\r')
                        return "a header line that ends in LF without CR";
                n--;
                if (n == 0)
                        return NULL;   /* the end of the head */
                if (first) {
                        /* The request line: its target is judged elsewhere; a bare CR is not. */
                        if (memchr(p, '\r', n))
                                return "a bare CR in the request line";
                        first = false;
                } else if ((why = line_problem(p, n)))
                        return why;
                p = lf + 1;
        }
        return NULL;
}

const char *http_field_problem(const char *name, const char *value) {
        if (!name || !*name)
                return "an empty header name";
        for (const char *p = name; *p; p++)
                if (!http_is_tchar(*p))
                        return *p == ' ' || *p == '\t' ? "whitespace between a header name and its colon"
                                                      : "a header name that is not an RFC 9110 token";
        for (const char *p = value ? value : ""; *p; p++)
                if (is_ctl((unsigned char) *p))
                        return "a control character in a header value";
        return NULL;
}

/*
 * "chunked" alone, case-insensitive, as the field's value after the blanks
 * that follow the colon: libmicrohttpd keeps blanks after a value and then
 * does not read the body as chunked, so "chunked " is refused, not taken.
 */
static bool is_chunked(const char *v) {
        return strcasecmp(v, "chunked") == 0;
}

void http_framing_add(struct http_framing *f, const char *name, const char *value) {
        if (strcasecmp(name, "Content-Length") == 0) {
                const char *v = value ? value : "";

                f->n_content_length++;
                if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 18)
                        f->content_length_bad = true;
        } else if (strcasecmp(name, "Transfer-Encoding") == 0) {
                if (f->transfer_encoding || !is_chunked(value ? value : ""))
                        f->transfer_encoding_bad = true;
                f->transfer_encoding = true;
        }
}

const char *http_framing_problem(const struct http_framing *f) {
        if (f->n_content_length > 0 && f->transfer_encoding)
                return "both Content-Length and Transfer-Encoding";
        if (f->n_content_length > 1)
                return "Content-Length given more than once";
        if (f->content_length_bad)
                return "a Content-Length that is not a plain number";
        if (f->transfer_encoding_bad)
                return "a transfer coding other than \"chunked\" alone";
        return NULL;
}
