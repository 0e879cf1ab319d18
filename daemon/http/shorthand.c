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

/* Length of the first segment of "/seg/..." or 0. */
static size_t first_segment(const char *path, const char **ret) {
        size_t n;

        if (path[0] != '/')
                return 0;
        n = strcspn(path + 1, "/?");
        *ret = path + 1;
        return path[1 + n] == '/' ? n : 0;
}

bool shorthand_matches(const char *path) {
        const char *seg;
        size_t n = first_segment(path, &seg);

        if (n == 0)
                return false;
        for (size_t i = 0; i < optable_n_operations; i++) {
                const char *op = optable_operations[i].path;
                const char *rest, *opseg;
                size_t m;

                /* Table paths look like /api/v1/<service>/...; skip /api/<version>. */
                if (strncmp(op, "/api/", 5) != 0 || !(rest = strchr(op + 5, '/')))
                        continue;
                m = first_segment(rest, &opseg);
                if (m == n && strncasecmp(opseg, seg, n) == 0)
                        return true;
        }
        return false;
}

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
