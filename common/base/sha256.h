/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * SHA-256 (FIPS 180-4), for the hashes of local tokens kept in denvr.toml.
 * Written here from the standard rather than linked from a crypto library:
 * it is the only primitive denvrd needs, and it is small.
 */

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32

struct sha256_ctx {
        uint32_t h[8];
        uint64_t total;         /* bytes hashed so far */
        uint8_t block[64];
        size_t used;            /* bytes waiting in block */
};

void sha256_init(struct sha256_ctx *c);
void sha256_update(struct sha256_ctx *c, const void *data, size_t len);
/* Writes the digest and wipes c. */
void sha256_final(struct sha256_ctx *c, uint8_t out[SHA256_DIGEST_SIZE]);

void sha256(const void *data, size_t len, uint8_t out[SHA256_DIGEST_SIZE]);
