/* SPDX-License-Identifier: MIT */
/*
 * The keys of denvr.toml: which keys each section has, and for each how its
 * decoded TOML value is checked and stored in struct denvr_config.  Every
 * setter reports its own errors at the current line (l->lineno).
 */
#define LOG_MODULE "config"
#include "common/config/config-internal.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stddef.h>

#include "common/base/log.h"
#include "common/config/toml_value.h"

typedef void (*apply_fn)(struct loader *l, const struct key_def *k, struct toml_value *v);

struct key_def {
        enum section section;
        const char *name;
        enum key_id id;
        apply_fn apply;
        size_t offset;          /* of the field in struct denvr_config, where generic */
        int64_t min, max;       /* for integers */
};

#define FIELD(c, k, type) ((type *) (void *) ((char *) (c) + (k)->offset))

static bool expect_type(struct loader *l, const struct key_def *k, const struct toml_value *v,
                        enum toml_type t) {
        if (v->type == t)
                return true;
        config_error_at(l, l->lineno, "'%s' must be %s %s, not %s %s", k->name,
                        t == TOML_INTEGER || t == TOML_ARRAY ? "an" : "a", toml_type_to_string(t),
                        v->type == TOML_INTEGER || v->type == TOML_ARRAY ? "an" : "a",
                        toml_type_to_string(v->type));
        return false;
}

/* Takes the decoded string out of v, refusing control characters. */
static char *take_string(struct loader *l, const struct key_def *k, struct toml_value *v) {
        if (!expect_type(l, k, v, TOML_STRING))
                return NULL;
        if (has_control(v->s.str)) {
                config_error_at(l, l->lineno, "'%s' must not contain control characters", k->name);
                return NULL;
        }
        return TAKE_PTR(v->s.str);
}

static void apply_string(struct loader *l, const struct key_def *k, struct toml_value *v) {
        char *s = take_string(l, k, v);
        if (s)
                *FIELD(l->c, k, char *) = s;
}

static void apply_nonempty_string(struct loader *l, const struct key_def *k, struct toml_value *v) {
        char *s = take_string(l, k, v);
        if (!s)
                return;
        if (!*s) {
                config_error_at(l, l->lineno, "'%s' must not be empty", k->name);
                free(s);
                return;
        }
        *FIELD(l->c, k, char *) = s;
}

static void apply_server(struct loader *l, const struct key_def *k, struct toml_value *v) {
        _cleanup_free_ char *s = take_string(l, k, v);
        const char *host;
        size_t n;

        if (!s)
                return;
        /* As the SDKs join server + "/api/...", a trailing '/' would double. */
        n = strlen(s);
        while (n > 0 && s[n - 1] == '/')
                s[--n] = 0;
        if (strncmp(s, "https://", 8) == 0)
                host = s + 8;
        else if (strncmp(s, "http://", 7) == 0)
                host = s + 7;
        else {
                config_error_at(l, l->lineno, "'server' must start with https:// or http://");
                return;
        }
        if (!*host || *host == '/' || strpbrk(s, " ?#")) {
                config_error_at(l, l->lineno, "'server' must be a URL like https://api.cloud.denvrdata.com "
                                "(a host, no spaces, query or fragment)");
                return;
        }
        l->c->server = TAKE_PTR(s);
}

static void apply_api(struct loader *l, const struct key_def *k, struct toml_value *v) {
        _cleanup_free_ char *s = take_string(l, k, v);

        if (!s)
                return;
        /* It becomes a path segment: /api/<api>/... */
        if (!*s || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(s)) {
                config_error_at(l, l->lineno, "'api' must be a version name such as \"v1\" (letters, digits, '.', '_', '-')");
                return;
        }
        l->c->api = TAKE_PTR(s);
}

static bool integer_in_range(struct loader *l, const struct key_def *k, const struct toml_value *v) {
        if (!expect_type(l, k, v, TOML_INTEGER))
                return false;
        if (v->i < k->min || v->i > k->max) {
                config_error_at(l, l->lineno, "'%s' must be between %" PRId64 " and %" PRId64 " (got %" PRId64 ")",
                                k->name, k->min, k->max, v->i);
                return false;
        }
        return true;
}

