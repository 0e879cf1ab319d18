/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * CORS: a browser page of an origin listed in [daemon] cors_origins may read
 * denvrd's answers (request.c adds the headers to every reply); no other
 * origin gets a header that would let it.  Preflights and the Origin checks are the access phase's
 * (policy/access.c).
 */

#include <stdbool.h>

struct denvr_config;

bool cors_origin_listed(const struct denvr_config *c, const char *origin);
