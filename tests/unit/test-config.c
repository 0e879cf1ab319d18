/* SPDX-License-Identifier: MIT */
/*
 * The config loader: defaults, precedence (flag > environment > file >
 * default), credential rules, permission checks, the inih pitfalls
 * (';', ':', long lines, indentation), duplicates and diagnostics.
 */

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "common/config/config.h"

#include "check.h"

static char tmpdir[] = "/tmp/test-config-XXXXXX";

static bool streq0(const char *a, const char *b) {
        return a && b ? strcmp(a, b) == 0 : a == b;
}

/* Writes tmpdir/name with the given mode; returns a static path (one of a few slots). */
static const char *write_file_n(const char *name, mode_t mode, const char *content, size_t len) {
        static char paths[8][PATH_MAX];
        static unsigned slot;
        char *p = paths[slot++ % 8];
        FILE *f;

        snprintf(p, PATH_MAX, "%s/%s", tmpdir, name);
        (void) unlink(p);
        f = fopen(p, "w");
        if (!f) {
                perror(p);
                exit(EXIT_FAILURE);
        }
        fwrite(content, 1, len, f);
        fclose(f);
        chmod(p, mode);
        return p;
}

static const char *write_file(const char *name, mode_t mode, const char *content) {
        return write_file_n(name, mode, content, strlen(content));
}

static void clean_env(void) {
        static const char *const vars[] = {
                "DENVR_CONFIG", "DENVR_APIKEY", "DENVR_USERNAME", "DENVR_PASSWORD",
                "CREDENTIALS_DIRECTORY", "XDG_RUNTIME_DIR",
        };
        for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
                unsetenv(vars[i]);
        /* No real ~/.config/denvr.toml may leak into the tests. */
        setenv("HOME", tmpdir, 1);
}

static void print_diag(const struct config_diag *d) {
        for (size_t i = 0; i < d->n_errors; i++)
                fprintf(stderr, "    error: %s\n", d->errors[i]);
        for (size_t i = 0; i < d->n_warnings; i++)
                fprintf(stderr, "    warning: %s\n", d->warnings[i]);
}

static struct config_overrides ov(const char *path) {
        return (struct config_overrides) { .config_path = path };
}

static struct denvr_config *load_ok_(int line, const struct config_overrides *o, struct config_diag *keep) {
        struct denvr_config *c = NULL;
        struct config_diag d = { 0 };
        int r = config_load(o, &c, &d);

        CHECK(r == 0 && c, "line %d: config_load failed: %d", line, r);
        if (r < 0)
                print_diag(&d);
        if (keep)
                *keep = d;
        else
                config_diag_done(&d);
        return c;
}
#define load_ok(o, keep) load_ok_(__LINE__, o, keep)

static bool has_message(char **l, size_t n, const char *prefix, const char *needle) {
        for (size_t i = 0; i < n; i++)
                if ((!prefix || strncmp(l[i], prefix, strlen(prefix)) == 0) && strstr(l[i], needle))
                        return true;
        return false;
}

/*
 * Loading must fail with an error containing `needle`; if line > 0 it must
 * start with "PATH:LINE: ".
 */
static void load_fail_(int srcline, const struct config_overrides *o, unsigned line, const char *needle) {
        struct denvr_config *c = NULL;
        struct config_diag d = { 0 };
        char prefix[PATH_MAX + 32] = "";
        int r = config_load(o, &c, &d);

        CHECK(r == -EINVAL && !c, "line %d: config_load should fail with -EINVAL, got %d", srcline, r);
        if (line > 0 && o->config_path)
                snprintf(prefix, sizeof prefix, "%s:%u: ", o->config_path, line);
        CHECK(has_message(d.errors, d.n_errors, line > 0 ? prefix : NULL, needle),
              "line %d: no error \"%s%s\"", srcline, prefix, needle);
        if (!has_message(d.errors, d.n_errors, line > 0 ? prefix : NULL, needle))
                print_diag(&d);
        config_free(c);
        config_diag_done(&d);
}
#define load_fail(o, line, needle) load_fail_(__LINE__, o, line, needle)

#define CREDS "[credentials]\nusername = \"user@example.com\"\npassword = \"pw-SECRET-1\"\n"

