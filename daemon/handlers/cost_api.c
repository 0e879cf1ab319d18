/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "cost"
#include "daemon/handlers/cost_api.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/api/lease.h"
#include "common/base/log.h"
#include "common/http/canon_path.h"
#include "daemon/core/daemon.h"
#include "daemon/handlers/lease_policy.h"
#include "daemon/handlers/local_reply.h"
#include "daemon/http/request.h"
#include "daemon/jobs/cost.h"
#include "daemon/jobs/lease_keeper.h"
#include "daemon/policy/rights.h"

/* The reads the cost shows the answers of: a caller must be allowed them. */
static const char *const needed[] = {
        "/servers/virtual/GetServers",
        "/servers/applications/GetApplications",
};

/* One request waiting for the figures. */
struct cost_waiter {
        struct request *r;
        struct cost_ask *ask;
};

static bool allowed_one(struct request *r, const struct rights_caller *who, const char *op, char *why,
                        size_t size) {
        const struct denvr_config *c = r->daemon->config;
        _cleanup_free_ char *raw = NULL, *canon = NULL;
        struct rights_answer ans;
        const char *reason;

        if (asprintf(&raw, "/api/%s%s", c->api, op) < 0 || canon_path_dup(raw, &canon, &reason) < 0) {
                raw = NULL;
                snprintf(why, size, "cannot check [rights] for GET %s", op);
                return false;
        }
        rights_decide(c, who, "GET", canon, NULL, NULL, &ans);
        if (ans.verdict == RIGHTS_ALLOW)
                return true;
        if (ans.verdict == RIGHTS_NEED_PARAMS)
                snprintf(why, size, "[rights] \"%s\" (line %u) allows GET %s only with conditions, and the "
                         "cost lists every machine: add that operation without conditions to the rule's list "
                         "to see it", ans.rule->key, ans.rule->line, raw);
        else
                snprintf(why, size, "the cost shows what GET %s answers, and %s", raw, ans.message);
        return false;
}

bool cost_api_allowed(struct request *r, char *why, size_t size) {
        struct rights_caller who;

        if (r->daemon->config->n_rights == 0)
                return true;
        rights_caller_of(r, &who);
        for (size_t i = 0; i < ELEMENTSOF(needed); i++)
                if (!allowed_one(r, &who, needed[i], why, size))
                        return false;
        return true;
}

/* The machines as this caller may see them: a lease it may not see is none to it (lease_policy.h). */
static json_t *machines_for(struct request *r, json_t *machines) {
        json_t *copy = json_deep_copy(machines), *m;
        struct lease_keeper *k = r->daemon->leases;
        size_t i;

        json_array_foreach(copy, i, m) {
                int s = lease_service_from_string(json_string_value(json_object_get(m, "service")));
                const struct lease *l = s < 0 ? NULL : lease_keeper_find(k, (enum lease_service) s,
                                json_string_value(json_object_get(m, "cluster")),
                                json_string_value(json_object_get(m, "id")));

                if (!json_is_null(json_object_get(m, "lease")) && (!l || !lease_policy_visible(r, l)) &&
                    json_object_set_new(m, "lease", json_null()) < 0) {
                        json_decref(copy);
                        return NULL;
                }
        }
        return copy;
}

static json_t *report_json(struct request *r, const struct cost_report *rep) {
        char as_of[LEASE_TIME_LEN];
        json_t *j, *machines = machines_for(r, rep->machines);

        if (!machines)
                return NULL;
        lease_time_format(rep->as_of, as_of);
        j = json_pack("{s:o, s:f, s:i}", "machines", machines, "total_per_hour", rep->total_per_hour,
                      "unpriced", (int) rep->unpriced);
        if (j && rep->currency && json_object_set_new(j, "currency", json_string(rep->currency)) < 0)
                goto fail;
        if (j && (json_object_set_new(j, "as_of", json_string(as_of)) < 0 ||
                  json_object_set_new(j, "age_seconds", json_integer(rep->age_sec)) < 0))
                goto fail;
        return j;
fail:
        json_decref(j);
        return NULL;
}

/* Answers r with the figures or the failure. */
static void reply(struct request *r, const struct cost_report *rep, const struct cost_failure *failure) {
        char ra[16];

        if (failure) {
                if (request_reply_error(r, failure->status, NULL, "%s", failure->message) == 0 &&
                    failure->retry_after > 0) {
                        snprintf(ra, sizeof ra, "%u", failure->retry_after);
                        (void) request_reply_header(r, "Retry-After", ra);
                }
                return;
        }
        local_reply_json(r, 200, report_json(r, rep));
}

static void on_cost(const struct cost_report *rep, const struct cost_failure *failure, void *userdata) {
        struct cost_waiter *w = userdata;
        struct request *r = w->r;

        request_clear_handler(r);
        free(w);
        reply(r, rep, failure);
}

/* The request ends before the figures came: it stops asking. */
static void cost_end(void *data, enum request_end how) {
        struct cost_waiter *w = data;

        cost_ask_cancel(w->ask);
        free(w);
}

static const struct request_handler cost_handler = {
        .name = "cost",
        .end = cost_end,
};

/* Answers a refused caller as access.c does: 403, counted and logged. */
static void refuse(struct request *r, const char *why) {
        log_info("%s: refused %s %s: %s", r->id, r->method, r->path, why);
        r->daemon->metrics.denied++;
        request_reply_error(r, 403, NULL, "%s", why);
}

void cost_api_handle(struct request *r) {
        struct cost_waiter *w;
        char why[800];
        int k;

        if (!cost_api_allowed(r, why, sizeof why)) {
                refuse(r, why);
                return;
        }
        w = calloc(1, sizeof *w);
        if (!w) {
                request_reply_error(r, 503, NULL, "out of memory");
                return;
        }
        w->r = r;
        /* Set first: the figures may come before cost_get() returns. */
        request_set_handler(r, &cost_handler, w);
        k = cost_get(r->daemon, on_cost, w, &w->ask);
        if (k < 0) {
                request_clear_handler(r);
                free(w);
                request_reply_error(r, 503, NULL, "out of memory");
        }
        /* k == 0: server.c suspends the connection until on_cost() answers. */
}
