/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The leases on disk: one JSON file ({"version": 1, "leases": [...]}),
 * replaced atomically on every change (atomic_file.h), so that a crash at
 * any point leaves the old leases or the new ones.  A file that cannot be
 * read is an error, never an empty list: denvrd must not forget a machine
 * it promised to stop.
 */

#include <stddef.h>

#include "common/api/lease.h"
#include "common/base/atomic_file.h"

#define LEASE_STORE_VERSION 1

struct lease_set {
        struct lease *leases;
        size_t n;
};

/* Reads path into *ret: 0 (no file: no leases), or -EBADMSG / -errno with a
 * message in err saying what is wrong with the file. */
int lease_store_load(const char *path, struct lease_set *ret, char *err, size_t err_size);

/* Writes s to path atomically (mode 0600); hooks may be NULL. */
int lease_store_save(const char *path, const struct lease_set *s, int64_t now, const struct atomic_hooks *hooks);

/* Appends l, taking it over (l is zeroed); on -ENOMEM l stays the caller's. */
int lease_set_add(struct lease_set *s, struct lease *l);
void lease_set_remove(struct lease_set *s, size_t i);
void lease_set_done(struct lease_set *s);
