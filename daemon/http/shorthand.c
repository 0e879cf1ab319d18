/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "shorthand"
#include "daemon/http/shorthand.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/api/optable.h"
#include "common/base/cleanup.h"
#include "common/base/log.h"
#include "common/http/canon_path.h"
#include "daemon/http/request.h"
#include "daemon/http/route.h"

int shorthand_rewrite(struct request *r, const char *api) {
        _cleanup_free_ char *uri = NULL, *path = NULL, *canon = NULL;
        const char *q, *why;
        int k;

        if (asprintf(&uri, "/api/%s%s", api, r->raw_uri) < 0) {
                uri = NULL;
                return -ENOMEM;
        }
        q = strchr(uri, '?');
        path = strndup(uri, q ? (size_t) (q - uri) : strlen(uri));
        if (!path)
                return -ENOMEM;
        /* The new path gets its own canonical form, as if the client had sent it. */
        k = canon_path_dup(path, &canon, &why);
        if (k < 0) {
                if (k == -EINVAL)
                        log_warning("%s: %s with [defaults] api \"%s\" is refused: %s", r->id, r->path, api, why);
                return k;
        }
        log_debug("%s: %s served as %s", r->id, r->path, path);
        free(r->raw_uri);
        free(r->path);
        free(r->canon_path);
        r->raw_uri = TAKE_PTR(uri);
        r->path = TAKE_PTR(path);
        r->canon_path = TAKE_PTR(canon);
        r->query = q ? q + 1 : NULL;
        return 0;
}
