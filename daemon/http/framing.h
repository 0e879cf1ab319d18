/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Header hygiene at the door (common/http/http_framing.h), the framing phase:
 * the raw head of each request, peeked at before libmicrohttpd parses it
 * (conn_peek_head()), and its parsed fields.
 */

#include <stdbool.h>

struct request;

/* Refuses (400, connection closed) what another parser could read otherwise; false then. */
bool framing_check(struct request *r);
