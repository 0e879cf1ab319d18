/* SPDX-License-Identifier: MIT */
#include "daemon/handlers/lease_policy.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/api/optable.h"
#include "common/config/config.h"
#include "daemon/core/daemon.h"
#include "daemon/http/request.h"
#include "daemon/jobs/lease_keeper.h"
#include "daemon/policy/rights.h"

static char *user_name(uid_t uid) {
        struct passwd pw, *found = NULL;
        char buf[1024];

        if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) != 0 || !found)
                return NULL;
        return strdup(found->pw_name);
}

int lease_policy_set_by(struct request *r, struct lease *l) {
        struct rights_caller who;

        rights_caller_of(r, &who);
        l->uid_known = who.uid_known;
        l->uid = who.uid_known ? who.uid : 0;
        l->user = who.uid_known ? user_name(who.uid) : NULL;
        if (who.token && !(l->token = strdup(who.token)))
                return -ENOMEM;
        return 0;
}

bool lease_policy_visible(struct request *r, const struct lease *l) {
        struct rights_caller who;
        const struct rights_rule *rule;

        rights_caller_of(r, &who);
        rule = r->daemon->config->n_rights ? config_rights_rule_for(r->daemon->config, &who) : NULL;
        if (!rule || rule->kind == RIGHTS_FULL)
                return true;
        if (who.token)
                return l->token && strcmp(l->token, who.token) == 0;
        return who.uid_known && l->uid_known && l->uid == who.uid && !l->token;
}

const struct lease_default *lease_policy_default(struct request *r) {
        struct rights_caller who;

        if (r->daemon->config->n_leases == 0)
                return NULL;
        rights_caller_of(r, &who);
        return config_lease_default_for(r->daemon->config, &who);
}

int lease_policy_limit(struct request *r, int64_t seconds, char *msg, size_t size) {
        const struct lease_default *d = lease_policy_default(r);

        if (!d || seconds <= d->seconds)
                return 0;
        snprintf(msg, size, "[leases] \"%s\" (line %u) allows this caller leases of at most %llds, and this "
                 "one is %llds: ask for a shorter one, or raise that setting", d->key, d->line,
                 (long long) d->seconds, (long long) seconds);
        return -EPERM;
}

int lease_policy_may_remove(struct request *r, char *msg, size_t size) {
        const struct lease_default *d = lease_policy_default(r);

        if (!d)
                return 0;
        snprintf(msg, size, "[leases] \"%s\" (line %u) gives every machine this caller starts a lease: it "
                 "may shorten or extend one (PUT, at most %llds), not remove it", d->key, d->line,
                 (long long) d->seconds);
        return -EPERM;
}

const char *lease_policy_action_path(enum lease_service s, enum lease_action a, char *buf, size_t size,
                                     const char *api) {
        static const char *const ops[_LEASE_SERVICE_MAX][_LEASE_ACTION_MAX] = {
                [LEASE_SERVERS_VIRTUAL] = { "StopServer", "DestroyServer" },
                [LEASE_SERVERS_APPLICATIONS] = { "StopApplication", "DestroyApplication" },
        };

        snprintf(buf, size, "/api/%s/%s/%s", api, lease_service_to_string(s), ops[s][a]);
        return buf;
}

/* The lease's machine as the parameters of its action (rights_param_fn). */
static int lease_param(void *userdata, const struct operation *op, const char *name, const char **ret,
                       size_t *ret_len) {
        const struct lease *l = userdata;
        const char *v = strcasecmp(name, "id") == 0 ? l->id
                      : strcasecmp(name, "cluster") == 0 ? l->cluster
                      : strcasecmp(name, "namespace") == 0 ? l->namespace : NULL;

        if (!v)
                return 0;
        *ret = v;
        *ret_len = strlen(v);
        return 1;
}

int lease_policy_rights(struct request *r, const struct lease *l, char *msg, size_t size) {
        const struct denvr_config *c = r->daemon->config;
        const struct operation *op;
        struct rights_caller who;
        struct rights_answer ans;
        char path[128];

        if (c->n_rights == 0)
                return 0;
        lease_policy_action_path(l->service, l->action, path, sizeof path, c->api);
        op = optable_lookup(l->action == LEASE_STOP ? "POST" : "DELETE", path);
        rights_caller_of(r, &who);
        rights_decide(c, &who, op ? op->method : "POST", path, lease_param, (void *) l, &ans);
        if (ans.verdict != RIGHTS_DENY)
                return 0;
        snprintf(msg, size, "a lease that will %s this machine needs the right to %s it: %s",
                 lease_action_to_string(l->action), lease_action_to_string(l->action), ans.message);
        return -EPERM;
}

int lease_policy_replace(struct request *r, const struct lease *l, char *msg, size_t size) {
        const struct lease *old = lease_keeper_find(r->daemon->leases, l->service, l->cluster, l->id);
        char why[512];

        /* One done or failed is history: it will never be acted on, so replacing it undoes nothing. */
        if (!old || old->state == LEASE_DONE || old->state == LEASE_FAILED)
                return 0;
        /* Not the caller's to see is not the caller's to replace, as it is not its to remove. */
        if (!lease_policy_visible(r, old)) {
                snprintf(msg, size, "this machine already has a lease, set by another caller (uid %u%s%s): only "
                         "that caller, or one with full rights, may replace it", old->uid_known ? old->uid : 0,
                         old->token ? ", token " : "", old->token ? old->token : "");
                return -EPERM;
        }
        if (lease_policy_rights(r, old, why, sizeof why) == 0)
                return 0;
        snprintf(msg, size, "this machine already has a lease that will %s it, and replacing it needs the "
                 "right to that too: %s", lease_action_to_string(old->action), why);
        return -EPERM;
}
