/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "auth"
#include "common/client/auth-internal.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/base/list.h"
#include "common/base/log.h"

/* A simulated suspend (auth_test_sleep) moves CLOCK_BOOTTIME only, as a real one does. */
static uint64_t slept_on(const struct auth *a, clockid_t clock) {
        return clock == CLOCK_BOOTTIME ? a->slept : 0;
}

uint64_t auth_now(const struct auth *a) {
        uint64_t n = 0;

        (void) sd_event_now(a->event, AUTH_CLOCK, &n);
        return n + slept_on(a, AUTH_CLOCK);
}

/* Arms a timer on AUTH_CLOCK for a time of auth_now()'s. */
static int timer_arm(struct auth *a, sd_event_source **s, uint64_t at, sd_event_time_handler_t cb) {
        uint64_t slept = slept_on(a, AUTH_CLOCK);

        *s = sd_event_source_disable_unref(*s);
        return sd_event_add_time(a->event, s, AUTH_CLOCK, at > slept ? at - slept : 0, 10000, cb, a);
}

uint64_t auth_realtime(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* Library code logs nothing above debug: what is worth saying goes to the caller's note hook. */
void auth_say(struct auth *a, int prio, const char *message_id, const char *fmt, ...) {
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (a->hooks.note)
                a->hooks.note(prio, message_id, msg, a->hooks.userdata);
        else
                log_debug("%s", msg);
}

void auth_emit(struct auth *a, enum auth_event ev) {
        if (a->hooks.on_event)
                a->hooks.on_event(ev, a->hooks.userdata);
}

/* --- waiters ------------------------------------------------------------- */

void auth_wait(struct auth *a, struct auth_waiter *w, auth_ready_t cb, void *userdata) {
        assert(!w->queued);
        w->cb = cb;
        w->userdata = userdata;
        LIST_PREPEND(a->waiters, w);
        w->queued = true;
        w->head = &a->waiters;
}

void auth_unwait(struct auth *a, struct auth_waiter *w) {
        if (!a || !w->queued)
                return;
        LIST_REMOVE(*w->head, w);
        w->queued = false;
        w->head = NULL;
}

static void wake_waiters(struct auth *a, int error) {
        /* Callbacks may queue again (a replay after 401): detach the list first.  They may
         * also cancel waiters still on it (a call freed by another's end): auth_unwait()
         * takes those off this list, which is theirs until they are woken. */
        struct auth_waiter *list = a->waiters;

        a->waiters = NULL;
        LIST_FOREACH(w, list)
                w->head = &list;
        while (list) {
                struct auth_waiter *w = list;

                LIST_REMOVE(list, w);
                w->queued = false;
                w->head = NULL;
                w->cb(w, error, w->userdata);
        }
}

/* --- tokens -------------------------------------------------------------- */

uint64_t auth_expiry_margin(uint64_t life) {
        return life / 10 < EXPIRY_MARGIN_USEC ? life / 10 : EXPIRY_MARGIN_USEC;
}

void auth_tokens_drop(struct auth *a) {
        secret_free(a->access);
        secret_free(a->refresh);
        a->access = a->refresh = NULL;
        a->access_expires = a->refresh_expires = 0;
        a->access_margin = a->refresh_margin = 0;
        a->refresh_timer = sd_event_source_disable_unref(a->refresh_timer);
}

bool auth_access_valid(const struct auth *a) {
        return a->access && auth_now(a) + a->access_margin < a->access_expires;
}

/* While a renewal is on its way, the current token serves until it really
 * expires: the margin must not make requests wait for it. */
static bool access_usable(const struct auth *a) {
        return auth_access_valid(a) ||
               ((a->op == OP_REFRESH || a->op == OP_LOGIN) && a->access &&
                auth_now(a) < a->access_expires);
}

bool auth_refresh_valid(const struct auth *a) {
        return a->refresh && auth_now(a) + a->refresh_margin < a->refresh_expires;
}

/* What is left of the access token's life (counted from the request that got it). */
uint64_t auth_life_left(const struct auth *a) {
        uint64_t now = auth_now(a);

        return a->access_expires > now ? a->access_expires - now : 0;
}


static int on_refresh_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct auth *a = userdata;

        a->refresh_timer = sd_event_source_disable_unref(a->refresh_timer);
        if (a->op == OP_NONE)
                auth_op_start(a, auth_refresh_valid(a) ? OP_REFRESH : OP_LOGIN);
        return 0;
}

