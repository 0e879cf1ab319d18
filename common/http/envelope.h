/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Denvr's responses are wrapped by ASP.NET Boilerplate:
 *   {"result": ..., "targetUrl": null, "success": bool, "error": ...,
 *    "unAuthorizedRequest": bool, "__abp": true}
 * Errors denvrd makes itself use the same envelope, so the SDKs show our
 * error.message to their users.
 */

#include <jansson.h>
#include <stdbool.h>

/* A required parameter that is missing, for validationErrors. */
struct envelope_violation {
        const char *message;   /* NULL: "The NAME field is required." */
        const char *member;
};

/*
 * Error envelope as compact JSON text (malloc'ed; NULL on OOM).  details may
 * be NULL.  unauthorized sets "unAuthorizedRequest".
 */
char *envelope_error(const char *message, const char *details, bool unauthorized,
                     const struct envelope_violation *v, size_t n_violations);

/* Success envelope around result (reference stolen). */
char *envelope_success(json_t *result);