static void test_defaults(void) {
        const char *p = write_file("defaults.toml", 0600, CREDS);
        struct config_overrides o = ov(p);
        struct denvr_config *c;

        clean_env();
        c = load_ok(&o, NULL);
        if (!c)
                return;
        CHECK(streq0(c->path, p), "path %s", c->path);
        CHECK(streq0(c->server, "https://api.cloud.denvrdata.com"), "server %s", c->server);
        CHECK(streq0(c->api, "v1"), "api");
        CHECK(streq0(c->cluster, "Msc1"), "cluster");
        CHECK(streq0(c->rpool, "on-demand"), "rpool");
        CHECK(!c->tenant && !c->vpcid && !config_vpcid(c), "tenant/vpcid unset");
        CHECK(c->retries == 3, "retries %u", c->retries);
        CHECK(c->mode == CREDENTIAL_PASSWORD && c->secret_source == SECRET_SOURCE_CONFIG, "mode");
        CHECK(strv_length(c->listen) == 1 && streq0(c->listen[0], "127.0.0.1:3368"), "listen default");
        CHECK(!c->socket, "no socket without XDG_RUNTIME_DIR");
        CHECK(c->socket_mode == 0600, "socket_mode %o", (unsigned) c->socket_mode);
        CHECK(!c->ca_file, "ca_file");
        CHECK(c->log_level == LOG_INFO, "log_level %d", c->log_level);
        CHECK(c->request_timeout_sec == 60, "request_timeout");
        CHECK(c->max_body_bytes == 1048576, "max_body_bytes");
        CHECK(c->max_upstream_connections == 64, "max_upstream_connections");
        CHECK(c->max_connections_per_caller == 256 && c->max_requests_per_caller == 128 &&
              c->max_waits_per_caller == 32 && c->max_buffered_bytes_per_caller == 64u * 1024 * 1024 &&
              c->upstream_share_percent == 50 && c->header_timeout_sec == 10 && c->idle_timeout_sec == 60,
              "fair share defaults");
        CHECK(!c->allow_remote, "allow_remote");
        CHECK(c->allowed_hosts && !c->allowed_hosts[0], "allowed_hosts empty, not NULL");
        CHECK(c->cors_origins && !c->cors_origins[0], "cors_origins empty, not NULL");
        CHECK(c->n_allowed_uids == 0 && c->n_allowed_groups == 0, "ids");
        CHECK(c->tcp_access == ACCESS_FULL && c->socket_access == ACCESS_FULL, "access");
        CHECK(c->n_cache == 0, "cache");
        config_free(c);

        /* $XDG_RUNTIME_DIR gives a default socket; socket = "" turns it off. */
        setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
        c = load_ok(&o, NULL);
        CHECK(c && streq0(c->socket, "/run/user/4242/denvrd.sock"), "XDG socket default");
        config_free(c);
        p = write_file("nosock.toml", 0600, CREDS "[daemon]\nsocket = \"\"\n");
        o = ov(p);
        c = load_ok(&o, NULL);
        CHECK(c && !c->socket, "socket = \"\" disables the default socket");
        config_free(c);
        clean_env();
}

/* A file written as the Python SDK documents it. */
static void test_sdk_file(void) {
        const char *p = write_file("sdk.toml", 0600,
                "[defaults]\n"
                "server = \"https://api.cloud.denvrdata.com/\"\n"
                "api = \"v1\"\n"
                "cluster = \"Hou1\"\n"
                "tenant = \"denvr\"\n"
                "rpool = \"reserved-denvr\"\n"
                "retries = 5\n"
                "\n"
                "[credentials]\n"
                "username = \"alice@denvrdata.com\"\n"
                "password = \"hunter2\"\n");
        struct config_overrides o = ov(p);
        struct denvr_config *c;

        clean_env();
        c = load_ok(&o, NULL);
        if (!c)
                return;
        CHECK(streq0(c->server, "https://api.cloud.denvrdata.com"), "trailing / trimmed: %s", c->server);
        CHECK(streq0(c->cluster, "Hou1") && streq0(c->tenant, "denvr") && streq0(c->rpool, "reserved-denvr"), "values");
        CHECK(!c->vpcid && streq0(config_vpcid(c), "denvr"), "vpcid falls back to tenant");
        CHECK(c->retries == 5, "retries");
        CHECK(streq0(c->username, "alice@denvrdata.com"), "username");
        CHECK(c->password && streq0(c->password->data, "hunter2"), "password");
        config_free(c);
}

