/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A lease: a deadline and an action (stop or destroy) on one virtual server
 * or application, which denvrd carries out on time.  This is the model and
 * its text forms: durations ("90s", "45m", "4h", "2d", "1h30m"), the request
 * header "X-Denvrd-Lease: DURATION[; action=stop|destroy]", RFC 3339 UTC
 * times and the JSON of the state file and of /_denvrd/leases.  Deadlines are
 * wall-clock times (seconds since the epoch): one that passed while denvrd
 * was stopped or the host slept is still passed when it runs again.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Longest lease: a year.  A longer one is a typo, not a plan. */
#define LEASE_MAX_SECONDS (366LL * 24 * 3600)
#define LEASE_TIME_LEN sizeof "2026-12-07T18:00:00Z"

enum lease_action {
        LEASE_STOP,
        LEASE_DESTROY,
        _LEASE_ACTION_MAX,
};

enum lease_service {
        LEASE_SERVERS_VIRTUAL,
        LEASE_SERVERS_APPLICATIONS,
        _LEASE_SERVICE_MAX,
};

enum lease_state {
        LEASE_PENDING,
        LEASE_ACTING,
        LEASE_DONE,
        LEASE_FAILED,
        _LEASE_STATE_MAX,
};

struct lease {
        enum lease_service service;
        char *id;
        char *cluster;
        char *namespace;                /* NULL for applications */
        enum lease_action action;
        int64_t expires_at;             /* seconds since the epoch */
        /* Who set it. */
        bool uid_known;
        uint32_t uid;
        char *user;                     /* may be NULL */
        char *token;                    /* local token's name, or NULL */
        enum lease_state state;
        char *last_error;               /* NULL: none */
        /* The keeper's, never written to the file. */
        uint64_t serial;                /* which lease this is, while the daemon runs */
        bool warned;                    /* the warning ahead is logged */
};

const char *lease_action_to_string(enum lease_action a);
int lease_action_from_string(const char *s);            /* or -EINVAL */
const char *lease_service_to_string(enum lease_service s);   /* "servers/virtual", ... */
int lease_service_from_string(const char *s);
const char *lease_state_to_string(enum lease_state s);
int lease_state_from_string(const char *s);

/* "90s", "45m", "4h", "2d", "1h30m" (units in decreasing order, each once):
 * 0 and *ret > 0, or -EINVAL with *why set. */
int lease_duration_parse(const char *s, int64_t *ret, const char **why);

/* The header's value: duration and action (stop when not given). */
int lease_header_parse(const char *value, int64_t *ret_seconds, enum lease_action *ret_action, const char **why);

/* RFC 3339 in UTC, "2026-12-07T18:00:00Z", into buf (LEASE_TIME_LEN bytes). */
void lease_time_format(int64_t t, char buf[static LEASE_TIME_LEN]);
/* RFC 3339 with "Z" or an offset, fractions of a second ignored: 0 or -EINVAL. */
int lease_time_parse(const char *s, int64_t *ret);

/* Whether id, cluster and namespace are free of control bytes (they are logged as they are). */
bool lease_names_are_clean(const struct lease *l);

/* The lease as JSON (expires_in counted from now). */
json_t *lease_to_json(const struct lease *l, int64_t now);
/* From the state file's JSON: 0, -EINVAL with *why, or -ENOMEM.  ret is zeroed first. */
int lease_from_json(json_t *o, struct lease *ret, const char **why);
void lease_done(struct lease *l);
