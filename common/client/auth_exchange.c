/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "auth"
#include "common/client/auth-internal.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/log.h"
#include "denvrd-version.h"

/* --- the login / refresh / logout exchanges ------------------------------ */

void auth_op_clear(struct auth *a) {
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

/* A login's answer held an access token: keep it (and the refresh token), renew before expiry. */
static void logged_in(struct auth *a, json_t *res, const char *at) {
        uint64_t alife = seconds_field(res, "expireInSeconds", 300 * USEC_PER_SEC);
        uint64_t rlife = seconds_field(res, "refreshTokenExpireInSeconds", 0);
        const char *rt = json_string_value(json_object_get(res, "refreshToken"));

        auth_tokens_drop(a);
        a->access = secret_new_str(at);
        a->refresh = rt && *rt && rlife ? secret_new_str(rt) : NULL;
        /* The token's life began somewhere between our request and its
         * answer: count it from the request, the safe end. */
        a->access_expires = a->op_started + alife;
        a->access_margin = auth_expiry_margin(alife);
        a->refresh_expires = a->refresh ? a->op_started + rlife : 0;
        a->refresh_margin = auth_expiry_margin(rlife);
        a->last_login_result = "ok";
        auth_say(a, LOG_INFO, MESSAGE_ID_LOGIN, "logged in as %s; token valid %llu s", a->config->username,
            (unsigned long long) (alife / USEC_PER_SEC));
        auth_schedule_renewal(a, auth_life_left(a), rlife);
        auth_emit(a, AUTH_EVENT_LOGIN_OK);
        auth_succeed(a);
}

/* No answer at all.  curl's errbuf varies between attempts ("after 5001 ms"):
 * the reason uses its stable text, so that it is logged once. */
static void fail_unreachable(struct auth *a, struct upstream_transfer *t, const char *what) {
        log_debug("%s request failed: %s", what, t->errbuf);
        auth_fail(a, "upstream %s unreachable: %s", a->config->server, curl_easy_strerror(t->result));
}

static void login_done(struct auth *a, struct upstream_transfer *t) {
        const char *user = a->config->username;
        json_t *root = NULL, *res;
        const char *msg, *at;

        a->last_login_rt = auth_realtime();
        /* Wrong credentials, an account that needs a person, a certificate nobody trusts. */
        a->failure_permanent = t->result == CURLE_PEER_FAILED_VERIFICATION;
        if (t->result != CURLE_OK) {
                a->last_contact_ok = false;
                a->last_login_result = "upstream unreachable";
                auth_emit(a, AUTH_EVENT_LOGIN_FAILED);
                fail_unreachable(a, t, "login");
                return;
        }
        a->last_contact_ok = true;
        res = parse_result(t, &root, &msg);
        if (res && json_is_true(json_object_get(res, "requiresTwoFactorVerification"))) {
                a->last_login_result = "two-factor verification required";
                a->failure_permanent = true;
                auth_fail(a, "the account %s requires two-factor verification, which denvrd cannot "
                     "answer: use an API key instead", user);
        } else if (res && json_is_true(json_object_get(res, "shouldResetPassword"))) {
                a->last_login_result = "password reset required";
                a->failure_permanent = true;
                auth_fail(a, "upstream requires a password reset for %s: reset it in the Denvr console, "
                     "then update the password", user);
        } else if (t->status == 200 && res &&
                   (at = json_string_value(json_object_get(res, "accessToken"))) && *at) {
                logged_in(a, res, at);
                json_decref(root);
                return;
        } else if (upstream_status_is_transient(t->status)) {
                a->last_login_result = "upstream unavailable";
                auth_fail(a, "upstream %s unavailable: HTTP %ld%s%s", a->config->server, t->status,
                     msg ? ", " : "", msg ? msg : "");
        } else if (t->status == 401 || t->status == 403 || (t->status >= 400 && t->status < 600 && msg)) {
                a->last_login_result = "rejected";
                a->failure_permanent = true;
                auth_fail(a, "upstream rejected the password for %s (%s)", user,
                     msg ? msg : "HTTP error");
        } else {
                a->last_login_result = "invalid answer";
                auth_fail(a, "login to %s failed: HTTP %ld without a token", a->config->server, t->status);
        }
        auth_emit(a, AUTH_EVENT_LOGIN_FAILED);
        json_decref(root);
}

static void refresh_done(struct auth *a, struct upstream_transfer *t) {
        json_t *root = NULL, *res;
        const char *msg, *at;
        uint64_t alife;

        a->last_refresh_rt = auth_realtime();
        if (t->result == CURLE_OK && (t->status == 404 || t->status == 405) && !a->refresh_via_get) {
                /* The spec says POST; some deployments (and the Python SDK) use GET. */
                log_debug("refresh by POST answered %ld; trying GET", t->status);
                a->refresh_via_get = true;
                auth_op_start(a, OP_REFRESH);
                return;
        }
        if (t->result != CURLE_OK) {
                a->last_contact_ok = false;
                a->last_refresh_result = "upstream unreachable";
                auth_emit(a, AUTH_EVENT_REFRESH_FAILED);
                if (auth_access_valid(a)) {
                        /* Still usable: try again later without failing anyone. */
                        auth_say(a, LOG_WARNING, NULL, "token refresh failed: %s; retrying before it expires", t->errbuf);
                        auth_schedule_renewal(a, (a->access_expires - auth_now(a)) / 2, 0);
                        return;
                }
                fail_unreachable(a, t, "refresh");
                return;
        }
        a->last_contact_ok = true;
        res = parse_result(t, &root, &msg);
        if (t->status == 200 && res && (at = json_string_value(json_object_get(res, "accessToken"))) && *at) {
                secret_free(a->access);
                a->access = secret_new_str(at);
                alife = seconds_field(res, "expireInSeconds", 300 * USEC_PER_SEC);
                a->access_expires = a->op_started + alife;
                a->access_margin = auth_expiry_margin(alife);
                a->last_refresh_result = "ok";
                auth_say(a, LOG_INFO, MESSAGE_ID_REFRESH, "token refreshed; valid %llu s",
                          (unsigned long long) (alife / USEC_PER_SEC));
                auth_schedule_renewal(a, auth_life_left(a), 1);
                auth_emit(a, AUTH_EVENT_REFRESH_OK);
                json_decref(root);
                auth_succeed(a);
                return;
        }
        json_decref(root);
        /* Refused or expired refresh token: fall back to a full login. */
        a->last_refresh_result = "refused";
        auth_emit(a, AUTH_EVENT_REFRESH_FAILED);
        auth_say(a, LOG_INFO, NULL, "token refresh refused (HTTP %ld); logging in again", t->status);
        secret_free(a->refresh);
        a->refresh = NULL;
        a->refresh_expires = 0;
        auth_op_start(a, OP_LOGIN);
}

static void on_op_done(struct upstream_transfer *t, void *userdata) {
        struct auth *a = userdata;
        enum auth_op op = a->op;
        void (*done)(void *) = a->logout_done;

        /* Detach the transfer so the handlers may start the next operation. */
        a->t = NULL;
        auth_op_clear(a);
        switch (op) {
        case OP_LOGIN:
                login_done(a, t);
                break;
        case OP_REFRESH:
                refresh_done(a, t);
                break;
        case OP_LOGOUT:
                auth_say(a, LOG_INFO, MESSAGE_ID_LOGOUT, "logged out (HTTP %ld)", t->status);
                auth_emit(a, AUTH_EVENT_LOGOUT);
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
                auth_fail(a, "cannot read the password for %s: %s", a->config->username, strerror(-r));
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

void auth_op_start(struct auth *a, enum auth_op op) {
        int r;

        assert(a->op == OP_NONE);
        assert(op != OP_NONE);
        a->t = upstream_transfer_new(a->upstream, on_op_done, a);
        if (!a->t) {
                auth_fail(a, "out of memory");
                return;
        }
        a->op = op;
        a->op_started = auth_now(a);
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
                auth_op_clear(a);
                if (!failed_already)
                        auth_fail(a, "cannot prepare the %s request: %s", op == OP_LOGIN ? "login" : "refresh",
                             strerror(-r));
                return;
        }

        if (op == OP_LOGIN)
                auth_say(a, LOG_INFO, NULL, "logging in to %s as %s", a->config->server, a->config->username);
        else if (op == OP_REFRESH)
                log_debug("refreshing the access token");
        a->t->url = a->op_url;
        a->t->headers = a->op_headers;
        a->t->body = a->op_body ? a->op_body->data : NULL;
        a->t->body_len = a->op_body ? a->op_body->len : 0;
        a->t->timeout_ms = op == OP_LOGOUT ? LOGOUT_TIMEOUT_MS : AUTH_TIMEOUT_MS;
        r = upstream_transfer_start(a->t);
        if (r < 0) {
                auth_op_clear(a);
                auth_fail(a, "cannot start the login request");
        }
}
