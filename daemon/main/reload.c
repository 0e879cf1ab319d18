/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "reload"
#include "daemon/main/reload.h"

#include <stdlib.h>
#include <string.h>

#include "common/base/log.h"
#include "common/client/auth.h"
#include "common/client/upstream.h"
#include "daemon/core/daemon.h"
#include "daemon/core/peer_gate.h"
#include "daemon/http/listener.h"
#include "daemon/http/server.h"
#include "daemon/observe/notify.h"
#include "daemon/policy/access.h"
#include "daemon/upstream/cache.h"
#include "daemon/upstream/failure_memory.h"

#define MESSAGE_ID_RELOAD "b2a9e7c41f3d4c8a9e0f1a2b3c4d5e6f"

static bool strv_equal(char **a, char **b) {
        size_t n = strv_length(a);

        if (n != strv_length(b))
                return false;
        for (size_t i = 0; i < n; i++)
                if (strcmp(a[i], b[i]) != 0)
                        return false;
        return true;
}

static bool listeners_changed(const struct denvr_config *a, const struct denvr_config *b) {
        return !strv_equal(a->listen, b->listen) ||
               (a->socket == NULL) != (b->socket == NULL) ||
               (a->socket && strcmp(a->socket, b->socket) != 0) ||
               a->socket_mode != b->socket_mode || a->allow_remote != b->allow_remote;
}

/*
 * Keeps the listeners the new configuration still asks for, with their
 * connections and requests in flight; closes the others first (so that an
 * address can move from one entry to another) and opens what is new.  If
 * that fails, the previous set comes back.
 */
static int rebind(struct daemon *d, const struct denvr_config *newc) {
        size_t kept = 0;
        int r;

        for (size_t i = 0; i < d->n_listeners; i++) {
                struct listener *l = d->listeners[i];

                if (daemon_config_wants(newc, l))
                        d->listeners[kept++] = l;
                else
                        daemon_drop_listener(d, l);
        }
        d->n_listeners = kept;

        r = daemon_open_listeners(d, newc, &d->listeners, &d->n_listeners);
        if (r < 0) {
                log_error("cannot bind the new listeners; restoring the previous ones");
                if (daemon_open_listeners(d, d->config, &d->listeners, &d->n_listeners) < 0) {
                        log_error("cannot restore the previous listeners either; shutting down");
                        daemon_begin_shutdown(d);
                        return r;
                }
        }
        for (size_t i = kept; i < d->n_listeners; i++)
                if (server_start(d->listeners[i]) < 0)
                        log_error("listener %s did not start", d->listeners[i]->address);
        return r;
}

void daemon_reload(struct daemon *d) {
        struct denvr_config *newc = NULL, *old = d->config;
        struct config_diag diag = { 0 };
        struct upstream_options uo;
        const struct log_field f[] = { { "MESSAGE_ID", MESSAGE_ID_RELOAD } };
        int r;

        notify_reloading(d);
        log_fields(LOG_INFO, f, ELEMENTSOF(f), "reloading the configuration");

        r = config_load(&d->overrides, &newc, &diag);
        for (size_t i = 0; i < diag.n_warnings; i++)
                log_warning("%s", diag.warnings[i]);
        if (r < 0) {
                for (size_t i = 0; i < diag.n_errors; i++)
                        log_error("%s", diag.errors[i]);
                log_fields(LOG_ERR, f, ELEMENTSOF(f),
                           "new configuration rejected; still running with the previous one");
                config_diag_done(&diag);
                notify_ready(d);
                return;
        }
        config_diag_done(&diag);

        if (!d->socket_activated && listeners_changed(old, newc) && rebind(d, newc) < 0) {
                /* Listeners could not change: keep the old config entirely. */
                config_free(newc);
                notify_ready(d);
                return;
        }
        if (d->socket_activated && listeners_changed(old, newc))
                log_warning("listen and socket are managed by systemd sockets; change the .socket unit instead");

        uo = (struct upstream_options) {
                .ca_file = newc->ca_file,
                .max_connections = newc->max_upstream_connections,
        };
        (void) upstream_reconfigure(d->upstream, &uo);
        log_set_max_level(newc->log_level);
        peer_gate_warn_trust(newc);
        /* Cached answers belong to the credential that fetched them. */
        if (!config_same_credentials(old, newc) || strcmp(old->server, newc->server) != 0) {
                cache_clear(d->cache);
                failure_memory_clear(d->failures);
        }
        d->config = newc;
        auth_set_config(d->auth, newc);
        config_free(old);

        log_fields(LOG_INFO, f, ELEMENTSOF(f), "configuration reloaded");
        notify_ready(d);
}
