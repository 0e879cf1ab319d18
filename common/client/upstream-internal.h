/* SPDX-License-Identifier: MIT */
#pragma once

/* What upstream.c (the multi handle on sd-event, transfers) and
 * upstream_response.c (reading an answer's headers and body) share. */

#include <stddef.h>

#include "common/client/upstream.h"

/* The most body space reserved up front from an answer's Content-Length. */
#define UPSTREAM_RESERVE_MAX (1024u * 1024u)

/* Forgets the response of t's previous attempt. */
void upstream_transfer_clear_response(struct upstream_transfer *t);
/* curl's CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION; userdata is the transfer. */
size_t upstream_write_cb(char *data, size_t size, size_t n, void *userdata);
size_t upstream_header_cb(char *data, size_t size, size_t n, void *userdata);
