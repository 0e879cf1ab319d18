/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "rights"
#include "rights.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "daemon.h"
#include "local_token.h"
#include "login_shim.h"
#include "peer.h"
#include "request.h"
#include "router.h"

/* --- local tokens ------------------------------------------------------------------- */

const char *rights_token_lookup(const struct denvr_config *c, const char *token, size_t len) {
        uint8_t d[SHA256_DIGEST_SIZE];
        const char *found = NULL;

        sha256(token, len, d);
        /* Every entry is compared in full, so the time says nothing about which one is close. */
        for (size_t i = 0; i < c->n_tokens; i++)
                if (memeq_const_time(d, c->tokens[i].hash, sizeof d) && !found)
                        found = c->tokens[i].name;
        explicit_bzero(d, sizeof d);
        return found;
}

/* The credential of "ApiKey X" or "Bearer X"; NULL for other schemes. */
static const char *credential_of(const char *auth, size_t *ret_len) {
        static const char *const schemes[] = { "ApiKey", "Bearer" };
        size_t n;

        if (!auth)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(schemes); i++) {
                n = strlen(schemes[i]);
                if (strncasecmp(auth, schemes[i], n) == 0 && (auth[n] == ' ' || auth[n] == '\t')) {
                        auth += n;
                        auth += strspn(auth, " \t");
                        n = strlen(auth);
                        while (n > 0 && (auth[n - 1] == ' ' || auth[n - 1] == '\t'))
                                n--;
                        *ret_len = n;
                        return auth;
                }
        }
        return NULL;
}

int rights_identify_token(struct request *r) {
        const char *cred, *name;
        size_t n = 0;

        r->token[0] = 0;
        cred = credential_of(request_header(r, "Authorization"), &n);
        if (!cred || !local_token_is_claimed(cred, n))
                return 0;
        name = rights_token_lookup(r->daemon->config, cred, n);
        if (!name)
                return -EPERM;
        snprintf(r->token, sizeof r->token, "%s", name);
        return 1;
}

/* --- the caller --------------------------------------------------------------------- */

void rights_caller_of(struct request *r, struct rights_caller *ret) {
        struct peer *p = &r->conn_ctx->peer;

        *ret = (struct rights_caller) {
                .transport = p->is_unix ? "unix" : "tcp",
                .token = r->token[0] ? r->token : NULL,
        };
        if (p->identified) {
                /*
                 * The kernel named the peer (SO_PEERCRED on the socket, the
                 * owner of the client's socket over TCP; peer.c): its uid, and
                 * its groups (a TCP peer's from the user database).
                 */
                ret->uid_known = true;
                ret->uid = p->uid;
                ret->gid_known = p->gid_known;
                ret->gid = p->gid;
                ret->pid = p->pid;
                ret->groups = p->groups;
                ret->n_groups = p->groups_known ? p->n_groups : 0;
        }
}

static bool in_groups(const struct rights_caller *who, gid_t g) {
        if (who->gid_known && who->gid == g)
                return true;
        for (size_t i = 0; i < who->n_groups; i++)
                if (who->groups[i] == g)
                        return true;
        return false;
}

const struct rights_rule *rights_rule_for(const struct denvr_config *c, const struct rights_caller *who) {
        assert(c && who);
        if (who->token) {
                for (size_t i = 0; i < c->n_rights; i++)
                        if (c->rights[i].subject == RIGHTS_SUBJECT_TOKEN && strcmp(c->rights[i].token, who->token) == 0)
                                return &c->rights[i];
                return NULL;   /* config_rights_check() makes sure every token has a rule */
        }
        if (who->uid_known)
                for (size_t i = 0; i < c->n_rights; i++)
                        if (c->rights[i].subject == RIGHTS_SUBJECT_UID && c->rights[i].id == who->uid)
                                return &c->rights[i];
        for (size_t i = 0; i < c->n_rights; i++)
                if (c->rights[i].subject == RIGHTS_SUBJECT_GROUP && in_groups(who, c->rights[i].id))
                        return &c->rights[i];
        return NULL;
}

