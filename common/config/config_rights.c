/* SPDX-License-Identifier: MIT */
/*
 * The [rights] and [tokens] sections of denvr.toml: each key checked and
 * stored as it is read (rules by rights_rule.c), then the two checked
 * against each other, and their JSON for --check-config.
 */
#define LOG_MODULE "config"
#include "common/config/config-internal.h"

#include <assert.h>

#include "common/config/local_token.h"
#include "common/config/rights_rule.h"
#include "common/config/toml_value.h"

/* The order daemon/policy/rights.c applies the rules in, said once for --check-config. */
#define EVALUATION_ORDER                                                                          \
        "a request with a local token: that token's rule alone; otherwise the rule for the caller's " \
        "uid; otherwise the first group rule, in file order, for one of its groups; otherwise no rule " \
        "(full for those [daemon] lets in). The listener's tcp_access or socket_access caps every rule."

static const struct rights_rule *same_subject(const struct denvr_config *c, const struct rights_rule *r) {
        for (size_t i = 0; i < c->n_rights; i++) {
                if (rights_rule_same_subject(&c->rights[i], r))
                        return &c->rights[i];
        }
        return NULL;
}

void config_rights_rule_apply(struct loader *l, const char *key, struct toml_value *v) {
        _cleanup_(rights_rule_done) struct rights_rule r = { 0 };
        const struct rights_rule *dup;
        struct rights_rule *n;
        const char *why = NULL;
        char buf[320];
        int k;

        k = rights_rule_parse_subject(key, &r, buf, sizeof buf, &why);
        if (k == -ENOMEM) {
                l->oom = true;
                return;
        }
        if (k < 0) {
                config_error_at(l, l->lineno, "[rights] \"%s\": %s", key, why);
                return;
        }
        dup = same_subject(l->c, &r);
        if (dup) {
                config_error_at(l, l->lineno, "[rights] \"%s\" is the same %s as \"%s\" on line %u",
                                key, rights_subject_to_string(r.subject), dup->key, dup->line);
                return;
        }
        k = rights_rule_parse_value(v, &r, buf, sizeof buf);
        if (k == -ENOMEM) {
                l->oom = true;
                return;
        }
        if (k < 0) {
                config_error_at(l, l->lineno, "[rights] \"%s\": %s", key, buf);
                return;
        }
        r.key = strdup(key);
        n = reallocarray(l->c->rights, l->c->n_rights + 1, sizeof *n);
        if (!r.key || !n) {
                if (n)
                        l->c->rights = n;
                l->oom = true;
                return;
        }
        r.line = l->lineno;
        l->c->rights = n;
        n[l->c->n_rights++] = r;
        r = (struct rights_rule) { 0 };
}

void config_token_apply(struct loader *l, const char *name, struct toml_value *v) {
        struct local_token *n;
        uint8_t hash[SHA256_DIGEST_SIZE];
        char *copy;

        if (!local_token_name_valid(name)) {
                config_error_at(l, l->lineno, "[tokens] \"%.80s\": a token name is 1 to 64 characters "
                                "from A-Z a-z 0-9 _ -", name);
                return;
        }
        if (v->type != TOML_STRING || local_token_hash_parse(v->s.str, hash) < 0) {
                /* Never quote the value: it may be a token pasted by mistake. */
                if (v->type == TOML_STRING && local_token_is_claimed(v->s.str, v->s.len))
                        config_error_at(l, l->lineno, "[tokens] %s: this is a token itself; keep only its "
                                        "hash here (denvrd --new-token prints the line to add)", name);
                else
                        config_error_at(l, l->lineno, "[tokens] %s must be \"sha256:\" and 64 hex digits, "
                                        "as denvrd --new-token prints it", name);
                return;
        }
        for (size_t i = 0; i < l->c->n_tokens; i++)
                if (memeq_const_time(l->c->tokens[i].hash, hash, sizeof hash)) {
                        config_error_at(l, l->lineno, "[tokens] %s has the same hash as %s on line %u",
                                        name, l->c->tokens[i].name, l->c->tokens[i].line);
                        return;
                }
        copy = strdup(name);
        n = reallocarray(l->c->tokens, l->c->n_tokens + 1, sizeof *n);
        if (!copy || !n) {
                free(copy);
                if (n)
                        l->c->tokens = n;
                l->oom = true;
                return;
        }
        l->c->tokens = n;
        n[l->c->n_tokens] = (struct local_token) { .name = copy, .line = l->lineno };
        memcpy(n[l->c->n_tokens].hash, hash, sizeof hash);
        l->c->n_tokens++;
}