static void apply_unsigned(struct loader *l, const struct key_def *k, struct toml_value *v) {
        if (integer_in_range(l, k, v))
                *FIELD(l->c, k, unsigned) = (unsigned) v->i;
}

static void apply_size(struct loader *l, const struct key_def *k, struct toml_value *v) {
        if (integer_in_range(l, k, v))
                *FIELD(l->c, k, size_t) = (size_t) v->i;
}

static void apply_bool(struct loader *l, const struct key_def *k, struct toml_value *v) {
        if (expect_type(l, k, v, TOML_BOOLEAN))
                *FIELD(l->c, k, bool) = v->b;
}

static void apply_secret(struct loader *l, const struct key_def *k, struct toml_value *v) {
        struct secret **dst = k->id == KEY_APIKEY ? &l->file_apikey : &l->file_password;

        if (!expect_type(l, k, v, TOML_STRING))
                return;
        if (v->s.len == 0) {
                /* The SDKs test the API key for truth: "" means "use username/password". */
                if (k->id == KEY_PASSWORD)
                        config_error_at(l, l->lineno, "'password' must not be empty");
                return;
        }
        *dst = secret_new(v->s.str, v->s.len);
        if (!*dst)
                l->oom = true;
}

static void apply_path(struct loader *l, const struct key_def *k, struct toml_value *v) {
        _cleanup_free_ char *s = take_string(l, k, v);
        char *p;
        int r;

        if (!s)
                return;
        if (!*s) {
                /* socket = "" turns the default socket off; elsewhere it is a mistake. */
                if (k->id == KEY_SOCKET)
                        *FIELD(l->c, k, char *) = TAKE_PTR(s);
                else
                        config_error_at(l, l->lineno, "'%s' must not be empty", k->name);
                return;
        }
        r = config_resolve_file_path(l, s, &p);
        if (r == -ENOMEM)
                l->oom = true;
        else if (r < 0)
                config_error_at(l, l->lineno, "'%s': cannot expand '~/': no home directory", k->name);
        else
                *FIELD(l->c, k, char *) = p;
}

static void apply_listen(struct loader *l, const struct key_def *k, struct toml_value *v) {
        _cleanup_strv_free_ char **list = strv_new_empty();
        struct toml_value *items = v;
        size_t n = 1;

        if (!list) {
                l->oom = true;
                return;
        }
        if (v->type == TOML_ARRAY) {
                items = v->a.items;
                n = v->a.n;
        } else if (v->type != TOML_STRING) {
                config_error_at(l, l->lineno, "'listen' must be a \"HOST:PORT\" string or an array of them");
                return;
        }
        for (size_t i = 0; i < n; i++) {
                const char *reason = NULL;
                int r;

                if (items[i].type != TOML_STRING) {
                        config_error_at(l, l->lineno, "'listen' entries must be \"HOST:PORT\" strings");
                        return;
                }
                r = config_parse_listen(items[i].s.str, NULL, NULL, NULL, &reason);
                if (r == -ENOMEM) {
                        l->oom = true;
                        return;
                }
                if (r < 0) {
                        config_error_at(l, l->lineno, "'listen' entry \"%s\": %s", items[i].s.str, reason);
                        return;
                }
                if (strv_extend(&list, items[i].s.str) < 0) {
                        l->oom = true;
                        return;
                }
        }
        l->c->listen = TAKE_PTR(list);
}

static void apply_socket_mode(struct loader *l, const struct key_def *k, struct toml_value *v) {
        const char *s;
        unsigned long m;
        char *end;

        if (v->type != TOML_STRING) {
                config_error_at(l, l->lineno, "'socket_mode' must be an octal string such as \"0600\"");
                return;
        }
        s = v->s.str;
        errno = 0;
        m = strtoul(s, &end, 8);
        if (!*s || *end || errno || m > 0777 || strspn(s, "01234567") != strlen(s)) {
                config_error_at(l, l->lineno, "'socket_mode' must be an octal mode from \"0000\" to \"0777\"");
                return;
        }
        l->c->socket_mode = (mode_t) m;
}

