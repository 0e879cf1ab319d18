/* SPDX-License-Identifier: MIT */
#include "daemon/http/route.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/api/optable.h"

#define LOGIN_PREFIX "/api/tokenauth"

bool route_is_login(const char *canon_path) {
        size_t n = strlen(LOGIN_PREFIX);

        return strncmp(canon_path, LOGIN_PREFIX, n) == 0 && (canon_path[n] == 0 || canon_path[n] == '/');
}

/* Length of the first segment of "/seg/..." or 0. */
static size_t first_segment(const char *path, const char **ret) {
        size_t n;

        if (path[0] != '/')
                return 0;
        n = strcspn(path + 1, "/?");
        *ret = path + 1;
        return path[1 + n] == '/' ? n : 0;
}

bool route_is_service(const char *path) {
        const char *seg;
        size_t n = first_segment(path, &seg);

        if (n == 0)
                return false;
        for (size_t i = 0; i < optable_n_operations; i++) {
                const char *op = optable_operations[i].path;
                const char *rest, *opseg;
                size_t m;

                /* Table paths look like /api/v1/<service>/...; skip /api/<version>. */
                if (strncmp(op, "/api/", 5) != 0 || !(rest = strchr(op + 5, '/')))
                        continue;
                m = first_segment(rest, &opseg);
                if (m == n && strncasecmp(opseg, seg, n) == 0)
                        return true;
        }
        return false;
}

int route_wait_inner(const char *canon_path, const char *api, char **ret) {
        const char *inner;

        assert(canon_path && api && ret);
        *ret = NULL;
        if (!path_has_prefix(canon_path, ROUTE_WAIT_PREFIX "/"))
                return 0;
        inner = canon_path + strlen(ROUTE_WAIT_PREFIX);
        if (path_has_prefix(inner, "/api/"))
                *ret = strdup(inner);
        else if (route_is_service(inner)) {
                if (asprintf(ret, "/api/%s%s", api, inner) < 0)
                        *ret = NULL;
        } else
                return 0;
        return *ret ? 1 : -ENOMEM;
}

static bool is_served(const char *canon) {
        return path_has_prefix(canon, "/_denvrd/") || path_has_prefix(canon, "/api/");
}

bool route_needs_shorthand(const char *canon) {
        return !is_served(canon) && route_is_service(canon);
}

int route_classify(const char *canon, const char *api, struct route *ret) {
        assert(canon && api && ret && !ret->inner);
        if (path_has_prefix(canon, ROUTE_WAIT_PREFIX "/")) {
                ret->kind = ROUTE_WAIT;
                return route_wait_inner(canon, api, &ret->inner) < 0 ? -ENOMEM : 0;
        }
        if (path_has_prefix(canon, "/_denvrd/"))
                ret->kind = ROUTE_LOCAL;
        else if (route_is_login(canon))
                ret->kind = ROUTE_LOGIN;
        else if (path_has_prefix(canon, "/api/"))
                ret->kind = ROUTE_API;
        else
                ret->kind = ROUTE_NONE;
        return 0;
}

void route_done(struct route *rt) {
        free(rt->inner);
        *rt = (struct route) { ROUTE_NONE, NULL };
}
