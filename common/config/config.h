/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * denvr.toml: the file the Denvr SDKs read, plus a [daemon] and a [cache]
 * section that only denvrd reads.  Parsed with inih; values are decoded by
 * toml_value.c.  See README.md, "Configuration reference", for every key.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/api/fillin.h"
#include "common/base/cleanup.h"
#include "common/base/secret.h"
#include "common/base/sha256.h"
#include "common/config/rights_rule.h"

#define DENVRD_DEFAULT_PORT 3368
#define DENVRD_DEFAULT_SERVER "https://api.cloud.denvrdata.com"

enum credential_mode {
        CREDENTIAL_NONE,
        CREDENTIAL_APIKEY,
        CREDENTIAL_PASSWORD,
};

/* Where a secret came from; file-backed ones are re-read when needed. */
enum secret_source {
        SECRET_SOURCE_NONE,
        SECRET_SOURCE_CONFIG,      /* inline in denvr.toml */
        SECRET_SOURCE_ENV,         /* DENVR_APIKEY / DENVR_PASSWORD */
        SECRET_SOURCE_FILE,        /* apikey_file / password_file */
        SECRET_SOURCE_CREDENTIAL,  /* $CREDENTIALS_DIRECTORY/denvr-... */
};

enum access_level {
        ACCESS_OFF,
        ACCESS_READ_ONLY,
        ACCESS_FULL,
};

struct cache_rule {
        char *path;          /* exact path, e.g. /api/v1/servers/virtual/GetConfigurations */
        unsigned ttl_sec;
};

/* [tokens]: a local token's name and the SHA-256 of the token (local_token.h). */
struct local_token {
        char *name;
        uint8_t hash[SHA256_DIGEST_SIZE];
        unsigned line;
};

struct denvr_config {
        char *path;          /* the file read; NULL if none existed */

        /* [defaults] */
        char *server;        /* no trailing '/' */
        char *api;
        char *cluster;
        char *tenant;        /* NULL if unset */
        char *vpcid;         /* NULL if unset (falls back to tenant) */
        char *rpool;
        unsigned retries;

        /* [credentials] (after environment overrides) */
        enum credential_mode mode;
        char *username;
        /* Inline or env secrets are held here; file-backed ones are not
         * (secret_path says where to read them again). */
        struct secret *apikey;
        struct secret *password;
        enum secret_source secret_source;
        char *secret_path;   /* for SECRET_SOURCE_FILE/CREDENTIAL */
        /* apikey_file / password_file as configured (absolute), for display. */
        char *apikey_file;
        char *password_file;

        /* [daemon] */
        char **listen;       /* NULL-terminated "HOST:PORT" list */
        char *socket;        /* NULL: no unix socket */
        mode_t socket_mode;
        char *ca_file;
        int log_level;       /* syslog priority */
        unsigned request_timeout_sec;
        size_t max_body_bytes;
        unsigned max_upstream_connections;
        unsigned wait_poll_max_sec;   /* cap of the /_denvrd/wait/ polling backoff */
        /* Fair shares (daemon/http/fairness.c): what one caller may hold at once. */
        unsigned max_connections_per_caller;
        unsigned max_requests_per_caller;
        unsigned max_waits_per_caller;
        size_t max_buffered_bytes_per_caller;
        unsigned upstream_share_percent;   /* of max_upstream_connections */
        unsigned header_timeout_sec;       /* request headers complete after connect or request line */
        unsigned idle_timeout_sec;         /* a kept-alive connection without a request */
        unsigned failure_memory_sec;  /* how long a given-up idempotent request's failure is replayed */
        bool allow_remote;
        char **allowed_hosts;   /* never NULL after config_load() (may be empty) */
        char **cors_origins;    /* same */
        uid_t *allowed_uids;
        size_t n_allowed_uids;
        gid_t *allowed_groups;  /* names are resolved at load time */
        size_t n_allowed_groups;
        enum access_level tcp_access;
        enum access_level socket_access;
        /* Skip the peer rule (own uid, root, allowed_uids, allowed_groups) on every listener. */
        bool trust_local_users;

        /* [cache] */
        struct cache_rule *cache;
        size_t n_cache;

        /* [rights], in file order (see rights_rule.h), and [tokens] */
        struct rights_rule *rights;
        size_t n_rights;
        struct local_token *tokens;
        size_t n_tokens;

