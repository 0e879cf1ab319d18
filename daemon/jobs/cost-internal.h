/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by cost.c (the reads) and cost_report.c (the figures made of them). */

#include <jansson.h>

#include "daemon/jobs/cost.h"

/* The four reads, in this order. */
enum cost_read_kind {
        COST_SERVERS,
        COST_SERVER_CONFIGS,
        COST_APPLICATIONS,
        COST_APP_CONFIGS,
        _COST_READ_MAX,
};

/* The path of a read after /api/VERSION. */
extern const char *const cost_read_paths[_COST_READ_MAX];

/*
 * The figures from the four answers' "result" members (results[k] for
 * enum cost_read_kind k): 0, -EBADMSG with failure set when a result does
 * not have the shape the API documents, or -ENOMEM.
 */
int cost_report_build(struct daemon *d, json_t *const results[static _COST_READ_MAX], unsigned age_sec,
                      struct cost_report *ret, struct cost_failure *failure);
void cost_report_done(struct cost_report *r);
