/* SPDX-License-Identifier: MIT */
/* The path canonicaliser: accepted spellings and their one form, every refusal, the promises. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/api/optable.h"
#include "common/base/cleanup.h"
#include "common/http/canon_path.h"

#include "check.h"

struct accepted {
        const char *raw, *canon;
};

static const struct accepted accepted[] = {
        { "/", "/" },
        { "/api/v1/servers/virtual/GetServers", "/api/v1/servers/virtual/getservers" },
        { "/API/v1/Servers/Virtual/getservers", "/api/v1/servers/virtual/getservers" },
        { "/api/v1/servers/virtual/GetServers/", "/api/v1/servers/virtual/getservers" },
        { "/api/v1/servers/virtual/%47et%53ervers", "/api/v1/servers/virtual/getservers" },
        { "/api/v1/servers/virtual/%67et%73ervers", "/api/v1/servers/virtual/getservers" },
        { "/api/Token%41uth/LogOut", "/api/tokenauth/logout" },
        { "/api/Token%61uth/LogOut", "/api/tokenauth/logout" },
        { "/api/TokenAuth/LogOut/", "/api/tokenauth/logout" },
        { "/%61%70%69/TOKENAUTH/logout", "/api/tokenauth/logout" },
        { "/_denvrd/status", "/_denvrd/status" },
        { "/_DENVRD/Status/", "/_denvrd/status" },
        { "/a", "/a" },
        { "/a/", "/a" },
        /* Dots that are not whole segments. */
        { "/a.b/c", "/a.b/c" },
        { "/.a/b.", "/.a/b." },
        { "/.../x", "/.../x" },
        { "/a/%2e%2e%2e", "/a/..." },
        { "/a/.%2Ex", "/a/..x" },
        { "/a/%2Ea", "/a/.a" },
        /* Unreserved and sub-delimiters decode; hex case does not matter. */
        { "/%7e%7E%2d%5f%2E1", "/~~-_.1" },
        { "/a%21%24%26%27%28%29%2A%2B%2C%3D%3A%40", "/a!$&'()*+,=:@" },
        { "/a!$&'()*+,=:@~", "/a!$&'()*+,=:@~" },
        /* Reserved bytes keep their escape, lowercased. */
        { "/a%3Fb", "/a%3fb" },
        { "/a%3fb", "/a%3fb" },
        { "/a%23b", "/a%23b" },
        { "/a%3Bb", "/a%3bb" },
        { "/a%20b", "/a%20b" },
        { "/a%22%3C%3E%5B%5D%5E%60%7B%7C%7D", "/a%22%3c%3e%5b%5d%5e%60%7b%7c%7d" },
        { "/0123456789/ABCDEFGHIJKLMNOPQRSTUVWXYZ", "/0123456789/abcdefghijklmnopqrstuvwxyz" },
};

struct refused {
        const char *raw;
        size_t len;             /* 0: strlen(raw) */
        const char *reason;     /* a word the reason must contain */
};

