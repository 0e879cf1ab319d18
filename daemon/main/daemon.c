/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "daemon"
#include "daemon/core/daemon.h"
#include "daemon/handlers/pipeline.h"
#include "daemon/upstream/failure_memory.h"

#include <assert.h>
#include <errno.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "common/base/log.h"
#include "common/client/auth.h"
#include "common/client/upstream.h"
#include "daemon/http/fairness.h"
#include "daemon/http/linger.h"
#include "daemon/http/listener.h"
#include "daemon/jobs/cost.h"
#include "daemon/http/request.h"
#include "daemon/http/server.h"
#include "daemon/jobs/lease_keeper.h"
#include "daemon/main/reload.h"
#include "daemon/observe/notify.h"
#include "daemon/upstream/cache.h"

#define LOGOUT_BOUND_USEC (2 * 1000000ull)
/* STATUS= carries a request count and the token's remaining life: refresh it this
 * often (only sent when the text changed). */
#define STATUS_INTERVAL_USEC (2 * 1000000ull)

uint64_t daemon_now(const struct daemon *d) {
        uint64_t n = 0;

        (void) sd_event_now(d->event, CLOCK_MONOTONIC, &n);
        return n;
}

uint64_t daemon_boottime(const struct daemon *d) {
        uint64_t n = 0;

        (void) sd_event_now(d->event, CLOCK_BOOTTIME, &n);
        return n;
}

uint64_t clock_now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000;
}

static void on_auth_event(enum auth_event ev, void *userdata) {
        struct daemon *d = userdata;

        if (ev < _AUTH_EVENT_MAX)
                d->metrics.auth_events[ev]++;
        notify_status(d);
}

/* The login holder's notes, logged as its own (module "auth"), with their MESSAGE_ID. */
static void on_auth_note(int priority, const char *message_id, const char *text, void *userdata) {
        const struct log_field f[] = { { "MESSAGE_ID", message_id } };

        log_internal(priority, 0, "auth", message_id ? f : NULL, message_id ? 1 : 0, "%s", text);
}

/* Appends l to a listener array; frees l on failure. */
static int listener_list_append(struct daemon *d, struct listener ***list, size_t *n, struct listener *l) {
        struct listener **m = reallocarray(*list, *n + 1, sizeof *m);

        if (!m) {
                listener_free(l);
                return -ENOMEM;
        }
        l->daemon = d;
        m[(*n)++] = l;
        *list = m;
        return 0;
}

/* Sockets passed by systemd win over the configuration's listeners. */
static int listeners_from_systemd(struct daemon *d) {
        char **names = NULL;
        int n, r = 0;

        n = sd_listen_fds_with_names(true, &names);
        if (n <= 0) {
                strv_free(names);
                return n;
        }
        for (int i = 0; i < n; i++) {
                struct listener *l;

                r = listener_adopt(SD_LISTEN_FDS_START + i, d->config->allow_remote, &l);
                if (r < 0)
                        break;
                r = listener_list_append(d, &d->listeners, &d->n_listeners, l);
                if (r < 0)
                        break;
        }
        strv_free(names);
        if (r < 0)
                return r;
        d->socket_activated = true;
        log_info("using %d socket(s) passed by systemd; the configuration's listen and socket "
                 "settings are ignored", n);
        return n;
}

bool daemon_config_wants(const struct denvr_config *c, const struct listener *l) {
        for (char **a = c->listen; a && *a; a++)
                if (listener_is(l, LISTENER_TCP, *a, c->allow_remote, 0))
                        return true;
        return c->socket && listener_is(l, LISTENER_UNIX, c->socket, false, c->socket_mode);
}

static bool have_listener(struct listener **list, size_t n, enum listener_kind kind, const char *spec,
                          const struct denvr_config *c) {
        for (size_t i = 0; i < n; i++)
                if (listener_is(list[i], kind, spec, c->allow_remote, c->socket_mode))
                        return true;
        return false;
}

