/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Header hygiene at the door (common/http/http_framing.h): the raw head of each
 * request, peeked at before libmicrohttpd parses it, and its parsed fields.
 */

#include <stdbool.h>

struct conn_ctx;
struct request;

/* Peeks at the next request's head on ctx, before libmicrohttpd reads it. */
void framing_peek_head(struct conn_ctx *ctx);

/* Refuses (400, connection closed) what another parser could read otherwise; false then. */
bool framing_check(struct request *r);
