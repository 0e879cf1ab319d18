/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Secrets (passwords, API keys, tokens) live in their own heap blocks that are
 * mlock()ed where the limit allows (so they do not reach swap) and are wiped
 * with explicit_bzero() before being freed.  Never log secret->data.
 */

#include <stddef.h>

#include "common/base/cleanup.h"

struct secret {
        size_t len;
        char data[]; /* NUL-terminated */
};

/* Copies len bytes of s into a new locked secret.  NULL on OOM. */
struct secret *secret_new(const char *s, size_t len);
static inline struct secret *secret_new_str(const char *s) {
        return s ? secret_new(s, __builtin_strlen(s)) : NULL;
}
struct secret *secret_dup(const struct secret *s);
/* Wipes and frees; NULL is fine. */
void secret_free(struct secret *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct secret *, secret_free)
#define _cleanup_secret_free_ _cleanup_(secret_freep)

/*
 * Reads a secret from a file: the whole content with one trailing "\n" or
 * "\r\n" removed.  Refuses empty files, files over 64 KiB and NUL bytes.
 * Returns 0 or a negative errno; -EBADMSG for bad content.
 */
int secret_read_file(const char *path, struct secret **ret);

/* Wipes a NUL-terminated heap string and frees it; NULL is fine. */
void erase_and_free(char *s);
static inline void erase_and_freep(char **p) {
        erase_and_free(*p);
}
#define _cleanup_erase_free_ _cleanup_(erase_and_freep)

/*
 * Makes jansson wipe every block it frees: login answers carry tokens and
 * login requests the password, and jansson copies them into its own strings.
 * Process-wide; call once at start-up before any JSON is parsed.
 */
void secret_use_wiping_json_allocator(void);
