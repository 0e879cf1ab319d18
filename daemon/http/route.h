/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Where a request goes, decided once on its canonical path (after the service
 * shorthand is expanded) and kept on the request: denvrd's own endpoints under
 * /_denvrd/ (a wait among them), the SDK login shim under /api/TokenAuth/,
 * everything else under /api/ upstream.  Never decided on the client's spelling.
 */

#include <stdbool.h>


enum route_kind {
        ROUTE_NONE,             /* nothing served there: a 404, once access is judged */
        ROUTE_API,              /* forwarded upstream */
        ROUTE_LOGIN,            /* the login shim (login_shim.h): never forwarded */
        ROUTE_LOCAL,            /* denvrd's own endpoints */
        ROUTE_WAIT,             /* /_denvrd/wait/...: a local endpoint that polls an API path */
};

struct route {
        enum route_kind kind;
        /* ROUTE_WAIT: the API path waited for, canonical, /api/VERSION/... (malloc'ed);
         * NULL when the wait names none (the wait answers 404). */
        char *inner;
};

#define ROUTE_WAIT_PREFIX "/_denvrd/wait"

static inline bool path_has_prefix(const char *path, const char *prefix) {
        return __builtin_strncmp(path, prefix, __builtin_strlen(prefix)) == 0;
}

/* All of /api/TokenAuth and below, in canonical form. */
bool route_is_login(const char *canon_path);
/* Whether the canonical path's first segment is a Denvr service (clusters, servers, vpcs...). */
bool route_is_service(const char *canon_path);
/* The API path a wait names, malloc'ed in *ret: 1, 0 when it names none, or -ENOMEM. */
int route_wait_inner(const char *canon_path, const char *api, char **ret);

/* Whether canon is a service path without /api/VERSION (shorthand.h expands it). */
bool route_needs_shorthand(const char *canon_path);
/* Where the canonical path goes (after the shorthand); 0 or -ENOMEM. */
int route_classify(const char *canon_path, const char *api, struct route *ret);
void route_done(struct route *rt);
