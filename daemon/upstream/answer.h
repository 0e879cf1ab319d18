/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * An upstream answer as denvrd passes it on: status, the response headers a
 * proxy forwards (hop-by-hop and unsafe ones dropped), the body.  What the
 * upstream engine delivers, what the cache stores, what waits match.
 */

#include <stddef.h>

struct upstream_transfer;

struct answer_header {
        char *name;
        char *value;
};

struct answer {
        unsigned status;
        struct answer_header *headers;
        size_t n_headers;
        char *body;
        size_t body_len;
};

/* t's answer (headers and body taken from t, which is over). */
int answer_from_transfer(struct upstream_transfer *t, struct answer *a);
int answer_copy(const struct answer *a, struct answer *ret);
void answer_done(struct answer *a);
