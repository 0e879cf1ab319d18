/* SPDX-License-Identifier: MIT */
#include "common/api/wait_query.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/base/cleanup.h"
#include "common/base/query.h"

/* Decoded by the one query reader; -EINVAL for a bad escape or an encoded NUL. */
static int decode(const char *s, size_t n, char **ret) {
        ssize_t k = query_decode_dup(s, n, ret);

        if (k >= 0 && strlen(*ret) != (size_t) k) {
                free(*ret);
                *ret = NULL;
                return -EINVAL;
        }
        return k < 0 ? (int) k : 0;
}

static bool field_is_valid(const char *f) {
        size_t seg = 0;

        if (!*f || strlen(f) > WAIT_FIELD_MAX)
                return false;
        for (const char *p = f; ; p++) {
                if (*p == '.' || *p == 0) {
                        if (seg == 0)
                                return false;   /* empty segment: ".a", "a..b", "a." */
                        if (*p == 0)
                                return true;
                        seg = 0;
                        continue;
                }
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '_' || *p == '-'))
                        return false;
                seg++;
        }
}

static int fail(struct wait_query *q, const char *fmt, ...) _printf_(2, 3);
static int fail(struct wait_query *q, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(q->error, sizeof q->error, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static int add_until(struct wait_query *q, const char *v) {
        const char *colon;
        struct wait_condition *c;

        if (strcmp(v, "gone") == 0) {
                q->gone = true;
                return 0;
        }
        colon = strchr(v, ':');
        if (!colon)
                return fail(q, "until=%.80s is not FIELD:VALUE or gone", v);
        if (q->n_conditions >= WAIT_MAX_CONDITIONS)
                return fail(q, "more than %u until conditions", WAIT_MAX_CONDITIONS);
        if (strlen(colon + 1) > WAIT_VALUE_MAX)
                return fail(q, "the VALUE of until=%.40s... is too long", v);
        c = &q->conditions[q->n_conditions];
        c->field = strndup(v, (size_t) (colon - v));
        c->value = strdup(colon + 1);
        if (!c->field || !c->value) {
                free(c->field);
                free(c->value);
                *c = (struct wait_condition) { NULL, NULL };
                return -ENOMEM;
        }
        q->n_conditions++;
        if (!field_is_valid(c->field))
                return fail(q, "until: FIELD \"%.80s\" is not a member name (letters, digits, _ and -, "
                            "dotted for nested members)", c->field);
        return 0;
}

static int set_timeout(struct wait_query *q, const char *v, bool *seen) {
        unsigned long n = 0;

        if (*seen)
                return fail(q, "timeout given more than once");
        *seen = true;
        if (!*v || strlen(v) > 9 || strspn(v, "0123456789") != strlen(v))
                return fail(q, "timeout=%.40s is not a number of seconds", v);
        n = strtoul(v, NULL, 10);
        if (n < 1 || n > WAIT_TIMEOUT_MAX)
                return fail(q, "timeout=%.40s is out of range (1 to 3600 seconds)", v);
        q->timeout_sec = (unsigned) n;
        return 0;
}

/* Appends the raw parameter (n bytes) to q->rest. */
static int keep_param(struct wait_query *q, const char *p, size_t n) {
        char *r = realloc(q->rest, q->rest_len + n + 2);

        if (!r)
                return -ENOMEM;
        q->rest = r;
        if (q->n_kept++)
                r[q->rest_len++] = '&';
        memcpy(r + q->rest_len, p, n);
        q->rest_len += n;
        r[q->rest_len] = 0;
        return 0;
}

static int one_param(struct wait_query *q, const struct query_field *f, bool *timeout_seen) {
        _cleanup_free_ char *name = NULL, *value = NULL;
        int k;

        k = decode(f->name, f->name_len, &name);
        if (k == -ENOMEM)
                return k;
        /* Not ours (a bad name included): the reading of the inner operation judges it. */
        if (k < 0 || (strcasecmp(name, "until") != 0 && strcasecmp(name, "timeout") != 0))
                return keep_param(q, f->raw, f->raw_len);

        k = decode(f->value, f->value_len, &value);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return fail(q, "%s holds a bad escape or an encoded NUL byte", name);
        if (strcasecmp(name, "timeout") == 0)
                return set_timeout(q, value, timeout_seen);
        return add_until(q, value);
}

int wait_query_parse(const char *query, size_t query_len, struct wait_query *q) {
        bool timeout_seen = false;
        struct query_field f;
        size_t pos = 0;
        int k;

        *q = (struct wait_query) { .timeout_sec = WAIT_TIMEOUT_DEFAULT };
        while (query_next(query, query ? query_len : 0, &pos, &f)) {
                k = one_param(q, &f, &timeout_seen);
                if (k < 0)
                        return k;
        }
        if (q->n_conditions == 0 && !q->gone)
                return fail(q, "until is missing: say what to wait for, e.g. until=status:ONLINE "
                            "or until=gone");
        return 0;
}

void wait_query_done(struct wait_query *q) {
        for (size_t i = 0; i < q->n_conditions; i++) {
                free(q->conditions[i].field);
                free(q->conditions[i].value);
        }
        free(q->rest);
        *q = (struct wait_query) { .timeout_sec = WAIT_TIMEOUT_DEFAULT };
}

int wait_member_text(json_t *result, const char *field, char **ret) {
        json_t *v = result;
        const char *p = field;

        while (*p) {
                size_t n = strcspn(p, ".");
                _cleanup_free_ char *seg = strndup(p, n);

                if (!seg)
                        return -ENOMEM;
                if (!json_is_object(v) || !(v = json_object_get(v, seg)))
                        return -ENOENT;
                p += n;
                if (*p == '.')
                        p++;
        }
        if (json_is_string(v))
                *ret = strndup(json_string_value(v), json_string_length(v));
        else
                *ret = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        return *ret ? 0 : -ENOMEM;
}

int wait_query_match(const struct wait_query *q, json_t *result) {
        for (size_t i = 0; i < q->n_conditions; i++) {
                _cleanup_free_ char *text = NULL;

                if (wait_member_text(result, q->conditions[i].field, &text) == 0 &&
                    strcmp(text, q->conditions[i].value) == 0)
                        return (int) i;
        }
        return -1;
}

bool wait_answer_is_gone(long status, json_t *body) {
        json_t *error;
        const char *msg;

        if (status == 404)
                return true;
        if (status < 400)
                return false;
        error = json_object_get(body, "error");
        msg = json_string_value(json_object_get(error, "message"));
        return msg && (strcasestr(msg, "no such") || strcasestr(msg, "not found"));
}
