/* SPDX-License-Identifier: MIT */
#include "common/config/local_token.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "common/base/cleanup.h"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Unpadded base64url of n bytes into out (4 * n / 3 rounded up, plus NUL). */
static void base64url(const uint8_t *in, size_t n, char *out) {
        size_t i;

        for (i = 0; i + 3 <= n; i += 3) {
                uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];
                *out++ = b64url[v >> 18 & 63];
                *out++ = b64url[v >> 12 & 63];
                *out++ = b64url[v >> 6 & 63];
                *out++ = b64url[v & 63];
        }
        if (n - i == 1) {
                uint32_t v = (uint32_t) in[i] << 16;
                *out++ = b64url[v >> 18 & 63];
                *out++ = b64url[v >> 12 & 63];
        } else if (n - i == 2) {
                uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8;
                *out++ = b64url[v >> 18 & 63];
                *out++ = b64url[v >> 12 & 63];
                *out++ = b64url[v >> 6 & 63];
        }
        *out = 0;
}

int local_token_generate(char out[LOCAL_TOKEN_MAX]) {
        uint8_t raw[LOCAL_TOKEN_RANDOM_BYTES];
        size_t got = 0;

        while (got < sizeof raw) {
                ssize_t n = getrandom(raw + got, sizeof raw - got, 0);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                got += (size_t) n;
        }
        memcpy(out, LOCAL_TOKEN_PREFIX, sizeof(LOCAL_TOKEN_PREFIX) - 1);
        base64url(raw, sizeof raw, out + sizeof(LOCAL_TOKEN_PREFIX) - 1);
        explicit_bzero(raw, sizeof raw);
        return 0;
}

bool local_token_is_claimed(const char *s, size_t n) {
        size_t p = sizeof(LOCAL_TOKEN_PREFIX) - 1;

        return s && n >= p && memcmp(s, LOCAL_TOKEN_PREFIX, p) == 0;
}

void local_token_hash_text(const char *token, size_t n, char out[LOCAL_TOKEN_HASH_TEXT_MAX]) {
        static const char hex[] = "0123456789abcdef";
        uint8_t d[SHA256_DIGEST_SIZE];
        char *w = out;

        sha256(token, n, d);
        w = stpcpy(w, "sha256:");
        for (size_t i = 0; i < sizeof d; i++) {
                *w++ = hex[d[i] >> 4];
                *w++ = hex[d[i] & 15];
        }
        *w = 0;
}

int local_token_hash_parse(const char *s, uint8_t out[SHA256_DIGEST_SIZE]) {
        assert(s);
        if (strncmp(s, "sha256:", 7) != 0 || strlen(s + 7) != 2 * SHA256_DIGEST_SIZE)
                return -EINVAL;
        s += 7;
        for (size_t i = 0; i < SHA256_DIGEST_SIZE; i++) {
                int hi = unhexchar(s[2 * i]), lo = unhexchar(s[2 * i + 1]);

                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[i] = (uint8_t) (hi << 4 | lo);
        }
        return 0;
}

bool memeq_const_time(const void *a, const void *b, size_t n) {
        const volatile uint8_t *x = a, *y = b;
        uint8_t diff = 0;

        for (size_t i = 0; i < n; i++)
                diff |= x[i] ^ y[i];
        return diff == 0;
}

bool local_token_matches(const uint8_t want[SHA256_DIGEST_SIZE], const char *token, size_t n) {
        uint8_t d[SHA256_DIGEST_SIZE];
        bool eq;

        sha256(token, n, d);
        eq = memeq_const_time(d, want, sizeof d);
        explicit_bzero(d, sizeof d);
        return eq;
}

bool local_token_name_valid(const char *name) {
        size_t n;

        if (!name)
                return false;
        n = strlen(name);
        if (n == 0 || n > LOCAL_TOKEN_NAME_MAX)
                return false;
        return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}
