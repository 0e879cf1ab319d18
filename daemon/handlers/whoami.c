/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "whoami"
#include "daemon/handlers/whoami.h"

#include <grp.h>
#include <jansson.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/base/query.h"
#include "common/config/config.h"
#include "common/http/http_method.h"
#include "daemon/core/daemon.h"
#include "daemon/http/listener.h"
#include "daemon/http/request.h"
#include "daemon/policy/rights.h"

#define OPERATION_NAME_MAX 200

static json_t *user_name(uid_t uid) {
        struct passwd *pw = getpwuid(uid);
        return pw ? json_string(pw->pw_name) : json_null();
}

static json_t *group_json(gid_t gid) {
        struct group *g = getgrgid(gid);
        return json_pack("{s:I, s:o}", "gid", (json_int_t) gid, "name", g ? json_string(g->gr_name) : json_null());
}

static json_t *caller_json(const struct rights_caller *who) {
        json_t *groups = json_array();

        for (size_t i = 0; groups && i < who->n_groups; i++)
                json_array_append_new(groups, group_json(who->groups[i]));
        return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o}",
                         "transport", who->transport,
                         "uid", who->uid_known ? json_integer(who->uid) : json_null(),
                         "user", who->uid_known ? user_name(who->uid) : json_null(),
                         "group", who->gid_known ? group_json(who->gid) : json_null(),
                         "groups", groups ? groups : json_null(),
                         "pid", who->pid > 0 ? json_integer(who->pid) : json_null(),
                         "token", who->token ? json_string(who->token) : json_null());
}

static enum access_level listener_level(const struct request *r) {
        const struct denvr_config *c = r->daemon->config;
        return r->listener->kind == LISTENER_UNIX ? c->socket_access : c->tcp_access;
}

static bool under_ceiling(enum access_level level, const char *method) {
        return level == ACCESS_FULL || (level == ACCESS_READ_ONLY && http_method_is_safe(method));
}

static json_t *rule_json(const struct rights_rule *rule) {
        json_t *list;

        if (!rule)
                return json_null();
        if (rule->kind != RIGHTS_LIST)
                list = json_string(rights_kind_to_string(rule->kind));
        else {
                list = json_array();
                for (size_t i = 0; list && i < rule->n_entries; i++)
                        json_array_append_new(list, json_string(rule->entries[i].text));
        }
        return json_pack("{s:s, s:i, s:o*}", "subject", rule->key, "line", (int) rule->line, "rights", list);
}

/* The table's operations the caller may call: plain names, or the conditional entry that allows one. */
static json_t *allowed_json(const struct request *r, const struct rights_caller *who, enum access_level level) {
        json_t *a = json_array();

        for (size_t i = 0; a && i < optable_n_operations; i++) {
                const struct operation *op = &optable_operations[i];
                struct rights_answer ans;

                if (strncmp(op->path, "/api/TokenAuth/", 15) == 0 || !under_ceiling(level, op->method))
                        continue;
                rights_decide(r->daemon->config, who, op->method, op->path, NULL, NULL, &ans);
                if (ans.verdict == RIGHTS_ALLOW)
                        json_array_append_new(a, json_string(rights_operation_name(op)));
                else if (ans.verdict == RIGHTS_NEED_PARAMS)
                        json_array_append_new(a, json_string(ans.entry->text));
        }
        return a;
}

/* Whether a request outside the table with this method would pass. */
static bool outside_allowed(const struct request *r, const struct rights_caller *who, enum access_level level,
                            const char *method) {
        struct rights_answer ans;

        if (!under_ceiling(level, method))
                return false;
        rights_decide(r->daemon->config, who, method, "/api/v1/denvrd-not-in-table", NULL, NULL, &ans);
        return ans.verdict == RIGHTS_ALLOW;
}

/* The value of ?operation=, decoded by the one query reader. */
static bool operation_param(const char *q, char *out, size_t size) {
        _cleanup_free_ char *v = NULL;
        size_t len = 0;

        if (!q || query_get(q, strlen(q), "operation", &v, &len) <= 0 || len >= size || strlen(v) != len)
                return false;
        memcpy(out, v, len + 1);
        return true;
}

static json_t *can_i_json(const struct request *r, const struct rights_caller *who, enum access_level level,
                          const struct operation *op) {
        const char *key = r->listener->kind == LISTENER_UNIX ? "socket_access" : "tcp_access";
        struct rights_answer ans;
        json_t *allowed;
        char reason[700];

        if (!under_ceiling(level, op->method)) {
                snprintf(reason, sizeof reason, "this listener is %s (%s): set [daemon] %s = \"full\" to allow it",
                         access_level_to_string(level), key, key);
                return json_pack("{s:s, s:s, s:b, s:s}", "operation", rights_operation_name(op),
                                 "method", op->method, "allowed", 0, "reason", reason);
        }
        rights_decide(r->daemon->config, who, op->method, op->path, NULL, NULL, &ans);
        allowed = ans.verdict == RIGHTS_ALLOW ? json_true() : ans.verdict == RIGHTS_DENY ? json_false()
                                                                                        : json_string("conditional");
        return json_pack("{s:s, s:s, s:o, s:s?, s:s?}", "operation", rights_operation_name(op),
                         "method", op->method, "allowed", allowed,
                         "only_as", ans.verdict == RIGHTS_NEED_PARAMS ? ans.entry->text : NULL,
                         "reason", ans.verdict == RIGHTS_DENY ? ans.message : NULL);
}

static const struct operation *operation_by_name(const char *name) {
        for (size_t i = 0; i < optable_n_operations; i++)
                if (strcasecmp(rights_operation_name(&optable_operations[i]), name) == 0)
                        return &optable_operations[i];
        return NULL;
}

static void reply(struct request *r, json_t *j) {
        char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

        json_decref(j);
        if (!s) {
                request_reply_error(r, 503, NULL, "out of memory");
                return;
        }
        request_reply_json(r, 200, s);
        (void) request_reply_header(r, "Cache-Control", "no-store");
}

void whoami_handle(struct request *r) {
        enum access_level level = listener_level(r);
        const struct rights_rule *rule;
        const struct operation *op = NULL;
        struct rights_caller who;
        char name[OPERATION_NAME_MAX + 1];
        bool ask;
        json_t *j;

        rights_caller_of(r, &who);
        ask = operation_param(r->query, name, sizeof name);
        if (ask) {
                op = operation_by_name(name);
                if (!op) {
                        request_reply_error(r, 400, NULL, "no operation \"%.100s\" in denvrd's table (names are "
                                            "paths after /api/v1/, such as servers/virtual/StopServer)", name);
                        return;
                }
        }
        rule = config_rights_rule_for(r->daemon->config, &who);
        j = json_pack("{s:o, s:{s:s, s:s, s:s}, s:o, s:s, s:o, s:b, s:b}",
                      "caller", caller_json(&who),
                      "listener", "kind", r->listener->kind == LISTENER_UNIX ? "unix" : "tcp",
                      "address", r->listener->address,
                      "access", access_level_to_string(level),
                      "rule", rule_json(rule),
                      "decided_by", rule ? "the [rights] rule above"
                                         : "no rule in [rights] names this caller: full, as [daemon] lets it in",
                      "allowed", allowed_json(r, &who, level),
                      "reads_outside_table", outside_allowed(r, &who, level, "GET"),
                      "writes_outside_table", outside_allowed(r, &who, level, "POST"));
        if (j && op && json_object_set_new(j, "can_i", can_i_json(r, &who, level, op)) < 0) {
                json_decref(j);
                j = NULL;
        }
        reply(r, j);
}
