/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A request's phases, as nginx's: one ordered list (handlers/pipeline.c,
 * with the file of each phase) that request.c walks without knowing what
 * each does.  Header phases run once the headers are in, body phases once
 * the whole body is; a phase returns false once it has answered the request
 * (a refusal), and the phases after it do not run.
 */

#include <stdbool.h>
#include <stddef.h>

struct request;

enum phase_when {
        PHASE_HEADERS,
        PHASE_BODY,
};

struct phase {
        const char *name;
        enum phase_when when;
        bool (*run)(struct request *r);
};

struct pipeline {
        const struct phase *phases;
        size_t n_phases;
        /* The last phase of every request, answered or not, when it is freed: logs
         * what the access log does not (the audit) and drops what the phases kept. */
        void (*finish)(struct request *r, bool completed_ok);
};
