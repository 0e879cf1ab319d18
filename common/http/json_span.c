/* SPDX-License-Identifier: MIT */
#include "common/http/json_span.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "common/base/cleanup.h"

static size_t skip_blank(const char *t, size_t len, size_t i) {
        while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
                i++;
        return i;
}

/* Past the string whose opening '"' is at t[i]. */
static size_t skip_string(const char *t, size_t len, size_t i) {
        for (i++; i < len && t[i] != '"'; i++)
                if (t[i] == '\\')
                        i++;
        return i + 1;
}

/* Past the value at t[i]: a string, an object or array (nested), or a scalar. */
static size_t skip_value(const char *t, size_t len, size_t i) {
        unsigned depth = 0;

        if (t[i] == '"')
                return skip_string(t, len, i);
        if (t[i] != '{' && t[i] != '[') {
                while (i < len && !strchr(",}] \t\r\n", t[i]))
                        i++;
                return i;
        }
        for (; i < len; i++) {
                if (t[i] == '"')
                        i = skip_string(t, len, i) - 1;
                else if (t[i] == '{' || t[i] == '[')
                        depth++;
                else if ((t[i] == '}' || t[i] == ']') && --depth == 0)
                        return i + 1;
        }
        return i;
}

static void put_utf8(struct json_span *s, uint32_t cp) {
        char b[4];
        size_t n;

        if (cp < 0x80)
                b[0] = (char) cp, n = 1;
        else if (cp < 0x800)
                b[0] = (char) (0xc0 | cp >> 6), b[1] = (char) (0x80 | (cp & 0x3f)), n = 2;
        else if (cp < 0x10000)
                b[0] = (char) (0xe0 | cp >> 12), b[1] = (char) (0x80 | ((cp >> 6) & 0x3f)),
                b[2] = (char) (0x80 | (cp & 0x3f)), n = 3;
        else
                b[0] = (char) (0xf0 | cp >> 18), b[1] = (char) (0x80 | ((cp >> 12) & 0x3f)),
                b[2] = (char) (0x80 | ((cp >> 6) & 0x3f)), b[3] = (char) (0x80 | (cp & 0x3f)), n = 4;
        for (size_t i = 0; i < n; i++, s->key_len++)
                if (s->key_len < sizeof s->key - 1)
                        s->key[s->key_len] = b[i];
}

static uint32_t hex4(const char *p) {
        uint32_t v = 0;

        for (int i = 0; i < 4; i++)
                v = v << 4 | (uint32_t) unhexchar(p[i]);
        return v;
}

/* Decodes the key string at t[i] into s->key; returns the offset past it. */
static size_t read_key(const char *t, size_t len, size_t i, struct json_span *s) {
        static const char esc[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
        size_t end = skip_string(t, len, i);

        s->key_len = 0;
        for (i++; i + 1 < end; i++) {
                uint32_t cp = (unsigned char) t[i];

                if (t[i] == '\\' && t[i + 1] == 'u') {
                        cp = hex4(t + i + 2);
                        i += 5;
                        if (cp >= 0xd800 && cp < 0xdc00 && i + 6 < end && t[i + 1] == '\\') {
                                cp = 0x10000 + ((cp - 0xd800) << 10) + (hex4(t + i + 3) - 0xdc00);
                                i += 6;
                        }
                        put_utf8(s, cp);
                        continue;
                }
                if (t[i] == '\\') {
                        const char *e = strchr(esc, t[++i]);
                        cp = e ? (unsigned char) e[1] : (unsigned char) t[i];
                }
                if (s->key_len < sizeof s->key - 1)
                        s->key[s->key_len] = (char) cp;
                s->key_len++;
        }
        s->key[s->key_len < sizeof s->key ? s->key_len : sizeof s->key - 1] = 0;
        return end;
}

int json_span_members(const char *text, size_t len, size_t brace,
                      int (*fn)(const struct json_span *s, void *userdata), void *userdata) {
        size_t i;

        assert(text && fn && brace < len && text[brace] == '{');
        for (i = skip_blank(text, len, brace + 1); i < len && text[i] == '"'; ) {
                struct json_span s;
                int r;

                i = skip_blank(text, len, read_key(text, len, i, &s));
                assert(i < len && text[i] == ':');
                s.value_start = skip_blank(text, len, i + 1);
                s.value_end = skip_value(text, len, s.value_start);
                r = fn(&s, userdata);
                if (r != 0)
                        return r;
                i = skip_blank(text, len, s.value_end);
                if (i < len && text[i] == ',')
                        i = skip_blank(text, len, i + 1);
        }
        return 0;
}
