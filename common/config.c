/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "config"
#include "config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ini.h>
#include <jansson.h>

#include "log.h"
#include "toml_value.h"

#define CONFIG_FILE_MAX (1024 * 1024)
#define DEFAULT_API "v1"
#define DEFAULT_CLUSTER "Msc1"
#define DEFAULT_RPOOL "on-demand"
#define DEFAULT_RETRIES 3
#define DEFAULT_SOCKET_MODE 0600
#define DEFAULT_REQUEST_TIMEOUT 60
#define DEFAULT_MAX_BODY_BYTES (1024 * 1024)
#define DEFAULT_MAX_UPSTREAM 16
#define CREDENTIAL_APIKEY_NAME "denvr-apikey"
#define CREDENTIAL_PASSWORD_NAME "denvr-password"

/*
 * How we use inih.  Debian's libinih 55 has compile-time settings we cannot
 * change: a 200-byte line buffer (longer lines are split into two "lines"),
 * ';' starts an inline comment, indented lines continue the previous value,
 * ':' separates like '=', and the handler gets no line number.  None of that
 * is TOML.  So inih reads through our own reader (loader_read_line), which
 * lexes each physical line as TOML first and hands inih one normalised line
 * per physical line:
 *   - comments and blank lines become an empty line;
 *   - a table header becomes "[name]" for our four sections, or the
 *     IGNORED_SECTION marker for anything else (warned about here);
 *   - "key = value" becomes "KEY=VALUE_MARK" where KEY is the decoded key with
 *     the bytes inih treats specially replaced by control bytes (which cannot
 *     occur in a valid file), and VALUE_MARK stands for the value.
 * The value text itself never passes through inih: the reader keeps it (and
 * the line number) for the handler, which runs before the next line is read.
 * That way no line length limit applies to values, ';', ':' and '#' inside
 * strings mean nothing to inih, and secrets are never copied into inih's
 * stack buffer, which we could not wipe.
 */
#define IGNORED_SECTION "\x10"
#define VALUE_MARK "\x11"

static const struct {
        char c, escaped;
} ini_escapes[] = {
        { ';', '\x01' }, { ':', '\x02' }, { '=', '\x03' }, { '[', '\x04' },
        { '#', '\x05' }, { ']', '\x06' }, { ' ', '\x0e' }, { '\t', '\x0f' },
};

enum section {
        SECTION_ROOT,          /* keys before any header */
        SECTION_DEFAULTS,
        SECTION_CREDENTIALS,
        SECTION_DAEMON,
        SECTION_CACHE,
        SECTION_IGNORED,
        _SECTION_MAX,
};

static const char *const section_names[_SECTION_MAX] = {
        [SECTION_DEFAULTS] = "defaults",
        [SECTION_CREDENTIALS] = "credentials",
        [SECTION_DAEMON] = "daemon",
        [SECTION_CACHE] = "cache",
};

enum key_id {
        KEY_SERVER, KEY_API, KEY_CLUSTER, KEY_TENANT, KEY_VPCID, KEY_RPOOL, KEY_RETRIES,
        KEY_APIKEY, KEY_USERNAME, KEY_PASSWORD, KEY_APIKEY_FILE, KEY_PASSWORD_FILE,
        KEY_LISTEN, KEY_SOCKET, KEY_SOCKET_MODE, KEY_CA_FILE, KEY_LOG_LEVEL,
        KEY_REQUEST_TIMEOUT, KEY_MAX_BODY_BYTES, KEY_MAX_UPSTREAM_CONNECTIONS,
        KEY_ALLOW_REMOTE, KEY_ALLOWED_HOSTS, KEY_CORS_ORIGINS, KEY_ALLOWED_UIDS,
        KEY_ALLOWED_GROUPS, KEY_TCP_ACCESS, KEY_SOCKET_ACCESS,
        _KEY_MAX,
};

/* State of one load. */
struct loader {
        struct denvr_config *c;
        struct config_diag *diag;
        const char *path;          /* absolute path of the file, for messages */

        char *buf;                 /* the whole file; wiped at the end */
        size_t len, pos;
        unsigned lineno;
        const char *line;          /* current line (NUL-terminated inside buf) */
        const char *value;         /* its value text, for the handler; NULL if none */

        enum section section;
        char *table_id;            /* identifies the current table, for duplicate keys */
        json_t *seen_tables;       /* table id -> line * 2 + is_array */
        json_t *seen_keys;         /* table id \x1e key -> line */
        unsigned section_line[_SECTION_MAX];
        unsigned key_line[_KEY_MAX];

        /* Inline secrets as read from the file, before the environment decides. */
        struct secret *file_apikey;
        struct secret *file_password;

        /*
         * After a value that would continue on the next lines (multi-line
         * string or array), those lines are not ours to judge: their syntax
         * errors are not reported until the next good table header.
         */
        bool resync;
        bool oom;
};

/* ------------------------------------------------------------------ */
/* Diagnostics */

static bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return streq(a, b);
}

static int list_push(char ***l, size_t *n, char *s) {
        char **nl;

        nl = reallocarray(*l, *n + 2, sizeof *nl);
        if (!nl) {
                free(s);
                return -ENOMEM;
        }
        nl[(*n)++] = s;
        nl[*n] = NULL;
        *l = nl;
        return 0;
}

_printf_(3, 0)
static void diag_addv(struct loader *l, bool error, const char *fmt, va_list ap) {
        char *s;

        if (vasprintf(&s, fmt, ap) < 0) {
                l->oom = true;
                return;
        }
        if (error ? list_push(&l->diag->errors, &l->diag->n_errors, s)
                  : list_push(&l->diag->warnings, &l->diag->n_warnings, s))
                l->oom = true;
}

/* Adds "PATH:LINE: message" (line 0: "PATH: message"; no file: "message"). */
_printf_(4, 0)
static void diag_at(struct loader *l, bool error, unsigned line, const char *fmt, va_list ap) {
        _cleanup_free_ char *m = NULL;
        char *s;
        int r;

        if (vasprintf(&m, fmt, ap) < 0) {
                l->oom = true;
                return;
        }
        if (l->path && line > 0)
                r = asprintf(&s, "%s:%u: %s", l->path, line, m);
        else if (l->path)
                r = asprintf(&s, "%s: %s", l->path, m);
        else
                r = (s = TAKE_PTR(m)) ? 0 : -1;
        if (r < 0) {
                l->oom = true;
                return;
        }
        if (error ? list_push(&l->diag->errors, &l->diag->n_errors, s)
                  : list_push(&l->diag->warnings, &l->diag->n_warnings, s))
                l->oom = true;
}

_printf_(3, 4)
static void error_at(struct loader *l, unsigned line, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        diag_at(l, true, line, fmt, ap);
        va_end(ap);
}

_printf_(3, 4)
static void warning_at(struct loader *l, unsigned line, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        diag_at(l, false, line, fmt, ap);
        va_end(ap);
}

/* An error that is not about a line of the file (flags, environment). */
_printf_(2, 3)
static void error_plain(struct loader *l, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        diag_addv(l, true, fmt, ap);
        va_end(ap);
}

void config_diag_done(struct config_diag *d) {
        if (!d)
                return;
        strv_free(d->errors);
        strv_free(d->warnings);
        *d = (struct config_diag) { 0 };
}

void config_diag_log(const struct config_diag *d) {
        if (!d)
                return;
        for (size_t i = 0; i < d->n_warnings; i++)
                log_warning("%s", d->warnings[i]);
        for (size_t i = 0; i < d->n_errors; i++)
                log_error("%s", d->errors[i]);
}

/* ------------------------------------------------------------------ */
/* Small helpers */

