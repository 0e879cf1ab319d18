/* SPDX-License-Identifier: MIT */
#include "common/base/query.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cleanup.h"

bool query_next(const char *query, size_t len, size_t *pos, struct query_field *f) {
        assert(pos && f);
        assert(query || len == 0);

        while (*pos < len) {
                const char *seg = query + *pos, *amp, *eq;
                size_t n;

                amp = memchr(seg, '&', len - *pos);
                n = amp ? (size_t) (amp - seg) : len - *pos;
                *pos += n + (amp ? 1 : 0);
                if (n == 0)
                        continue;   /* "a=1&&b=2", a trailing '&': ASP.NET skips them */
                eq = memchr(seg, '=', n);
                *f = (struct query_field) {
                        .raw = seg,
                        .raw_len = n,
                        .name = seg,
                        .name_len = eq ? (size_t) (eq - seg) : n,
                        .value = eq ? eq + 1 : "",
                        .value_len = eq ? n - (size_t) (eq - seg) - 1 : 0,
                        .has_value = eq != NULL,
                };
                return true;
        }
        return false;
}

ssize_t query_decode(const char *s, size_t n, char *out) {
        return percent_decode(s, n, true, out);
}

ssize_t percent_decode(const char *s, size_t n, bool plus_is_space, char *out) {
        size_t w = 0;

        assert(s || n == 0);
        assert(out);
        for (size_t i = 0; i < n; i++) {
                int hi, lo;

                if (s[i] == '+' && plus_is_space) {
                        out[w++] = ' ';
                        continue;
                }
                if (s[i] != '%') {
                        out[w++] = s[i];
                        continue;
                }
                hi = i + 1 < n ? unhexchar(s[i + 1]) : -1;
                lo = i + 2 < n ? unhexchar(s[i + 2]) : -1;
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[w++] = (char) (hi << 4 | lo);
                i += 2;
        }
        out[w] = 0;
        return (ssize_t) w;
}

ssize_t query_decode_dup(const char *s, size_t n, char **ret) {
        _cleanup_free_ char *out = NULL;
        ssize_t k;

        assert(ret);
        out = malloc(n + 1);
        if (!out)
                return -ENOMEM;
        k = query_decode(s, n, out);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(out);
        return k;
}

static int ascii_lower(unsigned char c) {
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

bool query_name_is(const char *raw, size_t n, const char *name) {
        size_t j = 0;

        for (size_t i = 0; i < n; i++, j++) {
                unsigned char c = (unsigned char) raw[i];

                if (c == '+')
                        c = ' ';
                else if (c == '%') {
                        if (i + 2 >= n || unhexchar(raw[i + 1]) < 0 || unhexchar(raw[i + 2]) < 0)
                                return false;
                        c = (unsigned char) (unhexchar(raw[i + 1]) << 4 | unhexchar(raw[i + 2]));
                        i += 2;
                }
                if (name[j] == 0 || ascii_lower(c) != ascii_lower((unsigned char) name[j]))
                        return false;
        }
        return name[j] == 0;
}

int query_get(const char *query, size_t len, const char *name, char **ret, size_t *ret_len) {
        struct query_field f;
        size_t pos = 0;

        assert(name && ret);
        while (query_next(query, len, &pos, &f)) {
                ssize_t k;

                if (!query_name_is(f.name, f.name_len, name))
                        continue;
                k = query_decode_dup(f.value, f.value_len, ret);
                if (k < 0)
                        return (int) k;
                if (ret_len)
                        *ret_len = (size_t) k;
                return 1;
        }
        return 0;
}
