/* SPDX-License-Identifier: MIT */
/*
 * Credentials: which API key or password denvrd logs in with, from the
 * environment, a systemd credential, denvr.toml or a file it names; the
 * permission checks on the files that hold them; and reading them again
 * at login time.
 */
#include "common/config/config-internal.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config/toml_value.h"

#define CREDENTIAL_APIKEY_NAME "denvr-apikey"
#define CREDENTIAL_PASSWORD_NAME "denvr-password"

static void report_file_mode(struct loader *l, unsigned line, const char *what, const char *path,
                             mode_t mode) {
        config_error_at(l, line, "%s %s is accessible by group or others (mode %04o); run: chmod 600 %s",
                        what, path, (unsigned) (mode & 07777), path);
}

/* As ssh does for keys: a file holding a secret must be private. */
void config_check_inline_secret_mode(struct loader *l, mode_t mode) {
        unsigned line;

        if (!(mode & 077) || (!l->file_apikey && !l->file_password))
                return;
        line = l->file_apikey ? l->key_line[KEY_APIKEY] : l->key_line[KEY_PASSWORD];
        report_file_mode(l, line, l->file_apikey ? "it holds an API key, but" : "it holds a password, but",
                         l->path, mode);
}

static const char *secret_read_error(int r) {
        switch (r) {
        case -EBADMSG:
                return "is empty, not a regular file, or contains a NUL byte";
        case -EFBIG:
                return "is larger than 64 KiB";
        default:
                return strerror(-r);
        }
}

/*
 * Checks (and forgets) a file-backed secret at load time, so that a broken
 * path fails now rather than at the first login.  line 0: not from the
 * file ($CREDENTIALS_DIRECTORY).
 */
static void verify_secret_file(struct loader *l, unsigned line, const char *key, const char *path,
                               bool check_mode) {
        _cleanup_secret_free_ struct secret *s = NULL;
        struct stat st;
        int r;

        if (check_mode && stat(path, &st) == 0 && (st.st_mode & 077)) {
                char what[64];

                (void) snprintf(what, sizeof what, "'%s'", key);
                report_file_mode(l, line, what, path, st.st_mode);
                return;
        }
        r = secret_read_file(path, &s);
        if (r == -ENOMEM)
                l->oom = true;
        else if (r < 0 && line > 0)
                config_error_at(l, line, "'%s' %s %s", key, path, secret_read_error(r));
        else if (r < 0)
                config_error_plain(l, "credential %s %s", path, secret_read_error(r));
}

/* $CREDENTIALS_DIRECTORY/denvr-apikey or denvr-password: 1 if there, 0 if not, -ENOMEM. */
static int secret_from_credential(struct loader *l, const char *credsdir, bool apikey) {
        _cleanup_free_ char *p = NULL;

        if (asprintf(&p, "%s/%s", credsdir, apikey ? CREDENTIAL_APIKEY_NAME : CREDENTIAL_PASSWORD_NAME) < 0) {
                l->oom = true;
                return -ENOMEM;
        }
        if (access(p, F_OK) < 0)
                return 0;
        /* systemd owns these files' modes; no permission check. */
        verify_secret_file(l, 0, NULL, p, false);
        l->c->secret_source = SECRET_SOURCE_CREDENTIAL;
        l->c->secret_path = TAKE_PTR(p);
        return 1;
}

/*
 * Finds the API key or the password, in order: environment, systemd
 * credential, inline in the file, a file named in the file.  Returns whether
 * one was found (it may still have failed verification, which is reported).
 */
static bool find_secret(struct loader *l, const char *credsdir, bool apikey) {
        struct denvr_config *c = l->c;
        struct secret **mem = apikey ? &c->apikey : &c->password;
        struct secret **inline_secret = apikey ? &l->file_apikey : &l->file_password;
        const char *file = apikey ? c->apikey_file : c->password_file;
        const char *e = getenv_nonempty(apikey ? "DENVR_APIKEY" : "DENVR_PASSWORD");
        int r;

        if (e) {
                *mem = secret_new_str(e);
                l->oom = l->oom || !*mem;
                c->secret_source = SECRET_SOURCE_ENV;
                return true;
        }
        r = credsdir ? secret_from_credential(l, credsdir, apikey) : 0;
        if (r != 0)
                return r > 0;
        if (*inline_secret) {
                *mem = TAKE_PTR(*inline_secret);
                c->secret_source = SECRET_SOURCE_CONFIG;
                return true;
        }
        if (file) {
                verify_secret_file(l, l->key_line[apikey ? KEY_APIKEY_FILE : KEY_PASSWORD_FILE],
                                   apikey ? "apikey_file" : "password_file", file, true);
                c->secret_source = SECRET_SOURCE_FILE;
                c->secret_path = strdup(file);
                l->oom = l->oom || !c->secret_path;
                return true;
        }
        return false;
}

static void check_exclusive(struct loader *l, enum key_id a, const char *an, enum key_id b, const char *bn) {
        if (l->key_line[a] && l->key_line[b])
                config_error_at(l, l->key_line[a] > l->key_line[b] ? l->key_line[a] : l->key_line[b],
                                "'%s' and '%s' are both set in [credentials]; keep one", an, bn);
}

/* DENVR_USERNAME overrides 'username' in the file. */
static void username_from_env(struct loader *l) {
        struct denvr_config *c = l->c;
        const char *e = getenv_nonempty("DENVR_USERNAME");

        if (!e)
                return;
        if (has_control(e) || !toml_utf8_valid(e, strlen(e)))
                config_error_plain(l, "DENVR_USERNAME must be UTF-8 text without control characters");
        else {
                free(c->username);
                c->username = strdup(e);
                l->oom = l->oom || !c->username;
        }
}