static void apply_log_level(struct loader *l, const struct key_def *k, struct toml_value *v) {
        int p;

        if (!expect_type(l, k, v, TOML_STRING))
                return;
        p = log_level_from_string(v->s.str);
        if (p < 0) {
                config_error_at(l, l->lineno, "'log_level' must be one of error, warning, notice, info, debug");
                return;
        }
        l->c->log_level = p;
}

static void apply_access(struct loader *l, const struct key_def *k, struct toml_value *v) {
        int a;

        if (!expect_type(l, k, v, TOML_STRING))
                return;
        a = access_level_from_string(v->s.str);
        if (a < 0) {
                config_error_at(l, l->lineno, "'%s' must be \"full\", \"read-only\" or \"off\"", k->name);
                return;
        }
        *FIELD(l->c, k, enum access_level) = (enum access_level) a;
}

/* An array of strings, each checked by check() (NULL: fine; else why not). */
static void apply_string_array(struct loader *l, const struct key_def *k, struct toml_value *v,
                               const char *(*check)(const char *s)) {
        _cleanup_strv_free_ char **list = strv_new_empty();

        if (!list) {
                l->oom = true;
                return;
        }
        if (v->type != TOML_ARRAY) {
                config_error_at(l, l->lineno, "'%s' must be an array of strings", k->name);
                return;
        }
        for (size_t i = 0; i < v->a.n; i++) {
                const char *why;

                if (v->a.items[i].type != TOML_STRING) {
                        config_error_at(l, l->lineno, "'%s' must be an array of strings", k->name);
                        return;
                }
                why = check(v->a.items[i].s.str);
                if (why) {
                        config_error_at(l, l->lineno, "'%s' entry \"%s\" %s", k->name, v->a.items[i].s.str, why);
                        return;
                }
                if (strv_extend(&list, v->a.items[i].s.str) < 0) {
                        l->oom = true;
                        return;
                }
        }
        *FIELD(l->c, k, char **) = TAKE_PTR(list);
}

static void apply_allowed_hosts(struct loader *l, const struct key_def *k, struct toml_value *v) {
        apply_string_array(l, k, v, config_host_check);
}

static void apply_cors_origins(struct loader *l, const struct key_def *k, struct toml_value *v) {
        apply_string_array(l, k, v, config_origin_check);
}

/* A numeric id from an integer or a string of digits; (uid_t) -1 is reserved. */
static bool id_from_value(const struct toml_value *v, uint32_t *ret) {
        if (v->type == TOML_INTEGER) {
                if (v->i < 0 || v->i >= (int64_t) UINT32_MAX)
                        return false;
                *ret = (uint32_t) v->i;
                return true;
        }
        if (v->type == TOML_STRING && v->s.len > 0 && v->s.len <= 10 &&
            strspn(v->s.str, "0123456789") == v->s.len) {
                unsigned long long x = strtoull(v->s.str, NULL, 10);
                if (x >= UINT32_MAX)
                        return false;
                *ret = (uint32_t) x;
                return true;
        }
        return false;
}

/* A user or group name, resolved now (reported if there is none). */
static bool id_from_name(struct loader *l, const struct key_def *k, bool groups, const char *name,
                         uint32_t *ret) {
        if (groups) {
                struct group *g = getgrnam(name);
                if (!g) {
                        config_error_at(l, l->lineno, "'%s': no such group \"%s\"", k->name, name);
                        return false;
                }
                *ret = g->gr_gid;
        } else {
                struct passwd *pw = getpwnam(name);
                if (!pw) {
                        config_error_at(l, l->lineno, "'%s': no such user \"%s\"", k->name, name);
                        return false;
                }
                *ret = pw->pw_uid;
        }
        return true;
}

