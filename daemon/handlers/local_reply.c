/* SPDX-License-Identifier: MIT */
#include "daemon/handlers/local_reply.h"

#include <stdlib.h>
#include <string.h>

#include "daemon/http/request.h"

void local_reply_json(struct request *r, unsigned status, json_t *j) {
        /* 12 digits: a sum of prices shows as 5.2, not 5.2000000000000002. */
        char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12)) : NULL;

        json_decref(j);
        if (s) {
                /* A trailing newline keeps curl output readable. */
                char *t = realloc(s, strlen(s) + 2);
                if (t) {
                        strcat(t, "\n");
                        s = t;
                }
        }
        request_reply_json(r, status, s);
        (void) request_reply_header(r, "Cache-Control", "no-store");
}
