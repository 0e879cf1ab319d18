/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * denvrd's own endpoints that stay open where everything else is shut: one
 * table, read by the listener levels (tcp_access / socket_access "off",
 * access.c) and by a caller's [rights] rule "off" (rights.c).
 */

#include <stdbool.h>

enum open_when {
        OPEN_LISTENER_OFF,      /* on a listener whose level is "off" */
        OPEN_RIGHTS_OFF,        /* to a caller whose [rights] rule is "off" */
};

/* Whether the canonical path stays open at that level. */
bool open_endpoint(const char *canon_path, enum open_when when);
