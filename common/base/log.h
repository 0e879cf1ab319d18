/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Logging: to the journal with structured fields when stderr is connected to
 * journald ($JOURNAL_STREAM matches stderr), otherwise to stderr with a level
 * prefix.  Levels are syslog priorities.  Every message that may carry user
 * data must pass that data through the redaction helpers below first.
 *
 * Each .c file may define LOG_MODULE before including this header; it becomes
 * the message prefix ("config: ...") and the DENVRD_MODULE journal field.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

#include "common/base/cleanup.h"

#ifndef LOG_MODULE
#define LOG_MODULE "denvrd"
#endif

/* An extra journal field, e.g. { "REQUEST_ID", "abc" }.  NULL values are skipped. */
struct log_field {
        const char *name;
        const char *value;
};

/* Chooses journal or stderr output; call once at start-up (idempotent). */
void log_open(void);
void log_set_max_level(int prio);
int log_get_max_level(void);
/* Forces stderr output even under journald (used by --check-config). */
void log_force_stderr(bool b);

/* Parses "error", "warning", "notice", "info", "debug"; returns priority or -EINVAL. */
int log_level_from_string(const char *s);
const char *log_level_to_string(int prio);

/*
 * Core entry point.  Returns -abs(error) when error != 0 so callers can write
 * "return log_error_errno(r, ...)"; returns 0 otherwise.  errno is preserved.
 */
int log_internal(int prio, int error, const char *module,
                 const struct log_field *fields, size_t n_fields,
                 const char *format, ...) _printf_(6, 7);
int log_internalv(int prio, int error, const char *module,
                  const struct log_field *fields, size_t n_fields,
                  const char *format, va_list ap) _printf_(6, 0);

#define log_full_errno(prio, error, ...) \
        log_internal((prio), (error), LOG_MODULE, NULL, 0, __VA_ARGS__)
#define log_full(prio, ...) log_full_errno((prio), 0, __VA_ARGS__)

#define log_debug(...)   log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)    log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...)  log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...)   log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_info_errno(e, ...)    log_full_errno(LOG_INFO, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, (e), __VA_ARGS__)

/* With extra structured fields (journal only; stderr shows the message). */
#define log_fields(prio, fields, n, ...) \
        log_internal((prio), 0, LOG_MODULE, (fields), (n), __VA_ARGS__)

/*
 * Redaction.  redact_url() returns a copy of a path?query where the value of
 * every query parameter whose name contains "token", "password", "secret" or
 * "key" (case-insensitive) is replaced by "***".  Returns NULL on OOM.
 * redact_query_name_is_secret() is the rule itself, exposed for tests.
 */
char *redact_url(const char *url);
bool redact_query_name_is_secret(const char *name, size_t len);
