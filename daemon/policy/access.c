/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "access"
#include "daemon/policy/access-internal.h"

#include <assert.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/base/log.h"
#include "common/config/config.h"
#include "common/http/http_method.h"
#include "daemon/core/daemon.h"
#include "daemon/core/peer.h"
#include "daemon/core/peer_gate.h"
#include "daemon/http/cors.h"
#include "daemon/http/listener.h"
#include "daemon/http/request.h"
#include "daemon/http/route.h"
#include "daemon/policy/open_endpoints.h"
#include "daemon/policy/rights.h"

/* --- replies ------------------------------------------------------------------------ */

const char *access_key(const struct request *r) {
        return r->listener->kind == LISTENER_UNIX ? "socket_access" : "tcp_access";
}

enum access_level access_listener_level(const struct request *r) {
        const struct denvr_config *c = r->daemon->config;

        return r->listener->kind == LISTENER_UNIX ? c->socket_access : c->tcp_access;
}

/* Refuses r: a 403 envelope carrying message, an info log line, the denied counter. */
bool access_deny(struct request *r, const char *format, ...) {
        const struct peer *p = &r->conn_ctx->peer;
        _cleanup_free_ char *msg = NULL;
        char who[96 + LOCAL_TOKEN_NAME_MAX];
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&msg, format, ap) < 0)
                msg = NULL;
        va_end(ap);

        if (p->is_unix && p->identified)
                snprintf(who, sizeof who, "uid=%u pid=%d", (unsigned) p->uid, (int) p->pid);
        else if (p->is_unix)
                snprintf(who, sizeof who, "unix");
        else if (p->identified)
                snprintf(who, sizeof who, "%s (uid=%u)", p->addr, (unsigned) p->uid);
        else
                snprintf(who, sizeof who, "%s (uid=?)", p->addr);
        if (r->token[0])
                snprintf(who + strlen(who), sizeof who - strlen(who), " token=%s", r->token);
        /* r->path only: a query may hold secrets. */
        log_info("%s: refused %s %s from %s: %s", r->id, r->method, r->path, who,
                 msg ? msg : "(out of memory)");
        r->daemon->metrics.denied++;
        request_reply_error(r, 403, NULL, "%s", msg ? msg : "refused by denvrd's access rules");
        return false;
}

/* --- the headers the rules look at, in one pass ------------------------------------- */

struct header_scan {
        unsigned n_host, n_origin;
        bool browser;           /* any header only a browser sends */
};

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        struct header_scan *h = cls;

        if (strcasecmp(key, "Host") == 0)
                h->n_host++;
        else if (strcasecmp(key, "Origin") == 0) {
                h->n_origin++;
                h->browser = true;
        } else if (strcasecmp(key, "Referer") == 0 || strcasecmp(key, "Cookie") == 0 ||
                   strncasecmp(key, "Sec-Fetch-", 10) == 0)
                h->browser = true;
        else if (strcasecmp(key, "User-Agent") == 0 && value && strncmp(value, "Mozilla/", 8) == 0)
                h->browser = true;
        return MHD_YES;
}

/* --- Host (DNS rebinding) ----------------------------------------------------------- */

