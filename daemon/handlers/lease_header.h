/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Forwards an API request (proxy.h), setting the lease its X-Denvrd-Lease
 * header or the caller's [leases] entry asks for on the machine it creates
 * or starts; a request that may not have that lease is refused before
 * anything is forwarded.
 */

struct request;

void lease_header_proxy(struct request *r);
