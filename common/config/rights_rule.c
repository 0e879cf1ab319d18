/* SPDX-License-Identifier: MIT */
#include "common/config/rights_rule.h"

#include <assert.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/enum_names.h"
#include "common/base/cleanup.h"
#include "common/config/local_token.h"
#include "common/config/toml_value.h"
#include "common/http/http_method.h"

#define PATTERN_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-./*"
#define PARAM_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"

static inline char ascii_lower(char c) {
        return c >= 'A' && c <= 'Z' ? (char) (c + ('a' - 'A')) : c;
}

static bool ascii_caseeqn(const char *a, const char *b, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (ascii_lower(a[i]) != ascii_lower(b[i]))
                        return false;
        return true;
}

bool rights_rule_same_subject(const struct rights_rule *a, const struct rights_rule *b) {
        if (a->subject != b->subject)
                return false;
        return a->subject == RIGHTS_SUBJECT_TOKEN ? a->token && b->token && strcmp(a->token, b->token) == 0
                                                  : a->id == b->id;
}

const char *rights_kind_to_string(enum rights_kind k) {
        static const char *const names[] = {
                [RIGHTS_OFF] = "off",
                [RIGHTS_READ_ONLY] = "read-only",
                [RIGHTS_FULL] = "full",
                [RIGHTS_LIST] = "list",
        };

        return ENUM_NAME(names, k);
}

const char *rights_subject_to_string(enum rights_subject s) {
        static const char *const names[] = {
                [RIGHTS_SUBJECT_TOKEN] = "token",
                [RIGHTS_SUBJECT_UID] = "uid",
                [RIGHTS_SUBJECT_GROUP] = "group",
        };

        return ENUM_NAME(names, s);
}

const char *rights_operation_name(const struct operation *op) {
        assert(op);
        if (strncmp(op->path, "/api/v1/", 8) == 0)
                return op->path + 8;
        if (strncmp(op->path, "/api/", 5) == 0)
                return op->path + 5;
        return op->path;
}

bool rights_pattern_match(const char *p, const char *s) {
        /* Iterative glob with one backtrack point: linear enough for names this short. */
        const char *star = NULL, *resume = NULL;

        while (*s) {
                if (*p == '*') {
                        star = p++;
                        resume = s;
                } else if (*p && ascii_lower(*p) == ascii_lower(*s)) {
                        p++;
                        s++;
                } else if (star) {
                        p = star + 1;
                        s = ++resume;
                } else
                        return false;
        }
        while (*p == '*')
                p++;
        return *p == 0;
}

/* A uid or gid from digits; false if s is not a number below (uint32_t) -1. */
static bool parse_id(const char *s, uint32_t *ret) {
        size_t n = strlen(s);
        unsigned long long x;

        if (n == 0 || n > 10 || strspn(s, "0123456789") != n)
                return false;
        x = strtoull(s, NULL, 10);
        if (x >= UINT32_MAX)
                return false;
        *ret = (uint32_t) x;
        return true;
}

/* A "uid:" or "group:" subject: a number, or a name the user database knows. */
static int subject_id(const char *name, enum rights_subject subject, struct rights_rule *r, char *buf,
                      size_t bufsz, const char **why) {
        struct passwd *pw = NULL;
        struct group *g = NULL;

        r->subject = subject;
        if (parse_id(name, &r->id))
                return 0;
        if (*name && subject == RIGHTS_SUBJECT_UID)
                pw = getpwnam(name);
        else if (*name)
                g = getgrnam(name);
        if (!pw && !g) {
                snprintf(buf, bufsz, "no such %s \"%.64s\"", subject == RIGHTS_SUBJECT_UID ? "user" : "group", name);
                *why = buf;
                return -EINVAL;
        }
        r->id = pw ? pw->pw_uid : g->gr_gid;
        return 0;
}

int rights_rule_parse_subject(const char *key, struct rights_rule *r, char *buf, size_t bufsz,
                              const char **why) {
        const char *name;

        assert(key && r && why);
        if (strncmp(key, "token:", 6) == 0) {
                name = key + 6;
                if (!local_token_name_valid(name)) {
                        *why = "a token name is 1 to 64 characters from A-Z a-z 0-9 _ -";
                        return -EINVAL;
                }
                r->subject = RIGHTS_SUBJECT_TOKEN;
                r->token = strdup(name);
                return r->token ? 0 : -ENOMEM;
        }
        if (strncmp(key, "uid:", 4) == 0)
                return subject_id(key + 4, RIGHTS_SUBJECT_UID, r, buf, bufsz, why);
        if (strncmp(key, "group:", 6) == 0)
                return subject_id(key + 6, RIGHTS_SUBJECT_GROUP, r, buf, bufsz, why);
        *why = "keys in [rights] are \"uid:USER\", \"group:GROUP\" or \"token:NAME\" (quoted)";
        return -EINVAL;
}

