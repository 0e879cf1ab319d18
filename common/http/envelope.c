/* SPDX-License-Identifier: MIT */
#include "common/http/envelope.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/base/cleanup.h"

static char *envelope_dump(json_t *result, json_t *error, bool success, bool unauthorized) {
        json_t *root;
        char *s;

        root = json_pack("{s:o, s:n, s:b, s:o, s:b, s:b}",
                         "result", result ? result : json_null(),
                         "targetUrl",
                         "success", success,
                         "error", error ? error : json_null(),
                         "unAuthorizedRequest", unauthorized,
                         "__abp", 1);
        if (!root)
                return NULL;
        s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(root);
        return s;
}

char *envelope_error(const char *message, const char *details, bool unauthorized,
                     const struct envelope_violation *v, size_t n_violations) {
        json_t *errs = NULL, *error;

        if (n_violations > 0) {
                errs = json_array();
                if (!errs)
                        return NULL;
                for (size_t i = 0; i < n_violations; i++) {
                        _cleanup_free_ char *m = NULL;
                        const char *text = v[i].message;

                        if (!text) {
                                if (asprintf(&m, "The %s field is required.", v[i].member) < 0) {
                                        json_decref(errs);
                                        return NULL;
                                }
                                text = m;
                        }
                        json_array_append_new(errs, json_pack("{s:s, s:[s]}", "message", text,
                                                              "members", v[i].member));
                }
        }

        error = json_pack("{s:i, s:s, s:s?, s:o?}",
                          "code", 0,
                          "message", message,
                          "details", details,
                          "validationErrors", errs);
        if (!error)
                return NULL;
        return envelope_dump(NULL, error, false, unauthorized);
}

char *envelope_success(json_t *result) {
        return envelope_dump(result, NULL, true, false);
}
