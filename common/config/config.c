/* SPDX-License-Identifier: MIT */
/*
 * config_load(): the order of the steps (file, credentials, defaults,
 * command line, cross-checks), the defaults themselves, and the small
 * public helpers on a loaded configuration.  How denvr.toml is read is in
 * config_reader.c; what each key means in config_keys.c.
 */
#define LOG_MODULE "config"
#include "common/config/config-internal.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/base/enum_names.h"
#include "common/base/log.h"
#include "common/config/toml_value.h"

#define DEFAULT_API "v1"
#define DEFAULT_CLUSTER "Msc1"
#define DEFAULT_RPOOL "on-demand"
#define DEFAULT_RETRIES 3
#define DEFAULT_SOCKET_MODE 0600
#define DEFAULT_REQUEST_TIMEOUT 60
#define DEFAULT_MAX_BODY_BYTES (1024 * 1024)
#define DEFAULT_MAX_UPSTREAM 64
#define DEFAULT_WAIT_POLL_MAX 10
#define DEFAULT_COST_INTERVAL 60
/*
 * Fair shares, sized so that a workstation never meets them: a browser opens
 * 6 connections per host and an SDK's pool 10, a script rarely has more than
 * a few dozen requests or waits in flight; the body bytes are 64 bodies of
 * the default max_body_bytes.  Yet one caller can no longer take all 8192
 * connections of a listener, all upstream connections or the memory.
 */
#define DEFAULT_MAX_CONNECTIONS_PER_CALLER 256
#define DEFAULT_MAX_REQUESTS_PER_CALLER 128
#define DEFAULT_MAX_WAITS_PER_CALLER 32
#define DEFAULT_MAX_BUFFERED_BYTES_PER_CALLER (64 * 1024 * 1024)
#define DEFAULT_UPSTREAM_SHARE_PERCENT 50
/* nginx's client_header_timeout is 60 s; loopback clients send their headers in one write. */
#define DEFAULT_HEADER_TIMEOUT 10
/* Longer than the SDKs' and curl's pools keep a connection between two calls of a script. */
#define DEFAULT_IDLE_TIMEOUT 60
/* Covers the SDKs' own retries after denvrd gave up (go-retryablehttp: 2 + 4 + 8 s). */
#define DEFAULT_FAILURE_MEMORY 20

/* Frees a load's state, wiping the file buffer first: it may hold secrets. */
static void loader_done(struct loader *l) {
        if (l->buf) {
                explicit_bzero(l->buf, l->len);
                free(l->buf);
        }
        json_decref(l->seen_tables);
        json_decref(l->seen_keys);
        free(l->table_id);
        secret_free(l->file_apikey);
        secret_free(l->file_password);
}

/* ------------------------------------------------------------------ */
/* Defaults, command-line overrides, cross-checks */

static void default_string(struct loader *l, char **field, const char *v) {
        if (!*field && !(*field = strdup(v)))
                l->oom = true;
}

static void default_listen(struct loader *l) {
        struct denvr_config *c = l->c;
        char def[32];

        if (l->key_line[KEY_LISTEN])
                return;
        (void) snprintf(def, sizeof def, "127.0.0.1:%d", DENVRD_DEFAULT_PORT);
        strv_free(c->listen);
        c->listen = strv_new_empty();
        if (!c->listen || strv_extend(&c->listen, def) < 0)
                l->oom = true;
}

/* $XDG_RUNTIME_DIR/denvrd.sock unless 'socket' is set; socket = "" means none. */
static void default_socket(struct loader *l) {
        struct denvr_config *c = l->c;

        if (!l->key_line[KEY_SOCKET]) {
                const char *xdg = getenv_nonempty("XDG_RUNTIME_DIR");

                if (xdg && xdg[0] == '/' && asprintf(&c->socket, "%s/denvrd.sock", xdg) < 0) {
                        c->socket = NULL;
                        l->oom = true;
                }
        } else if (c->socket && !*c->socket) {
                free(c->socket);
                c->socket = NULL;
        }
}

