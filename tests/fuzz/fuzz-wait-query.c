/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the query of /_denvrd/wait/ (wait_query.c).
 *
 * Input: a raw query string, copied into a buffer of exactly its size (no
 * NUL), so ASan sees any read past it.  Checks:
 *  - parsing succeeds or fails with -EINVAL and a message, never anything else;
 *  - on success, rest is the input's parameters that are not until/timeout,
 *    in order and byte for byte (the input split at '&', filtered, joined);
 *  - at least one condition (or gone), at most WAIT_MAX_CONDITIONS, a timeout
 *    from 1 to WAIT_TIMEOUT_MAX;
 *  - parsing rest again with "&until=gone" appended gives the same rest;
 *  - every condition's field can be looked up in a JSON result without harm.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/api/wait_query.h"

#define CHECK(cond)                                                                           \
        do {                                                                                  \
                if (!(cond)) {                                                                \
                        fprintf(stderr, "fuzz-wait-query: property violated: %s (line %d)\n", \
                                #cond, __LINE__);                                             \
                        abort();                                                              \
                }                                                                             \
        } while (0)

static int hexv(char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
               c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Slow reference: is the raw parameter p (n bytes) named until or timeout? */
static int is_ours(const char *p, size_t n) {
        char name[16];
        size_t k = 0;

        for (size_t i = 0; i < n && p[i] != '='; i++) {
                char c = p[i];

                if (c == '%' && i + 2 < n && hexv(p[i + 1]) >= 0 && hexv(p[i + 2]) >= 0) {
                        c = (char) (hexv(p[i + 1]) * 16 + hexv(p[i + 2]));
                        i += 2;
                } else if (c == '+')
                        c = ' ';
                if (k + 1 >= sizeof name || c == 0)
                        return 0;
                name[k++] = c;
        }
        name[k] = 0;
        return strcasecmp(name, "until") == 0 || strcasecmp(name, "timeout") == 0;
}

static char *reference_rest(const char *q, size_t n, size_t *ret_len) {
        char *out = malloc(n + 1);
        size_t k = 0, kept = 0;
        const char *p = q, *end = q + n;

        while (p < end) {
                const char *amp = memchr(p, '&', (size_t) (end - p));
                size_t m = amp ? (size_t) (amp - p) : (size_t) (end - p);

                /* Empty pieces are skipped, as ASP.NET skips them. */
                if (m > 0 && !is_ours(p, m)) {
                        if (kept++)
                                out[k++] = '&';
                        memcpy(out + k, p, m);
                        k += m;
                }
                p = amp ? amp + 1 : end;
        }
        *ret_len = k;
        if (!kept) {
                free(out);
                return NULL;
        }
        return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static json_t *result;
        char *buf = malloc(size ? size : 1), *ref, *again;
        struct wait_query q, q2;
        size_t ref_len;
        int k;

        if (!result)
                result = json_loads("{\"status\":\"ONLINE\",\"a\":{\"b\":[1,{\"c\":null}]},\"n\":1.5}", 0, NULL);
        memcpy(buf, data, size);
        k = wait_query_parse(buf, size, &q);
        CHECK(k == 0 || k == -EINVAL);
        if (k == -EINVAL) {
                CHECK(q.error[0] != 0);
                wait_query_done(&q);
                free(buf);
                return 0;
        }
        CHECK(q.n_conditions + q.gone >= 1 && q.n_conditions <= WAIT_MAX_CONDITIONS);
        CHECK(q.timeout_sec >= 1 && q.timeout_sec <= WAIT_TIMEOUT_MAX);
        ref = reference_rest(buf, size, &ref_len);
        CHECK(!ref == !q.rest);
        CHECK(!ref || (ref_len == q.rest_len && memcmp(ref, q.rest, ref_len) == 0));
        for (size_t i = 0; i < q.n_conditions; i++) {
                char *t = NULL;

                CHECK(q.conditions[i].field[0] != 0);
                if (wait_member_text(result, q.conditions[i].field, &t) == 0)
                        free(t);
        }
        (void) wait_query_match(&q, result);

        if (asprintf(&again, "%.*s%suntil=gone", (int) q.rest_len, q.rest ? q.rest : "",
                     q.rest ? "&" : "") >= 0) {
                k = wait_query_parse(again, strlen(again), &q2);
                /* rest may hold a NUL byte that the %.*s cut short: compare only clean ones. */
                if (!q.rest || strlen(q.rest) == q.rest_len) {
                        CHECK(k == 0);
                        CHECK(!q2.rest == !q.rest);
                        CHECK(!q.rest || strcmp(q2.rest, q.rest) == 0);
                }
                wait_query_done(&q2);
                free(again);
        }
        free(ref);
        wait_query_done(&q);
        free(buf);
        return 0;
}
