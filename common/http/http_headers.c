/* SPDX-License-Identifier: MIT */
#include "common/http/http_headers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/base/cleanup.h"

/* Compares lengths first: most names differ in length from most entries. */
static bool name_in(const char *name, const char *const *list, size_t n) {
        size_t len = strlen(name);

        for (size_t i = 0; i < n; i++)
                if (strlen(list[i]) == len && strcasecmp(name, list[i]) == 0)
                        return true;
        return false;
}

bool http_connection_lists(const char *v, const char *name) {
        size_t nlen = strlen(name);

        if (!v || nlen == 0)
                return false;
        while (*v) {
                size_t len;

                v += strspn(v, " \t,");
                len = strcspn(v, ",");
                /* Trim trailing white space of the token. */
                while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
                        len--;
                if (len == nlen && strncasecmp(v, name, nlen) == 0)
                        return true;
                v += strcspn(v, ",");
        }
        return false;
}

static const char *const hop_by_hop[] = {
        "Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
        "Proxy-Connection",
};

/*
 * The client headers that go upstream: what can change the answer's form or
 * its conditions, and trace context.  A list of what passes, not of what is
 * dropped: an ABP tenant header ("__tenant"), a method override, Forwarded or
 * a cookie is never something denvrd judged, so it never reaches upstream.
 */
static const char *const forwarded[] = {
        "Accept", "Accept-Encoding", "Accept-Language", "Content-Type",
        "If-Match", "If-Modified-Since", "If-None-Match", "If-Unmodified-Since",
        "traceparent", "tracestate",
};

/* Set by denvrd itself or hop-by-hop: not counted as dropped. */
static const char *const ours[] = {
        "Authorization", "Connection", "Content-Length", "Expect", "Host", "Keep-Alive",
        "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "User-Agent",
        "X-Request-Id",
};

bool http_header_forward_request(const char *name, const char *connection_value) {
        if (!name_in(name, forwarded, ELEMENTSOF(forwarded)))
                return false;
        return !http_connection_lists(connection_value, name);
}

bool http_header_is_denvrds(const char *name) {
        return name_in(name, ours, ELEMENTSOF(ours));
}

bool http_header_forward_response(const char *name, const char *connection_value) {
        static const char *const dropped[] = {
                "Set-Cookie", "Set-Cookie2", "Content-Length", "Date", "Alt-Svc",
                "Proxy-Authenticate", "X-Request-Id",
        };

        if (name_in(name, hop_by_hop, ELEMENTSOF(hop_by_hop)) ||
            name_in(name, dropped, ELEMENTSOF(dropped)))
                return false;
        /*
         * CORS is denvrd's decision (cors_origins), never upstream's: an
         * "Access-Control-Allow-Origin: *" from upstream would let any page
         * read what denvrd fetched with the user's login.
         */
        if (strncasecmp(name, "Access-Control-", 15) == 0)
                return false;
        return !http_connection_lists(connection_value, name);
}

bool http_request_id_is_sane(const char *v) {
        size_t n;

        if (!v)
                return false;
        n = strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-");
        return n > 0 && n <= 128 && v[n] == 0;
}

bool http_header_value_is_safe(const char *v, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (v[i] == '\r' || v[i] == '\n' || v[i] == 0)
                        return false;
        return true;
}

int http_header_list_join(char **joined, const char *value) {
        char *n;

        if (!value || !*value)
                return 0;
        if (asprintf(&n, "%s%s%s", *joined ? *joined : "", *joined ? ", " : "", value) < 0)
                return -ENOMEM;
        free(*joined);
        *joined = n;
        return 0;
}
