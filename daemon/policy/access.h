/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Who may use the local API, and how.  denvrd asks no password: whatever
 * reaches it acts as the user on a paid cloud.  So every request passes these
 * rules before it is routed:
 *
 *   - peers, on every listener: the caller's uid, primary and supplementary
 *     groups (peer.h: SO_PEERCRED on the unix socket, the owner of the
 *     client's socket over TCP) against the daemon's own uid, root,
 *     allowed_uids and allowed_groups; a caller the kernel cannot name is
 *     refused; trust_local_users = true skips this rule;
 *   - Host (DNS rebinding): loopback names, the listener's own address and
 *     allowed_hosts; no Host only on the unix socket;
 *   - browsers: Origin, Sec-Fetch-Site, CORS preflights, form content types;
 *   - the listener's access level (tcp_access, socket_access), a ceiling;
 *   - a local token in Authorization (401 if it matches no [tokens] entry) and
 *     the caller's rule in [rights] (rights.h).
 *
 * Every refusal is a 403 in Denvr's error envelope whose message names the
 * [daemon] key that would allow it, and counts in metrics.denied.
 */

#include <stdbool.h>
#include <sys/types.h>

struct conn_ctx;
struct denvr_config;
struct peer;
struct request;

/* The access phase (handlers/pipeline.c): false when a reply (a refusal, or a preflight's 204) was set. */
bool access_check_request(struct request *r);

/*
 * The caller's [rights] rule (rights.c), the rights phase, once the path is
 * final: false when refused.  A rule whose entries have conditions leaves
 * r->rights_pending; access_check_rights_params() then checks them once the
 * body is in, before anything is forwarded.
 */
bool access_check_rights(struct request *r);
bool access_check_rights_params(struct request *r);

/* The peer gate for a login shim request that brought no local token. */
bool access_check_login_peer(struct request *r);


/* The rules' parsers, exposed for tests. */
bool access_host_is_allowed(const char *host, const struct denvr_config *c, const char *listener_address);
bool access_origin_is_loopback(const char *origin);
bool access_content_type_is_form(const char *content_type);
