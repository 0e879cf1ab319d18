/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The Denvr Cloud API operations denvrd knows: for each, its method, path,
 * query parameters or body fields, which are required, and which [defaults]
 * key of denvr.toml fills which parameter when the client leaves it out.
 *
 * The data lives in common/api/operations.table and is turned into C at build time
 * by common/api/gen-optable.py (optable-data.c in the build directory).  The
 * table only ever adds defaults and early validation: an operation that is not
 * in it is forwarded untouched.
 */

#include <stdbool.h>
#include <stddef.h>

/* Upper bound on parameters of one operation; the generator enforces it. */
#define OPTABLE_MAX_PARAMS 32

enum op_param_location {
        OP_PARAM_QUERY,
        OP_PARAM_BODY,
};

/* Which [defaults] key of denvr.toml fills a parameter. */
enum op_default {
        OP_DEFAULT_NONE,
        OP_DEFAULT_CLUSTER,
        OP_DEFAULT_VPCID,
        OP_DEFAULT_RPOOL,
        _OP_DEFAULT_MAX,
};

struct op_param {
        const char *name;               /* spelled as upstream documents it */
        enum op_param_location location;
        bool required;
        enum op_default fill;
};

struct operation {
        const char *method;             /* "GET", "POST", "DELETE" */
        const char *path;               /* "/api/v1/servers/virtual/GetServers" */
        const struct op_param *params;  /* table order: the order fill-in adds them */
        size_t n_params;
        bool has_body;                  /* some parameter is a body field */
};

/* Every operation, sorted for optable_lookup(); see optable.c for the order. */
extern const struct operation optable_operations[];
extern const size_t optable_n_operations;

/*
 * Finds the operation for a request.  path is the decoded path without the
 * query string.  Matching is ASCII case-insensitive for both method and path,
 * as ASP.NET Core routes, and one trailing '/' is ignored, as ASP.NET Core's
 * routing ignores it.  Returns NULL for an unknown operation (which the
 * proxy forwards untouched), including a known path with another method.
 */
const struct operation *optable_lookup(const char *method, const char *path);

/* Same, with an explicit path length (path need not be NUL-terminated). */
const struct operation *optable_lookupn(const char *method, const char *path, size_t path_len);

/* An operation with this path and any method (matched as above), or NULL:
 * for the path as the table spells it, e.g. in audit lines. */
const struct operation *optable_lookup_path(const char *path);

/* "cluster", "vpcid", "rpool" (the denvr.toml key), or NULL for NONE. */
const char *op_default_to_string(enum op_default d);
/* Inverse of op_default_to_string(); -EINVAL for an unknown key. */
int op_default_from_string(const char *s);

/* The parameter of op named name (exact case) at location, or NULL. */
const struct op_param *operation_find_param(const struct operation *op,
                                            enum op_param_location location,
                                            const char *name);