void config_rights_check(struct loader *l) {
        const struct denvr_config *c = l->c;

        for (size_t i = 0; i < c->n_tokens; i++) {
                bool ruled = false;

                for (size_t j = 0; j < c->n_rights && !ruled; j++)
                        ruled = c->rights[j].subject == RIGHTS_SUBJECT_TOKEN &&
                                streq(c->rights[j].token, c->tokens[i].name);
                if (!ruled)
                        config_error_at(l, c->tokens[i].line, "[tokens] %s has no rule: add "
                                        "\"token:%s\" = \"read-only\" (or \"full\", or a list of "
                                        "operations) to [rights]", c->tokens[i].name, c->tokens[i].name);
        }
        for (size_t j = 0; j < c->n_rights; j++) {
                bool known = false;

                if (c->rights[j].subject != RIGHTS_SUBJECT_TOKEN)
                        continue;
                for (size_t i = 0; i < c->n_tokens && !known; i++)
                        known = streq(c->rights[j].token, c->tokens[i].name);
                if (!known)
                        config_error_at(l, c->rights[j].line, "[rights] \"%s\": no token %s in [tokens] "
                                        "(denvrd --new-token %s makes one)", c->rights[j].key,
                                        c->rights[j].token, c->rights[j].token);
        }
}

static json_t *rule_rights_json(const struct rights_rule *r) {
        json_t *a;

        if (r->kind != RIGHTS_LIST)
                return json_string(rights_kind_to_string(r->kind));
        a = json_array();
        for (size_t i = 0; a && i < r->n_entries; i++)
                if (json_array_append_new(a, json_string(r->entries[i].text)) < 0)
                        goto fail;
        return a;
fail:
        json_decref(a);
        return NULL;
}

static json_t *rule_json(const struct rights_rule *r) {
        json_t *o = json_pack("{s:s, s:o*}", "subject", r->key, "rights", rule_rights_json(r));

        if (o && r->subject != RIGHTS_SUBJECT_TOKEN &&
            json_object_set_new(o, r->subject == RIGHTS_SUBJECT_UID ? "uid" : "gid", json_integer(r->id)) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

json_t *config_rights_to_json(const struct denvr_config *c) {
        static const enum rights_subject order[] = {
                RIGHTS_SUBJECT_TOKEN, RIGHTS_SUBJECT_UID, RIGHTS_SUBJECT_GROUP,
        };
        json_t *rules = json_array();

        for (size_t k = 0; rules && k < ELEMENTSOF(order); k++)
                for (size_t i = 0; i < c->n_rights; i++) {
                        if (c->rights[i].subject != order[k])
                                continue;
                        if (json_array_append_new(rules, rule_json(&c->rights[i])) < 0) {
                                json_decref(rules);
                                return NULL;
                        }
                }
        return json_pack("{s:s, s:o*}", "evaluation", EVALUATION_ORDER, "rules", rules);
}

json_t *config_tokens_to_json(const struct denvr_config *c) {
        json_t *o = json_object();

        for (size_t i = 0; o && i < c->n_tokens; i++) {
                char text[LOCAL_TOKEN_HASH_TEXT_MAX], *w = text;

                w = stpcpy(w, "sha256:");
                for (size_t b = 0; b < SHA256_DIGEST_SIZE; b++)
                        w += sprintf(w, "%02x", c->tokens[i].hash[b]);
                if (json_object_set_new(o, c->tokens[i].name, json_string(text)) < 0) {
                        json_decref(o);
                        return NULL;
                }
        }
        return o;
}

void config_rights_free(struct denvr_config *c) {
        for (size_t i = 0; i < c->n_rights; i++)
                rights_rule_done(&c->rights[i]);
        free(c->rights);
        for (size_t i = 0; i < c->n_tokens; i++)
                free(c->tokens[i].name);
        free(c->tokens);
}

bool rights_caller_in_group(const struct rights_caller *who, gid_t g) {
        if (who->gid_known && who->gid == g)
                return true;
        for (size_t i = 0; i < who->n_groups; i++)
                if (who->groups[i] == g)
                        return true;
        return false;
}

const struct rights_rule *config_rights_rule_for(const struct denvr_config *c, const struct rights_caller *who) {
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
                if (c->rights[i].subject == RIGHTS_SUBJECT_GROUP && rights_caller_in_group(who, c->rights[i].id))
                        return &c->rights[i];
        return NULL;
}