static bool has_control(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

static const char *getenv_nonempty(const char *name) {
        const char *e = getenv(name);
        return e && *e ? e : NULL;
}

static char *home_dir(void) {
        const char *h = getenv_nonempty("HOME");
        struct passwd *pw;

        if (h && h[0] == '/')
                return strdup(h);
        pw = getpwuid(getuid());
        return pw && pw->pw_dir && pw->pw_dir[0] == '/' ? strdup(pw->pw_dir) : NULL;
}

/* Makes p absolute against the working directory. */
static char *path_make_absolute_cwd(const char *p) {
        _cleanup_free_ char *cwd = NULL;
        char *r;

        if (p[0] == '/')
                return strdup(p);
        cwd = getcwd(NULL, 0);
        if (!cwd)
                return NULL;
        if (asprintf(&r, "%s/%s", streq(cwd, "/") ? "" : cwd, p) < 0)
                return NULL;
        return r;
}

/*
 * Paths in the file: "~/" means $HOME, relative paths are relative to the
 * directory of the file (so /etc/denvrd/denvr.toml can say apikey_file =
 * "apikey"); the daemon's working directory would be a surprise.
 */
static int resolve_file_path(struct loader *l, const char *p, char **ret) {
        _cleanup_free_ char *dir = NULL;
        const char *slash;
        char *r;

        if (p[0] == '/')
                r = strdup(p);
        else if (p[0] == '~' && p[1] == '/') {
                _cleanup_free_ char *home = home_dir();
                if (!home)
                        return -ENOENT;
                if (asprintf(&r, "%s%s", home, p + 1) < 0)
                        r = NULL;
        } else {
                assert(l->path && l->path[0] == '/');
                slash = strrchr(l->path, '/');
                dir = strndup(l->path, (size_t) (slash - l->path));
                if (!dir)
                        return -ENOMEM;
                if (asprintf(&r, "%s/%s", dir, p) < 0)
                        r = NULL;
        }
        if (!r)
                return -ENOMEM;
        *ret = r;
        return 0;
}

static bool is_hostname_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '.' || c == '_';
}

/* A DNS name or IPv4 address (letters, digits, '-', '.', '_'), no empty labels. */
static bool hostname_valid(const char *s, size_t n) {
        if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                if (!is_hostname_char(s[i]))
                        return false;
                if (s[i] == '.' && i + 1 < n && s[i + 1] == '.')
                        return false;
        }
        return true;
}

static bool ipv6_literal_valid(const char *s, size_t n, struct in6_addr *ret) {
        char buf[INET6_ADDRSTRLEN + 1];
        struct in6_addr a;

        if (n == 0 || n >= sizeof buf)
                return false;
        memcpy(buf, s, n);
        buf[n] = 0;
        if (inet_pton(AF_INET6, buf, &a) != 1)
                return false;
        if (ret)
                *ret = a;
        return true;
}

/* "[v6]" or a host name or IPv4 address, as in a Host header without port. */
static bool host_valid(const char *s, size_t n) {
        if (n >= 2 && s[0] == '[' && s[n - 1] == ']')
                return ipv6_literal_valid(s + 1, n - 2, NULL);
        return hostname_valid(s, n);
}

static int parse_port(const char *s, uint16_t *ret) {
        unsigned v = 0;

        if (!*s || strlen(s) > 5)
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned) (*s - '0');
        }
        if (v > 65535)
                return -EINVAL;
        *ret = (uint16_t) v;
        return 0;
}

int config_parse_listen(const char *s, char **ret_host, uint16_t *ret_port, bool *ret_loopback,
                        const char **ret_reason) {
        const char *colon, *host;
        size_t hlen;
        bool loopback;
        uint16_t port;

        assert(s);

#define REASON(m) do { if (ret_reason) *ret_reason = (m); return -EINVAL; } while (0)
        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                struct in6_addr a;

                if (!close || close[1] != ':')
                        REASON("expected [IPV6]:PORT");
                host = s + 1;
                hlen = (size_t) (close - host);
                if (!ipv6_literal_valid(host, hlen, &a))
                        REASON("not a valid IPv6 address in brackets");
                loopback = IN6_IS_ADDR_LOOPBACK(&a) ||
                           (IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127);
                colon = close + 1;
        } else {
                struct in_addr a;
                char buf[256];

                colon = strrchr(s, ':');
                if (!colon)
                        REASON("expected HOST:PORT");
                host = s;
                hlen = (size_t) (colon - s);
                if (memchr(host, ':', hlen))
                        REASON("IPv6 addresses must be written in brackets, as [::1]:PORT");
                if (!hostname_valid(host, hlen) || hlen >= sizeof buf)
                        REASON("not a valid host name or IPv4 address");
                memcpy(buf, host, hlen);
                buf[hlen] = 0;
                if (inet_pton(AF_INET, buf, &a) == 1)
                        loopback = (ntohl(a.s_addr) >> 24) == 127;
                else
                        loopback = strcasecmp(buf, "localhost") == 0;
        }
        if (parse_port(colon + 1, &port) < 0)
                REASON("the port must be a number from 0 to 65535");
#undef REASON

        if (ret_host) {
                *ret_host = strndup(host, hlen);
                if (!*ret_host)
                        return -ENOMEM;
        }
        if (ret_port)
                *ret_port = port;
        if (ret_loopback)
                *ret_loopback = loopback;
        return 0;
}

/* An Origin as browsers send it: scheme://host[:port], lower case, no path. */
static const char *origin_check(const char *s) {
        const char *p = s, *host, *end;

        if (!(*p >= 'a' && *p <= 'z'))
                return "must start with a lower-case scheme, as in https://example.com";
        while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.')
                p++;
        if (strncmp(p, "://", 3) != 0)
                return "must look like scheme://host[:port]";
        host = p + 3;
        if (*host == '[') {
                end = strchr(host, ']');
                if (!end || !ipv6_literal_valid(host + 1, (size_t) (end - host - 1), NULL))
                        return "has an invalid IPv6 address";
                end++;
        } else {
                end = host;
                while (is_hostname_char(*end))
                        end++;
                if (!hostname_valid(host, (size_t) (end - host)))
                        return "has no valid host";
                for (const char *q = host; q < end; q++)
                        if (*q >= 'A' && *q <= 'Z')
                                return "must be lower case (browsers send origins in lower case)";
        }
        if (*end == ':') {
                uint16_t port;
                if (parse_port(end + 1, &port) < 0 || port == 0)
                        return "has an invalid port";
                return NULL;
        }
        if (*end == '/')
                return "must not have a path or a trailing '/' (an origin is scheme://host[:port])";
        if (*end)
                return "must look like scheme://host[:port]";
        return NULL;
}

static int strv_extend(char ***l, const char *s) {
        size_t n = strv_length(*l);
        char *d = strdup(s);

        if (!d)
                return -ENOMEM;
        return list_push(l, &n, d);
}

static char **strv_new_empty(void) {
        return calloc(1, sizeof(char *));
}

/* ------------------------------------------------------------------ */
/* Applying decoded values; each reports its own errors at l->lineno. */

struct key_def;
typedef void (*apply_fn)(struct loader *l, const struct key_def *k, struct toml_value *v);

struct key_def {
        enum section section;
        const char *name;
        enum key_id id;
        apply_fn apply;
        size_t offset;          /* of the field in struct denvr_config, where generic */
        int64_t min, max;       /* for integers */
};

#define FIELD(c, k, type) ((type *) (void *) ((char *) (c) + (k)->offset))

static bool expect_type(struct loader *l, const struct key_def *k, const struct toml_value *v,
                        enum toml_type t) {
        if (v->type == t)
                return true;
        error_at(l, l->lineno, "'%s' must be %s %s, not %s %s", k->name,
                 t == TOML_INTEGER || t == TOML_ARRAY ? "an" : "a", toml_type_to_string(t),
                 v->type == TOML_INTEGER || v->type == TOML_ARRAY ? "an" : "a",
                 toml_type_to_string(v->type));
        return false;
}

/* Takes the decoded string out of v, refusing control characters. */
static char *take_string(struct loader *l, const struct key_def *k, struct toml_value *v) {
        if (!expect_type(l, k, v, TOML_STRING))
                return NULL;
        if (has_control(v->s.str)) {
                error_at(l, l->lineno, "'%s' must not contain control characters", k->name);
                return NULL;
        }
        return TAKE_PTR(v->s.str);
}

static void apply_string(struct loader *l, const struct key_def *k, struct toml_value *v) {
        char *s = take_string(l, k, v);
        if (s)
                *FIELD(l->c, k, char *) = s;
}