/* allowed_uids / allowed_groups: numbers or names resolved now. */
static void apply_ids(struct loader *l, const struct key_def *k, struct toml_value *v) {
        bool groups = k->id == KEY_ALLOWED_GROUPS;
        _cleanup_free_ uint32_t *ids = NULL;

        if (v->type != TOML_ARRAY) {
                config_error_at(l, l->lineno, "'%s' must be an array of %s names or numbers", k->name,
                                groups ? "group" : "user");
                return;
        }
        ids = calloc(v->a.n + 1, sizeof *ids);
        if (!ids) {
                l->oom = true;
                return;
        }
        for (size_t i = 0; i < v->a.n; i++) {
                const struct toml_value *it = &v->a.items[i];

                if (id_from_value(it, &ids[i]))
                        continue;
                if (it->type == TOML_INTEGER) {
                        config_error_at(l, l->lineno, "'%s' entry %" PRId64 " is not a valid %s", k->name, it->i,
                                        groups ? "gid" : "uid");
                        return;
                }
                if (it->type != TOML_STRING || it->s.len == 0) {
                        config_error_at(l, l->lineno, "'%s' entries must be %s names or numbers", k->name,
                                        groups ? "group" : "user");
                        return;
                }
                if (!id_from_name(l, k, groups, it->s.str, &ids[i]))
                        return;
        }
        /* uid_t and gid_t are 32-bit on Linux, so the arrays convert in place. */
        if (groups) {
                l->c->allowed_groups = (gid_t *) (void *) TAKE_PTR(ids);
                l->c->n_allowed_groups = v->a.n;
        } else {
                l->c->allowed_uids = (uid_t *) (void *) TAKE_PTR(ids);
                l->c->n_allowed_uids = v->a.n;
        }
}

_Static_assert(sizeof(uid_t) == sizeof(uint32_t) && sizeof(gid_t) == sizeof(uint32_t),
               "uid_t and gid_t are expected to be 32-bit");

#define K(sec, key, id, fn) { SECTION_##sec, key, id, fn, 0, 0, 0 }
#define KF(sec, key, id, fn, field) { SECTION_##sec, key, id, fn, offsetof(struct denvr_config, field), 0, 0 }
#define KI(sec, key, id, fn, field, lo, hi) \
        { SECTION_##sec, key, id, fn, offsetof(struct denvr_config, field), lo, hi }

static const struct key_def key_table[] = {
        K(DEFAULTS, "server", KEY_SERVER, apply_server),
        K(DEFAULTS, "api", KEY_API, apply_api),
        KF(DEFAULTS, "cluster", KEY_CLUSTER, apply_string, cluster),
        KF(DEFAULTS, "tenant", KEY_TENANT, apply_string, tenant),
        KF(DEFAULTS, "vpcid", KEY_VPCID, apply_string, vpcid),
        KF(DEFAULTS, "rpool", KEY_RPOOL, apply_string, rpool),
        KI(DEFAULTS, "retries", KEY_RETRIES, apply_unsigned, retries, 0, 10),

        K(CREDENTIALS, "apikey", KEY_APIKEY, apply_secret),
        KF(CREDENTIALS, "username", KEY_USERNAME, apply_nonempty_string, username),
        K(CREDENTIALS, "password", KEY_PASSWORD, apply_secret),
        KF(CREDENTIALS, "apikey_file", KEY_APIKEY_FILE, apply_path, apikey_file),
        KF(CREDENTIALS, "password_file", KEY_PASSWORD_FILE, apply_path, password_file),

        K(DAEMON, "listen", KEY_LISTEN, apply_listen),
        KF(DAEMON, "socket", KEY_SOCKET, apply_path, socket),
        K(DAEMON, "socket_mode", KEY_SOCKET_MODE, apply_socket_mode),
        KF(DAEMON, "ca_file", KEY_CA_FILE, apply_path, ca_file),
        K(DAEMON, "log_level", KEY_LOG_LEVEL, apply_log_level),
        KI(DAEMON, "request_timeout", KEY_REQUEST_TIMEOUT, apply_unsigned, request_timeout_sec, 1, 3600),
        KI(DAEMON, "max_body_bytes", KEY_MAX_BODY_BYTES, apply_size, max_body_bytes, 1, 1024 * 1024 * 1024),
        KI(DAEMON, "max_upstream_connections", KEY_MAX_UPSTREAM_CONNECTIONS, apply_unsigned,
           max_upstream_connections, 1, 1024),
        KF(DAEMON, "allow_remote", KEY_ALLOW_REMOTE, apply_bool, allow_remote),
        KF(DAEMON, "allowed_hosts", KEY_ALLOWED_HOSTS, apply_allowed_hosts, allowed_hosts),
        KF(DAEMON, "cors_origins", KEY_CORS_ORIGINS, apply_cors_origins, cors_origins),
        K(DAEMON, "allowed_uids", KEY_ALLOWED_UIDS, apply_ids),
        K(DAEMON, "allowed_groups", KEY_ALLOWED_GROUPS, apply_ids),
        KF(DAEMON, "tcp_access", KEY_TCP_ACCESS, apply_access, tcp_access),
        KF(DAEMON, "socket_access", KEY_SOCKET_ACCESS, apply_access, socket_access),
        KI(DAEMON, "wait_poll_max_seconds", KEY_WAIT_POLL_MAX, apply_unsigned, wait_poll_max_sec, 1, 600),
        KI(DAEMON, "cost_interval", KEY_COST_INTERVAL, apply_unsigned, cost_interval_sec, 1, 86400),
        KI(DAEMON, "failure_memory_seconds", KEY_FAILURE_MEMORY, apply_unsigned, failure_memory_sec, 0, 600),
        KF(DAEMON, "trust_local_users", KEY_TRUST_LOCAL_USERS, apply_bool, trust_local_users),
        /* Fair shares: the connection limit stays below libmicrohttpd's 8192 per listener. */
        KI(DAEMON, "max_connections_per_caller", KEY_MAX_CONNECTIONS_PER_CALLER, apply_unsigned,
           max_connections_per_caller, 1, 8192),
        KI(DAEMON, "max_requests_per_caller", KEY_MAX_REQUESTS_PER_CALLER, apply_unsigned,
           max_requests_per_caller, 1, 8192),
        KI(DAEMON, "max_waits_per_caller", KEY_MAX_WAITS_PER_CALLER, apply_unsigned, max_waits_per_caller,
           1, 8192),
        KI(DAEMON, "max_buffered_bytes_per_caller", KEY_MAX_BUFFERED_BYTES_PER_CALLER, apply_size,
           max_buffered_bytes_per_caller, 1, INT64_C(64) * 1024 * 1024 * 1024),
        KI(DAEMON, "upstream_share_percent", KEY_UPSTREAM_SHARE_PERCENT, apply_unsigned,
           upstream_share_percent, 1, 100),
        KI(DAEMON, "header_timeout", KEY_HEADER_TIMEOUT, apply_unsigned, header_timeout_sec, 1, 3600),
        KI(DAEMON, "idle_timeout", KEY_IDLE_TIMEOUT, apply_unsigned, idle_timeout_sec, 1, 3600),
};

const struct key_def *config_key_lookup(enum section s, const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(key_table); i++)
                if (key_table[i].section == s && streq(key_table[i].name, name))
                        return &key_table[i];
        return NULL;
}

