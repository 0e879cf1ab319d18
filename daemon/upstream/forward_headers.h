/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The header lines a forwarded request carries upstream: the client's on the
 * forwarded list (common/http/http_headers.h), written anew from the parsed
 * form, then denvrd's own (User-Agent, X-Request-Id, and what keeps curl from
 * adding its own).  Authorization is not among them: the engine adds it.
 */

#include <stdbool.h>
#include <stdio.h>

struct curl_slist;
struct request;

/* json_content_type: the body was rewritten as JSON, its Content-Type is
 * application/json whatever the client said.  0 or -ENOMEM. */
int forward_headers_build(struct request *r, bool has_body, bool json_content_type, struct curl_slist **ret);

/* The forwarded headers that may change an answer, in order, as "\nName:value"
 * lines on f: what the cache and the failure memory key on. */
void forward_headers_key(struct request *r, FILE *f);