static void apply_nonempty_string(struct loader *l, const struct key_def *k, struct toml_value *v) {
        char *s = take_string(l, k, v);
        if (!s)
                return;
        if (!*s) {
                error_at(l, l->lineno, "'%s' must not be empty", k->name);
                free(s);
                return;
        }
        *FIELD(l->c, k, char *) = s;
}

static void apply_server(struct loader *l, const struct key_def *k, struct toml_value *v) {
        _cleanup_free_ char *s = take_string(l, k, v);
        const char *host;
        size_t n;

        if (!s)
                return;
        /* As the SDKs join server + "/api/...", a trailing '/' would double. */
        n = strlen(s);
        while (n > 0 && s[n - 1] == '/')
                s[--n] = 0;
        if (strncmp(s, "https://", 8) == 0)
                host = s + 8;
        else if (strncmp(s, "http://", 7) == 0)
                host = s + 7;
        else {
                error_at(l, l->lineno, "'server' must start with https:// or http://");
                return;
        }
        if (!*host || *host == '/' || strpbrk(s, " ?#")) {
                error_at(l, l->lineno, "'server' must be a URL like https://api.cloud.denvrdata.com "
                         "(a host, no spaces, query or fragment)");
                return;
        }
        l->c->server = TAKE_PTR(s);
}

static void apply_api(struct loader *l, const struct key_def *k, struct toml_value *v) {
        _cleanup_free_ char *s = take_string(l, k, v);

        if (!s)
                return;
        /* It becomes a path segment: /api/<api>/... */
        if (!*s || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(s)) {
                error_at(l, l->lineno, "'api' must be a version name such as \"v1\" (letters, digits, '.', '_', '-')");
                return;
        }
        l->c->api = TAKE_PTR(s);
}

static bool integer_in_range(struct loader *l, const struct key_def *k, const struct toml_value *v) {
        if (!expect_type(l, k, v, TOML_INTEGER))
                return false;
        if (v->i < k->min || v->i > k->max) {
                error_at(l, l->lineno, "'%s' must be between %" PRId64 " and %" PRId64 " (got %" PRId64 ")",
                         k->name, k->min, k->max, v->i);
                return false;
        }
        return true;
}

static void apply_unsigned(struct loader *l, const struct key_def *k, struct toml_value *v) {
        if (integer_in_range(l, k, v))
                *FIELD(l->c, k, unsigned) = (unsigned) v->i;
}

static void apply_size(struct loader *l, const struct key_def *k, struct toml_value *v) {
        if (integer_in_range(l, k, v))
                *FIELD(l->c, k, size_t) = (size_t) v->i;
}

static void apply_bool(struct loader *l, const struct key_def *k, struct toml_value *v) {
        if (expect_type(l, k, v, TOML_BOOLEAN))
                *FIELD(l->c, k, bool) = v->b;
}

static void apply_secret(struct loader *l, const struct key_def *k, struct toml_value *v) {
        struct secret **dst = k->id == KEY_APIKEY ? &l->file_apikey : &l->file_password;

        if (!expect_type(l, k, v, TOML_STRING))
                return;
        if (v->s.len == 0) {
                /* The SDKs test the API key for truth: "" means "use username/password". */
                if (k->id == KEY_PASSWORD)
                        error_at(l, l->lineno, "'password' must not be empty");
                return;
        }
        *dst = secret_new(v->s.str, v->s.len);
        if (!*dst)
                l->oom = true;
}

static void apply_path(struct loader *l, const struct key_def *k, struct toml_value *v) {
        _cleanup_free_ char *s = take_string(l, k, v);
        char *p;
        int r;

        if (!s)
                return;
        if (!*s) {
                /* socket = "" turns the default socket off; elsewhere it is a mistake. */
                if (k->id == KEY_SOCKET)
                        *FIELD(l->c, k, char *) = TAKE_PTR(s);
                else
                        error_at(l, l->lineno, "'%s' must not be empty", k->name);
                return;
        }
        r = resolve_file_path(l, s, &p);
        if (r == -ENOMEM)
                l->oom = true;
        else if (r < 0)
                error_at(l, l->lineno, "'%s': cannot expand '~/': no home directory", k->name);
        else
                *FIELD(l->c, k, char *) = p;
}

static void apply_listen(struct loader *l, const struct key_def *k, struct toml_value *v) {
        _cleanup_strv_free_ char **list = strv_new_empty();
        struct toml_value *items = v;
        size_t n = 1;

        if (!list) {
                l->oom = true;
                return;
        }
        if (v->type == TOML_ARRAY) {
                items = v->a.items;
                n = v->a.n;
        } else if (v->type != TOML_STRING) {
                error_at(l, l->lineno, "'listen' must be a \"HOST:PORT\" string or an array of them");
                return;
        }
        for (size_t i = 0; i < n; i++) {
                const char *reason = NULL;
                int r;

                if (items[i].type != TOML_STRING) {
                        error_at(l, l->lineno, "'listen' entries must be \"HOST:PORT\" strings");
                        return;
                }
                r = config_parse_listen(items[i].s.str, NULL, NULL, NULL, &reason);
                if (r == -ENOMEM) {
                        l->oom = true;
                        return;
                }
                if (r < 0) {
                        error_at(l, l->lineno, "'listen' entry \"%s\": %s", items[i].s.str, reason);
                        return;
                }
                if (strv_extend(&list, items[i].s.str) < 0) {
                        l->oom = true;
                        return;
                }
        }
        l->c->listen = TAKE_PTR(list);
}

static void apply_socket_mode(struct loader *l, const struct key_def *k, struct toml_value *v) {
        const char *s;
        unsigned long m;
        char *end;

        if (v->type != TOML_STRING) {
                error_at(l, l->lineno, "'socket_mode' must be an octal string such as \"0600\"");
                return;
        }
        s = v->s.str;
        errno = 0;
        m = strtoul(s, &end, 8);
        if (!*s || *end || errno || m > 0777 || strspn(s, "01234567") != strlen(s)) {
                error_at(l, l->lineno, "'socket_mode' must be an octal mode from \"0000\" to \"0777\"");
                return;
        }
        l->c->socket_mode = (mode_t) m;
}

static void apply_log_level(struct loader *l, const struct key_def *k, struct toml_value *v) {
        int p;

        if (!expect_type(l, k, v, TOML_STRING))
                return;
        p = log_level_from_string(v->s.str);
        if (p < 0) {
                error_at(l, l->lineno, "'log_level' must be one of error, warning, notice, info, debug");
                return;
        }
        l->c->log_level = p;
}

static void apply_access(struct loader *l, const struct key_def *k, struct toml_value *v) {
        int a;

        if (!expect_type(l, k, v, TOML_STRING))
                return;
        a = access_level_from_string(v->s.str);
        if (a < 0) {
                error_at(l, l->lineno, "'%s' must be \"full\", \"read-only\" or \"off\"", k->name);
                return;
        }
        *FIELD(l->c, k, enum access_level) = (enum access_level) a;
}

/* An array of strings, each checked by check() (NULL: fine; else why not). */
static void apply_string_array(struct loader *l, const struct key_def *k, struct toml_value *v,
                               const char *(*check)(const char *s)) {
        _cleanup_strv_free_ char **list = strv_new_empty();

        if (!list) {
                l->oom = true;
                return;
        }
        if (v->type != TOML_ARRAY) {
                error_at(l, l->lineno, "'%s' must be an array of strings", k->name);
                return;
        }
        for (size_t i = 0; i < v->a.n; i++) {
                const char *why;

                if (v->a.items[i].type != TOML_STRING) {
                        error_at(l, l->lineno, "'%s' must be an array of strings", k->name);
                        return;
                }
                why = check(v->a.items[i].s.str);
                if (why) {
                        error_at(l, l->lineno, "'%s' entry \"%s\" %s", k->name, v->a.items[i].s.str, why);
                        return;
                }
                if (strv_extend(&list, v->a.items[i].s.str) < 0) {
                        l->oom = true;
                        return;
                }
        }
        *FIELD(l->c, k, char **) = TAKE_PTR(list);
}

static const char *allowed_host_check(const char *s) {
        return host_valid(s, strlen(s)) ? NULL
                : "is not a host name or address (no port; IPv6 in brackets)";
}

