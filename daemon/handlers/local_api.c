/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "local"
#include "daemon/handlers/local_api.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/base/log.h"
#include "common/client/auth.h"
#include "common/client/upstream.h"
#include "daemon/core/daemon.h"
#include "daemon/handlers/cost_api.h"
#include "daemon/handlers/leases_api.h"
#include "daemon/handlers/local_reply.h"
#include "daemon/handlers/whoami.h"
#include "daemon/http/listener.h"
#include "daemon/http/request.h"
#include "daemon/observe/notify.h"
#include "denvrd-version.h"
#ifdef DENVRD_TEST_HOOKS
#include "daemon/handlers/test_hooks.h"
#endif
#include "daemon/handlers/wait.h"

static void handle_healthz(struct request *r) {
        local_reply_json(r, 200, json_pack("{s:s}", "status", "alive"));
}

/* Ready: a usable credential is held and the last upstream exchange worked. */
static void handle_readyz(struct request *r) {
        struct auth_state s;
        const char *why = NULL;

        auth_get_state(r->daemon->auth, &s);
        if (!s.logged_in)
                why = s.failure ? s.failure : "not logged in yet";
        else if (!s.last_contact_ok)
                why = "the last upstream request failed";
        if (why)
                local_reply_json(r, 503, json_pack("{s:s, s:s}", "status", "not ready", "reason", why));
        else
                local_reply_json(r, 200, json_pack("{s:s}", "status", "ready"));
}

static json_t *iso_time_or_null(uint64_t realtime_usec) {
        char buf[32];
        struct tm tm;
        time_t t = (time_t) (realtime_usec / 1000000u);

        if (realtime_usec == 0 || !gmtime_r(&t, &tm))
                return json_null();
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return json_string(buf);
}

static json_t *seconds_or_null(long s) {
        return s >= 0 ? json_integer(s) : json_null();
}

static const char *mode_name(enum credential_mode m) {
        return m == CREDENTIAL_APIKEY ? "apikey" : m == CREDENTIAL_PASSWORD ? "password" : "none";
}

static json_t *status_auth(struct daemon *d) {
        struct auth_state s;

        auth_get_state(d->auth, &s);
        return json_pack("{s:s, s:s?, s:b, s:o, s:o, s:o, s:s?, s:o, s:s?, s:i, s:o, s:s?}",
                         "mode", mode_name(s.mode),
                         "user", s.user,
                         "logged_in", s.logged_in,
                         "access_token_expires_in", seconds_or_null(s.access_expires_in),
                         "refresh_token_expires_in", seconds_or_null(s.refresh_expires_in),
                         "last_login", iso_time_or_null(s.last_login_realtime),
                         "last_login_result", s.last_login_result,
                         "last_refresh", iso_time_or_null(s.last_refresh_realtime),
                         "last_refresh_result", s.last_refresh_result,
                         "consecutive_failures", (json_int_t) s.consecutive_failures,
                         "next_attempt_in", seconds_or_null(s.next_attempt_in),
                         "failure", s.failure);
}

static json_t *status_listeners(struct daemon *d) {
        json_t *a = json_array();

        for (size_t i = 0; a && i < d->n_listeners; i++) {
                const struct listener *l = d->listeners[i];
                enum access_level acc = l->kind == LISTENER_UNIX ? d->config->socket_access
                                                                 : d->config->tcp_access;

                json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:b}",
                                                   "kind", l->kind == LISTENER_UNIX ? "unix" : "tcp",
                                                   "address", l->address,
                                                   "access", access_level_to_string(acc),
                                                   "socket_activated", l->activated));
        }
        return a;
}

static void handle_status(struct request *r) {
        struct daemon *d = r->daemon;
        char text[512];

        notify_status_text(d, text, sizeof text);
        local_reply_json(r, 200, json_pack(
                "{s:s, s:I, s:i, s:s, s:o, s:{s:s, s:I, s:I, s:I}, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I}}",
                "version", DENVRD_VERSION,
                "uptime_seconds", (json_int_t) ((daemon_now(d) - d->started_usec) / 1000000u),
                "pid", (int) getpid(),
                "status", text,
                "listeners", status_listeners(d),
                "upstream",
                "server", d->config->server,
                "connections_open", (json_int_t) upstream_connections_open(d->upstream),
                "connections_opened", (json_int_t) upstream_connections_opened(d->upstream),
                "transfers_running", (json_int_t) upstream_running(d->upstream),
                "auth", status_auth(d),
                "requests",
                "total", (json_int_t) d->metrics.requests_total,
                "in_flight", (json_int_t) d->n_requests,
                "upstream_requests", (json_int_t) d->metrics.upstream_requests,
                "retries", (json_int_t) d->metrics.retries,
                "upstream_errors", (json_int_t) d->metrics.upstream_errors,
                "denied", (json_int_t) d->metrics.denied));
}

void local_api_handle(struct request *r) {
        const char *name = r->canon_path + strlen("/_denvrd/");

        if (strcmp(name, "wait") == 0 || strncmp(name, "wait/", 5) == 0) {
                wait_start(r);   /* GET only, and its own errors */
                return;
        }
        if (strcmp(name, "leases") == 0 || strncmp(name, "leases/", 7) == 0) {
                leases_api_handle(r);
                return;
        }
        if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
                request_reply_error(r, 405, NULL, "%s accepts only GET and HEAD", r->path);
                (void) request_reply_header(r, "Allow", "GET, HEAD");
                return;
        }
        if (strcmp(name, "healthz") == 0)
                handle_healthz(r);
        else if (strcmp(name, "readyz") == 0)
                handle_readyz(r);
        else if (strcmp(name, "status") == 0)
                handle_status(r);
        else if (strcmp(name, "metrics") == 0)
                local_api_metrics(r);
        else if (strcmp(name, "whoami") == 0)
                whoami_handle(r);
        else if (strcmp(name, "cost") == 0)
                cost_api_handle(r);
#ifdef DENVRD_TEST_HOOKS
        else if (strcmp(name, "test/sleep") == 0)
                test_hooks_sleep(r);
        else if (strcmp(name, "test/lease-clock") == 0)
                test_hooks_lease_clock(r);
#endif
        else
                request_reply_error(r, 404, NULL, "no such denvrd endpoint: %s (try healthz, readyz, "
                                    "status, metrics, whoami, cost or leases)", r->path);
}
