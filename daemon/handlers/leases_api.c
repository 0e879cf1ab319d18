/* SPDX-License-Identifier: MIT */
/*
 * /_denvrd/leases: the leases a caller may see (GET), and one machine's lease
 * set, replaced (PUT) or removed (DELETE) at /_denvrd/leases/SERVICE/ID, with
 * cluster (and namespace) in the query, filled from [defaults] as for any
 * operation.  A PUT asks upstream first whether the machine exists: a lease
 * on nothing is a typo that would never be carried out.
 */
#define LOG_MODULE "lease"
#include "daemon/handlers/leases_api.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/api/fillin.h"
#include "common/base/cleanup.h"
#include "common/base/format.h"
#include "common/base/log.h"
#include "common/base/query.h"
#include "daemon/core/daemon.h"
#include "daemon/handlers/lease_policy.h"
#include "daemon/handlers/local_reply.h"
#include "daemon/http/request.h"
#include "daemon/jobs/lease_keeper.h"
#include "daemon/upstream/engine.h"

#define LEASES_PATH "/_denvrd/leases"

/* --- GET -------------------------------------------------------------------------------- */

static void handle_list(struct request *r) {
        struct lease_keeper *k = r->daemon->leases;
        int64_t now = lease_keeper_now(k);
        json_t *a = json_array();

        for (size_t i = 0; a && i < lease_keeper_count(k); i++) {
                const struct lease *l = lease_keeper_at(k, i);

                if (lease_policy_visible(r, l) && json_array_append_new(a, lease_to_json(l, now)) < 0) {
                        json_decref(a);
                        a = NULL;
                }
        }
        local_reply_json(r, 200, a ? json_pack("{s:o}", "leases", a) : NULL);
}

/* --- which machine ---------------------------------------------------------------------- */

/* A path segment, percent-decoded ('+' is itself); NULL when empty, badly escaped, or when it
 * decodes to a control byte or '/'. */
static char *segment_decode(const char *s, size_t n) {
        _cleanup_free_ char *out = malloc(n + 1);
        ssize_t len = out ? percent_decode(s, n, false, out) : -ENOMEM;

        if (len <= 0)
                return NULL;
        for (ssize_t i = 0; i < len; i++)
                if ((unsigned char) out[i] < 0x20 || out[i] == 0x7f || out[i] == '/')
                        return NULL;
        return TAKE_PTR(out);
}

struct machine {
        enum lease_service service;
        char *id, *cluster, *namespace;
};

static void machine_done(struct machine *m) {
        free(m->id);
        free(m->cluster);
        free(m->namespace);
}

/* A query parameter, else the default, else NULL (*ret): 0, or -EINVAL for a bad escape. */
static int param(struct request *r, const char *name, const char *fallback, char **ret) {
        size_t len;
        int k = r->query ? query_get(r->query, strlen(r->query), name, ret, &len) : 0;

        if (k < 0)
                return k;
        if (k > 0 && strlen(*ret) == len && len > 0)
                return 0;
        if (k > 0) {
                free(*ret);
                *ret = NULL;
                if (len > 0)
                        return -EINVAL;   /* a NUL in it */
        }
        *ret = fallback ? strdup(fallback) : NULL;
        return fallback && !*ret ? -ENOMEM : 0;
}

/* SERVICE/ID after /_denvrd/leases/, with its cluster and namespace; false once it answered. */
static bool read_machine(struct request *r, struct machine *m) {
        const struct fillin_defaults def = config_fillin_defaults(r->daemon->config);
        const char *rest = r->canon_path + strlen(LEASES_PATH "/"), *raw = strrchr(r->path, '/');
        int s;

        if (strcmp(rest, "servers/virtual") == 0 || strcmp(rest, "servers/applications") == 0) {
                request_reply_error(r, 400, NULL, "the machine's id is missing: %s/%s/ID", LEASES_PATH, rest);
                return false;
        }
        if (strncmp(rest, "servers/virtual/", 16) == 0)
                m->service = LEASE_SERVERS_VIRTUAL;
        else if (strncmp(rest, "servers/applications/", 21) == 0)
                m->service = LEASE_SERVERS_APPLICATIONS;
        else {
                request_reply_error(r, 404, NULL, "no such lease path: %s (use %s/servers/virtual/ID or "
                                    "%s/servers/applications/ID)", r->path, LEASES_PATH, LEASES_PATH);
                return false;
        }
        /* The id as the client spelt it: the canonical path is lower-cased. */
        s = (int) (strchr(rest + (m->service == LEASE_SERVERS_VIRTUAL ? 16 : 21), '/') != NULL);
        if (s || !raw || !(m->id = segment_decode(raw + 1, strlen(raw + 1)))) {
                request_reply_error(r, 400, NULL, "the machine's id is missing or not a valid path segment: %s",
                                    r->path);
                return false;
        }
        if (param(r, "cluster", def.cluster, &m->cluster) < 0 ||
            (m->service == LEASE_SERVERS_VIRTUAL && param(r, "namespace", def.vpcid, &m->namespace) < 0) ||
            !lease_names_are_clean(&(struct lease) { .cluster = m->cluster, .namespace = m->namespace })) {
                request_reply_error(r, 400, NULL, "cluster and namespace must be valid query values, without "
                                    "control characters");
                return false;
        }
        if (!m->cluster || (m->service == LEASE_SERVERS_VIRTUAL && !m->namespace)) {
                request_reply_error(r, 400, NULL, "which machine: give cluster%s in the query, or set them "
                                    "in [defaults] of denvr.toml", m->service == LEASE_SERVERS_VIRTUAL
                                    ? " and namespace" : "");
                return false;
        }
        return true;
}

