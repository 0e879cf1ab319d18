/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "login-shim"
#include "daemon/handlers/login_shim.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "common/base/log.h"
#include "common/base/query.h"
#include "common/config/local_token.h"
#include "common/http/envelope.h"
#include "daemon/core/daemon.h"
#include "daemon/http/request.h"
#include "daemon/policy/access.h"
#include "daemon/policy/rights.h"

/* Ten years: the SDKs then never try to refresh. */
#define PLACEHOLDER_LIFE_SEC 315360000
#define PLACEHOLDER_TOKEN "denvrd-local-session"

#define SHIM_PREFIX "/api/tokenauth"

/* Canonical forms: lowercase. */
static const char *const shim_paths[] = {
        SHIM_PREFIX "/authenticate",
        SHIM_PREFIX "/refreshtoken",
        SHIM_PREFIX "/logout",
};

/* 1 + index into shim_paths[], or 0. */
static int shim_endpoint(const char *canon_path) {
        for (size_t i = 0; i < ELEMENTSOF(shim_paths); i++)
                if (strcmp(canon_path, shim_paths[i]) == 0)
                        return (int) i + 1;
        return 0;
}

/*
 * A local token given as the password (or as the refresh token): 1 when it
 * is in [tokens], 0 when the value is no token claim (a dummy password),
 * -EPERM when it claims to be one but is not.  The SDK then gets the token
 * itself back as its access token and sends "Bearer TOKEN", which names the
 * same token, so a login never turns a token into anything broader.
 */
static int local_token_given(struct request *r, const char *v, size_t n) {
        if (!v || !local_token_is_claimed(v, n))
                return 0;
        return rights_token_lookup(r->daemon->config, v, n) ? 1 : -EPERM;
}

/* Authenticate's "password" member (JSON body), or NULL. */
static json_t *body_password(struct request *r) {
        json_t *body = r->body_len > 0 ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
        json_t *pw = json_incref(json_object_get(body, "password"));

        json_decref(body);
        if (!json_is_string(pw)) {
                json_decref(pw);
                return NULL;
        }
        return pw;
}

/* RefreshToken's refreshToken query parameter, decoded, or NULL (absent, bad escape, no memory). */
static char *query_refresh_token(const char *q) {
        char *v = NULL;

        if (!q || query_get(q, strlen(q), "refreshToken", &v, NULL) <= 0)
                return NULL;
        return v;
}

static bool refuse_bad_token(struct request *r, int k) {
        if (k >= 0)
                return false;
        log_info("%s: refused %s: a local token that matches no [tokens] entry", r->id, r->path);
        r->daemon->metrics.denied++;
        request_reply_error(r, 401, NULL, "the local token given matches no entry of [tokens] in "
                            "denvr.toml (revoked, mistyped, or for another denvrd)");
        return true;
}

void login_shim_handle(struct request *r) {
        _cleanup_(erase_and_freep) char *refresh = NULL;
        const char *access = PLACEHOLDER_TOKEN;
        json_t *result, *pw = NULL;
        int k;

        switch (shim_endpoint(r->canon_path)) {
        case 1:
                pw = body_password(r);
                k = local_token_given(r, json_string_value(pw), json_string_length(pw));
                if (refuse_bad_token(r, k) || (k == 0 && !r->token[0] && !access_check_login_peer(r))) {
                        json_decref(pw);
                        return;
                }
                if (k > 0)
                        access = json_string_value(pw);
                result = json_pack("{s:s, s:s, s:i, s:s, s:i, s:i, s:b, s:b, s:n, s:n}",
                                   "accessToken", access,
                                   "encryptedAccessToken", access,
                                   "expireInSeconds", PLACEHOLDER_LIFE_SEC,
                                   "refreshToken", k > 0 ? access : PLACEHOLDER_TOKEN "-refresh",
                                   "refreshTokenExpireInSeconds", PLACEHOLDER_LIFE_SEC,
                                   "userId", 0,
                                   "requiresTwoFactorVerification", 0,
                                   "shouldResetPassword", 0,
                                   "passwordResetCode", "twoFactorRememberClientToken");
                json_decref(pw);
                break;
        case 2:
                refresh = query_refresh_token(r->query);
                k = local_token_given(r, refresh, refresh ? strlen(refresh) : 0);
                if (refuse_bad_token(r, k) || (k == 0 && !r->token[0] && !access_check_login_peer(r)))
                        return;
                if (k > 0)
                        access = refresh;
                result = json_pack("{s:s, s:s, s:i}",
                                   "accessToken", access,
                                   "encryptedAccessToken", access,
                                   "expireInSeconds", PLACEHOLDER_LIFE_SEC);
                break;
        case 3:
                if (!r->token[0] && !access_check_login_peer(r))
                        return;
                result = json_null();
                break;
        default:
                request_reply_error(r, 404, NULL, "no such login endpoint: %s (denvrd answers "
                                    "Authenticate, RefreshToken and LogOut itself and forwards none "
                                    "of /api/TokenAuth/)", r->path);
                return;
        }
        log_debug("%s: answered %s locally (denvrd holds the real login)", r->id, r->path);
        request_reply_json(r, 200, envelope_success(result));
}
