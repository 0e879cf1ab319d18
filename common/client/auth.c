/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "auth"
#include "common/client/auth.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/base/clock.h"
#include "common/base/list.h"
#include "common/base/log.h"
#include "common/base/secret.h"
#include "common/client/upstream.h"
#include "denvrd-version.h"

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

/* A simulated suspend (auth_test_sleep) moves CLOCK_BOOTTIME only, as a real one does. */
static uint64_t slept_on(const struct auth *a, clockid_t clock) {
        return clock == CLOCK_BOOTTIME ? a->slept : 0;
}

static uint64_t now_usec(const struct auth *a) {
        uint64_t n = 0;

        (void) sd_event_now(a->event, AUTH_CLOCK, &n);
        return n + slept_on(a, AUTH_CLOCK);
}

/* Arms a timer on AUTH_CLOCK for a time of now_usec()'s. */
static int timer_arm(struct auth *a, sd_event_source **s, uint64_t at, sd_event_time_handler_t cb) {
        uint64_t slept = slept_on(a, AUTH_CLOCK);

        *s = sd_event_source_disable_unref(*s);
        return sd_event_add_time(a->event, s, AUTH_CLOCK, at > slept ? at - slept : 0, 10000, cb, a);
}

static uint64_t realtime_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* Library code logs nothing above debug: what is worth saying goes to the caller's note hook. */
static void say(struct auth *a, int prio, const char *message_id, const char *fmt, ...) _printf_(4, 5);
static void say(struct auth *a, int prio, const char *message_id, const char *fmt, ...) {
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

static void emit(struct auth *a, enum auth_event ev) {
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
}

void auth_unwait(struct auth *a, struct auth_waiter *w) {
        if (!a || !w->queued)
                return;
        LIST_REMOVE(a->waiters, w);
        w->queued = false;
}

static void wake_waiters(struct auth *a, int error) {
        /* Callbacks may queue again (a replay after 401): detach the list first. */
        struct auth_waiter *list = a->waiters;

        a->waiters = NULL;
        while (list) {
                struct auth_waiter *w = list;

                list = w->next;
                if (list)
                        list->prev = NULL;
                w->prev = w->next = NULL;
                w->queued = false;
                w->cb(w, error, w->userdata);
        }
}

/* --- tokens -------------------------------------------------------------- */

static uint64_t expiry_margin(uint64_t life) {
        return life / 10 < EXPIRY_MARGIN_USEC ? life / 10 : EXPIRY_MARGIN_USEC;
}

static void tokens_drop(struct auth *a) {
        secret_free(a->access);
        secret_free(a->refresh);
        a->access = a->refresh = NULL;
        a->access_expires = a->refresh_expires = 0;
        a->access_margin = a->refresh_margin = 0;
        a->refresh_timer = sd_event_source_disable_unref(a->refresh_timer);
}

static bool access_valid(const struct auth *a) {
        return a->access && now_usec(a) + a->access_margin < a->access_expires;
}

/* While a renewal is on its way, the current token serves until it really
 * expires: the margin must not make requests wait for it. */
static bool access_usable(const struct auth *a) {
        return access_valid(a) ||
               ((a->op == OP_REFRESH || a->op == OP_LOGIN) && a->access &&
                now_usec(a) < a->access_expires);
}

static bool refresh_valid(const struct auth *a) {
        return a->refresh && now_usec(a) + a->refresh_margin < a->refresh_expires;
}

/* What is left of the access token's life (counted from the request that got it). */
static uint64_t life_left(const struct auth *a) {
        uint64_t now = now_usec(a);

        return a->access_expires > now ? a->access_expires - now : 0;
}

static void op_start(struct auth *a, enum auth_op op);

static int on_refresh_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct auth *a = userdata;

        a->refresh_timer = sd_event_source_disable_unref(a->refresh_timer);
        if (a->op == OP_NONE)
                op_start(a, refresh_valid(a) ? OP_REFRESH : OP_LOGIN);
        return 0;
}

/*
 * Renew at 80% of the access token's life (what is left of it when it
 * arrives), or of the refresh token's remaining life if that ends sooner, so
 * in steady state no request ever waits for a token.
 */
static void schedule_renewal(struct auth *a, uint64_t access_life, uint64_t refresh_life) {
        uint64_t now = now_usec(a), at;

        at = now + access_life * 8 / 10;
        if (a->refresh && a->refresh_expires > now) {
                uint64_t r_at = now + (a->refresh_expires - now) * 8 / 10;
                if (refresh_life > 0 && r_at < at)
                        at = r_at;
        }
        if (timer_arm(a, &a->refresh_timer, at, on_refresh_timer) < 0)
                say(a, LOG_WARNING, NULL, "cannot schedule token renewal; tokens will be renewed on demand");
}

