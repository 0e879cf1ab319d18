/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The audit trail: every request other than GET/HEAD that was handed to the
 * forwarder is logged at notice level with who asked (uid, pid, executable
 * for socket peers; the uid owning the client's socket for TCP peers), the
 * operation (method and path, never the query) and the upstream status.
 * Journal fields: MESSAGE_ID, REQUEST_ID, METHOD, PATH, STATUS,
 * UPSTREAM_STATUS, TRANSPORT, PEER_UID, PEER_PID, PEER_EXE, PEER_ADDR, and
 * TOKEN_NAME and RIGHTS_RULE when a local token or a [rights] rule applied.
 */

#include <stdbool.h>

struct request;

#define MESSAGE_ID_AUDIT "7c292d75307f4107a113da34ab60a1db"

/* From request_free(), before the forwarder's state is released. */
void audit_request(struct request *r, bool completed_ok);
