/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * CORS on every reply: a browser page of an origin listed in [daemon]
 * cors_origins may read denvrd's answers; no other origin gets a header that
 * would let it.  Preflights and the Origin checks are the access phase's
 * (policy/access.c).
 */

#include <stdbool.h>

struct denvr_config;
struct request;

bool cors_origin_listed(const struct denvr_config *c, const char *origin);
/* Adds the CORS headers to r's reply when its Origin is listed. */
void cors_reply_headers(struct request *r);
