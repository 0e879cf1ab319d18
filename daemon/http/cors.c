/* SPDX-License-Identifier: MIT */
#include "daemon/http/cors.h"

#include <strings.h>

#include "common/config/config.h"

bool cors_origin_listed(const struct denvr_config *c, const char *origin) {
        if (!origin)
                return false;
        for (char **o = c->cors_origins; o && *o; o++)
                if (strcasecmp(*o, origin) == 0)
                        return true;
        return false;
}