/*
 * Renew at 80% of the access token's life (what is left of it when it
 * arrives), or of the refresh token's remaining life if that ends sooner, so
 * in steady state no request ever waits for a token.
 */
void auth_schedule_renewal(struct auth *a, uint64_t access_life, uint64_t refresh_life) {
        uint64_t now = auth_now(a), at;

        at = now + access_life * 8 / 10;
        if (a->refresh && a->refresh_expires > now) {
                uint64_t r_at = now + (a->refresh_expires - now) * 8 / 10;
                if (refresh_life > 0 && r_at < at)
                        at = r_at;
        }
        if (timer_arm(a, &a->refresh_timer, at, on_refresh_timer) < 0)
                auth_say(a, LOG_WARNING, NULL, "cannot schedule token renewal; tokens will be renewed on demand");
}

/* --- failures and backoff ------------------------------------------------ */

static int on_retry_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct auth *a = userdata;

        a->retry_timer = sd_event_source_disable_unref(a->retry_timer);
        a->next_attempt = 0;
        /* A failed background renewal leaves a still valid token without a renewal
         * scheduled: renew it now rather than when a request finds it expired. */
        if (a->op == OP_NONE && (!auth_access_valid(a) || !a->refresh_timer))
                auth_op_start(a, auth_refresh_valid(a) ? OP_REFRESH : OP_LOGIN);
        return 0;
}

static uint64_t backoff_delay(unsigned failures) {
        uint64_t base = BACKOFF_BASE_USEC;
        uint32_t rnd = 0;

        for (unsigned i = 1; i < failures && base < BACKOFF_CAP_USEC; i++)
                base *= 2;
        if (base > BACKOFF_CAP_USEC)
                base = BACKOFF_CAP_USEC;
        /* Jitter only lengthens the wait, so the rate never exceeds the schedule. */
        (void) getrandom(&rnd, sizeof rnd, GRND_NONBLOCK);
        return base + (base / 4) * (rnd % 1000) / 1000;
}

void auth_fail(struct auth *a, const char *fmt, ...) {
        uint64_t delay;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(a->failure, sizeof a->failure, fmt, ap);
        va_end(ap);

        a->failures++;
        delay = backoff_delay(a->failures);
        a->next_attempt = auth_now(a) + delay;
        /* Each distinct reason is logged once, not on every retry. */
        if (strcmp(a->failure, a->logged_failure) != 0) {
                auth_say(a, LOG_ERR, NULL, "login failing: %s; retrying with backoff (next in %llu s)", a->failure,
                          (unsigned long long) ((delay + USEC_PER_SEC - 1) / USEC_PER_SEC));
                snprintf(a->logged_failure, sizeof a->logged_failure, "%s", a->failure);
        } else
                log_debug("login still failing (%u in a row): %s", a->failures, a->failure);

        if (timer_arm(a, &a->retry_timer, a->next_attempt, on_retry_timer) < 0)
                auth_say(a, LOG_WARNING, NULL, "cannot schedule the next login attempt");
        wake_waiters(a, -EACCES);
}

void auth_succeed(struct auth *a) {
        if (a->failures > 0 || a->logged_failure[0])
                auth_say(a, LOG_INFO, NULL, "login recovered after %u failed attempt(s)", a->failures);
        a->failures = 0;
        a->next_attempt = 0;
        a->failure[0] = 0;
        a->logged_failure[0] = 0;
        a->retry_timer = sd_event_source_disable_unref(a->retry_timer);
        a->generation++;
        wake_waiters(a, 0);
}

/* --- public ---------------------------------------------------------------- */

static int apikey_load(struct auth *a) {
        _cleanup_secret_free_ struct secret *key = NULL;
        _cleanup_(erase_and_freep) char *h = NULL;
        int r;

        secret_free(a->apikey_header);
        a->apikey_header = NULL;
        r = config_get_secret(a->config, &key);
        if (r < 0) {
                auth_say(a, LOG_ERR, NULL, "cannot read the API key: %s", strerror(-r));
                return r;
        }
        if (asprintf(&h, "Authorization: ApiKey %s", key->data) < 0)
                return -ENOMEM;
        a->apikey_header = secret_new_str(h);
        return a->apikey_header ? 0 : -ENOMEM;
}

