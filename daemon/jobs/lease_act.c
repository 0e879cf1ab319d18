/* SPDX-License-Identifier: MIT */
/*
 * Carrying a lease out, through the upstream engine like any other call:
 *
 *   check  GetServer (GetApplicationDetails): gone (404), or already in the
 *          action's state (stopped, stopping, being deleted), is done;
 *   act    StopServer / DestroyServer (or the application operations);
 *          2xx and 404 are done.
 *
 * What cannot be told yet (no answer, an answer upstream_status_is_transient()
 * calls transient, no token) is tried again from the check, after a pause that
 * doubles from 2 s to 5 min, for as long as it takes.  Any other answer fails
 * the lease: it is not retried, and a new lease replaces it.  The lease is
 * "acting" on disk before the action is sent, so after a crash the check runs
 * first: an action already accepted is not sent twice.
 */
#define LOG_MODULE "lease"
#include "daemon/jobs/lease-internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/base/cleanup.h"
#include "common/base/format.h"
#include "common/base/list.h"
#include "common/base/log.h"
#include "common/client/upstream.h"
#include "daemon/core/daemon.h"
#include "daemon/upstream/engine.h"

#define PAUSE_FIRST_SEC 2u
#define PAUSE_MAX_SEC 300u

enum job_step { JOB_CHECK, JOB_ACT };

struct lease_job {
        struct lease_job *prev, *next;
        struct lease_keeper *keeper;
        uint64_t serial;
        enum job_step step;
        struct engine_call *call;
        struct engine_request req;
        struct curl_slist *headers;
        char *target, *body;
        sd_event_source *pause;
        unsigned pause_sec;
        char log_id[48];
};

static void job_free(struct lease_job *j) {
        LIST_REMOVE(j->keeper->jobs, j);
        engine_call_free(j->call);
        sd_event_source_disable_unref(j->pause);
        curl_slist_free_all(j->headers);
        free(j->target);
        free(j->body);
        free(j);
}

static struct lease_job *job_find(struct lease_keeper *k, uint64_t serial) {
        LIST_FOREACH(j, k->jobs)
                if (j->serial == serial)
                        return j;
        return NULL;
}

void lease_act_cancel(struct lease_keeper *k, uint64_t serial) {
        struct lease_job *j = job_find(k, serial);

        if (j)
                job_free(j);
}

void lease_act_cancel_all(struct lease_keeper *k) {
        while (k->jobs)
                job_free(k->jobs);
}

/* --- the requests ------------------------------------------------------------------------ */

static void curl_freep(char **p) {
        curl_free(*p);
}

static char *esc(const char *s) {
        return curl_easy_escape(NULL, s ? s : "", 0);
}

static const char *service_path(const struct lease *l) {
        return l->service == LEASE_SERVERS_VIRTUAL ? "servers/virtual" : "servers/applications";
}

char *lease_check_target(struct daemon *d, const struct lease *l) {
        _cleanup_(curl_freep) char *id = esc(l->id), *ns = esc(l->namespace), *cl = esc(l->cluster);

        if (!id || !ns || !cl)
                return NULL;
        if (l->service == LEASE_SERVERS_VIRTUAL)
                return format("/api/%s/servers/virtual/GetServer?id=%s&namespace=%s&cluster=%s", d->config->api, id,
                              ns, cl);
        return format("/api/%s/servers/applications/GetApplicationDetails?id=%s&cluster=%s", d->config->api, id, cl);
}

static char *dump(json_t *o) {
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

        json_decref(o);
        return s;
}

/* Stop is a POST with a JSON body; Destroy a DELETE with the query (as the operation table has them). */
static int act_request(struct lease_job *j, const struct lease *l) {
        struct daemon *d = j->keeper->daemon;
        bool virt = l->service == LEASE_SERVERS_VIRTUAL;
        const char *op = virt ? (l->action == LEASE_STOP ? "StopServer" : "DestroyServer")
                              : (l->action == LEASE_STOP ? "StopApplication" : "DestroyApplication");
        _cleanup_(curl_freep) char *id = esc(l->id), *ns = esc(l->namespace), *cl = esc(l->cluster);

        if (!id || !ns || !cl)
                return -ENOMEM;
        if (l->action == LEASE_DESTROY) {
                j->target = virt ? format("/api/%s/%s/%s?Id=%s&Namespace=%s&Cluster=%s", d->config->api,
                                          service_path(l), op, id, ns, cl)
                                 : format("/api/%s/%s/%s?Id=%s&Cluster=%s", d->config->api, service_path(l), op, id, cl);
                return j->target ? 0 : -ENOMEM;
        }
        j->target = format("/api/%s/%s/%s", d->config->api, service_path(l), op);
        j->body = dump(virt ? json_pack("{s:s, s:s, s:s}", "id", l->id, "namespace", l->namespace ? l->namespace : "",
                                        "cluster", l->cluster)
                            : json_pack("{s:s, s:s}", "id", l->id, "cluster", l->cluster));
        return j->target && j->body ? 0 : -ENOMEM;
}

