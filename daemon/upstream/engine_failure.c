/* SPDX-License-Identifier: MIT */
#include "daemon/upstream/engine-internal.h"

#include <stdio.h>
#include <string.h>

#include "common/client/upstream.h"
#include "daemon/core/daemon.h"
#include "daemon/upstream/engine.h"

const char *engine_upstream_host(const struct daemon *d) {
        const char *s = d->config->server;
        const char *h = strstr(s, "://");

        return h ? h + 3 : s;
}

#define SAY(status_, ...)                                                        \
        do {                                                                     \
                res->status = (status_);                                         \
                snprintf(res->message, sizeof res->message, __VA_ARGS__);        \
        } while (0)

/* An answer denvrd would not buffer; false when t was not that. */
static bool describe_oversize(const struct upstream_transfer *t, const char *host, struct engine_result *res) {
        if (t->headers_too_large)
                SAY(502, "upstream %s sent more than %u KiB of response headers, which denvrd does not pass on",
                    host, UPSTREAM_MAX_HEADER_BYTES >> 10);
        else if (t->too_large)
                SAY(502, "upstream %s sent an answer larger than %u MiB, which denvrd does not buffer",
                    host, UPSTREAM_MAX_BODY >> 20);
        else
                return false;
        return true;
}

void engine_describe_failure(const struct daemon *d, const struct upstream_transfer *t, usec_t deadline,
                             struct engine_result *res) {
        const char *host = engine_upstream_host(d);

        res->end = ENGINE_TRANSFER_FAILED;
        res->details = t->errbuf;
        if (describe_oversize(t, host, res)) {
                res->details = NULL;
                return;
        }
        switch (t->result) {
        case CURLE_PEER_FAILED_VERIFICATION:
                /* No retry cures it: a 4xx, which retrying clients show at once. */
                SAY(424, "TLS certificate of %s not trusted: set ca_file in [daemon] if it uses a private CA", host);
                break;
        case CURLE_SSL_CONNECT_ERROR:
                SAY(502, "TLS handshake with upstream %s failed", host);
                break;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                SAY(502, "upstream %s unreachable: name not resolved (check [defaults] server and your network)",
                    host);
                break;
        case CURLE_COULDNT_CONNECT:
                SAY(502, "upstream %s unreachable: connection refused or no route (check [defaults] server and "
                    "your network)", host);
                break;
        case CURLE_OPERATION_TIMEDOUT:
                /* The whole budget spent (waiting for a free connection counts):
                 * request_timeout; else the 5 s connect timeout struck. */
                if (t->request_sent || daemon_now(d) + 50000u >= deadline)
                        SAY(504, "upstream %s did not answer within %u s (request_timeout)", host,
                            d->config->request_timeout_sec);
                else
                        SAY(504, "upstream %s did not accept a connection in time", host);
                break;
        case CURLE_WEIRD_SERVER_REPLY:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_BAD_CONTENT_ENCODING:
        case CURLE_HTTP2:
                SAY(502, "upstream %s sent an invalid HTTP answer", host);
                break;
        default:
                SAY(502, "upstream %s closed or reset the connection before answering completely", host);
                break;
        }
}
