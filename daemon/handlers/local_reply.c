/* SPDX-License-Identifier: MIT */
#include "daemon/handlers/local_reply.h"

#include <stdlib.h>
#include <string.h>

#include "daemon/http/request.h"

void local_reply_json(struct request *r, unsigned status, json_t *j) {
        char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

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