/* --- PUT: what the body asks ----------------------------------------------------------------- */

_printf_(2, 3)
static int bad(struct request *r, const char *fmt, ...) {
        _cleanup_free_ char *text = NULL;
        va_list ap;

        va_start(ap, fmt);
        text = vformat(fmt, ap);
        va_end(ap);
        request_reply_error(r, 400, NULL, "%s", text ? text : "bad request");
        return -EINVAL;
}

/* {"expires_in": "4h"} or {"expires_at": "RFC 3339"}, and "action": 0, or 400 answered (-EINVAL). */
static int read_body(struct request *r, int64_t now, struct lease *l) {
        _cleanup_(json_decrefp) json_t *o = NULL;
        json_t *in, *at, *action;
        const char *key, *why = NULL;
        json_t *v;
        int64_t sec = 0;
        int a = LEASE_STOP;

        o = r->body_len ? json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, NULL) : NULL;
        if (!json_is_object(o))
                return bad(r, "the body must be a JSON object: {\"expires_in\": \"4h\"} or {\"expires_at\": "
                           "\"2026-12-07T18:00:00Z\"}, and \"action\": \"stop\" or \"destroy\"");
        json_object_foreach(o, key, v)
                if (strcmp(key, "expires_in") != 0 && strcmp(key, "expires_at") != 0 && strcmp(key, "action") != 0)
                        return bad(r, "unknown member \"%.64s\" in the body (expires_in, expires_at, action)", key);
        in = json_object_get(o, "expires_in");
        at = json_object_get(o, "expires_at");
        action = json_object_get(o, "action");
        if (!in == !at)
                return bad(r, "give one of expires_in or expires_at");
        if (in && (!json_is_string(in) || lease_duration_parse(json_string_value(in), &sec, &why) < 0))
                return bad(r, "expires_in: %s", why ? why : "must be a string such as \"4h\"");
        if (at && (!json_is_string(at) || lease_time_parse(json_string_value(at), &l->expires_at) < 0))
                return bad(r, "expires_at must be an RFC 3339 time such as \"2026-12-07T18:00:00Z\"");
        if (at && (l->expires_at <= now || l->expires_at - now > LEASE_MAX_SECONDS))
                return bad(r, "expires_at must be in the future, and within a year");
        if (action && (!json_is_string(action) || (a = lease_action_from_string(json_string_value(action))) < 0))
                return bad(r, "action must be \"stop\" or \"destroy\"");
        if (in)
                l->expires_at = now + sec;
        l->action = (enum lease_action) a;
        return 0;
}

/* --- PUT: does the machine exist? ------------------------------------------------------------ */

struct lease_put {
        struct request *r;
        struct engine_call *call;
        struct engine_request req;
        struct curl_slist *headers;
        char *target;
        struct machine m;
        struct lease lease;
};

static void put_free(struct lease_put *p) {
        engine_call_free(p->call);
        curl_slist_free_all(p->headers);
        free(p->target);
        machine_done(&p->m);
        lease_done(&p->lease);
        free(p);
}

static void put_end(void *data, enum request_end how) {
        put_free(data);
}

static const struct request_handler put_handler = {
        .name = "lease",
        .end = put_end,
};

static void put_store(struct lease_put *p) {
        struct request *r = p->r;
        struct lease_keeper *k = r->daemon->leases;
        const struct lease *l;
        char msg[768];
        int e;

        /* Judged again: a lease may have been set on the machine while upstream was asked. */
        if (lease_policy_replace(r, &p->lease, msg, sizeof msg) < 0) {
                r->daemon->metrics.denied++;
                request_reply_error(r, 403, NULL, "%s", msg);
                return;
        }
        e = lease_keeper_set(k, &p->lease);
        if (e < 0) {
                request_reply_error(r, 503, NULL, "cannot write the lease to %s (%s): nothing was changed",
                                    lease_keeper_file(k), strerror(-e));
                return;
        }
        l = lease_keeper_find(k, p->m.service, p->m.cluster, p->m.id);
        local_reply_json(r, 200, l ? lease_to_json(l, lease_keeper_now(k)) : NULL);
}

