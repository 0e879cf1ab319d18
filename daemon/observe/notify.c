/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "notify"
#include "daemon/observe/notify.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "common/base/log.h"
#include "common/client/auth.h"
#include "daemon/core/daemon.h"

static void format_duration(long sec, char *buf, size_t size) {
        if (sec >= 120)
                snprintf(buf, size, "%ld min", sec / 60);
        else
                snprintf(buf, size, "%ld s", sec);
}

void notify_status_text(struct daemon *d, char *buf, unsigned size) {
        struct auth_state s;
        char left[32];

        auth_get_state(d->auth, &s);
        if (s.mode == CREDENTIAL_APIKEY)
                snprintf(buf, size, "using an API key, %" PRIu64 " requests", d->metrics.requests_total);
        else if (s.logged_in) {
                format_duration(s.access_expires_in, left, sizeof left);
                snprintf(buf, size, "logged in as %s, token valid %s, %" PRIu64 " requests", s.user, left,
                         d->metrics.requests_total);
        } else if (s.failure) {
                if (s.next_attempt_in >= 0) {
                        format_duration(s.next_attempt_in, left, sizeof left);
                        snprintf(buf, size, "login failing: %s; next try in %s", s.failure, left);
                } else
                        snprintf(buf, size, "login failing: %s", s.failure);
        } else
                snprintf(buf, size, "logging in as %s", s.user ? s.user : "?");
}

/* Remembers the STATUS= text sent, so that an unchanged one is not sent again. */
static void status_sent(struct daemon *d, const char *text) {
        snprintf(d->status_sent, sizeof d->status_sent, "%s", text);
}

void notify_status(struct daemon *d) {
        char text[sizeof d->status_sent];

        if (d->quitting)
                return;   /* "shutting down" stays */
        notify_status_text(d, text, sizeof text);
        if (strcmp(text, d->status_sent) == 0)
                return;
        status_sent(d, text);
        (void) sd_notifyf(false, "STATUS=%s", text);
}

void notify_ready(struct daemon *d) {
        char text[sizeof d->status_sent];

        notify_status_text(d, text, sizeof text);
        status_sent(d, text);
        (void) sd_notifyf(false, "READY=1\nSTATUS=%s", text);
}

void notify_reloading(struct daemon *d) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        status_sent(d, "reloading the configuration");
        (void) sd_notifyf(false, "RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=%" PRIu64,
                          (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000);
}

void notify_stopping(struct daemon *d) {
        status_sent(d, "shutting down");
        (void) sd_notify(false, "STOPPING=1\nSTATUS=shutting down");
}