bool rights_peer_has_rule(const struct denvr_config *c, const struct peer *p) {
        struct rights_caller who = { 0 };

        assert(c && p);
        if (!p->identified)
                return false;
        who.uid_known = true;
        who.gid_known = p->gid_known;
        who.uid = p->uid;
        who.gid = p->gid;
        who.groups = p->groups;
        who.n_groups = p->groups_known ? p->n_groups : 0;
        return rights_rule_for(c, &who) != NULL;
}

void rights_caller_format(const struct rights_caller *who, char *buf, size_t size) {
        int n = 0;

        if (who->uid_known)
                n = snprintf(buf, size, "uid=%u", (unsigned) who->uid);
        else
                n = snprintf(buf, size, "uid=?");
        if (n >= 0 && (size_t) n < size && who->pid > 0)
                n += snprintf(buf + n, size - (size_t) n, " pid=%d", (int) who->pid);
        if (n >= 0 && (size_t) n < size && who->token)
                (void) snprintf(buf + n, size - (size_t) n, " token=%s", who->token);
}

/* --- the decision ------------------------------------------------------------------- */

static bool path_is_open_to_off(const char *path) {
        return strcmp(path, "/_denvrd/healthz") == 0 || strcmp(path, "/_denvrd/readyz") == 0 ||
               strcmp(path, "/_denvrd/whoami") == 0;
}

_printf_(2, 3)
static void explain(struct rights_answer *ans, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(ans->message, sizeof ans->message, fmt, ap);
        va_end(ap);
}

static void explain_denial(struct rights_answer *ans, const char *method, const char *path) {
        const struct rights_rule *rule = ans->rule;
        const char *name = ans->op ? rights_operation_name(ans->op) : NULL;

        switch (rule->kind) {
        case RIGHTS_OFF:
                explain(ans, "[rights] \"%s\" (line %u) is \"off\": %s %.200s refused; change that rule "
                        "to allow it", rule->key, rule->line, method, path);
                return;
        case RIGHTS_READ_ONLY:
                explain(ans, "[rights] \"%s\" (line %u) is \"read-only\": %s %.200s is not allowed, only "
                        "GET and HEAD are; set that rule to \"full\"%s%s%s", rule->key, rule->line, method,
                        path, name ? " or to a list holding \"" : "", name ? name : "", name ? "\"" : "");
                return;
        case RIGHTS_FULL:
                break;
        case RIGHTS_LIST:
                if (!ans->op && rights_method_is_read(method))
                        explain(ans, "%s %.200s is not an operation in denvrd's table, so it counts as a "
                                "read, which [rights] \"%s\" (line %u) does not allow: add \"read-only\" "
                                "to that rule's list to allow reads", method, path, rule->key, rule->line);
                else if (!ans->op)
                        explain(ans, "%s %.200s is not an operation in denvrd's table, so it counts as a "
                                "write, which only \"full\" allows; [rights] \"%s\" (line %u) is a list",
                                method, path, rule->key, rule->line);
                else if (ans->entry)
                        explain(ans, "[rights] \"%s\" (line %u) allows %s only as \"%s\", and this request "
                                "does not meet that (the parameter as sent, once, in the query or the JSON "
                                "body); add \"%s\" to that rule's list to allow it with any parameters",
                                rule->key, rule->line, name, ans->entry->text, name);
                else
                        explain(ans, "[rights] \"%s\" (line %u) does not allow %s: add \"%s\" to that "
                                "rule's list to allow it", rule->key, rule->line, name, name);
                return;
        }
        assert_not_reached();
}

