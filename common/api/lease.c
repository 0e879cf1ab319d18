/* SPDX-License-Identifier: MIT */
#include "common/api/lease.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/base/cleanup.h"
#include "common/base/enum_names.h"

static const char *const action_names[] = { [LEASE_STOP] = "stop", [LEASE_DESTROY] = "destroy" };
static const char *const service_names[] = {
        [LEASE_SERVERS_VIRTUAL] = "servers/virtual",
        [LEASE_SERVERS_APPLICATIONS] = "servers/applications",
};
static const char *const state_names[] = {
        [LEASE_PENDING] = "pending",
        [LEASE_ACTING] = "acting",
        [LEASE_DONE] = "done",
        [LEASE_FAILED] = "failed",
};

const char *lease_action_to_string(enum lease_action a) {
        return ENUM_NAME(action_names, a);
}

int lease_action_from_string(const char *s) {
        return ENUM_FROM_NAME(action_names, s);
}

const char *lease_service_to_string(enum lease_service s) {
        return ENUM_NAME(service_names, s);
}

int lease_service_from_string(const char *s) {
        return ENUM_FROM_NAME(service_names, s);
}

const char *lease_state_to_string(enum lease_state s) {
        return ENUM_NAME(state_names, s);
}

int lease_state_from_string(const char *s) {
        return ENUM_FROM_NAME(state_names, s);
}

/* --- durations ------------------------------------------------------------------ */

static int64_t unit_seconds(char u) {
        switch (u) {
        case 'd':
                return 86400;
        case 'h':
                return 3600;
        case 'm':
                return 60;
        case 's':
                return 1;
        default:
                return 0;
        }
}

#define REFUSE_DURATION(w)              \
        do {                            \
                *why = (w);             \
                return -EINVAL;         \
        } while (0)

int lease_duration_parse(const char *s, int64_t *ret, const char **why) {
        int64_t total = 0, last_unit = INT64_MAX;

        if (!s || !*s)
                REFUSE_DURATION("a duration is a number and a unit: 90s, 45m, 4h, 2d or 1h30m");
        while (*s) {
                int64_t n = 0, unit;

                if (!isdigit((unsigned char) *s))
                        REFUSE_DURATION("a duration is numbers with units (d, h, m, s), such as 90s, 45m, 4h, 2d or 1h30m");
                for (; isdigit((unsigned char) *s); s++) {
                        n = n * 10 + (*s - '0');
                        if (n > LEASE_MAX_SECONDS)
                                REFUSE_DURATION("a lease lasts at most 366 days");
                }
                unit = unit_seconds(*s);
                if (unit == 0)
                        REFUSE_DURATION("each number of a duration needs its unit: d, h, m or s");
                if (unit >= last_unit)
                        REFUSE_DURATION("a duration names its units largest first, each once (1h30m, not 30m1h)");
                last_unit = unit;
                total += n * unit;
                if (total > LEASE_MAX_SECONDS)
                        REFUSE_DURATION("a lease lasts at most 366 days");
                s++;
        }
        if (total <= 0)
                REFUSE_DURATION("a lease must last longer than 0 s");
        *ret = total;
        return 0;
}

static const char *skip_blanks(const char *p) {
        while (*p == ' ' || *p == '\t')
                p++;
        return p;
}

int lease_header_parse(const char *value, int64_t *ret_seconds, enum lease_action *ret_action, const char **why) {
        _cleanup_free_ char *copy = NULL;
        char *semi, *end;
        const char *p;
        int a;

        if (!value || !(copy = strdup(skip_blanks(value))))
                REFUSE_DURATION(value ? "out of memory" : "the header is empty");
        semi = strchr(copy, ';');
        if (semi)
                *semi = 0;
        for (end = copy + strlen(copy); end > copy && (end[-1] == ' ' || end[-1] == '\t'); end--)
                end[-1] = 0;
        if (lease_duration_parse(copy, ret_seconds, why) < 0)
                return -EINVAL;
        *ret_action = LEASE_STOP;
        if (!semi)
                return 0;
        p = skip_blanks(semi + 1);
        if (strncasecmp(p, "action=", 7) != 0)
                REFUSE_DURATION("after the duration only \"; action=stop\" or \"; action=destroy\" may follow");
        p += 7;
        for (end = (char *) p + strlen(p); end > p && (end[-1] == ' ' || end[-1] == '\t'); end--)
                end[-1] = 0;
        a = lease_action_from_string(p);
        if (a < 0)
                REFUSE_DURATION("the action is \"stop\" or \"destroy\"");
        *ret_action = (enum lease_action) a;
        return 0;
}

/* --- times ------------------------------------------------------------------------ */

