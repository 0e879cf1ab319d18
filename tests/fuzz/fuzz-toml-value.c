/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the TOML value decoder: toml_value_decode(),
 * toml_value_scan() and toml_key_parse().
 *
 * Input: the value text of one line (what follows '=').  It is copied into a
 * buffer of exactly its size plus the terminating NUL, so ASan sees any read
 * past it; an embedded NUL simply ends the text early.
 *
 * Beyond "no crash, no out-of-bounds access, no leak", it checks:
 *  - decoding is deterministic (same value, or same column and message);
 *  - an error has a NUL-terminated, non-empty message and a column inside
 *    the text (or just after it);
 *  - an accepted value re-encoded as TOML (strings as basic strings with
 *    escapes, control bytes as \uXXXX) decodes to the same value, byte for
 *    byte; decoded strings are UTF-8 without NUL and their length is right;
 *  - an accepted top-level integer equals what strtoll/strtoull read from the
 *    token with its '_' removed (so it is in int64 range, and no digit was
 *    lost or misread);
 *  - whatever decodes also scans, and the scanned length ends the value:
 *    only blanks and a comment may follow;
 *  - a parsed key has at least one part, and the end pointer is inside the text.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cleanup.h"
#include "common/config/toml_value.h"

#define CHECK(cond)                                                                          \
        do {                                                                                 \
                if (!(cond)) {                                                               \
                        fprintf(stderr, "fuzz-toml-value: property violated: %s (line %d)\n", \
                                #cond, __LINE__);                                            \
                        abort();                                                             \
                }                                                                            \
        } while (0)

static bool value_equal(const struct toml_value *a, const struct toml_value *b) {
        if (a->type != b->type)
                return false;
        switch (a->type) {
        case TOML_STRING:
                return a->s.len == b->s.len && memcmp(a->s.str, b->s.str, a->s.len + 1) == 0;
        case TOML_INTEGER:
                return a->i == b->i;
        case TOML_BOOLEAN:
                return a->b == b->b;
        case TOML_ARRAY:
                if (a->a.n != b->a.n)
                        return false;
                for (size_t i = 0; i < a->a.n; i++)
                        if (!value_equal(&a->a.items[i], &b->a.items[i]))
                                return false;
                return true;
        }
        return false;
}

static void check_value(const struct toml_value *v, bool top) {
        switch (v->type) {
        case TOML_STRING:
                CHECK(v->s.str);
                CHECK(strlen(v->s.str) == v->s.len);
                CHECK(toml_utf8_valid(v->s.str, v->s.len));
                break;
        case TOML_ARRAY:
                CHECK(top);
                CHECK(v->a.n == 0 || v->a.items);
                for (size_t i = 0; i < v->a.n; i++)
                        check_value(&v->a.items[i], false);
                break;
        case TOML_INTEGER:
        case TOML_BOOLEAN:
                break;
        default:
                CHECK(!"unknown type");
        }
}

/* A growing string for the re-encoding. */
struct out {
        char *s;
        size_t len, cap;
};

static void out_add(struct out *o, const char *s, size_t n) {
        if (o->len + n + 1 > o->cap) {
                size_t cap = o->cap ? o->cap : 64;

                while (cap < o->len + n + 1)
                        cap *= 2;
                o->s = realloc(o->s, cap);
                CHECK(o->s);
                o->cap = cap;
        }
        memcpy(o->s + o->len, s, n);
        o->len += n;
        o->s[o->len] = 0;
}

static void out_str(struct out *o, const char *s) {
        out_add(o, s, strlen(s));
}

/* Re-encodes v as TOML text; strings become basic strings with escapes. */
static void encode(struct out *o, const struct toml_value *v) {
        char tmp[32];

        switch (v->type) {
        case TOML_STRING:
                out_str(o, "\"");
                for (size_t i = 0; i < v->s.len; i++) {
                        unsigned char c = (unsigned char) v->s.str[i];

                        if (c == '"')
                                out_str(o, "\\\"");
                        else if (c == '\\')
                                out_str(o, "\\\\");
                        else if (c < 0x20 || c == 0x7f) {
                                (void) snprintf(tmp, sizeof tmp, "\\u%04X", c);
                                out_str(o, tmp);
                        } else
                                out_add(o, (const char *) &c, 1);
                }
                out_str(o, "\"");
                break;
        case TOML_INTEGER:
                (void) snprintf(tmp, sizeof tmp, "%" PRId64, v->i);
                out_str(o, tmp);
                break;
        case TOML_BOOLEAN:
                out_str(o, v->b ? "true" : "false");
                break;
        case TOML_ARRAY:
                out_str(o, "[");
                for (size_t i = 0; i < v->a.n; i++) {
                        if (i)
                                out_str(o, ", ");
                        encode(o, &v->a.items[i]);
                }
                out_str(o, "]");
                break;
        }
}

/* The top-level integer token read by libc: '_' removed, prefix picks the base. */
static void check_integer(const char *text, int64_t got) {
        const char *s = text + strspn(text, " \t");
        size_t n = strcspn(s, " \t#"), k = 0;
        char *digits = malloc(n + 1), *end;
        int base = 10;

        CHECK(digits);
        for (size_t i = 0; i < n; i++)
                if (s[i] != '_')
                        digits[k++] = s[i];
        digits[k] = 0;
        if (k > 2 && digits[0] == '0' && strchr("xob", digits[1])) {
                unsigned long long u;

                base = digits[1] == 'x' ? 16 : digits[1] == 'o' ? 8 : 2;
                errno = 0;
                u = strtoull(digits + 2, &end, base);
                CHECK(errno == 0 && *end == 0 && digits[2] != '-' && digits[2] != '+');
                CHECK(u <= INT64_MAX && (int64_t) u == got);
        } else {
                long long x;

                errno = 0;
                x = strtoll(digits, &end, 10);
                CHECK(errno == 0 && *end == 0);
                CHECK(x == got);
        }
        free(digits);
}

static void check_error(const char *text, const struct toml_error *e) {
        CHECK(memchr(e->message, 0, sizeof e->message));
        CHECK(e->message[0]);
        CHECK(e->column >= 1 && e->column <= strlen(text) + 1);
}

static void check_decode(const char *text) {
        struct toml_value v, v2, v3;
        struct toml_error e = { 0 }, e2 = { 0 }, es = { 0 };
        struct out o = { 0 };
        size_t scan_len;
        int r, r2, rs;

        r = toml_value_decode(text, &v, &e);
        CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
        if (r == -ENOMEM)
                return;
        r2 = toml_value_decode(text, &v2, &e2);
        CHECK(r2 == r);
        rs = toml_value_scan(text, &scan_len, &es);
        CHECK(rs == 0 || rs == -EINVAL);
        if (rs < 0)
                check_error(text, &es);

        if (r < 0) {
                check_error(text, &e);
                CHECK(e.column == e2.column && strcmp(e.message, e2.message) == 0);
                return;
        }

        check_value(&v, true);
        CHECK(value_equal(&v, &v2));
        toml_value_done(&v2);

        /* Whatever decodes is one value on one line for the scanner too. */
        CHECK(rs == 0);
        {
                const char *start = text + strspn(text, " \t"), *after;

                CHECK(scan_len >= 1 && scan_len <= strlen(start));
                after = start + scan_len;
                after += strspn(after, " \t");
                CHECK(*after == 0 || *after == '#');
        }

        if (v.type == TOML_INTEGER)
                check_integer(text, v.i);
        if (v.type == TOML_BOOLEAN) {
                const char *s = text + strspn(text, " \t");
                CHECK(strncmp(s, v.b ? "true" : "false", v.b ? 4 : 5) == 0);
        }

        /* Round trip through our own encoding. */
        encode(&o, &v);
        r = toml_value_decode(o.s, &v3, &e);
        if (r == -ENOMEM) {
                free(o.s);
                toml_value_done(&v);
                return;
        }
        if (r < 0)
                fprintf(stderr, "re-encoded text rejected at column %zu: %s\n", e.column, e.message);
        CHECK(r == 0);
        CHECK(value_equal(&v, &v3));
        toml_value_done(&v3);
        toml_value_done(&v);
        toml_value_done(&v);   /* idempotent */
        free(o.s);
}

static void check_key(const char *text) {
        struct toml_error e = { 0 };
        const char *end = NULL;
        char **parts = NULL;
        int r;

        r = toml_key_parse(text, &end, &parts, &e);
        CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
        if (r == -EINVAL)
                check_error(text, &e);
        if (r < 0)
                return;
        CHECK(parts && parts[0]);
        CHECK(end > text && end <= text + strlen(text));
        for (char **p = parts; *p; p++)
                CHECK(toml_utf8_valid(*p, strlen(*p)) || !toml_utf8_valid(text, strlen(text)));
        strv_free(parts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *text = malloc(size + 1);

        CHECK(text);
        memcpy(text, data, size);
        text[size] = 0;
        check_decode(text);
        check_key(text);
        free(text);
        return 0;
}
