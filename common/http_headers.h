/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Which headers cross the proxy.  Hop-by-hop headers (RFC 9110 7.6.1) and the
 * ones listed in Connection never do; credentials the client sent never go
 * up (denvrd injects its own); cookies never come back.  Headers denvrd sets
 * itself (Host, Content-Length, User-Agent, X-Request-Id) are dropped here
 * and added by the proxy.
 */

#include <stdbool.h>
#include <stddef.h>

/* True if the token list (a Connection header value) names `name`. */
bool http_connection_lists(const char *connection_value, const char *name);

/* May this client request header be forwarded upstream? */
bool http_header_forward_request(const char *name, const char *connection_value);

/* May this upstream response header be passed to the client? */
bool http_header_forward_response(const char *name, const char *connection_value);

/* A client-supplied X-Request-Id is kept when it is 1..128 of [A-Za-z0-9._:-]. */
bool http_request_id_is_sane(const char *v);

/* A header value is safe to emit when it has no CR, LF or NUL. */
bool http_header_value_is_safe(const char *v, size_t len);
