/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Reading a request to an API operation once, as upstream will read it.
 *
 * Upstream is ASP.NET Core with ABP.  Its model binding reads the form
 * before the query, matches names case-insensitively (with .NET's ordinal
 * case folding, which maps some non-ASCII letters onto ASCII ones), takes
 * the first of two values, and binds "input.Id" over "Id"; System.Text.Json
 * matches body members case-insensitively and takes the last of two.  Every
 * request whose meaning could differ between denvrd and upstream is refused
 * here, so that what rights, defaults, waits and the cache judge is what
 * upstream acts on:
 *
 *  - a query piece whose name or value has a bad escape; a name that is
 *    empty, holds '.', '[' or ']', or a byte outside printable ASCII; a name
 *    given twice in any case or encoding; a JSON member name that is empty or
 *    holds a byte outside printable ASCII (dots mean nothing in JSON);
 *  - on a body operation, a query name that is one of its body fields;
 *  - a body on an operation that takes none; on one that takes a body, a
 *    body that is not JSON (form and multipart never reach upstream), not a
 *    JSON object, or that names a member twice in any case;
 *  - in API_READ_STRICT (callers held to an operation list), any name the
 *    operation does not have.  In API_READ_OPEN such names are kept, with
 *    def NULL, and forwarded as sent.
 *
 * For an operation outside the table (op NULL) nothing is refused in
 * API_READ_OPEN; API_READ_STRICT applies the name rules above and refuses
 * form and multipart bodies.
 *
 * Pure: nothing here logs or keeps state.
 */

#include <stdbool.h>
#include <stddef.h>

#include "common/api/optable.h"

struct json_t;

enum api_read_mode {
        API_READ_OPEN,          /* unknown plain names kept and forwarded */
        API_READ_STRICT,        /* unknown names refused */
};

struct api_param {
        const struct op_param *def;     /* the table's parameter, NULL for a name it lacks */
        enum op_param_location location;
        char *name;                     /* decoded */
        char *value;                    /* decoded text; NULL for a body member that is not a string */
        size_t value_len;
        bool empty;                     /* "", a bare name, or JSON null */
        const char *raw;                /* query: the piece as sent (into the caller's query) */
        size_t raw_len;
        size_t value_start, value_end;  /* body: where the member's value is in the client's bytes */
};

struct api_read {
        const struct operation *op;
        struct api_param *params;       /* query pieces in order, then body members */
        size_t n_params;
        struct json_t *body;            /* the body object, when one was read */
        size_t body_brace;              /* offset of its '{' in the client's bytes */
        bool body_unlabelled;           /* JSON the client did not label so: forward as application/json */

        /* Refused (-EBADMSG): why, for a 400, and for bodies the details. */
        enum api_read_error {
                API_READ_OK,
                API_READ_REFUSED,       /* error says why */
                API_READ_INVALID_JSON,  /* and error_line, error_column, error_text */
                API_READ_NOT_OBJECT,    /* and json_type: "array", "string", "number", "null", ... */
        } error_kind;
        char error[320];
        int error_line;                 /* 1-based, as jansson reports them */
        int error_column;
        char error_text[160];           /* jansson's message, NUL-terminated, valid UTF-8 */
        const char *json_type;
};

/*
 * Reads one request to op (NULL: not in the table).  query (without '?') and
 * body need not be NUL-terminated; content_type is the client's header or
 * NULL.  Returns 0 when read, -EBADMSG when refused (ret->error says why, for
 * a 400), -ENOMEM.  ret is always initialised; free it with api_read_done().
 */
int api_read(const struct operation *op, enum api_read_mode mode, const char *query, size_t query_len,
             const char *content_type, const char *body, size_t body_len, struct api_read *ret);

void api_read_done(struct api_read *a);

/* The parameter the table calls name at location (ASCII case-insensitive), or NULL. */
const struct api_param *api_read_get(const struct api_read *a, enum op_param_location location,
                                     const char *name);

/*
 * Whether a Content-Type header value names JSON, as ASP.NET's JSON input
 * formatter accepts it: application/json, text/json or application/ANY+json,
 * any parameters (charset=...) ignored, case-insensitive.
 */
bool api_content_type_is_json(const char *content_type);