/* --- the end of a lease ------------------------------------------------------------------- */

static void set_error(struct lease *l, const char *text) {
        char *e = text ? strdup(text) : NULL;

        free(l->last_error);
        l->last_error = e;
}

static void finish(struct lease_job *j, struct lease *l, enum lease_state state, const char *why) {
        struct lease_keeper *k = j->keeper;
        const struct log_field f[] = {
                { "MESSAGE_ID", state == LEASE_DONE ? MESSAGE_ID_LEASE_DONE : MESSAGE_ID_LEASE_FAILED },
        };
        char what[256];

        l->state = state;
        set_error(l, state == LEASE_DONE ? NULL : why);
        lease_describe(l, what, sizeof what);
        if (state == LEASE_DONE) {
                k->acted_ok++;
                log_fields(LOG_NOTICE, f, ELEMENTSOF(f), "lease on %s done: %s", what, why);
        } else {
                k->acted_failed++;
                log_fields(LOG_ERR, f, ELEMENTSOF(f), "lease on %s failed, not retried: %s; the machine may "
                           "still be running", what, why);
        }
        (void) lease_keeper_save(k);
        job_free(j);
}

static void job_check(struct lease_job *j, struct lease *l);

static int on_pause(sd_event_source *s, uint64_t usec, void *userdata) {
        struct lease_job *j = userdata;
        struct lease *l = lease_keeper_by_serial(j->keeper, j->serial);

        j->pause = sd_event_source_disable_unref(j->pause);
        if (!l) {
                job_free(j);
                return 0;
        }
        job_check(j, l);
        return 0;
}

/* Not answered yet: noted in the lease, tried again later. */
static void pause_and_retry(struct lease_job *j, struct lease *l, const char *why) {
        struct daemon *d = j->keeper->daemon;
        char what[256];
        int r;

        set_error(l, why);
        (void) lease_keeper_save(j->keeper);
        lease_describe(l, what, sizeof what);
        log_warning("lease on %s: %s; trying again in %us", what, why, j->pause_sec);
        r = sd_event_add_time_relative(d->event, &j->pause, CLOCK_MONOTONIC, (uint64_t) j->pause_sec * USEC_PER_SEC,
                                       USEC_PER_SEC / 10, on_pause, j);
        if (r < 0) {
                finish(j, l, LEASE_FAILED, "cannot arm a timer to try again");
                return;
        }
        j->pause_sec = j->pause_sec * 2 < PAUSE_MAX_SEC ? j->pause_sec * 2 : PAUSE_MAX_SEC;
}

/* --- the calls ------------------------------------------------------------------------------ */

static void on_call_done(struct engine_call *c, struct engine_result *res, void *userdata);

static void send_call(struct lease_job *j, const char *method) {
        struct daemon *d = j->keeper->daemon;

        /* Idempotent: stopping or destroying twice is the same as once. */
        j->req = engine_request_own(d, method, j->target, j->headers, j->log_id);
        j->req.body = j->body;
        j->req.body_len = j->body ? strlen(j->body) : 0;
        if (!j->call && !(j->call = engine_call_new(d, on_call_done, j))) {
                struct lease *l = lease_keeper_by_serial(j->keeper, j->serial);

                pause_and_retry(j, l, "out of memory");
                return;
        }
        engine_call_start(j->call, &j->req);
}

static void job_check(struct lease_job *j, struct lease *l) {
        free(j->target);
        free(j->body);
        j->body = NULL;
        j->step = JOB_CHECK;
        j->target = lease_check_target(j->keeper->daemon, l);
        if (!j->target) {
                pause_and_retry(j, l, "out of memory");
                return;
        }
        send_call(j, "GET");
}

static void job_act(struct lease_job *j, struct lease *l) {
        free(j->target);
        j->target = NULL;
        j->step = JOB_ACT;
        if (act_request(j, l) < 0) {
                pause_and_retry(j, l, "out of memory");
                return;
        }
        send_call(j, l->action == LEASE_DESTROY ? "DELETE" : "POST");
}

/* The machine's status in a GetServer (GetApplicationDetails) answer, or NULL. */
static const char *answer_status(json_t *root) {
        json_t *result = json_object_get(root, "result");
        const char *s = json_string_value(json_object_get(result, "status"));

        return s ? s : json_string_value(json_object_get(root, "status"));
}

