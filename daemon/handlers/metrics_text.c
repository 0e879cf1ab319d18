/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "metrics"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/log.h"
#include "common/client/auth.h"
#include "common/client/upstream.h"
#include "daemon/core/daemon.h"
#include "daemon/handlers/cost_api.h"
#include "daemon/handlers/local_api.h"
#include "daemon/handlers/wait.h"
#include "daemon/http/fairness.h"
#include "daemon/http/request.h"
#include "daemon/jobs/cost.h"
#include "daemon/jobs/lease_keeper.h"
#include "denvrd-version.h"

static const char *const status_classes[6] = { "none", "1xx", "2xx", "3xx", "4xx", "5xx" };

static void header(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A metric without labels: its HELP, TYPE and value. */
static void metric(FILE *f, const char *name, const char *type, const char *help, int64_t value) {
        header(f, name, type, help);
        fprintf(f, "%s %" PRId64 "\n", name, value);
}

/* A counter of successes and failures. */
static void by_result(FILE *f, const char *name, const char *help, uint64_t ok, uint64_t failed) {
        header(f, name, "counter", help);
        fprintf(f, "%s{result=\"ok\"} %" PRIu64 "\n", name, ok);
        fprintf(f, "%s{result=\"failed\"} %" PRIu64 "\n", name, failed);
}

static void write_requests(FILE *f, const struct metrics *m) {
        header(f, "denvrd_requests_total", "counter", "Requests answered, by method and status class.");
        for (unsigned i = 0; i < _METHOD_MAX; i++)
                for (unsigned c = 0; c < 6; c++)
                        if (m->requests[i][c] || (i == METHOD_GET && c == 2))
                                fprintf(f, "denvrd_requests_total{method=\"%s\",code=\"%s\"} %" PRIu64 "\n",
                                        metrics_method_to_string(i), status_classes[c], m->requests[i][c]);
}

static void write_latency(FILE *f, const struct metrics *m) {
        uint64_t cum = 0;

        header(f, "denvrd_upstream_request_duration_seconds", "histogram",
               "Duration of upstream requests that got an answer.");
        for (unsigned i = 0; i < METRICS_LATENCY_BUCKETS; i++) {
                cum += m->latency_buckets[i];
                fprintf(f, "denvrd_upstream_request_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                        metrics_latency_bounds[i], cum);
        }
        fprintf(f, "denvrd_upstream_request_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
                m->latency_count);
        fprintf(f, "denvrd_upstream_request_duration_seconds_sum %.6f\n", m->latency_sum_sec);
        fprintf(f, "denvrd_upstream_request_duration_seconds_count %" PRIu64 "\n", m->latency_count);
}

static void write_waits(FILE *f, const struct metrics *m) {
        metric(f, "denvrd_waits_in_progress", "gauge",
               "GET /_denvrd/wait/ requests waiting now.", (int64_t) m->waits_in_progress);
        metric(f, "denvrd_wait_polls_total", "counter",
               "Upstream polls sent for waits (one per loop, however many wait on it).",
               (int64_t) m->wait_polls);
        header(f, "denvrd_waits_ended_total", "counter", "Waits ended, by how.");
        for (unsigned i = 0; i < _WAIT_END_MAX; i++)
                fprintf(f, "denvrd_waits_ended_total{reason=\"%s\"} %" PRIu64 "\n", wait_end_to_string(i),
                        m->waits_ended[i]);
}

static void write_refusals(FILE *f, const struct metrics *m) {
        metric(f, "denvrd_requests_denied_total", "counter",
               "Requests refused by the local access rules.", (int64_t) m->denied);
        header(f, "denvrd_requests_refused_total", "counter",
               "Requests refused before anything was forwarded, by what was wrong with them.");
        fprintf(f, "denvrd_requests_refused_total{reason=\"parameters\"} %" PRIu64 "\n", m->refused_reading);
        fprintf(f, "denvrd_requests_refused_total{reason=\"framing\"} %" PRIu64 "\n", m->refused_framing);
        metric(f, "denvrd_request_headers_dropped_total", "counter",
               "Client request headers not forwarded (not on denvrd's list of forwarded headers).",
               (int64_t) m->headers_dropped);
}

static void write_auth(FILE *f, struct daemon *d) {
        const struct metrics *m = &d->metrics;
        struct auth_state s;

        auth_get_state(d->auth, &s);
        by_result(f, "denvrd_logins_total", "Upstream logins, by result.", m->auth_events[AUTH_EVENT_LOGIN_OK],
                  m->auth_events[AUTH_EVENT_LOGIN_FAILED]);
        by_result(f, "denvrd_token_refreshes_total", "Access token refreshes, by result.",
                  m->auth_events[AUTH_EVENT_REFRESH_OK], m->auth_events[AUTH_EVENT_REFRESH_FAILED]);
        metric(f, "denvrd_token_expiry_seconds", "gauge",
               "Seconds until the access token expires (-1: none held or not applicable).",
               (int64_t) s.access_expires_in);
        metric(f, "denvrd_logged_in", "gauge",
               "1 while a usable token or API key is held.", (int64_t) (s.logged_in ? 1 : 0));
}

/* A label value as the text format wants it: backslash, double quote and newline escaped. */
static void label(FILE *f, const char *name, const char *value, const char *sep) {
        fprintf(f, "%s=\"", name);
        for (const char *p = value ? value : ""; *p; p++)
                if (*p == '\\' || *p == '"')
                        fprintf(f, "\\%c", *p);
                else if (*p == '\n')
                        fputs("\\n", f);
                else
                        fputc(*p, f);
        fprintf(f, "\"%s", sep);
}

static const char *machine_field(json_t *m, const char *name) {
        return json_string_value(json_object_get(m, name));
}

static bool same_kind(json_t *a, json_t *b) {
        static const char *const fields[] = { "cluster", "configuration", "status" };

        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                const char *x = machine_field(a, fields[i]), *y = machine_field(b, fields[i]);

                if (!x != !y || (x && strcmp(x, y) != 0))
                        return false;
        }
        return true;
}

/* denvrd_servers: machines by cluster, configuration and status, each kind once. */
static void write_servers(FILE *f, json_t *machines) {
        size_t n = json_array_size(machines);

        header(f, "denvrd_servers", "gauge",
               "Machines not offline (virtual servers and applications), by cluster, configuration and status.");
        for (size_t i = 0; i < n; i++) {
                json_t *m = json_array_get(machines, i);
                unsigned count = 0;
                bool seen = false;

                for (size_t j = 0; j < i && !seen; j++)
                        seen = same_kind(json_array_get(machines, j), m);
                if (seen)
                        continue;
                for (size_t j = i; j < n; j++)
                        count += same_kind(json_array_get(machines, j), m);
                fputs("denvrd_servers{", f);
                label(f, "cluster", machine_field(m, "cluster"), ",");
                label(f, "configuration", machine_field(m, "configuration"), ",");
                label(f, "status", machine_field(m, "status"), "");
                fprintf(f, "} %u\n", count);
        }
}

/* How many leases are in each state, how many end within the warning time, what was done. */
static void write_lease_states(FILE *f, struct lease_keeper *k) {
        struct lease_keeper_stats st = { 0 };
        size_t by_state[_LEASE_STATE_MAX] = { 0 }, soon = 0;
        int64_t now = k ? lease_keeper_now(k) : 0;

        for (size_t i = 0; k && i < lease_keeper_count(k); i++) {
                const struct lease *l = lease_keeper_at(k, i);

                by_state[l->state]++;
                if (l->state == LEASE_PENDING && l->expires_at - now <= LEASE_WARNING_DEFAULT_SEC)
                        soon++;
        }
        if (k)
                lease_keeper_stats(k, &st);
        header(f, "denvrd_leases", "gauge", "Leases held, by state.");
        for (unsigned s = 0; s < _LEASE_STATE_MAX; s++)
                fprintf(f, "denvrd_leases{state=\"%s\"} %zu\n", lease_state_to_string(s), by_state[s]);
        metric(f, "denvrd_leases_ending_soon", "gauge",
               "Pending leases whose action is due within the warning time (10 minutes).", (int64_t) soon);
        metric(f, "denvrd_lease_warnings_total", "counter",
               "Warnings logged ahead of a lease's deadline.", (int64_t) st.warnings);
        by_result(f, "denvrd_lease_actions_total", "Leases carried out (ok) or given up on (failed).",
                  st.acted_ok, st.acted_failed);
}

static void write_leases(FILE *f, struct daemon *d) {
        struct lease_keeper *k = d->leases;
        size_t n = k ? lease_keeper_count(k) : 0;

        header(f, "denvrd_lease_seconds_remaining", "gauge",
               "Seconds until a lease's action is due (negative: overdue), per lease not yet carried out.");
        for (size_t i = 0; i < n; i++) {
                const struct lease *l = lease_keeper_at(k, i);

                if (!l || l->state == LEASE_DONE)
                        continue;
                fputs("denvrd_lease_seconds_remaining{", f);
                label(f, "service", lease_service_to_string(l->service), ",");
                label(f, "cluster", l->cluster, ",");
                label(f, "id", l->id, ",");
                label(f, "action", lease_action_to_string(l->action), "");
                fprintf(f, "} %" PRId64 "\n", l->expires_at - lease_keeper_now(k));
        }
        write_lease_states(f, k);
}

/* The cost series; rep NULL: the figures are not known (not asked, or the reads failed). */
static void write_cost(FILE *f, struct daemon *d, const struct cost_report *rep) {
        metric(f, "denvrd_cost_up", "gauge",
               "1 when the cost figures below are current, 0 when they could not be read.", rep ? 1 : 0);
        if (rep) {
                write_servers(f, rep->machines);
                header(f, "denvrd_cost_per_hour", "gauge",
                       "What the machines not offline cost per hour, in the API's currency (unpriced ones left out).");
                fprintf(f, "denvrd_cost_per_hour %.6f\n", rep->total_per_hour);
        }
        write_leases(f, d);
}

static void write_all(FILE *f, struct daemon *d, const struct cost_report *rep) {
        const struct metrics *m = &d->metrics;

        header(f, "denvrd_build_info", "gauge", "Always 1; the version is a label.");
        fprintf(f, "denvrd_build_info{version=\"%s\"} 1\n", DENVRD_VERSION);
        write_requests(f, m);
        metric(f, "denvrd_requests_in_flight", "gauge",
               "Requests being handled now.", (int64_t) d->n_requests);
        metric(f, "denvrd_upstream_requests_total", "counter",
               "Requests sent upstream, retries included.", (int64_t) m->upstream_requests);
        metric(f, "denvrd_upstream_retries_total", "counter",
               "Upstream requests retried.", (int64_t) m->retries);
        metric(f, "denvrd_upstream_failures_replayed_total", "counter",
               "Requests answered from a failure denvrd had just given up on, instead of another round upstream.",
               (int64_t) m->failures_replayed);
        metric(f, "denvrd_upstream_errors_total", "counter",
               "Requests that failed for want of an upstream answer.", (int64_t) m->upstream_errors);
        write_latency(f, m);
        metric(f, "denvrd_upstream_connections_open", "gauge",
               "Connections to upstream held open now.", (int64_t) (upstream_connections_open(d->upstream)));
        metric(f, "denvrd_upstream_connections_opened_total", "counter",
               "Connections to upstream opened.", (int64_t) (upstream_connections_opened(d->upstream)));
        write_refusals(f, m);
        write_waits(f, m);
        write_auth(f, d);
        fairness_write_metrics(f, d->fairness);
        write_cost(f, d, rep);
}

static void reply_metrics(struct request *r, const struct cost_report *rep) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f;

        f = open_memstream(&buf, &len);
        if (!f) {
                request_reply_error(r, 503, NULL, "out of memory");
                return;
        }
        write_all(f, r->daemon, rep);
        if (fclose(f) != 0) {
                free(buf);
                request_reply_error(r, 503, NULL, "out of memory");
                return;
        }
        request_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
}

