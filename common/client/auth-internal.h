/* SPDX-License-Identifier: MIT */
#pragma once

/* What auth.c (the holder: tokens, waiters, backoff) and auth_exchange.c (the
 * login, refresh and logout exchanges with upstream) share. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "common/base/clock.h"
#include "common/base/secret.h"
#include "common/client/auth.h"
#include "common/client/upstream.h"

/* Token lives run on the clock that counts a suspend: a token that expired
 * while the laptop slept is renewed when it wakes, not found stale by the
 * first request (CLOCK_MONOTONIC stops during suspend). */
#define AUTH_CLOCK CLOCK_BOOTTIME
#define AUTH_TIMEOUT_MS 15000ul
#define LOGOUT_TIMEOUT_MS 2000ul
#define BACKOFF_BASE_USEC (1 * USEC_PER_SEC)
#define BACKOFF_CAP_USEC (300 * USEC_PER_SEC)
/*
 * A token this close to expiry is not handed out any more: 1 s, or a tenth of
 * the token's life if that is shorter, so that the margin always ends after
 * the renewal at 80% (a 2 s token is renewed at 1.6 s and used until 1.8 s).
 */
#define EXPIRY_MARGIN_USEC (1 * USEC_PER_SEC)

/* journald catalog ids for login, refresh and logout events. */
#define MESSAGE_ID_LOGIN   "4f0b6c2d3a8e4d17b1e5c9a07d2f6e31"
#define MESSAGE_ID_REFRESH "9c1d2e3f4a5b4c6d8e7f0a1b2c3d4e5f"
#define MESSAGE_ID_LOGOUT  "0d7e3a1b5c9f4e2a8b6d1c3e5f7a9b0c"

enum auth_op {
        OP_NONE,
        OP_LOGIN,
        OP_REFRESH,
        OP_LOGOUT,
};

struct auth {
        sd_event *event;
        struct upstream *upstream;
        const struct denvr_config *config;
        struct auth_hooks hooks;

        struct secret *apikey_header;       /* API-key mode */

        struct secret *access;              /* password mode */
        struct secret *refresh;
        uint64_t access_expires, refresh_expires;   /* AUTH_CLOCK usec */
        uint64_t access_margin, refresh_margin;     /* see EXPIRY_MARGIN_USEC */
        uint64_t generation;

        enum auth_op op;
        uint64_t op_started;                /* AUTH_CLOCK: tokens live from here */
        struct upstream_transfer *t;
        char *op_url;
        struct secret *op_body;
        struct curl_slist *op_headers;
        bool refresh_via_get;
        void (*logout_done)(void *userdata);
        void *logout_userdata;

        sd_event_source *refresh_timer;
        sd_event_source *retry_timer;
        unsigned failures;
        uint64_t next_attempt;              /* AUTH_CLOCK, 0 none */
        uint64_t slept;                     /* a simulated suspend (tests only), see auth_test_sleep() */
        char failure[320];
        bool failure_permanent;     /* no retry can cure it (auth_failure_is_permanent()) */
        char logged_failure[320];           /* last reason logged, to log each once */

        uint64_t last_login_rt, last_refresh_rt;
        const char *last_login_result, *last_refresh_result;
        bool last_contact_ok;

        struct auth_waiter *waiters;
};

/* auth.c */
uint64_t auth_now(const struct auth *a);
uint64_t auth_realtime(void);
void auth_say(struct auth *a, int prio, const char *message_id, const char *fmt, ...) _printf_(4, 5);
void auth_emit(struct auth *a, enum auth_event ev);
uint64_t auth_expiry_margin(uint64_t life);
void auth_tokens_drop(struct auth *a);
uint64_t auth_life_left(const struct auth *a);
void auth_schedule_renewal(struct auth *a, uint64_t access_life, uint64_t refresh_life);
void auth_fail(struct auth *a, const char *fmt, ...) _printf_(2, 3);
void auth_succeed(struct auth *a);
bool auth_refresh_valid(const struct auth *a);
bool auth_access_valid(const struct auth *a);

/* auth_exchange.c */
void auth_op_clear(struct auth *a);
void auth_op_start(struct auth *a, enum auth_op op);
