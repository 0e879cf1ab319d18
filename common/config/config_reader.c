/* SPDX-License-Identifier: MIT */
/*
 * Reading denvr.toml: the file into memory, then through inih one line at a
 * time, with each line lexed as TOML first (see below), and inih's handler
 * passing each key's value to config_keys.c.
 */
#include "common/config/config-internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "common/config/toml_value.h"

#define CONFIG_FILE_MAX (1024 * 1024)

/*
 * How we use inih.  Debian's libinih 55 has compile-time settings we cannot
 * change: a 200-byte line buffer (longer lines are split into two "lines"),
 * ';' starts an inline comment, indented lines continue the previous value,
 * ':' separates like '=', and the handler gets no line number.  None of that
 * is TOML.  So inih reads through our own reader (loader_read_line), which
 * lexes each physical line as TOML first and hands inih one normalised line
 * per physical line:
 *   - comments and blank lines become an empty line;
 *   - a table header becomes "[name]" for our six sections, or the
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

static const char *const section_names[_SECTION_MAX] = {
        [SECTION_DEFAULTS] = "defaults",
        [SECTION_CREDENTIALS] = "credentials",
        [SECTION_DAEMON] = "daemon",
        [SECTION_CACHE] = "cache",
        [SECTION_RIGHTS] = "rights",
        [SECTION_TOKENS] = "tokens",
        [SECTION_LEASES] = "leases",
};

static enum section section_from_name(const char *name) {
        for (int s = SECTION_DEFAULTS; s < SECTION_IGNORED; s++)
                if (streq(name, section_names[s]))
                        return (enum section) s;
        return SECTION_IGNORED;
}

const char *config_known_section(size_t i) {
        return i < (size_t) (SECTION_IGNORED - SECTION_DEFAULTS) ? section_names[SECTION_DEFAULTS + i] : NULL;
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
                config_error_at(l, l->lineno, "'%s': %s (column %zu)", key, e->message, col);
        else
                config_error_at(l, l->lineno, "%s (column %zu)", e->message, col);
}

static void emit(char *out, int size, const char *s) {
        (void) snprintf(out, (size_t) size, "%s", s);
}

/* Until a header is known to be good, keys below it are ignored quietly. */
static void enter_bad_table(struct loader *l) {
        l->section = SECTION_IGNORED;
        free(l->table_id);
        if (asprintf(&l->table_id, "\x1f" "bad%u", l->lineno) < 0) {
                l->table_id = NULL;
                l->oom = true;
        }
}