static const struct refused refused[] = {
        /* The spellings of issue: dot segments in every form. */
        { "/api/v1/../TokenAuth/LogOut", 0, "dot segment" },
        { "/api/v1/%2E%2E/TokenAuth/LogOut", 0, "dot segment" },
        { "/api/./TokenAuth/LogOut", 0, "dot segment" },
        { "/api/../etc/passwd", 0, "dot segment" },
        { "/api/v1/%2e%2E/TokenAuth/LogOut", 0, "dot segment" },
        { "/api/v1/%2e%2e/TokenAuth/LogOut", 0, "dot segment" },
        { "/api/v1/.%2E/TokenAuth/LogOut", 0, "dot segment" },
        { "/api/v1/.%2e/TokenAuth/LogOut", 0, "dot segment" },
        { "/api/v1/%2e./TokenAuth/LogOut", 0, "dot segment" },
        { "/api/%2e/TokenAuth/LogOut", 0, "dot segment" },
        { "/api/%2E/TokenAuth/LogOut", 0, "dot segment" },
        { "/..", 0, "dot segment" },
        { "/.", 0, "dot segment" },
        { "/./", 0, "dot segment" },
        { "/../", 0, "dot segment" },
        { "/a/..", 0, "dot segment" },
        { "/a/../", 0, "dot segment" },
        { "/a/%2e", 0, "dot segment" },
        { "/a/%2e/", 0, "dot segment" },
        /* Empty segments. */
        { "//", 0, "empty segment" },
        { "//api/v1/servers/virtual/GetServers", 0, "empty segment" },
        { "/api//TokenAuth/LogOut", 0, "empty segment" },
        { "/api/TokenAuth/LogOut//", 0, "empty segment" },
        /* Separators in disguise. */
        { "/api/v1%2F..%2FTokenAuth/LogOut", 0, "'/'" },
        { "/api/v1%2f..%2fTokenAuth/LogOut", 0, "'/'" },
        { "/api/v1%5C..%5CTokenAuth/LogOut", 0, "'\\'" },
        { "/api/v1%5c..%5cTokenAuth/LogOut", 0, "'\\'" },
        { "/api/v1\\..\\TokenAuth\\LogOut", 0, "'\\'" },
        { "/api\\TokenAuth", 0, "'\\'" },
        /* Path parameters. */
        { "/api/TokenAuth/LogOut;jsessionid=1", 0, "';'" },
        { "/api/v1/..;/TokenAuth/LogOut", 0, "';'" },
        { "/api;/TokenAuth/LogOut", 0, "';'" },
        { "/;", 0, "';'" },
        /* Control bytes and NUL, raw and encoded. */
        { "/api/%00/x", 0, "NUL" },
        { "/api/TokenAuth/LogOut%00", 0, "NUL" },
        { "/api/a\0b", 8, "NUL" },
        { "/api/\tx", 0, "control" },
        { "/api/%09x", 0, "control" },
        { "/api/%0d%0aX-Injected:1", 0, "control" },
        { "/api/\r\nx", 0, "control" },
        { "/api/%7F", 0, "control" },
        { "/api/\x7f", 0, "control" },
        { "/api/\x1b[31m", 0, "control" },
        /* Outside ASCII, raw and encoded (UTF-8, overlong dots, dotless i). */
        { "/api/caf\xc3\xa9", 0, "ASCII" },
        { "/api/caf%C3%A9", 0, "ASCII" },
        { "/api/%C0%AE%C0%AE/TokenAuth", 0, "ASCII" },
        { "/api/TokenAuth/Authent%C4%B1cate", 0, "ASCII" },
        { "/api/\xff", 0, "ASCII" },
        { "/api/%80", 0, "ASCII" },
        /* Bad percent-encoding. */
        { "/api/%zz", 0, "percent-encoding" },
        { "/api/%2", 0, "percent-encoding" },
        { "/api/%", 0, "percent-encoding" },
        { "/api/%%41", 0, "percent-encoding" },
        { "/api/%u002e%u002e/x", 0, "percent-encoding" },
        { "/api/%2g", 0, "percent-encoding" },
        { "/api/%g2", 0, "percent-encoding" },
        { "/api/%2\0", 8, "percent-encoding" },
        /* A second layer of encoding. */
        { "/api/%252e%252e/TokenAuth/LogOut", 0, "%25" },
        { "/api/%25", 0, "%25" },
        /* Characters a path may not hold raw. */
        { "/api/a b", 0, "RFC 3986" },
        { "/api/a?b", 0, "RFC 3986" },
        { "/api/a#b", 0, "RFC 3986" },
        { "/api/a\"b", 0, "RFC 3986" },
        { "/api/<x>", 0, "RFC 3986" },
        { "/api/{x}", 0, "RFC 3986" },
        { "/api/a|b", 0, "RFC 3986" },
        { "/api/a^b", 0, "RFC 3986" },
        { "/api/a`b", 0, "RFC 3986" },
        { "/api/[::1]", 0, "RFC 3986" },
        /* Not a path. */
        { "", 0, "starting with '/'" },
        { "*", 0, "starting with '/'" },
        { "api/v1/servers/virtual/GetServers", 0, "starting with '/'" },
        { "http://127.0.0.1/api/v1/servers/virtual/GetServers", 0, "starting with '/'" },
        { "%2Fapi", 0, "starting with '/'" },
};

