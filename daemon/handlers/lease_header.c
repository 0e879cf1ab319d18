/* SPDX-License-Identifier: MIT */
/*
 * "X-Denvrd-Lease: DURATION[; action=stop|destroy]" on CreateServer,
 * StartServer and the application equivalents, and the caller's [leases]
 * entry when it sends none: judged before anything is forwarded (a bad
 * header, a lease longer than [leases] allows, or one whose action the caller
 * may not take is refused), set once upstream answers 2xx, and told in the
 * answer's own X-Denvrd-Lease.  The header itself is never forwarded (no
 * X-Denvrd-* header is).
 */
#define LOG_MODULE "lease"
#include "daemon/handlers/lease_header.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/api/api_read.h"
#include "common/api/fillin.h"
#include "common/api/optable.h"
#include "common/base/cleanup.h"
#include "common/base/log.h"
#include "common/config/config.h"
#include "daemon/core/daemon.h"
#include "daemon/handlers/lease_policy.h"
#include "daemon/http/request.h"
#include "daemon/jobs/lease_keeper.h"
#include "daemon/upstream/answer.h"
#include "daemon/upstream/proxy.h"

#define HEADER "X-Denvrd-Lease"

/* The operations that bring a machine up, and where they name it. */
static const struct lease_op {
        const char *path;
        enum lease_service service;
        const char *id;                 /* the machine's id, or its name on a create */
        const char *namespace;          /* NULL: applications have none */
} lease_ops[] = {
        { "/api/v1/servers/virtual/CreateServer", LEASE_SERVERS_VIRTUAL, "name", "vpc" },
        { "/api/v1/servers/virtual/StartServer", LEASE_SERVERS_VIRTUAL, "id", "namespace" },
        { "/api/v1/servers/applications/CreateCatalogApplication", LEASE_SERVERS_APPLICATIONS, "name", NULL },
        { "/api/v1/servers/applications/CreateCustomApplication", LEASE_SERVERS_APPLICATIONS, "name", NULL },
        { "/api/v1/servers/applications/StartApplication", LEASE_SERVERS_APPLICATIONS, "id", NULL },
};

static const struct lease_op *lease_op_of(const struct request *r) {
        const struct operation *op = r->reading ? r->reading->op : NULL;

        for (size_t i = 0; op && i < ELEMENTSOF(lease_ops); i++)
                if (strcasecmp(op->path, lease_ops[i].path) == 0)
                        return &lease_ops[i];
        return NULL;
}

/* A parameter as upstream binds it (the reading), else its default; NULL when neither. */
static char *bound(struct request *r, const char *name, const char *fallback) {
        const struct operation *op = r->reading->op;
        const struct api_param *p;

        for (size_t i = 0; i < op->n_params; i++) {
                if (strcasecmp(op->params[i].name, name) != 0)
                        continue;
                p = api_read_get(r->reading, op->params[i].location, op->params[i].name);
                if (p && p->value && !p->empty)
                        return strdup(p->value);
        }
        return fallback ? strdup(fallback) : NULL;
}

/* --- after upstream's answer ----------------------------------------------------------------- */

struct intent {
        struct lease lease;             /* machine as the request names it, action, who */
        int64_t seconds;
};

static void intent_free(void *data) {
        struct intent *in = data;

        lease_done(&in->lease);
        free(in);
}

/* Upstream's own words on the machine win: a create's id is what upstream made of the name. */
static int take_member(json_t *result, const char *name, char **field) {
        const char *v = json_string_value(json_object_get(result, name));
        char *c;

        if (!v || !*v)
                return 0;
        c = strdup(v);
        if (!c)
                return -ENOMEM;
        free(*field);
        *field = c;
        return 0;
}

static int from_answer(struct lease *l, const struct answer *a) {
        _cleanup_(json_decrefp) json_t *root = a->body ? json_loadb(a->body, a->body_len, 0, NULL) : NULL;
        json_t *result = json_object_get(root, "result");

        if (!json_is_object(result))
                return 0;
        if (take_member(result, json_object_get(result, "id") ? "id" : "name", &l->id) < 0 ||
            take_member(result, "cluster", &l->cluster) < 0 ||
            (l->service == LEASE_SERVERS_VIRTUAL && take_member(result, "namespace", &l->namespace) < 0))
                return -ENOMEM;
        return 0;
}

