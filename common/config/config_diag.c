/* SPDX-License-Identifier: MIT */
/*
 * Diagnostics of one configuration load: errors and warnings collected as
 * "PATH:LINE: text" so that --check-config can print all of them at once
 * and the daemon can log them.
 */
#define LOG_MODULE "config"
#include "common/config/config-internal.h"

#include <stdio.h>

#include "common/base/log.h"

/* Adds s (taken) to the errors or the warnings. */
static void diag_push(struct loader *l, bool error, char *s) {
        if (error ? list_push(&l->diag->errors, &l->diag->n_errors, s)
                  : list_push(&l->diag->warnings, &l->diag->n_warnings, s))
                l->oom = true;
}

_printf_(3, 0)
static void diag_addv(struct loader *l, bool error, const char *fmt, va_list ap) {
        char *s;

        if (vasprintf(&s, fmt, ap) < 0) {
                l->oom = true;
                return;
        }
        diag_push(l, error, s);
}

void config_diagv_at(struct loader *l, bool error, unsigned line, const char *fmt, va_list ap) {
        _cleanup_free_ char *m = NULL;
        char *s;
        int r;

        if (vasprintf(&m, fmt, ap) < 0) {
                l->oom = true;
                return;
        }
        if (l->path && line > 0)
                r = asprintf(&s, "%s:%u: %s", l->path, line, m);
        else if (l->path)
                r = asprintf(&s, "%s: %s", l->path, m);
        else
                r = (s = TAKE_PTR(m)) ? 0 : -1;
        if (r < 0) {
                l->oom = true;
                return;
        }
        diag_push(l, error, s);
}

void config_error_at(struct loader *l, unsigned line, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        config_diagv_at(l, true, line, fmt, ap);
        va_end(ap);
}

void config_warning_at(struct loader *l, unsigned line, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        config_diagv_at(l, false, line, fmt, ap);
        va_end(ap);
}

void config_error_plain(struct loader *l, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        diag_addv(l, true, fmt, ap);
        va_end(ap);
}

void config_diag_done(struct config_diag *d) {
        if (!d)
                return;
        strv_free(d->errors);
        strv_free(d->warnings);
        *d = (struct config_diag) { 0 };
}
