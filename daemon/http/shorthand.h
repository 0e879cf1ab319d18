/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Service shorthand: the SDKs name services like "servers/virtual"; denvrd
 * serves /servers/virtual/GetServers as /api/{api}/servers/virtual/GetServers
 * using [defaults] api.  Only the services of the operation table count, so
 * a typo still gets a 404 instead of a confusing upstream error.
 */

#include <stdbool.h>

struct request;

/* Rewrites the request's target and canonical path in place; -ENOMEM, or
 * -EINVAL if the new path is refused (an [defaults] api of "..", say). */
int shorthand_rewrite(struct request *r, const char *api);
