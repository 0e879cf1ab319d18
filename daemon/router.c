/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "router"
#include "router.h"

#include <assert.h>
#include <errno.h>

#include "access.h"
#include "local_api.h"
#include "daemon.h"
#include "log.h"
#include "login_shim.h"
#include "proxy.h"
#include "request.h"
#include "shorthand.h"

bool router_check(struct request *r) {
        const char *canon = r->canon_path;

        assert(canon);
        if (!access_check_request(r))
                return false;   /* refused, or a CORS preflight answered */
        if (path_has_prefix(canon, "/_denvrd/") || path_has_prefix(canon, "/api/"))
                return true;
        if (shorthand_matches(canon)) {
                int k = shorthand_rewrite(r, r->daemon->config->api);

                if (k < 0) {
                        request_reply_error(r, k == -ENOMEM ? 503 : 400, NULL, "%s",
                                            k == -ENOMEM ? "out of memory"
                                                         : "the path is refused once [defaults] api is added");
                        return false;
                }
                return true;
        }

        request_reply_error(r, 404, NULL,
                            "no such endpoint: %s (denvrd serves /api/... like the Denvr API, "
                            "and /_denvrd/healthz, readyz, status, metrics)", r->path);
        return false;
}

/* Decided on the canonical path: every spelling of /api/TokenAuth/ reaches the shim. */
void router_dispatch(struct request *r) {
        assert(r->canon_path);
        if (path_has_prefix(r->canon_path, "/_denvrd/"))
                local_api_handle(r);
        else if (login_shim_matches(r->canon_path))
                login_shim_handle(r);
        else
                proxy_start(r);
}