/* Whether some operation in the table matches pattern (and has every parameter named by e's conditions). */
static bool pattern_matches_some(const struct rights_entry *e, const char **ret_missing) {
        bool any = false;

        *ret_missing = NULL;
        for (size_t i = 0; i < optable_n_operations; i++) {
                const struct operation *op = &optable_operations[i];
                bool all = true;

                if (!rights_pattern_match(e->pattern, rights_operation_name(op)))
                        continue;
                for (size_t c = 0; c < e->n_conds && all; c++) {
                        bool found = false;

                        for (size_t k = 0; k < op->n_params && !found; k++)
                                found = strlen(op->params[k].name) == strlen(e->conds[c].name) &&
                                        ascii_caseeqn(op->params[k].name, e->conds[c].name,
                                                      strlen(e->conds[c].name));
                        if (!found) {
                                *ret_missing = e->conds[c].name;
                                all = false;
                        }
                }
                if (all)
                        any = true;
        }
        return any;
}

/* "name=value&name=value" into e->conds. */
static int parse_conds(char *q, struct rights_entry *e, char *buf, size_t bufsz) {
        for (char *item = q; item;) {
                char *amp = strchr(item, '&'), *eq;
                struct rights_cond *n;

                if (amp)
                        *amp = 0;
                eq = strchr(item, '=');
                if (!eq || eq == item || strspn(item, PARAM_CHARS) != (size_t) (eq - item) || !eq[1]) {
                        snprintf(buf, bufsz, "\"%.100s\": conditions are written ?param=value&param=value",
                                 e->text);
                        return -EINVAL;
                }
                *eq = 0;
                n = reallocarray(e->conds, e->n_conds + 1, sizeof *n);
                if (!n)
                        return -ENOMEM;
                e->conds = n;
                n[e->n_conds] = (struct rights_cond) { strdup(item), strdup(eq + 1) };
                if (!n[e->n_conds].name || !n[e->n_conds].value) {
                        free(n[e->n_conds].name);
                        free(n[e->n_conds].value);
                        return -ENOMEM;
                }
                e->n_conds++;
                item = amp ? amp + 1 : NULL;
        }
        return 0;
}

static void entry_done(struct rights_entry *e) {
        free(e->text);
        free(e->pattern);
        for (size_t i = 0; i < e->n_conds; i++) {
                free(e->conds[i].name);
                free(e->conds[i].value);
        }
        free(e->conds);
        *e = (struct rights_entry) { 0 };
}

static int parse_entry(const char *s, struct rights_entry *e, char *buf, size_t bufsz) {
        _cleanup_free_ char *copy = strdup(s);
        const char *missing;
        char *q;
        int r;

        *e = (struct rights_entry) { 0 };
        e->text = strdup(s);
        if (!copy || !e->text)
                return -ENOMEM;
        q = strchr(copy, '?');
        if (q)
                *q++ = 0;
        if (!*copy || strspn(copy, PATTERN_CHARS) != strlen(copy) || copy[0] == '/') {
                snprintf(buf, bufsz, "\"%.100s\" is not an operation name such as "
                         "\"servers/virtual/StopServer\" or \"servers/virtual/Get*\"", s);
                return -EINVAL;
        }
        e->pattern = strdup(copy);
        if (!e->pattern)
                return -ENOMEM;
        if (q) {
                r = parse_conds(q, e, buf, bufsz);
                if (r < 0)
                        return r;
        }
        if (!pattern_matches_some(e, &missing)) {
                if (missing)
                        snprintf(buf, bufsz, "\"%.100s\": no operation matching \"%.100s\" has a "
                                 "parameter \"%.64s\"", s, e->pattern, missing);
                else
                        snprintf(buf, bufsz, "\"%.100s\" names no operation in denvrd's operation table "
                                 "(names are paths after /api/v1/, such as \"servers/virtual/StopServer\")", s);
                return -EINVAL;
        }
        return 0;
}

static int keyword(const char *s) {
        if (strcmp(s, "full") == 0)
                return RIGHTS_FULL;
        if (strcmp(s, "read-only") == 0)
                return RIGHTS_READ_ONLY;
        if (strcmp(s, "off") == 0)
                return RIGHTS_OFF;
        return -1;
}