void lease_time_format(int64_t t, char buf[static LEASE_TIME_LEN]) {
        time_t tt = (time_t) t;
        struct tm tm;

        if (!gmtime_r(&tt, &tm) || strftime(buf, LEASE_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, LEASE_TIME_LEN, "invalid");
}

/* "YYYY-MM-DDTHH:MM:SS", digits where digits go: strptime() alone takes "2026-1-7T1:2:3". */
static bool time_shape(const char *s) {
        static const char shape[] = "dddd-dd-ddTdd:dd:dd";

        for (size_t i = 0; i < sizeof shape - 1; i++)
                if (shape[i] == 'd' ? !isdigit((unsigned char) s[i]) : s[i] != shape[i] && !(i == 10 && s[i] == 't'))
                        return false;
        return true;
}

/* The fields as given name a real time: no 30 February, no 25:00 (timegm() would roll them over). */
static bool time_real(const struct tm *given, time_t t) {
        struct tm back;

        return gmtime_r(&t, &back) && back.tm_year == given->tm_year && back.tm_mon == given->tm_mon &&
               back.tm_mday == given->tm_mday && back.tm_hour == given->tm_hour && back.tm_min == given->tm_min &&
               back.tm_sec == given->tm_sec;
}

int lease_time_parse(const char *s, int64_t *ret) {
        struct tm tm = { 0 }, given;
        char buf[64];
        const char *p;
        int64_t offset = 0;
        time_t t;

        if (!s || strlen(s) < 19 || strlen(s) >= sizeof buf || !time_shape(s))
                return -EINVAL;
        strcpy(buf, s);
        buf[10] = 'T';   /* RFC 3339 allows "t" */
        if (!(p = strptime(buf, "%Y-%m-%dT%H:%M:%S", &tm)))
                return -EINVAL;
        if (*p == '.')
                for (p++; isdigit((unsigned char) *p); p++)
                        ;
        if ((*p == 'Z' || *p == 'z') && p[1] == 0)
                offset = 0;
        else if ((*p == '+' || *p == '-') && isdigit((unsigned char) p[1]) && isdigit((unsigned char) p[2]) &&
                 p[3] == ':' && isdigit((unsigned char) p[4]) && isdigit((unsigned char) p[5]) && p[6] == 0) {
                int h = (p[1] - '0') * 10 + (p[2] - '0'), m = (p[4] - '0') * 10 + (p[5] - '0');

                if (h > 23 || m > 59)
                        return -EINVAL;
                offset = h * 3600 + m * 60;
                if (*p == '-')
                        offset = -offset;
        } else
                return -EINVAL;
        given = tm;   /* timegm() rolls tm over */
        t = timegm(&tm);
        if (!time_real(&given, t))
                return -EINVAL;
        *ret = (int64_t) t - offset;
        return 0;
}

/* --- JSON ------------------------------------------------------------------------- */

static bool clean(const char *s) {
        for (; s && *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

bool lease_names_are_clean(const struct lease *l) {
        return clean(l->id) && clean(l->cluster) && clean(l->namespace);
}

json_t *lease_to_json(const struct lease *l, int64_t now) {
        char at[LEASE_TIME_LEN];

        lease_time_format(l->expires_at, at);
        return json_pack("{s:s, s:s, s:s?, s:s?, s:s, s:s, s:I, s:{s:o, s:s?, s:s?}, s:s, s:s?}",
                         "service", lease_service_to_string(l->service),
                         "id", l->id,
                         "cluster", l->cluster,
                         "namespace", l->namespace,
                         "action", lease_action_to_string(l->action),
                         "expires_at", at,
                         "expires_in", (json_int_t) (l->expires_at - now),
                         "set_by",
                                 "uid", l->uid_known ? json_integer(l->uid) : json_null(),
                                 "user", l->user,
                                 "token", l->token,
                         "state", lease_state_to_string(l->state),
                         "last_error", l->last_error);
}

void lease_done(struct lease *l) {
        free(l->id);
        free(l->cluster);
        free(l->namespace);
        free(l->user);
        free(l->token);
        free(l->last_error);
        *l = (struct lease) { 0 };
}

/* A string member, copied; absent or null gives NULL.  false on a wrong type or OOM. */
static bool copy_string(json_t *o, const char *name, char **ret, bool required) {
        json_t *v = json_object_get(o, name);

        *ret = NULL;
        if (!v || json_is_null(v))
                return !required;
        if (!json_is_string(v))
                return false;
        *ret = strdup(json_string_value(v));
        return *ret != NULL;
}

static int enum_member(json_t *o, const char *name, int (*from)(const char *), int *ret) {
        *ret = from(json_string_value(json_object_get(o, name)));
        return *ret;
}

int lease_from_json(json_t *o, struct lease *ret, const char **why) {
        json_t *by = json_object_get(o, "set_by"), *uid = json_object_get(by, "uid");
        int service, action, state;

        *ret = (struct lease) { 0 };
        *why = "a lease is an object with service, id, cluster, action, expires_at and state";
        if (!json_is_object(o) || enum_member(o, "service", lease_service_from_string, &service) < 0 ||
            enum_member(o, "action", lease_action_from_string, &action) < 0 ||
            enum_member(o, "state", lease_state_from_string, &state) < 0 ||
            lease_time_parse(json_string_value(json_object_get(o, "expires_at")), &ret->expires_at) < 0)
                return -EINVAL;
        ret->service = (enum lease_service) service;
        ret->action = (enum lease_action) action;
        ret->state = (enum lease_state) state;
        /* (uid_t) -1 is no uid; a larger number is no uid of this machine. */
        ret->uid_known = json_is_integer(uid) && json_integer_value(uid) >= 0 &&
                         json_integer_value(uid) < (json_int_t) UINT32_MAX;
        ret->uid = ret->uid_known ? (uint32_t) json_integer_value(uid) : 0;
        if (!copy_string(o, "id", &ret->id, true) || !copy_string(o, "cluster", &ret->cluster, true) ||
            !copy_string(o, "namespace", &ret->namespace, false) || !copy_string(by, "user", &ret->user, false) ||
            !copy_string(by, "token", &ret->token, false) ||
            !copy_string(o, "last_error", &ret->last_error, false)) {
                lease_done(ret);
                return -EINVAL;
        }
        return 0;
}
