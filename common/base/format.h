/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdarg.h>
#include <stdio.h>

#include "common/base/cleanup.h"

/* vasprintf() that says failure with NULL, as every caller wants it. */
_printf_(1, 0)
static inline char *vformat(const char *fmt, va_list ap) {
        char *s;

        return vasprintf(&s, fmt, ap) < 0 ? NULL : s;
}

/* asprintf() that says failure with NULL. */
_printf_(1, 2)
static inline char *format(const char *fmt, ...) {
        va_list ap;
        char *s;

        va_start(ap, fmt);
        s = vformat(fmt, ap);
        va_end(ap);
        return s;
}
