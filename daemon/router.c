/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "router"
#include "router.h"

#include "access.h"
#include "local_api.h"
#include "daemon.h"
#include "log.h"
#include "login_shim.h"
#include "proxy.h"
#include "request.h"
#include "shorthand.h"

bool router_check(struct request *r) {
        if (!access_check_request(r))
                return false;   /* refused, or a CORS preflight answered */
        if (path_has_prefix(r->path, "/_denvrd/") || path_has_prefix(r->path, "/api/"))
                return access_check_rights(r);
        if (shorthand_matches(r->path)) {
                if (shorthand_rewrite(r, r->daemon->config->api) < 0) {
                        request_reply_error(r, 503, NULL, "out of memory");
                        return false;
                }
                return access_check_rights(r);
        }

        request_reply_error(r, 404, NULL,
                            "no such endpoint: %s (denvrd serves /api/... like the Denvr API, "
                            "and /_denvrd/healthz, readyz, status, metrics)", r->path);
        return false;
}

void router_dispatch(struct request *r) {
        /* Conditions of a [rights] entry need the body: checked now, before anything is forwarded. */
        if (r->rights_pending && !access_check_rights_params(r))
                return;
        if (path_has_prefix(r->path, "/_denvrd/"))
                local_api_handle(r);
        else if (login_shim_matches(r->path))
                login_shim_handle(r);
        else
                proxy_start(r);
}