static int parse_list(const struct toml_value *v, struct rights_rule *r, char *buf, size_t bufsz) {
        r->kind = RIGHTS_LIST;
        if (v->a.n == 0) {
                snprintf(buf, bufsz, "an empty list allows nothing: write \"off\"");
                return -EINVAL;
        }
        r->entries = calloc(v->a.n, sizeof *r->entries);
        if (!r->entries)
                return -ENOMEM;
        for (size_t i = 0; i < v->a.n; i++) {
                const struct toml_value *it = &v->a.items[i];
                int k, q;

                if (it->type != TOML_STRING) {
                        snprintf(buf, bufsz, "list entries must be strings (operation names)");
                        return -EINVAL;
                }
                k = keyword(it->s.str);
                if (k == RIGHTS_READ_ONLY) {
                        /* Kept as an entry without pattern, so the list shows as written. */
                        r->reads = true;
                        r->entries[r->n_entries].text = strdup(it->s.str);
                        if (!r->entries[r->n_entries++].text)
                                return -ENOMEM;
                        continue;
                }
                if (k >= 0) {
                        snprintf(buf, bufsz, "\"%s\" stands alone: write = \"%s\" instead of a list",
                                 it->s.str, it->s.str);
                        return -EINVAL;
                }
                q = parse_entry(it->s.str, &r->entries[r->n_entries], buf, bufsz);
                r->n_entries++;   /* so rights_rule_done() frees a half-parsed entry too */
                if (q < 0)
                        return q;
        }
        return 0;
}

int rights_rule_parse_value(const struct toml_value *v, struct rights_rule *r, char *buf, size_t bufsz) {
        int k;

        assert(v && r && buf);
        if (v->type == TOML_ARRAY)
                return parse_list(v, r, buf, bufsz);
        if (v->type == TOML_STRING && (k = keyword(v->s.str)) >= 0) {
                r->kind = (enum rights_kind) k;
                return 0;
        }
        snprintf(buf, bufsz, "must be \"full\", \"read-only\", \"off\" or a list of operations such as "
                 "[\"servers/virtual/Get*\", \"servers/virtual/StopServer\"]");
        return -EINVAL;
}

void rights_rule_done(struct rights_rule *r) {
        if (!r)
                return;
        free(r->key);
        free(r->token);
        for (size_t i = 0; i < r->n_entries; i++)
                entry_done(&r->entries[i]);
        free(r->entries);
        *r = (struct rights_rule) { 0 };
}

/* 1: every condition holds; 0: one does not (absent, different, ambiguous); <0: -ENOMEM. */
static int conds_hold(const struct rights_entry *e, const struct operation *op, rights_param_fn get,
                      void *userdata) {
        for (size_t i = 0; i < e->n_conds; i++) {
                const char *v;
                size_t n;
                int r = get(userdata, op, e->conds[i].name, &v, &n);

                if (r == -ENOMEM)
                        return r;
                if (r <= 0 || n != strlen(e->conds[i].value) || memcmp(v, e->conds[i].value, n) != 0)
                        return 0;
        }
        return 1;
}

enum rights_verdict rights_rule_allows(const struct rights_rule *rule, const char *method,
                                       const struct operation *op, rights_param_fn get,
                                       void *userdata, const struct rights_entry **ret_entry) {
        const struct rights_entry *conditional = NULL;

        assert(rule && method && ret_entry);
        *ret_entry = NULL;
        switch (rule->kind) {
        case RIGHTS_OFF:
                return RIGHTS_DENY;
        case RIGHTS_FULL:
                return RIGHTS_ALLOW;
        case RIGHTS_READ_ONLY:
                return http_method_is_safe(method) ? RIGHTS_ALLOW : RIGHTS_DENY;
        case RIGHTS_LIST:
                break;
        }
        if (rule->reads && http_method_is_safe(method))
                return RIGHTS_ALLOW;
        if (!op)
                return RIGHTS_DENY;
        for (size_t i = 0; i < rule->n_entries; i++) {
                const struct rights_entry *e = &rule->entries[i];

                if (!e->pattern || !rights_pattern_match(e->pattern, rights_operation_name(op)))
                        continue;
                if (e->n_conds == 0) {
                        *ret_entry = e;
                        return RIGHTS_ALLOW;
                }
                if (!conditional)
                        conditional = e;
                if (get && conds_hold(e, op, get, userdata) > 0) {
                        *ret_entry = e;
                        return RIGHTS_ALLOW;
                }
        }
        *ret_entry = conditional;
        return conditional && !get ? RIGHTS_NEED_PARAMS : RIGHTS_DENY;
}