static void test_precedence(void) {
        const char *p = write_file("prec.toml", 0600,
                CREDS
                "[daemon]\n"
                "log_level = \"debug\"\n"
                "listen = [\"127.0.0.1:4000\", \"[::1]:4001\"]\n"
                "socket = \"/tmp/from-file.sock\"\n");
        char *flag_listen[] = { "127.0.0.1:5000", "localhost:5001", NULL };
        struct config_overrides o = ov(p);
        struct denvr_config *c;

        clean_env();
        /* file > default */
        c = load_ok(&o, NULL);
        if (c) {
                CHECK(c->log_level == LOG_DEBUG, "file log_level");
                CHECK(strv_length(c->listen) == 2 && streq0(c->listen[1], "[::1]:4001"), "file listen");
                CHECK(streq0(c->socket, "/tmp/from-file.sock"), "file socket");
        }
        config_free(c);

        /* flag > file */
        o.log_level = "error";
        o.listen = flag_listen;
        o.socket = "/tmp/from-flag.sock";
        c = load_ok(&o, NULL);
        if (c) {
                CHECK(c->log_level == LOG_ERR, "--log-level wins");
                CHECK(strv_length(c->listen) == 2 && streq0(c->listen[0], "127.0.0.1:5000") &&
                      streq0(c->listen[1], "localhost:5001"), "--listen replaces the list");
                CHECK(streq0(c->socket, "/tmp/from-flag.sock"), "--socket wins");
        }
        config_free(c);
        o.socket = "";
        c = load_ok(&o, NULL);
        CHECK(c && !c->socket, "--socket \"\" turns the socket off");
        config_free(c);

        /* Bad flags are errors without a file line. */
        o = ov(p);
        o.log_level = "verbose";
        load_fail(&o, 0, "--log-level");
        o = ov(p);
        char *bad_listen[] = { "127.0.0.1", NULL };
        o.listen = bad_listen;
        load_fail(&o, 0, "--listen 127.0.0.1");
        char *remote_listen[] = { "0.0.0.0:3368", NULL };
        o.listen = remote_listen;
        load_fail(&o, 0, "allow_remote");

        /* environment > file, for credentials */
        o = ov(p);
        setenv("DENVR_USERNAME", "env-user", 1);
        c = load_ok(&o, NULL);
        CHECK(c && streq0(c->username, "env-user") && c->secret_source == SECRET_SOURCE_CONFIG, "DENVR_USERNAME");
        config_free(c);
        setenv("DENVR_PASSWORD", "env-pw", 1);
        c = load_ok(&o, NULL);
        CHECK(c && c->mode == CREDENTIAL_PASSWORD && c->secret_source == SECRET_SOURCE_ENV &&
              streq0(c->password->data, "env-pw"), "DENVR_PASSWORD");
        config_free(c);
        setenv("DENVR_APIKEY", "env-key", 1);
        c = load_ok(&o, NULL);
        CHECK(c && c->mode == CREDENTIAL_APIKEY && c->secret_source == SECRET_SOURCE_ENV &&
              streq0(c->apikey->data, "env-key") && !c->password, "DENVR_APIKEY wins over username/password");
        config_free(c);
        /* Empty variables count as unset. */
        setenv("DENVR_APIKEY", "", 1);
        c = load_ok(&o, NULL);
        CHECK(c && c->mode == CREDENTIAL_PASSWORD, "empty DENVR_APIKEY is unset");
        config_free(c);
        clean_env();

        /* --config > $DENVR_CONFIG > ~/.config/denvr.toml */
        {
                const char *other = write_file("other.toml", 0600, CREDS "[defaults]\ncluster = \"FromEnvPath\"\n");
                char home_cfg[PATH_MAX];
                struct config_overrides none = { 0 };

                setenv("DENVR_CONFIG", other, 1);
                c = load_ok(&none, NULL);
                CHECK(c && streq0(c->cluster, "FromEnvPath") && streq0(c->path, other), "$DENVR_CONFIG");
                config_free(c);
                o = ov(p);
                c = load_ok(&o, NULL);
                CHECK(c && streq0(c->cluster, "Msc1"), "--config beats $DENVR_CONFIG");
                config_free(c);
                unsetenv("DENVR_CONFIG");

                snprintf(home_cfg, sizeof home_cfg, "%s/.config", tmpdir);
                mkdir(home_cfg, 0700);
                write_file(".config/denvr.toml", 0600, CREDS "[defaults]\ncluster = \"FromHome\"\n");
                c = load_ok(&none, NULL);
                CHECK(c && streq0(c->cluster, "FromHome"), "~/.config/denvr.toml");
                config_free(c);
                snprintf(home_cfg, sizeof home_cfg, "%s/.config/denvr.toml", tmpdir);
                unlink(home_cfg);

                /* A missing default file is fine (credentials may come from the environment)... */
                setenv("DENVR_APIKEY", "k", 1);
                c = load_ok(&none, NULL);
                CHECK(c && !c->path && c->mode == CREDENTIAL_APIKEY, "no file, env credentials");
                config_free(c);
                unsetenv("DENVR_APIKEY");
                /* ...a missing explicit one is not. */
                o = ov("/nonexistent/denvr.toml");
                load_fail(&o, 0, "No such file");
                setenv("DENVR_CONFIG", "/nonexistent/denvr.toml", 1);
                load_fail(&none, 0, "No such file");
                clean_env();
        }
}

