/* SPDX-License-Identifier: MIT */
#include "daemon/policy/open_endpoints.h"

#include <stddef.h>
#include <string.h>

static const struct {
        const char *path;
        bool listener_off;
        bool rights_off;
} endpoints[] = {
        /* Health checks: a supervisor or a load balancer asks them of any listener. */
        { "/_denvrd/healthz", .listener_off = true,  .rights_off = true },
        { "/_denvrd/readyz",  .listener_off = true,  .rights_off = true },
        /* A caller shut out by its rule may still learn who denvrd takes it for;
         * a listener switched off tells nobody anything about anyone. */
        { "/_denvrd/whoami",  .listener_off = false, .rights_off = true },
};

bool open_endpoint(const char *canon_path, enum open_when when) {
        for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
                if (strcmp(canon_path, endpoints[i].path) == 0)
                        return when == OPEN_LISTENER_OFF ? endpoints[i].listener_off : endpoints[i].rights_off;
        return false;
}
