/* SPDX-License-Identifier: MIT */
#include "common/http/http_method.h"

#include <stddef.h>
#include <string.h>

/*
 * OPTIONS is safe to RFC 9110, but what is not a CORS preflight is forwarded,
 * and upstream's routing, not the method, decides what it does there: denvrd
 * judges it as it judges a change.
 */
static const struct http_method methods[] = {
        { "GET",     .safe = true,  .idempotent = true,  .body = false },
        { "HEAD",    .safe = true,  .idempotent = true,  .body = false },
        { "POST",    .safe = false, .idempotent = false, .body = true  },
        { "PUT",     .safe = false, .idempotent = true,  .body = true  },
        { "PATCH",   .safe = false, .idempotent = false, .body = true  },
        { "DELETE",  .safe = false, .idempotent = true,  .body = false },
        { "OPTIONS", .safe = false, .idempotent = true,  .body = false },
};

const char http_methods_allowed[] = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

const struct http_method *http_method_find(const char *name) {
        for (size_t i = 0; name && i < sizeof methods / sizeof methods[0]; i++)
                if (strcmp(methods[i].name, name) == 0)
                        return &methods[i];
        return NULL;
}

bool http_method_is_safe(const char *name) {
        const struct http_method *m = http_method_find(name);

        return m && m->safe;
}

bool http_method_is_idempotent(const char *name) {
        const struct http_method *m = http_method_find(name);

        return m && m->idempotent;
}

bool http_method_has_body(const char *name) {
        const struct http_method *m = http_method_find(name);

        return m && m->body;
}