/* --- failures and backoff ------------------------------------------------ */

static int on_retry_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct auth *a = userdata;

        a->retry_timer = sd_event_source_disable_unref(a->retry_timer);
        a->next_attempt = 0;
        /* A failed background renewal leaves a still valid token without a renewal
         * scheduled: renew it now rather than when a request finds it expired. */
        if (a->op == OP_NONE && (!access_valid(a) || !a->refresh_timer))
                op_start(a, refresh_valid(a) ? OP_REFRESH : OP_LOGIN);
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

static void fail(struct auth *a, const char *fmt, ...) _printf_(2, 3);
static void fail(struct auth *a, const char *fmt, ...) {
        uint64_t delay;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(a->failure, sizeof a->failure, fmt, ap);
        va_end(ap);

        a->failures++;
        delay = backoff_delay(a->failures);
        a->next_attempt = now_usec(a) + delay;
        /* Each distinct reason is logged once, not on every retry. */
        if (strcmp(a->failure, a->logged_failure) != 0) {
                say(a, LOG_ERR, NULL, "login failing: %s; retrying with backoff (next in %llu s)", a->failure,
                          (unsigned long long) ((delay + USEC_PER_SEC - 1) / USEC_PER_SEC));
                snprintf(a->logged_failure, sizeof a->logged_failure, "%s", a->failure);
        } else
                log_debug("login still failing (%u in a row): %s", a->failures, a->failure);

        if (timer_arm(a, &a->retry_timer, a->next_attempt, on_retry_timer) < 0)
                say(a, LOG_WARNING, NULL, "cannot schedule the next login attempt");
        wake_waiters(a, -EACCES);
}

static void succeed(struct auth *a) {
        if (a->failures > 0 || a->logged_failure[0])
                say(a, LOG_INFO, NULL, "login recovered after %u failed attempt(s)", a->failures);
        a->failures = 0;
        a->next_attempt = 0;
        a->failure[0] = 0;
        a->logged_failure[0] = 0;
        a->retry_timer = sd_event_source_disable_unref(a->retry_timer);
        a->generation++;
        wake_waiters(a, 0);
}

/* --- the login / refresh / logout exchanges ------------------------------ */

static void op_clear(struct auth *a) {
        upstream_transfer_free(a->t);
        a->t = NULL;
        secret_free(a->op_body);
        a->op_body = NULL;
        curl_slist_free_all(a->op_headers);
        a->op_headers = NULL;
        free(a->op_url);
        a->op_url = NULL;
        a->op = OP_NONE;
}

/* Parses the ABP envelope; returns the "result" object or NULL. */
static json_t *parse_result(struct upstream_transfer *t, json_t **ret_root, const char **ret_message) {
        json_t *root, *res, *err;

        *ret_message = NULL;
        root = json_loadb(t->resp_body ? t->resp_body : "", t->resp_body_len, 0, NULL);
        /* The body held tokens: wipe it now that jansson has what it needs. */
        if (t->resp_body)
                explicit_bzero(t->resp_body, t->resp_body_len);
        *ret_root = root;
        if (!json_is_object(root))
                return NULL;
        err = json_object_get(root, "error");
        if (json_is_object(err)) {
                const char *d = json_string_value(json_object_get(err, "details"));
                const char *m = json_string_value(json_object_get(err, "message"));
                *ret_message = d && *d ? d : m;
        }
        res = json_object_get(root, "result");
        return json_is_object(res) ? res : NULL;
}

static uint64_t seconds_field(json_t *o, const char *name, uint64_t fallback) {
        json_t *v = json_object_get(o, name);

        if (json_is_integer(v) && json_integer_value(v) > 0)
                return (uint64_t) json_integer_value(v) * USEC_PER_SEC;
        if (json_is_real(v) && json_real_value(v) > 0)
                return (uint64_t) (json_real_value(v) * USEC_PER_SEC);
        return fallback;
}