static void apply_fair_defaults(struct loader *l) {
        struct denvr_config *c = l->c;

        if (!l->key_line[KEY_MAX_CONNECTIONS_PER_CALLER])
                c->max_connections_per_caller = DEFAULT_MAX_CONNECTIONS_PER_CALLER;
        if (!l->key_line[KEY_MAX_REQUESTS_PER_CALLER])
                c->max_requests_per_caller = DEFAULT_MAX_REQUESTS_PER_CALLER;
        if (!l->key_line[KEY_MAX_WAITS_PER_CALLER])
                c->max_waits_per_caller = DEFAULT_MAX_WAITS_PER_CALLER;
        /* Never below one largest body: a configuration that raised max_body_bytes stays valid. */
        if (!l->key_line[KEY_MAX_BUFFERED_BYTES_PER_CALLER])
                c->max_buffered_bytes_per_caller = c->max_body_bytes > DEFAULT_MAX_BUFFERED_BYTES_PER_CALLER ?
                        c->max_body_bytes : DEFAULT_MAX_BUFFERED_BYTES_PER_CALLER;
        if (!l->key_line[KEY_UPSTREAM_SHARE_PERCENT])
                c->upstream_share_percent = DEFAULT_UPSTREAM_SHARE_PERCENT;
        if (!l->key_line[KEY_HEADER_TIMEOUT])
                c->header_timeout_sec = DEFAULT_HEADER_TIMEOUT;
        if (!l->key_line[KEY_IDLE_TIMEOUT])
                c->idle_timeout_sec = DEFAULT_IDLE_TIMEOUT;
}

static void apply_defaults(struct loader *l) {
        struct denvr_config *c = l->c;

        default_string(l, &c->server, DENVRD_DEFAULT_SERVER);
        default_string(l, &c->api, DEFAULT_API);
        default_string(l, &c->cluster, DEFAULT_CLUSTER);
        default_string(l, &c->rpool, DEFAULT_RPOOL);
        if (!l->key_line[KEY_RETRIES])
                c->retries = DEFAULT_RETRIES;

        default_listen(l);
        default_socket(l);
        if (!l->key_line[KEY_SOCKET_MODE])
                c->socket_mode = DEFAULT_SOCKET_MODE;
        if (!l->key_line[KEY_LOG_LEVEL])
                c->log_level = LOG_INFO;
        if (!l->key_line[KEY_REQUEST_TIMEOUT])
                c->request_timeout_sec = DEFAULT_REQUEST_TIMEOUT;
        if (!l->key_line[KEY_MAX_BODY_BYTES])
                c->max_body_bytes = DEFAULT_MAX_BODY_BYTES;
        if (!l->key_line[KEY_MAX_UPSTREAM_CONNECTIONS])
                c->max_upstream_connections = DEFAULT_MAX_UPSTREAM;
        if (!l->key_line[KEY_WAIT_POLL_MAX])
                c->wait_poll_max_sec = DEFAULT_WAIT_POLL_MAX;
        if (!l->key_line[KEY_COST_INTERVAL])
                c->cost_interval_sec = DEFAULT_COST_INTERVAL;
        apply_fair_defaults(l);
        if (!l->key_line[KEY_FAILURE_MEMORY])
                c->failure_memory_sec = DEFAULT_FAILURE_MEMORY;
        /* TCP defaults to full too: curl and the SDKs are its users, and the host/origin checks guard it. */
        if (!l->key_line[KEY_TCP_ACCESS])
                c->tcp_access = ACCESS_FULL;
        if (!l->key_line[KEY_SOCKET_ACCESS])
                c->socket_access = ACCESS_FULL;
        if (!c->allowed_hosts && !(c->allowed_hosts = strv_new_empty()))
                l->oom = true;
        if (!c->cors_origins && !(c->cors_origins = strv_new_empty()))
                l->oom = true;
}

