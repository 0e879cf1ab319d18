/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for api_read() (common/api/api_read.h): the reading that rights,
 * defaults, waits and the cache judge must be what upstream binds.
 *
 * Input: byte 0 picks the operation, byte 1 the mode and Content-Type; the
 * rest is QUERY '\0' BODY, or just QUERY when there is no NUL.
 *
 * The reference is a separate, plain model of ASP.NET Core's binding: the
 * query split on '&', '+' a space, a '%' without two hex digits kept as it is,
 * names compared with .NET's ordinal case folding (which maps U+0131 onto 'I'
 * and U+017F onto 'S'), the first value taken, and "input.Name" bound in place
 * of "Name" as soon as any key has the "input." prefix; a JSON body's members
 * compared the same way.  Whenever api_read() accepts, every parameter of the
 * operation must have the value the reference binds (or be absent in both);
 * no "input." key, form body or second spelling may have been accepted.
 */

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/api/api_read.h"
#include "common/base/cleanup.h"

#define CHECK(cond)                                                                        \
        do {                                                                               \
                if (!(cond)) {                                                             \
                        fprintf(stderr, "fuzz-api-read: property violated: %s (line %d)\n", \
                                #cond, __LINE__);                                          \
                        abort();                                                           \
                }                                                                          \
        } while (0)

static const char *const content_types[] = {
        NULL,
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
        "application/problem+json; charset=utf-8",
        "Application/JSON",
        "",
};

/* ASP.NET's lenient decoding: a bad escape stays literal. */
static size_t lenient_decode(const char *s, size_t n, char *out) {
        size_t w = 0;

        for (size_t i = 0; i < n; i++) {
                if (s[i] == '+')
                        out[w++] = ' ';
                else if (s[i] == '%' && i + 2 < n && unhexchar(s[i + 1]) >= 0 && unhexchar(s[i + 2]) >= 0) {
                        out[w++] = (char) (unhexchar(s[i + 1]) * 16 + unhexchar(s[i + 2]));
                        i += 2;
                } else
                        out[w++] = s[i];
        }
        out[w] = 0;
        return w;
}

/* One character folded as .NET's OrdinalIgnoreCase would; advances *i. */
static int fold(const char *s, size_t n, size_t *i) {
        unsigned char c = (unsigned char) s[*i];

        if (c == 0xc4 && *i + 1 < n && (unsigned char) s[*i + 1] == 0xb1) {
                *i += 2;
                return 'i';   /* U+0131 dotless i */
        }
        if (c == 0xc5 && *i + 1 < n && (unsigned char) s[*i + 1] == 0xbf) {
                *i += 2;
                return 's';   /* U+017F long s */
        }
        (*i)++;
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool net_equal(const char *a, size_t an, const char *b) {
        size_t i = 0, j = 0, bn = strlen(b);

        while (i < an && j < bn)
                if (fold(a, an, &i) != fold(b, bn, &j))
                        return false;
        return i == an && j == bn;
}

/* The value ASP.NET binds to the query parameter `name`, or NULL. */
static char *reference_query(const char *q, size_t len, const char *name, bool prefixed, size_t *ret_len) {
        char key[256 + 8];
        size_t i = 0;

        snprintf(key, sizeof key, "%s%s", prefixed ? "input." : "", name);
        while (i < len) {
                size_t end = i, eq;
                char *dn, *dv;
                size_t nn;

                while (end < len && q[end] != '&')
                        end++;
                for (eq = i; eq < end && q[eq] != '='; eq++)
                        ;
                dn = malloc(eq - i + 1);
                CHECK(dn);
                nn = lenient_decode(q + i, eq - i, dn);
                if (eq > i && net_equal(dn, nn, key)) {
                        size_t vn = eq < end ? end - eq - 1 : 0;

                        dv = malloc(vn + 1);
                        CHECK(dv);
                        *ret_len = lenient_decode(q + eq + 1, vn, dv);
                        free(dn);
                        return dv;
                }
                free(dn);
                i = end + 1;
        }
        return NULL;
}

/* Whether any query key starts with "input." as .NET compares. */
static bool any_prefixed(const char *q, size_t len) {
        size_t i = 0;

        while (i < len) {
                size_t end = i, eq;
                char dn[4096];
                size_t nn;

                while (end < len && q[end] != '&')
                        end++;
                for (eq = i; eq < end && q[eq] != '='; eq++)
                        ;
                if (eq - i < sizeof dn) {
                        nn = lenient_decode(q + i, eq - i, dn);
                        if (nn >= 6 && net_equal(dn, 6, "input."))
                                return true;
                }
                i = end + 1;
        }
        return false;
}

static void check_query(const struct api_read *a, const char *q, size_t q_len) {
        const struct operation *op = a->op;
        bool prefixed = any_prefixed(q, q_len);

        CHECK(!prefixed);   /* accepted: no "input." key in any spelling */
        for (size_t i = 0; i < op->n_params; i++) {
                const struct op_param *p = &op->params[i];
                const struct api_param *got;
                size_t len = 0;
                char *want;

                if (p->location != OP_PARAM_QUERY)
                        continue;
                want = reference_query(q, q_len, p->name, false, &len);
                got = api_read_get(a, OP_PARAM_QUERY, p->name);
                CHECK(!want == !got);
                if (want)
                        CHECK(got->value && got->value_len == len && memcmp(got->value, want, len) == 0);
                free(want);
        }
}

static void check_body(const struct api_read *a, const char *b, size_t b_len) {
        const struct operation *op = a->op;
        json_t *j;

        if (b_len == 0 || !op->has_body)
                return;
        j = json_loadb(b, b_len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, NULL);
        if (!j)
                return;   /* accepted only through the BOM or huge numbers: not modelled here */
        CHECK(json_is_object(j));
        for (size_t i = 0; i < op->n_params; i++) {
                const struct op_param *p = &op->params[i];
                const struct api_param *got = api_read_get(a, OP_PARAM_BODY, p->name);
                json_t *hit = NULL, *v;
                const char *k;
                size_t k_len, n = 0;

                if (p->location != OP_PARAM_BODY)
                        continue;
                json_object_keylen_foreach(j, k, k_len, v)
                        if (net_equal(k, k_len, p->name)) {
                                hit = v;
                                n++;
                        }
                CHECK(n <= 1);   /* two spellings of one member were accepted */
                CHECK(!hit == !got);
                if (hit && json_is_string(hit))
                        CHECK(got->value && got->value_len == json_string_length(hit) &&
                              memcmp(got->value, json_string_value(hit), got->value_len) == 0);
                if (hit && !json_is_string(hit))
                        CHECK(!got->value);
        }
        json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct api_read a;
        const struct operation *op;
        enum api_read_mode mode;
        const uint8_t *nul;
        const char *ct;
        char *q, *b = NULL;
        size_t q_len, b_len = 0;
        int k;

        if (size < 2)
                return 0;
        op = &optable_operations[data[0] % optable_n_operations];
        mode = data[1] & 1 ? API_READ_STRICT : API_READ_OPEN;
        ct = content_types[(data[1] >> 1) & 7];
        data += 2, size -= 2;
        nul = memchr(data, 0, size);
        q_len = nul ? (size_t) (nul - data) : size;
        q = malloc(q_len ? q_len : 1);
        CHECK(q);
        memcpy(q, data, q_len);
        if (nul) {
                b_len = size - q_len - 1;
                b = malloc(b_len ? b_len : 1);
                CHECK(b);
                memcpy(b, nul + 1, b_len);
        }

        k = api_read(op, mode, q_len ? q : NULL, q_len, ct, b_len ? b : NULL, b_len, &a);
        CHECK(k == 0 || k == -EBADMSG || k == -ENOMEM);
        if (k == -EBADMSG)
                CHECK(a.error[0] && a.error_kind != API_READ_OK);
        if (k == 0) {
                CHECK(a.error_kind == API_READ_OK);
                check_query(&a, q, q_len);
                check_body(&a, b, b_len);
                for (size_t i = 0; i < a.n_params; i++)
                        CHECK(mode == API_READ_OPEN || a.params[i].def);
        }
        api_read_done(&a);
        free(q);
        free(b);
        return 0;
}