static void login_done(struct auth *a, struct upstream_transfer *t) {
        const char *user = a->config->username;
        json_t *root = NULL, *res;
        const char *msg, *at, *rt;
        uint64_t alife, rlife;

        a->last_login_rt = realtime_usec();
        /* Wrong credentials, an account that needs a person, a certificate nobody trusts. */
        a->failure_permanent = t->result == CURLE_PEER_FAILED_VERIFICATION;
        if (t->result != CURLE_OK) {
                a->last_contact_ok = false;
                a->last_login_result = "upstream unreachable";
                emit(a, AUTH_EVENT_LOGIN_FAILED);
                /* curl's errbuf varies between attempts ("after 5001 ms"): the reason
                 * uses the stable text so that it is logged once. */
                log_debug("login request failed: %s", t->errbuf);
                fail(a, "upstream %s unreachable: %s", a->config->server,
                     curl_easy_strerror(t->result));
                return;
        }
        a->last_contact_ok = true;
        res = parse_result(t, &root, &msg);
        if (res && json_is_true(json_object_get(res, "requiresTwoFactorVerification"))) {
                a->last_login_result = "two-factor verification required";
                a->failure_permanent = true;
                fail(a, "the account %s requires two-factor verification, which denvrd cannot "
                     "answer: use an API key instead", user);
        } else if (res && json_is_true(json_object_get(res, "shouldResetPassword"))) {
                a->last_login_result = "password reset required";
                a->failure_permanent = true;
                fail(a, "upstream requires a password reset for %s: reset it in the Denvr console, "
                     "then update the password", user);
        } else if (t->status == 200 && res &&
                   (at = json_string_value(json_object_get(res, "accessToken"))) && *at) {
                tokens_drop(a);
                alife = seconds_field(res, "expireInSeconds", 300 * USEC_PER_SEC);
                rlife = seconds_field(res, "refreshTokenExpireInSeconds", 0);
                rt = json_string_value(json_object_get(res, "refreshToken"));
                a->access = secret_new_str(at);
                a->refresh = rt && *rt && rlife ? secret_new_str(rt) : NULL;
                /* The token's life began somewhere between our request and its
                 * answer: count it from the request, the safe end. */
                a->access_expires = a->op_started + alife;
                a->access_margin = expiry_margin(alife);
                a->refresh_expires = a->refresh ? a->op_started + rlife : 0;
                a->refresh_margin = expiry_margin(rlife);
                a->last_login_result = "ok";
                say(a, LOG_INFO, MESSAGE_ID_LOGIN, "logged in as %s; token valid %llu s",
                          user, (unsigned long long) (alife / USEC_PER_SEC));
                schedule_renewal(a, life_left(a), rlife);
                emit(a, AUTH_EVENT_LOGIN_OK);
                json_decref(root);
                succeed(a);
                return;
        } else if (upstream_status_is_transient(t->status)) {
                a->last_login_result = "upstream unavailable";
                fail(a, "upstream %s unavailable: HTTP %ld%s%s", a->config->server, t->status,
                     msg ? ", " : "", msg ? msg : "");
        } else if (t->status == 401 || t->status == 403 || (t->status >= 400 && t->status < 600 && msg)) {
                a->last_login_result = "rejected";
                a->failure_permanent = true;
                fail(a, "upstream rejected the password for %s (%s)", user,
                     msg ? msg : "HTTP error");
        } else {
                a->last_login_result = "invalid answer";
                fail(a, "login to %s failed: HTTP %ld without a token", a->config->server, t->status);
        }
        emit(a, AUTH_EVENT_LOGIN_FAILED);
        json_decref(root);
}

static void refresh_done(struct auth *a, struct upstream_transfer *t) {
        json_t *root = NULL, *res;
        const char *msg, *at;
        uint64_t alife;

        a->last_refresh_rt = realtime_usec();
        if (t->result == CURLE_OK && (t->status == 404 || t->status == 405) && !a->refresh_via_get) {
                /* The spec says POST; some deployments (and the Python SDK) use GET. */
                log_debug("refresh by POST answered %ld; trying GET", t->status);
                a->refresh_via_get = true;
                op_start(a, OP_REFRESH);
                return;
        }
        if (t->result != CURLE_OK) {
                a->last_contact_ok = false;
                a->last_refresh_result = "upstream unreachable";
                emit(a, AUTH_EVENT_REFRESH_FAILED);
                if (access_valid(a)) {
                        /* Still usable: try again later without failing anyone. */
                        say(a, LOG_WARNING, NULL, "token refresh failed: %s; retrying before it expires", t->errbuf);
                        schedule_renewal(a, (a->access_expires - now_usec(a)) / 2, 0);
                        return;
                }
                log_debug("refresh request failed: %s", t->errbuf);
                fail(a, "upstream %s unreachable: %s", a->config->server,
                     curl_easy_strerror(t->result));
                return;
        }
        a->last_contact_ok = true;
        res = parse_result(t, &root, &msg);
        if (t->status == 200 && res && (at = json_string_value(json_object_get(res, "accessToken"))) && *at) {
                secret_free(a->access);
                a->access = secret_new_str(at);
                alife = seconds_field(res, "expireInSeconds", 300 * USEC_PER_SEC);
                a->access_expires = a->op_started + alife;
                a->access_margin = expiry_margin(alife);
                a->last_refresh_result = "ok";
                say(a, LOG_INFO, MESSAGE_ID_REFRESH, "token refreshed; valid %llu s",
                          (unsigned long long) (alife / USEC_PER_SEC));
                schedule_renewal(a, life_left(a), 1);
                emit(a, AUTH_EVENT_REFRESH_OK);
                json_decref(root);
                succeed(a);
                return;
        }
        json_decref(root);
        /* Refused or expired refresh token: fall back to a full login. */
        a->last_refresh_result = "refused";
        emit(a, AUTH_EVENT_REFRESH_FAILED);
        say(a, LOG_INFO, NULL, "token refresh refused (HTTP %ld); logging in again", t->status);
        secret_free(a->refresh);
        a->refresh = NULL;
        a->refresh_expires = 0;
        op_start(a, OP_LOGIN);
}

