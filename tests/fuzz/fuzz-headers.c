/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the header filter (http_headers.c).
 *
 * Input: NAME '\0' CONNECTION '\0' VALUE; missing parts are empty (with no
 * NUL the whole input is the name).  Name and Connection value are copied
 * into buffers of exactly their size plus a NUL, the value into one of
 * exactly its size (it may hold NULs), so ASan sees any read past them.
 *
 * Checks, against slow and obvious reference implementations:
 *  - hop-by-hop headers (Connection, Keep-Alive, TE, Trailer,
 *    Transfer-Encoding, Upgrade, Proxy-*) and Authorization and Cookie never
 *    go up; Set-Cookie and the hop-by-hop ones never come down;
 *  - a name listed in Connection (comma-separated tokens, blanks around them
 *    ignored, case-insensitive) is never forwarded either way, and
 *    http_connection_lists() agrees with the reference tokenizer;
 *  - the verdicts do not depend on the case of the name or of the
 *    Connection value;
 *  - http_request_id_is_sane() holds exactly for 1..128 of [A-Za-z0-9._:-];
 *  - http_header_value_is_safe() holds exactly when there is no CR, LF or NUL.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/http/http_headers.h"

#define CHECK(cond)                                                                       \
        do {                                                                              \
                if (!(cond)) {                                                            \
                        fprintf(stderr, "fuzz-headers: property violated: %s (line %d)\n", \
                                #cond, __LINE__);                                         \
                        abort();                                                          \
                }                                                                         \
        } while (0)

static int lower(int c) {
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int upper(int c) {
        return c >= 'a' && c <= 'z' ? c - 32 : c;
}

static bool eq_nocase(const char *a, size_t an, const char *b) {
        if (an != strlen(b))
                return false;
        for (size_t i = 0; i < an; i++)
                if (lower((unsigned char) a[i]) != lower((unsigned char) b[i]))
                        return false;
        return true;
}

static char *case_copy(const char *s, int (*f)(int)) {
        size_t n = strlen(s);
        char *c = malloc(n + 1);

        CHECK(c);
        for (size_t i = 0; i <= n; i++)
                c[i] = (char) f((unsigned char) s[i]);
        return c;
}

/* Reference: split at ',', trim blanks, compare each token. An empty name is never listed. */
static bool reference_lists(const char *v, const char *name) {
        if (!*name)
                return false;
        for (const char *p = v;;) {
                const char *e = strchr(p, ','), *end = e ? e : p + strlen(p);
                const char *s = p;

                while (s < end && (*s == ' ' || *s == '\t'))
                        s++;
                while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
                        end--;
                if (eq_nocase(s, (size_t) (end - s), name))
                        return true;
                if (!e)
                        return false;
                p = e + 1;
        }
}

static bool is_hop_by_hop(const char *name) {
        static const char *const list[] = {
                "Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
        };

        for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
                if (eq_nocase(name, strlen(name), list[i]))
                        return true;
        return strlen(name) >= 6 && eq_nocase(name, 6, "proxy-");
}

static bool reference_request_id(const char *v) {
        size_t n = strlen(v);

        if (n < 1 || n > 128)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = v[i];
                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == ':' || c == '-'))
                        return false;
        }
        return true;
}

static void check_name(const char *name, const char *conn, bool *ret_up, bool *ret_down) {
        bool up = http_header_forward_request(name, conn);
        bool down = http_header_forward_response(name, conn);
        bool listed = reference_lists(conn, name);

        CHECK(http_connection_lists(conn, name) == listed);
        CHECK(!http_connection_lists(NULL, name));
        /* Without a Connection header only the fixed lists decide. */
        CHECK(up == (http_header_forward_request(name, NULL) && !listed));
        CHECK(down == (http_header_forward_response(name, NULL) && !listed));

        if (is_hop_by_hop(name) || eq_nocase(name, strlen(name), "Authorization") ||
            eq_nocase(name, strlen(name), "Cookie"))
                CHECK(!up);
        if (is_hop_by_hop(name) && !(strlen(name) >= 6 && eq_nocase(name, 6, "proxy-")))
                CHECK(!down);
        if (eq_nocase(name, strlen(name), "Set-Cookie") || eq_nocase(name, strlen(name), "Proxy-Connection"))
                CHECK(!down);
        if (listed)
                CHECK(!up && !down);
        *ret_up = up;
        *ret_down = down;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *p = data, *end = data + size, *z;
        char *name, *conn, *value, *variants[2][2];
        size_t name_len, conn_len, value_len;
        bool up, down;

        z = memchr(p, 0, (size_t) (end - p));
        name_len = z ? (size_t) (z - p) : (size_t) (end - p);
        name = malloc(name_len + 1);
        CHECK(name);
        memcpy(name, p, name_len);
        name[name_len] = 0;
        p = z ? z + 1 : end;

        z = memchr(p, 0, (size_t) (end - p));
        conn_len = z ? (size_t) (z - p) : (size_t) (end - p);
        conn = malloc(conn_len + 1);
        CHECK(conn);
        memcpy(conn, p, conn_len);
        conn[conn_len] = 0;
        p = z ? z + 1 : end;

        value_len = (size_t) (end - p);
        value = malloc(value_len ? value_len : 1);
        CHECK(value);
        memcpy(value, p, value_len);

        check_name(name, conn, &up, &down);

        /* Case never matters, in the name or in the Connection value. */
        variants[0][0] = case_copy(name, lower);
        variants[0][1] = case_copy(name, upper);
        variants[1][0] = case_copy(conn, lower);
        variants[1][1] = case_copy(conn, upper);
        for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                        bool u, d;

                        check_name(variants[0][i], variants[1][j], &u, &d);
                        CHECK(u == up && d == down);
                }
        for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++)
                        free(variants[i][j]);

        CHECK(!http_request_id_is_sane(NULL));
        CHECK(http_request_id_is_sane(name) == reference_request_id(name));
        CHECK(http_request_id_is_sane(conn) == reference_request_id(conn));

        CHECK(http_header_value_is_safe(value, value_len) ==
              (!memchr(value, '\r', value_len) && !memchr(value, '\n', value_len) && !memchr(value, 0, value_len)));
        CHECK(http_header_value_is_safe(name, name_len) == !strpbrk(name, "\r\n"));

        free(name);
        free(conn);
        free(value);
        return 0;
}
