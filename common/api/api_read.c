/* SPDX-License-Identifier: MIT */
#include "common/api/api_read.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/base/cleanup.h"
#include "common/base/query.h"
#include "common/base/utf8.h"
#include "common/http/json_span.h"

_printf_(2, 3)
static int refuse(struct api_read *a, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(a->error, sizeof a->error, fmt, ap);
        va_end(ap);
        utf8_sanitize(a->error);
        if (a->error_kind == API_READ_OK)
                a->error_kind = API_READ_REFUSED;
        return -EBADMSG;
}

static const char *op_name(const struct operation *op) {
        const char *slash = op ? strrchr(op->path, '/') : NULL;

        return slash ? slash + 1 : "this operation";
}

/* ---- names -------------------------------------------------------------- */

/*
 * Why upstream might read a decoded name otherwise than denvrd, or NULL.
 * Model binding gives '.', '[' and ']' in a form or query name a meaning
 * ("input.Id", "Id[0]"); a JSON member name has none, so body members are
 * judged without them (dotted: false).
 */
static const char *name_problem(const char *name, size_t len, bool dotted) {
        if (len == 0)
                return "an empty parameter name";
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) name[i];

                if (dotted && (c == '.' || c == '[' || c == ']'))
                        return "a dotted or bracketed name (upstream binds \"input.Id\" or \"Id[]\" in place of \"Id\")";
                /* .NET folds some letters onto ASCII ones: U+0131 matches 'I'. */
                if (c < 0x20 || c >= 0x7f)
                        return "a name with a control or non-ASCII character";
        }
        return NULL;
}

/* The table's parameter of op at loc named name (decoded), ASCII case-insensitively. */
static const struct op_param *find_def(const struct operation *op, enum op_param_location loc,
                                       const char *name) {
        if (!op)
                return NULL;
        for (size_t i = 0; i < op->n_params; i++)
                if (op->params[i].location == loc && strcasecmp(op->params[i].name, name) == 0)
                        return &op->params[i];
        return NULL;
}

static int add_param(struct api_read *a, struct api_param **ret) {
        struct api_param *p;

        p = reallocarray(a->params, a->n_params + 1, sizeof *p);
        if (!p)
                return -ENOMEM;
        a->params = p;
        *ret = &p[a->n_params++];
        **ret = (struct api_param) { .location = OP_PARAM_QUERY };
        return 0;
}

static int compare_names(const void *x, const void *y) {
        const struct api_param *const *a = x, *const *b = y;

        return strcasecmp((*a)->name, (*b)->name);
}

/* A name twice in any case: ASP.NET binds the first, System.Text.Json the last. */
static int refuse_duplicates(struct api_read *a) {
        _cleanup_free_ const struct api_param **sorted = NULL;

        if (a->n_params < 2)
                return 0;
        sorted = calloc(a->n_params, sizeof *sorted);
        if (!sorted)
                return -ENOMEM;
        for (size_t i = 0; i < a->n_params; i++)
                sorted[i] = &a->params[i];
        /* Sorted, not compared pairwise: a body may hold many members. */
        qsort(sorted, a->n_params, sizeof *sorted, compare_names);
        for (size_t i = 1; i < a->n_params; i++)
                if (strcasecmp(sorted[i - 1]->name, sorted[i]->name) == 0)
                        return refuse(a, "parameter \"%.64s\" is given twice (in the query or the body, in "
                                      "some case or encoding); upstream would bind only one of them, so "
                                      "denvrd refuses to guess which", sorted[i]->name);
        return 0;
}

/*
 * Finds p's definition where it was sent (query or JSON body): one the operation
 * takes in the other place is refused, and so is one it lacks, for a caller
 * held to an operation list.
 */