int auth_new(sd_event *e, struct upstream *u, const struct denvr_config *c, const struct auth_hooks *h,
             struct auth **ret) {
        struct auth *a;
        int r;

        a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->event = sd_event_ref(e);
        a->upstream = u;
        a->config = c;
        if (h)
                a->hooks = *h;
        a->last_contact_ok = true;   /* nothing has failed yet */
        if (c->mode == CREDENTIAL_APIKEY) {
                r = apikey_load(a);
                if (r < 0) {
                        auth_free(a);
                        return r;
                }
        }
        *ret = a;
        return 0;
}

struct auth *auth_free(struct auth *a) {
        if (!a)
                return NULL;
        wake_waiters(a, -ECANCELED);
        auth_op_clear(a);
        auth_tokens_drop(a);
        secret_free(a->apikey_header);
        a->retry_timer = sd_event_source_disable_unref(a->retry_timer);
        sd_event_unref(a->event);
        free(a);
        return NULL;
}

void auth_start(struct auth *a) {
        if (a->config->mode == CREDENTIAL_PASSWORD && a->op == OP_NONE && !auth_access_valid(a))
                auth_op_start(a, OP_LOGIN);
}

void auth_set_config(struct auth *a, const struct denvr_config *c) {
        bool same = config_same_credentials(a->config, c);

        a->config = c;
        if (same) {
                /* A secret file may hold a new secret: read an API key again, and
                 * take a reload while logins fail as the signal to try again now. */
                if (c->mode == CREDENTIAL_APIKEY && c->secret_source != SECRET_SOURCE_CONFIG &&
                    c->secret_source != SECRET_SOURCE_ENV) {
                        if (apikey_load(a) < 0)
                                snprintf(a->failure, sizeof a->failure, "cannot read the API key");
                        else
                                a->failure[0] = 0;
                } else if (c->mode == CREDENTIAL_PASSWORD && a->failures > 0 && a->op == OP_NONE) {
                        auth_say(a, LOG_INFO, NULL, "configuration reloaded while logins fail; trying again now");
                        a->failures = 0;
                        a->next_attempt = 0;
                        a->logged_failure[0] = 0;
                        a->retry_timer = sd_event_source_disable_unref(a->retry_timer);
                        auth_op_start(a, OP_LOGIN);
                }
                return;
        }
        auth_say(a, LOG_INFO, NULL, "credentials changed; logging in again");
        auth_op_clear(a);
        auth_tokens_drop(a);
        a->failures = 0;
        a->next_attempt = 0;
        a->failure[0] = a->logged_failure[0] = 0;
        a->retry_timer = sd_event_source_disable_unref(a->retry_timer);
        a->generation++;
        a->refresh_via_get = false;
        secret_free(a->apikey_header);
        a->apikey_header = NULL;
        if (c->mode == CREDENTIAL_APIKEY) {
                if (apikey_load(a) < 0)
                        snprintf(a->failure, sizeof a->failure, "cannot read the API key");
                wake_waiters(a, a->apikey_header ? 0 : -EACCES);
        } else if (c->mode == CREDENTIAL_PASSWORD)
                auth_op_start(a, OP_LOGIN);
        else
                wake_waiters(a, -EACCES);
}

int auth_authorization(struct auth *a, char **ret_header, uint64_t *ret_generation) {
        const struct denvr_config *c = a->config;

        *ret_generation = a->generation;
        if (c->mode == CREDENTIAL_APIKEY) {
                if (!a->apikey_header)
                        return -EACCES;
                *ret_header = strdup(a->apikey_header->data);
                return *ret_header ? 0 : -ENOMEM;
        }
        if (c->mode != CREDENTIAL_PASSWORD) {
                snprintf(a->failure, sizeof a->failure, "no credentials configured");
                return -EACCES;
        }
        if (access_usable(a)) {
                if (asprintf(ret_header, "Authorization: Bearer %s", a->access->data) < 0)
                        return -ENOMEM;
                return 0;
        }
        if (a->op == OP_LOGIN || a->op == OP_REFRESH)
                return -EAGAIN;
        if (a->next_attempt && auth_now(a) < a->next_attempt)
                return -EACCES;   /* backing off: fail fast with the reason */
        auth_op_start(a, auth_refresh_valid(a) ? OP_REFRESH : OP_LOGIN);
        return a->op == OP_NONE ? -EACCES : -EAGAIN;
}