static void test_credentials(void) {
        struct config_overrides o;
        struct denvr_config *c;
        struct secret *s = NULL;
        const char *p, *keyfile;
        char credsdir[PATH_MAX];

        clean_env();

        /* Nothing anywhere: the error names every way to give credentials. */
        p = write_file("nocreds.toml", 0644, "[defaults]\ntenant = \"t\"\n");
        o = ov(p);
        load_fail(&o, 0, "no credentials");
        load_fail(&o, 0, "DENVR_APIKEY");
        load_fail(&o, 0, "DENVR_USERNAME and DENVR_PASSWORD");
        load_fail(&o, 0, "'apikey'");
        o.allow_no_credentials = true;
        c = load_ok(&o, NULL);
        CHECK(c && c->mode == CREDENTIAL_NONE && c->secret_source == SECRET_SOURCE_NONE, "allow_no_credentials");
        CHECK(c && config_get_secret(c, &s) == -ENOKEY, "no secret to get");
        config_free(c);

        /* Half credentials are an error even when none are allowed. */
        p = write_file("half.toml", 0600, "[credentials]\nusername = \"u\"\n");
        o = ov(p);
        o.allow_no_credentials = true;
        load_fail(&o, 2, "no password");
        setenv("DENVR_PASSWORD", "x", 1);
        p = write_file("half2.toml", 0600, "[defaults]\n");
        o = ov(p);
        load_fail(&o, 0, "no username");
        clean_env();
        /* A password in the file without a username: reported at the password's line (fuzz-config). */
        p = write_file("half3.toml", 0600, "[credentials]\nusername = \"u\\u0000\"\npassword = \"pw\"\n");
        o = ov(p);
        o.allow_no_credentials = true;
        load_fail(&o, 3, "no username");
        p = write_file("pwfile", 0600, "pw\n");
        p = write_file("half4.toml", 0600, "[credentials]\n\npassword_file = \"pwfile\"\n");
        o = ov(p);
        o.allow_no_credentials = true;
        load_fail(&o, 3, "no username");

        /* apikey wins over username/password in the file too; the unused password is dropped. */
        p = write_file("both.toml", 0600, CREDS "apikey = \"KEY-SECRET-2\"\n");
        o = ov(p);
        c = load_ok(&o, NULL);
        CHECK(c && c->mode == CREDENTIAL_APIKEY && streq0(c->apikey->data, "KEY-SECRET-2") && !c->password,
              "apikey wins");
        config_free(c);

        /* apikey = "" is false for the SDKs: username/password are used. */
        p = write_file("emptykey.toml", 0600, CREDS "apikey = \"\"\n");
        o = ov(p);
        c = load_ok(&o, NULL);
        CHECK(c && c->mode == CREDENTIAL_PASSWORD, "empty apikey ignored");
        config_free(c);
        p = write_file("emptypw.toml", 0600, "[credentials]\nusername = \"u\"\npassword = \"\"\n");
        o = ov(p);
        load_fail(&o, 3, "must not be empty");

        /* apikey_file: not kept in memory, read again each time. */
        keyfile = write_file("apikey.txt", 0600, "FILE-KEY-1\n");
        p = write_file("keyfile.toml", 0644, "[credentials]\napikey_file = \"apikey.txt\"\n");
        o = ov(p);
        c = load_ok(&o, NULL);
        if (c) {
                CHECK(c->mode == CREDENTIAL_APIKEY && c->secret_source == SECRET_SOURCE_FILE, "file source");
                CHECK(!c->apikey && !c->password, "file secret not in memory");
                CHECK(streq0(c->secret_path, keyfile) && streq0(c->apikey_file, keyfile),
                      "relative path resolved against the config's directory: %s", c->secret_path);
                CHECK(config_get_secret(c, &s) == 0 && streq0(s->data, "FILE-KEY-1"), "get_secret reads the file");
                secret_free(s);
                s = NULL;
                write_file("apikey.txt", 0600, "FILE-KEY-2\n");
                CHECK(config_get_secret(c, &s) == 0 && streq0(s->data, "FILE-KEY-2"), "get_secret reads again");
                secret_free(s);
                s = NULL;
                chmod(keyfile, 0644);
                CHECK(config_get_secret(c, &s) == -EPERM, "get_secret refuses a file that became readable");
                chmod(keyfile, 0600);
        }
        config_free(c);

        /* Broken secret files fail at load time, naming PATH:LINE. */
        p = write_file("missingkey.toml", 0600, "[credentials]\n\napikey_file = \"/nonexistent/key\"\n");
        o = ov(p);
        load_fail(&o, 3, "/nonexistent/key");
        write_file("empty.txt", 0600, "");
        p = write_file("emptykeyfile.toml", 0600, "[credentials]\napikey_file = \"empty.txt\"\n");
        o = ov(p);
        load_fail(&o, 2, "empty");
        p = write_file("keyboth.toml", 0600, "[credentials]\napikey = \"a\"\napikey_file = \"apikey.txt\"\n");
        o = ov(p);
        load_fail(&o, 3, "both set");

        /* password_file readable by others: refuse, as ssh does. */
        {
                const char *pwfile = write_file("pw.txt", 0640, "PW-FILE\n");
                char want[PATH_MAX + 16];

                p = write_file("pwfile.toml", 0644, "[credentials]\nusername = \"u\"\npassword_file = \"pw.txt\"\n");
                o = ov(p);
                snprintf(want, sizeof want, "chmod 600 %s", pwfile);
                load_fail(&o, 3, want);
                chmod(pwfile, 0600);
                c = load_ok(&o, NULL);
                CHECK(c && c->mode == CREDENTIAL_PASSWORD && c->secret_source == SECRET_SOURCE_FILE && !c->password,
                      "password_file");
                config_free(c);
        }

        /* $CREDENTIALS_DIRECTORY beats the file; systemd owns its modes. */
        snprintf(credsdir, sizeof credsdir, "%s/creds", tmpdir);
        mkdir(credsdir, 0700);
        write_file("creds/denvr-apikey", 0644, "CRED-KEY\n");
        setenv("CREDENTIALS_DIRECTORY", credsdir, 1);
        p = write_file("credsdir.toml", 0600, CREDS);
        o = ov(p);
        c = load_ok(&o, NULL);
        if (c) {
                CHECK(c->mode == CREDENTIAL_APIKEY && c->secret_source == SECRET_SOURCE_CREDENTIAL && !c->apikey,
                      "credential directory");
                CHECK(config_get_secret(c, &s) == 0 && streq0(s->data, "CRED-KEY"), "credential read");
                secret_free(s);
                s = NULL;
        }
        config_free(c);
        /* ...but the environment beats it. */
        setenv("DENVR_APIKEY", "env-key", 1);
        c = load_ok(&o, NULL);
        CHECK(c && c->secret_source == SECRET_SOURCE_ENV, "env beats credential dir");
        config_free(c);
        clean_env();
        write_file("creds/denvr-apikey", 0600, "");
        setenv("CREDENTIALS_DIRECTORY", credsdir, 1);
        load_fail(&o, 0, "denvr-apikey");
        clean_env();
}