static void enter_table(struct loader *l, enum section s, const char *id, bool array) {
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

/* The dotted name of a header; NULL (reported) if the header is malformed. */
static char **parse_table_name(struct loader *l, const char *p, bool array) {
        _cleanup_strv_free_ char **parts = NULL;
        struct toml_error e = { 0 };
        const char *name = p + (array ? 2 : 1), *end;

        if (toml_key_parse(name, &end, &parts, &e) < 0) {
                if (!l->resync)
                        syntax_error(l, name, &e, NULL);
                return NULL;
        }
        if (array ? strncmp(end, "]]", 2) != 0 : *end != ']') {
                if (!l->resync)
                        config_error_at(l, l->lineno, "invalid table header: expected '%s'", array ? "]]" : "]");
                return NULL;
        }
        end += array ? 2 : 1;
        end += strspn(end, " \t");
        if (*end && *end != '#') {
                if (!l->resync)
                        config_error_at(l, l->lineno, "unexpected text after the table header");
                return NULL;
        }
        l->resync = false;
        if (parts_have_control(parts)) {
                config_error_at(l, l->lineno, "control characters in table names are not supported");
                return NULL;
        }
        return TAKE_PTR(parts);
}

/* "[name]" or "[[name]]"; p points at the '['. */
static void lex_table_header(struct loader *l, const char *p, char *out, int size) {
        _cleanup_strv_free_ char **parts = NULL;
        _cleanup_free_ char *display = NULL, *id = NULL;
        bool array = p[1] == '[';
        enum section s;
        unsigned first;

        enter_bad_table(l);
        emit(out, size, "[" IGNORED_SECTION "]\n");
        parts = parse_table_name(l, p, array);
        if (!parts)
                return;
        display = join_parts(parts, ".");
        id = join_parts(parts, "\x1e");
        if (!display || !id) {
                l->oom = true;
                return;
        }

        /* TOML: a table is defined once; an array of tables may repeat but not mix. */
        first = seen_before(l, l->seen_tables, id, l->lineno * 2 + (array ? 1 : 0));
        if (first && (!array || !(first & 1))) {
                config_error_at(l, l->lineno, "duplicate table [%s] (first defined on line %u)", display, first / 2);
                return;
        }

        s = section_from_name(parts[0]);
        if (s != SECTION_IGNORED && (parts[1] || array)) {
                config_error_at(l, l->lineno, "[%s%s%s]: sub-tables and arrays of tables are not supported in [%s]",
                                array ? "[" : "", display, array ? "]" : "", parts[0]);
                return;
        }
        if (s == SECTION_IGNORED)
                config_warning_at(l, l->lineno, "unknown section [%s%s%s] (ignored)",
                                  array ? "[" : "", display, array ? "]" : "");
        else {
                l->section_line[s] = l->lineno;
                (void) snprintf(out, (size_t) size, "[%s]\n", section_names[s]);
        }
        enter_table(l, s, id, array);
}

/* An error on a key/value line, unless the line may belong to an earlier multi-line value. */
_printf_(2, 3)
static void kv_error(struct loader *l, const char *fmt, ...) {
        va_list ap;

        if (l->resync)
                return;
        va_start(ap, fmt);
        config_diagv_at(l, true, l->lineno, fmt, ap);
        va_end(ap);
}

/* What inih gets for "key = value": KEY (escaped) '=' VALUE_MARK '\n'. */
static void write_key_line(char *out, const char *key) {
        size_t w = 0;

        for (const char *k = key; *k; k++) {
                char c = *k;
                for (size_t i = 0; i < ELEMENTSOF(ini_escapes); i++)
                        if (c == ini_escapes[i].c)
                                c = ini_escapes[i].escaped;
                out[w++] = c;
        }
        memcpy(out + w, "=" VALUE_MARK "\n", 4);
}

/* TOML: a key is set once per table.  False (reported) if it was set before. */
static bool key_is_new(struct loader *l, const char *key) {
        _cleanup_free_ char *id = NULL;
        unsigned first;

        if (asprintf(&id, "%s\x1e%s", l->table_id ? l->table_id : "", key) < 0) {
                l->oom = true;
                return false;
        }
        first = seen_before(l, l->seen_keys, id, l->lineno);
        if (first) {
                kv_error(l, "duplicate key '%s' (first set on line %u)", key, first);
                return false;
        }
        return true;
}

/* "key = value"; p points at the key. */
static void lex_key_value(struct loader *l, const char *p, char *out, int size) {
        _cleanup_strv_free_ char **parts = NULL;
        struct toml_error e = { 0 };
        const char *end, *value;
        size_t vlen, need;

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

        if (!key_is_new(l, parts[0]))
                return;

        /* KEY (escaped) '=' VALUE_MARK '\n' NUL must fit inih's line buffer. */
        need = strlen(parts[0]) + 4;
        if (need > (size_t) size) {
                kv_error(l, "key '%.40s...' is too long (at most %d bytes)", parts[0], size - 4);
                return;
        }
        write_key_line(out, parts[0]);
        l->value = value;
}

/* A line inih should see as blank, after reporting why the real one was rejected. */
static char *reject_line(struct loader *l, char *out, int size, const char *why) {
        config_error_at(l, l->lineno, "%s", why);
        emit(out, size, "\n");
        return out;
}

/* Steps to the next physical line; *ret_n is its length without the '\n'. */
static char *next_line(struct loader *l, size_t *ret_n) {
        char *line = l->buf + l->pos, *nl;
        size_t n;

        nl = memchr(line, '\n', l->len - l->pos);
        n = nl ? (size_t) (nl - line) : l->len - l->pos;
        l->pos += n + (nl ? 1 : 0);
        l->lineno++;
        l->line = line;
        l->value = NULL;
        *ret_n = n;
        return line;
}

/* TOML text is UTF-8 without control characters other than tab; NULL or why not. */
static const char *line_text_problem(const char *line, size_t n) {
        if (!toml_utf8_valid(line, n))
                return "invalid UTF-8";
        for (size_t i = 0; i < n; i++)
                if (((unsigned char) line[i] < 0x20 && line[i] != '\t') || line[i] == 0x7f)
                        return "control character in the file (only tab is allowed)";
        return NULL;
}

/* ini_reader: one physical line of the file in, one normalised line out. */
static char *loader_read_line(char *out, int size, void *userdata) {
        struct loader *l = userdata;
        const char *why;
        char *line, *p;
        size_t n;

        assert(size >= 8);
        if (l->pos >= l->len)
                return NULL;

        line = next_line(l, &n);
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
        why = line_text_problem(line, n);
        if (why)
                return reject_line(l, out, size, why);

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

/* The key's section and table entry; false (warned about if unknown) if it is not ours to apply. */
static bool lookup_key(struct loader *l, const char *section, const char *key, enum section *ret_s,
                       const struct key_def **ret_k) {
        enum section s = *section ? section_from_name(section) : SECTION_ROOT;

        if (s == SECTION_IGNORED)
                return false;
        if (s == SECTION_ROOT) {
                config_warning_at(l, l->lineno, "unknown key '%s' outside any section (ignored)", key);
                return false;
        }
        *ret_s = s;
        /* [cache], [rights], [tokens] and [leases] are keyed by paths and names, not by a key table. */
        if (s == SECTION_CACHE || s == SECTION_RIGHTS || s == SECTION_TOKENS || s == SECTION_LEASES) {
                *ret_k = NULL;
                return true;
        }
        *ret_k = config_key_lookup(s, key);
        if (!*ret_k) {
                config_warning_at(l, l->lineno, "unknown key '%s' in [%s] (ignored)", key, section_names[s]);
                return false;
        }
        return true;
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
                config_error_at(l, l->lineno, "internal error: the INI parser split this line unexpectedly");
                return 1;
        }
        key = unescape_key(name);
        if (!key) {
                l->oom = true;
                return 1;
        }
        if (!lookup_key(l, section, key, &s, &k))
                return 1;

        if (toml_value_decode(l->value, &v, &e) < 0) {
                if (e.message[0])
                        syntax_error(l, l->value, &e, key);
                else
                        l->oom = true;
                return 1;
        }
        if (s == SECTION_CACHE)
                config_cache_rule_apply(l, key, &v);
        else if (s == SECTION_RIGHTS)
                config_rights_rule_apply(l, key, &v);
        else if (s == SECTION_TOKENS)
                config_token_apply(l, key, &v);
        else if (s == SECTION_LEASES)
                config_lease_default_apply(l, key, &v);
        else
                config_key_apply(l, k, &v);
        toml_value_done(&v);
        return 1;
}

static void wipe_free(char *buf, size_t len) {
        explicit_bzero(buf, len);
        free(buf);
}

/* Doubles *buf (of which len bytes are used), wiping the old one; on failure *buf stays. */
static int buf_grow(char **buf, size_t *cap, size_t len) {
        char *nb;

        if (*cap > CONFIG_FILE_MAX)
                return -EFBIG;
        nb = malloc(*cap * 2);
        if (!nb)
                return -ENOMEM;
        memcpy(nb, *buf, len);
        wipe_free(*buf, len);
        *buf = nb;
        *cap *= 2;
        return 0;
}

/* Reads all of fd, wiping every buffer it lets go of (the file may hold secrets). */
static int read_all(int fd, size_t size_hint, char **ret, size_t *ret_len) {
        size_t cap = size_hint + 1 < 4096 ? 4096 : size_hint + 1, len = 0;
        char *buf = malloc(cap);
        int r;

        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n;

                if (len + 1 >= cap) {
                        r = buf_grow(&buf, &cap, len);
                        if (r < 0) {
                                wipe_free(buf, len);
                                return r;
                        }
                }
                n = read(fd, buf + len, cap - len - 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        wipe_free(buf, len);
                        return r;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        if (len > CONFIG_FILE_MAX) {
                wipe_free(buf, len);
                return -EFBIG;
        }
        buf[len] = 0;
        *ret = buf;
        *ret_len = len;
        return 0;
}

int config_read_file(struct loader *l, bool explicit) {
        _cleanup_close_ int fd = -1;
        struct stat st;
        int r;

        fd = open(l->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT && !explicit)
                        return 0;
                config_error_at(l, 0, "cannot open the configuration file: %s", strerror(errno));
                return -errno;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                config_error_at(l, 0, "not a regular file");
                return -EINVAL;
        }
        r = read_all(fd, (size_t) st.st_size, &l->buf, &l->len);
        if (r == -EFBIG)
                config_error_at(l, 0, "the configuration file is larger than %d bytes", CONFIG_FILE_MAX);
        else if (r < 0 && r != -ENOMEM)
                config_error_at(l, 0, "cannot read the configuration file: %s", strerror(-r));
        if (r < 0)
                return r;

        r = ini_parse_stream(loader_read_line, l, loader_handler, l);
        if (r == -2)
                l->oom = true;
        else if (r != 0)
                config_error_at(l, r > 0 ? (unsigned) r : 0, "internal error: the INI parser rejected the line");

        config_check_inline_secret_mode(l, st.st_mode);
        return 1;
}
