/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What the config_*.c files share, and nothing outside them may use: the
 * state of one load (struct loader) and the calls between the steps of
 * config_load().  One load flows through them in this order:
 *   config.c             locates the file, runs the steps, applies defaults;
 *   config_reader.c      feeds the file through inih, line by line;
 *   config_keys.c        decodes and checks each key's value into the config;
 *   config_credentials.c picks the API key or password and checks secret files;
 * with config_diag.c collecting the messages, config_paths.c and
 * config_address.c as their helpers.
 */

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "common/base/cleanup.h"
#include "common/config/config.h"

struct toml_value;
struct key_def;

enum section {
        SECTION_ROOT,          /* keys before any header */
        SECTION_DEFAULTS,
        SECTION_CREDENTIALS,
        SECTION_DAEMON,
        SECTION_CACHE,
        SECTION_RIGHTS,
        SECTION_TOKENS,
        SECTION_LEASES,
        SECTION_IGNORED,
        _SECTION_MAX,
};

enum key_id {
        KEY_SERVER, KEY_API, KEY_CLUSTER, KEY_TENANT, KEY_VPCID, KEY_RPOOL, KEY_RETRIES,
        KEY_APIKEY, KEY_USERNAME, KEY_PASSWORD, KEY_APIKEY_FILE, KEY_PASSWORD_FILE,
        KEY_LISTEN, KEY_SOCKET, KEY_SOCKET_MODE, KEY_CA_FILE, KEY_LOG_LEVEL,
        KEY_REQUEST_TIMEOUT, KEY_MAX_BODY_BYTES, KEY_MAX_UPSTREAM_CONNECTIONS,
        KEY_ALLOW_REMOTE, KEY_ALLOWED_HOSTS, KEY_CORS_ORIGINS, KEY_ALLOWED_UIDS,
        KEY_ALLOWED_GROUPS, KEY_TCP_ACCESS, KEY_SOCKET_ACCESS, KEY_WAIT_POLL_MAX,
        KEY_TRUST_LOCAL_USERS, KEY_FAILURE_MEMORY, KEY_MAX_CONNECTIONS_PER_CALLER,
        KEY_MAX_REQUESTS_PER_CALLER, KEY_MAX_WAITS_PER_CALLER, KEY_MAX_BUFFERED_BYTES_PER_CALLER,
        KEY_UPSTREAM_SHARE_PERCENT, KEY_HEADER_TIMEOUT, KEY_IDLE_TIMEOUT, KEY_COST_INTERVAL,
        _KEY_MAX,
};

/* State of one load. */
struct loader {
        struct denvr_config *c;
        struct config_diag *diag;
        const char *path;          /* absolute path of the file, for messages */

        char *buf;                 /* the whole file; wiped at the end */
        size_t len, pos;
        unsigned lineno;
        const char *line;          /* current line (NUL-terminated inside buf) */
        const char *value;         /* its value text, for the handler; NULL if none */

        enum section section;
        char *table_id;            /* identifies the current table, for duplicate keys */
        json_t *seen_tables;       /* table id -> line * 2 + is_array */
        json_t *seen_keys;         /* table id \x1e key -> line */
        unsigned section_line[_SECTION_MAX];
        unsigned key_line[_KEY_MAX];

        /* Inline secrets as read from the file, before the environment decides. */
        struct secret *file_apikey;
        struct secret *file_password;

        /*
         * After a value that would continue on the next lines (multi-line
         * string or array), those lines are not ours to judge: their syntax
         * errors are not reported until the next good table header.
         */
        bool resync;
        bool oom;
};

/* config_diag.c: messages "PATH:LINE: text" (line 0: "PATH: text"; no file: "text"). */
_printf_(4, 0)
void config_diagv_at(struct loader *l, bool error, unsigned line, const char *fmt, va_list ap);
_printf_(3, 4)
void config_error_at(struct loader *l, unsigned line, const char *fmt, ...);
_printf_(3, 4)
void config_warning_at(struct loader *l, unsigned line, const char *fmt, ...);
/* An error that is not about a line of the file (flags, environment). */
_printf_(2, 3)
void config_error_plain(struct loader *l, const char *fmt, ...);

/* config_reader.c: returns 1 if the file was parsed, 0 if there is none (allowed), <0 on a reported error. */
int config_read_file(struct loader *l, bool explicit);

/* config_keys.c: the key table.  NULL: no such key in that section. */
const struct key_def *config_key_lookup(enum section s, const char *name);
/* Records the key's line and stores the decoded value (or reports why not) at l->lineno. */
void config_key_apply(struct loader *l, const struct key_def *k, struct toml_value *v);
/* [cache]: "/api/..." = TTL seconds. */
void config_cache_rule_apply(struct loader *l, const char *path, struct toml_value *v);

/* config_rights.c: [rights] "uid:NAME" = RULE and [tokens] NAME = "sha256:HEX". */
void config_rights_rule_apply(struct loader *l, const char *key, struct toml_value *v);
void config_token_apply(struct loader *l, const char *name, struct toml_value *v);
/* config_leases.c */
void config_lease_default_apply(struct loader *l, const char *key, struct toml_value *v);
void config_leases_free(struct denvr_config *c);
json_t *config_leases_to_json(const struct denvr_config *c);
/* After parsing: every token has a rule and every token rule a token. */
void config_rights_check(struct loader *l);
/* The rules in evaluation order and the tokens' hashes, for config_to_json(). */
json_t *config_rights_to_json(const struct denvr_config *c);
json_t *config_tokens_to_json(const struct denvr_config *c);
void config_rights_free(struct denvr_config *c);

/* config_credentials.c */
void config_resolve_credentials(struct loader *l, const struct config_overrides *o);
/* After parsing: refuses a file readable by others that holds an inline secret. */
void config_check_inline_secret_mode(struct loader *l, mode_t mode);

/* config_paths.c */
char *config_home_dir(void);
/* Makes p absolute against the working directory. */
char *config_path_make_absolute_cwd(const char *p);
int config_resolve_file_path(struct loader *l, const char *p, char **ret);
int config_locate(const struct config_overrides *o, char **ret, bool *ret_explicit);

/* config_address.c: NULL if fine, else why not (a static message). */
const char *config_host_check(const char *s);
const char *config_origin_check(const char *s);

/* Small helpers, inline as every file uses some. */

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return streq(a, b);
}

static inline bool has_control(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

static inline const char *getenv_nonempty(const char *name) {
        const char *e = getenv(name);
        return e && *e ? e : NULL;
}

/* Appends s (taken; freed on failure) to the NULL-terminated list *l of *n entries. */
static inline int list_push(char ***l, size_t *n, char *s) {
        char **nl;

        nl = reallocarray(*l, *n + 2, sizeof *nl);
        if (!nl) {
                free(s);
                return -ENOMEM;
        }
        nl[(*n)++] = s;
        nl[*n] = NULL;
        *l = nl;
        return 0;
}

static inline int strv_extend(char ***l, const char *s) {
        size_t n = strv_length(*l);
        char *d = strdup(s);

        if (!d)
                return -ENOMEM;
        return list_push(l, &n, d);
}

static inline char **strv_new_empty(void) {
        return calloc(1, sizeof(char *));
}