static void apply_allowed_hosts(struct loader *l, const struct key_def *k, struct toml_value *v) {
        apply_string_array(l, k, v, allowed_host_check);
}

static void apply_cors_origins(struct loader *l, const struct key_def *k, struct toml_value *v) {
        apply_string_array(l, k, v, origin_check);
}

/* A numeric id from an integer or a string of digits; (uid_t) -1 is reserved. */
static bool id_from_value(const struct toml_value *v, uint32_t *ret) {
        if (v->type == TOML_INTEGER) {
                if (v->i < 0 || v->i >= (int64_t) UINT32_MAX)
                        return false;
                *ret = (uint32_t) v->i;
                return true;
        }
        if (v->type == TOML_STRING && v->s.len > 0 && v->s.len <= 10 &&
            strspn(v->s.str, "0123456789") == v->s.len) {
                unsigned long long x = strtoull(v->s.str, NULL, 10);
                if (x >= UINT32_MAX)
                        return false;
                *ret = (uint32_t) x;
                return true;
        }
        return false;
}

/* allowed_uids / allowed_groups: numbers or names resolved now. */
static void apply_ids(struct loader *l, const struct key_def *k, struct toml_value *v) {
        bool groups = k->id == KEY_ALLOWED_GROUPS;
        _cleanup_free_ uint32_t *ids = NULL;

        if (v->type != TOML_ARRAY) {
                error_at(l, l->lineno, "'%s' must be an array of %s names or numbers", k->name,
                         groups ? "group" : "user");
                return;
        }
        ids = calloc(v->a.n + 1, sizeof *ids);
        if (!ids) {
                l->oom = true;
                return;
        }
        for (size_t i = 0; i < v->a.n; i++) {
                const struct toml_value *it = &v->a.items[i];

                if (id_from_value(it, &ids[i]))
                        continue;
                if (it->type == TOML_INTEGER) {
                        error_at(l, l->lineno, "'%s' entry %" PRId64 " is not a valid %s", k->name, it->i,
                                 groups ? "gid" : "uid");
                        return;
                }
                if (it->type != TOML_STRING || it->s.len == 0) {
                        error_at(l, l->lineno, "'%s' entries must be %s names or numbers", k->name,
                                 groups ? "group" : "user");
                        return;
                }
                if (groups) {
                        struct group *g = getgrnam(it->s.str);
                        if (!g) {
                                error_at(l, l->lineno, "'%s': no such group \"%s\"", k->name, it->s.str);
                                return;
                        }
                        ids[i] = g->gr_gid;
                } else {
                        struct passwd *pw = getpwnam(it->s.str);
                        if (!pw) {
                                error_at(l, l->lineno, "'%s': no such user \"%s\"", k->name, it->s.str);
                                return;
                        }
                        ids[i] = pw->pw_uid;
                }
        }
        /* uid_t and gid_t are 32-bit on Linux, so the arrays convert in place. */
        if (groups) {
                l->c->allowed_groups = (gid_t *) (void *) TAKE_PTR(ids);
                l->c->n_allowed_groups = v->a.n;
        } else {
                l->c->allowed_uids = (uid_t *) (void *) TAKE_PTR(ids);
                l->c->n_allowed_uids = v->a.n;
        }
}

_Static_assert(sizeof(uid_t) == sizeof(uint32_t) && sizeof(gid_t) == sizeof(uint32_t),
               "uid_t and gid_t are expected to be 32-bit");

#define K(sec, key, id, fn) { SECTION_##sec, key, id, fn, 0, 0, 0 }
#define KF(sec, key, id, fn, field) { SECTION_##sec, key, id, fn, offsetof(struct denvr_config, field), 0, 0 }
#define KI(sec, key, id, fn, field, lo, hi) \
        { SECTION_##sec, key, id, fn, offsetof(struct denvr_config, field), lo, hi }

static const struct key_def key_table[] = {
        K(DEFAULTS, "server", KEY_SERVER, apply_server),
        K(DEFAULTS, "api", KEY_API, apply_api),
        KF(DEFAULTS, "cluster", KEY_CLUSTER, apply_string, cluster),
        KF(DEFAULTS, "tenant", KEY_TENANT, apply_string, tenant),
        KF(DEFAULTS, "vpcid", KEY_VPCID, apply_string, vpcid),
        KF(DEFAULTS, "rpool", KEY_RPOOL, apply_string, rpool),
        KI(DEFAULTS, "retries", KEY_RETRIES, apply_unsigned, retries, 0, 10),

        K(CREDENTIALS, "apikey", KEY_APIKEY, apply_secret),
        KF(CREDENTIALS, "username", KEY_USERNAME, apply_nonempty_string, username),
        K(CREDENTIALS, "password", KEY_PASSWORD, apply_secret),
        KF(CREDENTIALS, "apikey_file", KEY_APIKEY_FILE, apply_path, apikey_file),
        KF(CREDENTIALS, "password_file", KEY_PASSWORD_FILE, apply_path, password_file),

        K(DAEMON, "listen", KEY_LISTEN, apply_listen),
        KF(DAEMON, "socket", KEY_SOCKET, apply_path, socket),
        K(DAEMON, "socket_mode", KEY_SOCKET_MODE, apply_socket_mode),
        KF(DAEMON, "ca_file", KEY_CA_FILE, apply_path, ca_file),
        K(DAEMON, "log_level", KEY_LOG_LEVEL, apply_log_level),
        KI(DAEMON, "request_timeout", KEY_REQUEST_TIMEOUT, apply_unsigned, request_timeout_sec, 1, 3600),
        KI(DAEMON, "max_body_bytes", KEY_MAX_BODY_BYTES, apply_size, max_body_bytes, 1, 1024 * 1024 * 1024),
        KI(DAEMON, "max_upstream_connections", KEY_MAX_UPSTREAM_CONNECTIONS, apply_unsigned,
           max_upstream_connections, 1, 1024),
        KF(DAEMON, "allow_remote", KEY_ALLOW_REMOTE, apply_bool, allow_remote),
        KF(DAEMON, "allowed_hosts", KEY_ALLOWED_HOSTS, apply_allowed_hosts, allowed_hosts),
        KF(DAEMON, "cors_origins", KEY_CORS_ORIGINS, apply_cors_origins, cors_origins),
        K(DAEMON, "allowed_uids", KEY_ALLOWED_UIDS, apply_ids),
        K(DAEMON, "allowed_groups", KEY_ALLOWED_GROUPS, apply_ids),
        KF(DAEMON, "tcp_access", KEY_TCP_ACCESS, apply_access, tcp_access),
        KF(DAEMON, "socket_access", KEY_SOCKET_ACCESS, apply_access, socket_access),
};

static const struct key_def *key_lookup(enum section s, const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(key_table); i++)
                if (key_table[i].section == s && streq(key_table[i].name, name))
                        return &key_table[i];
        return NULL;
}

/* [cache]: "/api/..." = TTL seconds. */
static void apply_cache_rule(struct loader *l, const char *path, struct toml_value *v) {
        struct cache_rule *n;
        char *p;

        if (strncmp(path, "/api/", 5) != 0 || strpbrk(path, "?# ")) {
                error_at(l, l->lineno, "[cache] keys must be API paths starting with /api/ "
                         "(quote them: \"/api/v1/...\" = 300), without query");
                return;
        }
        if (v->type != TOML_INTEGER || v->i < 1 || v->i > 86400) {
                error_at(l, l->lineno, "[cache] \"%s\" must be a TTL in seconds from 1 to 86400", path);
                return;
        }
        p = strdup(path);
        n = reallocarray(l->c->cache, l->c->n_cache + 1, sizeof *n);
        if (!p || !n) {
                free(p);
                if (n)
                        l->c->cache = n;
                l->oom = true;
                return;
        }
        l->c->cache = n;
        n[l->c->n_cache++] = (struct cache_rule) { .path = p, .ttl_sec = (unsigned) v->i };
}

/* ------------------------------------------------------------------ */
/* The TOML-aware line reader that feeds inih, and inih's handler */

static enum section section_from_name(const char *name) {
        for (int s = SECTION_DEFAULTS; s <= SECTION_CACHE; s++)
                if (streq(name, section_names[s]))
                        return (enum section) s;
        return SECTION_IGNORED;
}