bool auth_unauthorized(struct auth *a, uint64_t generation) {
        if (a->config->mode != CREDENTIAL_PASSWORD)
                return false;   /* an API key cannot be renewed: a replay would get 401 again */
        if (generation != a->generation)
                return true;    /* a newer token exists already: replay with it */
        /* A token refused before its expiry means the session is gone:
         * the refresh token is no better, so log in afresh. */
        auth_say(a, LOG_INFO, NULL, "upstream refused the access token; logging in again");
        auth_tokens_drop(a);
        a->generation++;
        if (a->op == OP_NONE && !(a->next_attempt && auth_now(a) < a->next_attempt))
                auth_op_start(a, OP_LOGIN);
        return true;
}

const char *auth_failure(const struct auth *a) {
        if (a->config->mode == CREDENTIAL_NONE)
                return "no credentials configured";
        return a->failure[0] ? a->failure : NULL;
}

bool auth_failure_is_permanent(const struct auth *a) {
        return a->config->mode == CREDENTIAL_NONE || (a->failure[0] && a->failure_permanent);
}

int auth_logout(struct auth *a, void (*done)(void *userdata), void *userdata) {
        if (a->config->mode != CREDENTIAL_PASSWORD || !auth_access_valid(a))
                return 0;
        auth_op_clear(a);
        a->logout_done = done;
        a->logout_userdata = userdata;
        auth_op_start(a, OP_LOGOUT);
        return a->op == OP_LOGOUT ? 1 : 0;
}

/* After a resume, a timer on CLOCK_BOOTTIME is due as much sooner as the suspend lasted. */
static void timer_advance(sd_event_source *s, uint64_t usec) {
        clockid_t clock;
        uint64_t at;

        if (!s || sd_event_source_get_time_clock(s, &clock) < 0 || clock != CLOCK_BOOTTIME)
                return;
        if (sd_event_source_get_time(s, &at) >= 0)
                (void) sd_event_source_set_time(s, at > usec ? at - usec : 0);
}

void auth_test_sleep(struct auth *a, uint64_t usec, bool timers) {
        auth_say(a, LOG_INFO, NULL, "simulating a suspend of %llu s", (unsigned long long) (usec / USEC_PER_SEC));
        a->slept += usec;
        if (timers) {
                timer_advance(a->refresh_timer, usec);
                timer_advance(a->retry_timer, usec);
        }
}

void auth_note_upstream_contact(struct auth *a, bool ok) {
        a->last_contact_ok = ok;
}

void auth_get_state(const struct auth *a, struct auth_state *s) {
        uint64_t now = auth_now(a);

        *s = (struct auth_state) {
                .mode = a->config->mode,
                .user = a->config->username,
                .access_expires_in = -1,
                .refresh_expires_in = -1,
                .next_attempt_in = -1,
                .last_login_realtime = a->last_login_rt,
                .last_login_result = a->last_login_result,
                .last_refresh_realtime = a->last_refresh_rt,
                .last_refresh_result = a->last_refresh_result,
                .consecutive_failures = a->failures,
                .last_contact_ok = a->last_contact_ok,
                .failure = auth_failure(a),
        };
        if (a->config->mode == CREDENTIAL_APIKEY)
                s->logged_in = a->apikey_header != NULL;
        else if (a->config->mode == CREDENTIAL_PASSWORD) {
                s->logged_in = access_usable(a);
                if (a->access && a->access_expires > now)
                        s->access_expires_in = (long) ((a->access_expires - now) / USEC_PER_SEC);
                if (a->refresh && a->refresh_expires > now)
                        s->refresh_expires_in = (long) ((a->refresh_expires - now) / USEC_PER_SEC);
        }
        if (a->next_attempt > now)
                s->next_attempt_in = (long) ((a->next_attempt - now + USEC_PER_SEC - 1) / USEC_PER_SEC);
}