void rights_decide(const struct denvr_config *c, const struct rights_caller *who, const char *method,
                   const char *path, rights_param_fn get, void *userdata, struct rights_answer *ans) {
        assert(c && who && method && path && ans);

        *ans = (struct rights_answer) { .verdict = RIGHTS_ALLOW };
        ans->rule = rights_rule_for(c, who);
        if (!ans->rule)
                return;

        /* denvrd's own endpoints and the login shim change nothing upstream: "off" alone shuts them. */
        if (path_has_prefix(path, "/_denvrd/") || login_shim_matches(path)) {
                if (ans->rule->kind == RIGHTS_OFF && !path_is_open_to_off(path)) {
                        ans->verdict = RIGHTS_DENY;
                        explain_denial(ans, method, path);
                }
                return;
        }
        ans->op = optable_lookup(method, path);
        ans->verdict = rights_rule_allows(ans->rule, method, ans->op, get, userdata, &ans->entry);
        if (ans->verdict == RIGHTS_DENY)
                explain_denial(ans, method, path);
}

/* --- parameters for conditions ------------------------------------------------------ */

static bool name_eq(const char *a, size_t an, const char *b) {
        return an == strlen(b) && strncasecmp(a, b, an) == 0;
}

static int hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        c = (char) (c | 0x20);
        return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n) ('+' is a space, as ASP.NET binds a query); NULL on bad encoding or OOM. */
static char *query_decode(const char *s, size_t n, size_t *ret_len) {
        char *out = malloc(n + 1);
        size_t w = 0;

        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] != '%') {
                        out[w++] = s[i] == '+' ? ' ' : s[i];
                        continue;
                }
                if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) {
                        free(out);
                        return NULL;
                }
                out[w++] = (char) (hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
                i += 2;
        }
        out[w] = 0;
        *ret_len = w;
        return out;
}

static int query_param(struct rights_params *p, const char *name, const char **ret, size_t *ret_len) {
        const char *q = p->r->query;
        int found = 0;

        while (q && *q) {
                size_t n = strcspn(q, "&"), kn = strcspn(q, "=");
                _cleanup_free_ char *key = NULL;
                size_t klen;

                if (kn > n)
                        kn = n;
                key = query_decode(q, kn, &klen);
                if (!key)
                        return -EINVAL;
                if (name_eq(key, klen, name)) {
                        if (found++)
                                return -EINVAL;   /* given twice: which one would upstream bind? */
                        free(p->scratch);
                        p->scratch = kn < n ? query_decode(q + kn + 1, n - kn - 1, ret_len)
                                            : query_decode("", 0, ret_len);
                        if (!p->scratch)
                                return -EINVAL;
                        *ret = p->scratch;
                }
                q += n;
                if (*q == '&')
                        q++;
        }
        return found;
}

static int body_param(struct rights_params *p, const char *name, const char **ret, size_t *ret_len) {
        json_t *body, *v, *hit = NULL;
        const char *k;

        if (!p->body_parsed) {
                p->body_parsed = true;
                p->body = p->r->body_len > 0
                        ? json_loadb(p->r->body, p->r->body_len, JSON_REJECT_DUPLICATES, NULL) : NULL;
        }
        body = p->body;
        if (!json_is_object(body))
                return p->r->body_len > 0 ? -EINVAL : 0;
        json_object_foreach(body, k, v)
                if (strcasecmp(k, name) == 0) {
                        if (hit)
                                return -EINVAL;   /* "id" and "Id": ASP.NET's binder sees one */
                        hit = v;
                }
        if (!hit)
                return 0;
        if (!json_is_string(hit))
                return -EINVAL;
        *ret = json_string_value(hit);
        *ret_len = json_string_length(hit);
        return 1;
}

int rights_request_param(void *userdata, const struct operation *op, const char *name,
                         const char **ret, size_t *ret_len) {
        struct rights_params *p = userdata;

        for (size_t i = 0; i < op->n_params; i++)
                if (strcasecmp(op->params[i].name, name) == 0)
                        return op->params[i].location == OP_PARAM_QUERY ? query_param(p, name, ret, ret_len)
                                                                        : body_param(p, name, ret, ret_len);
        return 0;
}

void rights_params_done(struct rights_params *p) {
        json_decref(p->body);
        free(p->scratch);
        *p = (struct rights_params) { 0 };
}
