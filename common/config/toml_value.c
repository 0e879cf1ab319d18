/* SPDX-License-Identifier: MIT */
#include "common/config/toml_value.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/enum_names.h"

struct parser {
        const char *text;       /* start of the input, for columns */
        const char *p;
        struct toml_error *err;
};

_printf_(3, 4)
static int fail(struct parser *ps, const char *at, const char *fmt, ...) {
        va_list ap;

        if (ps->err) {
                ps->err->column = (size_t) (at - ps->text) + 1;
                va_start(ap, fmt);
                (void) vsnprintf(ps->err->message, sizeof ps->err->message, fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static bool is_bare_key_char(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '-';
}

/* TOML forbids raw control characters other than tab in strings and comments. */
static bool is_forbidden_control(unsigned char c) {
        return (c < 0x20 && c != '\t') || c == 0x7f;
}

static void skip_blanks(struct parser *ps) {
        while (is_blank(*ps->p))
                ps->p++;
}

const char *toml_type_to_string(enum toml_type t) {
        static const char *const names[] = {
                [TOML_STRING] = "string",
                [TOML_INTEGER] = "integer",
                [TOML_BOOLEAN] = "boolean",
                [TOML_ARRAY] = "array",
        };

        return ENUM_NAME(names, t);
}

/*
 * A growing byte buffer for decoded strings.  Old blocks are wiped before
 * they are freed because the string may be a password.
 */
struct sbuf {
        char *data;
        size_t len, cap;
};

static int sbuf_reserve(struct sbuf *b, size_t extra) {
        size_t need = b->len + extra + 1, cap;
        char *n;

        if (need <= b->cap)
                return 0;
        cap = b->cap ? b->cap * 2 : 32;
        while (cap < need)
                cap *= 2;
        n = malloc(cap);
        if (!n)
                return -ENOMEM;
        if (b->data) {
                memcpy(n, b->data, b->len);
                explicit_bzero(b->data, b->cap);
                free(b->data);
        }
        b->data = n;
        b->cap = cap;
        return 0;
}

static int sbuf_add(struct sbuf *b, const char *s, size_t n) {
        if (sbuf_reserve(b, n) < 0)
                return -ENOMEM;
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = 0;
        return 0;
}

static void sbuf_wipe(struct sbuf *b) {
        if (b->data) {
                explicit_bzero(b->data, b->cap);
                free(b->data);
        }
        *b = (struct sbuf) { 0 };
}

static size_t utf8_encode(uint32_t cp, char out[4]) {
        if (cp < 0x80) {
                out[0] = (char) cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char) (0xc0 | (cp >> 6));
                out[1] = (char) (0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (char) (0xe0 | (cp >> 12));
                out[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
                out[2] = (char) (0x80 | (cp & 0x3f));
                return 3;
        }
        out[0] = (char) (0xf0 | (cp >> 18));
        out[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
        out[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
        out[3] = (char) (0x80 | (cp & 0x3f));
        return 4;
}

/* \uXXXX or \UXXXXXXXX: p points at the 'u' or 'U'. */
static int parse_unicode_escape(struct parser *ps, const char *p, size_t ndigits, struct sbuf *b) {
        uint32_t cp = 0;
        char enc[4];

        for (size_t i = 1; i <= ndigits; i++) {
                int h = unhexchar(p[i]);
                if (h < 0)
                        return fail(ps, p - 1, "\\%c escape needs exactly %zu hexadecimal digits",
                                    *p, ndigits);
                cp = (cp << 4) | (uint32_t) h;
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return fail(ps, p - 1, "\\%c escape is not a Unicode scalar value", *p);
        if (cp == 0)
                return fail(ps, p - 1, "NUL characters in strings are not supported");
        return sbuf_add(b, enc, utf8_encode(cp, enc));
}

/* A "basic string"; ps->p points at the opening quote. */
static int parse_basic_string(struct parser *ps, struct sbuf *b) {
        const char *start = ps->p, *p = ps->p + 1;
        int r;

        if (p[0] == '"' && p[1] == '"')
                return fail(ps, start, "multi-line strings (\"\"\") are not supported");

        for (;;) {
                const char *run = p;
                char c;

                /* Copy plain runs in one go. */
                while (*p && *p != '"' && *p != '\\' && !is_forbidden_control((unsigned char) *p))
                        p++;
                if (sbuf_add(b, run, (size_t) (p - run)) < 0)
                        return -ENOMEM;

                c = *p;
                if (c == '"')
                        break;
                if (c == 0)
                        return fail(ps, start, "unterminated string (a string must end on its line)");
                if (c != '\\')
                        return fail(ps, p, "control character in a string (write it as an escape)");

                switch (p[1]) {
                case 'b': r = sbuf_add(b, "\b", 1); p += 2; break;
                case 't': r = sbuf_add(b, "\t", 1); p += 2; break;
                case 'n': r = sbuf_add(b, "\n", 1); p += 2; break;
                case 'f': r = sbuf_add(b, "\f", 1); p += 2; break;
                case 'r': r = sbuf_add(b, "\r", 1); p += 2; break;
                case '"': r = sbuf_add(b, "\"", 1); p += 2; break;
                case '\\': r = sbuf_add(b, "\\", 1); p += 2; break;
                case 'u':
                        r = parse_unicode_escape(ps, p + 1, 4, b);
                        p += 6;
                        break;
                case 'U':
                        r = parse_unicode_escape(ps, p + 1, 8, b);
                        p += 10;
                        break;
                default:
                        return fail(ps, p, "invalid escape sequence in a string "
                                    "(allowed: \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)");
                }
                if (r < 0)
                        return r;
        }
        ps->p = p + 1;
        return 0;
}

/* A 'literal string'; ps->p points at the opening quote. */
static int parse_literal_string(struct parser *ps, struct sbuf *b) {
        const char *start = ps->p, *p = ps->p + 1;

        if (p[0] == '\'' && p[1] == '\'')
                return fail(ps, start, "multi-line literal strings (''') are not supported");
        while (*p && *p != '\'') {
                if (is_forbidden_control((unsigned char) *p))
                        return fail(ps, p, "control character in a string");
                p++;
        }
        if (*p != '\'')
                return fail(ps, start, "unterminated string (a string must end on its line)");
        if (sbuf_add(b, ps->p + 1, (size_t) (p - ps->p - 1)) < 0)
                return -ENOMEM;
        ps->p = p + 1;
        return 0;
}

static int parse_string(struct parser *ps, struct toml_value *ret) {
        struct sbuf b = { 0 };
        int r;

        r = *ps->p == '"' ? parse_basic_string(ps, &b) : parse_literal_string(ps, &b);
        if (r >= 0 && !b.data)
                r = sbuf_reserve(&b, 0);  /* "" still needs a buffer */
        if (r < 0) {
                sbuf_wipe(&b);
                return r;
        }
        b.data[b.len] = 0;
        *ret = (struct toml_value) { .type = TOML_STRING, .s = { b.data, b.len } };
        return 0;
}

/*
 * Digits in a base with '_' allowed only between two digits.  The magnitude
 * may not exceed limit.
 */
static int parse_digits(struct parser *ps, const char *s, const char *end, unsigned base,
                        uint64_t limit, uint64_t *ret) {
        uint64_t v = 0;
        bool prev_digit = false;

        if (s == end)
                return fail(ps, s, "missing digits in integer");
        for (const char *p = s; p < end; p++) {
                int d;

                if (*p == '_') {
                        if (!prev_digit || p + 1 == end)
                                return fail(ps, p, "'_' in a number must be between two digits");
                        prev_digit = false;
                        continue;
                }
                d = unhexchar(*p);
                if (d < 0 || (unsigned) d >= base)
                        return fail(ps, p, "invalid digit in base-%u integer", base);
                if (v > (limit - (uint64_t) d) / base)
                        return fail(ps, s, "integer out of range (64-bit signed)");
                v = v * base + (uint64_t) d;
                prev_digit = true;
        }
        *ret = v;
        return 0;
}

static bool token_is(const char *s, size_t n, const char *word) {
        return n == strlen(word) && memcmp(s, word, n) == 0;
}

/* Looks like a date (1979-05-27) or a time (07:32:00)? */
static bool token_is_datetime(const char *s, size_t n) {
        if (n >= 5 && is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) && s[4] == '-')
                return true;
        return n >= 3 && is_digit(s[0]) && is_digit(s[1]) && s[2] == ':';
}

/* Booleans, integers, and the bare tokens we refuse (floats, dates, words). */
static int parse_bare(struct parser *ps, struct toml_value *ret) {
        const char *tok = ps->p, *end = tok, *s;
        uint64_t mag;
        bool neg = false;
        size_t n;
        int r;

        while (*end && !is_blank(*end) && !strchr(",]#", *end))
                end++;
        n = (size_t) (end - tok);
        if (n == 0)
                return fail(ps, tok, "missing value");

        if (token_is(tok, n, "true") || token_is(tok, n, "false")) {
                *ret = (struct toml_value) { .type = TOML_BOOLEAN, .b = tok[0] == 't' };
                ps->p = end;
                return 0;
        }
        if (token_is_datetime(tok, n))
                return fail(ps, tok, "dates and times are not supported");

        s = tok;
        if (*s == '+' || *s == '-')
                neg = *s++ == '-';
        if (token_is(s, (size_t) (end - s), "inf") || token_is(s, (size_t) (end - s), "nan") ||
            (is_digit(*s) && (memchr(s, '.', (size_t) (end - s)) ||
                              ((end - s < 2 || s[1] != 'x') &&
                               (memchr(s, 'e', (size_t) (end - s)) || memchr(s, 'E', (size_t) (end - s)))))))
                return fail(ps, tok, "floating-point numbers are not supported");
        if (!is_digit(*s))
                return fail(ps, tok, "not a value we understand: strings must be quoted; "
                            "supported are strings, integers, true/false and arrays");

        if (s[0] == '0' && (s[1] == 'X' || s[1] == 'O' || s[1] == 'B'))
                return fail(ps, tok, "integer prefixes are lower case: 0x, 0o, 0b");
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o' || s[1] == 'b')) {
                unsigned base = s[1] == 'x' ? 16 : s[1] == 'o' ? 8 : 2;

                if (s != tok)
                        return fail(ps, tok, "a sign is not allowed on hexadecimal, octal or binary integers");
                r = parse_digits(ps, s + 2, end, base, INT64_MAX, &mag);
                if (r < 0)
                        return r;
        } else {
                if (s[0] == '0' && end - s > 1)
                        return fail(ps, s, "leading zeros are not allowed in integers");
                r = parse_digits(ps, s, end, 10, neg ? (uint64_t) INT64_MAX + 1 : INT64_MAX, &mag);
                if (r < 0)
                        return r;
        }

        *ret = (struct toml_value) { .type = TOML_INTEGER };
        if (neg)
                ret->i = mag == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) mag;
        else
                ret->i = (int64_t) mag;
        ps->p = end;
        return 0;
}

static int parse_value(struct parser *ps, struct toml_value *ret, bool in_array);

static int parse_array(struct parser *ps, struct toml_value *ret) {
        const char *start = ps->p;
        struct toml_value a = { .type = TOML_ARRAY };
        int r;

        ps->p++;
        for (;;) {
                struct toml_value *items;

                skip_blanks(ps);
                if (*ps->p == ']')
                        break;
                if (*ps->p == 0 || *ps->p == '#') {
                        r = fail(ps, start, "multi-line arrays are not supported (end the array on its line)");
                        goto fail;
                }

                items = reallocarray(a.a.items, a.a.n + 1, sizeof *items);
                if (!items) {
                        r = -ENOMEM;
                        goto fail;
                }
                a.a.items = items;
                r = parse_value(ps, &a.a.items[a.a.n], true);
                if (r < 0)
                        goto fail;
                a.a.n++;

                skip_blanks(ps);
                if (*ps->p == ',') {
                        ps->p++;
                        continue;
                }
                if (*ps->p == ']')
                        break;
                if (*ps->p == 0 || *ps->p == '#')
                        r = fail(ps, start, "multi-line arrays are not supported (end the array on its line)");
                else
                        r = fail(ps, ps->p, "expected ',' or ']' in an array");
                goto fail;
        }
        ps->p++;
        *ret = a;
        return 0;

fail:
        toml_value_done(&a);
        return r;
}

static int parse_value(struct parser *ps, struct toml_value *ret, bool in_array) {
        switch (*ps->p) {
        case '"':
        case '\'':
                return parse_string(ps, ret);
        case '[':
                if (in_array)
                        return fail(ps, ps->p, "nested arrays are not supported");
                return parse_array(ps, ret);
        case '{':
                return fail(ps, ps->p, "inline tables are not supported");
        case ',':
                return fail(ps, ps->p, "expected a value before ','");
        case 0:
        case '#':
                return fail(ps, ps->p, "missing value");
        default:
                return parse_bare(ps, ret);
        }
}

static int check_comment(struct parser *ps) {
        assert(*ps->p == '#');
        for (const char *p = ps->p; *p; p++)
                if (is_forbidden_control((unsigned char) *p))
                        return fail(ps, p, "control character in a comment");
        return 0;
}

int toml_value_decode(const char *text, struct toml_value *ret, struct toml_error *err) {
        struct parser ps = { .text = text, .p = text, .err = err };
        struct toml_value v;
        int r;

        assert(text);
        assert(ret);

        if (!toml_utf8_valid(text, strlen(text)))
                return fail(&ps, text, "invalid UTF-8");

        skip_blanks(&ps);
        r = parse_value(&ps, &v, false);
        if (r < 0)
                return r;
        skip_blanks(&ps);
        if (*ps.p == '#')
                r = check_comment(&ps);
        else if (*ps.p)
                r = fail(&ps, ps.p, "unexpected text after the value");
        if (r < 0) {
                toml_value_done(&v);
                return r;
        }
        *ret = v;
        return 0;
}

void toml_value_done(struct toml_value *v) {
        if (!v)
                return;
        switch (v->type) {
        case TOML_STRING:
                if (v->s.str) {
                        explicit_bzero(v->s.str, v->s.len);
                        free(v->s.str);
                }
                break;
        case TOML_ARRAY:
                for (size_t i = 0; i < v->a.n; i++)
                        toml_value_done(&v->a.items[i]);
                free(v->a.items);
                break;
        case TOML_INTEGER:
        case TOML_BOOLEAN:
                break;
        }
        *v = (struct toml_value) { .type = TOML_BOOLEAN };
}

int toml_value_scan(const char *text, size_t *ret_len, struct toml_error *err) {
        struct parser ps = { .text = text, .p = text, .err = err };
        const char *start, *p, *last = NULL;
        unsigned depth = 0;

        assert(text);
        assert(ret_len);

        skip_blanks(&ps);
        start = p = ps.p;
        if (*p == 0 || *p == '#')
                return fail(&ps, p, "missing value");

        for (; *p && !(*p == '#' && depth == 0); p++) {
                const char *q = p;

                switch (*p) {
                case '"':
                case '\'':
                        if (p[1] == *p && p[2] == *p)
                                return fail(&ps, p, "multi-line strings are not supported");
                        for (q = p + 1; *q && *q != *p; q++)
                                if (*p == '"' && *q == '\\' && q[1])
                                        q++;
                        if (!*q)
                                return fail(&ps, p, "unterminated string (a string must end on its line)");
                        p = q;
                        break;
                case '[':
                case '{':
                        depth++;
                        break;
                case ']':
                case '}':
                        if (depth == 0)
                                return fail(&ps, p, "unexpected '%c'", *p);
                        depth--;
                        break;
                case '#':
                        return fail(&ps, start, "multi-line arrays and inline tables are not supported");
                default:
                        break;
                }
                if (!is_blank(*p))
                        last = p;
        }
        if (depth > 0)
                return fail(&ps, start, "multi-line arrays and inline tables are not supported");
        assert(last);
        *ret_len = (size_t) (last - start) + 1;
        return 0;
}

int toml_key_parse(const char *text, const char **ret_end, char ***ret_parts, struct toml_error *err) {
        struct parser ps = { .text = text, .p = text, .err = err };
        _cleanup_strv_free_ char **parts = NULL;
        size_t n = 0;
        int r;

        assert(text);
        assert(ret_end);
        assert(ret_parts);

        for (;;) {
                struct toml_value v;
                char **np, *part;

                skip_blanks(&ps);
                if (*ps.p == '"' || *ps.p == '\'') {
                        r = parse_string(&ps, &v);
                        if (r < 0)
                                return r;
                        part = v.s.str;
                } else if (is_bare_key_char(*ps.p)) {
                        const char *s = ps.p;

                        while (is_bare_key_char(*ps.p))
                                ps.p++;
                        part = strndup(s, (size_t) (ps.p - s));
                        if (!part)
                                return -ENOMEM;
                } else
                        return fail(&ps, ps.p, n == 0 ? "expected a key" : "expected a key after '.'");

                np = reallocarray(parts, n + 2, sizeof *np);
                if (!np) {
                        free(part);
                        return -ENOMEM;
                }
                parts = np;
                parts[n++] = part;
                parts[n] = NULL;

                skip_blanks(&ps);
                if (*ps.p != '.')
                        break;
                ps.p++;
        }
        *ret_end = ps.p;
        *ret_parts = TAKE_PTR(parts);
        return 0;
}
