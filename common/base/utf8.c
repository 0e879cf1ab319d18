/* SPDX-License-Identifier: MIT */
#include "common/base/utf8.h"

#include <stdint.h>

/*
 * Length of the valid UTF-8 sequence at p (strict: no overlongs, surrogates
 * or values past U+10FFFF, as JSON text needs), 0 if there is none.  Stops at
 * a NUL, which is never a continuation byte.
 */
size_t utf8_sequence_length(const unsigned char *p) {
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

bool utf8_valid(const char *s) {
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
void utf8_sanitize(char *s) {
        for (unsigned char *p = (unsigned char *) s; *p; ) {
                size_t n = utf8_sequence_length(p);

                if (n == 0) {
                        *p++ = '?';
                        continue;
                }
                p += n;
        }
}

bool utf8_valid_len(const char *str, size_t n) {
        const unsigned char *s = (const unsigned char *) str;

        for (size_t i = 0; i < n;) {
                unsigned char c = s[i];
                size_t len;
                uint32_t cp, min;

                if (c < 0x80) {
                        i++;
                        continue;
                }
                if ((c & 0xe0) == 0xc0)
                        len = 2, cp = c & 0x1f, min = 0x80;
                else if ((c & 0xf0) == 0xe0)
                        len = 3, cp = c & 0x0f, min = 0x800;
                else if ((c & 0xf8) == 0xf0)
                        len = 4, cp = c & 0x07, min = 0x10000;
                else
                        return false;
                if (n - i < len)
                        return false;
                for (size_t k = 1; k < len; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += len;
        }
        return true;
}
