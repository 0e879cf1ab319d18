/* SPDX-License-Identifier: MIT */
/* CORS preflights: answered here for listed origins, refused for the rest. */
#include "daemon/policy/access-internal.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config/config.h"
#include "daemon/core/daemon.h"
#include "daemon/http/listener.h"
#include "daemon/http/request.h"

static bool is_tchar(char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/*
 * The requested header names that are plain HTTP tokens, joined by ", ";
 * anything else is dropped (the browser then refuses the request itself).
 * NULL when nothing is left or out of memory.
 */
static char *sane_request_headers(const char *v) {
        _cleanup_free_ char *out = NULL;
        size_t len = 0, count = 0;

        if (!v)
                return NULL;
        out = malloc(CORS_MAX_HEADER_NAMES * (CORS_MAX_HEADER_NAME_LEN + 2) + 1);
        if (!out)
                return NULL;
        while (*v && count < CORS_MAX_HEADER_NAMES) {
                size_t n, lead = strspn(v, " \t,");
                bool ok = true;

                v += lead;
                n = strcspn(v, ",");
                while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                        n--;
                for (size_t i = 0; i < n && ok; i++)
                        ok = is_tchar(v[i]);
                if (ok && n > 0 && n <= CORS_MAX_HEADER_NAME_LEN) {
                        if (len > 0) {
                                memcpy(out + len, ", ", 2);
                                len += 2;
                        }
                        memcpy(out + len, v, n);
                        len += n;
                        count++;
                }
                v += strcspn(v, ",");
        }
        if (len == 0)
                return NULL;
        out[len] = 0;
        return TAKE_PTR(out);
}

/* Exactly one of the methods named in the answer's Access-Control-Allow-Methods. */
static bool preflight_method_allowed(const char *m, bool read_only) {
        static const char *const methods[] = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE" };

        for (size_t i = 0; i < (read_only ? 2 : ELEMENTSOF(methods)); i++)
                if (strcmp(m, methods[i]) == 0)
                        return true;
        return false;
}

/* A preflight is always answered here: 204 for a listed origin, else 403. */
void access_answer_preflight(struct request *r, const char *origin, bool listed) {
        const char *want = request_header(r, "Access-Control-Request-Method");
        enum access_level level = access_listener_level(r);
        bool read_only = level == ACCESS_READ_ONLY;
        _cleanup_free_ char *headers = NULL;

        if (level == ACCESS_OFF) {
                access_deny(r, "the API is switched off on this listener (%s = \"off\"): CORS preflight "
                     "refused; set [daemon] %s = \"read-only\" or \"full\" to enable it",
                     access_key(r), access_key(r));
                return;
        }
        if (!listed) {
                access_deny(r, "CORS preflight from \"%.*s\" refused: that origin is not listed in [daemon] "
                     "cors_origins; add it there to let that web app act with your Denvr login",
                     QUOTE_MAX, origin);
                return;
        }
        if (!preflight_method_allowed(want, read_only)) {
                if (read_only)
                        access_deny(r, "this listener is read-only (%s = \"read-only\"): %.*s would not be "
                             "forwarded, only GET and HEAD are; set [daemon] %s = \"full\" to allow it",
                             access_key(r), QUOTE_MAX, want, access_key(r));
                else
                        access_deny(r, "CORS preflight for method \"%.*s\" refused: denvrd forwards "
                             CORS_METHODS_FULL, QUOTE_MAX, want);
                return;
        }

        if (request_reply(r, 204, NULL, NULL, 0) < 0)
                return;
        /* request_reply() added Access-Control-Allow-Origin and Vary: Origin. */
        (void) request_reply_header(r, "Access-Control-Allow-Methods",
                                    read_only ? CORS_METHODS_READ_ONLY : CORS_METHODS_FULL);
        headers = sane_request_headers(request_header(r, "Access-Control-Request-Headers"));
        if (headers)
                (void) request_reply_header(r, "Access-Control-Allow-Headers", headers);
        (void) request_reply_header(r, "Access-Control-Max-Age", CORS_MAX_AGE);
        (void) request_reply_header(r, "Vary", "Access-Control-Request-Method, Access-Control-Request-Headers");
        /* Chrome's Private Network Access: a public origin calling loopback asks first. */
        if (request_header(r, "Access-Control-Request-Private-Network"))
                (void) request_reply_header(r, "Access-Control-Allow-Private-Network", "true");
}