static bool port_valid(const char *s, size_t n) {
        if (n == 0 || n > 5)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

/* Splits "name", "name:port", "[v6]" or "[v6]:port"; false when malformed. */
static bool host_split(const char *host, size_t *ret_len) {
        size_t n = strlen(host);
        const char *colon;

        if (host[0] == '[') {
                const char *close = strchr(host, ']');

                if (!close)
                        return false;
                *ret_len = (size_t) (close - host) + 1;
                if (close[1] == 0)
                        return true;
                return close[1] == ':' && port_valid(close + 2, strlen(close + 2));
        }
        colon = strchr(host, ':');
        if (!colon) {
                *ret_len = n;
                return n > 0;
        }
        *ret_len = (size_t) (colon - host);
        return *ret_len > 0 && port_valid(colon + 1, strlen(colon + 1));
}

static bool name_is(const char *s, size_t n, const char *name) {
        return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

bool access_host_is_allowed(const char *host, const struct denvr_config *c, const char *listener_address) {
        static const char *const loopback[] = { "localhost", "127.0.0.1", "[::1]" };
        size_t n;

        if (!host || !host_split(host, &n))
                return false;
        for (size_t i = 0; i < ELEMENTSOF(loopback); i++)
                if (name_is(host, n, loopback[i]))
                        return true;
        for (char **a = c->allowed_hosts; a && *a; a++)
                if (name_is(host, n, *a))
                        return true;
        /*
         * The listener's own address ("127.0.0.2:3368", or the address of an
         * allow_remote listener) is an IP literal: a browser only sends it for
         * a URL naming that address, which DNS cannot rebind.
         */
        if (listener_address) {
                size_t ln;

                if (host_split(listener_address, &ln) && ln == n &&
                    strncasecmp(host, listener_address, n) == 0)
                        return true;
        }
        return false;
}

static bool check_host(struct request *r, const struct header_scan *h) {
        const char *host = request_header(r, "Host");
        bool is_unix = r->listener->kind == LISTENER_UNIX;

        if (h->n_host > 1)
                return access_deny(r, "more than one Host header: refused (DNS rebinding protection)");
        if (!host) {
                /*
                 * Only HTTP/1.0 may leave Host out.  A browser always sends it,
                 * and cannot reach a unix socket at all, so there no Host is fine.
                 */
                if (is_unix)
                        return true;
                return access_deny(r, "a request without a Host header is refused over TCP (DNS rebinding "
                            "protection): send Host: localhost, or use the unix socket");
        }
        if (access_host_is_allowed(host, r->daemon->config,
                                   r->listener->kind == LISTENER_TCP ? r->listener->address : NULL))
                return true;
        return access_deny(r, "Host \"%.*s\" is not allowed (DNS rebinding protection): denvrd answers to "
                    "localhost, 127.0.0.1 and [::1] (any port); to use another name deliberately, "
                    "add it to [daemon] allowed_hosts", QUOTE_MAX, host);
}

/* --- browsers: Origin, Sec-Fetch-Site, preflights, forms ---------------------------- */

/* http(s)://localhost|127.0.0.1|[::1] with an optional port, nothing else. */
bool access_origin_is_loopback(const char *o) {
        static const char *const hosts[] = { "localhost", "127.0.0.1", "[::1]" };
        const char *p;

        if (!o)
                return false;
        if (strncasecmp(o, "http://", 7) == 0)
                p = o + 7;
        else if (strncasecmp(o, "https://", 8) == 0)
                p = o + 8;
        else
                return false;
        for (size_t i = 0; i < ELEMENTSOF(hosts); i++) {
                size_t n = strlen(hosts[i]);

                if (strncasecmp(p, hosts[i], n) != 0)
                        continue;
                if (p[n] == 0)
                        return true;
                return p[n] == ':' && port_valid(p + n + 1, strlen(p + n + 1));
        }
        return false;
}

static bool check_origin(struct request *r, const struct header_scan *h, const char *origin, bool listed) {
        const char *site = request_header(r, "Sec-Fetch-Site");

        if (h->n_origin > 1)
                return access_deny(r, "more than one Origin header: refused (browser CSRF protection)");
        if (origin && !listed) {
                if (strcmp(origin, "null") == 0)
                        return access_deny(r, "requests with \"Origin: null\" (sandboxed frames, file: pages, "
                                    "cross-site redirects) are refused: denvrd cannot tell which page "
                                    "sent them; serve the page from an origin listed in [daemon] "
                                    "cors_origins instead");
                if (!access_origin_is_loopback(origin))
                        return access_deny(r, "requests from the web origin \"%.*s\" are refused (browser CSRF "
                                    "protection): only loopback origins may call denvrd; to let a web "
                                    "app on that origin act with your Denvr login, add it to [daemon] "
                                    "cors_origins", QUOTE_MAX, origin);
        }
        /*
         * Browsers tell where a request comes from even when they send no
         * Origin (GET navigations, images).  "none" (typed URL, bookmark) and
         * "same-origin" are the user's own doing; anything else is another
         * site's page, allowed only when its origin is listed.
         */
        if (site && !listed && strcasecmp(site, "none") != 0 && strcasecmp(site, "same-origin") != 0)
                return access_deny(r, "cross-site browser requests (Sec-Fetch-Site: %.*s) are refused "
                            "(browser CSRF protection): to let a web app call denvrd, add its origin "
                            "to [daemon] cors_origins", QUOTE_MAX, site);
        return true;
}

bool access_content_type_is_form(const char *ct) {
        static const char *const form[] = {
                "application/x-www-form-urlencoded", "multipart/form-data", "text/plain",
        };
        size_t n;

        if (!ct)
                return false;
        ct += strspn(ct, " \t");
        n = strcspn(ct, ";");
        while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
                n--;
        for (size_t i = 0; i < ELEMENTSOF(form); i++)
                if (name_is(ct, n, form[i]))
                        return true;
        return false;
}

/*
 * HTML forms, and fetch() without a preflight, can send a POST only with one
 * of the three form content types (or none).  CORS never stops such a
 * request from being sent, so denvrd itself must not act on it.  But curl -d
 * sends application/x-www-form-urlencoded too, and `curl -d '{"id":"vm-1"}'`
 * must keep working (the lead's forwarder relabels a JSON form body as
 * application/json).  What tells the two apart is that a browser always adds
 * headers a page cannot suppress: Origin on a cross-origin POST, Sec-Fetch-*
 * in every current browser, usually Referer and Cookie, and a User-Agent
 * starting with "Mozilla/" that forms cannot change.  So a form-typed
 * request other than GET/HEAD is refused when it carries any of these, and
 * accepted otherwise: a non-browser client sending them is choosing to look
 * like a browser.  A POST without Content-Type from a browser is refused
 * the same way unless its origin is listed in cors_origins.  No key widens
 * this rule: a browser app sends JSON as application/json, which is
 * preflighted and therefore covered by cors_origins.
 */
static bool check_form(struct request *r, const struct header_scan *h, bool listed) {
        const char *ct;

        if (r->method_info->safe || !h->browser)
                return true;
        ct = request_header(r, "Content-Type");
        if (access_content_type_is_form(ct))
                return access_deny(r, "a browser form submission (Content-Type: %.*s) cannot change anything "
                            "through denvrd (CSRF protection): send the body as application/json; "
                            "clients without browser headers (Origin, Referer, Sec-Fetch-*, Cookie, a "
                            "Mozilla/ User-Agent), such as curl, are not affected", QUOTE_MAX, ct);
        if (!ct && strcmp(r->method, "POST") == 0 && !listed)
                return access_deny(r, "a browser POST without Content-Type cannot change anything through "
                            "denvrd (CSRF protection): send the body as application/json from an origin "
                            "listed in [daemon] cors_origins");
        return true;
}

/* --- access levels ------------------------------------------------------------------ */

static bool check_level(struct request *r) {
        const char *key = access_key(r);

        switch (access_listener_level(r)) {
        case ACCESS_FULL:
                return true;
        case ACCESS_OFF:
                /* Health checks keep working, so a supervisor can still probe the listener. */
                if (open_endpoint(r->canon_path, OPEN_LISTENER_OFF))
                        return true;
                return access_deny(r, "the API is switched off on this listener (%s = \"off\"): %s %s refused; "
                            "set [daemon] %s = \"read-only\" or \"full\" to enable it",
                            key, r->method, r->path, key);
        case ACCESS_READ_ONLY:
                /* The login shim answers locally and never changes anything upstream. */
                if (r->method_info->safe || r->route.kind == ROUTE_LOGIN)
                        return true;
                return access_deny(r, "this listener is read-only (%s = \"read-only\"): %s %s is not forwarded, "
                            "only GET and HEAD are; set [daemon] %s = \"full\" to allow changes through it",
                            key, r->method, r->path, key);
        }
        assert_not_reached();
}

/* --- the whole check ---------------------------------------------------------------- */

/* Logs the refusal of a connection's peer once, with who it is. */
static void log_peer_refusal(struct request *r, const struct peer *p, uid_t self) {
        const char *transport = p->is_unix ? "unix socket" : "tcp";
        char uid[16], pid[16], gid[16] = "?", where[96] = "";
        const struct log_field fields[] = {
                { "REQUEST_ID", r->id },
                { "PEER_UID", p->identified ? uid : NULL },
                { "PEER_PID", p->is_unix && p->identified ? pid : NULL },
                { "PEER_ADDR", p->is_unix ? NULL : p->addr },
        };

        snprintf(uid, sizeof uid, "%u", (unsigned) p->uid);
        snprintf(pid, sizeof pid, "%d", (int) p->pid);
        if (p->gid_known)
                snprintf(gid, sizeof gid, "%u", (unsigned) p->gid);
        if (p->is_unix)
                snprintf(where, sizeof where, " pid=%d", (int) p->pid);
        else
                snprintf(where, sizeof where, " (owner of client socket %s)", p->addr);
        if (!p->identified)
                log_fields(LOG_NOTICE, fields, ELEMENTSOF(fields), "refused a %s peer%s%s: %s", transport,
                           p->is_unix ? "" : " ", p->is_unix ? "" : p->addr, p->unidentified);
        else
                log_fields(LOG_NOTICE, fields, ELEMENTSOF(fields),
                           "refused %s peer uid=%u gid=%s%s: not denvrd's own user (uid %u) or root, "
                           "not in allowed_uids, no group in allowed_groups, and no rule in [rights]", transport,
                           (unsigned) p->uid, gid, where, (unsigned) self);
}

static bool check_peer_gate(struct request *r) {
        struct peer *p = &r->conn_ctx->peer;
        uid_t self = r->daemon->euid;

        /* Judged at connect; again here since a reload may have changed the rules. */
        p->allowed = peer_gate_allowed(p, r->daemon->config, self);
        if (p->allowed)
                return true;

        if (!p->denial_logged) {
                p->denial_logged = true;
                log_peer_refusal(r, p, self);
        }
        if (!p->identified)
                return access_deny(r, "denvrd cannot tell who is on the other end of this %s connection (%s) "
                            "and refuses it; only on a host where every local user and process may act "
                            "with this login, set [daemon] trust_local_users = true (or give the "
                            "caller a local token: denvrd --new-token NAME)",
                            p->is_unix ? "unix socket" : "TCP", p->unidentified ? p->unidentified : "?");
        return access_deny(r, "uid %u may not use denvrd: only its own user (uid %u) and root may; to allow "
                    "this user deliberately, add it to [daemon] allowed_uids, or one of its groups to "
                    "allowed_groups, or give it a rule in [rights] (\"uid:NAME\" = \"read-only\", for one)",
                    (unsigned) p->uid, (unsigned) self);
}

static bool check_peer(struct request *r) {
        /* A valid local token is a credential of its own: its rule decides (rights.c). */
        if (r->token[0])
                return true;
        /*
         * The login shim may be given a local token as the password, in the
         * body: it judges the peer itself once it has read that
         * (access_check_login_peer()).  It never forwards anything.
         */
        if (r->route.kind == ROUTE_LOGIN)
                return true;
        return check_peer_gate(r);
}

bool access_check_login_peer(struct request *r) {
        assert(r);
        return check_peer_gate(r);
}

/* --- local tokens and rights (rights.c decides; refusals are made here) -------------- */

/* A request that claims a local token (Authorization) must carry a valid one. */
static bool check_token(struct request *r) {
        const struct peer *p = &r->conn_ctx->peer;

        if (rights_identify_token(r) >= 0)
                return true;
        /* Never the token itself: only that one was presented. */
        log_info("%s: refused %s %s from %s: a local token that matches no [tokens] entry", r->id,
                 r->method, r->path, p->is_unix ? "unix socket" : p->addr);
        r->daemon->metrics.denied++;
        request_reply_error(r, 401, NULL, "the local token in Authorization matches no entry of [tokens] "
                            "in denvr.toml (revoked, mistyped, or for another denvrd): make one with "
                            "denvrd --new-token NAME");
        (void) request_reply_header(r, "WWW-Authenticate", "ApiKey");
        return false;
}

/* Applies the caller's [rights] rule; get NULL: before the body is in. */
static bool check_rights(struct request *r, rights_param_fn get, void *userdata) {
        const char *inner;
        struct rights_caller who;
        struct rights_answer ans;

        /* Without rules nothing is looked up: the common case costs nothing. */
        if (r->daemon->config->n_rights == 0) {
                r->rule[0] = 0;
                r->rights_list = false;
                r->rights_pending = false;
                return true;
        }
        /* A wait reads its inner operation: judged as a GET of that. */
        inner = r->route.inner;
        rights_caller_of(r, &who);
        rights_decide(r->daemon->config, &who, inner ? "GET" : r->method, inner ? inner : r->canon_path,
                      get, userdata, &ans);
        snprintf(r->rule, sizeof r->rule, "%s", ans.rule ? ans.rule->key : "");
        r->rights_list = ans.rule && ans.rule->kind == RIGHTS_LIST;
        r->rights_pending = ans.verdict == RIGHTS_NEED_PARAMS;
        if (ans.verdict != RIGHTS_DENY)
                return true;
        return access_deny(r, "%s", ans.message);
}

bool access_check_rights(struct request *r) {
        assert(r);
        return check_rights(r, NULL, NULL);
}

bool access_check_rights_params(struct request *r) {
        bool ok;

        assert(r);
        if (!r->reading) {
                r->rights_pending = false;
                return access_deny(r, "the [rights] rule's conditions need an API request to judge");
        }
        ok = check_rights(r, rights_request_param, r->reading);
        if (ok && r->rights_pending) {
                /* The configuration changed under us; conditions cannot be pending now. */
                r->rights_pending = false;
                return access_deny(r, "the [rights] rule could not be checked");
        }
        return ok;
}

bool access_check_request(struct request *r) {
        const struct denvr_config *c = r->daemon->config;
        struct header_scan h = { 0, 0, false };
        const char *origin;
        bool listed;

        assert(r);
        if (!check_token(r) || !check_peer(r))
                return false;

        (void) MHD_get_connection_values(r->conn, MHD_HEADER_KIND, scan_header, &h);
        if (!check_host(r, &h))
                return false;

        origin = request_header(r, "Origin");
        listed = cors_origin_listed(c, origin);
        if (!check_origin(r, &h, origin, listed))
                return false;

        /* A preflight is OPTIONS with both of these; any other OPTIONS is forwarded. */
        if (strcmp(r->method, "OPTIONS") == 0 && origin &&
            request_header(r, "Access-Control-Request-Method")) {
                access_answer_preflight(r, origin, listed);
                return false;
        }

        if (!check_level(r) || !check_form(r, &h, listed))
                return false;

        /*
         * Requests that may change something are audited when they finish
         * (audit.c).  Find a socket peer's executable now, while its pid
         * cannot have been reused; once per connection.
         */
        if (!r->method_info->safe && r->conn_ctx->peer.is_unix)
                (void) peer_exe(&r->conn_ctx->peer);
        return true;
}
