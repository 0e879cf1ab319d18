/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "rights"
#include "daemon/policy/rights.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/api/api_read.h"
#include "common/config/config.h"
#include "common/http/http_method.h"
#include "common/config/local_token.h"
#include "daemon/core/daemon.h"
#include "daemon/core/peer.h"
#include "daemon/http/request.h"
#include "daemon/http/route.h"
#include "daemon/policy/open_endpoints.h"

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
                if (!ans->op && http_method_is_safe(method))
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
        ans->rule = config_rights_rule_for(c, who);
        if (!ans->rule)
                return;

        /* denvrd's own endpoints and the login shim change nothing upstream: "off" alone shuts them. */
        if (path_has_prefix(path, "/_denvrd/") || route_is_login(path)) {
                if (ans->rule->kind == RIGHTS_OFF && !open_endpoint(path, OPEN_RIGHTS_OFF)) {
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

int rights_request_param(void *userdata, const struct operation *op, const char *name,
                         const char **ret, size_t *ret_len) {
        const struct api_read *a = userdata;
        const struct api_param *p;

        assert(a && op && name);
        for (size_t i = 0; i < op->n_params; i++) {
                if (strcasecmp(op->params[i].name, name) != 0)
                        continue;
                p = api_read_get(a, op->params[i].location, name);
                if (!p)
                        return 0;
                if (!p->value)
                        return -EINVAL;   /* a body member that is not a string */
                *ret = p->value;
                *ret_len = p->value_len;
                return 1;
        }
        return 0;
}
