/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * GET /_denvrd/cost: the machines that are not offline, each with its
 * configuration, price per hour and lease, and the total per hour
 * (jobs/cost.h computes them).  A caller with a [rights] rule sees them only
 * when that rule lets it GET GetServers and GetApplications: the answer
 * lists what those would.
 */

#include <stdbool.h>
#include <stddef.h>

struct request;

void cost_api_handle(struct request *r);
/* Whether r's caller may see the cost; false with why (a sentence naming the rule) set. */
bool cost_api_allowed(struct request *r, char *why, size_t size);