static void test_accepted(void) {
        for (size_t i = 0; i < ELEMENTSOF(accepted); i++) {
                const struct accepted *t = &accepted[i];
                char buf[256], again[256];
                const char *why = "unset";
                int k;

                k = canon_path(t->raw, strlen(t->raw), buf, sizeof buf, &why);
                CHECK(k >= 0, "%s refused: %s", t->raw, why ? why : "(no reason)");
                if (k < 0)
                        continue;
                CHECK(why == NULL, "%s: reason set although accepted", t->raw);
                CHECK(strcmp(buf, t->canon) == 0, "%s -> %s, expected %s", t->raw, buf, t->canon);
                CHECK((size_t) k == strlen(buf), "%s: returned length %d, string %zu", t->raw, k, strlen(buf));
                CHECK(k == canon_path(buf, (size_t) k, again, sizeof again, NULL) && strcmp(again, buf) == 0,
                      "%s: canonical %s is not a fixed point (%s)", t->raw, buf, again);
        }
}

static void test_refused(void) {
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                const struct refused *t = &refused[i];
                size_t len = t->len ? t->len : strlen(t->raw);
                char buf[256], shown[128];
                const char *why = NULL;
                int k;

                canon_path_printable(t->raw, shown, sizeof shown);
                k = canon_path(t->raw, len, buf, sizeof buf, &why);
                CHECK(k == -EINVAL, "%s: accepted as %s (%d)", shown, k >= 0 ? buf : "?", k);
                CHECK(why && strstr(why, t->reason), "%s: reason \"%s\" lacks \"%s\"", shown,
                      why ? why : "(none)", t->reason);
        }
}

/* Every case variant of an accepted path has its one form; an escape of any letter too. */
static void test_spellings_of_one_path(void) {
        static const char base[] = "/api/TokenAuth/LogOut";
        const size_t n = strlen(base);
        char want[64], buf[128], spelled[128];

        CHECK(canon_path(base, n, want, sizeof want, NULL) > 0, "base");
        /* Every one of the 2^15 case mixes of the letters of "TokenAuth/LogOut"... */
        for (unsigned mask = 0; mask < (1u << 15); mask++) {
                unsigned bit = 0;

                memcpy(spelled, base, n + 1);
                for (size_t i = 5; i < n; i++)
                        if (spelled[i] != '/' && (mask >> bit++ & 1))
                                spelled[i] ^= 0x20;
                CHECK(canon_path(spelled, n, buf, sizeof buf, NULL) > 0 && strcmp(buf, want) == 0,
                      "%s -> %s", spelled, buf);
        }
        /* ... and with each character percent-encoded in upper and lower case hex. */
        for (size_t i = 1; i < n; i++) {
                if (base[i] == '/')
                        continue;
                for (int lowerhex = 0; lowerhex < 2; lowerhex++) {
                        snprintf(spelled, sizeof spelled, lowerhex ? "%.*s%%%02x%s/" : "%.*s%%%02X%s",
                                 (int) i, base, (unsigned char) base[i], base + i + 1);
                        CHECK(canon_path(spelled, strlen(spelled), buf, sizeof buf, NULL) > 0 &&
                              strcmp(buf, want) == 0, "%s -> %s", spelled, buf);
                }
        }
}