/* --listen replaces every 'listen' address of the file. */
static int override_listen(struct loader *l, char **listen) {
        _cleanup_strv_free_ char **list = strv_new_empty();

        if (!list) {
                l->oom = true;
                return -ENOMEM;
        }
        for (char **a = listen; *a; a++) {
                const char *reason = NULL;
                int r = config_parse_listen(*a, NULL, NULL, NULL, &reason);

                if (r == -ENOMEM)
                        l->oom = true;
                else if (r < 0)
                        config_error_plain(l, "--listen %s: %s", *a, reason);
                else if (strv_extend(&list, *a) < 0)
                        l->oom = true;
        }
        strv_free(l->c->listen);
        l->c->listen = TAKE_PTR(list);
        return 0;
}

static void apply_overrides(struct loader *l, const struct config_overrides *o) {
        struct denvr_config *c = l->c;

        if (o->log_level) {
                int p = log_level_from_string(o->log_level);
                if (p < 0)
                        config_error_plain(l, "--log-level: unknown level \"%s\" (expected error, warning, notice, info or debug)",
                                           o->log_level);
                else
                        c->log_level = p;
        }

        if (o->listen && o->listen[0] && override_listen(l, o->listen) < 0)
                return;

        if (o->socket) {
                free(c->socket);
                c->socket = NULL;
                if (*o->socket && !(c->socket = config_path_make_absolute_cwd(o->socket)))
                        l->oom = true;
        }
}

/* Serving other machines must be asked for explicitly. */
static void check_listen_loopback(struct loader *l, const struct config_overrides *o) {
        struct denvr_config *c = l->c;
        bool listen_from_flag = o->listen && o->listen[0];

        for (char **a = c->listen; a && *a; a++) {
                bool loopback = false;

                if (config_parse_listen(*a, NULL, NULL, &loopback, NULL) < 0 || loopback || c->allow_remote)
                        continue;
                if (listen_from_flag)
                        config_error_plain(l, "--listen %s: not a loopback address; set allow_remote = true in [daemon] "
                                           "to serve other machines", *a);
                else
                        config_error_at(l, l->key_line[KEY_LISTEN] ? l->key_line[KEY_LISTEN] : l->key_line[KEY_ALLOW_REMOTE],
                                        "listen address %s is not a loopback address; set allow_remote = true in [daemon] "
                                        "to serve other machines", *a);
        }
}

static void check_socket_path(struct loader *l, const struct config_overrides *o) {
        const char *socket = l->c->socket;
        size_t max = sizeof(((struct sockaddr_un *) NULL)->sun_path);
        bool from_file = !o->socket && l->key_line[KEY_SOCKET];

        if (!socket)
                return;
        if (strlen(socket) < max && toml_utf8_valid(socket, strlen(socket)) && !has_control(socket))
                return;
        if (from_file)
                config_error_at(l, l->key_line[KEY_SOCKET], "'socket' path is too long for a unix socket "
                                "(at most %zu bytes) or not UTF-8", max - 1);
        else
                config_error_plain(l, "socket path %s is too long for a unix socket or not UTF-8", socket);
}

static void validate(struct loader *l, const struct config_overrides *o) {
        struct denvr_config *c = l->c;

        check_listen_loopback(l, o);
        check_socket_path(l, o);
        config_rights_check(l);
        if (c->max_buffered_bytes_per_caller < c->max_body_bytes)
                config_error_at(l, l->key_line[KEY_MAX_BUFFERED_BYTES_PER_CALLER],
                                "'max_buffered_bytes_per_caller' (%zu) must be at least max_body_bytes (%zu): "
                                "a body of max_body_bytes would always be refused", c->max_buffered_bytes_per_caller,
                                c->max_body_bytes);
        if (c->ca_file && access(c->ca_file, R_OK) < 0)
                config_error_at(l, l->key_line[KEY_CA_FILE], "'ca_file' %s: %s", c->ca_file, strerror(errno));
}