/* Records a key or table id; returns the line it was first seen on, or 0. */
static unsigned seen_before(struct loader *l, json_t *set, const char *id, unsigned value) {
        json_t *old = json_object_get(set, id);

        if (old)
                return (unsigned) json_integer_value(old);
        if (json_object_set_new(set, id, json_integer(value)) < 0)
                l->oom = true;
        return 0;
}

static char *join_parts(char **parts, const char *sep) {
        size_t n = 1;
        char *s, *w;

        for (char **p = parts; *p; p++)
                n += strlen(*p) + strlen(sep);
        s = w = malloc(n);
        if (!s)
                return NULL;
        *w = 0;
        for (char **p = parts; *p; p++)
                w = stpcpy(stpcpy(w, p == parts ? "" : sep), *p);
        return s;
}

static bool parts_have_control(char **parts) {
        for (char **p = parts; *p; p++)
                if (has_control(*p))
                        return true;
        return false;
}

/* Reports a decoder error at the current line, with the column within the line. */
static void syntax_error(struct loader *l, const char *what_start, const struct toml_error *e,
                         const char *key) {
        size_t col = (size_t) (what_start - l->line) + e->column;

        if (key)
                error_at(l, l->lineno, "'%s': %s (column %zu)", key, e->message, col);
        else
                error_at(l, l->lineno, "%s (column %zu)", e->message, col);
}

static void emit(char *out, int size, const char *s) {
        (void) snprintf(out, (size_t) size, "%s", s);
}

/* "[name]" or "[[name]]"; p points at the '['. */
static void lex_table_header(struct loader *l, const char *p, char *out, int size) {
        _cleanup_strv_free_ char **parts = NULL;
        _cleanup_free_ char *display = NULL, *id = NULL;
        bool array = p[1] == '[';
        struct toml_error e = { 0 };
        const char *end;
        enum section s;
        unsigned first;

        /* Until this header is known to be good, keys below it are ignored quietly. */
        l->section = SECTION_IGNORED;
        free(l->table_id);
        if (asprintf(&l->table_id, "\x1f" "bad%u", l->lineno) < 0) {
                l->table_id = NULL;
                l->oom = true;
        }
        emit(out, size, "[" IGNORED_SECTION "]\n");

        if (toml_key_parse(p + (array ? 2 : 1), &end, &parts, &e) < 0) {
                if (!l->resync)
                        syntax_error(l, p + (array ? 2 : 1), &e, NULL);
                return;
        }
        if (array ? strncmp(end, "]]", 2) != 0 : *end != ']') {
                if (!l->resync)
                        error_at(l, l->lineno, "invalid table header: expected '%s'", array ? "]]" : "]");
                return;
        }
        end += array ? 2 : 1;
        end += strspn(end, " \t");
        if (*end && *end != '#') {
                if (!l->resync)
                        error_at(l, l->lineno, "unexpected text after the table header");
                return;
        }
        l->resync = false;
        if (parts_have_control(parts)) {
                error_at(l, l->lineno, "control characters in table names are not supported");
                return;
        }
        display = join_parts(parts, ".");
        id = join_parts(parts, "\x1e");
        if (!display || !id) {
                l->oom = true;
                return;
        }

        /* TOML: a table is defined once; an array of tables may repeat but not mix. */
        first = seen_before(l, l->seen_tables, id, l->lineno * 2 + (array ? 1 : 0));
        if (first && (!array || !(first & 1))) {
                error_at(l, l->lineno, "duplicate table [%s] (first defined on line %u)", display, first / 2);
                return;
        }

        s = section_from_name(parts[0]);
        if (s != SECTION_IGNORED && (parts[1] || array)) {
                error_at(l, l->lineno, "[%s%s%s]: sub-tables and arrays of tables are not supported in [%s]",
                         array ? "[" : "", display, array ? "]" : "", parts[0]);
                return;
        }
        if (s == SECTION_IGNORED)
                warning_at(l, l->lineno, "unknown section [%s%s%s] (ignored)",
                           array ? "[" : "", display, array ? "]" : "");
        else {
                l->section_line[s] = l->lineno;
                (void) snprintf(out, (size_t) size, "[%s]\n", section_names[s]);
        }
        l->section = s;
        free(l->table_id);
        l->table_id = NULL;
        /* Each [[array]] element is its own table, so its keys may repeat. */
        if (array ? asprintf(&l->table_id, "%s\x1e#%u", id, l->lineno) < 0
                  : !(l->table_id = strdup(id))) {
                l->table_id = NULL;
                l->oom = true;
        }
}

/* An error on a key/value line, unless the line may belong to an earlier multi-line value. */
_printf_(2, 3)
static void kv_error(struct loader *l, const char *fmt, ...) {
        va_list ap;

        if (l->resync)
                return;
        va_start(ap, fmt);
        diag_at(l, true, l->lineno, fmt, ap);
        va_end(ap);
}

/* "key = value"; p points at the key. */
static void lex_key_value(struct loader *l, const char *p, char *out, int size) {
        _cleanup_strv_free_ char **parts = NULL;
        _cleanup_free_ char *id = NULL;
        struct toml_error e = { 0 };
        const char *end, *value;
        size_t vlen, need, w = 0;
        unsigned first;

        if (toml_key_parse(p, &end, &parts, &e) < 0) {
                if (!l->resync)
                        syntax_error(l, p, &e, NULL);
                return;
        }
        if (parts[1]) {
                kv_error(l, "dotted keys are not supported (write the key under its [section])");
                return;
        }
        if (*end != '=') {
                kv_error(l, "expected '=' after the key '%s'", parts[0]);
                return;
        }
        if (has_control(parts[0])) {
                kv_error(l, "control characters in keys are not supported");
                return;
        }
        value = end + 1;
        if (toml_value_scan(value, &vlen, &e) < 0) {
                if (!l->resync)
                        syntax_error(l, value, &e, parts[0]);
                l->resync = true;
                return;
        }

        if (asprintf(&id, "%s\x1e%s", l->table_id ? l->table_id : "", parts[0]) < 0) {
                l->oom = true;
                return;
        }
        first = seen_before(l, l->seen_keys, id, l->lineno);
        if (first) {
                kv_error(l, "duplicate key '%s' (first set on line %u)", parts[0], first);
                return;
        }

        /* KEY (escaped) '=' VALUE_MARK '\n' NUL must fit inih's line buffer. */
        need = strlen(parts[0]) + 4;
        if (need > (size_t) size) {
                kv_error(l, "key '%.40s...' is too long (at most %d bytes)", parts[0], size - 4);
                return;
        }
        for (const char *k = parts[0]; *k; k++) {
                char c = *k;
                for (size_t i = 0; i < ELEMENTSOF(ini_escapes); i++)
                        if (c == ini_escapes[i].c)
                                c = ini_escapes[i].escaped;
                out[w++] = c;
        }
        memcpy(out + w, "=" VALUE_MARK "\n", 4);
        l->value = value;
}

/* A line inih should see as blank, after reporting why the real one was rejected. */
static char *reject_line(struct loader *l, char *out, int size, const char *why) {
        error_at(l, l->lineno, "%s", why);
        emit(out, size, "\n");
        return out;
}

/* ini_reader: one physical line of the file in, one normalised line out. */
static char *loader_read_line(char *out, int size, void *userdata) {
        struct loader *l = userdata;
        char *line, *nl, *p;
        size_t n;

        assert(size >= 8);
        if (l->pos >= l->len)
                return NULL;

        line = l->buf + l->pos;
        nl = memchr(line, '\n', l->len - l->pos);
        n = nl ? (size_t) (nl - line) : l->len - l->pos;
        l->pos += n + (nl ? 1 : 0);
        l->lineno++;
        l->line = line;
        l->value = NULL;
        emit(out, size, "\n");

        if (memchr(line, 0, n))
                return reject_line(l, out, size, "NUL byte in the file");
        line[n] = 0;                 /* the '\n' (or the buffer's terminator) */
        if (n > 0 && line[n - 1] == '\r')
                line[--n] = 0;       /* CRLF line ends are TOML */
        if (l->lineno == 1 && strncmp(line, "\xef\xbb\xbf", 3) == 0) {
                line += 3;      /* a UTF-8 byte order mark */
                n -= 3;
                l->line = line;
        }
        if (!toml_utf8_valid(line, n))
                return reject_line(l, out, size, "invalid UTF-8");
        for (size_t i = 0; i < n; i++)
                if (((unsigned char) line[i] < 0x20 && line[i] != '\t') || line[i] == 0x7f)
                        return reject_line(l, out, size, "control character in the file (only tab is allowed)");

        p = line + strspn(line, " \t");   /* TOML ignores indentation; inih would not */
        if (*p == 0 || *p == '#')
                return out;
        if (*p == '[')
                lex_table_header(l, p, out, size);
        else
                lex_key_value(l, p, out, size);
        return out;
}

