/* SPDX-License-Identifier: MIT */
/*
 * The [leases] section of denvr.toml: for a subject as in [rights] ("uid:NAME",
 * "group:NAME", "token:NAME") or "*", the lease every virtual server or
 * application it creates or starts gets: "DURATION ACTION" ("8h stop", "2d
 * destroy"; ACTION stop when left out).  Such a caller may ask for a shorter
 * lease, never a longer one or none.
 */
#define LOG_MODULE "config"
#include "common/config/config-internal.h"

#include <assert.h>
#include <ctype.h>

#include "common/api/lease.h"
#include "common/config/rights_rule.h"
#include "common/config/toml_value.h"

void config_leases_free(struct denvr_config *c) {
        for (size_t i = 0; i < c->n_leases; i++) {
                free(c->leases[i].key);
                rights_rule_done(&c->leases[i].subject);
        }
        free(c->leases);
        c->leases = NULL;
        c->n_leases = 0;
}

/* "DURATION [ACTION]": 0, or -EINVAL with *why. */
static int parse_value(const char *s, struct lease_default *d, const char **why) {
        _cleanup_free_ char *copy = strdup(s);
        char *sp, *action;
        int64_t secs;
        int a = 0;

        if (!copy) {
                *why = "out of memory";
                return -ENOMEM;
        }
        sp = strpbrk(copy, " \t");
        action = NULL;
        if (sp) {
                *sp = 0;
                action = sp + 1;
                while (*action == ' ' || *action == '\t')
                        action++;
        }
        if (lease_duration_parse(copy, &secs, why) < 0)
                return -EINVAL;
        if (action && *action && (a = lease_action_from_string(action)) < 0) {
                *why = "the action after the duration is \"stop\" or \"destroy\"";
                return -EINVAL;
        }
        d->seconds = secs;
        d->action = a;
        return 0;
}

static bool same_subject(const struct lease_default *a, const struct lease_default *b) {
        if (a->any || b->any)
                return a->any && b->any;
        return rights_rule_same_subject(&a->subject, &b->subject);
}

void config_lease_default_apply(struct loader *l, const char *key, struct toml_value *v) {
        struct lease_default d = { .line = l->lineno }, *n;
        const char *why = NULL;
        char buf[320];
        int k;

        if (v->type != TOML_STRING) {
                config_error_at(l, l->lineno, "[leases] \"%s\" must be a string \"DURATION ACTION\", such as \"8h stop\"",
                                key);
                return;
        }
        d.any = streq(key, "*");
        k = d.any ? 0 : rights_rule_parse_subject(key, &d.subject, buf, sizeof buf, &why);
        if (k == 0)
                k = parse_value(v->s.str, &d, &why);
        for (size_t i = 0; k == 0 && i < l->c->n_leases; i++)
                if (same_subject(&l->c->leases[i], &d)) {
                        snprintf(buf, sizeof buf, "names the same caller as \"%s\" on line %u", l->c->leases[i].key,
                                 l->c->leases[i].line);
                        why = buf;
                        k = -EINVAL;
                }
        if (k == -ENOMEM)
                l->oom = true;
        else if (k < 0)
                config_error_at(l, l->lineno, "[leases] \"%s\": %s", key, why);
        if (k == 0 && (d.key = strdup(key)) && (n = reallocarray(l->c->leases, l->c->n_leases + 1, sizeof *n))) {
                l->c->leases = n;
                l->c->leases[l->c->n_leases++] = d;
                return;
        }
        if (k == 0)
                l->oom = true;
        free(d.key);
        rights_rule_done(&d.subject);
}

/* For --check-config: {"uid:alice": {"seconds": 28800, "action": "stop"}, ...} in file order. */
json_t *config_leases_to_json(const struct denvr_config *c) {
        json_t *o = json_object();

        for (size_t i = 0; o && i < c->n_leases; i++) {
                const struct lease_default *d = &c->leases[i];

                if (json_object_set_new(o, d->key, json_pack("{s:I, s:s}", "seconds", (json_int_t) d->seconds,
                                                             "action", lease_action_to_string(d->action))) < 0) {
                        json_decref(o);
                        return NULL;
                }
        }
        return o;
}

static bool names(const struct lease_default *d, enum rights_subject s) {
        return !d->any && d->subject.subject == s;
}

const struct lease_default *config_lease_default_for(const struct denvr_config *c, const struct rights_caller *who) {
        assert(c && who);
        /* A token only narrows its holder: without an entry of its own, its holder's applies. */
        for (size_t i = 0; who->token && i < c->n_leases; i++)
                if (names(&c->leases[i], RIGHTS_SUBJECT_TOKEN) && strcmp(c->leases[i].subject.token, who->token) == 0)
                        return &c->leases[i];
        for (size_t i = 0; who->uid_known && i < c->n_leases; i++)
                if (names(&c->leases[i], RIGHTS_SUBJECT_UID) && c->leases[i].subject.id == who->uid)
                        return &c->leases[i];
        for (size_t i = 0; i < c->n_leases; i++)
                if (names(&c->leases[i], RIGHTS_SUBJECT_GROUP) && rights_caller_in_group(who, c->leases[i].subject.id))
                        return &c->leases[i];
        for (size_t i = 0; i < c->n_leases; i++)
                if (c->leases[i].any)
                        return &c->leases[i];
        return NULL;
}