/* The steps of a load, in order; each reports its own errors through l. */
static int load_steps(struct loader *l, const struct config_overrides *o) {
        _cleanup_free_ char *path = NULL;
        bool explicit;
        int r;

        r = config_locate(o, &path, &explicit);
        if (r < 0)
                return r;
        if (path) {
                l->path = path;
                r = config_read_file(l, explicit);
                if (r > 0)
                        l->c->path = TAKE_PTR(path);
                l->path = l->c->path;
        }

        config_resolve_credentials(l, o);
        apply_defaults(l);
        apply_overrides(l, o);
        validate(l, o);
        return 0;
}

int config_load(const struct config_overrides *o, struct denvr_config **ret, struct config_diag *diag) {
        static const struct config_overrides no_overrides = { 0 };
        _cleanup_(loader_done) struct loader l = { 0 };
        _cleanup_config_free_ struct denvr_config *c = NULL;
        struct config_diag local = { 0 }, *d = diag ? diag : &local;
        size_t errors_before = d->n_errors;
        int r;

        assert(ret);
        if (!o)
                o = &no_overrides;

        c = calloc(1, sizeof *c);
        l.seen_tables = json_object();
        l.seen_keys = json_object();
        if (!c || !l.seen_tables || !l.seen_keys)
                return -ENOMEM;
        l.c = c;
        l.diag = d;

        r = load_steps(&l, o);
        if (r < 0)
                return r;

        if (l.oom)
                r = -ENOMEM;
        else if (d->n_errors > errors_before)
                r = -EINVAL;
        else {
                *ret = TAKE_PTR(c);
                r = 0;
        }
        if (!diag)
                config_diag_done(&local);
        return r;
}

/* ------------------------------------------------------------------ */
/* Using a loaded configuration */

const char *config_vpcid(const struct denvr_config *c) {
        assert(c);
        return c->vpcid ? c->vpcid : c->tenant;
}

struct fillin_defaults config_fillin_defaults(const struct denvr_config *c) {
        return (struct fillin_defaults) {
                .cluster = c->cluster,
                .vpcid = config_vpcid(c),
                .rpool = c->rpool,
        };
}

static const char *const access_level_names[] = {
        [ACCESS_OFF] = "off",
        [ACCESS_READ_ONLY] = "read-only",
        [ACCESS_FULL] = "full",
};

const char *access_level_to_string(enum access_level a) {
        return ENUM_NAME(access_level_names, a);
}

int access_level_from_string(const char *s) {
        return ENUM_FROM_NAME(access_level_names, s);
}

const char *secret_source_to_string(enum secret_source s) {
        switch (s) {
        case SECRET_SOURCE_NONE:
                return "none";
        case SECRET_SOURCE_CONFIG:
                return "config";
        case SECRET_SOURCE_ENV:
                return "env";
        case SECRET_SOURCE_FILE:
                return "file";
        case SECRET_SOURCE_CREDENTIAL:
                return "credential";
        }
        return "unknown";
}

void config_free(struct denvr_config *c) {
        if (!c)
                return;
        free(c->path);
        free(c->server);
        free(c->api);
        free(c->cluster);
        free(c->tenant);
        free(c->vpcid);
        free(c->rpool);
        free(c->username);
        secret_free(c->apikey);
        secret_free(c->password);
        free(c->secret_path);
        free(c->apikey_file);
        free(c->password_file);
        strv_free(c->listen);
        free(c->socket);
        free(c->ca_file);
        strv_free(c->allowed_hosts);
        strv_free(c->cors_origins);
        free(c->allowed_uids);
        free(c->allowed_groups);
        for (size_t i = 0; i < c->n_cache; i++)
                free(c->cache[i].path);
        free(c->cache);
        config_rights_free(c);
        config_leases_free(c);
        free(c);
}
