/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Where a request goes: denvrd's own endpoints under /_denvrd/, the SDK
 * login shim under /api/TokenAuth/, everything else under /api/ upstream.
 * Decided on the request's canonical path (request.canon_path), never on
 * the client's spelling.
 */

#include <stdbool.h>

struct request;

/* Early checks once headers are in; false when a reply was already set. */
bool router_check(struct request *r);
/* Final routing once the body is in. */
void router_dispatch(struct request *r);

static inline bool path_has_prefix(const char *path, const char *prefix) {
        return __builtin_strncmp(path, prefix, __builtin_strlen(prefix)) == 0;
}