static void on_exists(struct engine_call *c, struct engine_result *res, void *userdata) {
        struct lease_put *p = userdata;
        struct request *r = p->r;
        unsigned st = res->answer.status;

        if (res->end != ENGINE_ANSWERED) {
                request_reply_error(r, res->status, res->details, "cannot tell whether the machine exists: %s",
                                    res->message);
                return;
        }
        if (st >= 200 && st < 300)
                put_store(p);
        else if (st == 404)
                request_reply_error(r, 404, NULL, "no such machine: upstream has no %s/%s in cluster %s; "
                                    "nothing was stored", lease_service_to_string(p->m.service), p->m.id, p->m.cluster);
        else
                request_reply_error(r, st >= 500 ? 502 : st, NULL, "upstream answered %u when asked whether "
                                    "%s exists; nothing was stored", st, p->m.id);
}

static int put_check(struct lease_put *p) {
        struct daemon *d = p->r->daemon;

        p->target = lease_check_target(d, &p->lease);
        p->headers = engine_own_headers("lease", false);
        if (!p->target || !p->headers || !(p->call = engine_call_new(d, on_exists, p)))
                return -ENOMEM;
        p->req = engine_request_own(d, "GET", p->target, p->headers, p->r->id);
        engine_call_start(p->call, &p->req);
        return 0;
}

/* The lease as asked, judged: 0, or answered. */
static int put_lease(struct request *r, struct lease_put *p) {
        struct lease *l = &p->lease;
        int64_t now = lease_keeper_now(r->daemon->leases);
        char msg[768];

        l->service = p->m.service;
        if (!(l->id = strdup(p->m.id)) || !(l->cluster = strdup(p->m.cluster)) ||
            (p->m.namespace && !(l->namespace = strdup(p->m.namespace))) || lease_policy_set_by(r, l) < 0) {
                request_reply_error(r, 503, NULL, "out of memory");
                return -ENOMEM;
        }
        if (read_body(r, now, l) < 0)
                return -EINVAL;
        if (lease_policy_rights(r, l, msg, sizeof msg) < 0 || lease_policy_replace(r, l, msg, sizeof msg) < 0 ||
            lease_policy_limit(r, l->expires_at - now, msg, sizeof msg) < 0) {
                r->daemon->metrics.denied++;
                request_reply_error(r, 403, NULL, "%s", msg);
                return -EPERM;
        }
        return 0;
}

static void handle_put(struct request *r) {
        struct lease_put *p = calloc(1, sizeof *p);

        if (!p) {
                request_reply_error(r, 503, NULL, "out of memory");
                return;
        }
        p->r = r;
        if (!read_machine(r, &p->m) || put_lease(r, p) < 0) {
                put_free(p);
                return;
        }
        request_set_handler(r, &put_handler, p);
        if (put_check(p) < 0)
                request_reply_error(r, 503, NULL, "out of memory");
}

/* --- DELETE ------------------------------------------------------------------------------------ */

static void handle_delete(struct request *r) {
        struct lease_keeper *k = r->daemon->leases;
        _cleanup_(machine_done) struct machine m = { 0 };
        const struct lease *l;
        json_t *j;
        char msg[768];
        int e;

        if (!read_machine(r, &m))
                return;
        l = lease_keeper_find(k, m.service, m.cluster, m.id);
        if (!l || !lease_policy_visible(r, l)) {
                request_reply_error(r, 404, NULL, "no lease on %s/%s in cluster %s",
                                    lease_service_to_string(m.service), m.id, m.cluster);
                return;
        }
        if (lease_policy_rights(r, l, msg, sizeof msg) < 0 || lease_policy_may_remove(r, msg, sizeof msg) < 0) {
                r->daemon->metrics.denied++;
                request_reply_error(r, 403, NULL, "%s", msg);
                return;
        }
        j = lease_to_json(l, lease_keeper_now(k));
        e = lease_keeper_remove(k, m.service, m.cluster, m.id);
        if (e < 0) {
                json_decref(j);
                request_reply_error(r, 503, NULL, "cannot write the leases to %s (%s): nothing was changed",
                                    lease_keeper_file(k), strerror(-e));
                return;
        }
        local_reply_json(r, 200, j ? json_pack("{s:o}", "removed", j) : NULL);
}

void leases_api_handle(struct request *r) {
        bool list = strcmp(r->canon_path, LEASES_PATH) == 0;
        const char *m = r->method;

        if (list && (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0))
                handle_list(r);
        else if (!list && strcmp(m, "PUT") == 0)
                handle_put(r);
        else if (!list && strcmp(m, "DELETE") == 0)
                handle_delete(r);
        else {
                request_reply_error(r, 405, NULL, "%s accepts only %s", r->path, list ? "GET and HEAD" : "PUT and DELETE");
                (void) request_reply_header(r, "Allow", list ? "GET, HEAD" : "PUT, DELETE");
        }
}