/* The operation table's paths are canonical but for case, and found by their canonical form. */
static void test_operation_paths(void) {
        for (size_t i = 0; i < optable_n_operations; i++) {
                const struct operation *op = &optable_operations[i];
                char buf[256];
                int k = canon_path(op->path, strlen(op->path), buf, sizeof buf, NULL);

                CHECK(k == (int) strlen(op->path) && strcasecmp(buf, op->path) == 0, "%s -> %s", op->path, buf);
                CHECK(k > 0 && optable_lookup(op->method, buf) == op, "lookup of canonical %s", buf);
                CHECK(k > 0 && optable_lookup_path(buf) && strcmp(optable_lookup_path(buf)->path, op->path) == 0,
                      "the table's spelling of %s", buf);
        }
}

static void test_lookup_path(void) {
        CHECK(!optable_lookup_path("/api/v1/servers/virtual/getserve"), "a prefix of GetServer is none");
        CHECK(optable_lookup_path("/api/v1/servers/virtual/getservers/") != NULL, "one trailing slash");
        CHECK(!optable_lookup_path("/api/v1/servers/virtual/getservers//"), "two trailing slashes");
        CHECK(!optable_lookup_path("/api/v1/servers/virtual"), "a service is no operation");
        CHECK(!optable_lookup_path("/"), "the root");
}

static void test_buffer_and_dup(void) {
        char buf[8], *s = NULL;
        const char *why = NULL;

        CHECK(canon_path("/abcdefg", 8, buf, 8, NULL) == -ENOBUFS, "too small a buffer");
        CHECK(canon_path("/abcdef", 7, buf, 8, NULL) == 7 && strcmp(buf, "/abcdef") == 0, "exact fit");
        CHECK(canon_path("/a?b", 2, buf, sizeof buf, NULL) == 2 && strcmp(buf, "/a") == 0, "length bounds input");

        CHECK(canon_path_dup("/A/B/", &s, &why) == 0 && s && strcmp(s, "/a/b") == 0, "dup: %s", s ? s : "NULL");
        free(s);
        s = NULL;
        CHECK(canon_path_dup("/a/../b", &s, &why) == -EINVAL && !s && why, "dup refuses");

        /* A long path, as long as denvrd lets through (8192 bytes). */
        size_t n = 8192;
        char *big = malloc(n + 1), *want = malloc(n + 1), *out = malloc(n + 1);
        size_t bi = 0, wi = 0;
        if (big && want && out) {
                while (bi + 11 <= n) {
                        memcpy(big + bi, "/Seg%41ment", 11);
                        memcpy(want + wi, "/segament", 9);
                        bi += 11;
                        wi += 9;
                }
                big[bi] = want[wi] = 0;
                CHECK(canon_path(big, bi, out, n + 1, &why) == (int) wi && strcmp(out, want) == 0,
                      "long path: %s", why ? why : "wrong form");
        }
        free(want);
        free(big);
        free(out);
}

static void test_printable(void) {
        char buf[16];

        canon_path_printable("/a b\tc\xff%", buf, sizeof buf);
        CHECK(strcmp(buf, "/a%20b%09c%FF%") == 0, "escaped: %s", buf);
        canon_path_printable("/0123456789abcdefghij", buf, sizeof buf);
        CHECK(strcmp(buf, "/0123456789a...") == 0, "truncated: %s", buf);
        canon_path_printable("/0123456789abcd", buf, sizeof buf);
        CHECK(strcmp(buf, "/0123456789abcd") == 0, "fits exactly: %s", buf);
        canon_path_printable("/0123456789ab\x01", buf, sizeof buf);
        CHECK(strcmp(buf, "/0123456789a...") == 0, "an escape that does not fit: %s", buf);
}

int main(void) {
        test_accepted();
        test_refused();
        test_spellings_of_one_path();
        test_operation_paths();
        test_lookup_path();
        test_buffer_and_dup();
        test_printable();

        printf("canon-path: %u checks, %u failures\n", checks, failures);
        return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