/* --- waiting for the cost figures ------------------------------------------------------ */

/* A scrape waits this long for the cost at most: a scraper's own timeout (Prometheus: 10 s by
 * default) must not lose every other metric to a slow upstream. */
#define METRICS_COST_WAIT_USEC (5 * USEC_PER_SEC)

struct metrics_waiter {
        struct request *r;
        struct cost_ask *ask;
        sd_event_source *timer;
};

static void waiter_free(struct metrics_waiter *w) {
        sd_event_source_disable_unref(w->timer);
        free(w);
}

static void on_cost(const struct cost_report *rep, const struct cost_failure *failure, void *userdata) {
        struct metrics_waiter *w = userdata;
        struct request *r = w->r;

        request_clear_handler(r);
        waiter_free(w);
        if (failure)
                log_debug("%s: metrics without the cost: %s", r->id, failure->message);
        reply_metrics(r, rep);
}

static void metrics_end(void *data, enum request_end how) {
        struct metrics_waiter *w = data;

        cost_ask_cancel(w->ask);
        waiter_free(w);
}

/* Too slow: answered without the cost, whose reads go on for the next scrape. */
static int on_cost_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct metrics_waiter *w = userdata;
        struct request *r = w->r;

        log_debug("%s: metrics without the cost: its reads take longer than %u s", r->id,
                  (unsigned) (METRICS_COST_WAIT_USEC / USEC_PER_SEC));
        cost_ask_leave(w->ask);
        request_clear_handler(r);
        waiter_free(w);
        reply_metrics(r, NULL);
        return 0;
}

