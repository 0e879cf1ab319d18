/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the configuration loader: config_load() on a file
 * holding the input, then config_to_json().
 *
 * The input is written to denvr.toml (mode 0600) in a private directory made
 * once, which is also $HOME (for "~/" paths); DENVR_*, CREDENTIALS_DIRECTORY
 * and XDG_RUNTIME_DIR are removed from the environment so only the file
 * decides.  Loaded with the path as --config and allow_no_credentials.
 *
 * Beyond "no crash, no out-of-bounds access, no leak", it checks:
 *  - the result is 0 with no errors, or -EINVAL with at least one error;
 *  - every error and warning starts with "PATH: " or "PATH:LINE: " where
 *    LINE is a line of the input;
 *  - on success config_to_json() is a JSON object with the four sections,
 *    and the secrets in it are "***" or null;
 *  - an inline API key or password never appears in that JSON or in a
 *    warning.  Checked when it is distinctive: 6+ letters and digits, not
 *    part of what an empty file's JSON shows (defaults, paths), written once
 *    in the input and no \u escape anywhere (so no other value can spell
 *    it); the JSON's decoded strings and keys are searched;
 *  - a file holding an inline secret that is readable by group is refused
 *    with "chmod 600 PATH".
 */

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config/config.h"

#define CHECK(cond)                                                                      \
        do {                                                                             \
                if (!(cond)) {                                                           \
                        fprintf(stderr, "fuzz-config: property violated: %s (line %d)\n", \
                                #cond, __LINE__);                                        \
                        abort();                                                         \
                }                                                                        \
        } while (0)

extern char **environ;

static char dir[64];
static char path[128];
static int fd = -1;
/* What an empty file shows, plus the enum words: a secret inside this is not "distinctive". */
static char *vocabulary;

static void cleanup(void) {
        if (fd >= 0)
                close(fd);
        (void) unlink(path);
        (void) rmdir(dir);
        free(vocabulary);
}

static void write_input(const uint8_t *data, size_t size) {
        CHECK(ftruncate(fd, 0) == 0);
        CHECK(pwrite(fd, data, size, 0) == (ssize_t) size);
}

static int load(struct denvr_config **ret, struct config_diag *d) {
        const struct config_overrides o = { .config_path = path, .allow_no_credentials = true };

        *d = (struct config_diag) { 0 };
        return config_load(&o, ret, d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        const char *tmp = getenv("TMPDIR");
        struct denvr_config *c = NULL;
        struct config_diag d;
        char *json;

        (void) argc;
        (void) argv;

        /* Only the file decides: no DENVR_* variable, no systemd credentials, no runtime dir. */
        for (bool again = true; again;) {
                again = false;
                for (char **e = environ; *e; e++)
                        if (strncmp(*e, "DENVR_", 6) == 0) {
                                char name[256];

                                (void) snprintf(name, sizeof name, "%.*s", (int) strcspn(*e, "="), *e);
                                CHECK(unsetenv(name) == 0);
                                again = true;
                                break;
                        }
        }
        CHECK(unsetenv("CREDENTIALS_DIRECTORY") == 0);
        CHECK(unsetenv("XDG_RUNTIME_DIR") == 0);

        CHECK((size_t) snprintf(dir, sizeof dir, "%s/fuzz-config.XXXXXX",
                                tmp && *tmp == '/' && strlen(tmp) < 32 ? tmp : "/tmp") < sizeof dir);
        CHECK(mkdtemp(dir));
        (void) snprintf(path, sizeof path, "%s/denvr.toml", dir);
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        CHECK(fchmod(fd, 0600) == 0);
        CHECK(setenv("HOME", dir, 1) == 0);
        CHECK(atexit(cleanup) == 0);

        write_input((const uint8_t *) "", 0);
        CHECK(load(&c, &d) == 0);
        json = config_to_json(c);
        CHECK(json);
        CHECK(asprintf(&vocabulary, "%s none config env file credential apikey password username", json) > 0);
        free(json);
        config_free(c);
        config_diag_done(&d);
        return 0;
}

/* "PATH: ..." or "PATH:LINE: ..." with 1 <= LINE <= lines. */
static void check_message(const char *m, size_t lines) {
        size_t n = strlen(path);

        if (strncmp(m, path, n) != 0 || m[n] != ':')
                fprintf(stderr, "message without the path: %s\n", m);
        CHECK(strncmp(m, path, n) == 0 && m[n] == ':');
        m += n + 1;
        if (*m >= '0' && *m <= '9') {
                char *end;
                unsigned long line = strtoul(m, &end, 10);

                CHECK(*end == ':' && line >= 1 && line <= lines);
        } else
                CHECK(*m == ' ');
}

static size_t count(const char *hay, size_t hay_len, const char *needle, size_t n) {
        size_t k = 0;

        for (const char *p = hay; (p = memmem(p, hay_len - (size_t) (p - hay), needle, n)); p++)
                k++;
        return k;
}

static bool distinctive(const struct secret *s, const uint8_t *data, size_t size) {
        if (s->len < 6)
                return false;
        for (size_t i = 0; i < s->len; i++) {
                char c = s->data[i];
                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
                        return false;
        }
        return !strstr(vocabulary, s->data) &&
               count((const char *) data, size, s->data, s->len) == 1 &&
               !memmem(data, size, "\\u", 2) && !memmem(data, size, "\\U", 2);
}

/* Whether a decoded string or key anywhere in j contains s (compared decoded: "\t" is one byte). */
static bool json_contains(const json_t *j, const char *s) {
        const char *key;
        json_t *v;
        size_t i;

        if (json_is_string(j))
                return strstr(json_string_value(j), s);
        if (json_is_array(j))
                json_array_foreach(j, i, v)
                        if (json_contains(v, s))
                                return true;
        if (json_is_object(j))
                json_object_foreach((json_t *) j, key, v)
                        if (strstr(key, s) || json_contains(v, s))
                                return true;
        return false;
}

static void check_json(const struct denvr_config *c, const char *text) {
        json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, NULL), *creds, *v;

        CHECK(json_is_object(j));
        CHECK(json_is_object(json_object_get(j, "defaults")));
        CHECK(json_is_object(json_object_get(j, "daemon")));
        CHECK(json_is_object(json_object_get(j, "cache")));
        creds = json_object_get(j, "credentials");
        CHECK(json_is_object(creds));
        v = json_object_get(creds, "apikey");
        CHECK(json_is_null(v) || (json_is_string(v) && strcmp(json_string_value(v), "***") == 0));
        v = json_object_get(creds, "password");
        CHECK(json_is_null(v) || (json_is_string(v) && strcmp(json_string_value(v), "***") == 0));
        CHECK(json_is_string(json_object_get(j, "config_path")) &&
              strcmp(json_string_value(json_object_get(j, "config_path")), path) == 0);
        CHECK(json_array_size(json_object_get(json_object_get(j, "daemon"), "listen")) > 0 || c->listen[0] == NULL);
        json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct denvr_config *c = NULL;
        struct config_diag d;
        size_t lines = 1;
        char *json;
        int r;

        for (size_t i = 0; i < size; i++)
                lines += data[i] == '\n';
        write_input(data, size);

        r = load(&c, &d);
        CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
        for (size_t i = 0; i < d.n_errors; i++)
                check_message(d.errors[i], lines);
        for (size_t i = 0; i < d.n_warnings; i++)
                check_message(d.warnings[i], lines);
        if (r == -EINVAL)
                CHECK(d.n_errors > 0 && !c);
        if (r < 0) {
                config_diag_done(&d);
                return 0;
        }
        CHECK(d.n_errors == 0 && c);

        json = config_to_json(c);
        CHECK(json);
        check_json(c, json);

        if (c->secret_source == SECRET_SOURCE_CONFIG) {
                const struct secret *s = c->mode == CREDENTIAL_APIKEY ? c->apikey : c->password;
                struct denvr_config *c2 = NULL;
                struct config_diag d2;
                bool said_chmod = false;

                CHECK(s && s->len > 0);
                if (distinctive(s, data, size)) {
                        json_t *j = json_loads(json, 0, NULL);

                        CHECK(j && !json_contains(j, s->data));
                        json_decref(j);
                        for (size_t i = 0; i < d.n_warnings; i++)
                                CHECK(!strstr(d.warnings[i], s->data));
                }

                /* The same file, readable by group: refused, and told how to fix it. */
                CHECK(fchmod(fd, 0640) == 0);
                r = load(&c2, &d2);
                CHECK(fchmod(fd, 0600) == 0);
                CHECK(r == -EINVAL && !c2);
                for (size_t i = 0; i < d2.n_errors; i++)
                        if (strstr(d2.errors[i], "chmod 600 ") && strstr(d2.errors[i], path))
                                said_chmod = true;
                CHECK(said_chmod);
                config_diag_done(&d2);
        }

        free(json);
        config_free(c);
        config_diag_done(&d);
        return 0;
}
