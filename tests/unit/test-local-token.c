/* SPDX-License-Identifier: MIT */
/* SHA-256 against the FIPS 180-4 / NIST example vectors, local tokens, constant-time compare. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/base/sha256.h"
#include "common/config/local_token.h"

static void hex(const uint8_t *d, size_t n, char *out) {
        for (size_t i = 0; i < n; i++)
                sprintf(out + 2 * i, "%02x", d[i]);
}

static void check_vector(const char *in, size_t len, const char *want) {
        uint8_t d[SHA256_DIGEST_SIZE];
        char got[2 * SHA256_DIGEST_SIZE + 1];

        sha256(in, len, d);
        hex(d, sizeof d, got);
        CHECK(strcmp(got, want) == 0, "sha256 of %zu bytes: %s, want %s", len, got, want);
}

static void test_sha256_vectors(void) {
        static const char two_blocks[] =
                "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
                "lmnopqrsmnopqrstnopqrstu";
        char *million = malloc(1000000);

        check_vector("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        check_vector("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        check_vector("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
                     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
        check_vector(two_blocks, strlen(two_blocks),
                     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
        CHECK(million != NULL, "out of memory");
        if (million) {
                memset(million, 'a', 1000000);
                check_vector(million, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
                free(million);
        }
}

/* Fed in pieces of every size, across block boundaries and the 55/56/64 byte padding cases. */
static void test_sha256_incremental(void) {
        char buf[200];

        for (size_t i = 0; i < sizeof buf; i++)
                buf[i] = (char) (i * 7 + 3);
        for (size_t len = 0; len <= sizeof buf; len++) {
                uint8_t whole[SHA256_DIGEST_SIZE], parts[SHA256_DIGEST_SIZE];
                struct sha256_ctx c;

                sha256(buf, len, whole);
                for (size_t step = 1; step <= 65; step += 16) {
                        sha256_init(&c);
                        for (size_t off = 0; off < len; off += step)
                                sha256_update(&c, buf + off, off + step > len ? len - off : step);
                        sha256_final(&c, parts);
                        CHECK(memcmp(whole, parts, sizeof whole) == 0, "length %zu in steps of %zu", len, step);
                }
        }
}

static void test_memeq_const_time(void) {
        uint8_t a[32] = { 0 }, b[32] = { 0 };

        CHECK(memeq_const_time(a, b, sizeof a), "equal");
        for (size_t i = 0; i < sizeof a; i++) {
                b[i] = 0x80;
                CHECK(!memeq_const_time(a, b, sizeof a), "differs at %zu", i);
                b[i] = 0;
        }
        CHECK(memeq_const_time(a, b, 0), "empty");
}

static void test_tokens(void) {
        char t1[LOCAL_TOKEN_MAX], t2[LOCAL_TOKEN_MAX], text[LOCAL_TOKEN_HASH_TEXT_MAX];
        uint8_t h[SHA256_DIGEST_SIZE];

        CHECK(local_token_generate(t1) == 0 && local_token_generate(t2) == 0, "generate");
        CHECK(strlen(t1) == LOCAL_TOKEN_MAX - 1, "length %zu", strlen(t1));
        CHECK(strncmp(t1, LOCAL_TOKEN_PREFIX, strlen(LOCAL_TOKEN_PREFIX)) == 0, "prefix: %.8s", t1);
        CHECK(strspn(t1 + strlen(LOCAL_TOKEN_PREFIX),
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 43, "base64url");
        CHECK(strcmp(t1, t2) != 0, "two tokens differ");
        CHECK(local_token_is_claimed(t1, strlen(t1)), "claimed");
        CHECK(!local_token_is_claimed("local", 5) && !local_token_is_claimed("denvrd", 6), "dummy keys");

        local_token_hash_text(t1, strlen(t1), text);
        CHECK(strncmp(text, "sha256:", 7) == 0 && strlen(text) == 71, "hash text %s", text);
        CHECK(local_token_hash_parse(text, h) == 0, "parse own hash");
        CHECK(local_token_matches(h, t1, strlen(t1)), "token matches its hash");
        CHECK(!local_token_matches(h, t2, strlen(t2)), "another token does not");
        CHECK(!local_token_matches(h, t1, strlen(t1) - 1), "a truncated token does not");

        /* What sha256sum prints for "abc" (FIPS 180-4, example B.1). */
        local_token_hash_text("abc", 3, text);
        CHECK(strcmp(text, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0, "%s", text);
        CHECK(local_token_hash_parse("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", h) == 0 &&
              h[0] == 0xba && h[31] == 0xad, "upper case hex");
        CHECK(local_token_hash_parse("sha256:ba78", h) < 0, "short");
        CHECK(local_token_hash_parse("sha1:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", h) < 0, "scheme");
        CHECK(local_token_hash_parse("sha256:ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", h) < 0, "not hex");
        CHECK(local_token_hash_parse("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0", h) < 0, "long");

        CHECK(local_token_name_valid("vm-7") && local_token_name_valid("ci_build"), "names");
        CHECK(!local_token_name_valid("") && !local_token_name_valid("a.b") && !local_token_name_valid("a b") &&
              !local_token_name_valid("ä"), "bad names");
}

int main(void) {
        test_sha256_vectors();
        test_sha256_incremental();
        test_memeq_const_time();
        test_tokens();
        printf("%u checks, %u failures\n", checks, failures);
        return failures ? 1 : 0;
}