static void on_op_done(struct upstream_transfer *t, void *userdata) {
        struct auth *a = userdata;
        enum auth_op op = a->op;
        void (*done)(void *) = a->logout_done;

        /* Detach the transfer so the handlers may start the next operation. */
        a->t = NULL;
        op_clear(a);
        switch (op) {
        case OP_LOGIN:
                login_done(a, t);
                break;
        case OP_REFRESH:
                refresh_done(a, t);
                break;
        case OP_LOGOUT:
                say(a, LOG_INFO, MESSAGE_ID_LOGOUT, "logged out (HTTP %ld)", t->status);
                emit(a, AUTH_EVENT_LOGOUT);
                a->logout_done = NULL;
                if (done)
                        done(a->logout_userdata);
                break;
        default:
                assert_not_reached();
        }
        if (t->resp_body)
                explicit_bzero(t->resp_body, t->resp_body_len);
        upstream_transfer_free(t);
}

static int op_headers(struct auth *a, const char *bearer) {
        static const char user_agent[] = "User-Agent: denvrd/" DENVRD_VERSION;
        const char *const base[] = { "Accept: application/json", "Expect:", user_agent };

        for (size_t i = 0; i < ELEMENTSOF(base); i++) {
                struct curl_slist *n = curl_slist_append(a->op_headers, base[i]);
                if (!n)
                        return -ENOMEM;
                a->op_headers = n;
        }
        if (bearer) {
                _cleanup_(erase_and_freep) char *h = NULL;
                struct curl_slist *n;

                if (asprintf(&h, "Authorization: Bearer %s", bearer) < 0)
                        return -ENOMEM;
                n = curl_slist_append(a->op_headers, h);
                if (!n)
                        return -ENOMEM;
                a->op_headers = n;
        }
        return 0;
}

static int login_prepare(struct auth *a) {
        _cleanup_secret_free_ struct secret *pw = NULL;
        _cleanup_(erase_and_freep) char *body = NULL;
        json_t *o;
        int r;

        r = config_get_secret(a->config, &pw);
        if (r < 0) {
                fail(a, "cannot read the password for %s: %s", a->config->username, strerror(-r));
                return r;
        }
        o = json_pack("{s:s, s:s%}", "userNameOrEmailAddress", a->config->username,
                      "password", pw->data, pw->len);
        if (!o)
                return -ENOMEM;
        body = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!body)
                return -ENOMEM;
        a->op_body = secret_new_str(body);
        if (!a->op_body || asprintf(&a->op_url, "%s/api/TokenAuth/Authenticate", a->config->server) < 0)
                return -ENOMEM;
        a->t->method = "POST";
        struct curl_slist *n = curl_slist_append(a->op_headers, "Content-Type: application/json");
        if (!n)
                return -ENOMEM;
        a->op_headers = n;
        return op_headers(a, NULL);
}

static int refresh_prepare(struct auth *a) {
        _cleanup_free_ char *esc = NULL;
        CURL *c = curl_easy_init();

        if (!c)
                return -ENOMEM;
        esc = curl_easy_escape(c, a->refresh->data, (int) a->refresh->len);
        curl_easy_cleanup(c);
        if (!esc)
                return -ENOMEM;
        if (asprintf(&a->op_url, "%s/api/TokenAuth/RefreshToken?refreshToken=%s", a->config->server, esc) < 0) {
                explicit_bzero(esc, strlen(esc));
                return -ENOMEM;
        }
        explicit_bzero(esc, strlen(esc));
        a->t->method = a->refresh_via_get ? "GET" : "POST";
        return op_headers(a, NULL);
}