static int place_param(struct api_read *a, struct api_param *p, enum op_param_location in,
                       enum api_read_mode mode) {
        const char *what = in == OP_PARAM_QUERY ? "query parameter" : "body member";

        if (find_def(a->op, in == OP_PARAM_QUERY ? OP_PARAM_BODY : OP_PARAM_QUERY, p->name))
                return refuse(a, "%s \"%.64s\" refused: %s takes it in %s", what, p->name, op_name(a->op),
                              in == OP_PARAM_QUERY ? "its JSON body" : "the query");
        p->def = find_def(a->op, in, p->name);
        if (!p->def && mode == API_READ_STRICT)
                return refuse(a, "%s \"%.64s\" is not a parameter of %s (callers held to an operation list "
                              "may send only the operation's own parameters)", what, p->name, op_name(a->op));
        return 0;
}

/* ---- query -------------------------------------------------------------- */

static int read_query_piece(struct api_read *a, enum api_read_mode mode, const struct query_field *f) {
        struct api_param *p;
        const char *why;
        ssize_t k;
        int r;

        r = add_param(a, &p);
        if (r < 0)
                return r;
        p->raw = f->raw;
        p->raw_len = f->raw_len;
        p->empty = f->value_len == 0;
        k = query_decode_dup(f->name, f->name_len, &p->name);
        if (k == -ENOMEM)
                return -ENOMEM;
        if (k < 0)
                return refuse(a, "query parameter \"%.*s\" has a bad percent-encoding in its name",
                              (int) (f->name_len > 64 ? 64 : f->name_len), f->name);
        why = name_problem(p->name, (size_t) k, true);
        if (why)
                return refuse(a, "query parameter \"%.64s\" refused: %s", p->name, why);
        k = query_decode_dup(f->value, f->value_len, &p->value);
        if (k == -ENOMEM)
                return -ENOMEM;
        if (k < 0)
                return refuse(a, "query parameter \"%.64s\" has a bad percent-encoding in its value", p->name);
        p->value_len = (size_t) k;
        if (!a->op)
                return 0;
        return place_param(a, p, OP_PARAM_QUERY, mode);
}

