/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "router"
#include "daemon/handlers/router.h"

#include <assert.h>
#include <errno.h>

#include "common/base/log.h"
#include "daemon/core/daemon.h"
#include "daemon/handlers/local_api.h"
#include "daemon/handlers/login_shim.h"
#include "daemon/handlers/shorthand.h"
#include "daemon/http/request.h"
#include "daemon/policy/access.h"
#include "daemon/policy/reading.h"
#include "daemon/upstream/proxy.h"

static bool is_served(const char *canon) {
        return path_has_prefix(canon, "/_denvrd/") || path_has_prefix(canon, "/api/");
}

bool router_check(struct request *r) {
        assert(r->canon_path);
        /* The shorthand first, so the access rules judge the path that is forwarded. */
        if (!is_served(r->canon_path) && shorthand_matches(r->canon_path)) {
                int k = shorthand_rewrite(r, r->daemon->config->api);

                if (k < 0) {
                        request_reply_error(r, k == -ENOMEM ? 503 : 400, NULL, "%s",
                                            k == -ENOMEM ? "out of memory"
                                                         : "the path is refused once [defaults] api is added");
                        return false;
                }
        }
        if (!access_check_request(r))
                return false;   /* refused, or a CORS preflight answered */
        if (is_served(r->canon_path))
                return access_check_rights(r);

        request_reply_error(r, 404, NULL,
                            "no such endpoint: %s (denvrd serves /api/... like the Denvr API, its "
                            "services without /api/VERSION, and /_denvrd/healthz, readyz, status, "
                            "metrics, whoami)", r->path);
        return false;
}

/* Decided on the canonical path: every spelling of /api/TokenAuth/ reaches the shim. */
void router_dispatch(struct request *r) {
        /* Read once, as upstream will bind it; conditions of a [rights] entry are judged on that. */
        if (!reading_run(r))
                return;
        if (r->rights_pending && !access_check_rights_params(r))
                return;
        assert(r->canon_path);
        if (path_has_prefix(r->canon_path, "/_denvrd/"))
                local_api_handle(r);
        else if (login_shim_matches(r->canon_path))
                login_shim_handle(r);
        else
                proxy_start(r);
        /* Judged, filled in and built: the reading (a JSON body's tree with it) is not kept
         * for the whole upstream round trip. */
        reading_done(r);
}
