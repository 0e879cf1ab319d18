/* SPDX-License-Identifier: MIT */
#include "daemon/upstream/answer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/base/cleanup.h"
#include "common/client/upstream.h"
#include "common/http/http_headers.h"

void answer_done(struct answer *a) {
        for (size_t i = 0; i < a->n_headers; i++) {
                free(a->headers[i].name);
                free(a->headers[i].value);
        }
        free(a->headers);
        free(a->body);
        *a = (struct answer) { 0 };
}

int answer_copy(const struct answer *a, struct answer *ret) {
        struct answer c = { .status = a->status, .body_len = a->body_len };

        c.headers = calloc(a->n_headers ? a->n_headers : 1, sizeof *c.headers);
        c.body = malloc(a->body_len ? a->body_len : 1);
        if (!c.headers || !c.body)
                goto oom;
        memcpy(c.body, a->body, a->body_len);
        for (size_t i = 0; i < a->n_headers; i++) {
                c.headers[i].name = strdup(a->headers[i].name);
                c.headers[i].value = strdup(a->headers[i].value);
                c.n_headers++;
                if (!c.headers[i].name || !c.headers[i].value)
                        goto oom;
        }
        *ret = c;
        return 0;
oom:
        answer_done(&c);
        return -ENOMEM;
}

int answer_from_transfer(struct upstream_transfer *t, struct answer *a) {
        _cleanup_free_ char *connection = NULL;

        *a = (struct answer) {
                .status = (unsigned) t->status,
                .body_len = t->resp_body_len,
        };
        for (size_t i = 0; i < t->n_resp_headers; i++)
                if (strcasecmp(t->resp_headers[i].name, "Connection") == 0 &&
                    http_header_list_join(&connection, t->resp_headers[i].value) < 0)
                        return -ENOMEM;
        a->headers = calloc(t->n_resp_headers ? t->n_resp_headers : 1, sizeof *a->headers);
        if (!a->headers)
                return -ENOMEM;
        /* The transfer is over: its headers move into the answer, uncopied. */
        for (size_t i = 0; i < t->n_resp_headers; i++) {
                struct upstream_header *h = &t->resp_headers[i];

                if (!http_header_forward_response(h->name, connection) ||
                    !http_header_value_is_safe(h->value, strlen(h->value)))
                        continue;
                a->headers[a->n_headers].name = TAKE_PTR(h->name);
                a->headers[a->n_headers].value = TAKE_PTR(h->value);
                a->n_headers++;
        }
        a->body = TAKE_PTR(t->resp_body);
        t->resp_body_len = 0;
        if (!a->body)
                a->body_len = 0;
        return 0;
}