void config_key_apply(struct loader *l, const struct key_def *k, struct toml_value *v) {
        l->key_line[k->id] = l->lineno;
        k->apply(l, k, v);
}

const char *config_known_key(size_t i, const char **ret_section) {
        if (i >= ELEMENTSOF(key_table))
                return NULL;
        if (ret_section)
                *ret_section = config_known_section((size_t) (key_table[i].section - SECTION_DEFAULTS));
        return key_table[i].name;
}

/* Cache rules are not in the key table: their keys are API paths. */
void config_cache_rule_apply(struct loader *l, const char *path, struct toml_value *v) {
        struct cache_rule *n;
        char *p;

        if (strncmp(path, "/api/", 5) != 0 || strpbrk(path, "?# ")) {
                config_error_at(l, l->lineno, "[cache] keys must be API paths starting with /api/ "
                                "(quote them: \"/api/v1/...\" = 300), without query");
                return;
        }
        if (v->type != TOML_INTEGER || v->i < 1 || v->i > 86400) {
                config_error_at(l, l->lineno, "[cache] \"%s\" must be a TTL in seconds from 1 to 86400", path);
                return;
        }
        p = strdup(path);
        n = reallocarray(l->c->cache, l->c->n_cache + 1, sizeof *n);
        if (!p || !n) {
                free(p);
                if (n)
                        l->c->cache = n;
                l->oom = true;
                return;
        }
        l->c->cache = n;
        n[l->c->n_cache++] = (struct cache_rule) { .path = p, .ttl_sec = (unsigned) v->i };
}