        /* [leases]: the lease every machine a caller creates or starts gets (lease.h) */
        struct lease_default *leases;
        size_t n_leases;
};

/* A [leases] entry: "uid:NAME", "group:NAME", "token:NAME" or "*" = "DURATION [ACTION]". */
struct lease_default {
        char *key;
        unsigned line;
        bool any;                       /* "*": every caller without an entry of its own */
        struct rights_rule subject;     /* its subject, id and token when not any */
        int64_t seconds;
        int action;                     /* enum lease_action */
};

/* Command-line overrides; NULL/0 fields mean "not given". */
struct config_overrides {
        const char *config_path;   /* --config */
        char **listen;             /* --listen, NULL-terminated */
        const char *socket;        /* --socket */
        const char *log_level;     /* --log-level */
        /*
         * Accept a configuration without any credentials (mode
         * CREDENTIAL_NONE) instead of failing; the quick start runs against
         * the bundled mock this way.  Half-given credentials (a username
         * without a password) are still an error.
         */
        bool allow_no_credentials;
};

/*
 * Diagnostics collected while loading.  Errors make config_load() fail;
 * warnings (unknown keys) are reported but do not.  Each message is
 * "PATH:LINE: text" where a line is known.
 */
struct config_diag {
        char **errors;
        size_t n_errors;
        char **warnings;
        size_t n_warnings;
};
void config_diag_done(struct config_diag *d);

/*
 * Loads the configuration: --config PATH, else $DENVR_CONFIG, else
 * ~/.config/denvr.toml (a missing default file is not an error; a missing
 * explicit one is).  Applies environment overrides, SDK defaults and the
 * command-line overrides, then validates.  Returns 0 or -EINVAL (see diag),
 * or another negative errno.
 */
int config_load(const struct config_overrides *o, struct denvr_config **ret,
                struct config_diag *diag);

/* Effective vpcid: vpcid, else tenant, else NULL. */
const char *config_vpcid(const struct denvr_config *c);

/* The [defaults] a request's absent parameters are filled from (fillin.h). */
struct fillin_defaults config_fillin_defaults(const struct denvr_config *c);

/*
 * The secret to use for login or the ApiKey header.  For file-backed secrets
 * the file is read again on every call (nothing stays in memory between
 * logins).  Returns 0 or a negative errno.
 */
int config_get_secret(const struct denvr_config *c, struct secret **ret);

/* The effective configuration as a JSON text, secrets shown as "***". */
char *config_to_json(const struct denvr_config *c);

/* True when the two configs log in as the same principal with the same secret source. */
bool config_same_credentials(const struct denvr_config *a, const struct denvr_config *b);

/*
 * What denvr.toml may hold, for the check that the manual documents it all:
 * the i-th section's name, and the i-th key with its section; NULL past the last.
 */
const char *config_known_section(size_t i);
const char *config_known_key(size_t i, const char **ret_section);

void config_free(struct denvr_config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct denvr_config *, config_free)
#define _cleanup_config_free_ _cleanup_(config_freep)

const char *access_level_to_string(enum access_level a);
/* "full", "read-only", "off"; returns the level or -EINVAL. */
int access_level_from_string(const char *s);
const char *secret_source_to_string(enum secret_source s);

/*
 * Splits and checks a listen address "HOST:PORT" ("[v6]:PORT" for IPv6).
 * *ret_host gets the host without brackets (may be NULL if not wanted);
 * *ret_loopback tells whether it is a loopback address or "localhost".
 * Returns 0, -EINVAL with *ret_reason set to a static message, or -ENOMEM.
 */
int config_parse_listen(const char *s, char **ret_host, uint16_t *ret_port, bool *ret_loopback,
                        const char **ret_reason);

/* The [rights] rule that applies to who: its token's, else its uid's, else its first
 * group's in file order; NULL when none names it. */
const struct rights_rule *config_rights_rule_for(const struct denvr_config *c, const struct rights_caller *who);
/* Whether the caller's primary or a supplementary group is g. */
bool rights_caller_in_group(const struct rights_caller *who, gid_t g);
/* The caller's [leases] entry, picked as [rights] picks a rule (token, then uid,
 * then the first group in file order), else "*", else NULL. */
const struct lease_default *config_lease_default_for(const struct denvr_config *c, const struct rights_caller *who);
