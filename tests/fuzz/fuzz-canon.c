/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for canon_path() and canon_path_printable().
 *
 * Input: the raw path, any bytes.  It is copied into a buffer of exactly its
 * size and canonicalised into one of exactly size + 1 bytes, so ASan sees any
 * access past either.
 *
 * Beyond "no crash, no out-of-bounds access", it checks the promises of
 * canon_path.h against a reference written the slow and obvious way (split
 * on '/', decode each segment whole, then judge):
 *  - accepted exactly when the reference accepts, and then the same form;
 *  - the form starts with '/', has no "//", no dot segment, no trailing '/'
 *    (but "/"), no uppercase letter, no control or non-ASCII byte, and an
 *    escape only for a byte that may not stand raw; it is no longer than the
 *    input, and canonicalising it again gives it back;
 *  - the input with its letters in upper or in lower case, or with every
 *    byte percent-encoded, has the same form (or is refused the same way);
 *  - printable output is printable and fits its buffer.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cleanup.h"
#include "common/http/canon_path.h"

#define CHECK(cond)                                                                     \
        do {                                                                            \
                if (!(cond)) {                                                          \
                        fprintf(stderr, "fuzz-canon: property violated: %s (line %d)\n", \
                                #cond, __LINE__);                                       \
                        abort();                                                        \
                }                                                                       \
        } while (0)

static uint8_t lower(uint8_t c) {
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* RFC 3986 pchar minus ';' and '%': written out as a list on purpose. */
static bool raw_ok(uint8_t c) {
        static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                  "-._~!$&'()*+,=:@";
        return c != 0 && memchr(set, c, sizeof set - 1) != NULL;
}

/* The byte may appear, raw if raw_ok() or else escaped. */
static bool decoded_ok(uint8_t c) {
        return c >= 0x20 && c < 0x7f && c != '/' && c != '\\' && c != '%';
}

/*
 * The reference: the canonical form of raw into out (size n + 1), or false.
 * Splits first, then decodes each segment, then judges the decoded bytes.
 */
static bool reference(const uint8_t *raw, size_t n, char *out) {
        size_t o = 0, start;

        if (n == 0 || raw[0] != '/')
                return false;
        out[o++] = '/';
        start = 1;
        while (start <= n) {
                size_t end = start;
                uint8_t seg[8192 + 16];
                size_t sl = 0;

                while (end < n && raw[end] != '/')
                        end++;
                if (end - start > sizeof seg)
                        return false;   /* not reached: the harness caps the input */
                for (size_t i = start; i < end; i++) {
                        if (raw[i] == '%') {
                                if (i + 2 >= end || unhexchar((char) raw[i + 1]) < 0 || unhexchar((char) raw[i + 2]) < 0)
                                        return false;
                                uint8_t b = (uint8_t) (unhexchar((char) raw[i + 1]) * 16 + unhexchar((char) raw[i + 2]));
                                if (!decoded_ok(b))
                                        return false;
                                seg[sl++] = b;
                                i += 2;
                        } else {
                                if (!raw_ok(raw[i]))
                                        return false;
                                seg[sl++] = raw[i];
                        }
                }
                if (sl == 0) {
                        if (end == n) {
                                /* trailing slash or the root */
                                if (o > 1)
                                        o--;
                                break;
                        }
                        return false;
                }
                if ((sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.'))
                        return false;
                for (size_t i = 0; i < sl; i++) {
                        if (raw_ok(seg[i]))
                                out[o++] = (char) lower(seg[i]);
                        else
                                o += (size_t) sprintf(out + o, "%%%02x", seg[i]);
                }
                if (end == n)
                        break;
                out[o++] = '/';
                start = end + 1;
        }
        out[o] = 0;
        return true;
}

/* canon_path() of n bytes at raw, in exact-size buffers; the form malloc'ed or NULL. */
static char *canon(const uint8_t *raw, size_t n) {
        char *in = malloc(n ? n : 1), *out = malloc(n + 1);
        const char *why = NULL;
        int k;

        CHECK(in && out);
        memcpy(in, raw, n);
        k = canon_path(in, n, out, n + 1, &why);
        free(in);
        if (k < 0) {
                CHECK(k == -EINVAL);
                CHECK(why && *why);
                free(out);
                return NULL;
        }
        CHECK(!why);
        CHECK((size_t) k == strlen(out) && (size_t) k <= n);
        return out;
}

static void check_form(const char *s) {
        size_t n = strlen(s);

        CHECK(s[0] == '/');
        CHECK(n == 1 || s[n - 1] != '/');
        CHECK(!strstr(s, "//"));
        for (size_t i = 0; i < n; i++) {
                uint8_t c = (uint8_t) s[i];

                CHECK(c != '/' || i + 1 >= n || s[i + 1] != '.' ||
                      !(s[i + 2] == '/' || s[i + 2] == 0 ||
                        (s[i + 2] == '.' && (s[i + 3] == '/' || s[i + 3] == 0))));
                CHECK(c >= 0x20 && c < 0x7f);
                CHECK(!(c >= 'A' && c <= 'Z'));
                if (c == '%') {
                        CHECK(i + 2 < n);
                        int hi = unhexchar(s[i + 1]), lo = unhexchar(s[i + 2]);
                        CHECK(hi >= 0 && lo >= 0 && lower((uint8_t) s[i + 1]) == (uint8_t) s[i + 1] &&
                              lower((uint8_t) s[i + 2]) == (uint8_t) s[i + 2]);
                        uint8_t b = (uint8_t) (hi * 16 + lo);
                        CHECK(decoded_ok(b) && !raw_ok(b));
                        i += 2;
                } else
                        CHECK(c == '/' || raw_ok(c));
        }
}

static void check_printable(const uint8_t *data, size_t size) {
        size_t cap = size > 4096 ? 4096 : size;
        char *s = malloc(cap + 1), buf[68];
        size_t bs = 4 + (size ? data[0] % 64 : 0);

        CHECK(s);
        memcpy(s, data, cap);
        s[cap] = 0;
        canon_path_printable(s, buf, bs);
        CHECK(strlen(buf) < bs);
        for (const char *p = buf; *p; p++)
                CHECK(*p > 0x20 && *p < 0x7f);
        free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *got, *ref, *again, *variant;
        uint8_t *v;
        bool ok;

        if (size > 8192)
                return 0;   /* denvrd answers 414 before ever canonicalising that */
        check_printable(data, size);

        got = canon(data, size);
        ref = malloc(size + 1);
        CHECK(ref);
        ok = reference(data, size, ref);
        CHECK(ok == (got != NULL));
        if (!got) {
                free(ref);
                return 0;
        }
        CHECK(strcmp(got, ref) == 0);
        free(ref);
        check_form(got);

        again = canon((const uint8_t *) got, strlen(got));
        CHECK(again && strcmp(again, got) == 0);
        free(again);

        /* Case: letters up, hex digits of escapes too; then all down. */
        v = malloc(size * 3 + 1);
        CHECK(v);
        for (int up = 0; up < 2; up++) {
                for (size_t i = 0; i < size; i++)
                        v[i] = up ? (data[i] >= 'a' && data[i] <= 'z' ? data[i] - 32 : data[i]) : lower(data[i]);
                variant = canon(v, size);
                CHECK(variant && strcmp(variant, got) == 0);
                free(variant);
        }

        /* Every raw byte but '/' percent-encoded (escapes stay as they are). */
        size_t n = 0;
        for (size_t i = 0; i < size; i++) {
                if (data[i] == '%') {
                        memcpy(v + n, data + i, 3);   /* accepted: two hex digits follow */
                        n += 3;
                        i += 2;
                } else if (data[i] == '/')
                        v[n++] = '/';
                else
                        n += (size_t) sprintf((char *) v + n, "%%%02X", data[i]);
        }
        variant = canon(v, n);
        CHECK(variant && strcmp(variant, got) == 0);
        free(variant);
        free(v);
        free(got);
        return 0;
}