static int read_query(struct api_read *a, enum api_read_mode mode, const char *query, size_t len) {
        struct query_field f;
        size_t pos = 0;

        while (query_next(query, len, &pos, &f)) {
                int r = read_query_piece(a, mode, &f);

                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- body --------------------------------------------------------------- */

static bool media_type_is(const char *s, size_t len, const char *type) {
        return strlen(type) == len && strncasecmp(s, type, len) == 0;
}

/* The media type of a Content-Type value, without parameters or blanks. */
static const char *media_type(const char *ct, size_t *ret_len) {
        const char *s = ct + strspn(ct, " \t"), *end = s + strcspn(s, ";");

        while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
        *ret_len = (size_t) (end - s);
        return s;
}

bool api_content_type_is_json(const char *content_type) {
        const char *s;
        size_t len;

        if (!content_type)
                return false;
        s = media_type(content_type, &len);
        if (media_type_is(s, len, "application/json") || media_type_is(s, len, "text/json"))
                return true;
        /* application/ANYTHING+json, e.g. application/merge-patch+json */
        return len > strlen("application/+json") && strncasecmp(s, "application/", 12) == 0 &&
               strncasecmp(s + len - 5, "+json", 5) == 0;
}

static bool is_json_blank(char c) {
        /* RFC 8259 whitespace, exactly what jansson skips. */
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Length of a UTF-8 byte order mark at the start: ASP.NET accepts one, jansson does not. */
static size_t bom_length(const char *body, size_t len) {
        return len >= 3 && memcmp(body, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
}

/* Offset of the first byte past the BOM and blanks. */
static size_t first_byte(const char *body, size_t len) {
        size_t i;

        for (i = bom_length(body, len); i < len && is_json_blank(body[i]); i++)
                ;
        return i;
}

/*
 * Whether a body is read as JSON: labelled so, unlabelled, or labelled a form
 * by "curl -d '{...}'" (a real form body never starts with '{': that would
 * be a parameter name).  Sets *unlabelled when it must be relabelled.
 */
static bool body_is_json(const char *content_type, const char *body, size_t len, bool *unlabelled) {
        const char *s;
        size_t n, i;

        *unlabelled = false;
        if (api_content_type_is_json(content_type))
                return true;
        *unlabelled = true;
        if (!content_type)
                return true;
        s = media_type(content_type, &n);
        if (!media_type_is(s, n, "application/x-www-form-urlencoded"))
                return false;
        i = first_byte(body, len);
        return i < len && body[i] == '{';
}

/* A form upstream would bind fields from (not curl's JSON labelled a form). */
static bool is_form(const char *content_type, const char *body, size_t len) {
        bool unlabelled;
        const char *s;
        size_t n;

        if (!content_type || body_is_json(content_type, body, len, &unlabelled))
                return false;
        s = media_type(content_type, &n);
        return media_type_is(s, n, "application/x-www-form-urlencoded") ||
               (n >= 10 && strncasecmp(s, "multipart/", 10) == 0);
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
                for (i++; i < len && is_digit(s[i]); i++)
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

/* "an array", "a string", "null": for the message. */
static const char *json_type_phrase(const char *type) {
        static const char *const phrases[][2] = {
                { "array", "an array" },
                { "string", "a string" },
                { "number", "a number" },
        };

        for (size_t i = 0; i < ELEMENTSOF(phrases); i++)
                if (strcmp(type, phrases[i][0]) == 0)
                        return phrases[i][1];
        return type;  /* true, false, null */
}

_Static_assert(sizeof(((struct api_read *) NULL)->error_text) == JSON_ERROR_TEXT_LENGTH,
               "error_text must hold jansson's message");

#define JSON_FLAGS (JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES)

static int parse_json(struct api_read *a, const char *body, size_t len) {
        size_t bom = bom_length(body, len);
        json_error_t error;

        /*
         * INT_AS_REAL: integers beyond 64 bits are valid JSON and must not be
         * refused (we never re-serialise them).  DECODE_ANY: so a scalar or
         * array gets "not an object", not a parse error.  REJECT_DUPLICATES:
         * two members of one name, where only one would be bound.
         */
        a->body = json_loadb(body + bom, len - bom, JSON_FLAGS, &error);
        if (!a->body && json_error_code(&error) == json_error_numeric_overflow) {
                _cleanup_free_ char *copy = neutralise_numbers(body + bom, len - bom);

                if (!copy)
                        return -ENOMEM;
                a->body = json_loadb(copy, len - bom, JSON_FLAGS, &error);
        }
        if (!a->body) {
                if (json_error_code(&error) == json_error_out_of_memory)
                        return -ENOMEM;
                if (json_error_code(&error) == json_error_duplicate_key)
                        return refuse(a, "request body names a member twice (line %d, column %d); "
                                      "upstream would bind only one of them", error.line, error.column);
                a->error_kind = API_READ_INVALID_JSON;
                a->error_line = error.line;
                /* The BOM we skipped is a character of line 1. */
                a->error_column = error.column + (error.line == 1 && bom > 0);
                snprintf(a->error_text, sizeof a->error_text, "%s", error.text);
                utf8_sanitize(a->error_text);
                return refuse(a, "request body is not valid JSON: line %d, column %d: %s", a->error_line,
                              a->error_column, a->error_text);
        }
        if (!json_is_object(a->body)) {
                a->error_kind = API_READ_NOT_OBJECT;
                a->json_type = json_type_name(a->body);
                return refuse(a, "request body must be a JSON object, not %s", json_type_phrase(a->json_type));
        }
        a->body_brace = first_byte(body, len);
        assert(a->body_brace < len && body[a->body_brace] == '{');
        return 0;
}

static int read_member(struct api_read *a, enum api_read_mode mode, const char *key, size_t key_len,
                       json_t *v) {
        struct api_param *p;
        const char *why;
        int r;

        r = add_param(a, &p);
        if (r < 0)
                return r;
        p->location = OP_PARAM_BODY;
        p->name = strndup(key, key_len);
        if (!p->name)
                return -ENOMEM;
        why = name_problem(key, key_len, false);
        if (why)
                return refuse(a, "body member \"%.64s\" refused: %s", p->name, why);
        p->empty = json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0);
        if (json_is_string(v)) {
                p->value = strndup(json_string_value(v), json_string_length(v));
                if (!p->value)
                        return -ENOMEM;
                p->value_len = json_string_length(v);
        }
        return place_param(a, p, OP_PARAM_BODY, mode);
}

static int read_body(struct api_read *a, enum api_read_mode mode, const char *content_type,
                     const char *body, size_t len) {
        const char *key;
        size_t key_len;
        json_t *v;
        int r;

        if (len == 0) {
                /* Counts as "{}": what fill-in adds to it goes as JSON. */
                a->body_unlabelled = a->op && a->op->has_body && !api_content_type_is_json(content_type);
                return 0;
        }
        if (!a->op) {
                /* Outside the table the method rule decides; a held caller sends no form. */
                if (mode == API_READ_STRICT && is_form(content_type, body, len))
                        return refuse(a, "a %.64s body is refused: upstream would read its fields as "
                                      "parameters", content_type);
                return 0;
        }
        if (!a->op->has_body)
                return refuse(a, "%s takes no request body (its parameters go in the query)", op_name(a->op));
        if (!body_is_json(content_type, body, len, &a->body_unlabelled))
                return refuse(a, "a request body for %s must be JSON (Content-Type: application/json), not "
                              "%.64s: upstream reads a form's fields before the query", op_name(a->op),
                              content_type);
        r = parse_json(a, body, len);
        if (r < 0)
                return r;
        json_object_keylen_foreach(a->body, key, key_len, v) {
                r = read_member(a, mode, key, key_len, v);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Where each body member's value is in the client's bytes, for fill-in to replace one. */
static int note_span(const struct json_span *span, void *userdata) {
        struct api_read *a = userdata;

        if (span->key_len >= sizeof span->key)
                return 0;
        for (size_t i = 0; i < a->n_params; i++) {
                struct api_param *p = &a->params[i];

                if (p->location == OP_PARAM_BODY && strcmp(p->name, span->key) == 0) {
                        p->value_start = span->value_start;
                        p->value_end = span->value_end;
                }
        }
        return 0;
}

/* ---- entry points ------------------------------------------------------- */

int api_read(const struct operation *op, enum api_read_mode mode, const char *query, size_t query_len,
             const char *content_type, const char *body, size_t body_len, struct api_read *ret) {
        int r;

        assert(ret);
        assert(query || query_len == 0);
        assert(body || body_len == 0);

        *ret = (struct api_read) { .op = op };
        if (!op && mode == API_READ_OPEN)
                return 0;   /* unknown operations, full rights: forwarded untouched */
        r = read_query(ret, mode, query, query_len);
        if (r >= 0)
                r = read_body(ret, mode, content_type, body, body_len);
        if (r >= 0)
                r = refuse_duplicates(ret);
        if (r >= 0 && ret->body)
                (void) json_span_members(body, body_len, ret->body_brace, note_span, ret);
        return r;
}

void api_read_done(struct api_read *a) {
        if (!a)
                return;
        for (size_t i = 0; i < a->n_params; i++) {
                free(a->params[i].name);
                free(a->params[i].value);
        }
        free(a->params);
        json_decref(a->body);
        *a = (struct api_read) { .op = NULL };
}

const struct api_param *api_read_get(const struct api_read *a, enum op_param_location location,
                                     const char *name) {
        assert(a && name);
        for (size_t i = 0; i < a->n_params; i++)
                if (a->params[i].location == location && strcasecmp(a->params[i].name, name) == 0)
                        return &a->params[i];
        return NULL;
}
