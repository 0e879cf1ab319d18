/* SPDX-License-Identifier: MIT */
#include "common/api/fillin.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cleanup.h"
#include "common/base/query.h"
#include "common/base/utf8.h"
#include "common/http/envelope.h"

/*
 * Pure functions: nothing here logs (the proxy decides what a request is worth
 * logging) and nothing keeps state.  jansson ships json_decrefp() for _cleanup_.
 */


/* ---- small helpers ------------------------------------------------------ */

static inline int ascii_lower(unsigned char c) {
        return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static const char *default_value(const struct fillin_defaults *d, enum op_default which) {
        const char *v = NULL;

        if (!d)
                return NULL;
        switch (which) {
        case OP_DEFAULT_CLUSTER:
                v = d->cluster;
                break;
        case OP_DEFAULT_VPCID:
                v = d->vpcid;
                break;
        case OP_DEFAULT_RPOOL:
                v = d->rpool;
                break;
        default:
                return NULL;
        }
        /* An empty default could only ever add "Cluster=": treat it as unset. */
        return v && *v ? v : NULL;
}

/* A growable byte buffer; every append reports -ENOMEM instead of aborting. */
struct buf {
        char *data;
        size_t len, cap;
};

static void buf_done(struct buf *b) {
        free(b->data);
        *b = (struct buf) { .data = NULL };
}

/* Makes room for n more bytes (and a NUL); exact when asked for, else doubling. */
static int buf_reserve(struct buf *b, size_t n, bool exact) {
        size_t need, cap;
        char *d;

        if (n > SIZE_MAX - 1 - b->len)
                return -ENOMEM;
        need = b->len + n + 1;
        if (need <= b->cap)
                return 0;
        cap = exact ? need : (b->cap ? b->cap : 64);
        while (cap < need)
                cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        d = realloc(b->data, cap);
        if (!d)
                return -ENOMEM;
        b->data = d;
        b->cap = cap;
        return 0;
}

static int buf_append(struct buf *b, const void *p, size_t n) {
        int r;

        if (n == 0)
                return 0;
        r = buf_reserve(b, n, false);
        if (r < 0)
                return r;
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = 0;  /* always NUL-terminated, for callers that print it */
        return 0;
}

static int buf_append_str(struct buf *b, const char *s) {
        return buf_append(b, s, strlen(s));
}

static char *buf_steal(struct buf *b, size_t *ret_len) {
        char *d = b->data;

        *ret_len = b->len;
        *b = (struct buf) { .data = NULL };
        return d;
}

/*
 * The value to add for an absent parameter, or NULL when its default is not
 * configured; a required one is then recorded as missing.
 */
static const char *absent_param_value(const struct fillin_defaults *d, const struct op_param *p,
                                      struct fillin_result *ret) {
        const char *v = default_value(d, p->fill);

        if (!v && p->required)
                ret->missing[ret->n_missing++] = p;
        return v;
}

/* ---- query -------------------------------------------------------------- */

static int query_append_encoded(struct buf *b, const char *s) {
        static const char hex[] = "0123456789ABCDEF";

        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                int r;

                /* RFC 3986 unreserved characters go as they are; all else is %XX. */
                if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                    *p == '-' || *p == '.' || *p == '_' || *p == '~')
                        r = buf_append(b, p, 1);
                else {
                        char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
                        r = buf_append(b, e, sizeof(e));
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Whether a parameter sent empty takes the default: the operation needs it and
 * a client whose generator sends every field ("Cluster=") left it unset. */
static bool empty_takes_default(const struct api_param *p) {
        return p->empty && p->def && p->def->required && p->def->fill != OP_DEFAULT_NONE;
}

static int append_param(struct buf *b, const char *name, const char *value) {
        int r = 0;

        /* No '&' in front of the first parameter. */
        if (b->len > 0)
                r = buf_append(b, "&", 1);
        if (r >= 0)
                r = buf_append_str(b, name);
        if (r >= 0)
                r = buf_append(b, "=", 1);
        if (r >= 0)
                r = query_append_encoded(b, value);
        return r;
}

/* The client's pieces as sent, but an empty required one with its default. */
static int copy_query(const struct api_read *a, const struct fillin_defaults *d, struct buf *b,
                      struct fillin_result *ret) {
        for (size_t i = 0; i < a->n_params; i++) {
                const struct api_param *p = &a->params[i];
                const char *v = NULL;
                int r = 0;

                if (p->location != OP_PARAM_QUERY)
                        continue;
                /* Without a default it stays empty: upstream judges it. */
                if (empty_takes_default(p))
                        v = default_value(d, p->def->fill);
                if (v) {
                        r = append_param(b, p->def->name, v);
                        ret->n_added_query++;
                } else {
                        if (b->len > 0)
                                r = buf_append(b, "&", 1);
                        if (r >= 0)
                                r = buf_append(b, p->raw, p->raw_len);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int fill_query(const struct api_read *a, const struct fillin_defaults *d,
                      const char *query, size_t query_len, struct fillin_result *ret) {
        _cleanup_(buf_done) struct buf b = { .data = NULL };
        const struct operation *op = a->op;
        int r;

        r = copy_query(a, d, &b, ret);
        if (r < 0)
                return r;
        for (size_t i = 0; i < op->n_params; i++) {
                const struct op_param *p = &op->params[i];
                const char *v;

                if (p->location != OP_PARAM_QUERY || api_read_get(a, OP_PARAM_QUERY, p->name))
                        continue;
                v = absent_param_value(d, p, ret);
                if (!v)
                        continue;
                r = append_param(&b, p->name, v);
                if (r < 0)
                        return r;
                ret->n_added_query++;
        }
        /* Nothing changed: the client's bytes go as they are. */
        if (ret->n_added_query > 0)
                ret->query = buf_steal(&b, &ret->query_len);
        return 0;
}

/* ---- body --------------------------------------------------------------- */

/* Appends value as a JSON string (value is valid UTF-8). */
static int append_json_string(struct buf *b, const char *value) {
        static const char hex[] = "0123456789abcdef";
        int r;

        r = buf_append(b, "\"", 1);
        for (const unsigned char *p = (const unsigned char *) value; r >= 0 && *p; p++) {
                if (*p == '"' || *p == '\\') {
                        char e[2] = { '\\', (char) *p };
                        r = buf_append(b, e, sizeof(e));
                } else if (*p < 0x20) {
                        char e[6] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15] };
                        r = buf_append(b, e, sizeof(e));
                } else
                        r = buf_append(b, p, 1);
        }
        if (r >= 0)
                r = buf_append(b, "\"", 1);
        return r;
}

/* Appends "name":"value" (the generator allows only [A-Za-z0-9_] in names). */
static int append_member(struct buf *b, const char *name, const char *value) {
        int r;

        r = buf_append(b, "\"", 1);
        if (r >= 0)
                r = buf_append_str(b, name);
        if (r >= 0)
                r = buf_append(b, "\":", 2);
        if (r >= 0)
                r = append_json_string(b, value);
        return r;
}

/* A member sent empty ("" or null) whose default replaces its value in place. */
struct replacement {
        size_t start, end;
        const char *value;
};

static int compare_replacements(const void *x, const void *y) {
        const struct replacement *a = x, *b = y;

        return a->start < b->start ? -1 : a->start > b->start;
}

static size_t empty_members(const struct api_read *a, const struct fillin_defaults *d,
                            struct replacement *rep) {
        size_t n = 0;

        for (size_t i = 0; i < a->n_params && n < OPTABLE_MAX_PARAMS; i++) {
                const struct api_param *p = &a->params[i];
                const char *v;

                if (p->location != OP_PARAM_BODY || !empty_takes_default(p) || p->value_end == 0)
                        continue;
                v = default_value(d, p->def->fill);
                if (v)
                        rep[n++] = (struct replacement) { p->value_start, p->value_end, v };
        }
        qsort(rep, n, sizeof *rep, compare_replacements);
        return n;
}

/* The client's bytes from..len, with the replacements made. */
static int append_replaced(struct buf *out, const char *body, size_t from, size_t len,
                           const struct replacement *rep, size_t n_rep) {
        int r = 0;

        for (size_t i = 0; r >= 0 && i < n_rep; i++) {
                r = buf_append(out, body + from, rep[i].start - from);
                if (r >= 0)
                        r = append_json_string(out, rep[i].value);
                from = rep[i].end;
        }
        if (r >= 0)
                r = buf_append(out, body + from, len - from);
        return r;
}

/* The members to add to a body: "a":"x","b":"y" (no braces). */
static int absent_members(const struct api_read *a, const struct fillin_defaults *d, struct buf *members,
                          struct fillin_result *ret) {
        const struct operation *op = a->op;

        for (size_t i = 0; i < op->n_params; i++) {
                const struct op_param *p = &op->params[i];
                const char *v;
                int r = 0;

                if (p->location != OP_PARAM_BODY || api_read_get(a, OP_PARAM_BODY, p->name))
                        continue;
                v = absent_param_value(d, p, ret);
                if (!v)
                        continue;
                if (members->len > 0)
                        r = buf_append(members, ",", 1);
                if (r >= 0)
                        r = append_member(members, p->name, v);
                if (r < 0)
                        return r;
                ret->n_added_body++;
        }
        return 0;
}

static int fill_body(const struct api_read *a, const struct fillin_defaults *d, const char *body,
                     size_t body_len, struct fillin_result *ret) {
        _cleanup_(buf_done) struct buf members = { .data = NULL }, out = { .data = NULL };
        struct replacement rep[OPTABLE_MAX_PARAMS];
        size_t n_rep;
        int r;

        n_rep = a->body ? empty_members(a, d, rep) : 0;
        ret->n_added_body += n_rep;
        ret->n_replaced_body = n_rep;
        r = absent_members(a, d, &members, ret);
        if (r < 0)
                return r;
        if (ret->n_added_body > 0) {
                /* One allocation: bodies can be large, the additions are not. */
                r = buf_reserve(&out, body_len + members.len + 3, true);
                if (r < 0)
                        return r;
                if (!a->body) {
                        r = buf_append(&out, "{", 1);
                        if (r >= 0)
                                r = buf_append(&out, members.data, members.len);
                        if (r >= 0)
                                r = buf_append(&out, "}", 1);
                } else {
                        /* Client's bytes up to '{', our members, then the rest as sent. */
                        size_t brace = a->body_brace;

                        r = buf_append(&out, body, brace + 1);
                        if (r >= 0)
                                r = buf_append(&out, members.data, members.len);
                        if (r >= 0 && members.len > 0 && json_object_size(a->body) > 0)
                                r = buf_append(&out, ",", 1);
                        if (r >= 0)
                                r = append_replaced(&out, body, brace + 1, body_len, rep, n_rep);
                }
                if (r < 0)
                        return r;
                ret->body = buf_steal(&out, &ret->body_len);
        }
        /* Anything we forward as JSON must be labelled so for upstream. */
        if (a->body_unlabelled && (ret->body ? ret->body_len : body_len) > 0)
                ret->content_type_json = true;
        return 0;
}

/* ---- entry points ------------------------------------------------------- */

static int check_defaults(const struct fillin_defaults *d) {
        if (!d)
                return 0;
        if ((d->cluster && !utf8_valid(d->cluster)) ||
            (d->vpcid && !utf8_valid(d->vpcid)) ||
            (d->rpool && !utf8_valid(d->rpool)))
                return -EINVAL;
        return 0;
}

int fillin_apply_read(const struct api_read *a, const struct fillin_defaults *d,
                      const char *query, size_t query_len, const char *body, size_t body_len,
                      struct fillin_result *ret) {
        int r;

        assert(a && a->op && ret);
        assert(a->op->n_params <= OPTABLE_MAX_PARAMS);
        assert(a->error_kind == API_READ_OK);
        assert(query || query_len == 0);
        assert(body || body_len == 0);

        *ret = (struct fillin_result) { .body_error = FILLIN_BODY_OK };
        r = check_defaults(d);
        if (r >= 0)
                r = fill_query(a, d, query, query_len, ret);
        if (r >= 0 && a->op->has_body)
                r = fill_body(a, d, body, body_len, ret);
        if (r < 0) {
                fillin_result_done(ret);
                return r;
        }
        return 0;
}

int fillin_canonical_query(const struct api_read *a, const struct fillin_defaults *d,
                           struct fillin_result *ret) {
        _cleanup_(buf_done) struct buf b = { .data = NULL };
        const struct operation *op;
        int r;

        assert(a && a->op && ret);
        assert(a->error_kind == API_READ_OK);
        op = a->op;
        *ret = (struct fillin_result) { .body_error = FILLIN_BODY_OK };
        r = check_defaults(d);
        for (size_t i = 0; r >= 0 && i < op->n_params; i++) {
                const struct op_param *p = &op->params[i];
                const struct api_param *sent;
                const char *v;

                if (p->location != OP_PARAM_QUERY)
                        continue;
                sent = api_read_get(a, OP_PARAM_QUERY, p->name);
                if (sent && !(empty_takes_default(sent) && default_value(d, p->fill)))
                        v = sent->value;
                else
                        v = absent_param_value(d, p, ret);
                if (v)
                        r = append_param(&b, p->name, v);
        }
        if (r < 0) {
                fillin_result_done(ret);
                return r;
        }
        if (b.len > 0)
                ret->query = buf_steal(&b, &ret->query_len);
        return 0;
}

/* A reading's refusal, as a result that fillin_result_envelope() turns into the 400. */
static void refused_result(const struct api_read *a, struct fillin_result *ret) {
        *ret = (struct fillin_result) { .body_error = FILLIN_BODY_REFUSED };
        switch (a->error_kind) {
        case API_READ_INVALID_JSON:
                ret->body_error = FILLIN_BODY_INVALID_JSON;
                ret->error_line = a->error_line;
                ret->error_column = a->error_column;
                memcpy(ret->error_text, a->error_text, sizeof ret->error_text);
                break;
        case API_READ_NOT_OBJECT:
                ret->body_error = FILLIN_BODY_NOT_OBJECT;
                ret->json_type = a->json_type;
                break;
        default:
                break;
        }
        snprintf(ret->refused, sizeof ret->refused, "%s", a->error);
}

int fillin_apply(const struct operation *op, const struct fillin_defaults *d,
                 const char *query, size_t query_len,
                 const char *content_type,
                 const char *body, size_t body_len,
                 struct fillin_result *ret) {
        _cleanup_(api_read_done) struct api_read a = { .op = NULL };
        int r;

        assert(op && ret);
        r = api_read(op, API_READ_OPEN, query, query_len, content_type, body, body_len, &a);
        if (r == -EBADMSG) {
                refused_result(&a, ret);
                return check_defaults(d);
        }
        if (r < 0) {
                *ret = (struct fillin_result) { .body_error = FILLIN_BODY_OK };
                return r;
        }
        return fillin_apply_read(&a, d, query, query_len, body, body_len, ret);
}

void fillin_result_done(struct fillin_result *ret) {
        if (!ret)
                return;
        free(ret->query);
        free(ret->body);
        *ret = (struct fillin_result) { .body_error = FILLIN_BODY_OK };
}

bool fillin_result_is_valid(const struct fillin_result *r) {
        assert(r);
        return r->body_error == FILLIN_BODY_OK && r->n_missing == 0;
}

/* ABP's validation envelope naming each required parameter still missing. */
static char *missing_envelope(const struct fillin_result *r) {
        struct envelope_violation v[OPTABLE_MAX_PARAMS];
        char hints[OPTABLE_MAX_PARAMS][128];
        char members[OPTABLE_MAX_PARAMS][64];

        assert(r->n_missing <= OPTABLE_MAX_PARAMS);
        for (size_t i = 0; i < r->n_missing; i++) {
                const struct op_param *p = r->missing[i];
                const char *key = op_default_to_string(p->fill);

                /* Say which setting would have filled it: the usual cause. */
                if (key)
                        snprintf(hints[i], sizeof(hints[i]),
                                 "The %s field is required (no [defaults] %s is configured).", p->name, key);
                else
                        snprintf(hints[i], sizeof(hints[i]), "The %s field is required.", p->name);
                /* ABP camelCases member names ("Id" -> "id"), as upstream answers. */
                snprintf(members[i], sizeof(members[i]), "%s", p->name);
                members[i][0] = (char) ascii_lower((unsigned char) members[i][0]);
                v[i] = (struct envelope_violation) { .message = hints[i], .member = members[i] };
        }
        /* ABP's own wording, so clients that match on it keep working. */
        return envelope_error("Your request is not valid!", "The following errors were detected during validation.",
                              false, v, r->n_missing);
}

int fillin_result_envelope(const struct fillin_result *r, char **ret) {
        char *e;

        assert(r);
        assert(ret);

        *ret = NULL;
        if (r->body_error != FILLIN_BODY_OK)
                e = envelope_error(r->refused, NULL, false, NULL, 0);   /* the reading's own words */
        else if (r->n_missing > 0)
                e = missing_envelope(r);
        else
                return 0;
        if (!e)
                return -ENOMEM;
        *ret = e;
        return 1;
}