static void on_answered(struct request *r, const struct answer *a, void *data) {
        struct intent *in = data;
        struct lease_keeper *k = r->daemon->leases;
        char value[96], when[LEASE_TIME_LEN];
        enum lease_action action = in->lease.action;
        int e;

        if (a->status < 200 || a->status >= 300)
                return;
        e = from_answer(&in->lease, a);
        if (e >= 0 && (!in->lease.id || !in->lease.cluster || !lease_names_are_clean(&in->lease)))
                e = -EBADMSG;
        if (e >= 0) {
                in->lease.expires_at = lease_keeper_now(k) + in->seconds;
                lease_time_format(in->lease.expires_at, when);
                e = lease_keeper_set(k, &in->lease);
        }
        if (e < 0) {
                log_error("%s: upstream answered %u, but no lease could be set (%s): the machine runs without one",
                          r->id, a->status, e == -EBADMSG ? "its answer does not name the machine, or names it "
                          "with control characters" : strerror(-e));
                (void) request_reply_header(r, HEADER "-Error", "no lease was set: see denvrd's log");
                return;
        }
        snprintf(value, sizeof value, "expires=%s; action=%s", when, lease_action_to_string(action));
        (void) request_reply_header(r, HEADER, value);
}

static const struct proxy_observer observer = {
        .answered = on_answered,
        .free = intent_free,
};

/* --- before anything is forwarded -------------------------------------------------------------- */

static int refuse(struct request *r, unsigned status, const char *msg) {
        if (status == 403)
                r->daemon->metrics.denied++;
        request_reply_error(r, status, NULL, "%s", msg);
        return -1;
}

/* The machine as the request names it, and who asks. */
static int name_machine(struct request *r, const struct lease_op *op, struct lease *l) {
        const struct fillin_defaults fd = config_fillin_defaults(r->daemon->config);

        l->service = op->service;
        l->id = bound(r, op->id, NULL);
        l->cluster = bound(r, "cluster", fd.cluster);
        if (op->namespace)
                l->namespace = bound(r, op->namespace, fd.vpcid);
        return lease_policy_set_by(r, l);
}

/* What the request asks: 1 a lease (in *in), 0 none, -1 answered. */
static int judge(struct request *r, const struct lease_op *op, struct intent *in) {
        const char *h = request_header(r, HEADER), *why = NULL;
        const struct lease_default *def = lease_policy_default(r);
        char msg[768];

        if (!h && !def)
                return 0;
        if (h && lease_header_parse(h, &in->seconds, &in->lease.action, &why) < 0) {
                snprintf(msg, sizeof msg, HEADER ": %s (\"4h\", \"1h30m\", \"2d; action=destroy\")", why);
                return refuse(r, 400, msg);
        }
        if (h && lease_policy_limit(r, in->seconds, msg, sizeof msg) < 0)
                return refuse(r, 403, msg);
        if (!h) {
                in->seconds = def->seconds;
                in->lease.action = (enum lease_action) def->action;
        }
        if (name_machine(r, op, &in->lease) < 0)
                return refuse(r, 503, "out of memory");
        if (lease_policy_rights(r, &in->lease, msg, sizeof msg) < 0 ||
            (in->lease.id && in->lease.cluster && lease_policy_replace(r, &in->lease, msg, sizeof msg) < 0))
                return refuse(r, 403, msg);
        return 1;
}

static enum MHD_Result count_lease_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        unsigned *n = cls;

        if (strcasecmp(key, HEADER) == 0)
                (*n)++;
        return MHD_YES;
}

void lease_header_proxy(struct request *r) {
        const bool asked = request_header(r, HEADER) != NULL;
        const struct lease_op *op;
        struct intent *in;
        unsigned n = 0;
        int k;

        /* Two would be read one way here and perhaps another by whoever reads the request next.
         * Counted only when there is one: the common request pays one header lookup. */
        if (asked)
                (void) MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_lease_header, &n);
        if (n > 1) {
                refuse(r, 400, HEADER " is given more than once: give it once; nothing was sent upstream");
                return;
        }
        /* Every operation that brings a machine up is a POST. */
        op = strcmp(r->method, "POST") == 0 ? lease_op_of(r) : NULL;
        if (!op && asked) {
                refuse(r, 400, HEADER " is taken only by CreateServer, StartServer, CreateCatalogApplication, "
                       "CreateCustomApplication and StartApplication; nothing was sent upstream");
                return;
        }
        if (!op) {
                proxy_start(r);
                return;
        }
        in = calloc(1, sizeof *in);
        if (!in) {
                refuse(r, 503, "out of memory");
                return;
        }
        k = judge(r, op, in);
        if (k <= 0) {
                intent_free(in);
                if (k == 0)
                        proxy_start(r);
                return;
        }
        proxy_start_observed(r, &observer, in);
}
