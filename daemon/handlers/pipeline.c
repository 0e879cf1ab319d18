/* SPDX-License-Identifier: MIT */
#include "daemon/handlers/pipeline.h"

#include <assert.h>
#include <errno.h>

#include "daemon/core/daemon.h"
#include "daemon/handlers/lease_header.h"
#include "daemon/handlers/local_api.h"
#include "daemon/handlers/login_shim.h"
#include "daemon/http/fairness.h"
#include "daemon/http/framing.h"
#include "daemon/http/phase.h"
#include "daemon/http/request.h"
#include "daemon/http/route.h"
#include "daemon/http/shorthand.h"
#include "daemon/observe/audit.h"
#include "daemon/policy/access.h"
#include "daemon/policy/reading.h"

/* The shorthand expanded first, so that every later phase judges the path that is forwarded. */
static bool phase_route(struct request *r) {
        const char *api = r->daemon->config->api;
        int k;

        if (route_needs_shorthand(r->canon_path)) {
                k = shorthand_rewrite(r, api);
                if (k < 0) {
                        request_reply_error(r, k == -ENOMEM ? 503 : 400, NULL, "%s",
                                            k == -ENOMEM ? "out of memory"
                                                         : "the path is refused once [defaults] api is added");
                        return false;
                }
        }
        if (route_classify(r->canon_path, api, &r->route) < 0) {
                request_reply_error(r, 503, NULL, "out of memory");
                return false;
        }
        return true;
}

static void finish(struct request *r, bool completed_ok) {
        audit_request(r, completed_ok);
        reading_done(r);
        fairness_request_end(r);
}

/* After access: a caller that may not use denvrd learns nothing of what it serves. */
static bool phase_served(struct request *r) {
        if (r->route.kind != ROUTE_NONE)
                return true;
        request_reply_error(r, 404, NULL,
                            "no such endpoint: %s (denvrd serves /api/... like the Denvr API, its "
                            "services without /api/VERSION, and /_denvrd/healthz, readyz, status, "
                            "metrics, whoami)", r->path);
        return false;
}

/* Conditions of a [rights] entry, judged on the reading. */
static bool phase_rights_on_parameters(struct request *r) {
        return !r->rights_pending || access_check_rights_params(r);
}

static bool phase_handle(struct request *r) {
        switch (r->route.kind) {
        case ROUTE_LOCAL:
        case ROUTE_WAIT:
                local_api_handle(r);
                break;
        case ROUTE_LOGIN:
                login_shim_handle(r);
                break;
        case ROUTE_API:
                lease_header_proxy(r);
                break;
        case ROUTE_NONE:
                assert(!"a request without a route is handled");
                break;
        }
        /* Judged, filled in and built: the reading (a JSON body's tree with it) is not
         * kept for the whole upstream round trip. */
        reading_done(r);
        return true;
}

/* The order matters; each line names the file that does it. */
static const struct phase phases[] = {
        { "request line",    PHASE_HEADERS, request_check_target },         /* http/request.c */
        { "framing",         PHASE_HEADERS, framing_check },                /* http/framing.c, http/conn.c */
        { "head",            PHASE_HEADERS, request_check_head },           /* http/request.c */
        { "canonicalise",    PHASE_HEADERS, request_canonicalise },         /* http/request.c */
        { "route",           PHASE_HEADERS, phase_route },                  /* http/route.c, http/shorthand.c */
        { "access",          PHASE_HEADERS, access_check_request },         /* policy/access.c */
        { "served",          PHASE_HEADERS, phase_served },                 /* here */
        { "rights",          PHASE_HEADERS, access_check_rights },          /* policy/access.c, policy/rights.c */
        { "body size",       PHASE_HEADERS, request_check_length },         /* http/request.c */
        { "admit",           PHASE_HEADERS, fairness_request_admit },       /* http/fairness.c */
        { "read parameters", PHASE_BODY,    reading_run },                  /* policy/reading.c */
        { "rights on them",  PHASE_BODY,    phase_rights_on_parameters },   /* policy/access.c */
        { "handle",          PHASE_BODY,    phase_handle },                 /* handlers/, handlers/lease_header.c, upstream/proxy.c */
};

const struct pipeline pipeline_denvrd = {
        .phases = phases,
        .n_phases = sizeof phases / sizeof phases[0],
        .finish = finish,       /* observe/audit.c, policy/reading.c, http/fairness.c */
};