static void test_permissions(void) {
        struct config_overrides o;
        struct denvr_config *c;
        char want[PATH_MAX + 16];
        const char *p;

        clean_env();
        p = write_file("open.toml", 0644, "# comment\n[credentials]\nusername = \"u\"\npassword = \"p\"\n");
        o = ov(p);
        snprintf(want, sizeof want, "chmod 600 %s", p);
        load_fail(&o, 4, want);
        chmod(p, 0640);
        load_fail(&o, 4, "mode 0640");
        chmod(p, 0600);
        c = load_ok(&o, NULL);
        CHECK(c != NULL, "0600 is fine");
        config_free(c);

        p = write_file("openkey.toml", 0604, "[credentials]\napikey = \"k\"\n");
        o = ov(p);
        load_fail(&o, 2, "API key");

        /* Even when the environment overrides it, a secret in a readable file is exposed. */
        setenv("DENVR_APIKEY", "k", 1);
        load_fail(&o, 2, "chmod 600");
        clean_env();

        /* No inline secret: a readable file is fine. */
        p = write_file("nosecret.toml", 0644, "[credentials]\nusername = \"u\"\n");
        o = ov(p);
        setenv("DENVR_PASSWORD", "p", 1);
        c = load_ok(&o, NULL);
        CHECK(c != NULL, "readable file without secrets");
        config_free(c);
        clean_env();
}

static void test_inih_pitfalls(void) {
        char longline[1400], longval[1001];
        struct config_overrides o;
        struct config_diag d;
        struct denvr_config *c;
        const char *p;

        clean_env();
        memset(longval, 'x', sizeof longval - 1);
        longval[sizeof longval - 1] = 0;
        snprintf(longline, sizeof longline,
                 "[defaults]\n"
                 "cluster = \"a ;b\" ; # ';' is not a comment in TOML, but this is a syntax error\n");
        p = write_file("semicolon-bad.toml", 0600, longline);
        o = ov(p);
        load_fail(&o, 2, "unexpected text");

        snprintf(longline, sizeof longline,
                 "[defaults]\r\n"
                 "cluster = \"a ;b\"   # ';' inside a string stays\r\n"
                 "rpool = \"x:y=z\"\r\n"
                 "    tenant = \"indented is not a continuation\"\r\n"
                 "\tvpcid = \"%s\"\r\n"
                 "[cache]\r\n"
                 "\"/api/v1/servers/virtual/GetConfigurations\" = 300\r\n"
                 "\"/api/v1/a;b:c=d\" = 5\r\n",
                 longval);
        p = write_file("pitfalls.toml", 0600, longline);
        o = ov(p);
        setenv("DENVR_APIKEY", "k", 1);
        c = load_ok(&o, NULL);
        if (c) {
                CHECK(streq0(c->cluster, "a ;b"), "';' kept: %s", c->cluster);
                CHECK(streq0(c->rpool, "x:y=z"), "':' and '=' kept: %s", c->rpool);
                CHECK(streq0(c->tenant, "indented is not a continuation"), "indentation: %s", c->tenant);
                CHECK(c->vpcid && strlen(c->vpcid) == 1000, "1000-byte value kept whole");
                CHECK(c->n_cache == 2, "cache rules %zu", c->n_cache);
                if (c->n_cache == 2) {
                        CHECK(streq0(c->cache[0].path, "/api/v1/servers/virtual/GetConfigurations") &&
                              c->cache[0].ttl_sec == 300, "cache rule 0");
                        CHECK(streq0(c->cache[1].path, "/api/v1/a;b:c=d") && c->cache[1].ttl_sec == 5,
                              "cache rule with ; : = in the quoted key: %s", c->cache[1].path);
                }
        }
        config_free(c);

        /* BOM, comments everywhere, header comments, blank lines with blanks. */
        p = write_file("bom.toml", 0600,
                       "\xef\xbb\xbf# leading comment\n"
                       "  \t  \n"
                       "[defaults] # header comment\n"
                       "  # indented comment\n"
                       "cluster = \"c#1\"#tight comment\n"
                       "[ daemon ]\n"
                       "retries_unknown = 1.5  # unknown keys may hold any TOML value\n");
        o = ov(p);
        c = load_ok(&o, &d);
        CHECK(c && streq0(c->cluster, "c#1"), "'#' inside string");
        CHECK(d.n_warnings == 1 && has_message(d.warnings, d.n_warnings, NULL, ":7: unknown key 'retries_unknown' in [daemon]"),
              "unknown key warning with line");
        config_diag_done(&d);
        config_free(c);

        /* Unknown sections are warned about, and their keys skipped. */
        p = write_file("unknown.toml", 0600,
                       "title = \"x\"\n"
                       "[profile]\n"
                       "server = 42\n"
                       "[[servers]]\n"
                       "name = \"a\"\n"
                       "[[servers]]\n"
                       "name = \"b\"\n"
                       "[other.nested]\n"
                       "when = 1979-05-27T07:32:00Z\n"
                       "[defaults]\n"
                       "cluster = \"ok\"\n");
        o = ov(p);
        c = load_ok(&o, &d);
        CHECK(c && streq0(c->cluster, "ok"), "known section after unknown ones");
        CHECK(has_message(d.warnings, d.n_warnings, NULL, ":1: unknown key 'title' outside any section"), "root key");
        CHECK(has_message(d.warnings, d.n_warnings, NULL, ":2: unknown section [profile]"), "unknown section");
        CHECK(has_message(d.warnings, d.n_warnings, NULL, ":4: unknown section [[servers]]"), "array of tables");
        CHECK(has_message(d.warnings, d.n_warnings, NULL, ":8: unknown section [other.nested]"), "dotted");
        CHECK(d.n_warnings == 5, "%zu warnings", d.n_warnings);
        config_diag_done(&d);
        config_free(c);

        /* Duplicates are TOML errors. */
        p = write_file("dupkey.toml", 0600, "[defaults]\ncluster = \"a\"\n\ncluster = \"b\"\n");
        o = ov(p);
        load_fail(&o, 4, "duplicate key 'cluster' (first set on line 2)");
        p = write_file("dupquoted.toml", 0600, "[defaults]\ncluster = \"a\"\n\"cluster\" = \"b\"\n");
        o = ov(p);
        load_fail(&o, 3, "duplicate key");
        p = write_file("dupsec.toml", 0600, "[defaults]\n[daemon]\n[defaults]\n");
        o = ov(p);
        load_fail(&o, 3, "duplicate table [defaults]");
        p = write_file("dupsec2.toml", 0600, "[x]\na = 1\n[\"x\"]\n");
        o = ov(p);
        load_fail(&o, 3, "duplicate table");
        p = write_file("dupunknown.toml", 0600, "[x]\na = 1\na = 2\n");
        o = ov(p);
        load_fail(&o, 3, "duplicate key 'a'");

        /* Structure we refuse. */
        p = write_file("subtable.toml", 0600, "[defaults.extra]\n");
        o = ov(p);
        load_fail(&o, 1, "sub-tables");
        p = write_file("dotted.toml", 0600, "[defaults]\ndefaults.cluster = \"x\"\n");
        o = ov(p);
        load_fail(&o, 2, "dotted keys");
        p = write_file("multiline.toml", 0600, "[x]\nk = \"\"\"\nserver = 1\n\"\"\"\n");
        o = ov(p);
        load_fail(&o, 2, "multi-line");
        /* The lines a multi-line value would continue on give no further errors. */
        {
                struct denvr_config *x = NULL;
                struct config_diag dd = { 0 };

                p = write_file("multiarray.toml", 0600,
                               "[daemon]\nlisten = [\n  \"127.0.0.1:1\",\n  [1, 2],\n]\n[defaults]\nretries = 99\n");
                o = ov(p);
                CHECK(config_load(&o, &x, &dd) == -EINVAL && dd.n_errors == 2 &&
                      has_message(dd.errors, dd.n_errors, NULL, ":2: 'listen': multi-line arrays") &&
                      has_message(dd.errors, dd.n_errors, NULL, ":7: 'retries' must be between"),
                      "one error for the multi-line array, and errors again after the next header");
                if (dd.n_errors != 2)
                        print_diag(&dd);
                config_diag_done(&dd);
                config_free(x);
        }
        p = write_file("colon.toml", 0600, "[defaults]\ncluster: \"x\"\n");
        o = ov(p);
        load_fail(&o, 2, "expected '='");
        p = write_file("ctrl.toml", 0600, "[defaults]\ncluster = \"x\"\x01\n");
        o = ov(p);
        load_fail(&o, 2, "control character");
        p = write_file_n("nul.toml", 0600, "[defaults]\nx\0 = 1\n", sizeof "[defaults]\nx\0 = 1\n" - 1);
        o = ov(p);
        load_fail(&o, 2, "NUL");
        p = write_file("badheader.toml", 0600, "[defaults\n");
        o = ov(p);
        load_fail(&o, 1, "expected ']'");
        p = write_file("headerjunk.toml", 0600, "[defaults] x\n");
        o = ov(p);
        load_fail(&o, 1, "after the table header");

        /* Very long keys: an error, never a split. */
        {
                char big[600];
                memset(big, 'k', 300);
                snprintf(big + 300, sizeof big - 300, " = 1\n");
                p = write_file("longkey.toml", 0600, big);
                o = ov(p);
                load_fail(&o, 1, "too long");
        }
        clean_env();
}

