/* SPDX-License-Identifier: MIT */
/* An upstream answer as it arrives: headers (bounded), body (bounded, reserved from Content-Length). */
#include "common/client/upstream-internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>


void upstream_transfer_clear_response(struct upstream_transfer *t) {
        for (size_t i = 0; i < t->n_resp_headers; i++) {
                free(t->resp_headers[i].name);
                free(t->resp_headers[i].value);
        }
        t->n_resp_headers = 0;
        free(t->resp_body);
        t->resp_body = NULL;
        t->resp_body_len = t->resp_body_alloc = 0;
        t->status = 0;
        t->result = CURLE_OK;
        t->too_large = false;
        t->headers_too_large = false;
        t->resp_header_bytes = 0;
        t->request_sent = false;
        t->errbuf[0] = 0;
        t->total_sec = 0;
}

size_t upstream_write_cb(char *data, size_t size, size_t n, void *userdata) {
        struct upstream_transfer *t = userdata;
        size_t len = size * n;

        if (len > UPSTREAM_MAX_BODY - t->resp_body_len) {
                t->too_large = true;
                return 0;
        }
        if (t->resp_body_len + len > t->resp_body_alloc) {
                size_t want = t->resp_body_alloc ? t->resp_body_alloc : 16384;
                char *p;

                while (want < t->resp_body_len + len)
                        want *= 2;
                p = realloc(t->resp_body, want);
                if (!p)
                        return 0;
                t->resp_body = p;
                t->resp_body_alloc = want;
        }
        memcpy(t->resp_body + t->resp_body_len, data, len);
        t->resp_body_len += len;
        return len;
}

static int transfer_add_header(struct upstream_transfer *t, const char *name, size_t nlen,
                               const char *value, size_t vlen) {
        struct upstream_header *h;

        if (t->n_resp_headers == t->resp_headers_alloc) {
                size_t want = t->resp_headers_alloc ? t->resp_headers_alloc * 2 : 16;

                h = reallocarray(t->resp_headers, want, sizeof *h);
                if (!h)
                        return -ENOMEM;
                t->resp_headers = h;
                t->resp_headers_alloc = want;
        }
        h = &t->resp_headers[t->n_resp_headers];
        h->name = strndup(name, nlen);
        h->value = strndup(value, vlen);
        if (!h->name || !h->value) {
                free(h->name);
                free(h->value);
                return -ENOMEM;
        }
        t->n_resp_headers++;
        return 0;
}

/* Sizes the body buffer from Content-Length (up to 1 MiB) before the first
 * byte arrives: one allocation instead of a realloc() and a copy per doubling. */
static void body_reserve(struct upstream_transfer *t, const char *v, size_t vlen) {
        char buf[24], *end;
        unsigned long long n;
        char *p;

        if (t->resp_body_alloc > 0 || vlen == 0 || vlen >= sizeof buf || strcmp(t->method, "HEAD") == 0)
                return;
        memcpy(buf, v, vlen);
        buf[vlen] = 0;
        errno = 0;
        n = strtoull(buf, &end, 10);
        if (errno || *end || n == 0 || n > UPSTREAM_RESERVE_MAX)
                return;
        p = malloc(n);
        if (!p)
                return;   /* upstream_write_cb() will try again */
        t->resp_body = p;
        t->resp_body_alloc = n;
}

size_t upstream_header_cb(char *data, size_t size, size_t n, void *userdata) {
        struct upstream_transfer *t = userdata;
        size_t len = size * n, nlen, vstart;
        const char *colon;

        /* A status line starts a new response (after 1xx or a proxy's CONNECT). */
        if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
                t->resp_header_bytes = 0;
                for (size_t i = 0; i < t->n_resp_headers; i++) {
                        free(t->resp_headers[i].name);
                        free(t->resp_headers[i].value);
                }
                t->n_resp_headers = 0;
                return len;
        }

        t->resp_header_bytes += len;
        if (t->resp_header_bytes > UPSTREAM_MAX_HEADER_BYTES) {
                t->headers_too_large = true;
                return 0;
        }
        while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
                len--;
        colon = memchr(data, ':', len);
        if (!colon || colon == data || data[0] == ' ' || data[0] == '\t')
                return size * n;    /* blank line, obsolete folding or junk: skip */

        nlen = (size_t) (colon - data);
        vstart = nlen + 1;
        while (vstart < len && (data[vstart] == ' ' || data[vstart] == '\t'))
                vstart++;
        while (len > vstart && (data[len - 1] == ' ' || data[len - 1] == '\t'))
                len--;
        if (transfer_add_header(t, data, nlen, data + vstart, len - vstart) < 0)
                return 0;
        if (nlen == 14 && strncasecmp(data, "Content-Length", 14) == 0)
                body_reserve(t, data + vstart, len - vstart);
        return size * n;
}

/* The options every transfer shares: set once per easy handle. */

const char *upstream_transfer_header(const struct upstream_transfer *t, const char *name) {
        for (size_t i = 0; i < t->n_resp_headers; i++)
                if (t->resp_headers[i].name && strcasecmp(t->resp_headers[i].name, name) == 0)
                        return t->resp_headers[i].value;
        return NULL;
}

long upstream_parse_retry_after(const char *v) {
        char *end;
        time_t when;
        long n;

        if (!v || !*v)
                return -1;
        if (isdigit((unsigned char) v[0])) {
                errno = 0;
                n = strtol(v, &end, 10);
                if (errno || *end || n < 0)
                        return -1;
                return n;
        }
        when = curl_getdate(v, NULL);
        if (when < 0)
                return -1;
        n = (long) (when - time(NULL));
        return n < 0 ? 0 : n;
}

bool upstream_status_is_transient(long s) {
        return s == 429 || s == 502 || s == 503 || s == 504;
}
