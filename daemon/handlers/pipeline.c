/* SPDX-License-Identifier: MIT */
#include "daemon/handlers/pipeline.h"

#include <assert.h>

#include "daemon/handlers/local_api.h"
#include "daemon/handlers/login_shim.h"
#include "daemon/http/fairness.h"
#include "daemon/http/phase.h"
#include "daemon/http/request.h"
#include "daemon/http/route.h"
#include "daemon/observe/audit.h"
#include "daemon/policy/access.h"
#include "daemon/policy/reading.h"
#include "daemon/upstream/proxy.h"

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
                proxy_start(r);
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

static void finish(struct request *r, bool completed_ok) {
        audit_request(r, completed_ok);
        reading_done(r);
}

/* The order matters; each line names the file that does it. */
static const struct phase phases[] = {
        { "read",            PHASE_HEADERS, request_check_head },           /* http/request.c, http/framing.c */
        { "canonicalise",    PHASE_HEADERS, request_canonicalise },         /* http/request.c */
        { "route",           PHASE_HEADERS, route_decide },                 /* http/route.c, http/shorthand.c */
        { "access",          PHASE_HEADERS, access_check_request },         /* policy/access.c */
        { "served",          PHASE_HEADERS, phase_served },                 /* here */
        { "rights",          PHASE_HEADERS, access_check_rights },          /* policy/access.c, policy/rights.c */
        { "body size",       PHASE_HEADERS, request_check_length },         /* http/request.c */
        { "admit",           PHASE_HEADERS, fairness_request_admit },       /* http/fairness.c */
        { "read parameters", PHASE_BODY,    reading_run },                  /* policy/reading.c */
        { "rights on them",  PHASE_BODY,    phase_rights_on_parameters },   /* policy/access.c */
        { "handle",          PHASE_BODY,    phase_handle },                 /* handlers/, upstream/proxy.c */
};

const struct pipeline pipeline_denvrd = {
        .phases = phases,
        .n_phases = sizeof phases / sizeof phases[0],
        .finish = finish,                                                   /* observe/audit.c */
};