static void test_values(void) {
        struct config_overrides o;
        struct denvr_config *c;
        const char *p;
        char buf[2048];

        clean_env();
        setenv("DENVR_APIKEY", "k", 1);
        snprintf(buf, sizeof buf,
                 "[defaults]\n"
                 "server = 'http://127.0.0.1:8443///'\n"
                 "retries = 0\n"
                 "[daemon]\n"
                 "listen = \"[::1]:0\"\n"
                 "socket = \"~/run/d.sock\"\n"
                 "socket_mode = \"0660\"\n"
                 "ca_file = \"%s/ca.pem\"\n"
                 "log_level = \"notice\"\n"
                 "request_timeout = 3600\n"
                 "max_body_bytes = 0x4000_0000\n"
                 "max_upstream_connections = 1\n"
                 "allow_remote = false\n"
                 "allowed_hosts = [\"denvrd.local\", \"[::1]\", \"10.0.0.1\"]\n"
                 "cors_origins = [\"http://localhost:3000\", \"https://app.example.com\", \"chrome-extension://abc\"]\n"
                 "allowed_uids = [\"root\", 1000, \"4242\"]\n"
                 "allowed_groups = [\"root\", 0o144]\n"
                 "tcp_access = \"read-only\"\n"
                 "socket_access = \"off\"\n",
                 tmpdir);
        write_file("ca.pem", 0644, "-----BEGIN CERTIFICATE-----\n");
        p = write_file("values.toml", 0644, buf);
        o = ov(p);
        c = load_ok(&o, NULL);
        if (c) {
                char want[PATH_MAX];

                CHECK(streq0(c->server, "http://127.0.0.1:8443"), "server %s", c->server);
                CHECK(c->retries == 0, "retries 0 is allowed");
                CHECK(strv_length(c->listen) == 1 && streq0(c->listen[0], "[::1]:0"), "listen string");
                snprintf(want, sizeof want, "%s/run/d.sock", tmpdir);
                CHECK(streq0(c->socket, want), "~/ expanded: %s", c->socket);
                CHECK(c->socket_mode == 0660, "socket_mode");
                CHECK(c->log_level == LOG_NOTICE, "log_level notice");
                CHECK(c->request_timeout_sec == 3600 && c->max_body_bytes == 1073741824 &&
                      c->max_upstream_connections == 1, "ranges at their limits");
                CHECK(strv_length(c->allowed_hosts) == 3 && strv_length(c->cors_origins) == 3, "lists");
                CHECK(c->n_allowed_uids == 3 && c->allowed_uids[0] == 0 && c->allowed_uids[1] == 1000 &&
                      c->allowed_uids[2] == 4242, "uids");
                CHECK(c->n_allowed_groups == 2 && c->allowed_groups[0] == 0 && c->allowed_groups[1] == 100, "gids");
                CHECK(c->tcp_access == ACCESS_READ_ONLY && c->socket_access == ACCESS_OFF, "access");
        }
        config_free(c);

        /* Each wrong value names PATH:LINE. */
        static const struct {
                const char *section, *line, *needle;
        } bad[] = {
                { "defaults", "server = \"ftp://x\"", "https://" },
                { "defaults", "server = \"https://\"", "server" },
                { "defaults", "server = 42", "must be a string, not an integer" },
                { "defaults", "api = \"v1/../x\"", "'api'" },
                { "defaults", "retries = 11", "between 0 and 10 (got 11)" },
                { "defaults", "retries = -1", "between 0 and 10" },
                { "defaults", "retries = \"3\"", "must be an integer" },
                { "defaults", "tenant = \"a\\nb\"", "control characters" },
                { "credentials", "username = \"\"", "must not be empty" },
                { "credentials", "apikey = 12345", "must be a string" },
                { "daemon", "listen = \"127.0.0.1\"", "HOST:PORT" },
                { "daemon", "listen = \"127.0.0.1:65536\"", "0 to 65535" },
                { "daemon", "listen = \"::1:80\"", "brackets" },
                { "daemon", "listen = \"[::g]:80\"", "IPv6" },
                { "daemon", "listen = [\"127.0.0.1:1\", 2]", "strings" },
                { "daemon", "listen = \"0.0.0.0:3368\"", "allow_remote" },
                { "daemon", "listen = \"[::]:3368\"", "allow_remote" },
                { "daemon", "socket_mode = \"0800\"", "octal" },
                { "daemon", "socket_mode = \"01777\"", "octal" },
                { "daemon", "socket_mode = 384", "octal string" },
                { "daemon", "ca_file = \"/nonexistent/ca.pem\"", "No such file" },
                { "daemon", "log_level = \"verbose\"", "log_level" },
                { "daemon", "request_timeout = 0", "between 1 and 3600" },
                { "daemon", "max_body_bytes = 1073741825", "between 1 and 1073741824" },
                { "daemon", "max_upstream_connections = 1025", "between 1 and 1024" },
                { "daemon", "upstream_share_percent = 0", "between 1 and 100" },
                { "daemon", "max_requests_per_caller = 8193", "between 1 and 8192" },
                { "daemon", "max_buffered_bytes_per_caller = 1024", "at least max_body_bytes" },
                { "daemon", "allow_remote = \"yes\"", "must be a boolean" },
                { "daemon", "allowed_hosts = \"localhost\"", "array of strings" },
                { "daemon", "allowed_hosts = [\"a b\"]", "host name" },
                { "daemon", "allowed_hosts = [\"host:80\"]", "host name" },
                { "daemon", "cors_origins = [\"https://a.example/\"]", "path" },
                { "daemon", "cors_origins = [\"https://a.example/app\"]", "path" },
                { "daemon", "cors_origins = [\"a.example\"]", "scheme://" },
                { "daemon", "cors_origins = [\"HTTPS://a.example\"]", "lower-case" },
                { "daemon", "cors_origins = [\"https://A.example\"]", "lower case" },
                { "daemon", "cors_origins = [\"https://a.example:0\"]", "port" },
                { "daemon", "allowed_uids = [\"no-such-user-xyz\"]", "no such user" },
                { "daemon", "allowed_uids = [-1]", "not a valid uid" },
                { "daemon", "allowed_uids = 1000", "array" },
                { "daemon", "allowed_groups = [\"no-such-group-xyz\"]", "no such group" },
                { "daemon", "tcp_access = \"readonly\"", "read-only" },
                { "daemon", "max_body_bytes = 1.5", "floating-point" },
                { "daemon", "listen = [\"127.0.0.1:1\",", "multi-line" },
                { "cache", "\"/api/v1/x\" = 0", "1 to 86400" },
                { "cache", "\"/api/v1/x\" = 86401", "1 to 86400" },
                { "cache", "\"/v1/x\" = 5", "/api/" },
                { "cache", "\"/api/v1/x?y=1\" = 5", "without query" },
                { "cache", "x = 5", "/api/" },
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                snprintf(buf, sizeof buf, "# bad value %zu\n[%s]\n%s\n", i, bad[i].section, bad[i].line);
                p = write_file("bad.toml", 0600, buf);
                o = ov(p);
                load_fail(&o, 3, bad[i].needle);
        }

        /* allow_remote = true permits non-loopback listeners, wherever it appears. */
        p = write_file("remote.toml", 0600, "[daemon]\nlisten = \"0.0.0.0:3368\"\nallow_remote = true\n");
        o = ov(p);
        c = load_ok(&o, NULL);
        CHECK(c && c->allow_remote, "allow_remote");
        config_free(c);
        clean_env();
}