static char *unescape_key(const char *name) {
        char *s = strdup(name);

        if (!s)
                return NULL;
        for (char *p = s; *p; p++)
                for (size_t i = 0; i < ELEMENTSOF(ini_escapes); i++)
                        if (*p == ini_escapes[i].escaped)
                                *p = ini_escapes[i].c;
        return s;
}

static int loader_handler(void *userdata, const char *section, const char *name, const char *value) {
        struct loader *l = userdata;
        _cleanup_free_ char *key = NULL;
        struct toml_value v;
        struct toml_error e = { 0 };
        const struct key_def *k;
        enum section s;

        /* inih must have passed through exactly what the reader made. */
        if (!l->value || !streq(value, VALUE_MARK)) {
                error_at(l, l->lineno, "internal error: the INI parser split this line unexpectedly");
                return 1;
        }
        key = unescape_key(name);
        if (!key) {
                l->oom = true;
                return 1;
        }
        s = *section ? section_from_name(section) : SECTION_ROOT;
        if (s == SECTION_IGNORED)
                return 1;
        if (s == SECTION_ROOT) {
                warning_at(l, l->lineno, "unknown key '%s' outside any section (ignored)", key);
                return 1;
        }

        k = s == SECTION_CACHE ? NULL : key_lookup(s, key);
        if (!k && s != SECTION_CACHE) {
                warning_at(l, l->lineno, "unknown key '%s' in [%s] (ignored)", key, section_names[s]);
                return 1;
        }

        if (toml_value_decode(l->value, &v, &e) < 0) {
                if (e.message[0])
                        syntax_error(l, l->value, &e, key);
                else
                        l->oom = true;
                return 1;
        }
        if (s == SECTION_CACHE)
                apply_cache_rule(l, key, &v);
        else {
                l->key_line[k->id] = l->lineno;
                k->apply(l, k, &v);
        }
        toml_value_done(&v);
        return 1;
}

/* ------------------------------------------------------------------ */
/* Reading the file */

static void loader_done(struct loader *l) {
        if (l->buf) {
                explicit_bzero(l->buf, l->len);
                free(l->buf);
        }
        json_decref(l->seen_tables);
        json_decref(l->seen_keys);
        free(l->table_id);
        secret_free(l->file_apikey);
        secret_free(l->file_password);
}

/* Reads all of fd, wiping every buffer it lets go of (the file may hold secrets). */
static int read_all(int fd, size_t size_hint, char **ret, size_t *ret_len) {
        size_t cap = size_hint + 1 < 4096 ? 4096 : size_hint + 1, len = 0;
        char *buf = malloc(cap);

        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n;

                if (len + 1 >= cap) {
                        char *nb;

                        if (cap > CONFIG_FILE_MAX) {
                                explicit_bzero(buf, len);
                                free(buf);
                                return -EFBIG;
                        }
                        nb = malloc(cap * 2);
                        if (!nb) {
                                explicit_bzero(buf, len);
                                free(buf);
                                return -ENOMEM;
                        }
                        memcpy(nb, buf, len);
                        explicit_bzero(buf, len);
                        free(buf);
                        buf = nb;
                        cap *= 2;
                }
                n = read(fd, buf + len, cap - len - 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int r = -errno;
                        explicit_bzero(buf, len);
                        free(buf);
                        return r;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        if (len > CONFIG_FILE_MAX) {
                explicit_bzero(buf, len);
                free(buf);
                return -EFBIG;
        }
        buf[len] = 0;
        *ret = buf;
        *ret_len = len;
        return 0;
}

/*
 * --config, else $DENVR_CONFIG, else ~/.config/denvr.toml (as the SDKs).
 * Only the last may be missing.  *ret is absolute, or NULL without a home.
 */
static int config_locate(const struct config_overrides *o, char **ret, bool *ret_explicit) {
        const char *p = o->config_path ? o->config_path : getenv_nonempty("DENVR_CONFIG");
        _cleanup_free_ char *home = NULL;

        *ret_explicit = p != NULL;
        if (p) {
                *ret = path_make_absolute_cwd(p);
                return *ret ? 0 : -ENOMEM;
        }
        home = home_dir();
        if (!home) {
                *ret = NULL;
                return 0;
        }
        return asprintf(ret, "%s/.config/denvr.toml", home) < 0 ? -ENOMEM : 0;
}

static void report_file_mode(struct loader *l, unsigned line, const char *what, const char *path,
                             mode_t mode) {
        error_at(l, line, "%s %s is accessible by group or others (mode %04o); run: chmod 600 %s",
                 what, path, (unsigned) (mode & 07777), path);
}

/* Returns 1 if the file was parsed, 0 if there is none (allowed), <0 on a reported error. */
static int load_file(struct loader *l, bool explicit) {
        _cleanup_close_ int fd = -1;
        struct stat st;
        int r;

        fd = open(l->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT && !explicit)
                        return 0;
                error_at(l, 0, "cannot open the configuration file: %s", strerror(errno));
                return -errno;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                error_at(l, 0, "not a regular file");
                return -EINVAL;
        }
        r = read_all(fd, (size_t) st.st_size, &l->buf, &l->len);
        if (r == -EFBIG)
                error_at(l, 0, "the configuration file is larger than %d bytes", CONFIG_FILE_MAX);
        else if (r < 0 && r != -ENOMEM)
                error_at(l, 0, "cannot read the configuration file: %s", strerror(-r));
        if (r < 0)
                return r;

        r = ini_parse_stream(loader_read_line, l, loader_handler, l);
        if (r == -2)
                l->oom = true;
        else if (r != 0)
                error_at(l, r > 0 ? (unsigned) r : 0, "internal error: the INI parser rejected the line");

        /* As ssh does for keys: a file holding a secret must be private. */
        if ((st.st_mode & 077) && (l->file_apikey || l->file_password)) {
                unsigned line = l->file_apikey ? l->key_line[KEY_APIKEY] : l->key_line[KEY_PASSWORD];
                report_file_mode(l, line, l->file_apikey ? "it holds an API key, but" : "it holds a password, but",
                                 l->path, st.st_mode);
        }
        return 1;
}

/* ------------------------------------------------------------------ */
/* Credentials */

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
                error_at(l, line, "'%s' %s %s", key, path, secret_read_error(r));
        else if (r < 0)
                error_plain(l, "credential %s %s", path, secret_read_error(r));
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

        if (e) {
                *mem = secret_new_str(e);
                l->oom = l->oom || !*mem;
                c->secret_source = SECRET_SOURCE_ENV;
                return true;
        }
        if (credsdir) {
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s/%s", credsdir, apikey ? CREDENTIAL_APIKEY_NAME : CREDENTIAL_PASSWORD_NAME) < 0) {
                        l->oom = true;
                        return false;
                }
                if (access(p, F_OK) == 0) {
                        /* systemd owns these files' modes; no permission check. */
                        verify_secret_file(l, 0, NULL, p, false);
                        c->secret_source = SECRET_SOURCE_CREDENTIAL;
                        c->secret_path = TAKE_PTR(p);
                        return true;
                }
        }
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
                error_at(l, l->key_line[a] > l->key_line[b] ? l->key_line[a] : l->key_line[b],
                         "'%s' and '%s' are both set in [credentials]; keep one", an, bn);
}

