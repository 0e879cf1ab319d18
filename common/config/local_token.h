/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Local tokens: credentials denvrd itself hands out (denvrd --new-token NAME)
 * for callers the kernel cannot name (a container reaching a published port,
 * a VM through allow_remote) and to tell apart tools of one uid.  A token is
 * LOCAL_TOKEN_PREFIX followed by 43 base64url characters (256 random bits);
 * denvr.toml keeps only "sha256:HEX" of it in [tokens].  Clients present it
 * as the Denvr SDKs present an API key ("Authorization: ApiKey TOKEN", or
 * "Bearer TOKEN").  The prefix tells a token apart from the dummy
 * credentials SDK users give (those are ignored); it also lets secret
 * scanners recognise a leaked one.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/sha256.h"

#define LOCAL_TOKEN_PREFIX "denvrd_"
#define LOCAL_TOKEN_RANDOM_BYTES 32
/* The prefix, 43 base64url characters, NUL. */
#define LOCAL_TOKEN_MAX (sizeof(LOCAL_TOKEN_PREFIX) - 1 + 43 + 1)
/* "sha256:" and 64 hex digits, NUL. */
#define LOCAL_TOKEN_HASH_TEXT_MAX (7 + 2 * SHA256_DIGEST_SIZE + 1)
/* A token's name in [tokens] and in "token:NAME" of [rights]. */
#define LOCAL_TOKEN_NAME_MAX 64

/* A new random token (getrandom) into out.  0 or a negative errno. */
int local_token_generate(char out[LOCAL_TOKEN_MAX]);

/* Whether s (n bytes) claims to be a local token: it starts with the prefix. */
bool local_token_is_claimed(const char *s, size_t n);

/* The hash of a token as written in [tokens]: "sha256:" and lowercase hex. */
void local_token_hash_text(const char *token, size_t n, char out[LOCAL_TOKEN_HASH_TEXT_MAX]);

/* Parses "sha256:HEX" (64 hex digits, either case).  0 or -EINVAL. */
int local_token_hash_parse(const char *s, uint8_t out[SHA256_DIGEST_SIZE]);

/* Whether token (n bytes) hashes to want; the comparison takes the same time wherever they differ. */
bool local_token_matches(const uint8_t want[SHA256_DIGEST_SIZE], const char *token, size_t n);

/* Compares n bytes without stopping at the first difference. */
bool memeq_const_time(const void *a, const void *b, size_t n);

/* A name of 1..64 characters from A-Z a-z 0-9 '_' '-': a bare TOML key ('.' would make it dotted). */
bool local_token_name_valid(const char *name);
