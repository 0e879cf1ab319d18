/* SPDX-License-Identifier: MIT */
#pragma once

/* /_denvrd/leases (GET) and /_denvrd/leases/SERVICE/ID (PUT, DELETE). */

struct request;

void leases_api_handle(struct request *r);
