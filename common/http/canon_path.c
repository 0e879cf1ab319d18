/* SPDX-License-Identifier: MIT */
#include "common/http/canon_path.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ASCII only, never the locale's idea of a letter. */
static bool is_alnum(unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static unsigned char ascii_lower(unsigned char c) {
        return c >= 'A' && c <= 'Z' ? (unsigned char) (c + ('a' - 'A')) : c;
}

static int hex_value(unsigned char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        c = ascii_lower(c);
        return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* RFC 3986 pchar but ';' (and '%', an escape): what may stand raw in the canonical form. */
static bool is_raw_ok(unsigned char c) {
        return is_alnum(c) || (c && strchr("-._~!$&'()*+,=:@", c));
}

#define REFUSE(why)                             \
        do {                                    \
                *ret_reason = (why);            \
                return -EINVAL;                 \
        } while (0)

/* Refusal reasons shared by a raw byte and its escape. */
static const char *byte_refusal(unsigned char c) {
        if (c == 0)
                return "it has a NUL byte (raw or as %00)";
        if (c < 0x20 || c == 0x7f)
                return "it has a control character (raw or percent-encoded)";
        if (c >= 0x80)
                return "it has a byte outside ASCII (raw or percent-encoded); Denvr API paths are ASCII";
        if (c == '\\')
                return "it has a '\\' (raw or as %5C)";
        return NULL;
}

/* A segment upstream would resolve away: ".", ".." (after decoding). */
static bool is_dot_segment(const char *s, size_t n) {
        return (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.');
}

/* A byte the client wrote as it is, lowercased into *out; NULL, or why the path is refused. */
static const char *put_raw(unsigned char c, char **out) {
        const char *why = byte_refusal(c);

        if (why)
                return why;
        if (c == ';')
                return "it has a ';' (path parameters are not accepted)";
        if (!is_raw_ok(c))
                return "it has a character a path may not hold unencoded (RFC 3986); percent-encode it";
        *(*out)++ = (char) ascii_lower(c);
        return NULL;
}

/* The percent-escape at raw[i], decoded into *out when it stands for a byte
 * allowed raw; NULL, or why the path is refused. */
static const char *put_escape(const char *raw, size_t raw_len, size_t i, char **out) {
        static const char hex[] = "0123456789abcdef";
        int hi = i + 2 < raw_len ? hex_value((unsigned char) raw[i + 1]) : -1;
        int lo = hi >= 0 ? hex_value((unsigned char) raw[i + 2]) : -1;
        const char *why;
        unsigned char c;

        if (lo < 0)
                return "it has bad percent-encoding ('%' must be followed by two hex digits)";
        c = (unsigned char) (hi << 4 | lo);
        if (c == '/')
                return "it has a percent-encoded '/' (%2F)";
        if (c == '%')
                return "it has a percent-encoded '%' (%25), a second layer of encoding that some servers "
                       "decode again";
        if ((why = byte_refusal(c)))
                return why;
        if (is_raw_ok(c)) {
                *(*out)++ = (char) ascii_lower(c);
                return NULL;
        }
        /* Reserved in a path (such as '?', '#', ';', ' '): it keeps its escape. */
        *(*out)++ = '%';
        *(*out)++ = hex[c >> 4];
        *(*out)++ = hex[c & 15];
        return NULL;
}

/* A segment that ends (at a '/' or the end); NULL, or why the path is refused. */
static const char *check_segment(const char *seg, size_t n) {
        if (n == 0)
                return "it has an empty segment ('//')";
        if (is_dot_segment(seg, n))
                return "it has a dot segment ('.' or '..', perhaps percent-encoded), which denvrd does not "
                       "resolve";
        return NULL;
}

int canon_path(const char *raw, size_t raw_len, char *buf, size_t buf_size, const char **ret_reason) {
        const char *unused, *why;
        char *out = buf, *seg;
        size_t i = 1;

        assert(raw || raw_len == 0);
        assert(buf);
        if (!ret_reason)
                ret_reason = &unused;
        *ret_reason = NULL;
        if (buf_size < raw_len + 1)
                return -ENOBUFS;
        if (raw_len == 0 || raw[0] != '/')
                REFUSE("the request target must be a path starting with '/'");

        *out++ = '/';
        seg = out;
        for (;;) {
                if (i == raw_len || raw[i] == '/') {
                        size_t n = (size_t) (out - seg);

                        if (n == 0 && i == raw_len) {
                                /* A trailing '/' (or the root): routed like no trailing '/'. */
                                if (out - buf > 1)
                                        out--;
                                break;
                        }
                        if ((why = check_segment(seg, n)))
                                REFUSE(why);
                        if (i == raw_len)
                                break;
                        *out++ = '/';
                        seg = out;
                        i++;
                        continue;
                }
                if (raw[i] == '%') {
                        why = put_escape(raw, raw_len, i, &out);
                        i += 3;
                } else
                        why = put_raw((unsigned char) raw[i++], &out);
                if (why)
                        REFUSE(why);
        }
        *out = 0;
        return (int) (out - buf);
}

int canon_path_dup(const char *raw, char **ret, const char **ret_reason) {
        size_t n;
        char *buf;
        int k;

        assert(raw);
        assert(ret);
        n = strlen(raw);
        buf = malloc(n + 1);
        if (!buf)
                return -ENOMEM;
        k = canon_path(raw, n, buf, n + 1, ret_reason);
        if (k < 0) {
                free(buf);
                return k;
        }
        *ret = buf;
        return 0;
}

static size_t escaped_len(unsigned char c) {
        return c > 0x20 && c < 0x7f ? 1 : 3;
}

void canon_path_printable(const char *raw, char *buf, size_t buf_size) {
        static const char hex[] = "0123456789ABCDEF";
        const unsigned char *p;
        size_t o = 0, total = 0, room;

        assert(raw);
        assert(buf && buf_size >= 4);
        for (p = (const unsigned char *) raw; *p; p++)
                total += escaped_len(*p);
        /* All of it, or as much as leaves room for "..." and the NUL. */
        room = total < buf_size ? total : buf_size - 4;
        for (p = (const unsigned char *) raw; *p && o + escaped_len(*p) <= room; p++) {
                if (escaped_len(*p) == 1)
                        buf[o++] = (char) *p;
                else {
                        buf[o++] = '%';
                        buf[o++] = hex[*p >> 4];
                        buf[o++] = hex[*p & 15];
                }
        }
        if (*p) {
                memcpy(buf + o, "...", 3);
                o += 3;
        }
        buf[o] = 0;
}
