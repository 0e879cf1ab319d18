/* SPDX-License-Identifier: MIT */
#include "daemon/upstream/forward_headers.h"

#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/base/cleanup.h"
#include "common/base/format.h"
#include "common/http/http_headers.h"
#include "daemon/core/daemon.h"
#include "daemon/http/request.h"
#include "denvrd-version.h"

struct header_walk {
        struct curl_slist *list;
        char *connection;               /* every Connection value, joined */
        bool failed;
        bool has_content_type;
        bool json_content_type;         /* replace the client's Content-Type */
        unsigned dropped;               /* client headers not on the forwarded list */
};

static int slist_add(struct curl_slist **l, const char *fmt, ...) _printf_(2, 3);
static int slist_add(struct curl_slist **l, const char *fmt, ...) {
        _cleanup_free_ char *line = NULL;
        struct curl_slist *n;
        va_list ap;

        va_start(ap, fmt);
        line = vformat(fmt, ap);
        va_end(ap);
        if (!line)
                return -ENOMEM;
        n = curl_slist_append(*l, line);
        if (!n)
                return -ENOMEM;
        *l = n;
        return 0;
}

static int slist_add_const(struct curl_slist **l, const char *line) {
        struct curl_slist *n = curl_slist_append(*l, line);

        if (!n)
                return -ENOMEM;
        *l = n;
        return 0;
}

static enum MHD_Result add_forwarded_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                            const char *value) {
        struct header_walk *w = cls;

        if (!http_header_forward_request(key, w->connection)) {
                if (!http_header_is_denvrds(key))
                        w->dropped++;
                return MHD_YES;
        }
        if (strcasecmp(key, "Content-Type") == 0) {
                if (w->json_content_type)
                        return MHD_YES;
                w->has_content_type = true;
        }
        /* "Name;" is curl's way to send a header with an empty value. */
        if ((value && *value ? slist_add(&w->list, "%s: %s", key, value) : slist_add(&w->list, "%s;", key)) < 0) {
                w->failed = true;
                return MHD_NO;
        }
        return MHD_YES;
}

static enum MHD_Result collect_connection(void *cls, enum MHD_ValueKind kind, const char *key,
                                          const char *value) {
        struct header_walk *w = cls;

        if (strcasecmp(key, "Connection") == 0 && http_header_list_join(&w->connection, value) < 0) {
                w->failed = true;
                return MHD_NO;
        }
        return MHD_YES;
}

static int add_own(struct request *r, const struct header_walk *w, bool has_body, struct curl_slist **l) {
        const char *ua = request_header(r, "User-Agent");

        if (slist_add(l, "User-Agent: %s%sdenvrd/%s", ua && *ua ? ua : "", ua && *ua ? " " : "",
                      DENVRD_VERSION) < 0 ||
            slist_add(l, "X-Request-Id: %s", r->id) < 0)
                return -ENOMEM;
        if (w->json_content_type)
                return slist_add_const(l, "Content-Type: application/json");
        /* Only a request with a body needs these (curl would add "Expect:
         * 100-continue" for a big one and a form Content-Type to one without
         * its own); every header costs curl a scan per header it may add. */
        if (!has_body)
                return 0;
        if (slist_add_const(l, "Expect:") < 0)
                return -ENOMEM;
        if (!w->has_content_type && slist_add_const(l, "Content-Type:") < 0)
                return -ENOMEM;
        return 0;
}

int forward_headers_build(struct request *r, bool has_body, bool json_content_type, struct curl_slist **ret) {
        struct header_walk w = {
                .json_content_type = json_content_type,
        };

        (void) MHD_get_connection_values(r->conn, MHD_HEADER_KIND, collect_connection, &w);
        if (!w.failed)
                (void) MHD_get_connection_values(r->conn, MHD_HEADER_KIND, add_forwarded_header, &w);
        free(w.connection);
        r->daemon->metrics.headers_dropped += w.dropped;
        if (w.failed || add_own(r, &w, has_body, &w.list) < 0) {
                curl_slist_free_all(w.list);
                return -ENOMEM;
        }
        *ret = w.list;
        return 0;
}

/* Forwarded headers that may change an answer (trace context does not). */
static bool header_shapes_answer(const char *name) {
        return strcasecmp(name, "traceparent") != 0 && strcasecmp(name, "tracestate") != 0;
}

static enum MHD_Result key_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        FILE *f = cls;

        if (http_header_forward_request(key, NULL) && header_shapes_answer(key))
                fprintf(f, "\n%s:%s", key, value ? value : "");
        return MHD_YES;
}

void forward_headers_key(struct request *r, FILE *f) {
        (void) MHD_get_connection_values(r->conn, MHD_HEADER_KIND, key_header, f);
}
