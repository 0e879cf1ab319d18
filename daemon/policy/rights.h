/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What a caller may do: the caller identified (its local token, else the uid
 * and groups of its peer), its rule in [rights] picked, and the rule applied
 * to one request (common/config/rights_rule.c matches).  Which rule applies:
 *
 *   1. a request carrying a local token: the token's rule, and nothing else
 *      (a token only ever narrows what its holder's own uid may do, and is
 *      the only credential of a caller the kernel cannot name);
 *   2. else the rule for the caller's uid ("uid:NAME");
 *   3. else the first group rule in file order for one of its groups, primary
 *      or supplementary ("group:NAME");
 *   4. else none: full, for a caller [daemon] lets in (its own user, root,
 *      allowed_uids, allowed_groups), as before [rights] existed.
 *
 * The most specific subject decides, and only one rule applies: rules never
 * add up.  The listener's access level (tcp_access, socket_access) is a
 * ceiling above every rule, checked first by access.c.
 *
 * Nothing here keeps pointers into a configuration across event-loop
 * callbacks: a reload may free it, and the next request is judged by the new
 * rules, on an open connection too.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/config/rights_rule.h"

struct denvr_config;
struct peer;
struct request;

struct rights_answer {
        enum rights_verdict verdict;
        const struct rights_rule *rule;     /* NULL: no rule names the caller */
        const struct operation *op;         /* NULL: not in the table (or not an API path) */
        const struct rights_entry *entry;
        char message[640];                  /* RIGHTS_DENY: why, and the setting that would allow it */
};

/*
 * The local token in the request's Authorization ("ApiKey T" or "Bearer T"
 * where T starts with LOCAL_TOKEN_PREFIX): 1 and its name copied into
 * r->token; 0 when the request carries none (other values are dummy SDK
 * credentials and mean nothing); -EPERM when it claims to be one but
 * matches no [tokens] entry.  The token itself is never logged or kept.
 */
int rights_identify_token(struct request *r);

/* Whether a local token (len bytes) is in [tokens]; its name then, else NULL. */
const char *rights_token_lookup(const struct denvr_config *c, const char *token, size_t len);

/* The caller of r: r->token, and the peer (a TCP peer's uid looked up if needed). */
void rights_caller_of(struct request *r, struct rights_caller *ret);



/*
 * Applies the caller's rule to method and path.  get NULL: parameters are
 * not known yet (RIGHTS_NEED_PARAMS when a conditional entry could allow it).
 */
void rights_decide(const struct denvr_config *c, const struct rights_caller *who, const char *method,
                   const char *path, rights_param_fn get, void *userdata, struct rights_answer *ans);

/*
 * rights_param_fn over a request as read (reading.c); userdata is its struct
 * api_read.  A parameter counts where the table puts it (query or body): a
 * query "id" says nothing about a body operation's id, which the reading
 * refuses anyway.
 */
int rights_request_param(void *userdata, const struct operation *op, const char *name,
                         const char **ret, size_t *ret_len);

/* Short form of the caller for log lines: "uid=1000 pid=42 token=vm-7". */
void rights_caller_format(const struct rights_caller *who, char *buf, size_t size);