int daemon_open_listeners(struct daemon *d, const struct denvr_config *c,
                          struct listener ***list, size_t *n) {
        size_t n_before = *n;
        struct listener *l;
        int r = 0;

        for (char **a = c->listen; a && *a && r >= 0; a++) {
                if (have_listener(*list, *n, LISTENER_TCP, *a, c))
                        continue;
                r = listener_open_tcp(*a, c->allow_remote, &l);
                if (r >= 0)
                        r = listener_list_append(d, list, n, l);
        }
        if (r >= 0 && c->socket && !have_listener(*list, *n, LISTENER_UNIX, c->socket, c)) {
                r = listener_open_unix(c->socket, c->socket_mode, &l);
                if (r >= 0)
                        r = listener_list_append(d, list, n, l);
        }
        if (r < 0) {
                while (*n > n_before)
                        listener_free((*list)[--*n]);
                return r;
        }
        return 0;
}

static int daemon_listen(struct daemon *d) {
        int r;

        r = listeners_from_systemd(d);
        if (r < 0)
                return r;
        if (r == 0) {
                r = daemon_open_listeners(d, d->config, &d->listeners, &d->n_listeners);
                if (r < 0)
                        return r;
        }
        if (d->n_listeners == 0)
                return log_error_errno(EINVAL, "nothing to listen on: set [daemon] listen or socket");
        for (size_t i = 0; i < d->n_listeners; i++) {
                r = server_start(d->listeners[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct daemon *d = userdata;

        if (si->ssi_signo == SIGHUP) {
                daemon_reload(d);
                return 0;
        }
        log_info("received %s; shutting down", si->ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
        daemon_begin_shutdown(d);
        return 0;
}

static int watch_signals(struct daemon *d) {
        int r;

        r = sd_event_add_signal(d->event, NULL, SIGTERM, on_signal, d);
        if (r >= 0)
                r = sd_event_add_signal(d->event, NULL, SIGINT, on_signal, d);
        if (r >= 0)
                r = sd_event_add_signal(d->event, NULL, SIGHUP, on_signal, d);
        if (r < 0)
                return log_error_errno(r, "cannot watch signals");
        return 0;
}

/* A lease file that cannot be read stops the start: denvrd must not forget a machine it promised to stop. */
static int open_leases(struct daemon *d) {
        _cleanup_free_ char *path = NULL;
        char err[512] = "";
        int r;

        r = lease_keeper_path(&path);
        if (r < 0)
                return log_error_errno(r, "cannot tell where to keep leases (no $STATE_DIRECTORY, "
                                       "$XDG_STATE_HOME or $HOME)");
        r = lease_keeper_new(d, path, &d->leases, err, sizeof err);
        if (r < 0) {
                log_error("cannot read the leases: %s; denvrd does not start without them (move the file "
                          "away only if no machine it names must be stopped or destroyed)",
                          err[0] ? err : strerror(-r));
                return r;
        }
        return lease_keeper_start(d->leases);
}

/* An upstream answer resumed its request: the reply goes out in the same loop iteration. */
static void on_upstream_events(void *userdata) {
        server_run_woken(userdata);
}

int daemon_new(struct denvr_config *config, const struct config_overrides *o, struct daemon **ret) {
        struct upstream_options uo = {
                .ca_file = config->ca_file,
                .max_connections = config->max_upstream_connections,
        };
        struct daemon *d;
        struct timespec ts;
        int r;

        d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        d->config = config;
        d->overrides = *o;
        d->euid = geteuid();   /* fixed for our lifetime: we never change uid */
        d->sock_diag = (struct sock_diag) SOCK_DIAG_INIT;
        d->pipeline = &pipeline_denvrd;
        *ret = d;   /* partially built daemons are freed by the caller */

        /* Not sd_event_default(): that one checks its thread with a gettid()
         * system call on every iteration, twice per proxied request. */
        r = sd_event_new(&d->event);
        if (r < 0)
                return log_error_errno(r, "cannot create the event loop");
        d->started_usec = daemon_now(d);
        clock_gettime(CLOCK_REALTIME, &ts);
        d->started_realtime_usec = (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000;

        r = watch_signals(d);
        if (r < 0)
                return r;
        /* Pings the service manager from the loop that serves requests, at
         * half of WATCHDOG_USEC, so a wedged loop gets the service restarted. */
        (void) sd_event_set_watchdog(d->event, true);

        r = upstream_new(d->event, &uo, &d->upstream);
        if (r < 0)
                return log_error_errno(r, "cannot set up the upstream client");
        upstream_set_after_events(d->upstream, on_upstream_events, d);
        r = auth_new(d->event, d->upstream, d->config,
                     &(const struct auth_hooks) { .on_event = on_auth_event, .note = on_auth_note, .userdata = d },
                     &d->auth);
        if (r < 0)
                return r;
        r = cache_new(&d->cache);
        if (r < 0)
                return r;
        d->failures = failure_memory_new();
        if (!d->failures)
                return log_error_errno(ENOMEM, "cannot set up the failure memory");
        d->retry_tokens = RETRY_TOKENS_MAX;
        r = fairness_new(&d->fairness);
        if (r < 0)
                return log_error_errno(r, "out of memory");
        r = open_leases(d);
        if (r < 0)
                return r;
        return daemon_listen(d);
}

static int on_status_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct daemon *d = userdata;

        if (d->quitting)
                return 0;
        notify_status(d);
        (void) sd_event_source_set_time_relative(s, STATUS_INTERVAL_USEC);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

int daemon_run(struct daemon *d) {
        int r;

        notify_ready(d);
        /* Without a service manager listening there is nobody to keep current. */
        if (getenv("NOTIFY_SOCKET") &&
            sd_event_add_time_relative(d->event, &d->status_timer, CLOCK_MONOTONIC, STATUS_INTERVAL_USEC,
                                       500000, on_status_timer, d) < 0)
                log_warning("cannot schedule STATUS= updates; the status shown by systemd may lag");
        auth_start(d->auth);
        r = sd_event_loop(d->event);
        return r < 0 ? log_error_errno(r, "event loop failed") : 0;
}

/* Those of listener l, or all when l is NULL. */
static void abort_requests(struct daemon *d, const struct listener *l) {
        for (struct request *r = d->requests; r; r = r->next) {
                if (l && r->listener != l)
                        continue;
                request_abort(r, REQUEST_END_ABORTED);
        }
}

void daemon_drop_listener(struct daemon *d, struct listener *l) {
        abort_requests(d, l);
        server_stop(l);
        listener_free(l);
}

void daemon_stop_listeners(struct daemon *d) {
        abort_requests(d, NULL);
        for (size_t i = 0; i < d->n_listeners; i++)
                server_stop(d->listeners[i]);
}

static void on_logout_done(void *userdata) {
        struct daemon *d = userdata;

        (void) sd_event_exit(d->event, 0);
}

static int on_logout_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct daemon *d = userdata;

        log_warning("logout did not finish within 2 s; exiting anyway");
        return sd_event_exit(d->event, 0);
}

void daemon_begin_shutdown(struct daemon *d) {
        if (d->quitting)
                return;
        d->quitting = true;
        d->status_timer = sd_event_source_disable_unref(d->status_timer);
        notify_stopping(d);
        daemon_stop_listeners(d);
        linger_stop_all(d);
        /* A lease being carried out is "acting" on disk: the next start checks and finishes it. */
        lease_keeper_stop(d->leases);
        /* Log out with the current token, bounded to 2 s, then leave. */
        if (auth_logout(d->auth, on_logout_done, d) > 0 &&
            sd_event_add_time_relative(d->event, NULL, CLOCK_MONOTONIC, LOGOUT_BOUND_USEC, 10000,
                                       on_logout_timeout, d) >= 0)
                return;
        (void) sd_event_exit(d->event, 0);
}

struct daemon *daemon_free(struct daemon *d) {
        if (!d)
                return NULL;
        d->status_timer = sd_event_source_disable_unref(d->status_timer);
        if (d->upstream)
                upstream_set_after_events(d->upstream, NULL, NULL);
        daemon_stop_listeners(d);
        /* Run libmicrohttpd's shutdown of resumed connections before freeing. */
        for (size_t i = 0; i < d->n_listeners; i++)
                listener_free(d->listeners[i]);
        free(d->listeners);
        assert(d->requests == NULL);
        cost_stop(d);
        linger_stop_all(d);
        lease_keeper_free(d->leases);
        fairness_free(d->fairness);
        auth_free(d->auth);
        cache_free(d->cache);
        failure_memory_free(d->failures);
        upstream_free(d->upstream);
        sock_diag_done(&d->sock_diag);
        peer_cache_clear(&d->peer_cache);
        sd_event_unref(d->event);
        config_free(d->config);
        free(d);
        return NULL;
}
