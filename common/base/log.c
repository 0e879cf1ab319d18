/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "log"
#include "common/base/cleanup.h"
#include "common/base/log.h"
#include "common/base/query.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* sd_journal_sendv() would otherwise add CODE_FILE/CODE_LINE/CODE_FUNC naming this
 * file's log_to_journal() on every entry: a location, but never the caller's. */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

/* Process-wide logging settings: written once at start-up (and on reload). */
static struct {
        bool opened;
        bool to_journal;
        bool force_stderr;
        int max_level;
} log_state = { .max_level = LOG_INFO };

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert",
        [LOG_CRIT] = "crit",       [LOG_ERR] = "error",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info",       [LOG_DEBUG] = "debug",
};

static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_open(void) {
        if (log_state.opened)
                return;
        log_state.to_journal = stderr_is_journal();
        log_state.opened = true;
}

void log_force_stderr(bool b) {
        log_state.force_stderr = b;
}

void log_set_max_level(int prio) {
        if (prio >= LOG_EMERG && prio <= LOG_DEBUG)
                log_state.max_level = prio;
}

int log_get_max_level(void) {
        return log_state.max_level;
}

int log_level_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        /* Only the four documented levels plus notice are accepted. */
        for (int p = LOG_ERR; p <= LOG_DEBUG; p++)
                if (strcmp(s, level_names[p]) == 0)
                        return p;
        return -EINVAL;
}

const char *log_level_to_string(int prio) {
        if (prio < LOG_EMERG || prio > LOG_DEBUG)
                return "unknown";
        return level_names[prio];
}

static void log_to_stderr(int prio, const char *module, const char *msg, int error) {
        struct timespec ts;
        struct tm tm;
        char when[64] = "";

        if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && gmtime_r(&ts.tv_sec, &tm))
                snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                         tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

        if (error != 0)
                fprintf(stderr, "%s %s %s: %s: %s\n", when, log_level_to_string(prio), module, msg,
                        strerror(abs(error)));
        else
                fprintf(stderr, "%s %s %s: %s\n", when, log_level_to_string(prio), module, msg);
        fflush(stderr);
}

#define MAX_JOURNAL_FIELDS 32

static void log_to_journal(int prio, const char *module, const char *msg, int error,
                           const struct log_field *fields, size_t n_fields) {
        struct iovec iov[MAX_JOURNAL_FIELDS + 6];
        char *bufs[MAX_JOURNAL_FIELDS + 6] = { NULL };
        size_t n = 0;

        if (n_fields > MAX_JOURNAL_FIELDS)
                n_fields = MAX_JOURNAL_FIELDS;

#define ADD(...)                                                        \
        do {                                                            \
                if (asprintf(&bufs[n], __VA_ARGS__) >= 0) {             \
                        iov[n] = (struct iovec) { bufs[n], strlen(bufs[n]) }; \
                        n++;                                            \
                } else                                                  \
                        bufs[n] = NULL;                                 \
        } while (0)

        ADD("MESSAGE=%s: %s%s%s", module, msg, error ? ": " : "", error ? strerror(abs(error)) : "");
        ADD("PRIORITY=%d", prio);
        ADD("SYSLOG_IDENTIFIER=denvrd");
        ADD("DENVRD_MODULE=%s", module);
        if (error)
                ADD("ERRNO=%d", abs(error));
        for (size_t i = 0; i < n_fields; i++)
                if (fields[i].name && fields[i].value)
                        ADD("%s=%s", fields[i].name, fields[i].value);
#undef ADD

        (void) sd_journal_sendv(iov, (int) n);
        for (size_t i = 0; i < n; i++)
                free(bufs[i]);
}

int log_internalv(int prio, int error, const char *module,
                  const struct log_field *fields, size_t n_fields,
                  const char *format, va_list ap) {
        int saved_errno = errno;
        char msg[2048];

        if (prio <= log_state.max_level) {
                log_open();
                (void) vsnprintf(msg, sizeof msg, format, ap);
                if (log_state.to_journal && !log_state.force_stderr)
                        log_to_journal(prio, module, msg, error, fields, n_fields);
                else
                        log_to_stderr(prio, module, msg, error);
        }

        errno = saved_errno;
        return error == 0 ? 0 : -abs(error);
}

int log_internal(int prio, int error, const char *module,
                 const struct log_field *fields, size_t n_fields,
                 const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = log_internalv(prio, error, module, fields, n_fields, format, ap);
        va_end(ap);
        return r;
}

static bool contains_ci(const char *s, size_t len, const char *needle) {
        size_t m = strlen(needle);

        for (size_t i = 0; i + m <= len; i++)
                if (strncasecmp(s + i, needle, m) == 0)
                        return true;
        return false;
}

bool redact_query_name_is_secret(const char *name, size_t len) {
        static const char *const words[] = { "token", "password", "secret", "key" };

        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (contains_ci(name, len, words[i]))
                        return true;
        return false;
}

/*
 * Whether a raw (still percent-encoded) parameter name is secret.  The server
 * decodes names, so "refresh%54oken" is refreshToken and must match too; a
 * name the query reader cannot decode is taken as secret (a lenient server
 * might read "tok%65n%zz" as "token%zz").
 */
static bool raw_name_is_secret(const char *name, size_t len) {
        _cleanup_free_ char *decoded = NULL;
        ssize_t n;

        n = query_decode_dup(name, len, &decoded);
        if (n < 0)
                return true;    /* cannot tell: redact rather than leak */
        return redact_query_name_is_secret(decoded, (size_t) n) || redact_query_name_is_secret(name, len);
}

/*
 * Copies one parameter (name=value) to w, redacting the value when the name
 * is secret; returns the new end of w.
 */
static char *redact_param(char *w, const char *p, size_t plen) {
        const char *eq = memchr(p, '=', plen);

        if (eq && raw_name_is_secret(p, (size_t) (eq - p))) {
                w = mempcpy(w, p, (size_t) (eq - p + 1));
                return mempcpy(w, "***", 3);
        }
        return mempcpy(w, p, plen);
}

char *redact_url(const char *url) {
        const char *q;
        char *out, *w;

        if (!url)
                return NULL;
        /* Worst case every byte of the query becomes "***". */
        out = malloc(strlen(url) * 4 + 4);
        if (!out)
                return NULL;

        q = strchr(url, '?');
        if (!q) {
                strcpy(out, url);
                return out;
        }
        w = mempcpy(out, url, (size_t) (q - url + 1));

        /*
         * Parameters are separated by '&'.  Some servers also split on ';', so
         * a parameter that is not secret as a whole is looked at again in its
         * ';'-separated pieces.  A secret value always runs to the next '&':
         * "token=abc;def" must not leave "def" behind, since for a server that
         * does not split on ';' it is part of the token.
         */
        for (const char *p = q + 1; *p;) {
                size_t plen = strcspn(p, "&");
                const char *eq = memchr(p, '=', plen);

                if ((eq && raw_name_is_secret(p, (size_t) (eq - p))) || !memchr(p, ';', plen))
                        w = redact_param(w, p, plen);
                else
                        for (const char *s = p; s < p + plen;) {
                                size_t slen = strcspn(s, ";&");

                                w = redact_param(w, s, slen);
                                s += slen;
                                if (s < p + plen)
                                        *w++ = *s++;
                        }
                p += plen;
                if (*p)
                        *w++ = *p++;
        }
        *w = 0;
        return out;
}