static void resolve_credentials(struct loader *l, const struct config_overrides *o) {
        struct denvr_config *c = l->c;
        const char *credsdir = getenv_nonempty("CREDENTIALS_DIRECTORY");
        const char *e;
        bool have_password;

        check_exclusive(l, KEY_APIKEY, "apikey", KEY_APIKEY_FILE, "apikey_file");
        check_exclusive(l, KEY_PASSWORD, "password", KEY_PASSWORD_FILE, "password_file");

        e = getenv_nonempty("DENVR_USERNAME");
        if (e) {
                if (has_control(e) || !toml_utf8_valid(e, strlen(e)))
                        error_plain(l, "DENVR_USERNAME must be UTF-8 text without control characters");
                else {
                        free(c->username);
                        c->username = strdup(e);
                        l->oom = l->oom || !c->username;
                }
        }

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

        if (c->username) {
                if (l->key_line[KEY_USERNAME] && !getenv_nonempty("DENVR_USERNAME"))
                        error_at(l, l->key_line[KEY_USERNAME],
                                 "'username' is set but there is no password: set 'password' or 'password_file' "
                                 "in [credentials], or DENVR_PASSWORD");
                else
                        error_plain(l, "DENVR_USERNAME is set but there is no password: set DENVR_PASSWORD, "
                                    "or 'password' or 'password_file' in [credentials]");
        } else if (have_password) {
                /* A password from the file is reported at its line, like every other file error. */
                unsigned line = c->secret_source == SECRET_SOURCE_CONFIG ? l->key_line[KEY_PASSWORD] :
                                c->secret_source == SECRET_SOURCE_FILE ? l->key_line[KEY_PASSWORD_FILE] : 0;

                if (line)
                        error_at(l, line, "a password is set but no username: set 'username' in [credentials] "
                                 "or DENVR_USERNAME");
                else
                        error_plain(l, "a password is set but no username: set 'username' in [credentials] "
                                    "or DENVR_USERNAME");
        } else if (!o->allow_no_credentials) {
                const char *hint = "set 'apikey' or 'apikey_file', or 'username' with 'password' or "
                                   "'password_file' in [credentials]; or the environment variables "
                                   "DENVR_APIKEY, or DENVR_USERNAME and DENVR_PASSWORD";
                if (l->path && l->section_line[SECTION_CREDENTIALS])
                        error_at(l, l->section_line[SECTION_CREDENTIALS], "no credentials: %s%s", hint,
                                 credsdir ? "; or the systemd credentials denvr-apikey or denvr-password" : "");
                else if (l->path)
                        error_at(l, 0, "no credentials: %s%s", hint,
                                 credsdir ? "; or the systemd credentials denvr-apikey or denvr-password" : "");
                else
                        error_plain(l, "no configuration file and no credentials: %s%s", hint,
                                    credsdir ? "; or the systemd credentials denvr-apikey or denvr-password" : "");
        }
        secret_free(c->password);
        c->password = NULL;
        free(c->secret_path);
        c->secret_path = NULL;
        c->secret_source = SECRET_SOURCE_NONE;
        c->mode = CREDENTIAL_NONE;
}

/* ------------------------------------------------------------------ */
/* Defaults, command-line overrides, cross-checks */

static void default_string(struct loader *l, char **field, const char *v) {
        if (!*field && !(*field = strdup(v)))
                l->oom = true;
}

static void apply_defaults(struct loader *l) {
        struct denvr_config *c = l->c;

        default_string(l, &c->server, DENVRD_DEFAULT_SERVER);
        default_string(l, &c->api, DEFAULT_API);
        default_string(l, &c->cluster, DEFAULT_CLUSTER);
        default_string(l, &c->rpool, DEFAULT_RPOOL);
        if (!l->key_line[KEY_RETRIES])
                c->retries = DEFAULT_RETRIES;

        if (!l->key_line[KEY_LISTEN]) {
                char def[32];

                (void) snprintf(def, sizeof def, "127.0.0.1:%d", DENVRD_DEFAULT_PORT);
                strv_free(c->listen);
                c->listen = strv_new_empty();
                if (!c->listen || strv_extend(&c->listen, def) < 0)
                        l->oom = true;
        }
        if (!l->key_line[KEY_SOCKET]) {
                const char *xdg = getenv_nonempty("XDG_RUNTIME_DIR");

                if (xdg && xdg[0] == '/' && asprintf(&c->socket, "%s/denvrd.sock", xdg) < 0) {
                        c->socket = NULL;
                        l->oom = true;
                }
        } else if (c->socket && !*c->socket) {
                free(c->socket);
                c->socket = NULL;
        }

        if (!l->key_line[KEY_SOCKET_MODE])
                c->socket_mode = DEFAULT_SOCKET_MODE;
        if (!l->key_line[KEY_LOG_LEVEL])
                c->log_level = LOG_INFO;
        if (!l->key_line[KEY_REQUEST_TIMEOUT])
                c->request_timeout_sec = DEFAULT_REQUEST_TIMEOUT;
        if (!l->key_line[KEY_MAX_BODY_BYTES])
                c->max_body_bytes = DEFAULT_MAX_BODY_BYTES;
        if (!l->key_line[KEY_MAX_UPSTREAM_CONNECTIONS])
                c->max_upstream_connections = DEFAULT_MAX_UPSTREAM;
        /* TCP defaults to full too: curl and the SDKs are its users, and the host/origin checks guard it. */
        if (!l->key_line[KEY_TCP_ACCESS])
                c->tcp_access = ACCESS_FULL;
        if (!l->key_line[KEY_SOCKET_ACCESS])
                c->socket_access = ACCESS_FULL;
        if (!c->allowed_hosts && !(c->allowed_hosts = strv_new_empty()))
                l->oom = true;
        if (!c->cors_origins && !(c->cors_origins = strv_new_empty()))
                l->oom = true;
}

static void apply_overrides(struct loader *l, const struct config_overrides *o) {
        struct denvr_config *c = l->c;

        if (o->log_level) {
                int p = log_level_from_string(o->log_level);
                if (p < 0)
                        error_plain(l, "--log-level: unknown level \"%s\" (expected error, warning, notice, info or debug)",
                                    o->log_level);
                else
                        c->log_level = p;
        }

        if (o->listen && o->listen[0]) {
                _cleanup_strv_free_ char **list = strv_new_empty();

                if (!list) {
                        l->oom = true;
                        return;
                }
                for (char **a = o->listen; *a; a++) {
                        const char *reason = NULL;
                        int r = config_parse_listen(*a, NULL, NULL, NULL, &reason);

                        if (r == -ENOMEM)
                                l->oom = true;
                        else if (r < 0)
                                error_plain(l, "--listen %s: %s", *a, reason);
                        else if (strv_extend(&list, *a) < 0)
                                l->oom = true;
                }
                strv_free(c->listen);
                c->listen = TAKE_PTR(list);
        }

        if (o->socket) {
                free(c->socket);
                c->socket = NULL;
                if (*o->socket && !(c->socket = path_make_absolute_cwd(o->socket)))
                        l->oom = true;
        }
}

static void validate(struct loader *l, const struct config_overrides *o) {
        struct denvr_config *c = l->c;
        bool listen_from_flag = o->listen && o->listen[0];

        for (char **a = c->listen; a && *a; a++) {
                bool loopback = false;

                if (config_parse_listen(*a, NULL, NULL, &loopback, NULL) < 0 || loopback || c->allow_remote)
                        continue;
                if (listen_from_flag)
                        error_plain(l, "--listen %s: not a loopback address; set allow_remote = true in [daemon] "
                                    "to serve other machines", *a);
                else
                        error_at(l, l->key_line[KEY_LISTEN] ? l->key_line[KEY_LISTEN] : l->key_line[KEY_ALLOW_REMOTE],
                                 "listen address %s is not a loopback address; set allow_remote = true in [daemon] "
                                 "to serve other machines", *a);
        }

        if (c->socket) {
                bool from_file = !o->socket && l->key_line[KEY_SOCKET];

                if (strlen(c->socket) >= sizeof(((struct sockaddr_un *) NULL)->sun_path) ||
                    !toml_utf8_valid(c->socket, strlen(c->socket)) || has_control(c->socket)) {
                        if (from_file)
                                error_at(l, l->key_line[KEY_SOCKET], "'socket' path is too long for a unix socket "
                                         "(at most %zu bytes) or not UTF-8",
                                         sizeof(((struct sockaddr_un *) NULL)->sun_path) - 1);
                        else
                                error_plain(l, "socket path %s is too long for a unix socket or not UTF-8", c->socket);
                }
        }

        if (c->ca_file && access(c->ca_file, R_OK) < 0)
                error_at(l, l->key_line[KEY_CA_FILE], "'ca_file' %s: %s", c->ca_file, strerror(errno));
}

