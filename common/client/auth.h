/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The login holder.  In API-key mode it simply provides
 * "Authorization: ApiKey KEY".  In password mode it logs in once, refreshes
 * the access token in the background before it expires (at 80% of its
 * life), logs in again when the refresh token is gone or refused, and
 * retries failed logins with exponential backoff and jitter.
 *
 * Requests never block: auth_authorization() either returns a header at
 * once, or the caller registers a waiter and is called back (from the event
 * loop) when a token arrives or the attempt fails.  Exactly one login or
 * refresh is in flight at any time (single flight).
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "common/base/cleanup.h"
#include "common/config/config.h"

struct auth;
struct upstream;
struct auth_waiter;

/* error is 0 when a token is available now, else a negative errno. */
typedef void (*auth_ready_t)(struct auth_waiter *w, int error, void *userdata);

struct auth_waiter {
        struct auth_waiter *prev, *next;
        auth_ready_t cb;
        void *userdata;
        bool queued;
        struct auth_waiter **head;      /* the list it is on while queued */
};

/* Events the daemon wants to know about (counters, status, journal). */
enum auth_event {
        AUTH_EVENT_LOGIN_OK,
        AUTH_EVENT_LOGIN_FAILED,
        AUTH_EVENT_REFRESH_OK,
        AUTH_EVENT_REFRESH_FAILED,
        AUTH_EVENT_LOGOUT,
        _AUTH_EVENT_MAX,
};
typedef void (*auth_event_t)(enum auth_event ev, void *userdata);
/* What the login holder has to say (logged in, failing, recovered...), at a syslog
 * priority and with a journal MESSAGE_ID or NULL: the caller decides what to log. */
typedef void (*auth_note_t)(int priority, const char *message_id, const char *text, void *userdata);

struct auth_hooks {
        auth_event_t on_event;          /* may be NULL */
        auth_note_t note;               /* may be NULL: notes go to the debug log */
        void *userdata;
};

int auth_new(sd_event *e, struct upstream *u, const struct denvr_config *c, const struct auth_hooks *h,
             struct auth **ret);
struct auth *auth_free(struct auth *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct auth *, auth_free)

/* Starts the first login in the background (password mode). */
void auth_start(struct auth *a);

/*
 * Takes a new configuration (reload).  Changed credentials drop the token,
 * reset the backoff and log in again; the config must outlive the auth.
 */
void auth_set_config(struct auth *a, const struct denvr_config *c);

/*
 * The Authorization header line for a request ("Authorization: Bearer ..."),
 * malloc'ed (free with erase_and_free), and the token generation it belongs
 * to.  Returns 0, -EAGAIN when the caller must wait, or another negative
 * errno when login is failing (see auth_failure()).
 */
int auth_authorization(struct auth *a, char **ret_header, uint64_t *ret_generation);

void auth_wait(struct auth *a, struct auth_waiter *w, auth_ready_t cb, void *userdata);
void auth_unwait(struct auth *a, struct auth_waiter *w);

/*
 * Upstream said 401 to a request made with this generation's token.  Drops
 * the token and logs in afresh (once per generation).  Returns true when a
 * replay of the request can succeed (a new token is, or will be, held).
 */
bool auth_unauthorized(struct auth *a, uint64_t generation);

/* Human reason why no token is held ("upstream rejected the password for X"), or NULL. */
const char *auth_failure(const struct auth *a);
/*
 * Whether that failure is one no retry can cure: credentials upstream
 * rejected, an account that needs two-factor verification or a password
 * reset, an upstream certificate that is not trusted, no credentials at all.
 */
bool auth_failure_is_permanent(const struct auth *a);

/* Logs out (bounded to 2 s by the caller's event loop); calls done when finished. */
int auth_logout(struct auth *a, void (*done)(void *userdata), void *userdata);

/* Public state for status and metrics: never any secret. */
struct auth_state {
        enum credential_mode mode;
        const char *user;
        bool logged_in;             /* holds a usable token or API key */
        long access_expires_in;     /* seconds, -1 unknown */
        long refresh_expires_in;
        uint64_t last_login_realtime;   /* usec since epoch, 0 never */
        const char *last_login_result;
        uint64_t last_refresh_realtime;
        const char *last_refresh_result;
        unsigned consecutive_failures;
        long next_attempt_in;       /* seconds until the next login try, -1 none */
        bool last_contact_ok;       /* the last upstream exchange worked */
        const char *failure;
};
void auth_get_state(const struct auth *a, struct auth_state *ret);
/*
 * For the test build only (denvrd-test-hooks; nothing in denvrd calls it): what
 * a suspend of usec looks like after the wake-up.  The token clock
 * (CLOCK_BOOTTIME) is ahead by usec; with timers, the renewal and retry timers
 * whose time came meanwhile are due at once, as the kernel's are on resume;
 * without, they are late (a request dispatched before them, in the same loop
 * iteration after a resume).
 */
void auth_test_sleep(struct auth *a, uint64_t usec, bool timers);

/* Forwarded requests report whether upstream answered, for readiness. */
void auth_note_upstream_contact(struct auth *a, bool ok);