static const struct request_handler metrics_handler = {
        .name = "metrics",
        .end = metrics_end,
};

/* The cost is read only for a denvrd that can log in, and a caller that may see it. */
static bool cost_wanted(struct request *r) {
        struct auth_state s;
        char why[800];

        auth_get_state(r->daemon->auth, &s);
        if (!s.logged_in && r->daemon->config->mode == CREDENTIAL_NONE)
                return false;
        return cost_api_allowed(r, why, sizeof why);
}

void local_api_metrics(struct request *r) {
        struct metrics_waiter *w;

        if (!cost_wanted(r) || !(w = calloc(1, sizeof *w))) {
                reply_metrics(r, NULL);
                return;
        }
        w->r = r;
        if (sd_event_add_time_relative(r->daemon->event, &w->timer, CLOCK_MONOTONIC, METRICS_COST_WAIT_USEC,
                                       100000, on_cost_timeout, w) < 0) {
                waiter_free(w);
                reply_metrics(r, NULL);
                return;
        }
        request_set_handler(r, &metrics_handler, w);
        if (cost_get(r->daemon, on_cost, w, &w->ask) < 0) {
                request_clear_handler(r);
                waiter_free(w);
                reply_metrics(r, NULL);
        }
        /* Else answered by on_cost() (perhaps already) or on_cost_timeout(). */
}