static void op_start(struct auth *a, enum auth_op op) {
        int r;

        assert(a->op == OP_NONE);
        assert(op != OP_NONE);
        a->t = upstream_transfer_new(a->upstream, on_op_done, a);
        if (!a->t) {
                fail(a, "out of memory");
                return;
        }
        a->op = op;
        a->op_started = now_usec(a);
        if (op == OP_LOGIN) {
                r = login_prepare(a);
        } else if (op == OP_REFRESH) {
                r = refresh_prepare(a);
        } else {
                a->t->method = "GET";
                r = asprintf(&a->op_url, "%s/api/TokenAuth/LogOut", a->config->server) < 0 ? -ENOMEM
                        : op_headers(a, a->access->data);
        }
        if (r < 0) {
                bool failed_already = a->failure[0] && op == OP_LOGIN;
                op_clear(a);
                if (!failed_already)
                        fail(a, "cannot prepare the %s request: %s", op == OP_LOGIN ? "login" : "refresh",
                             strerror(-r));
                return;
        }

        if (op == OP_LOGIN)
                say(a, LOG_INFO, NULL, "logging in to %s as %s", a->config->server, a->config->username);
        else if (op == OP_REFRESH)
                log_debug("refreshing the access token");
        a->t->url = a->op_url;
        a->t->headers = a->op_headers;
        a->t->body = a->op_body ? a->op_body->data : NULL;
        a->t->body_len = a->op_body ? a->op_body->len : 0;
        a->t->timeout_ms = op == OP_LOGOUT ? LOGOUT_TIMEOUT_MS : AUTH_TIMEOUT_MS;
        r = upstream_transfer_start(a->t);
        if (r < 0) {
                op_clear(a);
                fail(a, "cannot start the login request");
        }
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
                say(a, LOG_ERR, NULL, "cannot read the API key: %s", strerror(-r));
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
        op_clear(a);
        tokens_drop(a);
        secret_free(a->apikey_header);
        a->retry_timer = sd_event_source_disable_unref(a->retry_timer);
        sd_event_unref(a->event);
        free(a);
        return NULL;
}

void auth_start(struct auth *a) {
        if (a->config->mode == CREDENTIAL_PASSWORD && a->op == OP_NONE && !access_valid(a))
                op_start(a, OP_LOGIN);
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
                        say(a, LOG_INFO, NULL, "configuration reloaded while logins fail; trying again now");
                        a->failures = 0;
                        a->next_attempt = 0;
                        a->logged_failure[0] = 0;
                        a->retry_timer = sd_event_source_disable_unref(a->retry_timer);
                        op_start(a, OP_LOGIN);
                }
                return;
        }
        say(a, LOG_INFO, NULL, "credentials changed; logging in again");
        op_clear(a);
        tokens_drop(a);
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
                op_start(a, OP_LOGIN);
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
        if (a->next_attempt && now_usec(a) < a->next_attempt)
                return -EACCES;   /* backing off: fail fast with the reason */
        op_start(a, refresh_valid(a) ? OP_REFRESH : OP_LOGIN);
        return a->op == OP_NONE ? -EACCES : -EAGAIN;
}

bool auth_unauthorized(struct auth *a, uint64_t generation) {
        if (a->config->mode != CREDENTIAL_PASSWORD)
                return false;   /* an API key cannot be renewed: a replay would get 401 again */
        if (generation != a->generation)
                return true;    /* a newer token exists already: replay with it */
        /* A token refused before its expiry means the session is gone:
         * the refresh token is no better, so log in afresh. */
        say(a, LOG_INFO, NULL, "upstream refused the access token; logging in again");
        tokens_drop(a);
        a->generation++;
        if (a->op == OP_NONE && !(a->next_attempt && now_usec(a) < a->next_attempt))
                op_start(a, OP_LOGIN);
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
        if (a->config->mode != CREDENTIAL_PASSWORD || !access_valid(a))
                return 0;
        op_clear(a);
        a->logout_done = done;
        a->logout_userdata = userdata;
        op_start(a, OP_LOGOUT);
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
        say(a, LOG_INFO, NULL, "simulating a suspend of %llu s", (unsigned long long) (usec / USEC_PER_SEC));
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
        uint64_t now = now_usec(a);

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
