/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The rules of [rights] in denvr.toml: who (a uid, a group, a local token)
 * may do what, parsed and matched here; daemon/policy/rights.c picks the rule for a
 * caller and applies it.
 *
 *   [rights]
 *   "uid:ci"          = ["servers/virtual/GetServers", "servers/virtual/StopServer"]
 *   "group:operators" = ["read-only", "servers/virtual/StartServer", "servers/virtual/StopServer"]
 *   "token:vm-7"      = ["servers/virtual/StopServer?id=vm-7"]
 *   "uid:alice"       = "full"
 *
 * A value is "full", "read-only", "off", or a list of operations named as in
 * the operation table (the path after /api/v1/), where '*' matches any run of
 * characters, optionally followed by "?param=value&..." conditions the
 * request must meet (the parameter as sent, in the query or the JSON body).
 * "read-only" in a list adds every GET/HEAD request.  An operation not in the
 * table counts as a read (GET/HEAD) or a write: "full", "read-only" and a
 * list holding "read-only" allow such reads, only "full" allows such writes.
 */

#include <stdbool.h>
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include "common/api/optable.h"

struct toml_value;

enum rights_subject {
        RIGHTS_SUBJECT_TOKEN,
        RIGHTS_SUBJECT_UID,
        RIGHTS_SUBJECT_GROUP,
};

enum rights_kind {
        RIGHTS_OFF,
        RIGHTS_READ_ONLY,
        RIGHTS_FULL,
        RIGHTS_LIST,
};

struct rights_cond {
        char *name;             /* a parameter, matched ASCII case-insensitively */
        char *value;            /* matched exactly */
};

struct rights_entry {
        char *text;             /* as written, for messages and --check-config */
        char *pattern;          /* the operation part, with '*' wildcards; NULL for "read-only" */
        struct rights_cond *conds;
        size_t n_conds;
};

struct rights_rule {
        enum rights_subject subject;
        char *key;              /* "uid:ci", as written */
        uint32_t id;            /* the uid or gid, resolved at load time */
        char *token;            /* RIGHTS_SUBJECT_TOKEN: the name */
        unsigned line;
        enum rights_kind kind;
        bool reads;             /* RIGHTS_LIST: "read-only" was listed */
        struct rights_entry *entries;
        size_t n_entries;
};

enum rights_verdict {
        RIGHTS_DENY,
        RIGHTS_ALLOW,
        RIGHTS_NEED_PARAMS,     /* allowed only if conditions hold, and no params were given */
};

/*
 * Looks up a request parameter for a condition: 1 with *ret set (not
 * NUL-terminated: *ret_len bytes), 0 if absent, -EINVAL if it is given more
 * than once or is not a string (conditions then fail), -ENOMEM.
 */
typedef int (*rights_param_fn)(void *userdata, const struct operation *op, const char *name,
                               const char **ret, size_t *ret_len);

/* Parses a [rights] key; resolves user and group names now.  0, or -EINVAL with *why (static or in buf). */
int rights_rule_parse_subject(const char *key, struct rights_rule *r, char *buf, size_t bufsz,
                              const char **why);

/* Parses a [rights] value into r.  0, -ENOMEM, or -EINVAL with the reason in buf. */
int rights_rule_parse_value(const struct toml_value *v, struct rights_rule *r, char *buf, size_t bufsz);

void rights_rule_done(struct rights_rule *r);

/* The name of an operation in rules: its path after "/api/v1/" (or "/api/"). */
const char *rights_operation_name(const struct operation *op);

/* '*' matches any run of characters (also '/'); ASCII case-insensitive. */
bool rights_pattern_match(const char *pattern, const char *name);

/*
 * Whether rule allows method on op (NULL: not in the table).  get NULL means
 * the parameters are not known yet.  *ret_entry: the list entry that
 * allowed it, or for RIGHTS_DENY with conditions, one that would have with
 * other parameters (else NULL).
 */
enum rights_verdict rights_rule_allows(const struct rights_rule *rule, const char *method,
                                       const struct operation *op, rights_param_fn get,
                                       void *userdata, const struct rights_entry **ret_entry);

/* Whether a and b name the same caller (the same kind of subject, and id or token). */
bool rights_rule_same_subject(const struct rights_rule *a, const struct rights_rule *b);

const char *rights_kind_to_string(enum rights_kind k);
const char *rights_subject_to_string(enum rights_subject s);

/* Who denvrd takes a request's caller for. */
struct rights_caller {
        const char *transport;  /* "unix" or "tcp" */
        bool uid_known;
        uid_t uid;
        bool gid_known;
        gid_t gid;
        const gid_t *groups;    /* supplementary groups, where known */
        size_t n_groups;
        pid_t pid;              /* 0 when unknown */
        const char *token;      /* the local token's name, or NULL */
};
