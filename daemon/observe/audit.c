/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "audit"
#include "daemon/observe/audit.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "common/api/optable.h"
#include "common/base/log.h"
#include "common/http/http_method.h"
#include "daemon/core/peer.h"
#include "daemon/http/request.h"
#include "daemon/http/route.h"

/*
 * Whether r went to the forwarder.  r->forwarded is set from proxy_start() on
 * and upstream_status once upstream answered; a client that hung up while
 * its request was in flight has neither any more (request_hangup() frees the
 * forwarder), but its request may well have reached upstream, so a
 * dispatched request on a forwarded path counts too.
 */
static bool was_forwarded(const struct request *r) {
        if (r->forwarded || r->upstream_status >= 0)
                return true;
        return r->aborted && r->dispatched && r->canon_path && r->route.kind == ROUTE_API;
}

/* The canonical path, spelled as the operation table spells it when it knows the path. */
static const char *audit_path(const struct request *r) {
        const struct operation *op = optable_lookup_path(r->canon_path);

        return op ? op->path : r->canon_path;
}

void audit_request(struct request *r, bool completed_ok) {
        struct peer *p;
        struct request_facts f;
        char pid[16] = "", who[160], decided[200];
        const char *exe = NULL, *transport, *path;

        assert(r);
        if (!r->method_info || r->method_info->safe || !was_forwarded(r))
                return;

        p = &r->conn_ctx->peer;
        path = audit_path(r);
        /* The identity the access check judged, found when the connection was accepted. */
        request_facts(r, completed_ok, &f);
        if (p->is_unix) {
                transport = "unix";
                if (p->identified)
                        snprintf(pid, sizeof pid, "%d", (int) p->pid);
                exe = peer_exe(p);   /* cached by the access check; looked up now if not */
                snprintf(who, sizeof who, "uid=%s pid=%s exe=%s via unix socket", f.uid[0] ? f.uid : "?",
                         pid[0] ? pid : "?", exe);
        } else {
                transport = "tcp";
                snprintf(who, sizeof who, "uid=%s (owner of client socket %s) via tcp",
                         f.uid[0] ? f.uid : "?", p->addr);
        }

        /* The caller's local token (its name, never the token) and the [rights] rule that allowed it. */
        snprintf(decided, sizeof decided, "%s%s%s%s%s", r->token[0] ? " token=" : "", r->token,
                 r->rule[0] ? " (rule \"" : "", r->rule, r->rule[0] ? "\")" : "");

        const struct log_field fields[] = {
                { "MESSAGE_ID", MESSAGE_ID_AUDIT },
                REQUEST_LOG_FIELDS(r, path, &f),
                { "TRANSPORT", transport },
                { "PEER_PID", pid[0] ? pid : NULL },
                { "PEER_EXE", exe },
                { "PEER_ADDR", p->is_unix ? NULL : p->addr },
                { "TOKEN_NAME", r->token[0] ? r->token : NULL },
                { "RIGHTS_RULE", r->rule[0] ? r->rule : NULL },
        };
        /* The canonical path only: the query may carry secrets, and bodies are never logged. */
        log_fields(LOG_NOTICE, fields, ELEMENTSOF(fields), "%s %s by %s%s: upstream status %s, status %s%s (request %s)",
                   r->method, path, who, decided, f.upstream ? f.upstream : "none", f.status,
                   completed_ok ? "" : " (client went away)", r->id);
}
