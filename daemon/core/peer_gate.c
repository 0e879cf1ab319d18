/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "access"
#include "daemon/core/peer_gate.h"

#include <assert.h>
#include <stdint.h>

#include "common/base/log.h"
#include "common/config/config.h"
#include "common/config/rights_rule.h"
#include "daemon/core/peer.h"

static bool id_listed(uint32_t id, const uint32_t *ids, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (ids[i] == id)
                        return true;
        return false;
}

static bool peer_has_rule(const struct denvr_config *c, const struct peer *p) {
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
        return config_rights_rule_for(c, &who) != NULL;
}

bool peer_gate_allowed(const struct peer *p, const struct denvr_config *c, uid_t self) {
        assert(p && c);

        if (c->trust_local_users)
                return true;   /* the documented opt-out: every caller that reaches a listener */
        if (!p->identified)
                return false;  /* cannot tell who it is: refuse */
        if (p->uid == self || p->uid == 0)
                return true;
        if (id_listed(p->uid, c->allowed_uids, c->n_allowed_uids))
                return true;
        /*
         * Only allowed_groups grants access through groups.  In particular
         * the group owning the socket file (SocketGroup= of a system unit)
         * is not trusted by itself: a file mode is easy to widen by accident,
         * and the configuration should say in one place who may act as the
         * user.
         */
        if (p->gid_known && id_listed(p->gid, c->allowed_groups, c->n_allowed_groups))
                return true;
        for (size_t i = 0; i < p->n_groups; i++)
                if (id_listed(p->groups[i], c->allowed_groups, c->n_allowed_groups))
                        return true;
        /* A peer a [rights] rule names is let in, to be held to that rule (policy/rights.c). */
        return peer_has_rule(c, p);
}

bool peer_gate_refused_outright(const struct peer *p, const struct denvr_config *c) {
        assert(p && c);
        /* Identified or not: a valid local token is a credential of its own (check_peer()). */
        return !p->allowed && c->n_tokens == 0;
}

void peer_gate_warn_trust(const struct denvr_config *c) {
        if (c->trust_local_users)
                log_warning("trust_local_users = true: every local user and process that can reach a "
                            "listener acts with this login; denvrd does not check who they are");
}