static void test_listen_parser(void) {
        char *host = NULL;
        uint16_t port = 1;
        bool lo = false;
        const char *why = NULL;

        CHECK(config_parse_listen("[::1]:3368", &host, &port, &lo, &why) == 0 && streq0(host, "::1") &&
              port == 3368 && lo, "[::1]");
        free(host);
        host = NULL;
        CHECK(config_parse_listen("127.0.0.2:0", &host, &port, &lo, &why) == 0 && port == 0 && lo, "127/8");
        free(host);
        host = NULL;
        CHECK(config_parse_listen("LOCALHOST:80", NULL, &port, &lo, &why) == 0 && lo, "localhost");
        CHECK(config_parse_listen("192.168.1.1:80", NULL, NULL, &lo, &why) == 0 && !lo, "not loopback");
        CHECK(config_parse_listen("example.com:80", NULL, NULL, &lo, &why) == 0 && !lo, "name");
        CHECK(config_parse_listen("[::ffff:127.0.0.1]:80", NULL, NULL, &lo, &why) == 0 && lo, "v4-mapped");
        CHECK(config_parse_listen(":80", NULL, NULL, &lo, &why) == -EINVAL, "no host");
        CHECK(config_parse_listen("a:", NULL, NULL, &lo, &why) == -EINVAL, "no port");
        CHECK(config_parse_listen("a:-1", NULL, NULL, &lo, &why) == -EINVAL, "negative port");
        CHECK(config_parse_listen("a:123456", NULL, NULL, &lo, &why) == -EINVAL, "long port");
        CHECK(config_parse_listen("[::1]", NULL, NULL, &lo, &why) == -EINVAL, "no port v6");
        CHECK(config_parse_listen("a b:1", NULL, NULL, &lo, &why) == -EINVAL, "space");
}

