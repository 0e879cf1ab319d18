/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * GET /_denvrd/whoami: who denvrd takes the caller for (transport, uid and
 * user, groups, pid, local token) and what it may do: the rule that decided,
 * the operations of the table it may call, and whether requests outside the
 * table pass.  ?operation=servers/virtual/StopServer answers for one
 * operation, like `kubectl auth can-i`.
 */

struct request;

void whoami_handle(struct request *r);