int config_load(const struct config_overrides *o, struct denvr_config **ret, struct config_diag *diag) {
        static const struct config_overrides no_overrides = { 0 };
        _cleanup_(loader_done) struct loader l = { 0 };
        _cleanup_config_free_ struct denvr_config *c = NULL;
        _cleanup_free_ char *path = NULL;
        struct config_diag local = { 0 }, *d = diag ? diag : &local;
        size_t errors_before = d->n_errors;
        bool explicit;
        int r;

        assert(ret);
        if (!o)
                o = &no_overrides;

        c = calloc(1, sizeof *c);
        l.seen_tables = json_object();
        l.seen_keys = json_object();
        if (!c || !l.seen_tables || !l.seen_keys)
                return -ENOMEM;
        l.c = c;
        l.diag = d;

        r = config_locate(o, &path, &explicit);
        if (r < 0)
                return r;
        if (path) {
                l.path = path;
                r = load_file(&l, explicit);
                if (r > 0)
                        c->path = TAKE_PTR(path);
                l.path = c->path;
        }

        resolve_credentials(&l, o);
        apply_defaults(&l);
        apply_overrides(&l, o);
        validate(&l, o);

        if (l.oom)
                r = -ENOMEM;
        else if (d->n_errors > errors_before)
                r = -EINVAL;
        else {
                *ret = TAKE_PTR(c);
                r = 0;
        }
        if (!diag) {
                config_diag_log(&local);
                config_diag_done(&local);
        }
        return r;
}

/* ------------------------------------------------------------------ */
/* Using a loaded configuration */

const char *config_vpcid(const struct denvr_config *c) {
        assert(c);
        return c->vpcid ? c->vpcid : c->tenant;
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

const char *access_level_to_string(enum access_level a) {
        switch (a) {
        case ACCESS_OFF:
                return "off";
        case ACCESS_READ_ONLY:
                return "read-only";
        case ACCESS_FULL:
                return "full";
        }
        return "unknown";
}

int access_level_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        if (streq(s, "full"))
                return ACCESS_FULL;
        if (streq(s, "read-only"))
                return ACCESS_READ_ONLY;
        if (streq(s, "off"))
                return ACCESS_OFF;
        return -EINVAL;
}

const char *secret_source_to_string(enum secret_source s) {
        switch (s) {
        case SECRET_SOURCE_NONE:
                return "none";
        case SECRET_SOURCE_CONFIG:
                return "config";
        case SECRET_SOURCE_ENV:
                return "env";
        case SECRET_SOURCE_FILE:
                return "file";
        case SECRET_SOURCE_CREDENTIAL:
                return "credential";
        }
        return "unknown";
}

static const char *credential_mode_to_string(enum credential_mode m) {
        switch (m) {
        case CREDENTIAL_NONE:
                return "none";
        case CREDENTIAL_APIKEY:
                return "apikey";
        case CREDENTIAL_PASSWORD:
                return "password";
        }
        return "unknown";
}

/* JSON building: every setter counts failures instead of checking each call. */
struct jb {
        bool failed;
};

static void jset(struct jb *b, json_t *o, const char *k, json_t *v) {
        if (!o || !v || json_object_set_new(o, k, v) < 0)
                b->failed = true;
}

static json_t *jstr(const char *s) {
        return s ? json_string(s) : json_null();
}

static json_t *jstrv(char **l) {
        json_t *a = json_array();

        for (char **i = l; a && i && *i; i++)
                if (json_array_append_new(a, json_string(*i)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

static json_t *jids(const uint32_t *ids, size_t n) {
        json_t *a = json_array();

        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_integer(ids[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

char *config_to_json(const struct denvr_config *c) {
        struct jb b = { 0 };
        json_t *root, *defaults, *creds, *daemon, *cache;
        char mode[8];
        char *s;

        assert(c);
        root = json_object();
        defaults = json_object();
        creds = json_object();
        daemon = json_object();
        cache = json_object();

        jset(&b, root, "config_path", jstr(c->path));

        jset(&b, defaults, "server", jstr(c->server));
        jset(&b, defaults, "api", jstr(c->api));
        jset(&b, defaults, "cluster", jstr(c->cluster));
        jset(&b, defaults, "tenant", jstr(c->tenant));
        jset(&b, defaults, "vpcid", jstr(config_vpcid(c)));
        jset(&b, defaults, "rpool", jstr(c->rpool));
        jset(&b, defaults, "retries", json_integer(c->retries));

        /* Secrets never appear: only whether the one in use exists. */
        jset(&b, creds, "mode", json_string(credential_mode_to_string(c->mode)));
        jset(&b, creds, "username", jstr(c->username));
        jset(&b, creds, "apikey", c->mode == CREDENTIAL_APIKEY ? json_string("***") : json_null());
        jset(&b, creds, "password", c->mode == CREDENTIAL_PASSWORD ? json_string("***") : json_null());
        jset(&b, creds, "apikey_file", jstr(c->apikey_file));
        jset(&b, creds, "password_file", jstr(c->password_file));
        jset(&b, creds, "secret_source",
             c->secret_source == SECRET_SOURCE_NONE ? json_null() : json_string(secret_source_to_string(c->secret_source)));
        jset(&b, creds, "secret_path", jstr(c->secret_path));

        (void) snprintf(mode, sizeof mode, "%04o", (unsigned) c->socket_mode);
        jset(&b, daemon, "listen", jstrv(c->listen));
        jset(&b, daemon, "socket", jstr(c->socket));
        jset(&b, daemon, "socket_mode", json_string(mode));
        jset(&b, daemon, "ca_file", jstr(c->ca_file));
        jset(&b, daemon, "log_level", json_string(log_level_to_string(c->log_level)));
        jset(&b, daemon, "request_timeout", json_integer(c->request_timeout_sec));
        jset(&b, daemon, "max_body_bytes", json_integer((json_int_t) c->max_body_bytes));
        jset(&b, daemon, "max_upstream_connections", json_integer(c->max_upstream_connections));
        jset(&b, daemon, "allow_remote", json_boolean(c->allow_remote));
        jset(&b, daemon, "allowed_hosts", jstrv(c->allowed_hosts));
        jset(&b, daemon, "cors_origins", jstrv(c->cors_origins));
        jset(&b, daemon, "allowed_uids", jids((const uint32_t *) c->allowed_uids, c->n_allowed_uids));
        jset(&b, daemon, "allowed_groups", jids((const uint32_t *) c->allowed_groups, c->n_allowed_groups));
        jset(&b, daemon, "tcp_access", json_string(access_level_to_string(c->tcp_access)));
        jset(&b, daemon, "socket_access", json_string(access_level_to_string(c->socket_access)));

        for (size_t i = 0; i < c->n_cache; i++)
                jset(&b, cache, c->cache[i].path, json_integer(c->cache[i].ttl_sec));

        jset(&b, root, "defaults", defaults);
        jset(&b, root, "credentials", creds);
        jset(&b, root, "daemon", daemon);
        jset(&b, root, "cache", cache);

        s = b.failed ? NULL : json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(root);
        return s;
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

void config_free(struct denvr_config *c) {
        if (!c)
                return;
        free(c->path);
        free(c->server);
        free(c->api);
        free(c->cluster);
        free(c->tenant);
        free(c->vpcid);
        free(c->rpool);
        free(c->username);
        secret_free(c->apikey);
        secret_free(c->password);
        free(c->secret_path);
        free(c->apikey_file);
        free(c->password_file);
        strv_free(c->listen);
        free(c->socket);
        free(c->ca_file);
        strv_free(c->allowed_hosts);
        strv_free(c->cors_origins);
        free(c->allowed_uids);
        free(c->allowed_groups);
        for (size_t i = 0; i < c->n_cache; i++)
                free(c->cache[i].path);
        free(c->cache);
        free(c);
}
