/* SPDX-License-Identifier: MIT */
/*
 * The effective configuration as JSON (--check-config, GET /_denvrd/config):
 * what config_load() settled on after defaults and overrides, with secrets
 * replaced by "***".
 */
#define LOG_MODULE "config"
#include "common/config/config-internal.h"

#include <assert.h>
#include <stdio.h>

#include "common/base/log.h"

static const char *credential_mode_to_string(enum credential_mode m) {
        switch (m) {
        case CREDENTIAL_NONE:
                return "none";
        case CREDENTIAL_APIKEY:
                return "apikey";
        case CREDENTIAL_PASSWORD:
                return "password";
        }
        return "unknown";
}

/* JSON building: every setter counts failures instead of checking each call. */
struct jb {
        bool failed;
};

static void jset(struct jb *b, json_t *o, const char *k, json_t *v) {
        if (!o || !v || json_object_set_new(o, k, v) < 0)
                b->failed = true;
}

static json_t *jstr(const char *s) {
        return s ? json_string(s) : json_null();
}

static json_t *jstrv(char **l) {
        json_t *a = json_array();

        for (char **i = l; a && i && *i; i++)
                if (json_array_append_new(a, json_string(*i)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

static json_t *jids(const uint32_t *ids, size_t n) {
        json_t *a = json_array();

        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_integer(ids[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

static void defaults_to_json(struct jb *b, json_t *o, const struct denvr_config *c) {
        jset(b, o, "server", jstr(c->server));
        jset(b, o, "api", jstr(c->api));
        jset(b, o, "cluster", jstr(c->cluster));
        jset(b, o, "tenant", jstr(c->tenant));
        jset(b, o, "vpcid", jstr(config_vpcid(c)));
        jset(b, o, "rpool", jstr(c->rpool));
        jset(b, o, "retries", json_integer(c->retries));
}

/* Secrets never appear: only whether the one in use exists. */
static void credentials_to_json(struct jb *b, json_t *o, const struct denvr_config *c) {
        jset(b, o, "mode", json_string(credential_mode_to_string(c->mode)));
        jset(b, o, "username", jstr(c->username));
        jset(b, o, "apikey", c->mode == CREDENTIAL_APIKEY ? json_string("***") : json_null());
        jset(b, o, "password", c->mode == CREDENTIAL_PASSWORD ? json_string("***") : json_null());
        jset(b, o, "apikey_file", jstr(c->apikey_file));
        jset(b, o, "password_file", jstr(c->password_file));
        jset(b, o, "secret_source",
             c->secret_source == SECRET_SOURCE_NONE ? json_null() : json_string(secret_source_to_string(c->secret_source)));
        jset(b, o, "secret_path", jstr(c->secret_path));
}

static void daemon_to_json(struct jb *b, json_t *o, const struct denvr_config *c) {
        char mode[8];

        (void) snprintf(mode, sizeof mode, "%04o", (unsigned) c->socket_mode);
        jset(b, o, "listen", jstrv(c->listen));
        jset(b, o, "socket", jstr(c->socket));
        jset(b, o, "socket_mode", json_string(mode));
        jset(b, o, "ca_file", jstr(c->ca_file));
        jset(b, o, "log_level", json_string(log_level_to_string(c->log_level)));
        jset(b, o, "request_timeout", json_integer(c->request_timeout_sec));
        jset(b, o, "max_body_bytes", json_integer((json_int_t) c->max_body_bytes));
        jset(b, o, "max_upstream_connections", json_integer(c->max_upstream_connections));
        jset(b, o, "allow_remote", json_boolean(c->allow_remote));
        jset(b, o, "allowed_hosts", jstrv(c->allowed_hosts));
        jset(b, o, "cors_origins", jstrv(c->cors_origins));
        jset(b, o, "allowed_uids", jids((const uint32_t *) c->allowed_uids, c->n_allowed_uids));
        jset(b, o, "allowed_groups", jids((const uint32_t *) c->allowed_groups, c->n_allowed_groups));
        jset(b, o, "tcp_access", json_string(access_level_to_string(c->tcp_access)));
        jset(b, o, "socket_access", json_string(access_level_to_string(c->socket_access)));
        jset(b, o, "wait_poll_max_seconds", json_integer(c->wait_poll_max_sec));
        jset(b, o, "cost_interval", json_integer(c->cost_interval_sec));
        jset(b, o, "failure_memory_seconds", json_integer(c->failure_memory_sec));
        jset(b, o, "trust_local_users", json_boolean(c->trust_local_users));
        jset(b, o, "max_connections_per_caller", json_integer(c->max_connections_per_caller));
        jset(b, o, "max_requests_per_caller", json_integer(c->max_requests_per_caller));
        jset(b, o, "max_waits_per_caller", json_integer(c->max_waits_per_caller));
        jset(b, o, "max_buffered_bytes_per_caller", json_integer((json_int_t) c->max_buffered_bytes_per_caller));
        jset(b, o, "upstream_share_percent", json_integer(c->upstream_share_percent));
        jset(b, o, "header_timeout", json_integer(c->header_timeout_sec));
        jset(b, o, "idle_timeout", json_integer(c->idle_timeout_sec));
}

char *config_to_json(const struct denvr_config *c) {
        struct jb b = { 0 };
        json_t *root, *defaults, *creds, *daemon, *cache;
        char *s;

        assert(c);
        root = json_object();
        defaults = json_object();
        creds = json_object();
        daemon = json_object();
        cache = json_object();

        jset(&b, root, "config_path", jstr(c->path));
        defaults_to_json(&b, defaults, c);
        credentials_to_json(&b, creds, c);
        daemon_to_json(&b, daemon, c);
        for (size_t i = 0; i < c->n_cache; i++)
                jset(&b, cache, c->cache[i].path, json_integer(c->cache[i].ttl_sec));

        jset(&b, root, "defaults", defaults);
        jset(&b, root, "credentials", creds);
        jset(&b, root, "daemon", daemon);
        jset(&b, root, "cache", cache);
        jset(&b, root, "rights", config_rights_to_json(c));
        jset(&b, root, "tokens", config_tokens_to_json(c));
        jset(&b, root, "leases", config_leases_to_json(c));

        s = b.failed ? NULL : json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(root);
        return s;
}
