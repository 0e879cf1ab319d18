/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Defaults fill-in and early validation for a known operation (optable.h).
 *
 * Query: a parameter absent from the client's query gets "&Name=value"
 * appended (value percent-encoded); the client's bytes are kept as they are.
 * Names match as ASP.NET binds them: after percent-decoding ('+' is a space),
 * ASCII case-insensitively.  A present parameter is left alone even when empty
 * ("Cluster=" or a bare "Cluster"): that is how a client says "no default".
 *
 * Body: when the operation takes body fields and the body is JSON (see
 * fillin_apply()), it is validated with jansson and absent top-level members
 * are inserted as text right after the opening '{'; every other byte of the
 * client's JSON is kept (big numbers, key order, escapes, whitespace).  Keys
 * match ASCII case-insensitively, as ASP.NET's JSON binder does; a member that
 * is present with null or "" is left alone.  A body that needs nothing added is
 * not copied.
 *
 * Validation: required parameters still absent after fill-in, a body that is
 * not valid JSON (with jansson's line and column) or not an object.  The
 * result says so and fillin_result_envelope() builds the 400 answer; present
 * but empty or null values are not flagged: upstream judges those.
 */

#include <stdbool.h>
#include <stddef.h>

#include "common/api/api_read.h"
#include "common/api/optable.h"

/* The [defaults] of denvr.toml.  NULL or "" means not configured: adds nothing. */
struct fillin_defaults {
        const char *cluster;
        const char *vpcid;
        const char *rpool;
};

enum fillin_body_error {
        FILLIN_BODY_OK,           /* fine, or not inspected (no body fields, not JSON) */
        FILLIN_BODY_INVALID_JSON, /* error_line, error_column, error_text say why */
        FILLIN_BODY_NOT_OBJECT,   /* valid JSON, but not an object; json_type says what */
        FILLIN_BODY_REFUSED,      /* refused by the reading (api_read.h): refused says why */
};

struct fillin_result {
        /* The query to forward (no leading '?'), or NULL: forward the client's as is. */
        char *query;
        size_t query_len;

        /* The body to forward, or NULL: forward the client's as is. */
        char *body;
        size_t body_len;

        /*
         * The forwarded body is JSON but the client did not label it so (no
         * Content-Type, or curl -d's application/x-www-form-urlencoded): send
         * "Content-Type: application/json" upstream instead of the client's.
         */
        bool content_type_json;

        /* Members added, for debug logs and tests. */
        size_t n_added_query;   /* the query's, empty ones given their default included */
        size_t n_added_body;    /* the body's, likewise */
        size_t n_replaced_body; /* of those, members sent "" or null whose value was replaced */

        /* Required parameters still absent after fill-in, in table order. */
        const struct op_param *missing[OPTABLE_MAX_PARAMS];
        size_t n_missing;

        enum fillin_body_error body_error;
        const char *json_type;    /* NOT_OBJECT: "array", "string", "number", "true", ... */
        int error_line;           /* INVALID_JSON: 1-based, as jansson reports them */
        int error_column;
        char error_text[160];     /* INVALID_JSON: jansson's message, NUL-terminated */
        char refused[320];        /* any error: the message of the 400 */
};

/*
 * Whether a Content-Type header value names JSON, as ASP.NET's JSON input
 * formatter accepts it: application/json, text/json or application/ANY+json,
 * any parameters (charset=...) ignored, case-insensitive.
 */
static inline bool fillin_content_type_is_json(const char *content_type) {
        return api_content_type_is_json(content_type);
}

/*
 * Fills in defaults for one request to op and validates it.
 *
 * query/query_len: the raw query string, without the '?' (NULL if none).
 * content_type: the client's Content-Type header value, NULL if absent.  Body
 *   fields are handled when it is JSON (fillin_content_type_is_json()), absent,
 *   or application/x-www-form-urlencoded with a body whose first non-blank
 *   byte is '{' (what "curl -d '{...}'" sends); any other type is forwarded
 *   untouched and left to upstream.
 * body/body_len: the raw body (need not be NUL-terminated).  An empty body on
 *   an operation with body fields counts as "{}".
 *
 * ret is always initialised.  Returns 0 when the request was processed (check
 * fillin_result_is_valid() before forwarding), -ENOMEM on allocation failure,
 * -EINVAL when a configured default is not valid UTF-8.  On error ret holds
 * nothing to free.  Neither input needs to be NUL-terminated and nothing
 * beyond the given lengths is read.
 */
int fillin_apply(const struct operation *op, const struct fillin_defaults *d,
                 const char *query, size_t query_len,
                 const char *content_type,
                 const char *body, size_t body_len,
                 struct fillin_result *ret);

/*
 * The same for a request already read (api_read() returned 0): the daemon
 * reads each request once and fills in from that reading.  query and body are
 * the bytes the reading was made from.
 */
int fillin_apply_read(const struct api_read *a, const struct fillin_defaults *d,
                      const char *query, size_t query_len, const char *body, size_t body_len,
                      struct fillin_result *ret);

/*
 * The query of a request to a query operation in one canonical form: the
 * operation's own parameters in table order, spelled as the table spells
 * them, values percent-encoded the one way, defaults in their place, names
 * the operation lacks left out.  Two requests that upstream would read alike
 * get the same text (waits share one poll loop on it).  ret->query may be
 * NULL when there is nothing to send.
 */
int fillin_canonical_query(const struct api_read *a, const struct fillin_defaults *d,
                           struct fillin_result *ret);

/* Frees what fillin_apply() allocated; ret may be reused afterwards.  Idempotent. */
void fillin_result_done(struct fillin_result *ret);

/* True when nothing is missing and the body (if inspected) is a JSON object. */
bool fillin_result_is_valid(const struct fillin_result *r);

/*
 * The 400 error envelope for an invalid result (ABP shape, envelope.h), with
 * validationErrors listing each missing parameter.  Returns 0 with *ret NULL
 * when the result is valid, 1 with *ret a malloc'ed NUL-terminated JSON text
 * when it is not, -ENOMEM on allocation failure.
 */
int fillin_result_envelope(const struct fillin_result *r, char **ret);
