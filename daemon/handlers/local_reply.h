/* SPDX-License-Identifier: MIT */
#pragma once

/* The JSON replies of denvrd's own endpoints. */

#include <jansson.h>

struct request;

/* Replies j (taken; NULL: out of memory) as compact JSON with a newline, not to be cached. */
void local_reply_json(struct request *r, unsigned status, json_t *j);