static bool already_there(enum lease_action a, const char *status) {
        static const char *const stopped[] = { "OFFLINE", "STOPPING", "STOPPED", "DELETING", NULL };
        static const char *const destroyed[] = { "DELETING", "DELETED", NULL };
        const char *const *set = a == LEASE_STOP ? stopped : destroyed;

        for (size_t i = 0; status && set[i]; i++)
                if (strcasecmp(status, set[i]) == 0)
                        return true;
        return false;
}

/* Upstream's words for a refusal: the envelope's error.message, else the status. */
static void refusal(const struct answer *a, json_t *root, const char *what, char *buf, size_t size) {
        const char *m = json_string_value(json_object_get(json_object_get(root, "error"), "message"));

        snprintf(buf, size, "%s answered %u%s%.200s", what, a->status, m ? ": " : "", m ? m : "");
}

static void on_answer(struct lease_job *j, struct lease *l, const struct answer *a) {
        _cleanup_(json_decrefp) json_t *root = a->body ? json_loadb(a->body, a->body_len, 0, NULL) : NULL;
        const char *what = j->step == JOB_CHECK ? "the status check" : lease_action_to_string(l->action);
        const char *status;
        char why[320];

        if (a->status == 404) {
                finish(j, l, LEASE_DONE, "the machine is gone (upstream answered 404)");
                return;
        }
        if (upstream_status_is_transient(a->status)) {
                snprintf(why, sizeof why, "%s: upstream answered %u", what, a->status);
                pause_and_retry(j, l, why);
                return;
        }
        if (a->status < 200 || a->status >= 300) {
                refusal(a, root, what, why, sizeof why);
                finish(j, l, LEASE_FAILED, why);
                return;
        }
        if (j->step == JOB_ACT) {
                snprintf(why, sizeof why, "upstream accepted the %s (%u)", lease_action_to_string(l->action), a->status);
                finish(j, l, LEASE_DONE, why);
                return;
        }
        status = answer_status(root);
        if (already_there(l->action, status)) {
                snprintf(why, sizeof why, "nothing to do: the machine is already %s", status);
                finish(j, l, LEASE_DONE, why);
                return;
        }
        job_act(j, l);
}

static void on_call_done(struct engine_call *c, struct engine_result *res, void *userdata) {
        struct lease_job *j = userdata;
        struct lease *l = lease_keeper_by_serial(j->keeper, j->serial);

        if (!l) {
                job_free(j);
                return;
        }
        if (res->end == ENGINE_ANSWERED)
                on_answer(j, l, &res->answer);
        else
                pause_and_retry(j, l, res->message);
}

static int job_new(struct lease_keeper *k, const struct lease *l, struct lease_job **ret) {
        struct lease_job *j = calloc(1, sizeof *j);

        if (!j)
                return -ENOMEM;
        j->keeper = k;
        j->serial = l->serial;
        j->pause_sec = PAUSE_FIRST_SEC;
        snprintf(j->log_id, sizeof j->log_id, "lease-%" PRIu64, l->serial);
        j->headers = engine_own_headers("lease", true);
        if (!j->headers) {
                free(j);
                return -ENOMEM;
        }
        LIST_PREPEND(k->jobs, j);
        *ret = j;
        return 0;
}

static void log_acting(const struct lease *l, int64_t now) {
        const struct log_field f[] = { { "MESSAGE_ID", MESSAGE_ID_LEASE_ACTING } };
        char what[256], when[LEASE_TIME_LEN], late[160] = "";

        lease_describe(l, what, sizeof what);
        lease_time_format(l->expires_at, when);
        /* A deadline long past: denvrd was stopped, or the host down or asleep. */
        if (now - l->expires_at > 1)
                snprintf(late, sizeof late, ", %llds late (denvrd was not running, or the host was down or "
                         "asleep, at the deadline)", (long long) (now - l->expires_at));
        log_fields(LOG_NOTICE, f, ELEMENTSOF(f), "lease on %s ended at %s%s: %s", what, when, late,
                   l->state == LEASE_ACTING ? "carrying it out (again, after a restart)" :
                   l->action == LEASE_STOP ? "stopping it" : "destroying it");
}

void lease_act_start(struct lease_keeper *k, struct lease *l, int64_t now) {
        struct lease_job *j;

        if (job_find(k, l->serial))
                return;
        log_acting(l, now);
        if (job_new(k, l, &j) < 0) {
                log_error("lease %s: out of memory; tried again at the next change", l->id);
                return;
        }
        if (l->state != LEASE_ACTING) {
                l->state = LEASE_ACTING;
                (void) lease_keeper_save(k);
        }
        job_check(j, l);
}
