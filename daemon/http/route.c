/* SPDX-License-Identifier: MIT */
#include "daemon/http/route.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/core/daemon.h"
#include "daemon/http/request.h"
#include "daemon/http/shorthand.h"

#define LOGIN_PREFIX "/api/tokenauth"

bool route_is_login(const char *canon_path) {
        size_t n = strlen(LOGIN_PREFIX);

        return strncmp(canon_path, LOGIN_PREFIX, n) == 0 && (canon_path[n] == 0 || canon_path[n] == '/');
}

bool route_is_service(const char *canon_path) {
        return shorthand_matches(canon_path);
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
        else if (shorthand_matches(inner)) {
                if (asprintf(ret, "/api/%s%s", api, inner) < 0)
                        *ret = NULL;
        } else
                return 0;
        return *ret ? 1 : -ENOMEM;
}

static bool is_served(const char *canon) {
        return path_has_prefix(canon, "/_denvrd/") || path_has_prefix(canon, "/api/");
}

bool route_decide(struct request *r) {
        const char *canon = r->canon_path;

        assert(canon);
        /* The shorthand first, so that every later phase judges the path that is forwarded. */
        if (!is_served(canon) && shorthand_matches(canon)) {
                int k = shorthand_rewrite(r, r->daemon->config->api);

                if (k < 0) {
                        request_reply_error(r, k == -ENOMEM ? 503 : 400, NULL, "%s",
                                            k == -ENOMEM ? "out of memory"
                                                         : "the path is refused once [defaults] api is added");
                        return false;
                }
                canon = r->canon_path;
        }
        if (path_has_prefix(canon, ROUTE_WAIT_PREFIX "/")) {
                r->route.kind = ROUTE_WAIT;
                if (route_wait_inner(canon, r->daemon->config->api, &r->route.inner) < 0) {
                        request_reply_error(r, 503, NULL, "out of memory");
                        return false;
                }
        } else if (path_has_prefix(canon, "/_denvrd/"))
                r->route.kind = ROUTE_LOCAL;
        else if (route_is_login(canon))
                r->route.kind = ROUTE_LOGIN;
        else if (path_has_prefix(canon, "/api/"))
                r->route.kind = ROUTE_API;
        else
                r->route.kind = ROUTE_NONE;
        return true;
}

void route_done(struct route *rt) {
        free(rt->inner);
        *rt = (struct route) { ROUTE_NONE, NULL };
}