static void test_json_and_compare(void) {
        struct config_overrides o;
        struct denvr_config *a, *b;
        json_error_t jerr;
        json_t *j;
        char *s;
        const char *p;

        clean_env();
        p = write_file("json.toml", 0600,
                       "[defaults]\ntenant = \"t1\"\n"
                       "[credentials]\nusername = \"u\"\npassword = \"pw-SECRET-1\"\n"
                       "[cache]\n\"/api/v1/clusters/GetAll\" = 60\n");
        o = ov(p);
        a = load_ok(&o, NULL);
        b = load_ok(&o, NULL);
        if (!a || !b)
                return;
        s = config_to_json(a);
        CHECK(s && !strstr(s, "pw-SECRET-1"), "no secret in JSON");
        j = s ? json_loads(s, 0, &jerr) : NULL;
        CHECK(j != NULL, "JSON parses");
        if (j) {
                CHECK(streq0(json_string_value(json_object_get(j, "config_path")), p), "config_path");
                CHECK(streq0(json_string_value(json_object_get(json_object_get(j, "credentials"), "password")), "***"),
                      "password shown as ***");
                CHECK(json_is_null(json_object_get(json_object_get(j, "credentials"), "apikey")), "absent apikey is null");
                CHECK(streq0(json_string_value(json_object_get(json_object_get(j, "defaults"), "vpcid")), "t1"),
                      "effective vpcid");
                CHECK(json_integer_value(json_object_get(json_object_get(j, "cache"), "/api/v1/clusters/GetAll")) == 60,
                      "cache");
                CHECK(streq0(json_string_value(json_object_get(json_object_get(j, "daemon"), "socket_mode")), "0600"),
                      "socket_mode");
                CHECK(json_integer_value(json_object_get(json_object_get(j, "daemon"), "max_body_bytes")) == 1048576,
                      "max_body_bytes");
                json_decref(j);
        }
        free(s);

        CHECK(config_same_credentials(a, b), "same file, same credentials");
        setenv("DENVR_PASSWORD", "other", 1);
        config_free(b);
        b = load_ok(&o, NULL);
        CHECK(b && !config_same_credentials(a, b), "other password");
        setenv("DENVR_PASSWORD", "pw-SECRET-1", 1);
        config_free(b);
        b = load_ok(&o, NULL);
        CHECK(b && !config_same_credentials(a, b), "same bytes from another source");
        config_free(a);
        config_free(b);
        clean_env();
}

static void rm_rf(const char *dir) {
        char cmd[PATH_MAX + 16];

        /* tmpdir is ours (mkdtemp); nothing else is removed. */
        if (strncmp(dir, "/tmp/test-config-", 17) != 0)
                return;
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
        if (!mkdtemp(tmpdir)) {
                perror("mkdtemp");
                return EXIT_FAILURE;
        }

        test_defaults();
        test_sdk_file();
        test_precedence();
        test_credentials();
        test_permissions();
        test_inih_pitfalls();
        test_values();
        test_listen_parser();
        test_json_and_compare();

        rm_rf(tmpdir);
        if (failures) {
                fprintf(stderr, "test-config: %u of %u checks FAILED\n", failures, checks);
                return EXIT_FAILURE;
        }
        printf("test-config: all %u checks passed\n", checks);
        return EXIT_SUCCESS;
}
