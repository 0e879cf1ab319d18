/* SPDX-License-Identifier: MIT */
#include "daemon/http/cors.h"

#include <strings.h>

#include "common/config/config.h"
#include "daemon/core/daemon.h"
#include "daemon/http/request.h"

bool cors_origin_listed(const struct denvr_config *c, const char *origin) {
        if (!origin)
                return false;
        for (char **o = c->cors_origins; o && *o; o++)
                if (strcasecmp(*o, origin) == 0)
                        return true;
        return false;
}

void cors_reply_headers(struct request *r) {
        const char *origin = request_header(r, "Origin");

        if (!cors_origin_listed(r->daemon->config, origin))
                return;
        (void) request_reply_header(r, "Access-Control-Allow-Origin", origin);
        (void) request_reply_header(r, "Vary", "Origin");
        (void) request_reply_header(r, "Access-Control-Expose-Headers", "X-Request-Id");
}
