/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "login-shim"
#include "login_shim.h"

#include <jansson.h>
#include <string.h>

#include "envelope.h"
#include "log.h"
#include "request.h"

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

bool login_shim_matches(const char *canon_path) {
        size_t n = strlen(SHIM_PREFIX);

        return strncmp(canon_path, SHIM_PREFIX, n) == 0 && (canon_path[n] == 0 || canon_path[n] == '/');
}

/* 1 + index into shim_paths[], or 0. */
static int shim_endpoint(const char *canon_path) {
        for (size_t i = 0; i < ELEMENTSOF(shim_paths); i++)
                if (strcmp(canon_path, shim_paths[i]) == 0)
                        return (int) i + 1;
        return 0;
}

void login_shim_handle(struct request *r) {
        json_t *result;

        switch (shim_endpoint(r->canon_path)) {
        case 1:
                result = json_pack("{s:s, s:s, s:i, s:s, s:i, s:i, s:b, s:b, s:n, s:n}",
                                   "accessToken", PLACEHOLDER_TOKEN,
                                   "encryptedAccessToken", PLACEHOLDER_TOKEN,
                                   "expireInSeconds", PLACEHOLDER_LIFE_SEC,
                                   "refreshToken", PLACEHOLDER_TOKEN "-refresh",
                                   "refreshTokenExpireInSeconds", PLACEHOLDER_LIFE_SEC,
                                   "userId", 0,
                                   "requiresTwoFactorVerification", 0,
                                   "shouldResetPassword", 0,
                                   "passwordResetCode", "twoFactorRememberClientToken");
                break;
        case 2:
                result = json_pack("{s:s, s:s, s:i}",
                                   "accessToken", PLACEHOLDER_TOKEN,
                                   "encryptedAccessToken", PLACEHOLDER_TOKEN,
                                   "expireInSeconds", PLACEHOLDER_LIFE_SEC);
                break;
        case 3:
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
