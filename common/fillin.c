/* SPDX-License-Identifier: MIT */
#include "fillin.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "envelope.h"

/*
 * Pure functions: nothing here logs (the proxy decides what a request is worth
 * logging) and nothing keeps state.  jansson ships json_decrefp() for _cleanup_.
 */

_Static_assert(sizeof(((struct fillin_result *) NULL)->error_text) == JSON_ERROR_TEXT_LENGTH,
               "error_text must hold jansson's message");

/* ---- small helpers ------------------------------------------------------ */

static inline int ascii_lower(unsigned char c) {
        return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* a (a_len bytes, may hold anything) equals NUL-terminated name, ASCII case-insensitively. */
static bool name_equal(const char *a, size_t a_len, const char *name) {
        size_t i;

        for (i = 0; i < a_len; i++)
                if (name[i] == 0 || ascii_lower((unsigned char) a[i]) != ascii_lower((unsigned char) name[i]))
                        return false;
        return name[i] == 0;
}

static bool is_json_blank(char c) {
        /* RFC 8259 whitespace, exactly what jansson skips. */
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
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

/*
 * Length of the valid UTF-8 sequence at p (strict: no overlongs, surrogates
 * or values past U+10FFFF, as JSON text needs), 0 if there is none.  Stops at
 * a NUL, which is never a continuation byte.
 */
static size_t utf8_sequence_length(const unsigned char *p) {
        unsigned n;
        uint32_t cp;

        if (*p < 0x80)
                return 1;
        if (*p >= 0xc2 && *p <= 0xdf)
                n = 1, cp = *p & 0x1f;
        else if (*p >= 0xe0 && *p <= 0xef)
                n = 2, cp = *p & 0x0f;
        else if (*p >= 0xf0 && *p <= 0xf4)
                n = 3, cp = *p & 0x07;
        else
                return 0;
        for (unsigned i = 1; i <= n; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n + 1;
}

static bool utf8_valid(const char *s) {
        for (const unsigned char *p = (const unsigned char *) s; *p; ) {
                size_t n = utf8_sequence_length(p);

                if (n == 0)
                        return false;
                p += n;
        }
        return true;
}

/*
 * jansson quotes the offending input in its messages, which may be invalid
 * UTF-8 (or cut mid-character at 160 bytes); the envelope is JSON, so such
 * bytes become '?'.
 */
static void utf8_sanitize(char *s) {
        for (unsigned char *p = (unsigned char *) s; *p; ) {
                size_t n = utf8_sequence_length(p);

                if (n == 0) {
                        *p++ = '?';
                        continue;
                }
                p += n;
        }
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

/*
 * Whether the raw query name (n bytes) decodes to name, as ASP.NET decodes it:
 * '+' is a space, "%XX" is a byte, a '%' not followed by two hex digits stays
 * literal.  Decoded on the fly, so there is no buffer to size.
 */
static bool query_name_equal(const char *raw, size_t n, const char *name) {
        size_t i = 0, j = 0;

        while (i < n) {
                unsigned char c = (unsigned char) raw[i];

                if (c == '+') {
                        c = ' ';
                        i++;
                } else if (c == '%' && i + 2 < n &&
                           unhexchar(raw[i + 1]) >= 0 && unhexchar(raw[i + 2]) >= 0) {
                        c = (unsigned char) (unhexchar(raw[i + 1]) << 4 | unhexchar(raw[i + 2]));
                        i += 3;
                } else
                        i++;

                if (name[j] == 0 || ascii_lower(c) != ascii_lower((unsigned char) name[j]))
                        return false;
                j++;
        }
        return name[j] == 0;
}

/* Whether the query holds parameter name, in any spelling ASP.NET would bind. */
static bool query_has(const char *query, size_t len, const char *name) {
        size_t i = 0;

        while (i < len) {
                const char *seg = query + i, *amp, *eq;
                size_t seg_len, name_len;

                /* ASP.NET Core splits on '&' only. */
                amp = memchr(seg, '&', len - i);
                seg_len = amp ? (size_t) (amp - seg) : len - i;
                eq = memchr(seg, '=', seg_len);
                name_len = eq ? (size_t) (eq - seg) : seg_len;

                if (name_len > 0 && query_name_equal(seg, name_len, name))
                        return true;
                i += seg_len + 1;
        }
        return false;
}

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

static int fill_query(const struct operation *op, const struct fillin_defaults *d,
                      const char *query, size_t query_len, struct fillin_result *ret) {
        _cleanup_(buf_done) struct buf b = { .data = NULL };
        int r;

        for (size_t i = 0; i < op->n_params; i++) {
                const struct op_param *p = &op->params[i];
                const char *v;

                if (p->location != OP_PARAM_QUERY || query_has(query, query_len, p->name))
                        continue;

                v = absent_param_value(d, p, ret);
                if (!v)
                        continue;

                if (b.len == 0) {
                        r = buf_append(&b, query, query_len);
                        if (r < 0)
                                return r;
                }
                /* No '&' in front of the first parameter, nor after a trailing one. */
                if (b.len > 0 && b.data[b.len - 1] != '&') {
                        r = buf_append(&b, "&", 1);
                        if (r < 0)
                                return r;
                }
                r = buf_append_str(&b, p->name);
                if (r >= 0)
                        r = buf_append(&b, "=", 1);
                if (r >= 0)
                        r = query_append_encoded(&b, v);
                if (r < 0)
                        return r;
                ret->n_added_query++;
        }

        if (ret->n_added_query > 0)
                ret->query = buf_steal(&b, &ret->query_len);
        return 0;
}

/* ---- body --------------------------------------------------------------- */

enum body_kind {
        BODY_SKIP,      /* not ours to inspect: forwarded untouched */
        BODY_JSON,      /* labelled JSON */
        BODY_UNLABELLED, /* JSON we inspect, but the client did not say so */
};

static bool media_type_is(const char *ct, size_t len, const char *type) {
        return name_equal(ct, len, type);
}

bool fillin_content_type_is_json(const char *content_type) {
        const char *s = content_type, *end;
        size_t len;

        if (!s)
                return false;
        s += strspn(s, " \t");
        end = s + strcspn(s, ";");
        while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
        len = (size_t) (end - s);

        if (media_type_is(s, len, "application/json") || media_type_is(s, len, "text/json"))
                return true;
        /* application/ANYTHING+json, e.g. application/merge-patch+json */
        return len > strlen("application/+json") &&
               name_equal(s, strlen("application/"), "application/") &&
               name_equal(end - strlen("+json"), strlen("+json"), "+json");
}

static bool content_type_is_form(const char *content_type) {
        const char *s = content_type;
        size_t len;

        s += strspn(s, " \t");
        len = strcspn(s, "; \t");
        return media_type_is(s, len, "application/x-www-form-urlencoded");
}

/* Length of a UTF-8 byte order mark at the start: ASP.NET accepts one, jansson does not. */
static size_t bom_length(const char *body, size_t len) {
        return len >= 3 && memcmp(body, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
}

static enum body_kind classify_body(const char *content_type, const char *body, size_t len) {
        size_t i;

        if (!content_type)
                return BODY_UNLABELLED;
        if (fillin_content_type_is_json(content_type))
                return BODY_JSON;
        if (!content_type_is_form(content_type))
                return BODY_SKIP;

        /*
         * "curl -d '{...}'" labels JSON as a form.  A real form body never
         * starts with '{' (it would be a parameter name), so such a body is
         * taken as JSON and relabelled; upstream would refuse the form type.
         */
        for (i = bom_length(body, len); i < len && is_json_blank(body[i]); i++)
                ;
        return i < len && body[i] == '{' ? BODY_UNLABELLED : BODY_SKIP;
}

static const char *json_type_name(const json_t *j) {
        switch (json_typeof(j)) {
        case JSON_OBJECT:
                return "object";
        case JSON_ARRAY:
                return "array";
        case JSON_STRING:
                return "string";
        case JSON_INTEGER:
        case JSON_REAL:
                return "number";
        case JSON_TRUE:
                return "true";
        case JSON_FALSE:
                return "false";
        case JSON_NULL:
                return "null";
        }
        return "unknown";
}

static bool object_has(json_t *obj, const char *name) {
        const char *key;
        size_t key_len;
        json_t *value;

        /* Linear and case-insensitive: bodies have a handful of members. */
        json_object_keylen_foreach(obj, key, key_len, value)
                if (name_equal(key, key_len, name))
                        return true;
        return false;
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

/* Length of the JSON number (RFC 8259 grammar) starting at s, 0 if there is none. */
static size_t json_number_length(const char *s, size_t len) {
        size_t i = 0;

        if (i < len && s[i] == '-')
                i++;
        if (i < len && s[i] == '0')
                i++;
        else if (i < len && s[i] >= '1' && s[i] <= '9')
                while (i < len && is_digit(s[i]))
                        i++;
        else
                return 0;
        if (i + 1 < len && s[i] == '.' && is_digit(s[i + 1]))
                for (i += 2; i < len && is_digit(s[i]); i++)
                        ;
        if (i < len && (s[i] == 'e' || s[i] == 'E')) {
                size_t j = i + 1;

                if (j < len && (s[j] == '+' || s[j] == '-'))
                        j++;
                if (j < len && is_digit(s[j]))
                        for (i = j; i < len && is_digit(s[i]); i++)
                                ;
        }
        return i;
}

/*
 * jansson turns every number into a double (JSON_DECODE_INT_AS_REAL) and
 * refuses one beyond DBL_MAX ("real number overflow"), yet 1e400 or a
 * 400-digit integer is valid JSON, and we never use number values.  For that
 * error the body is parsed again from this copy, in which every number
 * outside strings is "0" padded with blanks to the same length: structure,
 * keys and the position of any other error stay as they were.
 */
static char *neutralise_numbers(const char *s, size_t len) {
        bool in_string = false;
        char *c;

        c = malloc(len ? len : 1);
        if (!c)
                return NULL;
        memcpy(c, s, len);
        for (size_t i = 0; i < len; ) {
                size_t n;

                if (in_string) {
                        if (c[i] == '\\')
                                i += 2;
                        else
                                in_string = c[i++] != '"';
                        continue;
                }
                if (c[i] == '"') {
                        in_string = true;
                        i++;
                        continue;
                }
                n = json_number_length(c + i, len - i);
                if (n == 0) {
                        i++;
                        continue;
                }
                c[i] = '0';
                memset(c + i + 1, ' ', n - 1);
                i += n;
        }
        return c;
}

/* Appends "name":"value" with value escaped as a JSON string (value is valid UTF-8). */
static int append_member(struct buf *b, const char *name, const char *value) {
        static const char hex[] = "0123456789abcdef";
        int r;

        r = buf_append(b, "\"", 1);
        if (r >= 0)
                r = buf_append_str(b, name);  /* the generator allows only [A-Za-z0-9_] */
        if (r >= 0)
                r = buf_append(b, "\":\"", 3);
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

static int fill_body(const struct operation *op, const struct fillin_defaults *d,
                     const char *content_type, const char *body, size_t body_len,
                     struct fillin_result *ret) {
        _cleanup_(buf_done) struct buf members = { .data = NULL };
        _cleanup_(json_decrefp) json_t *root = NULL;
        enum body_kind kind;
        size_t bom = 0, brace = 0;
        int r;

        kind = classify_body(content_type, body, body_len);
        if (kind == BODY_SKIP)
                return 0;

        if (body_len > 0) {
                json_error_t error;

                bom = bom_length(body, body_len);
                /*
                 * INT_AS_REAL: integers beyond 64 bits are valid JSON and must not
                 * be refused (we never re-serialise them).  DECODE_ANY: so a
                 * scalar or array gets "not an object", not a parse error.  No
                 * DISABLE_EOF_CHECK: trailing garbage is an error.
                 */
                root = json_loadb(body + bom, body_len - bom,
                                  JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &error);
                if (!root && json_error_code(&error) == json_error_numeric_overflow) {
                        _cleanup_free_ char *copy = neutralise_numbers(body + bom, body_len - bom);

                        if (!copy)
                                return -ENOMEM;
                        root = json_loadb(copy, body_len - bom,
                                          JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &error);
                }
                if (!root) {
                        if (json_error_code(&error) == json_error_out_of_memory)
                                return -ENOMEM;
                        ret->body_error = FILLIN_BODY_INVALID_JSON;
                        ret->error_line = error.line;
                        /* The BOM we skipped is a character of line 1. */
                        ret->error_column = error.column + (error.line == 1 && bom > 0);
                        snprintf(ret->error_text, sizeof(ret->error_text), "%s", error.text);
                        utf8_sanitize(ret->error_text);
                        return 0;
                }
                if (!json_is_object(root)) {
                        ret->body_error = FILLIN_BODY_NOT_OBJECT;
                        ret->json_type = json_type_name(root);
                        return 0;
                }
                /* A valid object starts with '{' after the BOM and blanks. */
                for (brace = bom; brace < body_len && is_json_blank(body[brace]); brace++)
                        ;
                assert(brace < body_len && body[brace] == '{');
        }

        for (size_t i = 0; i < op->n_params; i++) {
                const struct op_param *p = &op->params[i];
                const char *v;

                if (p->location != OP_PARAM_BODY || (root && object_has(root, p->name)))
                        continue;

                v = absent_param_value(d, p, ret);
                if (!v)
                        continue;
                if (members.len > 0) {
                        r = buf_append(&members, ",", 1);
                        if (r < 0)
                                return r;
                }
                r = append_member(&members, p->name, v);
                if (r < 0)
                        return r;
                ret->n_added_body++;
        }

        if (ret->n_added_body > 0) {
                _cleanup_(buf_done) struct buf out = { .data = NULL };

                /* One allocation: bodies can be large, the additions are not. */
                r = buf_reserve(&out, body_len + members.len + 3, true);
                if (r < 0)
                        return r;
                if (body_len == 0) {
                        r = buf_append(&out, "{", 1);
                        if (r >= 0)
                                r = buf_append(&out, members.data, members.len);
                        if (r >= 0)
                                r = buf_append(&out, "}", 1);
                } else {
                        /* Client's bytes up to '{', our members, then the rest as sent. */
                        r = buf_append(&out, body, brace + 1);
                        if (r >= 0)
                                r = buf_append(&out, members.data, members.len);
                        if (r >= 0 && json_object_size(root) > 0)
                                r = buf_append(&out, ",", 1);
                        if (r >= 0)
                                r = buf_append(&out, body + brace + 1, body_len - brace - 1);
                }
                if (r < 0)
                        return r;
                ret->body = buf_steal(&out, &ret->body_len);
        }

        /* Anything we forward as JSON must be labelled so for upstream. */
        if (kind == BODY_UNLABELLED && (ret->body ? ret->body_len : body_len) > 0)
                ret->content_type_json = true;
        return 0;
}

/* "an array", "a string", "null": for the NOT_OBJECT message. */
static const char *json_type_phrase(const char *type) {
        static const char *const phrases[][2] = {
                { "array", "an array" },
                { "string", "a string" },
                { "number", "a number" },
        };

        if (!type)
                return "this value";
        for (size_t i = 0; i < ELEMENTSOF(phrases); i++)
                if (strcmp(type, phrases[i][0]) == 0)
                        return phrases[i][1];
        return type;  /* true, false, null */
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

int fillin_apply(const struct operation *op, const struct fillin_defaults *d,
                 const char *query, size_t query_len,
                 const char *content_type,
                 const char *body, size_t body_len,
                 struct fillin_result *ret) {
        int r;

        assert(op);
        assert(op->n_params <= OPTABLE_MAX_PARAMS);
        assert(query || query_len == 0);
        assert(body || body_len == 0);
        assert(ret);

        *ret = (struct fillin_result) { .body_error = FILLIN_BODY_OK };

        r = check_defaults(d);
        if (r < 0)
                return r;

        r = fill_query(op, d, query, query_len, ret);
        if (r >= 0 && op->has_body)
                r = fill_body(op, d, content_type, body, body_len, ret);
        if (r < 0) {
                fillin_result_done(ret);
                return r;
        }
        return 0;
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

int fillin_result_envelope(const struct fillin_result *r, char **ret) {
        struct envelope_violation v[OPTABLE_MAX_PARAMS];
        char hints[OPTABLE_MAX_PARAMS][128];
        char *members[OPTABLE_MAX_PARAMS] = { NULL };
        _cleanup_free_ char *message = NULL;
        char *e;

        assert(r);
        assert(ret);

        *ret = NULL;
        switch (r->body_error) {
        case FILLIN_BODY_INVALID_JSON:
                if (asprintf(&message, "request body is not valid JSON: line %d, column %d: %s",
                             r->error_line, r->error_column, r->error_text) < 0)
                        return -ENOMEM;
                e = envelope_error(message, NULL, false, NULL, 0);
                break;
        case FILLIN_BODY_NOT_OBJECT:
                if (asprintf(&message, "request body must be a JSON object, not %s",
                             json_type_phrase(r->json_type)) < 0)
                        return -ENOMEM;
                e = envelope_error(message, NULL, false, NULL, 0);
                break;
        case FILLIN_BODY_OK:
        default:
                if (r->n_missing == 0)
                        return 0;
                assert(r->n_missing <= OPTABLE_MAX_PARAMS);
                for (size_t i = 0; i < r->n_missing; i++) {
                        const struct op_param *p = r->missing[i];
                        const char *key = op_default_to_string(p->fill);

                        /* Say which setting would have filled it: the usual cause. */
                        if (key)
                                snprintf(hints[i], sizeof(hints[i]),
                                         "The %s field is required (no [defaults] %s is configured).",
                                         p->name, key);
                        else
                                snprintf(hints[i], sizeof(hints[i]), "The %s field is required.", p->name);
                        /* ABP camelCases member names ("Id" -> "id"), as upstream answers. */
                        members[i] = strdup(p->name);
                        if (!members[i]) {
                                for (size_t j = 0; j < i; j++)
                                        free(members[j]);
                                return -ENOMEM;
                        }
                        members[i][0] = (char) ascii_lower((unsigned char) members[i][0]);
                        v[i] = (struct envelope_violation) {
                                .message = hints[i],
                                .member = members[i],
                        };
                }
                /* ABP's own wording, so clients that match on it keep working. */
                e = envelope_error("Your request is not valid!",
                                   "The following errors were detected during validation.",
                                   false, v, r->n_missing);
                for (size_t i = 0; i < r->n_missing; i++)
                        free(members[i]);
                break;
        }
        if (!e)
                return -ENOMEM;
        *ret = e;
        return 1;
}