static void report_no_password(struct loader *l) {
        if (l->key_line[KEY_USERNAME] && !getenv_nonempty("DENVR_USERNAME"))
                config_error_at(l, l->key_line[KEY_USERNAME],
                                "'username' is set but there is no password: set 'password' or 'password_file' "
                                "in [credentials], or DENVR_PASSWORD");
        else
                config_error_plain(l, "DENVR_USERNAME is set but there is no password: set DENVR_PASSWORD, "
                                   "or 'password' or 'password_file' in [credentials]");
}

static void report_no_username(struct loader *l) {
        enum secret_source src = l->c->secret_source;
        /* A password from the file is reported at its line, like every other file error. */
        unsigned line = src == SECRET_SOURCE_CONFIG ? l->key_line[KEY_PASSWORD] :
                        src == SECRET_SOURCE_FILE ? l->key_line[KEY_PASSWORD_FILE] : 0;

        if (line)
                config_error_at(l, line, "a password is set but no username: set 'username' in [credentials] "
                                "or DENVR_USERNAME");
        else
                config_error_plain(l, "a password is set but no username: set 'username' in [credentials] "
                                   "or DENVR_USERNAME");
}

static void report_no_credentials(struct loader *l, const char *credsdir) {
        const char *hint = "set 'apikey' or 'apikey_file', or 'username' with 'password' or "
                           "'password_file' in [credentials]; or the environment variables "
                           "DENVR_APIKEY, or DENVR_USERNAME and DENVR_PASSWORD";
        const char *sd = credsdir ? "; or the systemd credentials denvr-apikey or denvr-password" : "";

        if (l->path && l->section_line[SECTION_CREDENTIALS])
                config_error_at(l, l->section_line[SECTION_CREDENTIALS], "no credentials: %s%s", hint, sd);
        else if (l->path)
                config_error_at(l, 0, "no credentials: %s%s", hint, sd);
        else
                config_error_plain(l, "no configuration file and no credentials: %s%s", hint, sd);
}

/* Half-given credentials are not used at all. */
static void forget_credentials(struct denvr_config *c) {
        secret_free(c->password);
        c->password = NULL;
        free(c->secret_path);
        c->secret_path = NULL;
        c->secret_source = SECRET_SOURCE_NONE;
        c->mode = CREDENTIAL_NONE;
}

void config_resolve_credentials(struct loader *l, const struct config_overrides *o) {
        struct denvr_config *c = l->c;
        const char *credsdir = getenv_nonempty("CREDENTIALS_DIRECTORY");
        bool have_password;

        check_exclusive(l, KEY_APIKEY, "apikey", KEY_APIKEY_FILE, "apikey_file");
        check_exclusive(l, KEY_PASSWORD, "password", KEY_PASSWORD_FILE, "password_file");
        username_from_env(l);

        /* An API key wins over username/password, as in the SDKs. */
        if (find_secret(l, credsdir, true)) {
                c->mode = CREDENTIAL_APIKEY;
                return;
        }
        have_password = find_secret(l, credsdir, false);
        if (c->username && have_password) {
                c->mode = CREDENTIAL_PASSWORD;
                return;
        }

        if (c->username)
                report_no_password(l);
        else if (have_password)
                report_no_username(l);
        else if (!o->allow_no_credentials)
                report_no_credentials(l, credsdir);
        forget_credentials(c);
}

int config_get_secret(const struct denvr_config *c, struct secret **ret) {
        const struct secret *mem;
        struct stat st;

        assert(c);
        assert(ret);

        if (c->mode == CREDENTIAL_NONE)
                return -ENOKEY;
        mem = c->mode == CREDENTIAL_APIKEY ? c->apikey : c->password;

        switch (c->secret_source) {
        case SECRET_SOURCE_CONFIG:
        case SECRET_SOURCE_ENV:
                if (!mem)
                        return -ENOKEY;
                *ret = secret_dup(mem);
                return *ret ? 0 : -ENOMEM;
        case SECRET_SOURCE_FILE:
                /* The file may have been replaced since load: check its mode again. */
                if (stat(c->secret_path, &st) < 0)
                        return -errno;
                if (st.st_mode & 077)
                        return -EPERM;
                return secret_read_file(c->secret_path, ret);
        case SECRET_SOURCE_CREDENTIAL:
                return secret_read_file(c->secret_path, ret);
        case SECRET_SOURCE_NONE:
                break;
        }
        return -ENOKEY;
}

static bool secret_equal(const struct secret *a, const struct secret *b) {
        unsigned char diff = 0;

        if (!a || !b)
                return a == b;
        if (a->len != b->len)
                return false;
        /* No early exit: the time taken says nothing about where they differ. */
        for (size_t i = 0; i < a->len; i++)
                diff |= (unsigned char) (a->data[i] ^ b->data[i]);
        return diff == 0;
}

bool config_same_credentials(const struct denvr_config *a, const struct denvr_config *b) {
        if (!a || !b)
                return a == b;
        /* The same user on another server is another principal. */
        return a->mode == b->mode &&
               streq_ptr(a->server, b->server) &&
               streq_ptr(a->username, b->username) &&
               a->secret_source == b->secret_source &&
               streq_ptr(a->secret_path, b->secret_path) &&
               secret_equal(a->apikey, b->apikey) &&
               secret_equal(a->password, b->password);
}
