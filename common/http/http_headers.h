/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Which headers cross the proxy.  Upward, only a documented list of client
 * headers (http_headers.c); hop-by-hop headers (RFC 9110 7.6.1) and the ones
 * listed in Connection never; credentials the client sent never (denvrd
 * injects its own); headers denvrd sets itself (Host, Content-Length,
 * User-Agent, X-Request-Id) are added by the proxy.  Downward, cookies never
 * come back.
 */

#include <stdbool.h>
#include <stddef.h>

/* True if the token list (a Connection header value) names `name`. */
bool http_connection_lists(const char *connection_value, const char *name);

/* May this client request header be forwarded upstream?  Only a short list may. */
bool http_header_forward_request(const char *name, const char *connection_value);
/* A header denvrd sets itself or that is hop-by-hop (never forwarded, never counted as dropped). */
bool http_header_is_denvrds(const char *name);

/* May this upstream response header be passed to the client? */
bool http_header_forward_response(const char *name, const char *connection_value);

/* A client-supplied X-Request-Id is kept when it is 1..128 of [A-Za-z0-9._:-]. */
bool http_request_id_is_sane(const char *v);

/* A header value is safe to emit when it has no CR, LF or NUL. */
bool http_header_value_is_safe(const char *v, size_t len);

/* Appends a header line's value to *joined ("a, b"), as a field repeated over
 * several lines means (every Connection line counts, not only the first).
 * An empty value adds nothing.  0 or -ENOMEM. */
int http_header_list_join(char **joined, const char *value);
